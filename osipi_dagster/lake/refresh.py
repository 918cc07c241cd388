"""Full refreshes of the small catalog tables, and the row diff reported in Dagster metadata.

``bronze.pi_points``, ``bronze.pi_af_hierarchy`` and ``bronze.pi_af_attributes`` are small (up to a few
hundred thousand rows) and read whole on every run, so each run replaces the whole table in one atomic
commit: readers see the old table or the new one, never a mix.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import write_deltalake

from osipi_dagster.lake.errors import InvalidRowsError
from osipi_dagster.lake.schemas import UTC_US
from osipi_dagster.lake.tables import (
    LakeTable,
    WriteResult,
    conform,
    ensure_table,
    require_utc,
    spec_of,
    sql_literal,
    tagged_commit,
    utc_now,
    without_columns,
)


@dataclass(frozen=True)
class RowDiff:
    """How the rows of a table changed between two versions, matched by key."""

    added: int
    removed: int
    changed: int
    unchanged: int


def overwrite_table(
    table: LakeTable, rows: pa.Table | pa.RecordBatch, *, ingested_at: datetime | None = None
) -> WriteResult:
    """Replace the whole table with ``rows`` (every spec column but ``ingested_at``) in one commit."""
    started = time.perf_counter()
    spec = spec_of(table)
    data = conform(pa.table(rows), without_columns(spec.schema, ["ingested_at"]), what=f"Rows for {table}")
    stamp = pa.scalar(require_utc(ingested_at or utc_now(), what="ingested_at"), UTC_US)
    data = data.append_column(spec.schema.field("ingested_at"), pa.repeat(stamp, data.num_rows)).select(
        spec.schema.names
    )
    delta_table = ensure_table(table)
    commit = tagged_commit(
        table,
        delta_table,
        lambda properties: write_deltalake(delta_table, data, mode="overwrite", commit_properties=properties),
    )
    return WriteResult.of(table, commit, rows=data.num_rows, predicate=None, started=started)


def replace_day(
    table: LakeTable, rows: pa.Table, partition_date: date, *, ingested_at: datetime | None = None
) -> WriteResult:
    """Replace the rows of one ``partition_date`` with ``rows`` (every spec column but ``ingested_at``; all
    of that day) in one commit; the other days are untouched."""
    started = time.perf_counter()
    spec = spec_of(table)
    data = conform(pa.table(rows), without_columns(spec.schema, ["ingested_at"]), what=f"Rows for {table}")
    if pc.any(pc.not_equal(data["partition_date"], pa.scalar(partition_date, pa.date32()))).as_py():
        raise InvalidRowsError(
            f"Rows for {table} must all have partition_date = {partition_date.isoformat()}."
        )
    stamp = pa.scalar(require_utc(ingested_at or utc_now(), what="ingested_at"), UTC_US)
    data = data.append_column(spec.schema.field("ingested_at"), pa.repeat(stamp, data.num_rows))
    delta_table = ensure_table(table)
    predicate = f"partition_date = {sql_literal(partition_date.isoformat())}"
    commit = tagged_commit(
        table,
        delta_table,
        lambda properties: write_deltalake(
            delta_table, data, mode="overwrite", predicate=predicate, commit_properties=properties
        ),
    )
    return WriteResult.of(table, commit, rows=data.num_rows, predicate=predicate, started=started)


def read_table(table: LakeTable) -> pa.Table | None:
    """The whole table, or None if it was never written (for diffs and small catalog reads)."""
    return table.load().to_pyarrow_table() if table.exists() else None


def diff_rows(
    before: pa.Table | None,
    after: pa.Table,
    *,
    key: Sequence[str],
    ignore: Collection[str] = ("ingested_at",),
) -> RowDiff:
    """Count rows added, removed, changed and unchanged from ``before`` to ``after``, matched by ``key``.

    Columns in ``ignore`` (by default ``ingested_at``, which changes on every write) and columns missing
    from either side are not compared. ``before=None`` means the table did not exist: every row is added.
    """
    compared = [name for name in after.schema.names if before is None or name in before.schema.names]
    after_rows = _rows_by_key(after.select(compared), key, ignore)
    before_rows = {} if before is None else _rows_by_key(before.select(compared), key, ignore)
    common = before_rows.keys() & after_rows.keys()
    changed = sum(1 for k in common if before_rows[k] != after_rows[k])
    return RowDiff(
        added=len(after_rows.keys() - before_rows.keys()),
        removed=len(before_rows.keys() - after_rows.keys()),
        changed=changed,
        unchanged=len(common) - changed,
    )


def _rows_by_key(rows: pa.Table, key: Sequence[str], ignore: Collection[str]) -> dict[tuple, dict]:
    values = rows.drop_columns([name for name in ignore if name in rows.schema.names]).to_pylist()
    return {tuple(row[column] for column in key): row for row in values}
