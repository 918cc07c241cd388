"""replace_slice on real Delta tables: idempotency, isolation, exactness, and nothing half-written."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from deltalake import write_deltalake

import osipi_dagster.lake.timeseries as lake_timeseries
from osipi_dagster.lake import (
    ConcurrentWriteError,
    InvalidRowsError,
    Lakehouse,
    LakeTable,
    read_slice,
    replace_slice,
    row_count,
)
from osipi_dagster.lake.partitions import scan_partition
from osipi_dagster.lake.streaming import ParquetLayout
from osipi_dagster.lake.tables import ensure_table
from osipi_dagster_tests.lake_helpers import DAY, NEXT_DAY, SECOND, at, contents, dense, hourly, recorded


@pytest.fixture
def table(tmp_path: Path) -> LakeTable:
    return Lakehouse(str(tmp_path / "lake")).table("bronze.pi_timeseries")


def test_replacing_a_slice_twice_gives_identical_contents(table: LakeTable) -> None:
    first = replace_slice(table, [hourly(["A", "B"])], partition_date=DAY, tag_shard="s00")
    once = contents(table, DAY, "s00")
    second = replace_slice(table, [hourly(["A"]), hourly(["B"])], partition_date=DAY, tag_shard="s00")

    assert contents(table, DAY, "s00") == once
    assert len(once) == 48 == first.rows_written == second.rows_written
    assert (first.version, second.version) == (1, 2)
    assert second.files_removed == first.files_added == 1
    assert row_count(table) == 48


def test_replacing_one_slice_never_touches_another_date_or_shard(table: LakeTable) -> None:
    replace_slice(table, [hourly(["A"])], partition_date=DAY, tag_shard="s00")
    replace_slice(table, [hourly(["B"])], partition_date=DAY, tag_shard="s01")
    replace_slice(table, [hourly(["A"], day=NEXT_DAY)], partition_date=NEXT_DAY, tag_shard="s00")
    others = (contents(table, DAY, "s01"), contents(table, NEXT_DAY, "s00"))

    replace_slice(table, [hourly(["A"], value=50.0)], partition_date=DAY, tag_shard="s00")
    replace_slice(table, [], partition_date=DAY, tag_shard="s00")

    assert contents(table, DAY, "s00") == []
    assert (contents(table, DAY, "s01"), contents(table, NEXT_DAY, "s00")) == others
    assert row_count(table, {"partition_date": DAY, "tag_shard": "s01"}) == 24


def test_time_range_replacement_keeps_values_outside_the_range(table: LakeTable) -> None:
    replace_slice(table, [hourly(["A", "B"])], partition_date=DAY, tag_shard="s00")
    start, end = datetime(2025, 1, 6, 10, tzinfo=UTC), datetime(2025, 1, 6, 12, tzinfo=UTC)
    # The re-read of the overlap window: 10:00 changed, 11:00 disappeared, 11:30 arrived late.
    late = recorded([("A", at(DAY, 10 * 3600), -1.0), ("A", at(DAY, 11.5 * 3600), -2.0)])

    result = replace_slice(
        table, [late], partition_date=DAY, tag_shard="s00", time_range=(start, end), web_ids=["A"]
    )

    rows = read_slice(table, DAY, "s00")
    a = rows.filter(pc.equal(rows["web_id"], "A"))
    hours = {
        ts.value // SECOND % 86_400 / 3600: value
        for ts, value in zip(a["timestamp"], a["value"].to_pylist(), strict=True)
    }
    assert hours[9.0] == 10.0 and hours[12.0] == 13.0  # outside the range: kept
    assert hours[10.0] == -1.0 and hours[11.5] == -2.0 and 11.0 not in hours
    assert rows.num_rows == 48 + 1 - 1 and result.rows_written == 2
    assert "timestamp_ns >= " in result.predicate and "web_id IN ('A')" in result.predicate


def test_a_partial_replace_rewrites_only_the_files_holding_its_rows(table: LakeTable) -> None:
    """An open day's run replaces [watermark - overlap, now). A file wholly before the range stays (same
    path), a file wholly inside it goes, and a file holding rows on both sides is replaced by one holding its
    other rows unchanged (their ingested_at, and the order of two values at one timestamp), whichever writer
    wrote it: delta-rs before this version, with plain or dictionary WebIds, or Arrow's writer."""
    _write_as_delta_rs(table, recorded([("A", at(DAY, 60 * m), float(m)) for m in range(120)]), _T0)
    twice = at(DAY, 2.5 * 3600)
    straddling = [
        ("A", at(DAY, 2 * 3600), 1.0),
        ("A", twice, 3.0),
        ("A", twice, 2.0),
        ("B", at(DAY, 12600), 4.0),
    ]
    _write_as_delta_rs(table, recorded(straddling), _T1, dictionary=True)
    inside = recorded([("B", at(DAY, 4.5 * 3600), 5.0)])
    replace_slice(
        table, [inside], partition_date=DAY, tag_shard="s00", time_range=_hours(4, 5), ingested_at=_T1
    )
    before = set(_files(table))

    result = replace_slice(
        table,
        [recorded([("B", at(DAY, 3.75 * 3600), 9.0)])],
        partition_date=DAY,
        tag_shard="s00",
        time_range=_hours(3, 6),
        ingested_at=_T2,
    )

    assert (result.files_removed, result.files_added) == (2, 1)
    assert len(before & set(_files(table))) == 1  # the 00:00-01:59 file, untouched
    rows = read_slice(table, DAY, "s00")
    stamped = list(
        zip(
            rows["web_id"].to_pylist(),
            rows["value"].to_pylist(),
            rows["ingested_at"].to_pylist(),
            strict=True,
        )
    )
    assert stamped == (
        [("A", float(m), _T0) for m in range(120)]
        + [("A", 1.0, _T1), ("A", 3.0, _T1), ("A", 2.0, _T1)]
        + [("B", 9.0, _T2)]
    )


def test_kept_points_are_written_again_and_files_without_them_replaced_whole(table: LakeTable) -> None:
    """A whole-day replace that keeps deleted points' history: a file holding kept and other points is
    replaced by one holding the kept points' rows; a file without kept points goes whole."""
    _write_as_delta_rs(table, hourly(["A", "K"]), _T0)
    _write_as_delta_rs(table, hourly(["B"]), _T0)

    result = replace_slice(
        table, [hourly(["A", "B"], value=50.0)], partition_date=DAY, tag_shard="s00", kept_web_ids=["K"]
    )

    assert (result.files_removed, result.files_added) == (2, 1)
    rows = read_slice(table, DAY, "s00")
    by_point = {w: rows.filter(pc.equal(rows["web_id"], w))["value"].to_pylist() for w in ("A", "B", "K")}
    assert by_point == {
        "A": [50.0 + h for h in range(24)],
        "B": [50.0 + h for h in range(24)],
        "K": [1.0 + h for h in range(24)],
    }


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ({}, {"time_range": (datetime(2025, 1, 6, 12, tzinfo=UTC), datetime(2025, 1, 6, 13, tzinfo=UTC))}),
        ({"time_range": (datetime(2025, 1, 6, 12, tzinfo=UTC), datetime(2025, 1, 6, 13, tzinfo=UTC))}, {}),
        ({"web_ids": ["A"]}, {"web_ids": ["B"]}),
    ],
    ids=["whole-day-then-range", "range-then-whole-day", "disjoint-points"],
)
def test_two_writes_of_one_partition_at_once_cannot_both_commit(
    table: LakeTable, tmp_path: Path, first: dict, second: dict
) -> None:
    """A write that commits while another of the same (date, shard) is still streaming makes that one fail,
    whatever their slices: a commit that only adds files (a range of an empty partition) would otherwise
    land beside a whole-day replace made meanwhile, and the day would hold its values twice."""

    def rows_while_another_writer_commits() -> Iterator[pa.RecordBatch]:
        yield _rows_of(hourly(["A", "B"], value=100.0), **second)
        replace_slice(
            table, [_rows_of(hourly(["A", "B"]), **first)], partition_date=DAY, tag_shard="s00", **first
        )

    with pytest.raises(ConcurrentWriteError, match="at the same time"):
        replace_slice(
            table, rows_while_another_writer_commits(), partition_date=DAY, tag_shard="s00", **second
        )

    alone = Lakehouse(str(tmp_path / "alone")).table("bronze.pi_timeseries")
    replace_slice(
        alone, [_rows_of(hourly(["A", "B"]), **first)], partition_date=DAY, tag_shard="s00", **first
    )
    assert table.version() == 1
    assert contents(table, DAY, "s00") == contents(alone, DAY, "s00") != []


@pytest.mark.parametrize(
    "time_range", [None, (datetime(2025, 1, 6, 12, tzinfo=UTC), datetime(2025, 1, 7, tzinfo=UTC))]
)
def test_a_replace_of_another_partition_meanwhile_does_not_fail_this_one(
    table: LakeTable, time_range: tuple[datetime, datetime] | None
) -> None:
    """delta-rs fails a commit of file actions when any file of the table was removed since its snapshot;
    the write commits again when its own partition is unchanged (runs of different shards at once)."""
    replace_slice(table, [hourly(["A"])], partition_date=DAY, tag_shard="s00")
    replace_slice(table, [hourly(["B"])], partition_date=DAY, tag_shard="s01")

    def rows_while_another_partition_is_replaced() -> Iterator[pa.RecordBatch]:
        yield _rows_of(hourly(["A"], value=100.0), time_range)
        replace_slice(table, [hourly(["B"], value=200.0)], partition_date=DAY, tag_shard="s01")

    replace_slice(
        table,
        rows_while_another_partition_is_replaced(),
        partition_date=DAY,
        tag_shard="s00",
        time_range=time_range,
    )

    a = read_slice(table, DAY, "s00")["value"].to_pylist()
    assert a == [1.0 + h if time_range and h < 12 else 100.0 + h for h in range(24)]
    assert read_slice(table, DAY, "s01")["value"].to_pylist() == [200.0 + h for h in range(24)]
    assert table.version() == 4


def _rows_of(
    batch: pa.RecordBatch,
    time_range: tuple[datetime, datetime] | None = None,
    web_ids: list[str] | None = None,
) -> pa.RecordBatch:
    """The batch's rows in the slice ``time_range`` / ``web_ids`` describe."""
    keep = pa.repeat(pa.scalar(True), batch.num_rows)
    if time_range is not None:
        ns = batch["timestamp"].cast(pa.int64())
        start, end = (int(t.timestamp()) * SECOND for t in time_range)
        keep = pc.and_(pc.greater_equal(ns, start), pc.less(ns, end))
    if web_ids is not None:
        keep = pc.and_(keep, pc.is_in(batch["web_id"], pa.array(web_ids)))
    return batch.filter(keep)


def _write_as_delta_rs(
    table: LakeTable, batch: pa.RecordBatch, ingested_at: datetime, dictionary: bool = False
) -> None:
    """Append ``batch`` to slice (DAY, s00) as replace_slice wrote before this version: one file by delta-rs
    (WebIds plain before session 9, dictionary in sessions 9 and 10)."""
    rows = pa.table(
        lake_timeseries._SliceStream([batch], lake_timeseries.time_slice(DAY, "s00"), ingested_at).__next__()
    )
    rows = rows.append_column(
        pa.field("partition_date", pa.date32(), nullable=False),
        pa.repeat(pa.scalar(DAY, pa.date32()), rows.num_rows),
    )
    rows = rows.append_column(
        pa.field("tag_shard", pa.string(), nullable=False), pa.repeat(pa.scalar("s00"), rows.num_rows)
    )
    if not dictionary:
        rows = rows.set_column(
            0, pa.field("web_id", pa.string(), nullable=False), rows["web_id"].cast(pa.string())
        )
    write_deltalake(ensure_table(table), rows, mode="append")


def _files(table: LakeTable) -> list[str]:
    return table.partition_dataset({"partition_date": DAY, "tag_shard": "s00"}).files


def _hours(start: float, end: float) -> tuple[datetime, datetime]:
    return (
        datetime(2025, 1, 6, tzinfo=UTC) + timedelta(hours=start),
        datetime(2025, 1, 6, tzinfo=UTC) + timedelta(hours=end),
    )


_T0, _T1, _T2 = (datetime(2026, 1, 1, hour, tzinfo=UTC) for hour in range(3))


def test_several_values_at_one_timestamp_and_sub_microsecond_times_survive_exactly(table: LakeTable) -> None:
    tick = at(DAY, 3600, nanos=123_456_700)  # PI's 100 ns resolution, below Delta's microsecond
    batch = recorded([("A", tick, 1.0), ("A", tick, 2.0), ("A", tick, 3.0), ("A", tick + 100, 4.0)])

    replace_slice(table, [batch], partition_date=DAY, tag_shard="s00")
    replace_slice(table, [batch], partition_date=DAY, tag_shard="s00")

    rows = read_slice(table, DAY, "s00")
    assert rows.schema.field("timestamp").type == pa.timestamp("ns", tz="UTC")
    assert rows["timestamp"].cast(pa.int64()).to_pylist() == [tick, tick, tick, tick + 100]
    assert rows["value"].to_pylist() == [1.0, 2.0, 3.0, 4.0]
    stored = table.load().to_pyarrow_table(columns=["timestamp", "timestamp_ns"])
    assert stored["timestamp"].cast(pa.int64()).to_pylist()[0] == tick // 1000  # floored to the µs


def test_batches_spanning_row_groups_and_files_are_written_whole_and_exactly(
    table: LakeTable, monkeypatch: pytest.MonkeyPatch
) -> None:
    small = dataclasses.replace(lake_timeseries.BRONZE_LAYOUT, row_group_rows=1_000, target_file_size=20_000)
    monkeypatch.setattr(lake_timeseries, "BRONZE_LAYOUT", small)
    big = dense("A", 20_123)  # 21 row groups over several files
    pages = [big.slice(offset, 700) for offset in range(0, big.num_rows, 700)]

    written = replace_slice(table, [hourly(["B"]), *pages], partition_date=DAY, tag_shard="s00")

    rows = read_slice(table, DAY, "s00")
    stored_a = rows.filter(pc.equal(rows["web_id"], "A")).select(["timestamp", "value"])
    assert written.rows_written == big.num_rows + 24 == rows.num_rows
    assert (
        written.files_added
        == len(table.partition_dataset({"partition_date": DAY, "tag_shard": "s00"}).files)
        > 2
    )
    assert stored_a.to_pylist() == pa.table(big).select(["timestamp", "value"]).to_pylist()


def test_a_row_outside_the_slice_raises_and_nothing_is_committed(table: LakeTable) -> None:
    replace_slice(table, [hourly(["A"])], partition_date=DAY, tag_shard="s00")
    before = contents(table, DAY, "s00")
    stray = recorded([("A", at(NEXT_DAY), 9.0)])

    with pytest.raises(InvalidRowsError, match=r"outside the slice.*Nothing was committed"):
        replace_slice(table, [hourly(["A"], value=7.0), stray], partition_date=DAY, tag_shard="s00")
    with pytest.raises(InvalidRowsError, match="not among the web_ids"):
        replace_slice(table, [hourly(["A", "B"])], partition_date=DAY, tag_shard="s00", web_ids=["A"])

    assert table.version() == 1
    assert contents(table, DAY, "s00") == before


def test_dictionary_encoded_web_ids_and_units_are_stored_as_plain_strings(
    table: LakeTable, tmp_path: Path
) -> None:
    """Batches of ``read_recorded(dictionary=True)`` (``web_id`` and ``units`` dictionary columns) and plain
    ones go into one write; the table and its readers keep plain strings, with the same rows as a write of
    plain batches only; a point outside ``web_ids`` is still named."""
    encoded = hourly(["C", "D"])
    for name in ("web_id", "units"):
        index = encoded.schema.get_field_index(name)
        encoded = encoded.set_column(index, name, encoded.column(name).dictionary_encode())
    assert pa.types.is_dictionary(encoded.schema.field("web_id").type)
    plain = Lakehouse(str(tmp_path / "plain")).table("bronze.pi_timeseries")

    replace_slice(table, [hourly(["A", "B"]), encoded], partition_date=DAY, tag_shard="s00")
    replace_slice(plain, [hourly(["A", "B"]), hourly(["C", "D"])], partition_date=DAY, tag_shard="s00")

    rows = read_slice(table, DAY, "s00")
    assert rows.schema.field("web_id").type == rows.schema.field("units").type == pa.string()
    stored = table.load().to_pyarrow_dataset().schema
    assert stored.field("web_id").type == stored.field("units").type == pa.string()
    assert contents(table, DAY, "s00") == contents(plain, DAY, "s00")
    assert len(contents(table, DAY, "s00")) == 96
    with pytest.raises(InvalidRowsError, match=r"not among the web_ids.*\['C', 'D'\]"):
        replace_slice(table, [encoded], partition_date=DAY, tag_shard="s00", web_ids=["A"])


def test_files_written_before_dictionary_columns_read_alongside_the_new_ones(table: LakeTable) -> None:
    """A table from before this version holds files whose Parquet schema says plain strings, and files
    delta-rs wrote from dictionary columns (their stored Arrow schema says dictionary); a slice written now
    (Arrow's writer, no stored Arrow schema) lands beside them in the same partition. Reading the table
    gives plain strings throughout, and scanning the partition's files with WebIds as dictionaries (silver's
    scan) gives one type for every kind of file."""
    replace_slice(table, [hourly(["A"])], partition_date=DAY, tag_shard="s00")
    stored = table.load().to_pyarrow_table(filters=pc.field("timestamp_ns") < at(DAY, 12 * 3600))
    stored = stored.set_column(stored.schema.get_field_index("tag_shard"), "tag_shard", pa.repeat("s01", 12))
    plain, encoded = stored.slice(0, 6), stored.slice(6)
    web_ids = encoded.column("web_id").dictionary_encode()
    encoded = encoded.set_column(0, pa.field("web_id", web_ids.type, nullable=False), web_ids)
    assert plain.schema.field("web_id").type == pa.string()
    write_deltalake(table.load(), plain, mode="append")  # as replace_slice wrote before session 9
    write_deltalake(table.load(), encoded, mode="append")  # as it wrote in sessions 9 and 10
    start, end = datetime(2025, 1, 6, 12, tzinfo=UTC), datetime(2025, 1, 6, 18, tzinfo=UTC)
    late = recorded([("A", at(DAY, hour * 3600), -1.0) for hour in range(12, 18)])
    late = late.set_column(0, "web_id", late.column("web_id").dictionary_encode())
    replace_slice(table, [late], partition_date=DAY, tag_shard="s01", time_range=(start, end), web_ids=["A"])

    rows = read_slice(table, DAY, "s01")
    assert rows.schema.field("web_id").type == pa.string()
    assert rows["value"].to_pylist() == [float(hour) for hour in range(1, 13)] + [-1.0] * 6
    scanned = list(
        scan_partition(table, DAY, "s01", ["web_id", "units"], dictionary_columns=["web_id", "units"])
    )
    assert len(scanned) == 3  # one batch per file
    files = table.partition_dataset({"partition_date": DAY, "tag_shard": "s01"}).files
    kinds = sorted(str(pq.read_schema(Path(table.uri) / path).field("web_id").type) for path in files)
    assert kinds == ["dictionary<values=string, indices=int32, ordered=0>", "string", "string"]
    assert {str(batch.schema) for batch in scanned} == {str(scanned[0].schema)}
    assert pa.types.is_dictionary(scanned[0].schema.field("web_id").type)
    assert [value for batch in scanned for value in batch["web_id"].to_pylist()] == ["A"] * 18


def _encodings(table: LakeTable, column: str) -> list[tuple[bool, tuple[str, ...]]]:
    """Per data file of slice (DAY, s00), those with a dictionary for ``column`` last: whether ``column``
    has a dictionary page, and its encodings."""
    files = table.partition_dataset({"partition_date": DAY, "tag_shard": "s00"}).files
    chunks = []
    for path in files:
        metadata = pq.ParquetFile(Path(table.uri) / path).metadata
        index = metadata.schema.to_arrow_schema().get_field_index(column)
        chunk = metadata.row_group(0).column(index)
        chunks.append((chunk.has_dictionary_page, tuple(sorted(chunk.encodings))))
    return sorted(chunks)


def test_bronze_files_keep_times_delta_encoded_and_read_back_exactly(
    table: LakeTable, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The two time columns reach Parquet as DELTA_BINARY_PACKED without a dictionary; the WebIds and values
    keep theirs (``BRONZE_LAYOUT``). Irregular 100 ns timestamps, each point's times starting over, and a
    file written with Parquet's default encodings before this layout, in the same partition, all read back
    exactly."""
    default_layout = ParquetLayout(lake_timeseries.ROW_GROUP_ROWS, lake_timeseries.TARGET_FILE_SIZE)
    monkeypatch.setattr(lake_timeseries, "BRONZE_LAYOUT", default_layout)  # as written before this layout
    early = [("A", at(DAY, 60 * minute, nanos=100 * minute), float(minute)) for minute in range(300)]
    replace_slice(table, [recorded(early)], partition_date=DAY, tag_shard="s00")
    monkeypatch.undo()
    start, end = datetime(2025, 1, 6, 6, tzinfo=UTC), datetime(2025, 1, 7, tzinfo=UTC)
    late = [
        (web_id, at(DAY, 6 * 3600 + 7 * second + offset, nanos=second % 9_999_999 * 100), second * 0.5)
        for offset, web_id in enumerate(["B", "A", "C"])
        for second in range(2_000)
    ]
    replace_slice(table, [recorded(late)], partition_date=DAY, tag_shard="s00", time_range=(start, end))

    dictionary, delta = "RLE_DICTIONARY", "DELTA_BINARY_PACKED"
    for column in ("timestamp", "timestamp_ns"):
        (new_page, new_encodings), (old_page, old_encodings) = _encodings(table, column)
        assert old_page and dictionary in old_encodings, "no file in the default layout: nothing tested"
        assert not new_page and delta in new_encodings and dictionary not in new_encodings
    for column in ("web_id", "value"):
        assert [page for page, _ in _encodings(table, column)] == [True, True], column
    rows = read_slice(table, DAY, "s00")
    expected = sorted(early + late)
    assert rows["web_id"].to_pylist() == [web_id for web_id, _, _ in expected]
    assert rows["timestamp"].cast(pa.int64()).to_pylist() == [ns for _, ns, _ in expected]
    assert rows["value"].to_pylist() == [value for _, _, value in expected]


def test_a_batch_with_a_null_in_a_required_column_is_rejected(table: LakeTable) -> None:
    batch = hourly(["A"])
    broken = batch.set_column(batch.schema.get_field_index("good"), "good", pa.nulls(24, pa.bool_()))

    with pytest.raises(InvalidRowsError, match="'good' holds 24 null"):
        replace_slice(table, [broken], partition_date=DAY, tag_shard="s00")


def test_a_crash_in_the_middle_of_streaming_leaves_the_previous_version(table: LakeTable) -> None:
    replace_slice(table, [hourly(["A", "B"])], partition_date=DAY, tag_shard="s00")
    before = contents(table, DAY, "s00")

    def failing_reader() -> Iterator[pa.RecordBatch]:
        yield hourly(["A"], value=100.0)
        raise ConnectionError("PI Web API went away")

    with pytest.raises(ConnectionError, match="went away") as raised:
        replace_slice(table, failing_reader(), partition_date=DAY, tag_shard="s00")

    assert "stays at version 1" in str(raised.value.__notes__)
    assert table.version() == 1
    assert contents(table, DAY, "s00") == before


def test_time_range_must_be_timezone_aware_and_inside_the_day(table: LakeTable) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        replace_slice(
            table,
            [],
            partition_date=DAY,
            tag_shard="s00",
            time_range=(datetime(2025, 1, 6), datetime(2025, 1, 7)),
        )
    with pytest.raises(ValueError, match="inside the partition's UTC day"):
        replace_slice(
            table,
            [],
            partition_date=DAY,
            tag_shard="s00",
            time_range=(datetime(2025, 1, 6, 23, tzinfo=UTC), datetime(2025, 1, 7, 1, tzinfo=UTC)),
        )
    assert not table.exists()


_KILLED_WRITER = textwrap.dedent(
    """
    import sys, time
    from osipi_dagster.lake import Lakehouse, replace_slice
    from osipi_dagster_tests.lake_helpers import DAY, dense

    def batches():
        for i in range(10_000):
            yield dense(f"P{i:05d}", 100_000)
            if i == 40:  # 4 million rows in: the writer has data files in flight
                print("streaming", flush=True)
                time.sleep(1)

    replace_slice(Lakehouse(sys.argv[1]).table("bronze.pi_timeseries"), batches(), partition_date=DAY,
                  tag_shard="s00")
    """
)


@pytest.mark.slow
def test_a_writer_killed_mid_write_leaves_the_table_readable_and_unchanged(
    table: LakeTable, tmp_path: Path
) -> None:
    replace_slice(table, [hourly(["A", "B"])], partition_date=DAY, tag_shard="s00")
    before = contents(table, DAY, "s00")
    root = str(Path(table.uri).parent.parent)
    writer = subprocess.Popen(
        [sys.executable, "-c", _KILLED_WRITER, root],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parent.parent,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)},
    )
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "streaming"
        os.kill(writer.pid, signal.SIGKILL)
        assert writer.wait(timeout=30) == -signal.SIGKILL
    finally:
        writer.kill()

    # The killed writer left parquet data on disk, but no commit refers to it: readers never see it.
    on_disk = list(Path(table.uri).glob("partition_date=*/tag_shard=s00/*"))
    assert len(on_disk) > len(table.load().file_uris())
    assert table.version() == 1
    assert contents(table, DAY, "s00") == before
    replace_slice(table, [hourly(["A"], value=5.0)], partition_date=DAY, tag_shard="s00")
    assert row_count(table) == 24
