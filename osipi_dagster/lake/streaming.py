"""One atomic Delta overwrite fed batch by batch from a Python iterator, for the writers that replace a slice
of a table (``bronze.pi_timeseries``), a whole partition (silver and gold) or a whole table (the catalog).

The caller's batches are converted and checked on their way into the commit (:class:`BatchStream`), so
memory holds about one batch on the writer's side whatever the size of the slice; any failure, the
stream's own or a conflicting writer's, leaves the table as it was (:func:`overwrite_streamed`).
"""

from __future__ import annotations

import json
import math
import os
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from deltalake import ColumnProperties, CommitProperties, DeltaTable, WriterProperties, write_deltalake
from deltalake.exceptions import CommitFailedError
from deltalake.fs import DeltaStorageHandler
from deltalake.transaction import AddAction

from osipi_dagster.lake.errors import ConcurrentWriteError
from osipi_dagster.lake.schemas import UTC_US
from osipi_dagster.lake.tables import Commit, LakeTable, conform, spec_of, tagged_commit, without_columns

_LOCAL = pafs.LocalFileSystem()
_SAFE_FOLDER = re.compile(r"[A-Za-z0-9_.-]{1,100}")
# The most rows :func:`overwrite_streamed` hands delta-rs in one batch. In the one-stream plan that
# :func:`_single_writer_partition` gives, delta-rs keeps about ten of the batches it is handed (the caller's
# Arrow memory) before its writer is done with them, whatever their size: 25, 92 and 368 MiB for batches of
# 25,000, 100,000 and 400,000 rows of ``bronze.pi_timeseries`` (docs/BENCHMARKS.md, issue 11's peak). Slices
# of this size keep ten slices, one or two of the caller's batches (a slice is a view of its batch).
DELTA_RS_BATCH_ROWS = 16_384


class BatchStream(Iterator[pa.RecordBatch]):
    """The caller's batches converted by :meth:`convert`, counting rows and remembering the first failure.

    delta-rs wraps an exception raised by the stream in a generic ``DeltaError``; keeping the original lets
    :func:`overwrite_streamed` re-raise it unchanged, which is what the caller can act on.
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


def overwrite_streamed(
    table: LakeTable,
    delta_table: DeltaTable,
    stream: BatchStream,
    schema: pa.Schema,
    *,
    predicate: str,
    layout: ParquetLayout,
    rows_named: str,
    advice: str,
) -> Commit:
    """Replace the rows of ``table`` matching ``predicate`` with ``stream``'s, in one commit, written by
    delta-rs in files laid out as ``layout`` says.

    ``rows_named`` names the rows replaced and ``advice`` what to do when another writer changed them at the
    same time (the :class:`ConcurrentWriteError`'s message).

    Raises:
        BaseException: the stream's own error, unchanged, with a note that nothing was committed.
        ConcurrentWriteError: another writer changed the same rows at the same time; nothing was committed.
    """

    def write(properties: CommitProperties) -> None:
        with _single_writer_partition():
            write_deltalake(
                delta_table,
                pa.RecordBatchReader.from_batches(schema, _sliced(stream, DELTA_RS_BATCH_ROWS)),
                mode="overwrite",
                predicate=predicate,
                target_file_size=layout.target_file_size,
                writer_properties=layout.delta_rs_properties(),
                commit_properties=properties,
            )

    return _committed(table, delta_table, stream, write, rows_named=rows_named, advice=advice)


def _sliced(batches: Iterable[pa.RecordBatch], rows: int) -> Iterator[pa.RecordBatch]:
    """The batches cut into slices of at most ``rows`` rows (views, not copies)."""
    for batch in batches:
        for offset in range(0, batch.num_rows, rows):
            yield batch.slice(offset, rows)


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
    """How :func:`overwrite_files` and :func:`overwrite_streamed` lay out a table's files: rows per row
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

    def delta_rs_properties(self) -> WriterProperties:
        """The same layout for delta-rs's Parquet writer (``write_deltalake``)."""
        delta: dict[str, ColumnProperties] = {}
        for name in self.plain | self.delta_encoded | self.unfiltered:
            delta[name] = ColumnProperties(
                dictionary_enabled=False if name in self.plain | self.delta_encoded else None,
                encoding="DELTA_BINARY_PACKED" if name in self.delta_encoded else None,
                statistics_enabled="NONE" if name in self.unfiltered else None,
            )
        return WriterProperties(
            max_row_group_size=self.row_group_rows,
            compression="UNCOMPRESSED" if self.compression == "none" else self.compression.upper(),
            column_properties=delta or None,
        )


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
) -> Commit:
    """Replace the partition ``partition_values`` of ``table`` (the whole table when it is empty) with
    ``stream``'s rows, in one commit: the rows are written into new Parquet files (``schema``: the table's
    columns but the partition columns) by Arrow's Parquet writer, then committed by delta-rs as one
    overwrite of the partition.

    Why not ``write_deltalake``: delta-rs's Parquet writer re-hashes every string of a dictionary-encoded
    column row by row, and silver has thirteen (``benchmarks/bench_silver_gold.py --compare-writers``, 2 M
    silver rows with the same encodings: 0.88 µs of CPU a row in delta-rs, 0.26 in Arrow's writer, which
    takes a dictionary array's indices as they are; docs/BENCHMARKS.md), and it holds far more than a row
    group in memory while it writes (a 420,000-row catalog table: +271 MiB; ``benchmarks/bench_catalog.py``).
    Files written before a failure stay in the table's folder unreferenced, as delta-rs's own do:
    ``vacuum`` removes them once they are older than the retention period.

    Raises:
        BaseException: the stream's own error, unchanged, with a note that nothing was committed.
        ConcurrentWriteError: another writer changed the partition at the same time; nothing was committed.
    """

    filters = [(name, "=", value) for name, value in partition_values.items()] or None
    replaced = len(delta_table.file_uris(file_pruning_predicate=filters))
    added: list[AddAction] = []

    def write(properties: CommitProperties) -> None:
        added.extend(_write_files(table, stream, schema, partition_values, layout))
        delta_table.create_write_transaction(
            added,
            mode="overwrite",
            schema=spec_of(table).schema,
            partition_by=list(partition_values),
            partition_filters=filters,
            commit_properties=properties,
        )

    commit = _committed(table, delta_table, stream, write, rows_named=rows_named, advice=advice)
    # delta-rs records no operation metrics for a commit of add actions: the counts are known here.
    return replace(commit, files_added=len(added), files_removed=replaced)


def _write_files(
    table: LakeTable,
    stream: BatchStream,
    schema: pa.Schema,
    partition_values: Mapping[str, str],
    layout: ParquetLayout,
) -> list[AddAction]:
    """Write ``stream`` into Parquet files of about ``layout.target_file_size`` bytes in the partition's
    folder, row groups of ``layout.row_group_rows`` rows; their add actions (with Delta's statistics)."""
    files = _files_of(table)
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
    writer starts a row group at every table it is given."""
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    for batch in batches:
        pending.append(batch)
        pending_rows += batch.num_rows
        if pending_rows >= rows:
            yield pa.Table.from_batches(pending, schema)
            pending, pending_rows = [], 0
    if pending_rows:
        yield pa.Table.from_batches(pending, schema)


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


def local_folder(table: LakeTable) -> pafs.FileSystem | None:
    """A local table's folder as Arrow's own file system, or None for a table in an object store."""
    uri = urlparse(table.uri)
    if uri.scheme == "file":
        return pafs.SubTreeFileSystem(uri.path, _LOCAL)
    if len(uri.scheme) <= 1:  # a path (with a drive letter on Windows)
        return pafs.SubTreeFileSystem(str(Path(table.uri).resolve()), _LOCAL)
    return None


def _files_of(table: LakeTable) -> pafs.FileSystem:
    """The table's folder as a file system: Arrow's own for a local table, delta-rs's (object stores, with
    the table's credentials) otherwise."""
    return local_folder(table) or pafs.PyFileSystem(DeltaStorageHandler(table.uri, table.delta_options))


@contextmanager
def _single_writer_partition() -> Iterator[None]:
    """Make delta-rs plan the write with one partition, so the input stream gets backpressure.

    delta-rs (1.6) hash-repartitions the input of a partitioned table by its partition columns into
    ``num_cpus`` streams. A slice has one partition value, so every row lands in the same stream, and
    DataFusion's repartition only blocks its producer once *every* output stream holds data: it never
    blocks here, and a producer faster than the parquet writer piles batches up in memory (measured:
    1.3 GiB for 20 M rows on 2 cores, growing with the day). delta-rs counts CPUs with the calling
    thread's affinity when it plans the write, so pinning this thread to one CPU for the call gives a
    one-stream plan that blocks the producer (flat ~0.5 GiB for 86 M rows), while the writing itself
    still runs on the tokio worker threads, which already exist and are not pinned. No-op where
    ``sched_setaffinity`` does not exist (macOS, Windows): memory then depends on the producer's pace.
    """
    if not hasattr(os, "sched_setaffinity"):
        yield
        return
    allowed = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(allowed)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, allowed)
