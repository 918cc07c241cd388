"""Full refresh of the catalog tables and the row diff; whole-table overwrites (``overwrite_table_batches``):
one commit of files written by Arrow's Parquet writer, with the statistics delta-rs writes, and nothing
committed on failure."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable, write_deltalake

from osipi_dagster.lake import (
    ComparedRows,
    Lakehouse,
    LakeTable,
    RowDiff,
    diff_rows,
    overwrite_table,
    overwrite_table_batches,
    read_table,
)
from osipi_dagster.lake.errors import ConcurrentWriteError, InvalidRowsError
from osipi_dagster.lake.refresh import CATALOG_LAYOUT
from osipi_dagster.lake.schemas import AF_HIERARCHY, UTC_US
from osipi_dagster.lake.tables import without_columns

INPUT = without_columns(AF_HIERARCHY.schema, ["ingested_at"])


def elements(*rows: tuple[str, str | None, str]) -> pa.Table:
    return pa.Table.from_pylist(
        [
            {
                "web_id": web_id,
                "parent_web_id": parent,
                "name": name,
                "path": f"\\\\AF\\DB\\{name}",
                "depth": 1 if parent is None else 2,
                "template_name": None,
                "category_names": [],
                "description": None,
                "database_web_id": "D1",
            }
            for web_id, parent, name in rows
        ],
        schema=INPUT,
    )


def test_overwrite_replaces_the_whole_table_and_the_diff_counts_changes(tmp_path: Path) -> None:
    table = Lakehouse(str(tmp_path)).table("bronze.pi_af_hierarchy")
    first = elements(("E1", None, "Plant"), ("E2", "E1", "Pump"), ("E3", "E1", "Tank"))
    second = elements(("E1", None, "Plant"), ("E2", "E1", "Pump 2"), ("E4", "E1", "Valve"))

    assert read_table(table) is None
    written = overwrite_table(table, first, ingested_at=datetime(2025, 1, 6, tzinfo=UTC))
    before = read_table(table)
    rewritten = overwrite_table(table, second)

    assert diff_rows(None, first, key=["web_id"]) == RowDiff(added=3, removed=0, changed=0, unchanged=0)
    assert diff_rows(before, read_table(table), key=["web_id"]) == RowDiff(
        added=1, removed=1, changed=1, unchanged=1
    )
    assert (written.version, rewritten.version, rewritten.rows_written) == (1, 2, 3)
    assert sorted(read_table(table)["name"].to_pylist()) == ["Plant", "Pump 2", "Valve"]
    assert before["ingested_at"][0].as_py() == datetime(2025, 1, 6, tzinfo=UTC)


INGESTED_AT = datetime(2025, 1, 6, 12, 30, 15, 123456, tzinfo=UTC)


def _elements(start: int, count: int, description: str = "pump") -> pa.RecordBatch:
    numbers = range(start, start + count)
    return pa.RecordBatch.from_pydict(
        {
            "web_id": [f"E{n:07d}" for n in numbers],
            "parent_web_id": [None if n % 10 == 0 else f"E{n - n % 10:07d}" for n in numbers],
            "name": [f"Unit {n}" for n in numbers],
            "path": [f"\\\\AF\\DB\\Site\\Unit {n}" for n in numbers],
            "depth": [n % 10 for n in numbers],
            "template_name": [None if n % 3 else "Pump" for n in numbers],
            "category_names": [[] if n % 2 else ["Rotating", "Critical"] for n in numbers],
            "description": [description] * count,
            "database_web_id": ["D1"] * count,
        },
        schema=INPUT,
    )


def _add_actions(table_path: str) -> list[dict]:
    log = sorted(Path(table_path, "_delta_log").glob("*.json"))[-1]
    actions = [json.loads(line) for line in log.read_text().splitlines()]
    return [action["add"] for action in actions if "add" in action]


def test_a_catalog_table_is_written_in_row_groups_with_the_statistics_delta_rs_writes(tmp_path: Path) -> None:
    """Memory holds a row group, not the table: a table of 2.5 row groups is one file of three; its Delta
    statistics are those delta-rs's own writer gives the same rows (no bounds for a list column)."""
    table = Lakehouse(str(tmp_path / "lake")).table(AF_HIERARCHY.name)
    rows = CATALOG_LAYOUT.row_group_rows * 5 // 2
    batches = [_elements(start, 5_000) for start in range(0, rows, 5_000)]

    result = overwrite_table_batches(table, batches, ingested_at=INGESTED_AT)

    assert (result.rows_written, result.files_added, result.files_removed) == (rows, 1, 0)
    (added,) = _add_actions(table.uri)
    assert pq.ParquetFile(Path(table.uri, added["path"])).metadata.num_row_groups == 3
    by_delta_rs = str(tmp_path / "delta-rs")
    stamped = pa.Table.from_batches(batches).append_column(
        AF_HIERARCHY.schema.field("ingested_at"),
        pa.repeat(pa.scalar(INGESTED_AT, UTC_US), rows),
    )
    write_deltalake(by_delta_rs, stamped)
    (expected,) = _add_actions(by_delta_rs)
    assert json.loads(added["stats"]) == json.loads(expected["stats"])
    assert "category_names" not in json.loads(added["stats"])["nullCount"]
    stored = table.load().to_pyarrow_table()
    data = stored.select(INPUT.names)
    assert data.equals(pa.Table.from_batches(batches).cast(data.schema))
    assert stored.column("ingested_at").unique().to_pylist() == [INGESTED_AT]


def test_a_catalog_overwrite_replaces_every_file_in_one_commit(tmp_path: Path) -> None:
    table = Lakehouse(str(tmp_path / "lake")).table(AF_HIERARCHY.name)
    overwrite_table_batches(table, [_elements(0, 5)])
    overwrite_table_batches(table, [_elements(0, 5)])

    result = overwrite_table_batches(table, [_elements(100, 3)])

    assert (result.version, result.files_added, result.files_removed) == (3, 1, 1)
    assert sorted(table.load().to_pyarrow_table().column("web_id").to_pylist()) == [
        "E0000100",
        "E0000101",
        "E0000102",
    ]


def test_a_bad_batch_commits_nothing_and_raises_its_own_error(tmp_path: Path) -> None:
    table = Lakehouse(str(tmp_path / "lake")).table(AF_HIERARCHY.name)
    overwrite_table_batches(table, [_elements(0, 5)])

    def batches() -> Iterator[pa.RecordBatch]:
        yield _elements(10, 5)
        yield _elements(15, 5).drop_columns(["name"])

    with pytest.raises(InvalidRowsError, match="missing \\['name'\\]") as raised:
        overwrite_table_batches(table, batches())

    assert "Nothing was committed" in str(raised.value.__notes__)
    assert table.version() == 1
    assert table.load().to_pyarrow_table().column("web_id").to_pylist() == [f"E{n:07d}" for n in range(5)]


def test_a_catalog_table_replaced_by_another_writer_meanwhile_is_not_overwritten(tmp_path: Path) -> None:
    """Two refreshes of one table at once: the one that commits first wins, the other fails clearly and
    commits nothing (its files stay unreferenced until a vacuum)."""
    table = Lakehouse(str(tmp_path / "lake")).table(AF_HIERARCHY.name)
    overwrite_table_batches(table, [_elements(0, 5)])

    def rows_while_another_writer_commits() -> Iterator[pa.RecordBatch]:
        yield _elements(10, 5)
        overwrite_table_batches(table, [_elements(20, 5, description="winner")])

    with pytest.raises(ConcurrentWriteError, match="at the same time"):
        overwrite_table_batches(table, rows_while_another_writer_commits())

    assert table.version() == 2
    assert DeltaTable(table.uri).to_pyarrow_table().column("description").unique().to_pylist() == ["winner"]


def _compared(table: LakeTable, batches: list[pa.RecordBatch]) -> tuple[RowDiff, pa.Table, int]:
    """The diff of ``batches`` against the table, every row :meth:`ComparedRows.batches` gives back for a
    commit, and how many rows matched in place."""
    with ComparedRows(table, key=["web_id"]) as compared:
        for batch in batches:
            compared.append(batch)
        diff = compared.diff()
        rows = pa.Table.from_batches(list(compared.batches(7)), schema=compared.schema)
        return diff, rows, compared.prints.in_place


def _pages(rows: pa.Table, size: int = 40) -> list[pa.RecordBatch]:
    return [
        batch for start in range(0, rows.num_rows, size) for batch in rows.slice(start, size).to_batches()
    ]


@pytest.fixture
def written(tmp_path: Path) -> tuple[LakeTable, pa.Table]:
    """A hierarchy table of 250 rows in two Parquet files (rows matched in place cross files), and its
    rows."""
    table = Lakehouse(str(tmp_path / "lake")).table(AF_HIERARCHY.name)
    rows = pa.Table.from_batches([_elements(0, 250)])
    overwrite_table_batches(table, [_elements(0, 100)])
    # Two more files in one commit: appended by delta-rs, which keeps the rows' order file by file.
    write_deltalake(
        table.uri,
        pa.Table.from_batches([_elements(100, 150)]).append_column(
            AF_HIERARCHY.schema.field("ingested_at"), pa.repeat(pa.scalar(INGESTED_AT, UTC_US), 150)
        ),
        mode="append",
    )
    return table, rows


def test_rows_listed_again_unchanged_match_in_place_and_stage_nothing(
    written: tuple[LakeTable, pa.Table],
) -> None:
    table, rows = written
    with ComparedRows(table, key=["web_id"]) as compared:
        for batch in _pages(rows):
            compared.append(batch)
        assert compared.diff() == RowDiff(added=0, removed=0, changed=0, unchanged=250)
        assert (compared.prints.in_place, compared._staged.rows, len(compared.prints._keys)) == (250, 0, 0)


def _another(value: object) -> object:
    """A value other than ``value``, of its type: a null string becomes empty, a list gains an item."""
    if isinstance(value, int):
        return value + 1
    if isinstance(value, list):
        return [*value, "New"]
    return "" if value is None else f"{value}x"


@pytest.mark.parametrize("column", INPUT.names)
def test_a_change_in_any_column_of_any_row_is_counted_and_staged(
    written: tuple[LakeTable, pa.Table], column: str
) -> None:
    """Every stored column of a row that matched in place up to the change: the change is found, and the
    rows given back for the commit are the new rows, those matched in place read again from the table."""
    table, rows = written
    for at in (0, 137, 249):
        changed = rows.to_pylist()
        changed[at][column] = _another(changed[at][column])
        new = pa.Table.from_pylist(changed, schema=INPUT)

        diff, staged, in_place = _compared(table, _pages(new))

        expected = (
            RowDiff(added=1, removed=1, changed=0, unchanged=249)
            if column == "web_id"
            else RowDiff(added=0, removed=0, changed=1, unchanged=249)
        )
        assert diff == expected, (column, at)
        assert in_place == at // 40 * 40
        assert staged.equals(new)


def test_rows_in_another_order_are_matched_by_key(written: tuple[LakeTable, pa.Table]) -> None:
    table, rows = written
    new = rows.take(list(range(249, -1, -1)))

    diff, staged, in_place = _compared(table, _pages(new))

    assert diff == RowDiff(added=0, removed=0, changed=0, unchanged=250)
    assert in_place == 0
    assert staged.equals(new)


@pytest.mark.parametrize(("kept", "more"), [(250, 1), (249, 0), (200, 0), (0, 5)])
def test_rows_added_or_removed_at_the_end_are_counted(
    written: tuple[LakeTable, pa.Table], kept: int, more: int
) -> None:
    table, rows = written
    new = pa.concat_tables([rows.slice(0, kept), pa.Table.from_batches([_elements(1_000, more)])])

    diff, staged, _ = _compared(table, _pages(new))

    assert diff == RowDiff(added=more, removed=250 - kept, changed=0, unchanged=kept)
    assert staged.equals(new)


def test_a_new_table_counts_every_row_added_without_hashing(tmp_path: Path) -> None:
    table = Lakehouse(str(tmp_path / "lake")).table(AF_HIERARCHY.name)
    new = pa.Table.from_batches([_elements(0, 90)])

    with ComparedRows(table, key=["web_id"]) as compared:
        for batch in _pages(new):
            compared.append(batch)
        assert compared.diff() == RowDiff(added=90, removed=0, changed=0, unchanged=0)
        assert len(compared.prints._keys) == 0
        assert pa.Table.from_batches(list(compared.batches()), schema=compared.schema).equals(new)


def test_rows_matched_in_place_are_read_again_from_the_version_compared(
    written: tuple[LakeTable, pa.Table],
) -> None:
    """The table replaced between the comparison and the commit: the rows given back are those compared
    (the replaced version's files stay until a vacuum), never the other writer's."""
    table, rows = written
    with ComparedRows(table, key=["web_id"]) as compared:
        for batch in _pages(rows.slice(0, 200)):
            compared.append(batch)
        overwrite_table_batches(table, [_elements(500, 300, description="other writer")])
        assert compared.diff() == RowDiff(added=0, removed=50, changed=0, unchanged=200)
        staged = pa.Table.from_batches(list(compared.batches()), schema=compared.schema)
    assert staged.equals(rows.slice(0, 200))
