"""One atomic Delta overwrite fed batch by batch from a Python iterator, for the writers that replace a slice
of a partition (``bronze.pi_timeseries``), a whole partition (silver and gold) or a whole table (the catalog).

The caller's batches are converted and checked on their way into the files (:class:`BatchStream`), so
memory holds about two row groups on the writer's side whatever the size of the slice; any failure, the
stream's own or a conflicting writer's, leaves the table as it was (:func:`overwrite_files`).
"""

from __future__ import annotations

import itertools
import json
import math
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from deltalake import CommitProperties, DeltaTable
from deltalake.exceptions import CommitFailedError
from deltalake.transaction import AddAction, RemoveAction, Transaction

from osipi_dagster.lake.errors import ConcurrentWriteError, LakeError
from osipi_dagster.lake.schemas import UTC_US
from osipi_dagster.lake.tables import (
    Commit,
    LakeTable,
    conform,
    spec_of,
    table_files,
    tagged_commit,
    without_columns,
)

_SAFE_FOLDER = re.compile(r"[A-Za-z0-9_.-]{1,100}")
_BATCH_ROWS = 65_536  # rows a batch when a file is read back to be rewritten
_COMMIT_ATTEMPTS = 10  # commits of one write while other partitions' writers keep removing files
_DELETED_WHILE_READ = "concurrent transaction deleted data"  # delta-rs's ConcurrentDeleteRead


class BatchStream(Iterator[pa.RecordBatch]):
    """The caller's batches converted by :meth:`convert`, counting rows and remembering the first failure.

    Keeping the original lets :func:`overwrite_files` re-raise it unchanged, with a note that nothing was
    committed, whatever wrapped it on the way.
    """

    def __init__(self, batches: Iterable[pa.RecordBatch]) -> None:
        self._batches = iter(batches)
        self.rows = 0
        self.error: BaseException | None = None

    def convert(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """The batch as the table stores it; raise to abort the write."""
        raise NotImplementedError

    def __next__(self) -> pa.RecordBatch:
        try:
            converted = self.convert(next(self._batches))
        except StopIteration:
            raise
        except BaseException as exc:
            self.error = exc
            raise
        self.rows += converted.num_rows
        return converted


class StampedStream(BatchStream):
    """The caller's batches conformed to ``schema`` (the columns the table's files hold) but its
    ``ingested_at``, which is added here (partition columns are in the files' folder and the Delta log, not
    in the files)."""

    def __init__(
        self, batches: Iterable[pa.RecordBatch], table: LakeTable, schema: pa.Schema, ingested_at: datetime
    ) -> None:
        super().__init__(batches)
        self._schema = schema
        self._input_schema = without_columns(schema, ["ingested_at"])
        self._what = f"A batch for {table}"
        self._ingested_at = pa.scalar(ingested_at, UTC_US)
        self._stamps = pa.repeat(self._ingested_at, 0)

    def _repeated(self, rows: int) -> pa.Array:
        """``ingested_at`` for a batch of ``rows``, kept for the next batch (most have one size)."""
        if len(self._stamps) != rows:
            self._stamps = pa.repeat(self._ingested_at, rows)
        return self._stamps

    def convert(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        batch = conform(batch, self._input_schema, what=self._what)
        columns = {name: batch.column(name) for name in self._input_schema.names}
        columns["ingested_at"] = self._repeated(batch.num_rows)
        return pa.RecordBatch.from_arrays([columns[name] for name in self._schema.names], schema=self._schema)


def _committed(
    table: LakeTable,
    delta_table: DeltaTable,
    stream: BatchStream,
    write: Callable[[CommitProperties], None],
    *,
    rows_named: str,
    advice: str,
) -> Commit:
    """The commit ``write`` made (:func:`tagged_commit`), its failures as the writers' docstrings say."""
    version_before = delta_table.version()
    try:
        return tagged_commit(table, delta_table, write)
    except Exception as exc:
        if stream.error is not None:
            stream.error.add_note(f"Nothing was committed: {table} stays at version {version_before}.")
            raise stream.error from None
        if isinstance(exc, CommitFailedError):
            raise ConcurrentWriteError(
                f"Another writer changed {rows_named} at the same time, so this write was not committed "
                f"({exc}). {advice}"
            ) from exc
        raise


@dataclass(frozen=True)
class ParquetLayout:
    """How :func:`overwrite_files` lays out a table's files: rows per row
    group, bytes per file, and column encodings where Parquet's defaults cost more than they give:
    ``plain`` columns get no dictionary, ``delta_encoded`` ones (sorted integers and times)
    ``DELTA_BINARY_PACKED`` and no dictionary, ``unfiltered`` ones no statistics (nobody prunes by them)."""

    row_group_rows: int
    target_file_size: int
    plain: frozenset[str] = frozenset()
    delta_encoded: frozenset[str] = frozenset()
    unfiltered: frozenset[str] = frozenset()
    # "none" where the columns are mostly encoded already (silver, gold); the catalog's text compresses.
    compression: str = "none"

    def writer_options(self, schema: pa.Schema) -> dict[str, object]:
        """``pyarrow.parquet.ParquetWriter`` options for files of ``schema``."""
        return {
            "compression": self.compression,
            "use_dictionary": [n for n in schema.names if n not in self.plain | self.delta_encoded],
            "column_encoding": dict.fromkeys(
                sorted(self.delta_encoded & set(schema.names)), "DELTA_BINARY_PACKED"
            )
            or None,
            "write_statistics": [n for n in schema.names if n not in self.unfiltered],
            "store_schema": False,  # the Delta log holds the schema
        }


@dataclass(frozen=True)
class RowSelection:
    """The rows of one partition a write replaces, when it does not replace them all.

    ``rows`` selects them: an Arrow expression on the files' columns (the partition's columns are not in
    the files). Every selected row lies in ``bounds``, ``(column, start, end)`` meaning
    ``start <= column < end`` for an integer column the Delta log keeps exact statistics of, so a file whose
    statistics put it outside is left unread; when ``bounded_only``, the selected rows are exactly those in
    the bounds, and a file whose statistics put it inside is removed unread.
    """

    rows: ds.Expression
    columns: frozenset[str]  # the columns ``rows`` reads
    bounds: tuple[str, int, int]
    bounded_only: bool


def overwrite_files(
    table: LakeTable,
    delta_table: DeltaTable,
    stream: BatchStream,
    schema: pa.Schema,
    *,
    partition_values: Mapping[str, str],
    layout: ParquetLayout,
    rows_named: str,
    advice: str,
    selection: RowSelection | None = None,
) -> Commit:
    """Replace the partition ``partition_values`` of ``table`` (the whole table when it is empty), or only
    its rows in ``selection``, with ``stream``'s rows, in one commit: the rows are written into new Parquet
    files (``schema``: the table's columns but the partition columns) by Arrow's Parquet writer, then
    committed by delta-rs.

    With a ``selection``, the partition's files that hold selected rows are removed, and those that also
    hold other rows have these written again, unchanged, into the new files (what a Delta ``DELETE`` does);
    files without selected rows stay as they are.

    The commit claims the partition: it carries a Delta application transaction (``txn``) named after it,
    and delta-rs fails a commit whose application transaction another commit made since its snapshot. So of
    two writes of one partition that overlap in time, whichever rows they select, only the first to commit
    does: the other fails with :class:`ConcurrentWriteError`. Without it, a write that removed no file (the
    partition empty when it began, or a selection no file held yet) would commit its files beside those of
    a replace made meanwhile, and the partition would hold both.

    Why not ``write_deltalake``: delta-rs's Parquet writer re-hashes every string of a dictionary-encoded
    column row by row, and silver has thirteen (``benchmarks/bench_silver_gold.py --compare-writers``, 2 M
    silver rows with the same encodings: 0.88 µs of CPU a row in delta-rs, 0.26 in Arrow's writer, which
    takes a dictionary array's indices as they are; docs/BENCHMARKS.md); bronze's recorded values cost 131-136
    ns a row through delta-rs, 91-93 through this (docs/BENCHMARKS.md, "Bronze through Arrow's writer"). And
    delta-rs holds far more than a row group in memory while it writes (a 420,000-row catalog table:
    +271 MiB; ``benchmarks/bench_catalog.py``).
    Files written before a failure stay in the table's folder unreferenced, as delta-rs's own do.

    Raises:
        BaseException: the stream's own error, unchanged, with a note that nothing was committed.
        ConcurrentWriteError: another writer changed the partition at the same time; nothing was committed.
        LakeError: a file to rewrite has rows the selection can neither select nor keep (a null where the
            selection reads), or not the rows it had when planned; nothing was committed.
    """
    filters = [(name, "=", value) for name, value in partition_values.items()] or None
    files = table_files(table)
    if selection is None:
        removed: list[RemoveAction] = []
        rewritten: list[_Rewrite] = []
        replaced = len(delta_table.file_uris(file_pruning_predicate=filters))
    else:
        removed, rewritten = _replaced_files(delta_table, files, partition_values, selection)
        replaced = len(removed)
    now_ns = time.time_ns()
    claim = Transaction(claim_id(table, partition_values), now_ns, last_updated=now_ns // 1_000_000)
    added: list[AddAction] = []

    def write(properties: CommitProperties) -> None:
        rows = _kept_rows(files, rewritten, selection, schema) if selection else iter(())
        added.extend(_write_files(files, itertools.chain(rows, stream), schema, partition_values, layout))
        snapshot = delta_table
        for attempt in range(1, _COMMIT_ATTEMPTS + 1):
            try:
                snapshot.create_write_transaction(
                    [*added, *removed],
                    mode="overwrite" if selection is None else "append",
                    schema=spec_of(table).schema,
                    partition_by=list(partition_values),
                    partition_filters=filters if selection is None else None,
                    commit_properties=CommitProperties(
                        custom_metadata=properties.custom_metadata, app_transactions=[claim]
                    ),
                )
                return
            except CommitFailedError as exc:
                # delta-rs fails a commit of file actions whenever another commit removed any file of the
                # table since its snapshot (it cannot tell which files this one read). When the partition
                # holds the same files as at the snapshot, the other commit replaced another partition (a
                # writer of this one carries this claim, and fails the commit instead): commit again.
                if attempt == _COMMIT_ATTEMPTS or _DELETED_WHILE_READ not in str(exc):
                    raise
                fresh = table.load()
                if _partition_files(fresh, filters) != _partition_files(snapshot, filters):
                    raise
                snapshot = fresh

    commit = _committed(table, delta_table, stream, write, rows_named=rows_named, advice=advice)
    # delta-rs records no operation metrics for a commit of add actions: the counts are known here.
    return replace(commit, files_added=len(added), files_removed=replaced)


def _partition_files(delta_table: DeltaTable, filters: list | None) -> set[str]:
    return set(delta_table.file_uris(file_pruning_predicate=filters))


@dataclass(frozen=True)
class _Rewrite:
    """A file that holds selected rows and others: the others are written again."""

    path: str
    kept_rows: int


def _replaced_files(
    delta_table: DeltaTable,
    files: pafs.FileSystem,
    partition_values: Mapping[str, str],
    selection: RowSelection,
) -> tuple[list[RemoveAction], list[_Rewrite]]:
    """The partition's files that hold rows of ``selection`` (their remove actions), and those of them that
    also hold other rows. A file's statistics decide where they can (exact integer bounds); otherwise its
    selected and other rows are counted (reading only the columns the selection needs)."""
    actions = pa.table(delta_table.get_add_actions(flatten=True))
    for name, value in partition_values.items():  # in Arrow: a table's files, not a partition's, are many
        actions = actions.filter(pc.equal(actions.column(f"partition.{name}").cast(pa.string()), value))
    column, start, end = selection.bounds

    def values(name: str) -> list[object]:
        found = name in actions.column_names
        return actions.column(name).to_pylist() if found else [None] * actions.num_rows

    low, high, sizes = values(f"min.{column}"), values(f"max.{column}"), values("size_bytes")
    removed: list[RemoveAction] = []
    rewritten: list[_Rewrite] = []
    now_ms = int(time.time() * 1000)
    for i, path in enumerate(values("path")):
        bounded = low[i] is not None and high[i] is not None
        if bounded and (high[i] < start or low[i] >= end):
            continue
        if not (bounded and selection.bounded_only and start <= low[i] and high[i] < end):
            selected, kept = _count_rows(files, str(path), selection)
            if not selected:
                continue
            if kept:
                rewritten.append(_Rewrite(str(path), kept))
        removed.append(
            RemoveAction(
                path=str(path),
                data_change=True,
                deletion_timestamp=now_ms,
                size=sizes[i],
                partition_values=dict(partition_values),
            )
        )
    return removed, rewritten


def _count_rows(files: pafs.FileSystem, path: str, selection: RowSelection) -> tuple[int, int]:
    """How many of the file's rows ``selection`` selects and how many it does not."""
    with files.open_input_file(path) as source:
        parquet = pq.ParquetFile(source)
        selected = others = 0
        for batch in parquet.iter_batches(_BATCH_ROWS, columns=list(selection.columns)):
            selected += batch.filter(selection.rows).num_rows
            others += batch.filter(~selection.rows).num_rows
        neither = parquet.metadata.num_rows - selected - others
    if neither:
        raise LakeError(
            f"{neither} row(s) of {path} are neither in nor out of the rows this write replaces (a null "
            f"where the selection reads {sorted(selection.columns)}). Nothing was committed: repair the "
            "file's rows before this partition is written again."
        )
    return selected, others


def _kept_rows(
    files: pafs.FileSystem, rewritten: list[_Rewrite], selection: RowSelection, schema: pa.Schema
) -> Iterator[pa.RecordBatch]:
    """The rows of ``rewritten`` files that ``selection`` does not select, in their order, as ``schema``
    says (dictionary columns read as such; a column a file lacks as nulls)."""
    dictionaries = [f.name for f in schema if pa.types.is_dictionary(f.type)]
    for rewrite in rewritten:
        kept = 0
        with files.open_input_file(rewrite.path) as source:
            parquet = pq.ParquetFile(source, read_dictionary=dictionaries)
            stored = set(parquet.schema_arrow.names)
            for batch in parquet.iter_batches(_BATCH_ROWS, columns=[n for n in schema.names if n in stored]):
                rows = batch.filter(~selection.rows)
                kept += rows.num_rows
                yield _as_schema(rows, schema)
        if kept != rewrite.kept_rows:
            raise LakeError(
                f"{rewrite.path} held {rewrite.kept_rows} row(s) to keep when this write began and {kept} "
                "when it rewrote them. Nothing was committed: another writer changed the file meanwhile; "
                "re-run."
            )


def _as_schema(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    columns = [
        batch.column(f.name).cast(f.type)
        if f.name in batch.schema.names
        else pa.nulls(batch.num_rows, f.type)
        for f in schema
    ]
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def claim_id(table: LakeTable, partition_values: Mapping[str, str]) -> str:
    """The application transaction id the writes of this partition commit (see overwrite_files)."""
    return "osipi:" + "/".join([table.name, *(f"{k}={v}" for k, v in partition_values.items())])


def _write_files(
    files: pafs.FileSystem,
    stream: Iterator[pa.RecordBatch],
    schema: pa.Schema,
    partition_values: Mapping[str, str],
    layout: ParquetLayout,
) -> list[AddAction]:
    """Write ``stream`` into Parquet files of about ``layout.target_file_size`` bytes in the partition's
    folder, row groups of ``layout.row_group_rows`` rows; their add actions (with Delta's statistics)."""
    folder = "".join(f"{name}={_folder_name(value)}/" for name, value in partition_values.items())
    options = layout.writer_options(schema)
    added: list[AddAction] = []
    file: _PartFile | None = None
    writing: Future[None] | None = None
    # Arrow's writer lets go of the GIL: a row group is encoded in this thread while the stream produces
    # the next one in the caller's (two row groups in memory at most).
    with ThreadPoolExecutor(1, thread_name_prefix="parquet-writer") as writer:
        for rows in _row_groups(stream, schema, layout.row_group_rows):
            if writing is not None:
                writing.result()
            if file is not None and file.size >= layout.target_file_size:
                added.append(file.close(partition_values))
                file = None
            if file is None:
                file = _PartFile(files, f"{folder}part-{uuid.uuid4()}.parquet", schema, options)
            writing = writer.submit(file.write, rows, layout.row_group_rows)
        if writing is not None:
            writing.result()
    if file is not None:
        added.append(file.close(partition_values))
    return added


def _folder_name(value: str) -> str:
    """A partition value as a folder name: itself when it is safe in every store's paths, otherwise its
    UTF-8 bytes in hex (the folder is only a name: readers take partition values from the Delta log, and
    a percent-escaped name would be decoded by some readers and not by others)."""
    return value if _SAFE_FOLDER.fullmatch(value) else "x" + value.encode().hex()


def _row_groups(batches: Iterator[pa.RecordBatch], schema: pa.Schema, rows: int) -> Iterator[pa.Table]:
    """The batches gathered (not copied) into tables of at least ``rows`` rows, the last one smaller: Arrow's
    writer starts a row group at every table it is given. A dictionary column's chunks get one dictionary:
    given chunks with different ones, Arrow's writer falls back to plain values for the whole row group
    (bronze's batches, one dictionary a page: 89 bytes a row instead of 10)."""
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    for batch in batches:
        pending.append(batch)
        pending_rows += batch.num_rows
        if pending_rows >= rows:
            yield pa.Table.from_batches(pending, schema).unify_dictionaries()
            pending, pending_rows = [], 0
    if pending_rows:
        yield pa.Table.from_batches(pending, schema).unify_dictionaries()


class _PartFile:
    """One Parquet file being written into the table's folder."""

    def __init__(self, files: pafs.FileSystem, path: str, schema: pa.Schema, options: dict) -> None:
        self.path = path
        if "/" in path:
            files.create_dir(path.rsplit("/", 1)[0], recursive=True)
        self._sink = files.open_output_stream(path)
        self._writer = pq.ParquetWriter(self._sink, schema, **options)

    @property
    def size(self) -> int:
        return self._sink.tell()

    def write(self, rows: pa.Table, row_group_rows: int) -> None:
        self._writer.write_table(rows, row_group_size=row_group_rows)

    def close(self, partition_values: Mapping[str, str]) -> AddAction:
        self._writer.close()
        size = self._sink.tell()
        self._sink.close()
        return AddAction(
            path=self.path,
            size=size,
            partition_values=dict(partition_values),
            modification_time=int(time.time() * 1000),
            data_change=True,
            stats=json.dumps(file_statistics(self._writer.writer.metadata)),
        )


def file_statistics(metadata: pq.FileMetaData) -> dict[str, object]:
    """Delta's statistics of a Parquet file from its footer: its row count and, per column written with
    statistics, its minimum, maximum and null count, as delta-rs writes them (times in UTC to the
    millisecond, a maximum truncated like delta-rs's; no bounds that JSON cannot hold: NaN, infinities;
    none for a list column, whose Parquet statistics are its items')."""
    minimum: dict[str, object] = {}
    maximum: dict[str, object] = {}
    nulls: dict[str, int] = {}
    for i in range(metadata.num_columns):
        column = metadata.schema.column(i)
        if column.path != column.name:
            continue
        stats = [metadata.row_group(g).column(i).statistics for g in range(metadata.num_row_groups)]
        if not stats or any(s is None or not s.has_null_count for s in stats):
            continue
        name = column.name
        nulls[name] = sum(s.null_count for s in stats)
        bounded = [s for s in stats if s.has_min_max]
        if bounded:
            low, high = min(s.min for s in bounded), max(s.max for s in bounded)
            if _fits_json(low) and _fits_json(high):
                minimum[name], maximum[name] = _json_value(low), _json_value(high)
    return {"numRecords": metadata.num_rows, "minValues": minimum, "maxValues": maximum, "nullCount": nulls}


def _fits_json(value: object) -> bool:
    return not isinstance(value, float) or math.isfinite(value)


def _json_value(value: object) -> object:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    if isinstance(value, date):
        return value.isoformat()
    return value
