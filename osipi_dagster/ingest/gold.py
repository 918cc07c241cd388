"""``gold.pi_timeseries_hourly``: per point and UTC hour, PI's own summaries computed from silver.

A gold partition (day ``D``, shard ``S``) is a function of the silver partitions ``D-1``, ``D`` and ``D+1`` of
``S``: the value before the day (the last value of ``D-1``) carries into its first hour, and the first
values of ``D+1`` close its last hour. The rules are PI's, as the mock PI Web API implements its
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
  included, and the good boundary values.
* ``first_value``, ``last_value``: the first and last good values stamped in the hour.
* Float32 values are computed as PI stores them: the value read (the shortest decimal of the Float32) is
  rounded back to Float32, so figures equal PI's to the bit.
* Digital and String points have events, count and good_share only (PI refuses the other summaries).
* ``complete`` is false for an hour whose end has no known value after it (the open day, or a day whose next
  day is not in silver yet): its time-weighted figures then stop at its last value instead of guessing,
  and the run that follows the next values fills them in. Hours are written when they hold a value or the
  signal is known across them (a quiet hour between known values has ``count`` 0 and a time-weighted mean).
* A point without a value in ``D-1`` starts the day unknown: the time before its first value of ``D`` is not
  weighed (PI would carry an older value in).

The computation is vectorised numpy over the partition (no Python step per value): one stable sort by point
and time, boundary rows inserted at every hour, and per-(point, hour) reductions with ``bincount`` and
``reduceat``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from osipi_dagster.contract import day_bounds, to_ns
from osipi_dagster.lake import LakeTable, WriteResult
from osipi_dagster.lake.partitions import WRITER_COLUMNS, read_partition, replace_partition
from osipi_dagster.lake.schemas import GOLD_HOURLY, UTC_US
from osipi_dagster.lake.tables import without_columns

HOUR_NS = 3_600_000_000_000
HOURS = 24
NUMERIC_POINT_TYPES = frozenset({"Float16", "Float32", "Float64", "Int16", "Int32"})
_INTEGER_POINT_TYPES = frozenset({"Int16", "Int32"})
_COLUMNS = ["web_id", "point_name", "point_type", "step", "timestamp_ns", "sequence", "value", "is_good"]
_DICTIONARY_COLUMNS = ("web_id", "point_name", "point_type")
# Point and time share one sortable int64 key: the point in the high bits, the time since the start of the
# day before in the low 48 bits (2.8e14 ns, 3.2 days: the three days read).
_TIME_BITS = 48
_MAX_POINTS = 1 << (63 - _TIME_BITS)
_GOLD_INPUT = without_columns(GOLD_HOURLY.schema, WRITER_COLUMNS)


class TooManyPointsError(ValueError):
    """A partition holds more points than one gold run can key; use more tag shards."""


@dataclass(frozen=True)
class GoldResult:
    """What one gold partition's run read and wrote."""

    day: date
    shard: str
    values: int
    points: int
    hours_incomplete: int
    write: WriteResult
    duration_seconds: float

    @property
    def rows(self) -> int:
        return self.write.rows_written

    @property
    def values_per_second(self) -> float:
        return self.values / self.duration_seconds if self.duration_seconds > 0 else 0.0


@dataclass(frozen=True)
class _Values:
    """Values of several points sorted by point, time and PI's order; ``part`` -1, 0, 1 for D-1, D, D+1."""

    point: np.ndarray
    stamp: np.ndarray
    value: np.ndarray
    good: np.ndarray
    part: np.ndarray

    def take(self, index: np.ndarray) -> _Values:
        return _Values(*(getattr(self, name)[index] for name in ("point", "stamp", "value", "good", "part")))


@dataclass(frozen=True)
class _Points:
    """The points of the partition, by index: WebId, name, type, step."""

    web_ids: pa.Array
    names: pa.Array
    types: list[str | None]
    step: np.ndarray

    @property
    def numeric(self) -> np.ndarray:
        return np.array([t in NUMERIC_POINT_TYPES for t in self.types], bool)


def aggregate_partition(*, silver: LakeTable, gold: LakeTable, day: date, shard: str) -> GoldResult:
    """Replace the gold partition (``day``, ``shard``) with the hourly summaries of its silver values."""
    started = time.perf_counter()
    day_start = to_ns(day_bounds(day)[0])
    tables = {
        offset: read_partition(
            silver, day + timedelta(days=offset), shard, _COLUMNS, dictionary_columns=_DICTIONARY_COLUMNS
        )
        for offset in (0, -1, 1)
    }
    present = {
        offset: table.unify_dictionaries().combine_chunks()
        for offset, table in tables.items()
        if table is not None and table.num_rows
    }
    points = _points(list(present.values()))  # the day's own rows first: its names and types win
    values = _day_values(present, points, day_start)
    summary = _summarize(values, points, day_start)
    write = replace_partition(gold, [summary], partition_date=day, tag_shard=shard)
    return GoldResult(
        day=day,
        shard=shard,
        values=int(np.count_nonzero(values.part == 0)),
        points=len(points.types),
        hours_incomplete=int(pc.sum(pc.invert(summary.column("complete"))).as_py() or 0),
        write=write,
        duration_seconds=time.perf_counter() - started,
    )


def _points(tables: list[pa.Table]) -> _Points:
    """Every point of the three days, sorted by WebId, with the first name, type and step seen."""
    found: dict[str, tuple] = {}
    for table in tables:
        web_id = table.column("web_id").chunk(0) if table.num_rows else None
        if web_id is None:
            continue
        first = np.unique(web_id.indices.to_numpy(zero_copy_only=False), return_index=True)[1]
        rows = table.take(pa.array(first)).select(["web_id", "point_name", "point_type", "step"]).to_pylist()
        for row in rows:
            found.setdefault(row["web_id"], (row["point_name"], row["point_type"], row["step"]))
    if len(found) >= _MAX_POINTS:
        raise TooManyPointsError(
            f"A tag shard holds {len(found)} points; gold computes at most {_MAX_POINTS - 1} per partition. "
            "Use more tag shards (OSIPI_TAG_SHARDS)."
        )
    web_ids = sorted(found)
    return _Points(
        web_ids=pa.array(web_ids, pa.string()),
        names=pa.array([found[w][0] for w in web_ids], pa.string()),
        types=[found[w][1] for w in web_ids],
        step=np.array([bool(found[w][2]) for w in web_ids], bool),
    )


def _day_values(present: dict[int, pa.Table], points: _Points, day_start: int) -> _Values:
    """The values of D, the last value of each point in D-1 and each point's values at its first time in
    D+1, sorted by point, time and PI's order."""
    parts = []
    for offset, table in sorted(present.items()):
        values = _sorted_values(table, points, offset)
        if offset == -1:
            values = values.take(_run_ends(values.point) - 1)
        elif offset == 1:
            first = _run_starts(values.point)
            first_stamp = np.repeat(values.stamp[first], np.diff(np.r_[first, len(values.point)]))
            values = values.take(np.flatnonzero(values.stamp == first_stamp))
        parts.append(values)
    if not parts:
        return _Values(*(np.zeros(0, t) for t in (np.int64, np.int64, np.float64, bool, np.int8)))
    merged = _Values(*(np.concatenate([getattr(p, f) for p in parts]) for f in _Values.__dataclass_fields__))
    # D-1 before D before D+1 within a point, by construction: a stable sort by point keeps time order.
    return merged.take(np.argsort(merged.point, kind="stable"))


def _sorted_values(table: pa.Table, points: _Points, offset: int) -> _Values:
    """One day's values as indices of ``points``, sorted by point, time and ``sequence`` (PI's order)."""
    web_id = table.column("web_id").chunk(0)
    to_point = pc.index_in(web_id.dictionary, value_set=points.web_ids).to_numpy(zero_copy_only=False)
    point = to_point[web_id.indices.to_numpy(zero_copy_only=False)].astype(np.int64)
    stamp = table.column("timestamp_ns").to_numpy()
    value = table.column("value").to_numpy(zero_copy_only=False).astype(np.float64)
    float32 = np.array([t == "Float32" for t in points.types], bool)[point]
    value[float32] = value[float32].astype(np.float32)
    good = table.column("is_good").to_numpy(zero_copy_only=False)
    sequence = table.column("sequence").to_numpy()
    values = _Values(point, stamp, value, good, np.full(len(point), offset, np.int8))
    same_point, same_stamp = point[1:] == point[:-1], stamp[1:] == stamp[:-1]
    key_sorted = np.all(
        (point[1:] > point[:-1])
        | (same_point & (stamp[1:] > stamp[:-1]))
        | (same_point & same_stamp & (sequence[1:] > sequence[:-1]))
    )
    return values if key_sorted else values.take(np.lexsort((sequence, stamp, point)))


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
    point = np.insert(values.point, position, bounds.point)
    if len(point) < 2:
        return np.zeros(groups), np.zeros(groups)
    stamp = np.insert(values.stamp, position, bounds.stamp)
    value = np.insert(values.value, position, bounds.value)
    good = np.insert(values.good, position, bounds.good)
    ends_known = np.insert(np.ones(len(values.point), bool), position, bounds.known)
    k = np.tile(np.arange(HOURS + 1), len(points.types))
    segment_hour = np.insert(hour, position, k)
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
