"""``ingest_partition`` against the mock PI Web API over real HTTP, into real Delta tables.

Every check compares the Delta slice with an independent read of the mock (``timeseries_helpers.truth``:
plain ``requests`` + ``json``, mapped by hand) as multisets of rows, so a missing value, a duplicate or a
changed flag or timestamp fails the test. Crashes are real processes killed with SIGKILL
(``osipi_dagster_tests.crash_driver``).
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
import requests

from osipi_dagster.ingest.timeseries import (
    PartitionResult,
    PointReadError,
    _expected_counts,
    ingest_partition,
)
from osipi_dagster.lake import (
    Lakehouse,
    Watermark,
    read_slice,
    read_watermarks,
    replace_slice,
    row_count,
    write_watermarks,
)
from osipi_dagster.mock.server import RunningMock
from osipi_dagster.pi import PIWebAPIClient
from osipi_dagster.pi.options import ReadOptions
from osipi_dagster_tests.conftest import TEST_NOW
from osipi_dagster_tests.lake_helpers import hourly
from osipi_dagster_tests.pi_helpers import Row
from osipi_dagster_tests.timeseries_helpers import (
    SECOND_NS,
    assert_same_rows,
    build_catalog,
    catchable_late_value,
    day_start_ns,
    kinds_of,
    lake_rows,
    moment_of,
    ns_of,
    set_clock,
    shard_web_ids,
    sorted_slice,
    truth,
)

REPO = Path(__file__).resolve().parents[1]
NOW = datetime.fromisoformat(TEST_NOW.replace("Z", "+00:00"))
CLOSED_DAY = date(2025, 1, 5)
OPEN_DAY = date(2025, 1, 6)
# On the shared mock's catalog, shard s02 holds a point with several values at one timestamp, digital and
# string points and sub-second (7-digit) timestamps, and few 1 s points, so its day is small (75,000 rows).
SHARD = "s02"
OVERLAP = timedelta(hours=1)
HOUR_NS = 3600 * SECOND_NS
FAST = ReadOptions(values_per_request=50_000)
NEIGHBOURS = ((CLOSED_DAY - timedelta(days=1), SHARD), (CLOSED_DAY, "s00"))


@pytest.fixture(scope="module")
def closed_truth(mock_pi: RunningMock, tmp_path_factory: pytest.TempPathFactory) -> Counter[Row]:
    """The shared mock's values of SHARD's points over CLOSED_DAY (read once for the module)."""
    lake = Lakehouse(str(tmp_path_factory.mktemp("catalog")))
    build_catalog(mock_pi.api, lake, NOW)
    start = day_start_ns(CLOSED_DAY)
    return truth(mock_pi.api, shard_web_ids(lake, SHARD), start, start + 86_400 * SECOND_NS)


@pytest.fixture
def lake(tmp_path: Path) -> Lakehouse:
    return Lakehouse(str(tmp_path / "lake"))


@pytest.fixture
def client(mock_pi: RunningMock) -> Iterator[PIWebAPIClient]:
    with PIWebAPIClient(mock_pi.api, backoff_base_s=0.01) as client:
        yield client


def run(
    client: PIWebAPIClient,
    lake: Lakehouse,
    day: date,
    shard: str,
    now: datetime,
    settings: ReadOptions = FAST,
) -> PartitionResult:
    return ingest_partition(
        client,
        timeseries=lake.table("bronze.pi_timeseries"),
        watermarks=lake.table("checkpoints.pi_watermarks"),
        web_ids=shard_web_ids(lake, shard),
        day=day,
        shard=shard,
        now=now,
        overlap=OVERLAP,
        settings=settings,
        run_id="test",
    )


def crash_driver(mock: RunningMock, lake: Lakehouse, day: date, shard: str, *args: str) -> str:
    """Run the partition in a real process that SIGKILLs itself where ``args`` say; its stdout."""
    command = [sys.executable, "-m", "osipi_dagster_tests.crash_driver", "--api", mock.api]
    command += ["--root", lake.root, "--day", day.isoformat(), "--shard", shard]
    command += ["--web-ids", ",".join(shard_web_ids(lake, shard)), *args]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == -signal.SIGKILL, f"the driver was not killed: {done.stdout}\n{done.stderr}"
    return done.stdout


def data_files_on_disk(lake: Lakehouse) -> set[str]:
    root = Path(lake.root) / "bronze" / "pi_timeseries"
    return {str(path.relative_to(root)) for path in root.rglob("*.parquet")}


def data_files_committed(lake: Lakehouse) -> set[str]:
    table = lake.table("bronze.pi_timeseries")
    return {str(Path(uri).relative_to(table.uri)) for uri in table.load().file_uris()}


# -- exactness and idempotency of a closed day ----------------------------------------------------------


def test_a_closed_day_equals_the_mock_exactly(
    mock_pi: RunningMock, client: PIWebAPIClient, lake: Lakehouse, closed_truth: Counter[Row]
) -> None:
    """A closed (date, shard) partition holds exactly the mock's values of its points over the UTC day:
    the same count and the same rows, with several values at one timestamp, system states (code, name,
    Good false), digital and string values, flags, and sub-second timestamps down to 100 ns."""
    build_catalog(mock_pi.api, lake, NOW)

    result = run(client, lake, CLOSED_DAY, SHARD, NOW)

    got = lake_rows(lake.table("bronze.pi_timeseries"), CLOSED_DAY, SHARD)
    assert_same_rows(got, closed_truth)
    assert result.rows == sum(closed_truth.values()) == row_count(lake.table("bronze.pi_timeseries"))
    assert not result.incremental
    assert (result.window_start, result.window_end) == (
        datetime(2025, 1, 5, tzinfo=UTC),
        datetime(2025, 1, 6, tzinfo=UTC),
    )
    needed = {"multi", "system", "digital", "string", "subsecond", "subsecond-7-digits", "questionable"}
    assert needed <= kinds_of(got), f"the compared data lack {needed - kinds_of(got)}"
    assert any(row[1] == day_start_ns(CLOSED_DAY) for row in got), "no value at midnight: bound untested"
    # A closed day's watermark is the day's end, for every point.
    marks = read_watermarks(lake.table("checkpoints.pi_watermarks"), SHARD)
    assert set(marks) == set(shard_web_ids(lake, SHARD))
    assert {m.read_until for m in marks.values()} == {datetime(2025, 1, 6, tzinfo=UTC)}
    # Each point's count (the next read's plan) is what the lake holds of it.
    per_point = Counter(row[0] for row in got.elements())
    assert {web_id: mark.values_read for web_id, mark in marks.items()} == {
        web_id: per_point[web_id] for web_id in marks
    }


def test_the_same_closed_partition_twice_gives_identical_contents(
    mock_pi: RunningMock, client: PIWebAPIClient, lake: Lakehouse, closed_truth: Counter[Row]
) -> None:
    """Materializing a partition again replaces its slice: identical sorted rows (every column but
    ``ingested_at``), not appended ones, and no other slice is touched."""
    build_catalog(mock_pi.api, lake, NOW)
    table = lake.table("bronze.pi_timeseries")
    neighbours = _write_neighbours(lake)

    first = run(client, lake, CLOSED_DAY, SHARD, NOW)
    once = sorted_slice(table, CLOSED_DAY, SHARD)
    # Smaller requests cut the stream into other batches: the contents must not depend on that.
    second = run(client, lake, CLOSED_DAY, SHARD, NOW, settings=ReadOptions(values_per_request=20_000))
    twice = sorted_slice(table, CLOSED_DAY, SHARD)

    assert twice == once
    assert once.num_rows == sum(closed_truth.values()) == first.rows == second.rows
    assert first.write and second.write and second.write.version == first.write.version + 1
    assert second.write.files_removed >= 1
    assert _neighbours(lake) == neighbours
    assert row_count(table) == once.num_rows + sum(t.num_rows for t in neighbours.values())


def _write_neighbours(lake: Lakehouse) -> dict[tuple[date, str], pa.Table]:
    """Small slices next to (CLOSED_DAY, SHARD): the day before in SHARD, and CLOSED_DAY in s00."""
    for day, shard in NEIGHBOURS:
        replace_slice(lake.table("bronze.pi_timeseries"), [hourly(["X", "Y"], day=day)], partition_date=day,
                      tag_shard=shard)  # fmt: skip
    return _neighbours(lake)


def _neighbours(lake: Lakehouse) -> dict[tuple[date, str], pa.Table]:
    return {
        (day, shard): sorted_slice(lake.table("bronze.pi_timeseries"), day, shard)
        for day, shard in NEIGHBOURS
    }


# -- the open day -----------------------------------------------------------------------------------------


def test_overlapping_open_day_runs_pick_up_late_values_without_duplicates(make_mock, tmp_path: Path) -> None:
    """Two incremental runs of today, the clock moved between them: the second re-reads the overlap
    window, so a value that reached PI late (invisible at the first run, stamped before it) is in Delta
    afterwards; the slice equals the mock's values over [day start, now) with no duplicate; rows before
    the overlap window are not rewritten; every watermark is the end of the window read."""
    mock = make_mock()
    lake = Lakehouse(str(tmp_path / "lake"))
    build_catalog(mock.api, lake, NOW)
    day_start = day_start_ns(OPEN_DAY)
    shard, plan = catchable_late_value(mock, lake, OPEN_DAY, OVERLAP)
    web_ids = shard_web_ids(lake, shard)
    table = lake.table("bronze.pi_timeseries")
    late = plan.caught[0]

    with PIWebAPIClient(mock.api, backoff_base_s=0.01) as client:
        set_clock(mock, plan.first)
        first = run(client, lake, OPEN_DAY, shard, moment_of(plan.first))
        assert (ns_of(first.window_start), ns_of(first.window_end)) == (day_start, plan.first)
        assert_same_rows(lake_rows(table, OPEN_DAY, shard), truth(mock.api, web_ids, day_start, plan.first))
        assert not _rows_at(lake_rows(table, OPEN_DAY, shard), late), "the late value was visible already"
        before_overlap = moment_of(plan.first) - OVERLAP
        kept = read_slice(table, OPEN_DAY, shard, time_range=(moment_of(day_start), before_overlap))

        set_clock(mock, plan.second)
        second = run(client, lake, OPEN_DAY, shard, moment_of(plan.second))

    assert second.incremental
    assert (second.window_start, ns_of(second.window_end)) == (before_overlap, plan.second)
    got = lake_rows(table, OPEN_DAY, shard)
    assert_same_rows(got, truth(mock.api, web_ids, day_start, plan.second))
    for value in plan.caught:
        assert _rows_at(got, value), f"late value {value} is missing"
    assert late.stamp < plan.first < late.arrival <= plan.second
    # Measured as late: present on the second read, absent from the first read of the same range.
    lateness = second.lateness
    assert (lateness.late_values, lateness.removed_values, lateness.exact) == (len(plan.caught), 0, True)
    oldest = min(value.stamp for value in plan.caught)
    assert lateness.max_s == pytest.approx((plan.second - oldest) / 1e9)
    assert first.lateness.late_values == 0
    # The second run replaced only its window: the rows before it are the first run's, untouched.
    assert read_slice(table, OPEN_DAY, shard, time_range=(moment_of(day_start), before_overlap)).equals(kept)
    marks = read_watermarks(lake.table("checkpoints.pi_watermarks"), shard)
    assert set(marks) == set(web_ids)
    assert {(m.read_until, m.window_start) for m in marks.values()} == {
        (moment_of(plan.second), before_overlap)
    }
    assert sum(m.values_read for m in marks.values()) == second.rows


def _rows_at(rows: Counter[Row], value) -> list[Row]:
    return [row for row in rows if row[0] == value.web_id and row[1] == value.stamp]


# -- crashes ------------------------------------------------------------------------------------------------


def test_a_crash_between_the_data_commit_and_the_watermarks_only_causes_a_re_read(
    make_mock, tmp_path: Path
) -> None:
    """SIGKILL after the data commit and before the watermark write (a real process): the table is
    readable and holds the committed run's exact data, the watermarks still say where the last complete
    run ended, and the next run re-reads from there: exact data, no duplicates, watermarks moved on."""
    mock = make_mock(late_share=0.0)
    lake = Lakehouse(str(tmp_path / "lake"))
    build_catalog(mock.api, lake, NOW)
    web_ids = shard_web_ids(lake, SHARD)
    table, marks_table = lake.table("bronze.pi_timeseries"), lake.table("checkpoints.pi_watermarks")
    day_start = day_start_ns(OPEN_DAY)
    t0, t1, t2 = (day_start + hours * HOUR_NS for hours in (6, 9, 10))

    with PIWebAPIClient(mock.api, backoff_base_s=0.01) as client:
        set_clock(mock, t0)
        run(client, lake, OPEN_DAY, SHARD, moment_of(t0))
        version = table.version()

        set_clock(mock, t1)
        output = crash_driver(mock, lake, OPEN_DAY, SHARD, "--crash", "after-data-commit")
        assert "SIGKILL after-data-commit" in output
        assert table.version() == version + 1, "the data commit did not happen before the crash"
        assert_same_rows(lake_rows(table, OPEN_DAY, SHARD), truth(mock.api, web_ids, day_start, t1))
        assert {m.read_until for m in read_watermarks(marks_table, SHARD).values()} == {moment_of(t0)}

        set_clock(mock, t2)
        again = run(client, lake, OPEN_DAY, SHARD, moment_of(t2))

    assert ns_of(again.window_start) == t0 - HOUR_NS, "the re-run did not start from the old watermark"
    assert_same_rows(lake_rows(table, OPEN_DAY, SHARD), truth(mock.api, web_ids, day_start, t2))
    assert {m.read_until for m in read_watermarks(marks_table, SHARD).values()} == {moment_of(t2)}


def test_a_crash_in_the_middle_of_the_stream_leaves_nothing_visible(
    mock_pi: RunningMock, client: PIWebAPIClient, lake: Lakehouse, closed_truth: Counter[Row]
) -> None:
    """SIGKILL while the batches stream into the Delta commit (a real process, with parquet files already
    on disk): the table stays readable at the same version with the same contents (nothing half-visible,
    the written files are unreferenced), no watermark moves, and a re-run gives exact data."""
    build_catalog(mock_pi.api, lake, NOW)
    table = lake.table("bronze.pi_timeseries")
    run(client, lake, CLOSED_DAY, SHARD, NOW)
    version, before = table.version(), sorted_slice(table, CLOSED_DAY, SHARD)
    marks = read_watermarks(lake.table("checkpoints.pi_watermarks"), SHARD)
    committed = data_files_committed(lake)

    output = crash_driver(
        mock_pi, lake, CLOSED_DAY, SHARD, "--crash", "mid-stream", "--after-batches", "17",
        "--values-per-request", "4000", "--small-files",
    )  # fmt: skip

    streamed = sum(int(line.split()[1]) for line in output.splitlines() if line.startswith("batch "))
    assert "SIGKILL mid-stream" in output and 0 < streamed < sum(closed_truth.values())
    assert data_files_on_disk(lake) - committed, "no file was written before the crash: nothing tested"
    assert table.version() == version
    assert data_files_committed(lake) == committed
    assert sorted_slice(table, CLOSED_DAY, SHARD) == before
    assert read_watermarks(lake.table("checkpoints.pi_watermarks"), SHARD) == marks

    run(client, lake, CLOSED_DAY, SHARD, NOW)
    assert_same_rows(lake_rows(table, CLOSED_DAY, SHARD), closed_truth)


def test_a_crash_in_the_middle_of_the_first_stream_leaves_the_slice_empty(
    mock_pi: RunningMock, client: PIWebAPIClient, lake: Lakehouse, closed_truth: Counter[Row]
) -> None:
    """SIGKILL mid-stream on a partition never written before: the slice stays empty (readable, no rows),
    no watermark exists, and a re-run fills it exactly."""
    build_catalog(mock_pi.api, lake, NOW)
    table = lake.table("bronze.pi_timeseries")

    output = crash_driver(
        mock_pi, lake, CLOSED_DAY, SHARD, "--crash", "mid-stream", "--after-batches", "2",
        "--values-per-request", "4000",
    )  # fmt: skip

    assert "SIGKILL mid-stream" in output
    assert table.version() in (None, 0)
    if table.exists():
        assert row_count(table) == 0 and lake_rows(table, CLOSED_DAY, SHARD) == Counter()
    assert read_watermarks(lake.table("checkpoints.pi_watermarks"), SHARD) == {}

    run(client, lake, CLOSED_DAY, SHARD, NOW)
    assert_same_rows(lake_rows(table, CLOSED_DAY, SHARD), closed_truth)


# -- failures -----------------------------------------------------------------------------------------------


def test_points_that_fail_for_good_fail_the_partition_and_commit_nothing(
    make_mock, tmp_path: Path, closed_truth: Counter[Row]
) -> None:
    """With every value answered with ``Errors`` (mock fault ``value_error_rate``), the points fail for
    good: ``PointReadError`` lists them, the slice is not written (table version unchanged, no rows, no
    watermark); once the fault is cleared a re-run fills the partition exactly."""
    mock = make_mock()
    lake = Lakehouse(str(tmp_path / "lake"))
    build_catalog(mock.api, lake, NOW)
    web_ids = shard_web_ids(lake, SHARD)
    table = lake.table("bronze.pi_timeseries")
    with PIWebAPIClient(mock.api, backoff_base_s=0.01, max_retries=1) as client:
        neighbours = _write_neighbours(lake)  # the table exists and has a version
        version = table.version()
        _put_faults(mock, value_error_rate=1.0)

        with pytest.raises(PointReadError) as raised:
            run(client, lake, CLOSED_DAY, SHARD, NOW)

        assert sorted(f.web_id for f in raised.value.failures) == web_ids
        assert "Nothing was written" in str(raised.value)
        assert table.version() == version
        assert lake_rows(table, CLOSED_DAY, SHARD) == Counter()
        assert _neighbours(lake) == neighbours
        assert read_watermarks(lake.table("checkpoints.pi_watermarks"), SHARD) == {}

        _put_faults(mock)
        run(client, lake, CLOSED_DAY, SHARD, NOW)

    assert_same_rows(lake_rows(table, CLOSED_DAY, SHARD), closed_truth)
    assert {
        m.read_until for m in read_watermarks(lake.table("checkpoints.pi_watermarks"), SHARD).values()
    } == {datetime(2025, 1, 6, tzinfo=UTC)}


def _put_faults(mock: RunningMock, **faults: float) -> None:
    answer = requests.put(f"{mock.url}/admin/faults", json=faults, timeout=10)
    answer.raise_for_status()


def test_the_day_that_has_not_begun_writes_nothing(client: PIWebAPIClient, lake: Lakehouse, mock_pi) -> None:
    """A partition after the PI server's today reads and writes nothing (no table, no watermark)."""
    build_catalog(mock_pi.api, lake, NOW)
    result = run(client, lake, OPEN_DAY + timedelta(days=1), SHARD, NOW)
    assert result.write is None and result.rows == 0
    assert not lake.table("bronze.pi_timeseries").exists()
    assert not lake.table("checkpoints.pi_watermarks").exists()


class _RecordingClient:
    """Stands in for the PI client: records what it is asked to read and returns no value."""

    def __init__(self) -> None:
        self.starts: list[datetime] = []

    def read_recorded(self, web_ids, start, end, **_):
        self.starts.append(start)
        return _EmptyRead()


class _EmptyRead:
    failures: list = []
    requests = 0

    def __iter__(self):
        return iter(())


def test_a_negative_overlap_is_refused_instead_of_skipping_values_after_the_watermark(tmp_path: Path) -> None:
    """A negative overlap would start the open day's read *after* the watermark, skip the values between
    them and then move the watermark past them: a silent gap. It must be refused before anything is read."""
    lake = Lakehouse(str(tmp_path))
    marks = lake.table("checkpoints.pi_watermarks")
    watermark = NOW - timedelta(hours=2)
    write_watermarks(marks, "s00", [Watermark("A", read_until=watermark)])
    client = _RecordingClient()

    with pytest.raises(ValueError, match="overlap"):
        ingest_partition(
            client,  # type: ignore[arg-type]
            timeseries=lake.table("bronze.pi_timeseries"),
            watermarks=marks,
            web_ids=["A"],
            day=OPEN_DAY,
            shard="s00",
            now=NOW,
            overlap=timedelta(minutes=-30),
        )

    assert client.starts == []
    assert read_watermarks(marks, "s00")["A"].read_until == watermark


def test_the_last_window_s_density_plans_the_next_read():
    """The client sizes its first pages from each point's last window, scaled to the new window; a point
    without a usable watermark is left to the client to learn."""
    start = datetime(2025, 1, 6, 10, tzinfo=UTC)
    known = {
        "dense": Watermark(
            "dense", read_until=start, window_start=start - timedelta(hours=2), values_read=7200
        ),
        "no_window": Watermark("no_window", read_until=start, values_read=10),
        "empty_window": Watermark("empty_window", read_until=start, window_start=start, values_read=10),
    }
    expected = _expected_counts(
        known, ["dense", "no_window", "empty_window", "new"], start, start + timedelta(hours=1)
    )
    assert expected == {"dense": 3600.0}
