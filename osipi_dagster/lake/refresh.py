"""Full refreshes of the catalog tables, and the row diff reported in Dagster metadata.

``bronze.pi_points``, ``bronze.pi_af_hierarchy`` and ``bronze.pi_af_attributes`` are replaced whole by each
run, in one atomic commit: readers see the old table or the new one, never a mix. They hold up to a few
hundred thousand rows (a million attributes on a large AF server), so a refresh works page by page:
:class:`StagedRows` spills the new rows to a local Parquet file as they arrive, :class:`RowFingerprints`
compares them with the table's current rows through 16 bytes a row (a hash of the key and one of the row),
and :func:`overwrite_table_batches` streams the staged rows into the commit. Memory holds one page, not a
version of the table, let alone two.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from deltalake import write_deltalake

from osipi_dagster.lake.errors import InvalidRowsError
from osipi_dagster.lake.schemas import UTC_US
from osipi_dagster.lake.streaming import ParquetLayout, StampedStream, local_folder, overwrite_files
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

# The catalog tables' files, written by Arrow's Parquet writer: row groups of 50,000 rows (an attribute row
# is about 500 bytes before encoding, so a row group is about 25 MB), Snappy-compressed text as delta-rs
# wrote them before (paths and descriptions repeat their prefixes).
CATALOG_LAYOUT = ParquetLayout(
    row_group_rows=50_000, target_file_size=128 * 1024 * 1024, compression="snappy"
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


def overwrite_table_batches(
    table: LakeTable, batches: Iterable[pa.RecordBatch], *, ingested_at: datetime | None = None
) -> WriteResult:
    """Replace the whole table with ``batches`` (every spec column but ``ingested_at``) in one commit,
    streamed into Parquet files row group by row group (:func:`~osipi_dagster.lake.streaming.overwrite_files`:
    memory for about two row groups of :data:`CATALOG_LAYOUT`, whatever the size of the table).

    Raises:
        InvalidRowsError: a batch lacks a column, has an unexpected one, or a null where none may be;
            nothing is committed.
        ConcurrentWriteError: another writer replaced the table at the same time; nothing is committed.
    """
    started = time.perf_counter()
    spec = spec_of(table)
    stream = StampedStream(
        batches, table, spec.schema, require_utc(ingested_at or utc_now(), what="ingested_at")
    )
    commit = overwrite_files(
        table,
        ensure_table(table),
        stream,
        spec.schema,
        partition_values={},
        layout=CATALOG_LAYOUT,
        rows_named=str(table),
        advice="Run one refresh of the catalog at a time, then re-run.",
    )
    return WriteResult.of(table, commit, rows=stream.rows, predicate=None, started=started)


def scan_table(
    table: LakeTable, columns: Sequence[str] | None = None, *, batch_rows: int = 50_000
) -> Iterator[pa.RecordBatch]:
    """The rows of an unpartitioned table batch by batch (none if it was never written): memory for a
    batch, not the table.

    Files are read one after the other, decoded in this thread: Arrow's dataset scanner (decoding threads,
    read-ahead) kept far more (measured on a 420,000-row attribute table, 10,000-row batches hashed row by
    row as :class:`RowFingerprints` does: +265 MiB peak RSS against +71 MiB read this way).
    """
    if not table.exists():
        return
    folder = local_folder(table)
    wanted = None if columns is None else list(columns)
    for fragment in table.load().to_pyarrow_dataset().get_fragments():
        with pq.ParquetFile(fragment.path, filesystem=folder or fragment.filesystem) as file:
            yield from file.iter_batches(batch_size=batch_rows, columns=wanted, use_threads=False)


class StagedRows:
    """The rows of a refresh, spilled to a local Parquet file as they arrive (use it as a context manager:
    the file goes away on exit), so that a refresh can count and check all of them before it writes
    anything, in the memory of one batch."""

    def __init__(self, schema: pa.Schema) -> None:
        self.schema = schema
        self.rows = 0
        self._folder = tempfile.TemporaryDirectory(prefix="osipi-staged-")
        self._path = Path(self._folder.name) / "rows.parquet"
        self._writer: pq.ParquetWriter | None = pq.ParquetWriter(self._path, schema)

    def __enter__(self) -> StagedRows:
        return self

    def __exit__(self, *exc: object) -> None:
        self._close_writer()
        self._folder.cleanup()

    def append(self, batch: pa.RecordBatch) -> None:
        """Stage ``batch`` (``schema``'s columns)."""
        if self._writer is None:
            raise RuntimeError("rows cannot be staged once they are read back")
        self._writer.write_batch(batch.select(self.schema.names).cast(self.schema))
        self.rows += batch.num_rows

    def batches(self, batch_rows: int = 50_000) -> Iterator[pa.RecordBatch]:
        """The staged rows, in the order they were staged, decoded in this thread (Arrow's decoding threads
        kept about 30 MiB more while 420,000 attribute rows were streamed into a commit)."""
        self._close_writer()
        yield from pq.ParquetFile(self._path).iter_batches(batch_size=batch_rows, use_threads=False)

    def _close_writer(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class RowFingerprints:
    """A table's rows as a hash of their key and a hash of their other columns, 16 bytes a row: enough to
    count the rows a refresh adds, removes and changes without holding either version of the table.

    Hashes are Python's (salted per process): both sides must be fingerprinted by one process.
    """

    def __init__(self, table: LakeTable, *, key: Sequence[str], ignore: Collection[str] = ("ingested_at",)):
        self.key = list(key)
        self.ignore = frozenset(ignore)
        names = [name for name in spec_of(table).schema.names if name not in self.ignore]
        self.columns = [name for name in names if name not in self.key]
        keys, rows = [], []
        for batch in scan_table(table, [*self.key, *self.columns], batch_rows=10_000):
            batch_keys, batch_rows = self._hash(batch)
            keys.append(batch_keys)
            rows.append(batch_rows)
        key_hashes = np.concatenate(keys) if keys else np.empty(0, np.int64)
        order = np.argsort(key_hashes, kind="stable")
        self._keys = key_hashes[order]
        self._rows = (np.concatenate(rows) if rows else np.empty(0, np.int64))[order]
        self._seen = np.zeros(len(self._keys), bool)
        self.added = self.changed = self.unchanged = 0

    def compare(self, batch: pa.RecordBatch) -> None:
        """Count the rows of ``batch`` (new rows of the table) as added, changed or unchanged."""
        keys, rows = self._hash(batch)
        at = np.searchsorted(self._keys, keys)
        found = at < len(self._keys)
        found[found] = self._keys[at[found]] == keys[found]
        self._seen[at[found]] = True
        same = self._rows[at[found]] == rows[found]
        self.added += int((~found).sum())
        self.unchanged += int(same.sum())
        self.changed += int((~same).sum())

    def diff(self) -> RowDiff:
        """What the rows compared so far did to the table."""
        return RowDiff(
            added=self.added,
            removed=int((~self._seen).sum()),
            changed=self.changed,
            unchanged=self.unchanged,
        )

    def _hash(self, batch: pa.RecordBatch) -> tuple[np.ndarray, np.ndarray]:
        keys = _row_tuples(batch, self.key)
        rows = _row_tuples(batch, self.columns)
        return (
            np.fromiter(map(hash, keys), np.int64, len(keys)),
            np.fromiter(map(hash, rows), np.int64, len(rows)),
        )


def _row_tuples(batch: pa.RecordBatch, columns: Sequence[str]) -> list[tuple]:
    values = []
    for name in columns:
        column = batch.column(name).to_pylist()
        if pa.types.is_list(batch.schema.field(name).type):
            column = [None if item is None else tuple(item) for item in column]
        values.append(column)
    return list(zip(*values, strict=True)) if values else [()] * batch.num_rows


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
