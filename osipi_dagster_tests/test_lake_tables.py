"""Table addressing, safe creation and schema checks."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from osipi_dagster.lake import (
    InvalidLakeRootError,
    InvalidTableNameError,
    Lakehouse,
    TableSchemaMismatchError,
    ensure_table,
    row_count,
)
from osipi_dagster.lake.errors import ConcurrentWriteError
from osipi_dagster.lake.partitions import WRITER_COLUMNS, read_partition, replace_partition
from osipi_dagster.lake.schemas import SILVER_EDGES, TIMESERIES
from osipi_dagster.lake.tables import LakeTable, without_columns


def test_tables_live_under_schema_and_table_folders(tmp_path: Path) -> None:
    assert Lakehouse(str(tmp_path)).table("bronze.pi_timeseries").uri == f"{tmp_path}/bronze/pi_timeseries"
    remote = Lakehouse("s3://bucket/lake/", {"aws_region": "eu-west-1"}).table("checkpoints.pi_watermarks")
    assert remote.uri == "s3://bucket/lake/checkpoints/pi_watermarks"
    assert remote.storage_options == {"aws_region": "eu-west-1"}
    assert Lakehouse("abfss://c@acct.dfs.core.windows.net/x").table("bronze.a").uri.endswith("/x/bronze/a")


@pytest.mark.parametrize("name", ["pi_timeseries", "Bronze.pi", "bronze.pi.x", "bronze.pi-x", "1b.pi", ""])
def test_invalid_table_names_are_rejected_with_the_expected_form(name: str) -> None:
    with pytest.raises(InvalidTableNameError, match=r"expected '<schema>.<table>'"):
        Lakehouse().table(name)


def test_unsupported_root_schemes_are_rejected() -> None:
    with pytest.raises(InvalidLakeRootError, match=r"unsupported scheme 'ftp'.*s3://"):
        Lakehouse("ftp://host/lake")


def test_a_table_with_another_layout_is_not_written_to(tmp_path: Path) -> None:
    table = Lakehouse(str(tmp_path)).table("bronze.pi_timeseries")
    DeltaTable.create(table.uri, pa.schema([("web_id", pa.string())]))

    with pytest.raises(TableSchemaMismatchError, match="Move the old table away"):
        ensure_table(table)


def test_ensure_table_creates_the_spec_layout_once(tmp_path: Path) -> None:
    table = Lakehouse(str(tmp_path)).table("bronze.pi_timeseries")

    created = ensure_table(table)
    again = ensure_table(table)

    assert created.version() == again.version() == 0
    assert created.metadata().partition_columns == ["partition_date", "tag_shard"]
    assert pa.schema(created.schema().to_arrow()).names == TIMESERIES.schema.names
    assert row_count(table) == 0


_FIRST_WRITER = textwrap.dedent(
    """
    import sys, time
    from osipi_dagster.lake import Lakehouse, replace_slice
    from osipi_dagster_tests.lake_helpers import DAY, hourly

    root, shard, start_at = sys.argv[1], sys.argv[2], float(sys.argv[3])
    time.sleep(max(0.0, start_at - time.time()))  # all writers start together on a missing table
    replace_slice(Lakehouse(root).table("bronze.pi_timeseries"), [hourly([shard])], partition_date=DAY,
                  tag_shard=shard)
    """
)


@pytest.mark.slow
def test_concurrent_first_writers_all_commit(tmp_path: Path) -> None:
    root = str(tmp_path / "lake")
    shards = [f"s{i:02d}" for i in range(6)]
    start_at = str(time.time() + 4)
    project = str(Path(__file__).parent.parent)
    writers = [
        subprocess.Popen([sys.executable, "-c", _FIRST_WRITER, root, shard, start_at], cwd=project)
        for shard in shards
    ]

    assert [writer.wait(timeout=120) for writer in writers] == [0] * len(shards)
    table = Lakehouse(root).table("bronze.pi_timeseries")
    assert {shard: row_count(table, {"tag_shard": shard}) for shard in shards} == dict.fromkeys(shards, 24)


def test_a_partition_replaced_by_another_writer_meanwhile_is_not_overwritten(tmp_path: Path) -> None:
    """``replace_partition`` commits its own files: a writer that replaced the same partition while this one
    was writing wins, and this one fails clearly, committing nothing."""
    table = Lakehouse(str(tmp_path)).table(SILVER_EDGES.name)
    first = _edges_batch(1.0)
    replace_partition(table, [first], partition_date=date(2025, 1, 5), tag_shard="s00")

    def rows_while_another_writer_commits() -> Iterator[pa.RecordBatch]:
        yield first
        replace_partition(table, [_edges_batch(2.0)], partition_date=date(2025, 1, 5), tag_shard="s00")

    with pytest.raises(ConcurrentWriteError, match="at the same time"):
        replace_partition(
            table, rows_while_another_writer_commits(), partition_date=date(2025, 1, 5), tag_shard="s00"
        )
    stored = read_partition(table, date(2025, 1, 5), "s00", ["value"])
    assert stored is not None and stored.column("value").to_pylist() == [2.0]
    assert table.version() == 2


def test_two_first_writes_of_a_partition_at_once_cannot_both_commit(tmp_path: Path) -> None:
    """Neither write removes a file (the partition is empty when both begin), so only the partition's claim
    (a Delta application transaction) keeps the second from committing its rows beside the first's."""
    table = Lakehouse(str(tmp_path)).table(SILVER_EDGES.name)
    replace_partition(table, [_edges_batch(0.0)], partition_date=date(2025, 1, 4), tag_shard="s00")

    def rows_while_another_writer_commits() -> Iterator[pa.RecordBatch]:
        yield _edges_batch(1.0)
        replace_partition(table, [_edges_batch(2.0)], partition_date=date(2025, 1, 5), tag_shard="s00")

    with pytest.raises(ConcurrentWriteError, match="at the same time"):
        replace_partition(
            table, rows_while_another_writer_commits(), partition_date=date(2025, 1, 5), tag_shard="s00"
        )
    stored = read_partition(table, date(2025, 1, 5), "s00", ["value"])
    assert stored is not None and stored.column("value").to_pylist() == [2.0]
    assert table.version() == 2


def _edges_batch(value: float) -> pa.RecordBatch:
    row = {"web_id": "P1", "point_name": "p", "point_type": "Float64", "step": False, "edge": "last"}
    return pa.RecordBatch.from_pylist(
        [row | {"timestamp_ns": 1, "sequence": 0, "value": value, "is_good": True}],
        schema=without_columns(SILVER_EDGES.schema, WRITER_COLUMNS),
    )


def test_a_partition_dataset_holds_only_that_partitions_files(tmp_path: Path) -> None:
    uri = str(tmp_path / "bronze" / "sliced")
    days = [date(2025, 1, 5), date(2025, 1, 5), date(2025, 1, 6), date(2025, 1, 6)]
    rows = pa.table(
        {
            "partition_date": pa.array(days, pa.date32()),
            "tag_shard": ["s00", "s01", "s00", "s01"],
            "value": [1.0, 2.0, 3.0, 4.0],
        }
    )
    write_deltalake(uri, rows, partition_by=["partition_date", "tag_shard"])
    table = LakeTable("bronze.sliced", uri)

    dataset = table.partition_dataset({"partition_date": date(2025, 1, 6), "tag_shard": "s01"})

    assert len(list(dataset.get_fragments())) == 1
    assert dataset.to_table().to_pydict() == {
        "partition_date": [date(2025, 1, 6)],
        "tag_shard": ["s01"],
        "value": [4.0],
    }
