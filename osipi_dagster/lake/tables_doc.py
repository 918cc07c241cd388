"""Writes ``docs/TABLES.md`` from the table specs and their column descriptions:
``python -m osipi_dagster.lake.tables_doc [path]`` (a test fails when the file is not what this writes)."""

from __future__ import annotations

import sys
from pathlib import Path

from osipi_dagster.lake.columns import column_description
from osipi_dagster.lake.schemas import TABLE_SPECS, TableSpec

DEFAULT_PATH = Path(__file__).resolve().parents[2] / "docs" / "TABLES.md"
_LAYERS = ("bronze", "silver", "gold", "checkpoints")


def tables_markdown() -> str:
    """Every table the connector writes, by layer: its purpose, layout and columns."""
    lines = [
        "# Tables",
        "",
        "Every Delta table the connector writes, generated from `osipi_dagster/lake/schemas.py`",
        "(layouts) and `osipi_dagster/lake/columns.py` (column meanings) by",
        "`python -m osipi_dagster.lake.tables_doc`; edit those, not this file. Tables live under the",
        "lakehouse root as `<root>/<schema>/<table>`; a PI server other than the default prefixes each",
        "table name with its name (`bronze.site_b__pi_timeseries`).",
        "Timestamps are `timestamp[us, tz=UTC]`. In the Parquet files of `bronze.pi_timeseries` and",
        "`silver.pi_timeseries`, `timestamp` and `timestamp_ns` are `DELTA_BINARY_PACKED` (read by delta-rs,",
        "pyarrow, DuckDB, Spark 3.3+ and Databricks Runtime 11.3+).",
    ]
    specs = sorted(TABLE_SPECS.values(), key=lambda s: (_layer_order(s.name), s.name))
    for spec in specs:
        lines += ["", *_table_section(spec)]
    return "\n".join(lines) + "\n"


def _layer_order(name: str) -> int:
    schema = name.split(".", 1)[0]
    return _LAYERS.index(schema) if schema in _LAYERS else len(_LAYERS)


def _table_section(spec: TableSpec) -> list[str]:
    key = ", ".join(f"`{c}`" for c in spec.key) or "none (several rows may share every column but the value)"
    partitions = ", ".join(f"`{c}`" for c in spec.partition_by) or "not partitioned"
    lines = [
        f"## `{spec.name}`",
        "",
        spec.description,
        "",
        f"Delta partition columns: {partitions}. Logical key: {key}.",
        "",
        "| column | type | null | meaning |",
        "|---|---|---|---|",
    ]
    for field in spec.schema:
        meaning = (column_description(spec.name, field.name) or "").replace("|", "\\|")
        kind = str(field.type).replace("|", "\\|")
        lines.append(f"| `{field.name}` | `{kind}` | {'yes' if field.nullable else 'no'} | {meaning} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0]) if args else DEFAULT_PATH
    path.write_text(tables_markdown(), encoding="utf-8")
    print(f"Wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
