"""Whole (``partition_date``, ``tag_shard``) partitions of the derived tables (silver and gold).

A derived partition is a pure function of its upstream partitions, so each run replaces the whole partition
in one atomic Delta commit (an overwrite with the predicate ``partition_date = D AND tag_shard = S``), the
rows streamed into the commit batch by batch. Running it twice gives the same rows; readers see the old
partition or the new one, never a mix, and nothing outside the partition is touched.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable, Iterator, Sequence
from datetime import date, datetime

import pyarrow as pa
import pyarrow.dataset as ds
from deltalake import CommitProperties, WriterProperties, write_deltalake
from deltalake.exceptions import CommitFailedError

from osipi_dagster.lake.errors import ConcurrentWriteError, LakeError
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
from osipi_dagster.lake.timeseries import (
    ROW_GROUP_ROWS,
    TARGET_FILE_SIZE,
    _single_writer_partition,
)

PARTITION_COLUMNS = ("partition_date", "tag_shard")
WRITER_COLUMNS = (*PARTITION_COLUMNS, "ingested_at")  # what replace_partition adds to every row


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
    expression = (ds.field("partition_date") == pa.scalar(partition_date, pa.date32())) & (
        ds.field("tag_shard") == tag_shard
    )
    options = ds.ParquetReadOptions(dictionary_columns=set(dictionary_columns))
    dataset = table.load().to_pyarrow_dataset(parquet_read_options=options)
    return dataset.to_table(columns=list(columns), filter=expression)


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
    path) then never exists row by row in memory, and parquet stores it dictionary-encoded anyway. The
    batches are streamed into the commit, so memory holds one batch at a time on the writer's side. An
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
    delta_table = ensure_table(table)
    version_before = delta_table.version()
    predicate = partition_predicate(partition_date, tag_shard)
    schema = _with_dictionaries(spec.schema, dictionary_columns)
    stream = _PartitionStream(
        batches,
        table,
        schema,
        partition_date,
        tag_shard,
        require_utc(ingested_at or utc_now(), what="ingested_at"),
    )

    def write(properties: CommitProperties) -> None:
        with _single_writer_partition():
            write_deltalake(
                delta_table,
                pa.RecordBatchReader.from_batches(schema, stream),
                mode="overwrite",
                predicate=predicate,
                target_file_size=TARGET_FILE_SIZE,
                writer_properties=WriterProperties(max_row_group_size=ROW_GROUP_ROWS),
                commit_properties=properties,
            )

    try:
        commit = tagged_commit(table, delta_table, write)
    except Exception as exc:
        if stream.error is not None:
            stream.error.add_note(f"Nothing was committed: {table} stays at version {version_before}.")
            raise stream.error from None
        if isinstance(exc, CommitFailedError):
            raise ConcurrentWriteError(
                f"Another writer changed {table} partition {partition_date.isoformat()}|{tag_shard} at the "
                f"same time, so this write was not committed ({exc}). Run one materialization of a partition "
                "at a time, then re-run."
            ) from exc
        raise
    return WriteResult.of(table, commit, rows=stream.rows, predicate=predicate, started=started)


def _with_dictionaries(schema: pa.Schema, names: Collection[str]) -> pa.Schema:
    unknown = [name for name in names if name not in schema.names or schema.field(name).type != pa.string()]
    if unknown:
        raise LakeError(f"Only string columns of the table can be dictionary-encoded, not {unknown}.")
    dictionary = pa.dictionary(pa.int32(), pa.string())
    return pa.schema([f.with_type(dictionary) if f.name in names else f for f in schema])


class _PartitionStream(Iterator[pa.RecordBatch]):
    """Conforms the caller's batches to the table's spec and adds the partition columns, remembering any
    failure (delta-rs wraps an error raised by the stream in a generic one)."""

    def __init__(
        self,
        batches: Iterable[pa.RecordBatch],
        table: LakeTable,
        schema: pa.Schema,
        partition_date: date,
        tag_shard: str,
        ingested_at: datetime,
    ) -> None:
        self._batches = iter(batches)
        self._schema = schema
        self._input_schema = without_columns(schema, WRITER_COLUMNS)
        self._what = f"A batch for {table}"
        self._constants = {
            "partition_date": pa.scalar(partition_date, pa.date32()),
            "tag_shard": pa.scalar(tag_shard, pa.string()),
            "ingested_at": pa.scalar(ingested_at, UTC_US),
        }
        self.rows = 0
        self.error: BaseException | None = None

    def __next__(self) -> pa.RecordBatch:
        try:
            batch = conform(next(self._batches), self._input_schema, what=self._what)
        except StopIteration:
            raise
        except BaseException as exc:
            self.error = exc
            raise
        columns = {name: batch.column(name) for name in self._input_schema.names}
        columns.update({name: pa.repeat(value, batch.num_rows) for name, value in self._constants.items()})
        self.rows += batch.num_rows
        return pa.RecordBatch.from_arrays([columns[name] for name in self._schema.names], schema=self._schema)
