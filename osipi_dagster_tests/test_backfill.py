"""A multi-date, multi-shard backfill of ``pi_timeseries`` through Dagster's own backfill machinery.

Everything runs as a user runs it: the mock PI Web API and ``dagster dev -w workspace.yaml`` are real
subprocesses on loopback, with a fresh ``DAGSTER_HOME`` holding the project's ``dagster.yaml``. The test
materializes the AF and catalog assets with ``launchRun`` (the Materialize button), launches the backfill
with ``launchPartitionBackfill`` (the UI's backfill dialog), lets the daemon run it, and checks the
instance, the runs and the Delta table against counts read independently from the mock.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import date, timedelta
from pathlib import Path
from typing import TypeVar

import pytest
import requests
from deltalake import DeltaTable

from osipi_dagster.ingest.shards import shard_of
from osipi_dagster.mock.server import free_port
from osipi_dagster_tests.dagster_ui import DagsterUI

T = TypeVar("T")
SliceCounts = dict[tuple[str, str, str], int]  # (partition date, tag shard, point WebId) -> values

REPO = Path(__file__).resolve().parents[1]
DAGSTER = str(Path(sys.executable).with_name("dagster"))  # the venv's CLI, next to its python
MOCK_NOW = "2025-01-06T12:00:00Z"  # fixed, so the backfilled days are closed and their values final
MOCK_TAGS = 100
SHARDS = [f"s{index:02d}" for index in range(4)]
DATES = ["2025-01-04", "2025-01-05"]
PARTITIONS = [f"{day}|{shard}" for day in DATES for shard in SHARDS]
MAX_COUNT = 150_000  # the mock's MaxReturnedItemsPerCall: one request must hold a point's whole day


@pytest.mark.slow
def test_backfill_through_the_daemon_writes_exactly_the_selected_slices(tmp_path: Path) -> None:
    """2 dates x 4 shards launched as one backfill: every partition materialized by backfill runs, and
    the Delta table holds exactly those slices with the mock's value count for every point."""
    lake = tmp_path / "lake"
    with _mock_pi(tmp_path) as pi_api, _dagster_dev(tmp_path, pi_api, lake) as ui:
        location = ui.location()  # fails with Dagster's own error if the code location did not load
        ui.wait_run(ui.materialize(location, ["pi_af_hierarchy", "pi_af_attributes", "pi_points"]), 120)

        backfill_id = ui.launch_backfill("pi_timeseries", PARTITIONS, {"osipi/test": "backfill"})
        truth = _mock_counts(pi_api)  # read while the daemon sleeps before its first backfill tick
        backfill = ui.wait_backfill(backfill_id, timeout_s=240)
        run_ids = {run["runId"] for run in backfill["runs"]}
        errors = {run_id: ui.run_errors(run_id) for run_id in run_ids}
        assert backfill["status"] == "COMPLETED_SUCCESS", (backfill, errors)
        assert sorted(backfill["partitionNames"]) == sorted(PARTITIONS)
        assert 0 < len(run_ids) < len(PARTITIONS), "the backfill policy batches partitions into runs"
        for run in backfill["runs"]:
            tags = {tag["key"]: tag["value"] for tag in run["tags"]}
            assert run["status"] == "SUCCESS", (run, errors[run["runId"]])
            assert tags["dagster/backfill"] == backfill_id
            assert tags["osipi/test"] == "backfill"

        materializations = ui.materializations("pi_timeseries", PARTITIONS)
        assert sorted(m["partition"] for m in materializations) == sorted(PARTITIONS)
        assert {m["runId"] for m in materializations} <= run_ids
    assert {(day, shard) for day, shard, _ in truth} == {tuple(p.split("|")) for p in PARTITIONS}
    assert _table_counts(lake / "bronze" / "pi_timeseries") == truth


def _table_counts(path: Path) -> SliceCounts:
    """Rows of the Delta table per (partition date, tag shard, point)."""
    rows = DeltaTable(str(path)).to_pyarrow_table(columns=["partition_date", "tag_shard", "web_id"])
    counts = rows.group_by(["partition_date", "tag_shard", "web_id"]).aggregate([([], "count_all")])
    return {
        (str(row["partition_date"]), row["tag_shard"], row["web_id"]): row["count_all"]
        for row in counts.to_pylist()
    }


def _mock_counts(api: str) -> SliceCounts:
    """The mock's recorded values per (day, shard, point), read with plain HTTP requests, one per point
    and day: every value stamped inside ``[day, day + 1)``, sharded by the data server's id and point id."""
    with requests.Session() as session:
        server = session.get(f"{api}/dataservers", timeout=30).json()["Items"][0]
        points = session.get(
            server["Links"]["Points"],
            params={"maxCount": "10000", "selectedFields": "Items.WebId;Items.Id"},
            timeout=30,
        ).json()["Items"]
        assert len(points) == MOCK_TAGS
        counts: SliceCounts = {}
        for point in points:
            shard = shard_of(f"{server['Id']}:{point['Id']}", len(SHARDS))
            for day in DATES:
                end = date.fromisoformat(day) + timedelta(days=1)
                answer = session.get(
                    f"{api}/streams/{point['WebId']}/recorded",
                    params={
                        "startTime": f"{day}T00:00:00Z",
                        "endTime": f"{end.isoformat()}T00:00:00Z",
                        "maxCount": str(MAX_COUNT),
                        "selectedFields": "Items.Timestamp",
                    },
                    timeout=60,
                )
                answer.raise_for_status()
                items = answer.json()["Items"]
                assert len(items) < MAX_COUNT, "a truncated answer would undercount"
                in_day = sum(item["Timestamp"].startswith(day) for item in items)
                if in_day:
                    counts[(day, shard, point["WebId"])] = in_day
    return counts


@contextmanager
def _mock_pi(tmp_path: Path) -> Iterator[str]:
    """The mock PI Web API as a subprocess on a free loopback port; its API root URL."""
    log = tmp_path / "mock.log"
    args = [sys.executable, "-m", "osipi_dagster.mock", "--host", "127.0.0.1", "--port", "0"]
    args += ["--tags", str(MOCK_TAGS), "--now", MOCK_NOW]
    with _subprocess(args, dict(os.environ), log) as process:

        def announced() -> str | None:
            found = re.search(r"listening on (http://\S+/piwebapi)", log.read_text())
            return found.group(1) if found else None

        yield _wait_for(announced, "the mock PI Web API", process, log, timeout_s=60)


@contextmanager
def _dagster_dev(tmp_path: Path, pi_api: str, lake: Path) -> Iterator[DagsterUI]:
    """``dagster dev -w workspace.yaml`` on a free loopback port with a fresh instance; its client."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    env = {key: value for key, value in os.environ.items() if not key.startswith(("OSIPI_", "DAGSTER_"))}
    env |= {
        "DAGSTER_HOME": str(home),
        "OSIPI_PI_BASE_URL": pi_api,
        "OSIPI_LAKE_ROOT": str(lake),
        "OSIPI_TAG_SHARDS": str(len(SHARDS)),
    }
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "dagster_dev.log"
    args = [DAGSTER, "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)]
    with _subprocess(args, env, log) as process:

        def serving() -> bool:
            with suppress(requests.ConnectionError):
                return requests.get(f"{url}/server_info", timeout=5).ok
            return False

        _wait_for(serving, "dagster dev", process, log, timeout_s=120)
        yield DagsterUI(url)


@contextmanager
def _subprocess(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    """Run ``args`` from the repository root in its own process group, output to ``log``; on exit, stop
    the whole group: SIGINT (``dagster dev`` then shuts its children down), then SIGKILL stragglers.

    If pytest itself ignores SIGINT (a shell's background job), the child would inherit that and ignore
    SIGINT and SIGTERM; a handler held while it starts gives it the default disposition instead."""
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with log.open("wb") as out:
            process = subprocess.Popen(
                args, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
    finally:
        signal.signal(signal.SIGINT, inherited)
    try:
        yield process
    finally:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGINT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and _group_alive(process):
            time.sleep(0.2)
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _group_alive(process: subprocess.Popen) -> bool:
    """Whether any process of ``process``'s group is still alive (the leader is reaped once it exits)."""
    process.poll()
    try:
        os.killpg(process.pid, 0)
    except ProcessLookupError:
        return False
    return True


def _wait_for(
    check: Callable[[], T | None], what: str, process: subprocess.Popen, log: Path, timeout_s: float
) -> T:
    """The first truthy ``check()``; fails with the log's tail if ``process`` exits or time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{what} exited with status {process.returncode}:\n{log.read_text()[-5000:]}")
        result = check()
        if result:
            return result
        time.sleep(0.25)
    pytest.fail(f"{what} was not ready after {timeout_s:.0f} s:\n{log.read_text()[-5000:]}")
