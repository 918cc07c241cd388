"""Whole (``partition_date``, ``tag_shard``) partitions of the derived tables (silver and gold).

A derived partition is a pure function of its upstream partitions, so each run replaces the whole partition
in one atomic Delta commit (an overwrite of the partition ``partition_date = D AND tag_shard = S``), the
rows streamed into new Parquet files row group by row group, then committed. Running it twice gives the same
rows; readers see the old partition or the new one, never a mix, and nothing outside the partition is
touched.

Reading is streamed too, so memory does not grow with the partition: :func:`scan_partition` yields a
partition's rows batch by batch, file after file, in the order each file holds them. The order of a table's
files is not the order they were written in (and partitions written by earlier versions, through delta-rs's
writer, hold the batches of one write in another order than they were given): rows written sorted may be
read back sorted only by runs, so readers sort.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Collection, Iterable, Iterator, Sequence
from datetime import date, datetime

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from osipi_dagster.lake.errors import LakeError
from osipi_dagster.lake.schemas import SILVER_TIMESERIES
from osipi_dagster.lake.streaming import ParquetLayout, StampedStream, overwrite_files
from osipi_dagster.lake.tables import (
    LakeTable,
    WriteResult,
    ensure_table,
    local_folder,
    require_utc,
    spec_of,
    sql_literal,
    utc_now,
    without_columns,
)
from osipi_dagster.lake.timeseries import ROW_GROUP_ROWS, TARGET_FILE_SIZE

PARTITION_COLUMNS = ("partition_date", "tag_shard")
WRITER_COLUMNS = (*PARTITION_COLUMNS, "ingested_at")  # what replace_partition adds to every row
SCAN_BATCH_ROWS = 256 * 1024

# How a table's columns are encoded where Parquet's defaults cost more than they give (measured with
# benchmarks/bench_silver_gold.py: the writer's CPU a silver value 0.56 -> 0.42 µs, files 21 -> 9 bytes a
# row). Times increase within a point: delta encoding stores them in about a byte instead of eight and
# spares the writer a dictionary it abandons. Values rarely repeat: no dictionary either. The strings (AF
# context, names, units, states) repeat one value a point or so: nobody filters on them by range, so no
# min/max statistics; web_id keeps its statistics (readers prune row groups by point), and tag_shard is a
# partition column, not in the files.
_PRUNED = ("web_id", "tag_shard")
_LAYOUTS: dict[str, ParquetLayout] = {
    SILVER_TIMESERIES.name: ParquetLayout(
        ROW_GROUP_ROWS,
        TARGET_FILE_SIZE,
        plain=frozenset({"value"}),
        delta_encoded=frozenset({"timestamp", "timestamp_ns"}),
        unfiltered=frozenset(
            f.name for f in SILVER_TIMESERIES.schema if f.type == pa.string() and f.name not in _PRUNED
        ),
    ),
}


def parquet_layout(table_name: str) -> ParquetLayout:
    """How :func:`replace_partition` lays out the files of the table ``table_name``."""
    return _LAYOUTS.get(table_name, ParquetLayout(ROW_GROUP_ROWS, TARGET_FILE_SIZE))


def partition_predicate(partition_date: date, tag_shard: str) -> str:
    """The Delta predicate selecting one (date, shard) partition."""
    return (
        f"partition_date = {sql_literal(partition_date.isoformat())} AND tag_shard = {sql_literal(tag_shard)}"
    )


def read_partition(
    table: LakeTable,
    partition_date: date,
    tag_shard: str,
    columns: Sequence[str],
    *,
    dictionary_columns: Collection[str] = (),
) -> pa.Table | None:
    """The rows of one partition (``columns`` only, in the order the table's files hold them), or None when
    the table does not exist yet.

    ``dictionary_columns`` are read dictionary-encoded, as parquet stores them: a column repeating a few
    long strings (a WebId per value) then costs 4 bytes a row instead of the string.
    """
    if not table.exists():
        return None
    return _dataset(table, partition_date, tag_shard, dictionary_columns).to_table(
        columns=list(columns), filter=_partition_filter(partition_date, tag_shard)
    )


def partition_written_at(table: LakeTable, partition_date: date, tag_shard: str) -> datetime | None:
    """When the partition was last replaced (the ``ingested_at`` :func:`replace_partition` gives all its
    rows), or None when it holds no rows; read from one row of one file."""
    if not table.exists():
        return None
    for file in _partition_files(table, partition_date, tag_shard, (), ()):
        if file.metadata.num_rows:
            return next(file.iter_batches(batch_size=1, columns=["ingested_at"])).column(0)[0].as_py()
    return None


def scan_partition(
    table: LakeTable,
    partition_date: date,
    tag_shard: str,
    columns: Sequence[str],
    *,
    dictionary_columns: Collection[str] = (),
    batch_rows: int = SCAN_BATCH_ROWS,
) -> Iterator[pa.RecordBatch]:
    """The rows of one partition (``columns`` only) batch by batch: file after file, each file's rows in
    the order they were written; nothing when the table does not exist yet.

    The table is opened here, not when the iterator is first read, so the iterator can be read inside a
    delta-rs write (which cannot open a table from its own threads). Files are read sequentially (Arrow's
    dataset scanner may hand batches over out of order), so memory holds about one batch.
    """
    if not table.exists():
        return iter(())
    files = _partition_files(table, partition_date, tag_shard, columns, dictionary_columns)
    return _file_batches(files, columns, batch_rows)


def scan_partition_in_order(
    table: LakeTable,
    partition_date: date,
    tag_shard: str,
    columns: Sequence[str],
    *,
    key: str,
    dictionary_columns: Collection[str] = (),
    batch_rows: int = SCAN_BATCH_ROWS,
) -> Iterator[pa.RecordBatch] | None:
    """The rows of one partition like :func:`scan_partition`, its files read in the order of their ``key``
    column, when the files' footers show that the row groups, in that order, hold ranges of ``key`` that
    follow one another (each starts at or after the end of the one before: rows of one ``key`` value in
    consecutive row groups); None when they overlap or a row group has no statistics of ``key``. Rows within
    a row group may still be in any order: the footers say only where each row group's range lies."""
    if not table.exists():
        return iter(())
    files = _partition_files(table, partition_date, tag_shard, columns, dictionary_columns)
    ranges = [_key_ranges(file, key) for file in files]
    if any(found is None for found in ranges):
        return None
    ordered = sorted(
        ((found, file) for found, file in zip(ranges, files, strict=True) if found), key=lambda pair: pair[0]
    )
    bounds = [bound for found, _ in ordered for group in found for bound in group]
    if any(later < earlier for earlier, later in itertools.pairwise(bounds)):
        return None
    return _file_batches([file for _, file in ordered], columns, batch_rows)


def _key_ranges(file: pq.ParquetFile, key: str) -> list[tuple[object, object]] | None:
    """The (smallest, largest) ``key`` of each non-empty row group of ``file`` from its footer, in the file's
    order; None when a row group has no such statistics."""
    metadata = file.metadata
    names = [metadata.schema.column(i).name for i in range(metadata.num_columns)]
    if key not in names:
        return None
    found = []
    for group in range(metadata.num_row_groups):
        chunk = metadata.row_group(group)
        if not chunk.num_rows:
            continue
        statistics = chunk.column(names.index(key)).statistics
        if statistics is None or not statistics.has_min_max:
            return None
        found.append((statistics.min, statistics.max))
    return found


def _partition_files(
    table: LakeTable,
    partition_date: date,
    tag_shard: str,
    columns: Sequence[str],
    dictionary_columns: Collection[str],
) -> list[pq.ParquetFile]:
    """The partition's data files, in the table's order, opened to read ``dictionary_columns`` as such."""
    fragments = _dataset(table, partition_date, tag_shard, ()).get_fragments(
        filter=_partition_filter(partition_date, tag_shard)
    )
    wanted = [name for name in columns if name in dictionary_columns]
    return [
        pq.ParquetFile(fragment.path, filesystem=_files_of(table, fragment), read_dictionary=wanted)
        for fragment in fragments
    ]


def _files_of(table: LakeTable, fragment: ds.Fragment) -> pafs.FileSystem:
    """The file system to read a table's files with: Arrow's own for a local table (measured: reading
    through delta-rs's Python file handles peaks about 200 MB higher while a 1,000-point day is scanned),
    delta-rs's otherwise (object stores, with the table's credentials)."""
    return local_folder(table) or fragment.filesystem


def _file_batches(
    files: list[pq.ParquetFile], columns: Sequence[str], batch_rows: int
) -> Iterator[pa.RecordBatch]:
    """The files' batches, each file closed and let go once read (a read file's reader keeps its buffers:
    measured, holding them all took about 900 MB more over a 1,000-point day)."""
    while files:
        with files.pop(0) as file:
            yield from file.iter_batches(batch_size=batch_rows, columns=list(columns))


def _dataset(
    table: LakeTable, partition_date: date, tag_shard: str, dictionary_columns: Collection[str]
) -> ds.Dataset:
    """The partition's files only (a dataset of the whole table costs about 0.1 ms a file to build)."""
    options = ds.ParquetReadOptions(dictionary_columns=set(dictionary_columns))
    return table.partition_dataset(
        {"partition_date": partition_date, "tag_shard": tag_shard}, read_options=options
    )


def _partition_filter(partition_date: date, tag_shard: str) -> ds.Expression:
    return (ds.field("partition_date") == pa.scalar(partition_date, pa.date32())) & (
        ds.field("tag_shard") == tag_shard
    )


def replace_partition(
    table: LakeTable,
    batches: Iterable[pa.RecordBatch],
    *,
    partition_date: date,
    tag_shard: str,
    dictionary_columns: Collection[str] = (),
    ingested_at: datetime | None = None,
) -> WriteResult:
    """Replace the partition (``partition_date``, ``tag_shard``) of ``table`` with ``batches``, in one commit.

    The batches hold every column of the table's spec but ``partition_date``, ``tag_shard`` and
    ``ingested_at``, which are added here. String columns named in ``dictionary_columns`` come
    dictionary-encoded (``dictionary<int32, string>``): a column repeating a few long strings (a WebId, an AF
    path) then never exists row by row in memory, and Parquet stores the dictionary and the indices as they
    are (a dictionary must not repeat a value). The batches are streamed into the files, so memory holds
    about two row groups (``ROW_GROUP_ROWS``) on the writer's side. An
    error raised by the iterator, or a batch that does not fit the spec
    (:class:`~osipi_dagster.lake.errors.InvalidRowsError`), aborts the write: nothing is committed.

    Raises:
        InvalidRowsError: a batch lacks a column, has an unexpected one, or a null where none may be.
        ConcurrentWriteError: another writer changed the partition at the same time; re-run.
    """
    started = time.perf_counter()
    spec = spec_of(table)
    if tuple(spec.partition_by) != PARTITION_COLUMNS:
        raise LakeError(
            f"{table} is not partitioned by {PARTITION_COLUMNS}: replace_partition cannot write it."
        )
    schema = _with_dictionaries(without_columns(spec.schema, PARTITION_COLUMNS), dictionary_columns)
    stream = StampedStream(batches, table, schema, require_utc(ingested_at or utc_now(), what="ingested_at"))
    predicate = partition_predicate(partition_date, tag_shard)
    commit = overwrite_files(
        table,
        ensure_table(table),
        stream,
        schema,
        partition_values={"partition_date": partition_date.isoformat(), "tag_shard": tag_shard},
        layout=parquet_layout(spec.name),
        rows_named=f"{table} partition {partition_date.isoformat()}|{tag_shard}",
        advice="Run one materialization of a partition at a time, then re-run.",
    )
    return WriteResult.of(table, commit, rows=stream.rows, predicate=predicate, started=started)


def _with_dictionaries(schema: pa.Schema, names: Collection[str]) -> pa.Schema:
    unknown = [name for name in names if name not in schema.names or schema.field(name).type != pa.string()]
    if unknown:
        raise LakeError(f"Only string columns of the table can be dictionary-encoded, not {unknown}.")
    dictionary = pa.dictionary(pa.int32(), pa.string())
    return pa.schema([f.with_type(dictionary) if f.name in names else f for f in schema])
