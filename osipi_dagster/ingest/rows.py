"""Rows for a lake table, typed by the table's own spec (so an empty list still has every column)."""

from __future__ import annotations

from collections.abc import Iterable

import pyarrow as pa

from osipi_dagster.lake import LakeTable


def table_rows(table: LakeTable, rows: Iterable[dict]) -> pa.Table:
    """``rows`` as an Arrow table with ``table``'s columns (``ingested_at`` is added on write)."""
    spec = table.spec
    if spec is None:
        raise ValueError(f"{table} is not a table the connector knows: no schema to type its rows with.")
    fields = [field for field in spec.schema if field.name != "ingested_at"]
    return pa.Table.from_pylist(list(rows), schema=pa.schema(fields))
