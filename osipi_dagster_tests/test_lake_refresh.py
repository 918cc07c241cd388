"""Full refresh of the catalog tables and the row diff."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

from osipi_dagster.lake import Lakehouse, RowDiff, diff_rows, overwrite_table, read_table
from osipi_dagster.lake.schemas import AF_HIERARCHY
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
