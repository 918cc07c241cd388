"""The Dagster UI as a user drives it, in a real browser: headless Chromium (Debian's `chromium`, installed by
`make browser`, which `make test` runs) under Python Playwright, against `dagster dev -w workspace.yaml` and
the mock PI Web API as real subprocesses on loopback.

The user opens the asset graph, opens `pi_timeseries`, launches a backfill of 2 dates x 2 shards through the
partition dialog (`Materialize…`), waits for its runs, looks at an asset check's result, the asset's owner and
the plots of its metadata (Overview > Metadata > Plots: per partition, and over time); the Delta slices the
backfill wrote must equal the mock's values. The days are the two before today (the mock's clock reads today
noon), so they are among the latest partitions the plots draw (Dagster plots the latest 120).
Screenshots of every step are kept in `test-artifacts/browser/` when the test fails. Timeouts are generous:
the backfill daemon ticks every 30 s, and CI runs this on 2 loaded cores.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, sync_playwright

from osipi_dagster.lake import Lakehouse
from osipi_dagster_tests.processes import REPO, dagster_dev, mock_pi
from osipi_dagster_tests.timeseries_helpers import (
    assert_same_rows,
    day_start_ns,
    lake_rows,
    shard_web_ids,
    truth,
)

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]
TODAY = datetime.now(UTC).date()
MOCK_NOW = f"{TODAY.isoformat()}T12:00:00Z"  # the backfilled days are closed on the mock, their values final
DATES = [(TODAY - timedelta(days=days)).isoformat() for days in (2, 1)]
SHARDS = ["s01", "s02"]
PARTITIONS = [f"{day}|{shard}" for day in DATES for shard in SHARDS]
OWNER = "team:process-data"
ARTIFACTS = REPO / "test-artifacts" / "browser"
START_S = 600  # dagster dev loads the code location before it serves: minutes on a loaded machine
STEP_MS = 120_000  # one page or dialog step, on a loaded machine
BACKFILL_S = 900  # the daemon's 30 s loop, runs queued behind each other, 2 busy cores


@pytest.mark.slow(minutes=2.5)
@pytest.mark.timeout(1800)
def test_a_user_backfills_two_dates_by_two_shards_in_the_ui(tmp_path: Path) -> None:
    """Asset graph -> pi_timeseries -> Materialize… -> 2 dates x 2 shards -> Launch backfill -> the backfill
    page; the runs succeed, the four Delta slices equal the mock's values, and the asset's check results,
    owner and metadata plots show, with a point for each partition."""
    assert CHROMIUM.exists(), "Chromium is missing: run `make browser` (as root: apt-get install chromium)"
    lake_root = tmp_path / "lake"
    shots = tmp_path / "screenshots"
    shots.mkdir()
    with _kept_on_failure(shots):
        _drive_the_ui(tmp_path, lake_root, shots)


def _drive_the_ui(tmp_path: Path, lake_root: Path, shots: Path) -> None:
    with (
        mock_pi(tmp_path, "--tags", "40", "--now", MOCK_NOW) as api,
        dagster_dev(
            tmp_path,
            {
                "OSIPI_PI_BASE_URL": api,
                "OSIPI_LAKE_ROOT": str(lake_root),
                "OSIPI_TAG_SHARDS": "4",
                "OSIPI_ASSET_OWNERS": OWNER,
            },
            start_timeout_s=START_S,
        ) as ui,
        sync_playwright() as driver,
    ):
        location = ui.location()
        ui.wait_run(ui.materialize(location, ["pi_af_hierarchy", "pi_af_attributes", "pi_points"]), 300)
        browser = driver.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=str(CHROMIUM),
            headless=True,
            args=ARGS,
            viewport={"width": 1600, "height": 1000},
        )
        page = browser.new_page()
        page.set_default_timeout(STEP_MS)
        try:
            _asset_graph(page, ui.url, location, shots)
            backfill_id = _launch_backfill(page, ui.url, shots)
            backfill = ui.wait_backfill(backfill_id, timeout_s=BACKFILL_S)
            errors = {run["runId"]: ui.run_errors(run["runId"]) for run in backfill["runs"]}
            assert backfill["status"] == "COMPLETED_SUCCESS", (backfill, errors)
            assert sorted(backfill["partitionNames"]) == sorted(PARTITIONS)
            _backfill_page(page, ui.url, backfill_id, shots)
            _check_result(page, ui.url, shots)
            _metadata_plots(page, ui.url, shots)
        except Exception:
            page.screenshot(path=str(shots / "99_failure.png"), full_page=True)
            raise
        finally:
            browser.close()
        _assert_slices_equal_the_mock(Lakehouse(str(lake_root)), api)


def _assert_slices_equal_the_mock(lake: Lakehouse, api: str) -> None:
    """Each backfilled (date, shard) slice holds exactly the mock's values of the shard's points that day."""
    table = lake.table("bronze.pi_timeseries")
    for day in map(date.fromisoformat, DATES):
        for shard in SHARDS:
            start = day_start_ns(day)
            want = truth(api, shard_web_ids(lake, shard), start, day_start_ns(day + timedelta(days=1)))
            assert want, f"the mock has no values for {day}|{shard}: the comparison would prove nothing"
            assert_same_rows(lake_rows(table, day, shard), want)


def _asset_graph(page: Page, url: str, location: str, shots: Path) -> None:
    """The global asset lineage shows the project's groups (bronze, silver, gold); the bronze group's graph
    shows its assets once its nodes have loaded."""
    page.goto(f"{url}/asset-groups", wait_until="networkidle")
    page.get_by_text("pi_bronze", exact=True).first.wait_for()
    page.screenshot(path=str(shots / "01_asset_graph.png"))
    page.goto(f"{url}/locations/{location}/asset-groups/pi_bronze", wait_until="networkidle")
    page.get_by_text("Loading...").first.wait_for(state="detached")
    page.get_by_text("pi_timeseries", exact=True).first.wait_for()
    page.screenshot(path=str(shots / "01_bronze_graph.png"))


def _launch_backfill(page: Page, url: str, shots: Path) -> str:
    """The partition dialog of `pi_timeseries`: dates typed, shards ticked; the backfill's id."""
    page.goto(f"{url}/assets/pi_timeseries", wait_until="networkidle")
    page.get_by_role("button", name="Materialize…").click()
    dialog = page.get_by_role("dialog").filter(has_text="Partition selection")
    dialog.wait_for()
    dates = dialog.locator("input[placeholder^='ex:']")
    dates.fill(", ".join(DATES))
    dates.press("Enter")
    dialog.get_by_text("Select a partition or create one").click()
    for shard in SHARDS:
        page.get_by_role("menuitem").filter(has_text=shard).click()
    # Closes the menu (Escape would close the dialog; the section's own title would fold the selection away).
    dialog.get_by_text("Launch runs to materialize").first.click()
    dialog.get_by_text(f"{len(PARTITIONS)} partitions").first.wait_for()
    page.screenshot(path=str(shots / "02_partition_dialog.png"))
    dialog.get_by_role("button", name="Launch backfill").click()
    toast = page.get_by_text(re.compile(r"Created backfill \w+"))
    toast.wait_for()
    page.screenshot(path=str(shots / "03_backfill_created.png"))
    found = re.search(r"Created backfill (\w+)", toast.inner_text())
    assert found, toast.inner_text()
    return found.group(1)


def _backfill_page(page: Page, url: str, backfill_id: str, shots: Path) -> None:
    """The backfill's page says it completed."""
    page.goto(f"{url}/runs/b/{backfill_id}", wait_until="networkidle")
    page.get_by_text("Completed", exact=False).first.wait_for()
    page.screenshot(path=str(shots / "04_backfill_page.png"), full_page=True)


def _check_result(page: Page, url: str, shots: Path) -> None:
    """The asset's Checks tab lists its checks; one opens with its latest evaluation."""
    page.goto(f"{url}/assets/pi_timeseries?view=checks", wait_until="networkidle")
    check = page.get_by_text("null_or_bad_values", exact=True).first
    check.wait_for()
    check.click()
    page.get_by_text(re.compile(r"Passed|Failed|Succeeded")).first.wait_for()
    page.screenshot(path=str(shots / "05_check_result.png"), full_page=True)


# The data a metadata plot draws: Dagster's AssetValueGraph renders a Chart.js <canvas>, whose React props
# (react-chartjs-2's `data`: x labels, one dataset named after the metadata key) are read from the canvas's
# fiber; NaN marks an x without a value.
CHARTS_JS = """canvases => canvases.map(canvas => {
  const fiberKey = Object.keys(canvas).find(key => key.startsWith('__reactFiber$'));
  for (let fiber = fiberKey && canvas[fiberKey]; fiber; fiber = fiber.return) {
    const data = fiber.memoizedProps && fiber.memoizedProps.data;
    if (data && data.datasets) {
      const [dataset] = data.datasets;
      return {label: dataset.label, x: data.labels || null, y: dataset.data.map(point => point.y)};
    }
  }
  return null;
})"""


def _metadata_plots(page: Page, url: str, shots: Path) -> None:
    """The asset's Overview shows its owner and latest metadata; Metadata > Plots draws each numeric key per
    partition, with a point for every backfilled partition; the Events view plots over time, where the
    table's total row count (an observation after each run) shows too."""
    page.goto(f"{url}/assets/pi_timeseries", wait_until="networkidle")
    page.get_by_text(OWNER.removeprefix("team:")).first.wait_for()
    plots = page.get_by_role("button", name="Plots")
    plots.wait_for()
    page.screenshot(path=str(shots / "06_asset_overview.png"), full_page=True)
    plots.click()
    by_partition = _charts(page, "values_per_second")
    _plot(page, "values_per_second").screenshot(path=str(shots / "07_plot_by_partition.png"))
    drawn = {x: y for x, y in zip(by_partition["x"], by_partition["y"], strict=True) if y == y}  # not NaN
    assert sorted(drawn) == sorted(PARTITIONS), by_partition
    assert all(rate > 0 for rate in drawn.values()), drawn
    page.get_by_role("button", name="Events").click()
    over_time = _charts(page, "table_rows")
    _plot(page, "table_rows").screenshot(path=str(shots / "08_plot_over_time.png"))
    assert [rows for rows in over_time["y"] if rows == rows and rows > 0], over_time


def _charts(page: Page, label: str) -> dict:
    """The data of the metadata plot named ``label``, once it is drawn."""
    page.locator("canvas").first.wait_for()
    found: dict = {}

    def drawn() -> bool:
        charts = page.locator("canvas").evaluate_all(CHARTS_JS)
        found.update(next((chart for chart in charts if chart and chart["label"] == label), {}))
        return bool(found)

    deadline = time.monotonic() + STEP_MS / 1000
    while not drawn():
        assert time.monotonic() < deadline, f"no plot of {label} on {page.url}"
        page.wait_for_timeout(500)
    return found


def _plot(page: Page, label: str) -> Locator:
    """The box of the metadata plot named ``label``: its title and its canvas."""
    titled = page.locator("div").filter(has=page.get_by_text(label, exact=True))
    return titled.filter(has=page.locator("canvas")).last


@contextmanager
def _kept_on_failure(shots: Path) -> Iterator[None]:
    """On failure, copy the screenshots where CI keeps artefacts (`test-artifacts/browser/`)."""
    try:
        yield
    except BaseException:
        if ARTIFACTS.exists():
            shutil.rmtree(ARTIFACTS)
        shutil.copytree(shots, ARTIFACTS)
        raise
