"""``bronze.pi_timeseries_live`` on real Delta tables: micro-batches committed exactly once (transaction
identifiers), concurrent writers retried, identities, and the query surface preferring closed batch days."""

from __future__ import annotations

import threading
from datetime import date
from pathlib import Path

import pyarrow as pa

from osipi_dagster.contract import RECORDED_SCHEMA, to_ns
from osipi_dagster.lake import Lakehouse
from osipi_dagster.lake.live import (
    STREAM_ROWS_SCHEMA,
    append_batch,
    committed_version,
    compact_days,
    identities,
    lake_rows,
    last_timestamps,
    read_values,
    unseen,
    with_identity,
)
from osipi_dagster.lake.schemas import LIVE_TIMESERIES, TIMESERIES
from osipi_dagster.lake.timeseries import replace_slice

DAY1 = "2025-01-05T10:00:00Z"
DAY2 = "2025-01-06T10:00:00Z"


def _values(web_id: str, stamps: list[str], values: list[float]) -> pa.Table:
    n = len(stamps)
    columns = {
        "web_id": [web_id] * n,
        "timestamp": [to_ns(s) for s in stamps],
        "value": values,
        "string_value": [None] * n,
        "state_code": [None] * n,
        "state_name": [None] * n,
        "is_system": [False] * n,
        "good": [True] * n,
        "questionable": [False] * n,
        "substituted": [False] * n,
        "annotated": [False] * n,
        "units": ["m"] * n,
    }
    table = pa.table(columns)
    return pa.Table.from_arrays(
        [table.column(field.name).cast(field.type) for field in RECORDED_SCHEMA],
        schema=RECORDED_SCHEMA,
    )


def _stream_rows(recorded: pa.Table) -> pa.Table:
    field = STREAM_ROWS_SCHEMA.field("received_at")
    received = pa.array([to_ns(DAY2)] * recorded.num_rows, pa.int64()).cast(field.type)
    return recorded.append_column(field, received)


def test_a_batch_is_committed_once_and_numbering_resumes(tmp_path: Path) -> None:
    table = Lakehouse(str(tmp_path)).table(LIVE_TIMESERIES.name)
    rows = lake_rows(_stream_rows(_values("A", [DAY1, DAY2], [1.0, 2.0])), 1)
    assert committed_version(table, "s1") is None
    assert append_batch(table, rows, "s1", 1) is True
    assert append_batch(table, rows, "s1", 1) is False  # a retry of a committed batch writes nothing
    assert committed_version(table, "s1") == 1
    assert committed_version(table, "other") is None
    assert table.load().to_pyarrow_dataset().count_rows() == 2
    assert {p["partition_date"] for p in table.load().partitions()} == {"2025-01-05", "2025-01-06"}
    assert last_timestamps(table, 0) == {"A": to_ns(DAY2)}


def test_concurrent_writers_all_land(tmp_path: Path) -> None:
    table = Lakehouse(str(tmp_path)).table(LIVE_TIMESERIES.name)
    errors: list[BaseException] = []

    def write(writer: int) -> None:
        try:
            for version in range(1, 6):
                stamp = f"2025-01-06T10:00:{writer * 10 + version:02d}Z"
                rows = lake_rows(_stream_rows(_values(f"W{writer}", [stamp], [1.0])), version)
                append_batch(table, rows, f"w{writer}", version)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert table.load().to_pyarrow_dataset().count_rows() == 20
    assert [committed_version(table, f"w{n}") for n in range(4)] == [5, 5, 5, 5]


def test_compaction_keeps_rows_and_batch_numbers_while_a_writer_commits(tmp_path: Path) -> None:
    table = Lakehouse(str(tmp_path)).table(LIVE_TIMESERIES.name)
    for version in range(1, 7):
        stamp = f"2025-01-06T10:00:{version:02d}Z"
        append_batch(
            table, lake_rows(_stream_rows(_values("A", [stamp], [float(version)])), version), "s", version
        )
    before = table.load().to_pyarrow_dataset().to_table().sort_by("timestamp_ns")
    errors: list[BaseException] = []

    def write_more() -> None:  # micro-batches committed while the compaction runs
        try:
            for version in range(7, 12):
                stamp = f"2025-01-06T10:00:{version:02d}Z"
                rows = lake_rows(_stream_rows(_values("A", [stamp], [float(version)])), version)
                append_batch(table, rows, "s", version)
        except BaseException as exc:
            errors.append(exc)

    writer = threading.Thread(target=write_more)
    writer.start()
    metrics = compact_days(table, {date(2025, 1, 6)})
    writer.join()
    assert errors == []
    assert metrics["numFilesRemoved"] >= 6 and metrics["numFilesAdded"] >= 1
    after = table.load()
    rows = after.to_pyarrow_dataset().to_table().sort_by("timestamp_ns")
    assert rows.slice(0, 6).equals(before)
    assert rows.column("batch_version").to_pylist() == list(range(1, 12))
    assert committed_version(table, "s") == 11
    assert len(after.file_uris()) < 11
    assert append_batch(table, lake_rows(_stream_rows(_values("A", [DAY2], [9.0])), 11), "s", 11) is False


def test_unseen_drops_known_and_repeated_identities(tmp_path: Path) -> None:
    table = Lakehouse(str(tmp_path)).table(LIVE_TIMESERIES.name)
    first = _values("A", [DAY2, "2025-01-06T10:00:01Z"], [1.0, 2.0])
    append_batch(table, lake_rows(_stream_rows(first), 1), "s", 1)
    seen = identities(table, to_ns(DAY1))
    assert seen.num_rows == 2
    # Again the two committed values, a second value at an existing timestamp, and one value twice.
    later = "2025-01-06T10:00:02Z"
    batch = _values("A", [DAY2, "2025-01-06T10:00:01Z", DAY2, later, later], [1.0, 2.0, 9.0, 3.0, 3.0])
    rows = with_identity(batch.append_column("timestamp_ns", batch.column("timestamp").cast(pa.int64())))
    fresh = unseen(rows, seen)
    assert sorted(zip(fresh["timestamp_ns"].to_pylist(), fresh["value"].to_pylist(), strict=True)) == [
        (to_ns(DAY2), 9.0),
        (to_ns(later), 3.0),
    ]


def test_query_surface_prefers_batch_rows_for_closed_days(tmp_path: Path) -> None:
    lake = Lakehouse(str(tmp_path))
    live, batch = lake.table(LIVE_TIMESERIES.name), lake.table(TIMESERIES.name)
    streamed = _values("A", [DAY1, DAY2], [1.0, 2.0])
    append_batch(live, lake_rows(_stream_rows(streamed), 1), "s", 1)
    start, end = to_ns("2025-01-05T00:00:00Z"), to_ns("2025-01-07T00:00:00Z")
    before = read_values(batch, live, start, end, today=date(2025, 1, 6))
    assert before["source"].to_pylist() == ["live", "live"]
    # The closed-day run writes day 1 from the archive (here: a corrected value).
    archive = _values("A", [DAY1], [1.5])
    replace_slice(batch, archive.to_batches(), partition_date="2025-01-05", tag_shard="s00")
    after = read_values(batch, live, start, end, today=date(2025, 1, 6))
    assert after["value"].to_pylist() == [1.5, 2.0]
    assert after["source"].to_pylist() == ["batch", "live"]
    # Today stays live even if a batch run wrote part of it.
    replace_slice(
        batch, _values("A", [DAY2], [7.0]).to_batches(), partition_date="2025-01-06", tag_shard="s00"
    )
    today = read_values(batch, live, start, end, today=date(2025, 1, 6))
    assert today["source"].to_pylist() == ["batch", "live"]  # today's 7.0 is not read
    assert today["value"].to_pylist() == [1.5, 2.0]
