"""checkpoints.pi_watermarks: upsert by point, per shard, never backwards."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from osipi_dagster.lake import Lakehouse, LakeTable, Watermark, read_watermarks, row_count, write_watermarks

T0 = datetime(2025, 1, 6, 10, 0, tzinfo=UTC)


@pytest.fixture
def table(tmp_path: Path) -> LakeTable:
    return Lakehouse(str(tmp_path)).table("checkpoints.pi_watermarks")


def test_watermarks_are_upserted_by_point(table: LakeTable) -> None:
    assert read_watermarks(table, "s00") == {}
    first = write_watermarks(
        table, "s00", [Watermark("A", T0, values_read=5, run_id="r1"), Watermark("B", T0)]
    )
    later = T0 + timedelta(minutes=5)
    second = write_watermarks(
        table,
        "s00",
        [Watermark("A", later, window_start=T0 - timedelta(hours=1), run_id="r2"), Watermark("C", later)],
    )

    marks = read_watermarks(table, "s00")
    assert (first.rows_inserted, second.rows_inserted, second.rows_updated) == (2, 1, 1)
    assert {web_id: mark.read_until for web_id, mark in marks.items()} == {"A": later, "B": T0, "C": later}
    assert marks["A"].run_id == "r2" and marks["A"].window_start == T0 - timedelta(hours=1)
    assert marks["A"].updated_at is not None
    assert row_count(table) == 3


def test_a_watermark_never_moves_backwards(table: LakeTable) -> None:
    write_watermarks(table, "s00", [Watermark("A", T0, run_id="today")])

    result = write_watermarks(table, "s00", [Watermark("A", T0 - timedelta(days=1), run_id="old day")])

    assert result.rows_updated == 0
    assert read_watermarks(table, "s00")["A"].run_id == "today"


def test_shards_are_independent(table: LakeTable) -> None:
    write_watermarks(table, "s00", [Watermark("A", T0)])
    write_watermarks(table, "s01", [Watermark("A", T0 + timedelta(hours=1))])

    assert read_watermarks(table, "s00")["A"].read_until == T0
    assert read_watermarks(table, "s01")["A"].read_until == T0 + timedelta(hours=1)
    assert table.load().metadata().partition_columns == ["tag_shard"]


def test_writing_no_watermarks_commits_nothing(table: LakeTable) -> None:
    write_watermarks(table, "s00", [Watermark("A", T0)])
    version = table.version()

    assert write_watermarks(table, "s00", []).version == version == table.version()


def test_naive_times_are_rejected(table: LakeTable) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        write_watermarks(table, "s00", [Watermark("A", datetime(2025, 1, 6))])
