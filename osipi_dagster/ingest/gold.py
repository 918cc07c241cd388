"""``gold.pi_timeseries_hourly``: per point and UTC hour, PI's own summaries computed from silver.

A gold partition (day ``D``, shard ``S``) is a function of the silver partitions ``D-1``, ``D`` and ``D+1`` of
``S``: the value before the day (each point's last value of ``D-1``) carries into its first hour, and the
first values of ``D+1`` close its last hour. The rules are PI's, as the mock PI Web API implements its
``/summary`` (``osipi_dagster/mock/values.py``), computed here independently:

* ``events``, ``count``: the values stamped in ``[hour, hour + 1 h)``, all of them and the good ones (PI's
  Count). A system state is a bad value; questionable values are good. Several values at one timestamp are
  several events. ``good_share`` is ``count / events`` (PI's event-weighted PercentGood / 100).
* ``mean_event_weighted``: the mean of the good values stamped in the hour (PI's EventWeighted Average, with
  PI's rule for ascending intervals: a value at an hour's start is that hour's, at its end the next hour's).
* ``mean_time_weighted``: the integral of the signal over the hour divided by ``good_seconds``, the time it
  is good (PI's TimeWeighted Average). The signal between two values is the earlier value held (a point
  whose ``step`` is true) or the straight line to the next value (otherwise; held when the next value is
  bad); from a bad value to the next value it is bad and not weighed. At the hour's start and end it is the
  value interpolated there (PI's boundary values: expressed in the point's type, so a Float32 point's is
  rounded to Float32 and an integer point's is truncated), from the last value at or before the
  boundary and the first value after it; with several values at one timestamp the last one carries on.
* ``minimum``, ``maximum``: PI's time-weighted Minimum and Maximum: the extremes of the good values the
  signal takes over the closed hour ``[hour, hour + 1 h]``: every good value stamped in it, the hour's end
  included, and the good boundary values (interpolated there, as PI's TimeWeighted calculation basis
  generates them; PI's EventWeighted extremes would take the values stamped in the hour only).
* ``first_value``, ``last_value``: the first and last good values stamped in the hour.
* Float32 values are computed as PI stores them: the value read (the shortest decimal of the Float32) is
  rounded back to Float32, so figures equal PI's to the bit.
* Digital and String points have events, count and good_share only (PI refuses the other summaries).
* ``complete`` is false for an hour whose end has no known value after it (the open day, a day whose next
  day is not in silver yet, or a point with no value on the next day): its time-weighted figures then stop
  at its last value instead of guessing, and the run that follows the next values fills them in. Hours are
  written when they hold a value or the signal is known across them (a quiet hour between known values has
  ``count`` 0 and a time-weighted mean).
* The value carried into the day is the point's last value of ``D-1``, or, for a point without a value on
  ``D-1``, its last value of the ``CARRY_IN_DAYS`` days before (PI carries in the last value however old).
  A point with no value in that window starts the day unknown: the time before its first value is not
  weighed. Dagster re-runs gold ``D`` when silver ``D-1``, ``D`` or ``D+1`` changes, not an older day: a
  corrected older day reaches ``D`` through a point silent since only when gold ``D`` runs again.

The values around the day come from ``silver.pi_timeseries_edges`` (the first and last values of each
silver partition, written with it), checked to be from the same write as the silver partition (their
``ingested_at``); a partition written without its edges (before the table existed, or by a run that stopped
between the two commits) is read whole instead.

Memory does not grow with the partition: silver ``D`` is read in chunks of whole points, about
``BUCKET_ROWS`` values each, and summarized chunk by chunk, the next chunk read in a thread of its own
meanwhile. Silver writes its rows sorted by point, so its files, taken in WebId order, are read once as they
are and cut between points; a partition whose files show no such order (written by earlier versions) is
split into buckets first (:mod:`osipi_dagster.ingest.buckets`). Within a chunk the computation is
vectorised numpy: boundary rows inserted at every hour, per-(point, hour) reductions with ``bincount`` and
``reduceat``; no Python step per value.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from osipi_dagster.contract import day_bounds, to_ns
from osipi_dagster.ingest.buckets import Census, buckets, census, gather, point_order, with_point_index
from osipi_dagster.ingest.silver import edge_rows
from osipi_dagster.lake import LakeTable, WriteResult
from osipi_dagster.lake.partitions import (
    WRITER_COLUMNS,
    partition_written_at,
    read_partition,
    replace_partition,
    scan_partition_in_order,
)
from osipi_dagster.lake.schemas import GOLD_HOURLY, SILVER_EDGES, UTC_US
from osipi_dagster.lake.tables import without_columns

HOUR_NS = 3_600_000_000_000
DAY_NS = 24 * HOUR_NS
HOURS = 24
BUCKET_ROWS = 2_000_000  # silver values summarized at once (whole points): memory is about 250 bytes a value
CARRY_IN_DAYS = 31  # how far back a point silent the day before has its last value looked for
NUMERIC_POINT_TYPES = frozenset({"Float16", "Float32", "Float64", "Int16", "Int32"})
_INTEGER_POINT_TYPES = frozenset({"Int16", "Int32"})
_POINT_ATTRIBUTES = ("point_name", "point_type", "step")
_VALUE_COLUMNS = ["timestamp_ns", "sequence", "value", "is_good"]
_EDGE_SCHEMA = without_columns(SILVER_EDGES.schema, WRITER_COLUMNS)
_EDGE_COLUMNS = _EDGE_SCHEMA.names
# Point and time share one sortable int64 key: the point in the high bits, the time since the start of the
# day before in the low 48 bits (2.8e14 ns, 3.2 days: the day before, the day and the day after). A chunk
# holds fewer points than the high bits can count.
_TIME_BITS = 48
_MAX_POINTS = (1 << (63 - _TIME_BITS)) - 1
_GOLD_INPUT = without_columns(GOLD_HOURLY.schema, WRITER_COLUMNS)


@dataclass(frozen=True)
class GoldResult:
    """What one gold partition's run read and wrote."""

    day: date
    shard: str
    values: int
    points: int
    hours_incomplete: int
    neighbours_read_whole: int
    write: WriteResult
    duration_seconds: float

    @property
    def rows(self) -> int:
        return self.write.rows_written

    @property
    def values_per_second(self) -> float:
        return self.values / self.duration_seconds if self.duration_seconds > 0 else 0.0


class GoldInputError(RuntimeError):
    """Silver's partition cannot be summarized as it is (its files' order, or its edges, do not match it)."""


@dataclass(frozen=True)
class _DayPoints:
    """The points of the silver partition, sorted by WebId, and their ``_POINT_ATTRIBUTES``, by index."""

    web_ids: pa.Array
    attributes: dict[str, list]

    def of(self, low: int, high: int) -> tuple[list[str], dict[str, tuple]]:
        """The WebIds of the points ``low`` to ``high`` (included) and their name, type, step by WebId."""
        web_ids = self.web_ids.slice(low, high - low + 1).to_pylist()
        names, types, steps = (self.attributes[name][low : high + 1] for name in _POINT_ATTRIBUTES)
        return web_ids, dict(zip(web_ids, zip(names, types, steps, strict=True), strict=True))


@dataclass(frozen=True)
class _Values:
    """Values of several points sorted by point, time and PI's order; ``part`` -1, 0, 1 for before the day,
    the day and the day after."""

    point: np.ndarray
    stamp: np.ndarray
    value: np.ndarray
    good: np.ndarray
    part: np.ndarray

    def take(self, index: np.ndarray) -> _Values:
        return _Values(*(getattr(self, name)[index] for name in _FIELDS))


_FIELDS = ("point", "stamp", "value", "good", "part")
_DTYPES = (np.int64, np.int64, np.float64, bool, np.int8)


@dataclass(frozen=True)
class _Points:
    """The points of a chunk, by index: WebId, name, type, step."""

    web_ids: pa.Array
    names: pa.Array
    types: list[str | None]
    step: np.ndarray

    @property
    def numeric(self) -> np.ndarray:
        return np.array([t in NUMERIC_POINT_TYPES for t in self.types], bool)


def aggregate_partition(
    *,
    silver: LakeTable,
    edges: LakeTable,
    gold: LakeTable,
    day: date,
    shard: str,
    bucket_rows: int = BUCKET_ROWS,
) -> GoldResult:
    """Replace the gold partition (``day``, ``shard``) with the hourly summaries of its silver values, read
    in buckets of whole points of about ``bucket_rows`` values."""
    started = time.perf_counter()
    day_start = to_ns(day_bounds(day)[0])
    around = _Around(silver, edges, day, shard)
    summaries: list[pa.RecordBatch] = []
    values = 0
    seen: set[str] = set()
    for chunk, web_ids, attributes in _read_ahead(_day_chunks(silver, day, shard, around, bucket_rows)):
        summaries.append(_summarize_chunk(chunk, web_ids, attributes, around, day_start))
        values += chunk.num_rows
        seen.update(web_ids)
    quiet = around.points_outside(seen)  # no value on the day, known around it
    for start in range(0, len(quiet), _MAX_POINTS):
        web_ids = quiet[start : start + _MAX_POINTS]
        summaries.append(_summarize_chunk(None, web_ids, {}, around, day_start))
    summary = _sorted_rows(summaries)
    write = replace_partition(gold, summary.to_batches(), partition_date=day, tag_shard=shard)
    return GoldResult(
        day=day,
        shard=shard,
        values=values,
        points=len(seen) + len(quiet),
        hours_incomplete=int(pc.sum(pc.invert(summary.column("complete"))).as_py() or 0),
        neighbours_read_whole=around.read_whole,
        write=write,
        duration_seconds=time.perf_counter() - started,
    )


_Chunk = tuple[pa.Table, list[str], dict[str, tuple]]  # sorted rows of whole points, their WebIds, attributes


def _day_chunks(
    silver: LakeTable, day: date, shard: str, around: _Around, bucket_rows: int
) -> Iterator[_Chunk]:
    """The silver partition in chunks of whole consecutive points, about ``bucket_rows`` values each, sorted
    by point, time and PI's order.

    Silver writes a partition's rows sorted by point, so its files, taken in the order of their WebIds,
    are usually read as they are (:func:`_chunks_in_order`); a partition whose files' footers show no such
    order (written by earlier versions through delta-rs's writer), or whose edges were not written with
    it, is split into buckets first (:mod:`osipi_dagster.ingest.buckets`)."""
    stored = around.stored_edges(day)
    batches = (
        None
        if stored is None
        else scan_partition_in_order(
            silver, day, shard, ["web_id", *_VALUE_COLUMNS], key="web_id", dictionary_columns=["web_id"]
        )
    )
    if batches is not None:
        return _chunks_in_order(batches, _points_of(stored), bucket_rows)
    return _sorted_buckets(silver, day, shard, _census(silver, day, shard, bucket_rows))


def _points_of(edges: pa.Table) -> _DayPoints:
    """The points of a partition from its edges (every point has some), sorted by WebId."""
    rows = edges.select(["web_id", *_POINT_ATTRIBUTES]).sort_by("web_id")
    ids = rows.column("web_id").to_numpy(zero_copy_only=False)
    firsts = rows.take(pa.array(_run_starts(ids)))
    return _DayPoints(
        firsts.column("web_id").combine_chunks(),
        {name: firsts.column(name).to_pylist() for name in _POINT_ATTRIBUTES},
    )


def _chunks_in_order(
    batches: Iterator[pa.RecordBatch], points: _DayPoints, bucket_rows: int
) -> Iterator[_Chunk]:
    """The rows of ``batches`` (a point's rows in consecutive batches) cut into chunks of whole points where
    every point before the cut precedes every point after it: the first such place past ``bucket_rows``
    rows, or before the chunk would hold more than ``_MAX_POINTS`` points."""
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    highest = -1  # the largest point read so far
    low = 0  # the smallest point pending
    for batch in batches:
        try:
            rows = with_point_index(batch, points.web_ids)
        except ValueError as exc:
            raise GoldInputError(
                f"The silver partition holds points its edges do not ({exc}): re-materialize the silver "
                "partition (it writes both), then gold."
            ) from exc
        point = rows.column(0).to_numpy()
        if not len(point):
            continue
        below = np.maximum.accumulate(np.r_[highest, point])[:-1]  # the largest point before each row
        above = np.minimum.accumulate(point[::-1])[::-1]  # the smallest point from each row on
        cuts = np.flatnonzero(below < above)
        start = 0
        while True:
            chunk_low = low if pending_rows else int(above[start])
            later = cuts[cuts >= start + (0 if pending_rows else 1)]  # never an empty chunk
            due = later[
                (pending_rows + later - start >= bucket_rows) | (below[later] - chunk_low + 1 >= _MAX_POINTS)
            ]
            if not len(due):
                break
            cut = int(due[0])
            yield _sorted_chunk([*pending, rows.slice(start, cut - start)], points)
            pending, pending_rows, start = [], 0, cut
        if not pending_rows:
            low = int(above[start])
        pending.append(rows.slice(start))
        pending_rows += len(point) - start
        highest = max(highest, int(below[-1]), int(point[-1]))
    if pending_rows:
        yield _sorted_chunk(pending, points)


def _sorted_chunk(batches: list[pa.RecordBatch], points: _DayPoints) -> _Chunk:
    """The chunk's rows sorted (when they are not already) by point, time and PI's order."""
    rows = pa.Table.from_batches(batches)
    point = rows.column("point").to_numpy()
    low, high = int(point.min()), int(point.max())
    if high - low + 1 > _MAX_POINTS:
        raise GoldInputError(
            f"A chunk of the silver partition mixes more than {_MAX_POINTS} points: its files are not sorted "
            "by point. Re-materialize the silver partition, then gold."
        )
    keys = [rows.column(name).to_numpy() for name in ("timestamp_ns", "sequence")]
    if not _in_point_order(point, *keys):
        rows = gather(rows, point_order(point, keys))
    return rows, *points.of(low, high)


def _in_point_order(point: np.ndarray, stamp: np.ndarray, sequence: np.ndarray) -> bool:
    """Whether rows are sorted by point, time and ``sequence``."""
    if np.any(point[1:] < point[:-1]):
        return False
    same_point = point[1:] == point[:-1]
    earlier = stamp[1:] < stamp[:-1]
    tied = (stamp[1:] == stamp[:-1]) & (sequence[1:] <= sequence[:-1])
    return not np.any(same_point & (earlier | tied))


def _read_ahead(chunks: Iterator[_Chunk]) -> Iterator[_Chunk]:
    """``chunks``, the next one read in a thread of its own while the caller summarizes this one (reading
    Parquet and numpy's work on whole arrays let go of the GIL): two chunks in memory at most."""
    with ThreadPoolExecutor(1, thread_name_prefix="gold-reader") as reader:
        upcoming = reader.submit(next, chunks, None)
        while (chunk := upcoming.result()) is not None:
            upcoming = reader.submit(next, chunks, None)
            yield chunk


def _census(silver: LakeTable, day: date, shard: str, bucket_rows: int = BUCKET_ROWS) -> Census:
    return census(silver, day, shard, bucket_rows, max_points=_MAX_POINTS, attributes=_POINT_ATTRIBUTES)


def _sorted_buckets(silver: LakeTable, day: date, shard: str, points_of: Census) -> Iterator[_Chunk]:
    """Each bucket of the silver partition sorted by point, time and PI's order, with its points' WebIds
    and attributes."""
    day_points = _DayPoints(points_of.web_ids, points_of.attributes)
    for rows in buckets(silver, day, shard, _VALUE_COLUMNS, points_of):
        points = rows.column("point").to_numpy()
        order = point_order(points, [rows.column(name).to_numpy() for name in ("timestamp_ns", "sequence")])
        low, high = int(points.min()), int(points.max())  # a bucket holds consecutive points, all of them
        yield gather(rows, order), *day_points.of(low, high)


def _sorted_rows(summaries: list[pa.RecordBatch]) -> pa.Table:
    """The gold rows by WebId and hour (a few rows a point: the whole day's fit in memory)."""
    table = pa.Table.from_batches(summaries, _GOLD_INPUT)
    return table.sort_by([("web_id", "ascending"), ("hour", "ascending")]).combine_chunks()


# -- the values around the day ----------------------------------------------------------------------------


class _Around:
    """The values around the day: each point's last value before it and first values after it."""

    def __init__(self, silver: LakeTable, edges: LakeTable, day: date, shard: str) -> None:
        self._silver, self._edges, self._day, self._shard = silver, edges, day, shard
        self.read_whole = 0
        before = self._edges_of(day - timedelta(days=1))
        self.before = before.filter(pc.equal(before.column("edge"), "last"))
        after = self._edges_of(day + timedelta(days=1))
        self.after = after.filter(pc.equal(after.column("edge"), "first"))
        self._older: pa.Table | None = None

    def points_outside(self, seen: set[str]) -> list[str]:
        """The points known before or after the day but not in ``seen``, sorted."""
        known = set(self.before.column("web_id").to_pylist()) | set(self.after.column("web_id").to_pylist())
        return sorted(known - seen)

    def last_before(self, web_ids: list[str]) -> pa.Table:
        """The last value before the day of each of ``web_ids`` that has one (``CARRY_IN_DAYS`` at most)."""
        found = _rows_of(self.before, web_ids)
        missing = sorted(set(web_ids) - set(found.column("web_id").to_pylist()))
        if not missing:
            return found
        older = _rows_of(self._older_last_values(), missing)
        return pa.concat_tables([found, older]) if older.num_rows else found

    def first_after(self, web_ids: list[str]) -> pa.Table:
        return _rows_of(self.after, web_ids)

    def _older_last_values(self) -> pa.Table:
        """Each point's latest last value of the ``CARRY_IN_DAYS`` days before the day before (read once, as
        the edges hold them)."""
        if self._older is None:
            self._older = _empty_edges()
            if self._edges.exists():
                first = self._day - timedelta(days=CARRY_IN_DAYS)
                rows = (
                    self._edges.load()
                    .to_pyarrow_dataset()
                    .to_table(
                        columns=[*_EDGE_COLUMNS, "partition_date"],
                        filter=(ds.field("tag_shard") == self._shard)
                        & (ds.field("edge") == "last")
                        & (ds.field("partition_date") >= pa.scalar(first, pa.date32()))
                        & (
                            ds.field("partition_date") < pa.scalar(self._day - timedelta(days=1), pa.date32())
                        ),
                    )
                )
                latest = rows.sort_by([("web_id", "ascending"), ("partition_date", "descending")])
                ids = latest.column("web_id").to_numpy(zero_copy_only=False)
                heads = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]]) if len(ids) else np.zeros(0, int)
                self._older = latest.take(pa.array(heads)).select(_EDGE_COLUMNS)
        return self._older

    def stored_edges(self, day: date) -> pa.Table | None:
        """The edges of the silver partition ``day`` as the edges table holds them when they were written
        with the partition (same ``ingested_at``); an empty table for a partition without rows; None when
        they were not (the partition then has to be read to know them)."""
        written = partition_written_at(self._silver, day, self._shard)
        if written is None:
            return _empty_edges()
        stored = read_partition(self._edges, day, self._shard, [*_EDGE_COLUMNS, "ingested_at"])
        if (
            stored is not None
            and stored.num_rows
            and pc.all(pc.equal(stored.column("ingested_at"), written)).as_py()
        ):
            return stored.select(_EDGE_COLUMNS).cast(_EDGE_SCHEMA)
        return None

    def _edges_of(self, day: date) -> pa.Table:
        """The edges of the silver partition ``day``: from the edges table when they were written with the
        partition, otherwise computed from the partition itself."""
        stored = self.stored_edges(day)
        if stored is not None:
            return stored
        self.read_whole += 1
        return _edges_from_silver(self._silver, day, self._shard)


def _edges_from_silver(silver: LakeTable, day: date, shard: str) -> pa.Table:
    """The edges of a silver partition computed from its rows (bucket by bucket)."""
    points_of = _census(silver, day, shard)
    found = [_empty_edges()]
    for chunk, _, _ in _sorted_buckets(silver, day, shard, points_of):
        point = chunk.column("point").to_numpy()
        first, last = edge_rows(point, chunk.column("timestamp_ns").to_numpy())
        for edge, index in (("first", first), ("last", last)):
            taken = chunk.take(pa.array(index))
            at = taken.column("point").to_numpy()
            columns = {
                "web_id": points_of.web_ids.take(pa.array(at)),
                **{
                    name: pa.array([points_of.attributes[name][p] for p in at.tolist()])
                    for name in _POINT_ATTRIBUTES
                },
                "edge": pa.array([edge] * len(index), pa.string()),
                **{name: taken.column(name) for name in ("timestamp_ns", "sequence", "value", "is_good")},
            }
            found.append(pa.table({name: columns[name] for name in _EDGE_COLUMNS}).cast(_EDGE_SCHEMA))
    return pa.concat_tables(found)


def _empty_edges() -> pa.Table:
    return _EDGE_SCHEMA.empty_table()


def _rows_of(edges: pa.Table, web_ids: list[str]) -> pa.Table:
    return edges.filter(pc.is_in(edges.column("web_id"), value_set=pa.array(web_ids, pa.string())))


# -- one chunk --------------------------------------------------------------------------------------------


def _summarize_chunk(
    chunk: pa.Table | None,
    web_ids: list[str],
    attributes: dict[str, tuple],
    around: _Around,
    day_start: int,
) -> pa.RecordBatch:
    """The gold rows of ``web_ids``: the points of ``chunk`` (the day's rows of those points, sorted) or,
    without it, points with no value on the day."""
    before = around.last_before(web_ids)
    after = around.first_after(web_ids).sort_by(
        [("web_id", "ascending"), ("timestamp_ns", "ascending"), ("sequence", "ascending")]
    )
    points = _chunk_points(web_ids, attributes, before, after)
    return _summarize(_chunk_values(chunk, points, before, after), points, day_start)


def _chunk_points(
    web_ids: list[str], attributes: dict[str, tuple], before: pa.Table, after: pa.Table
) -> _Points:
    """The chunk's points with their name, type and step: the day's first, then the day before's, then
    the day after's."""
    found: dict[str, tuple] = {}
    for table in (after, before):
        for row in table.select(["web_id", *_POINT_ATTRIBUTES]).to_pylist():
            found[row["web_id"]] = tuple(row[name] for name in _POINT_ATTRIBUTES)
    found.update(attributes)
    return _Points(
        web_ids=pa.array(web_ids, pa.string()),
        names=pa.array([found[w][0] for w in web_ids], pa.string()),
        types=[found[w][1] for w in web_ids],
        step=np.array([bool(found[w][2]) for w in web_ids], bool),
    )


def _chunk_values(chunk: pa.Table | None, points: _Points, before: pa.Table, after: pa.Table) -> _Values:
    """The chunk's values with the values around the day, as indices of ``points``, sorted by point, time and
    PI's order."""
    parts: dict[int, _Values] = {}
    for table, part in ((before, -1), (chunk, 0), (after, 1)):
        if table is None or not table.num_rows:
            continue
        if part == 0:
            point = table.column("point").to_numpy()
            point = point - point.min()  # the chunk's points are consecutive, in the order of ``points``
        else:
            point = pc.index_in(table.column("web_id"), value_set=points.web_ids).to_numpy(
                zero_copy_only=False
            )
        value = table.column("value").to_numpy(zero_copy_only=False).astype(np.float64)
        float32 = np.array([t == "Float32" for t in points.types], bool)
        if float32.any():
            in_float32 = float32[point]
            value[in_float32] = value[in_float32].astype(np.float32)
        parts[part] = _Values(
            point.astype(np.int64),
            table.column("timestamp_ns").to_numpy(),
            value,
            table.column("is_good").to_numpy(zero_copy_only=False),
            np.full(len(point), part, np.int8),
        )
    edges = [parts[part] for part in (-1, 1) if part in parts]
    if not edges:
        return parts[0] if 0 in parts else _Values(*(np.zeros(0, t) for t in _DTYPES))
    around = _Values(*(np.concatenate([getattr(p, f) for p in edges]) for f in _FIELDS))
    # Before the day, then after it, by construction: a stable sort by point keeps each point's order.
    around = around.take(np.argsort(around.point, kind="stable"))
    if 0 not in parts:
        return around
    day = parts[0]
    position = np.where(
        around.part < 0,
        np.searchsorted(day.point, around.point, side="left"),  # before the point's first value of the day
        np.searchsorted(day.point, around.point, side="right"),  # after its last
    )
    return _Values(*(_inserted(getattr(day, f), position, getattr(around, f)) for f in _FIELDS))


def _inserted(values: np.ndarray, position: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``np.insert(values, position, rows)`` for a non-decreasing ``position``, by slices (a third of the
    time of ``np.insert``'s masks, measured on 2 M values)."""
    if not len(position):
        return values
    pieces: list[np.ndarray] = [values[:0]] * (2 * len(position) + 1)
    pieces[0::2] = np.split(values, position)
    pieces[1::2] = np.split(rows, np.arange(1, len(rows)))
    return np.concatenate(pieces)


def _run_starts(point: np.ndarray) -> np.ndarray:
    return np.flatnonzero(np.r_[True, point[1:] != point[:-1]]) if len(point) else np.zeros(0, np.int64)


def _run_ends(point: np.ndarray) -> np.ndarray:
    return np.r_[_run_starts(point)[1:], len(point)] if len(point) else np.zeros(0, np.int64)


@dataclass(frozen=True)
class _Boundaries:
    """The signal at every hour boundary ``day_start + k h`` (k = 0..24) of every point (row p*25+k)."""

    point: np.ndarray
    stamp: np.ndarray
    value: np.ndarray
    good: np.ndarray  # a good value there, known from values on both sides when it needs them
    known: np.ndarray  # a value at or after the boundary is known
    started: np.ndarray  # a value at or before the boundary is known
    position: np.ndarray  # where the boundary goes among the values (after those stamped at it)


def _boundaries(values: _Values, points: _Points, day_start: int) -> _Boundaries:
    count = len(points.types)
    point = np.repeat(np.arange(count, dtype=np.int64), HOURS + 1)
    stamp = day_start + np.tile(np.arange(HOURS + 1, dtype=np.int64), count) * HOUR_NS
    base = day_start - 86_400_000_000_000
    keys = (values.point << _TIME_BITS) | (values.stamp - base)
    position = np.searchsorted(keys, (point << _TIME_BITS) | (stamp - base), side="right")
    if not len(keys):
        empty = np.zeros(len(point), bool)
        return _Boundaries(point, stamp, np.zeros(len(point)), empty, empty, empty, position)
    before, after = position - 1, position
    has_before = (before >= 0) & (values.point[np.maximum(before, 0)] == point)
    has_after = (after < len(keys)) & (values.point[np.minimum(after, len(keys) - 1)] == point)
    b, a = np.maximum(before, 0), np.minimum(after, len(keys) - 1)
    v0, v1 = values.value[b], values.value[a]
    t0, t1 = values.stamp[b], values.stamp[a]
    linear = has_before & has_after & values.good[b] & values.good[a] & ~points.step[point]
    span = np.where(linear, t1 - t0, 1).astype(np.float64)
    mixed = v0 + (v1 - v0) * ((stamp - t0).astype(np.float64) / span)
    types = np.array([t or "" for t in points.types], object)[point]
    mixed = np.where(types == "Float32", mixed.astype(np.float32), mixed)
    mixed = np.where(np.isin(types, list(_INTEGER_POINT_TYPES)), np.trunc(mixed), mixed)
    value = np.where(linear, mixed, v0)
    known = has_after | (has_before & (t0 == stamp))
    return _Boundaries(point, stamp, value, has_before & values.good[b] & known, known, has_before, position)


def _summarize(values: _Values, points: _Points, day_start: int) -> pa.RecordBatch:
    """The gold rows of the day: one per point and hour written (see the module docstring)."""
    count = len(points.types)
    groups = count * HOURS
    numeric = points.numeric
    bounds = _boundaries(values, points, day_start)
    in_day = values.part == 0
    hour = np.where(in_day, (values.stamp - day_start) // HOUR_NS, np.where(values.part < 0, -1, HOURS))
    group = values.point * HOURS + hour

    events = np.bincount(group[in_day], minlength=groups)
    good_in_day = in_day & values.good
    good_count = np.bincount(group[good_in_day], minlength=groups)
    measured = good_in_day & numeric[values.point]
    total = np.bincount(group[measured], weights=values.value[measured], minlength=groups)
    first, last = np.full(groups, np.nan), np.full(groups, np.nan)
    measured_group = group[measured]
    if len(measured_group):
        starts = _run_starts(measured_group)
        first[measured_group[starts]] = values.value[measured][starts]
        last[measured_group[starts]] = values.value[measured][_run_ends(measured_group) - 1]
    minimum, maximum = _extremes(values, bounds, numeric, group, measured, day_start, groups)
    integral, good_ns = _time_weighted(values, bounds, points, hour, groups)

    start_known = bounds.started.reshape(count, HOURS + 1)[:, :HOURS].ravel()
    end_known = bounds.known.reshape(count, HOURS + 1)[:, 1:].ravel()
    written = (events > 0) | (start_known & end_known)
    index = np.flatnonzero(written)
    point_of, hour_of = np.divmod(index, HOURS)
    is_numeric = numeric[point_of]
    counted = good_count[index]
    seconds = good_ns[index]

    def numeric_only(column: np.ndarray, valid: np.ndarray) -> pa.Array:
        return pa.array(column, pa.float64(), mask=~(valid & is_numeric))

    columns = {
        "web_id": points.web_ids.take(pa.array(point_of)),
        "point_name": points.names.take(pa.array(point_of)),
        "hour": pa.array((day_start + hour_of * HOUR_NS) // 1000, UTC_US),
        "events": pa.array(events[index], pa.int64()),
        "count": pa.array(counted, pa.int64()),
        "good_share": pa.array(counted / np.maximum(events[index], 1), pa.float64(), mask=events[index] == 0),
        "minimum": numeric_only(minimum[index], ~np.isnan(minimum[index])),
        "maximum": numeric_only(maximum[index], ~np.isnan(maximum[index])),
        "first_value": numeric_only(first[index], counted > 0),
        "last_value": numeric_only(last[index], counted > 0),
        "mean_event_weighted": numeric_only(total[index] / np.maximum(counted, 1), counted > 0),
        "mean_time_weighted": numeric_only(integral[index] / np.where(seconds > 0, seconds, 1), seconds > 0),
        "good_seconds": numeric_only(seconds / 1e9, np.ones(len(index), bool)),
        "step": pa.array(points.step[point_of], pa.bool_()),
        "complete": pa.array(end_known[index], pa.bool_()),
    }
    return pa.RecordBatch.from_arrays([columns[name] for name in _GOLD_INPUT.names], schema=_GOLD_INPUT)


def _extremes(
    values: _Values,
    bounds: _Boundaries,
    numeric: np.ndarray,
    group: np.ndarray,
    measured: np.ndarray,
    day_start: int,
    groups: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Per (point, hour), the minimum and maximum of the good values over the closed hour: those stamped in
    it, those stamped at its end, and the good boundary values at both ends (NaN when there is none)."""
    minimum, maximum = np.full(groups, np.inf), np.full(groups, -np.inf)
    inside = group[measured]
    if len(inside):
        starts = _run_starts(inside)
        minimum[inside[starts]] = np.minimum.reduceat(values.value[measured], starts)
        maximum[inside[starts]] = np.maximum.reduceat(values.value[measured], starts)
    offset = values.stamp - day_start
    at_end = (
        values.good
        & numeric[values.point]
        & (values.part >= 0)
        & (offset > 0)
        & (offset <= HOURS * HOUR_NS)
        & (offset % HOUR_NS == 0)
    )
    k = np.tile(np.arange(HOURS + 1), len(numeric))
    usable = bounds.good & numeric[bounds.point]
    extra_group = np.concatenate(
        [
            values.point[at_end] * HOURS + offset[at_end] // HOUR_NS - 1,
            (bounds.point * HOURS + k)[usable & (k < HOURS)],
            (bounds.point * HOURS + k - 1)[usable & (k > 0)],
        ]
    )
    extra_value = np.concatenate(
        [values.value[at_end], bounds.value[usable & (k < HOURS)], bounds.value[usable & (k > 0)]]
    )
    np.minimum.at(minimum, extra_group, extra_value)
    np.maximum.at(maximum, extra_group, extra_value)
    minimum[np.isinf(minimum)] = np.nan
    maximum[np.isinf(maximum)] = np.nan
    return minimum, maximum


def _time_weighted(
    values: _Values, bounds: _Boundaries, points: _Points, hour: np.ndarray, groups: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per (point, hour), the integral of the signal over its good time (value x ns) and that time (ns)."""
    position = bounds.position
    point = _inserted(values.point, position, bounds.point)
    if len(point) < 2:
        return np.zeros(groups), np.zeros(groups)
    stamp = _inserted(values.stamp, position, bounds.stamp)
    value = _inserted(values.value, position, bounds.value)
    good = _inserted(values.good, position, bounds.good)
    ends_known = _inserted(np.ones(len(values.point), bool), position, bounds.known)
    k = np.tile(np.arange(HOURS + 1), len(points.types))
    segment_hour = _inserted(hour, position, k)
    left, right = value[:-1], value[1:]
    step = points.step[point[:-1]]
    height = np.where(step | ~good[1:], left, (left + right) / 2)
    duration = (stamp[1:] - stamp[:-1]).astype(np.float64)
    used = (
        (point[1:] == point[:-1])
        & good[:-1]
        & ends_known[1:]
        & points.numeric[point[:-1]]
        & (segment_hour[:-1] >= 0)
        & (segment_hour[:-1] < HOURS)
    )
    group = (point[:-1] * HOURS + segment_hour[:-1])[used]
    integral = np.bincount(group, weights=(height * duration)[used], minlength=groups)
    good_ns = np.bincount(group, weights=duration[used], minlength=groups)
    return integral, good_ns
