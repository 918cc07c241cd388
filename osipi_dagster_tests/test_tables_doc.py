"""docs/TABLES.md and the column descriptions the UI shows: every column of every table is described, and the
document is what the generator writes from the specs."""

from __future__ import annotations

from osipi_dagster.lake.columns import COLUMN_DESCRIPTIONS
from osipi_dagster.lake.schemas import TABLE_SPECS
from osipi_dagster.lake.tables_doc import DEFAULT_PATH, tables_markdown


def test_every_column_of_every_table_is_described() -> None:
    missing = [
        f"{spec.name}.{name}"
        for spec in TABLE_SPECS.values()
        for name in spec.column_names
        if not COLUMN_DESCRIPTIONS.get(spec.name, {}).get(name)
    ]
    assert not missing, f"describe these columns in osipi_dagster/lake/columns.py: {missing}"


def test_tables_md_is_generated_from_the_specs() -> None:
    assert DEFAULT_PATH.read_text(encoding="utf-8") == tables_markdown(), (
        "docs/TABLES.md is stale: run `python -m osipi_dagster.lake.tables_doc`"
    )
