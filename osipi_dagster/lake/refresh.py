"""Full refreshes of the catalog tables, and the row diff reported in Dagster metadata.

``bronze.pi_points``, ``bronze.pi_af_hierarchy`` and ``bronze.pi_af_attributes`` are replaced whole by each
run, in one atomic commit: readers see the old table or the new one, never a mix. They hold up to a few
hundred thousand rows (a million attributes on a large AF server), so a refresh works page by page:
:class:`RowFingerprints` compares the new rows with the table's current rows as they arrive (in place, by
Arrow, while they come in the table's order; otherwise through 16 bytes a row: a hash of the key and one of
the row), :class:`StagedRows` spills them to a local Parquet file (:class:`ComparedRows`: only from the first
row that differs, so a refresh that changes nothing stages nothing), and :func:`overwrite_table_batches`
streams the staged rows into the commit. Memory holds one page, not a version of the table, let alone two.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from itertools import chain
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from deltalake import write_deltalake

from osipi_dagster.lake.errors import InvalidRowsError
from osipi_dagster.lake.schemas import UTC_US
from osipi_dagster.lake.streaming import ParquetLayout, StampedStream, overwrite_files
from osipi_dagster.lake.tables import (
    LakeTable,
    WriteResult,
    conform,
    ensure_table,
    local_folder,
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


def table_files(table: LakeTable) -> list[tuple[str, pafs.FileSystem]]:
    """The Parquet files of the table's current version (none if it was never written), to read with
    :func:`scan_files` (the same version however often, whatever commits meanwhile), in the order they
    were written: delta-rs lists the latest commit's first, and a catalog table written file after file in
    one commit then reads in the order its rows were written (:class:`RowFingerprints` matches rows in place
    in that order)."""
    if not table.exists():
        return []
    delta_table = table.load()
    actions = pa.table(delta_table.get_add_actions(flatten=True))
    written = dict(zip(actions["path"].to_pylist(), actions["modification_time"].to_pylist(), strict=True))
    fragments = sorted(
        delta_table.to_pyarrow_dataset().get_fragments(), key=lambda fragment: written.get(fragment.path, 0)
    )
    folder = local_folder(table)
    return [(fragment.path, folder or fragment.filesystem) for fragment in fragments]


def scan_files(
    files: Sequence[tuple[str, pafs.FileSystem]], columns: Sequence[str] | None, batch_rows: int
) -> Iterator[pa.RecordBatch]:
    """The rows of ``files`` (:func:`table_files`: a version of an unpartitioned table) batch by batch:
    memory for a batch, not the table.

    Files are read one after the other, decoded in this thread: Arrow's dataset scanner (decoding threads,
    read-ahead) kept far more (measured on a 420,000-row attribute table, 10,000-row batches hashed row by
    row as :class:`RowFingerprints` does: +265 MiB peak RSS against +71 MiB read this way).
    """
    wanted = None if columns is None else list(columns)
    for path, filesystem in files:
        with pq.ParquetFile(path, filesystem=filesystem) as file:
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
    """The rows a refresh lists compared with a table's current rows, by key: enough to count the rows it
    adds, removes and changes without holding either version of the table.

    A refresh usually lists the rows in the order the previous one wrote them (PI sorts its listings, and a
    refresh writes what it listed in that order), so rows are first compared **in place**: each new batch
    with the table's rows at the same positions, every column, by Arrow (exact: no hash, and memory for a
    batch). While every new row equals the table's row at its position, nothing is hashed, so a refresh that
    changes nothing hashes nothing. The first batch that differs (or runs past the table's end) switches to
    **fingerprints**, 16 bytes a row: a hash of the key and one of the other columns of each of the table's
    rows, the rows matched in place counted from their own hashes (equal rows hash equally), then each later
    batch hashed and matched by key.

    Hashes are Python's (salted per process): both sides must be fingerprinted by one process. Matching in
    place matches rows by position: it agrees with matching by key when keys are unique.
    """

    def __init__(self, table: LakeTable, *, key: Sequence[str], ignore: Collection[str] = ("ingested_at",)):
        self.key = list(key)
        self.ignore = frozenset(ignore)
        names = [name for name in spec_of(table).schema.names if name not in self.ignore]
        self.columns = [name for name in names if name not in self.key]
        # One version's files, listed once: the rows matched in place, hashed, then read again for a
        # commit (:meth:`in_place_rows`) are the same rows even if the table is replaced meanwhile.
        self._files = table_files(table)
        self._in_place: Iterator[pa.RecordBatch] | None = self._scan()
        self._held: list[pa.RecordBatch] = []  # rows read for matching in place, not yet matched
        self.in_place = 0  # the table's first rows, which the rows compared so far matched in place
        self._left = 0  # the table's rows after those, once counted by :meth:`diff`
        self._keys = self._rows = np.empty(0, np.int64)
        self._seen = np.empty(0, bool)
        self.added = self.changed = self.unchanged = 0

    def compare(self, batch: pa.RecordBatch) -> bool:
        """Count the rows of ``batch`` (the next new rows of the table) as added, changed or unchanged;
        True when they and every row compared before are the table's rows in place."""
        if not batch.num_rows:
            return self._in_place is not None
        if self._in_place is not None:
            previous = self._next_rows(batch.num_rows)
            if previous is not None and _same_rows(previous, batch.select(self.key + self.columns)):
                self.in_place += batch.num_rows
                return True
            self._fingerprint()
        if not len(self._keys):  # a new or empty table: every row is added, nothing to hash
            self.added += batch.num_rows
            return False
        self._count(*self._hash(batch))
        return False

    def diff(self) -> RowDiff:
        """What the rows compared so far did to the table."""
        if self._in_place is not None:
            # The table's rows that no new row reached are removed (counting them reads the rest).
            self._left += sum(batch.num_rows for batch in chain(self._held, self._in_place))
            self._held = []
            return RowDiff(added=0, removed=self._left, changed=0, unchanged=self.in_place)
        return RowDiff(
            added=self.added,
            removed=int((~self._seen).sum()),
            changed=self.changed,
            unchanged=self.unchanged,
        )

    def in_place_rows(self, batch_rows: int = 50_000) -> Iterator[pa.RecordBatch]:
        """The table's rows that the new rows matched in place (:attr:`in_place`: its first rows, all of
        the key and compared columns), read again from the version compared."""
        wanted = self.in_place
        if not wanted:
            return
        for batch in self._scan(batch_rows):
            yield batch.slice(0, wanted)
            wanted -= batch.num_rows
            if wanted <= 0:
                return

    def _scan(self, batch_rows: int = 10_000) -> Iterator[pa.RecordBatch]:
        return scan_files(self._files, [*self.key, *self.columns], batch_rows)

    def _next_rows(self, count: int) -> pa.Table | None:
        """The table's next ``count`` (at least one) rows for matching in place, or None when it has fewer
        left."""
        assert self._in_place is not None
        held = sum(batch.num_rows for batch in self._held)
        while held < count:
            batch = next(self._in_place, None)
            if batch is None:
                return None
            self._held.append(batch)
            held += batch.num_rows
        rows = pa.Table.from_batches(self._held)
        self._held = rows.slice(count).to_batches()
        return rows.slice(0, count)

    def _fingerprint(self) -> None:
        """Leave matching in place: hash every row of the table, and count the rows matched in place."""
        self._in_place, self._held = None, []
        keys, rows = [], []
        for batch in self._scan():
            batch_keys, batch_rows = self._hash(batch)
            keys.append(batch_keys)
            rows.append(batch_rows)
        key_hashes = np.concatenate(keys) if keys else np.empty(0, np.int64)
        row_hashes = np.concatenate(rows) if rows else np.empty(0, np.int64)
        order = np.argsort(key_hashes, kind="stable")
        self._keys, self._rows = key_hashes[order], row_hashes[order]
        self._seen = np.zeros(len(self._keys), bool)
        # The new rows matched in place are equal to the table's first rows: they hash as those do.
        self._count(key_hashes[: self.in_place], row_hashes[: self.in_place])

    def _count(self, keys: np.ndarray, rows: np.ndarray) -> None:
        at = np.searchsorted(self._keys, keys)
        found = at < len(self._keys)
        found[found] = self._keys[at[found]] == keys[found]
        self._seen[at[found]] = True
        same = self._rows[at[found]] == rows[found]
        self.added += int((~found).sum())
        self.unchanged += int(same.sum())
        self.changed += int((~same).sum())

    def _hash(self, batch: pa.RecordBatch) -> tuple[np.ndarray, np.ndarray]:
        keys = _row_tuples(batch, self.key)
        rows = _row_tuples(batch, self.columns)
        return (
            np.fromiter(map(hash, keys), np.int64, len(keys)),
            np.fromiter(map(hash, rows), np.int64, len(rows)),
        )


class ComparedRows:
    """The new rows of a catalog table, compared with its current rows (:class:`RowFingerprints`) and
    staged on local disk (:class:`StagedRows`) for its commit only from the first row that differs: while
    the new rows are the table's rows in place, they are not staged, since the table holds them; the first
    batch that differs stages the rows matched before it (read again from the version compared), then
    itself. A refresh that changes nothing stages nothing. Use it as a context manager (the staged file goes
    away on exit)."""

    def __init__(self, table: LakeTable, *, key: Sequence[str]) -> None:
        self.schema = without_columns(spec_of(table).schema, ["ingested_at"])
        self.prints = RowFingerprints(table, key=key, ignore=("ingested_at",))
        self.rows = 0
        self._staged = StagedRows(self.schema)
        self._in_place_staged = False

    def __enter__(self) -> ComparedRows:
        return self

    def __exit__(self, *exc: object) -> None:
        self._staged.__exit__(*exc)

    def append(self, batch: pa.RecordBatch) -> None:
        """Compare ``batch`` (``schema``'s columns, the next new rows) and stage it if anything differs."""
        self.rows += batch.num_rows
        if self.prints.compare(batch):
            return
        self._stage_in_place()
        self._staged.append(batch)

    def diff(self) -> RowDiff:
        """What the rows appended so far do to the table."""
        return self.prints.diff()

    def batches(self, batch_rows: int = 50_000) -> Iterator[pa.RecordBatch]:
        """Every row appended, in order, for a commit: the rows still matched in place are staged from
        the table here, so call it before the table is replaced."""
        self._stage_in_place()
        return self._staged.batches(batch_rows)

    def _stage_in_place(self) -> None:
        if not self._in_place_staged:
            self._in_place_staged = True
            for batch in self.prints.in_place_rows():
                self._staged.append(batch)


def _same_rows(previous: pa.Table, batch: pa.RecordBatch) -> bool:
    """Whether ``previous`` (rows read from a table) holds ``batch``'s rows, column by column: values and
    nulls alike, the types as the table stores them (a type that cannot be cast is a difference)."""
    new = pa.Table.from_batches([batch])
    if previous.num_rows != new.num_rows or previous.column_names != new.column_names:
        return False
    try:
        previous = previous.cast(new.schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return False
    return previous.equals(new)


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
