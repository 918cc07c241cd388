"""Idempotent writes of PI recorded values into ``bronze.pi_timeseries``, and exact read-back.

A run owns one slice of the table, a (``partition_date``, ``tag_shard``) pair, or, for the incremental
open day, a time range of that slice, optionally only for some points. :func:`replace_slice` replaces
exactly that slice in one atomic Delta commit (the files holding its rows removed, their other rows written
again), streaming the client's record batches into new files so memory stays bounded whatever the size of
the day. Running it twice with the same values gives the same table contents: nothing is ever appended
twice, and two writes of one (date, shard) at once cannot both commit.

Timestamps: PI stores 100 ns ticks, Delta stores microseconds. The table keeps both ``timestamp``
(floored to the microsecond, for SQL and engines) and ``timestamp_ns`` (the exact nanoseconds since the
Unix epoch). Predicates compare ``timestamp_ns``, so sub-microsecond boundaries are exact, and
:func:`read_slice` rebuilds the exact ``timestamp('ns', 'UTC')`` column the client produced.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import date, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from osipi_dagster.contract import RECORDED_SCHEMA, day_bounds, dictionary_encoded, format_ns, to_ns
from osipi_dagster.lake.errors import InvalidRowsError
from osipi_dagster.lake.schemas import TIMESERIES, UTC_NS, UTC_US
from osipi_dagster.lake.streaming import BatchStream, ParquetLayout, RowSelection, overwrite_files
from osipi_dagster.lake.tables import (
    LakeTable,
    WriteResult,
    conform,
    ensure_table,
    require_utc,
    sql_literal,
    utc_now,
    without_columns,
)

# File sizing. The writer rolls a data file over once it holds target_file_size bytes, so every file but
# the last of a write is at least this big: at the ~10 bytes a row the benchmark's PI-like values take,
# 128 MiB is about 13 million rows a file, far above the 250,000-row floor. The writer holds about two row
# groups of the caller's batches (one being encoded, one being gathered), so the row group size bounds its
# memory (about 40 bytes a row of dictionary-encoded batches: ~40 MB for 1 Mi rows); 1 Mi rows keeps row
# groups large enough for efficient scans.
TARGET_FILE_SIZE = 128 * 1024 * 1024
ROW_GROUP_ROWS = 1024 * 1024

# Column encodings. A point's times increase, so DELTA_BINARY_PACKED stores a 1 Hz point's two time columns
# in a fraction of a byte a row (as silver's, lake/partitions.py), where Parquet's default dictionary
# overflows at once and falls back to 8 plain bytes each. Values keep their dictionary: PI's values often
# repeat (step, digital and coarsely quantised points), and on values that do not, dropping it saved next to
# nothing. End to end (then through delta-rs's writer), its CPU per value fell 17-24 %, the client's 5-8 % and
# files are 37 % smaller (docs/BENCHMARKS.md, "Bronze column encodings"). Every reader of the table reads it
# (delta-rs, pyarrow, DuckDB, Spark 3.3+).
BRONZE_LAYOUT = ParquetLayout(
    ROW_GROUP_ROWS, TARGET_FILE_SIZE, delta_encoded=frozenset({"timestamp", "timestamp_ns"})
)

_MAX_WEB_IDS_IN_MESSAGE = 5


# The batches reach the Parquet writer with WebIds and units as dictionary columns (plain ones are
# encoded): Parquet dictionary-encodes them anyway, and the client builds no 80-byte WebId per value (41-63 ->
# 4-5 ns a value; end to end 2-7 % less client CPU and a 26-99 MiB lower peak: docs/BENCHMARKS.md,
# "Dictionary-encoded WebIds"). The table's schema stays plain strings, and so do the columns its readers
# get. The files hold every column but the partition's (in their folder and the Delta log).
_RECORDED_DICTIONARY = dictionary_encoded(RECORDED_SCHEMA)
_WRITTEN_SCHEMA = dictionary_encoded(without_columns(TIMESERIES.schema, ["partition_date", "tag_shard"]))


@dataclass(frozen=True)
class TimeSlice:
    """The rows one write owns: a (date, shard) slice, optionally a time range and a set of points."""

    partition_date: date
    tag_shard: str
    start_ns: int
    end_ns: int
    web_ids: frozenset[str] | None
    whole_day: bool
    kept_web_ids: frozenset[str] = frozenset()

    @property
    def predicate(self) -> str:
        """The Delta predicate selecting exactly this slice's rows (timestamps compared exactly)."""
        terms = [
            f"partition_date = {sql_literal(self.partition_date.isoformat())}",
            f"tag_shard = {sql_literal(self.tag_shard)}",
        ]
        if not self.whole_day:
            terms += [f"timestamp_ns >= {self.start_ns}", f"timestamp_ns < {self.end_ns}"]
        if self.web_ids is not None:
            terms.append(f"web_id IN ({', '.join(sql_literal(w) for w in sorted(self.web_ids))})")
        if self.kept_web_ids:
            terms.append(f"web_id NOT IN ({', '.join(sql_literal(w) for w in sorted(self.kept_web_ids))})")
        return " AND ".join(terms)

    @property
    def rows(self) -> ds.Expression:
        """The slice's rows among its (date, shard) partition's (the files' columns: no partition's)."""
        rows = (ds.field("timestamp_ns") >= self.start_ns) & (ds.field("timestamp_ns") < self.end_ns)
        if self.web_ids is not None:
            rows &= ds.field("web_id").isin(sorted(self.web_ids))
        if self.kept_web_ids:
            rows &= ~ds.field("web_id").isin(sorted(self.kept_web_ids))
        return rows

    def selection(self) -> RowSelection | None:
        """The slice as the rows of its partition a write replaces; None when it is the whole partition."""
        points = self.web_ids is None and not self.kept_web_ids
        if self.whole_day and points:
            return None
        return RowSelection(
            self.rows,
            columns=frozenset({"timestamp_ns", "web_id"}),
            bounds=("timestamp_ns", self.start_ns, self.end_ns),
            bounded_only=points,
        )

    def describe(self) -> str:
        text = (
            f"partition_date={self.partition_date.isoformat()} tag_shard={self.tag_shard} "
            f"[{format_ns(self.start_ns)}, {format_ns(self.end_ns)})"
        )
        if self.kept_web_ids:
            text = f"{text} except {len(self.kept_web_ids)} kept point(s)"
        return text if self.web_ids is None else f"{text} for {len(self.web_ids)} point(s)"


def time_slice(
    partition_date: date | str,
    tag_shard: str,
    time_range: tuple[datetime, datetime] | None = None,
    web_ids: Collection[str] | None = None,
    kept_web_ids: Collection[str] = (),
) -> TimeSlice:
    """Validate and build the slice a write owns.

    Args:
        partition_date: the UTC day, as a ``date`` or an ISO ``YYYY-MM-DD`` string (a Dagster date key).
        tag_shard: the shard key, e.g. ``"s03"`` (simple ASCII: it becomes a folder name).
        time_range: ``(start, end)``, timezone-aware, start inclusive and end exclusive, inside the day;
            None means the whole day. ``pandas.Timestamp`` values keep their nanoseconds.
        web_ids: restrict the slice to these points; None means every point of the shard.
        kept_web_ids: points whose rows are not part of the slice (they stay, and no batch may hold them):
            the history of points the catalog keeps as deleted.
    """
    day = _parse_date(partition_date)
    if not isinstance(tag_shard, str) or not tag_shard.isascii() or not tag_shard.isidentifier():
        raise ValueError(
            f"tag_shard {tag_shard!r} is not a simple ASCII key: use letters, digits and underscores, "
            "e.g. 's03'."
        )
    day_start_ns, day_end_ns = map(to_ns, day_bounds(day))
    start_ns, end_ns = day_start_ns, day_end_ns
    if time_range is not None:
        start_ns = to_ns(require_utc(time_range[0], what="time_range start"))
        end_ns = to_ns(require_utc(time_range[1], what="time_range end"))
        if not day_start_ns <= start_ns < end_ns <= day_end_ns:
            raise ValueError(
                f"time_range [{format_ns(start_ns)}, {format_ns(end_ns)}) must be non-empty and inside the "
                f"partition's UTC day {day.isoformat()}: clip it to [{format_ns(day_start_ns)}, "
                f"{format_ns(day_end_ns)})."
            )
    points = None
    if web_ids is not None:
        points = frozenset(web_ids)
        if not points:
            raise ValueError("web_ids is empty: pass None to replace every point of the slice.")
    if points is not None and kept_web_ids:
        raise ValueError("Give web_ids (the points replaced) or kept_web_ids (the points kept), not both.")
    return TimeSlice(
        partition_date=day,
        tag_shard=tag_shard,
        start_ns=start_ns,
        end_ns=end_ns,
        web_ids=points,
        whole_day=(start_ns, end_ns) == (day_start_ns, day_end_ns),
        kept_web_ids=frozenset(kept_web_ids),
    )


def replace_slice(
    table: LakeTable,
    batches: Iterable[pa.RecordBatch],
    *,
    partition_date: date | str,
    tag_shard: str,
    time_range: tuple[datetime, datetime] | None = None,
    web_ids: Collection[str] | None = None,
    kept_web_ids: Collection[str] = (),
    ingested_at: datetime | None = None,
) -> WriteResult:
    """Replace one slice of ``bronze.pi_timeseries`` with ``batches``, in one atomic Delta commit.

    The slice is ``partition_date = D AND tag_shard = S``, narrowed by ``time_range`` (for the open day:
    ``timestamp >= start AND timestamp < end``), and by ``web_ids`` (only these points) or ``kept_web_ids``
    (all but these points) when given (see :func:`time_slice`).
    Every row of the slice that is not in ``batches`` is deleted, every row of ``batches`` is added, and
    no row outside the slice changes (a file holding rows of the slice and others is replaced by one holding
    the others unchanged: :func:`~osipi_dagster.lake.streaming.overwrite_files`).

    The batches (the PI client's ``RECORDED_SCHEMA``, its ``web_id`` and ``units`` plain or dictionary
    columns: ``read_recorded(dictionary=True)`` saves both sides a string per value) are streamed into
    Parquet files row group by row group, so a day of any size fits in bounded memory. Each batch is checked
    before it is written: a row outside the slice (another day, outside the time range, a point not in
    ``web_ids``), a missing column or a null in a required column raises :class:`InvalidRowsError`; that
    error, or any error raised by the iterator itself, aborts the write and nothing is committed (files
    already written are unreferenced and invisible to readers).

    The commit claims the (date, shard) partition: of two writes of one partition at the same time, whatever
    their slices, only one commits.

    Raises:
        InvalidRowsError: a batch breaks the contract above; the table is unchanged.
        ConcurrentWriteError: another writer wrote the same (date, shard) partition at the same time; re-run.
    """
    started = time.perf_counter()
    target = time_slice(partition_date, tag_shard, time_range, web_ids, kept_web_ids)
    delta_table = ensure_table(table)
    stream = _SliceStream(batches, target, require_utc(ingested_at or utc_now(), what="ingested_at"))
    commit = overwrite_files(
        table,
        delta_table,
        stream,
        _WRITTEN_SCHEMA,
        partition_values={"partition_date": target.partition_date.isoformat(), "tag_shard": tag_shard},
        layout=BRONZE_LAYOUT,
        rows_named=f"{table} partition {target.partition_date.isoformat()}|{tag_shard}",
        advice="Make sure one run at a time writes a (date, shard) partition, then re-run.",
        selection=target.selection(),
    )
    return WriteResult.of(table, commit, rows=stream.rows, predicate=target.predicate, started=started)


class _SliceStream(BatchStream):
    """Checks the client's batches against the slice and converts them to the table's schema."""

    def __init__(self, batches: Iterable[pa.RecordBatch], target: TimeSlice, ingested_at: datetime) -> None:
        super().__init__(batches)
        self._target = target
        self._ingested_at = pa.scalar(ingested_at, UTC_US)
        self._web_ids = None if target.web_ids is None else pa.array(sorted(target.web_ids), pa.string())
        self._kept = pa.array(sorted(target.kept_web_ids), pa.string()) if target.kept_web_ids else None

    def convert(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        return self._to_lake(conform(batch, _RECORDED_DICTIONARY, what="A recorded-values batch"))

    def _to_lake(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        exact_ns = batch.column("timestamp").cast(pa.int64())
        self._check_inside(batch, exact_ns)
        floored_us = np.floor_divide(exact_ns.to_numpy(), 1000)
        columns = {name: batch.column(name) for name in RECORDED_SCHEMA.names}
        columns["timestamp"] = pa.array(floored_us, UTC_US)
        columns["timestamp_ns"] = exact_ns
        columns["ingested_at"] = pa.repeat(self._ingested_at, batch.num_rows)
        return pa.RecordBatch.from_arrays(
            [columns[name] for name in _WRITTEN_SCHEMA.names], schema=_WRITTEN_SCHEMA
        )

    def _check_inside(self, batch: pa.RecordBatch, exact_ns: pa.Array) -> None:
        if batch.num_rows == 0:
            return
        target = self._target
        bounds = pc.min_max(exact_ns)
        if bounds["min"].as_py() < target.start_ns or bounds["max"].as_py() >= target.end_ns:
            outside = pc.or_(pc.less(exact_ns, target.start_ns), pc.greater_equal(exact_ns, target.end_ns))
            first = pc.index(outside, True).as_py()
            raise InvalidRowsError(
                f"{pc.sum(outside).as_py()} row(s) fall outside the slice {target.describe()}, e.g. "
                f"point {batch.column('web_id')[first].as_py()} at {format_ns(exact_ns[first].as_py())}. "
                "Nothing was committed. Read only the slice's time range, or write those rows to their "
                "own slice."
            )
        if self._web_ids is not None:
            unexpected = pc.unique(
                pc.filter(batch.column("web_id"), pc.invert(pc.is_in(batch.column("web_id"), self._web_ids)))
            )
            if len(unexpected):
                raise InvalidRowsError(
                    f"{len(unexpected)} point(s) are not among the web_ids this write replaces "
                    f"({target.describe()}), e.g. {unexpected[:_MAX_WEB_IDS_IN_MESSAGE].to_pylist()}. "
                    "Nothing was committed. Add them to web_ids or leave them out of the batches."
                )
        if self._kept is not None:
            kept = pc.unique(pc.filter(batch.column("web_id"), pc.is_in(batch.column("web_id"), self._kept)))
            if len(kept):
                raise InvalidRowsError(
                    f"{len(kept)} point(s) of the batches are kept points of {target.describe()}, e.g. "
                    f"{kept[:_MAX_WEB_IDS_IN_MESSAGE].to_pylist()}: their stored rows stay, so writing them "
                    "would duplicate values. Nothing was committed. Leave them out of the batches or of "
                    "kept_web_ids."
                )


def read_slice(
    table: LakeTable,
    partition_date: date | str,
    tag_shard: str,
    *,
    time_range: tuple[datetime, datetime] | None = None,
    web_ids: Collection[str] | None = None,
) -> pa.Table:
    """Read a slice back with exact timestamps, sorted by point then time.

    The result has the client's columns (``timestamp`` is the exact ``timestamp('ns', 'UTC')``) plus
    ``partition_date``, ``tag_shard`` and ``ingested_at``. The sort is stable, so several values of one
    point at one timestamp keep the order they were written in within a file. The whole slice is
    materialized: use it for tests, checks and small slices.
    """
    target = time_slice(partition_date, tag_shard, time_range, web_ids)
    rows = _slice_dataset(table, target).to_table(filter=_slice_filter(target))
    return restore_exact_timestamps(rows).sort_by([("web_id", "ascending"), ("timestamp", "ascending")])


def slice_row_count(
    table: LakeTable, partition_date: date | str, tag_shard: str, *, kept_web_ids: Collection[str] = ()
) -> int:
    """How many rows the (date, shard) slice holds, those of ``kept_web_ids`` left out; 0 without a table."""
    if not table.exists():
        return 0
    target = time_slice(partition_date, tag_shard, kept_web_ids=kept_web_ids)
    return _slice_dataset(table, target).count_rows(filter=_slice_filter(target))


def _slice_dataset(table: LakeTable, target: TimeSlice) -> ds.Dataset:
    return table.partition_dataset({"partition_date": target.partition_date, "tag_shard": target.tag_shard})


def _slice_filter(target: TimeSlice) -> ds.Expression:
    partition = (ds.field("partition_date") == pa.scalar(target.partition_date, pa.date32())) & (
        ds.field("tag_shard") == target.tag_shard
    )
    return partition & target.rows


def restore_exact_timestamps(rows: pa.Table) -> pa.Table:
    """Replace the microsecond ``timestamp`` with the exact one rebuilt from ``timestamp_ns``."""
    exact = rows.column("timestamp_ns").cast(UTC_NS)
    position = rows.schema.get_field_index("timestamp")
    return rows.set_column(position, pa.field("timestamp", UTC_NS, nullable=False), exact).drop_columns(
        ["timestamp_ns"]
    )


def _parse_date(value: date | str) -> date:
    if isinstance(value, datetime):
        raise ValueError(f"partition_date must be a date or 'YYYY-MM-DD', not a datetime ({value!r}).")
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"partition_date {value!r} is not a date: pass a datetime.date or 'YYYY-MM-DD'."
        ) from exc
