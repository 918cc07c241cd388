"""Data-quality figures of the lake's tables, for the asset checks of every PI server (no Dagster here:
``defs/pi_server/checks.py`` turns each :class:`Outcome` into a check evaluation).

Why checks of their own rather than results the materializations emit: the figures are about what is
*stored*, so they are computed from Delta after the commit, not from the batches on their way in (a row
written twice by two runs, or by hand, only shows there); a check can be run again alone, from the UI,
without reading PI again; and its result targets the partition's materialization, so Dagster resolves
each partition's check against that partition's latest materialization, which is what the automation of
downstream assets reads (``AutomationCondition.all_deps_blocking_checks_passed()``).

``bronze.pi_timeseries`` is checked one (date, shard) slice at a time, read once for all its checks:
batch by batch, only the slice's files (Delta prunes on ``partition_date`` and ``tag_shard``), into
per-point partial figures. Memory is the parquet reader's row group (up to 1 Mi rows), the per-point
figures, and 12 bytes a row for the duplicate count (a 64-bit hash of each row and its point's index),
sorted as one 8-byte key a row at the end. Measured for one shard of a 1 Hz day of 1,000 points over 16
shards (5.4 M rows): 320 MB at the peak, 4 s. The row-count history of the volume check comes from Delta's
per-file statistics, no data read. The catalog tables and the event frames are small and read whole.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import cached_property

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from deltalake.exceptions import DeltaError

from osipi_dagster.contract import day_bounds, to_ns
from osipi_dagster.lake import LakeTable, read_table, row_counts
from osipi_dagster.lake.tables import spec_of

WORST = 10  # offenders listed per check
FRESHNESS_INTERVALS = 3  # a point is late after this many of its typical intervals (or the setting's minutes)
VOLUME_HISTORY_DAYS = 14
VOLUME_MIN_HISTORY_DAYS = 7
DAY_NS = 86_400 * 1_000_000_000
MINUTE_NS = 60 * 1_000_000_000
NOT_IN_CATALOG = "(not in the catalog)"
_SCAN_COLUMNS = [
    "web_id",
    "timestamp_ns",
    "value",
    "string_value",
    "state_code",
    "is_system",
    "good",
    "questionable",
    "substituted",
    "annotated",
]


@dataclass(frozen=True)
class Offender:
    """One thing a check found wrong: a point, an AF element or attribute, an event frame."""

    web_id: str
    name: str
    figures: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    """One check's verdict: whether it passed, why (in words), its figures, and the worst offenders."""

    passed: bool
    description: str
    figures: Mapping[str, int | float] = field(default_factory=dict)
    offenders: tuple[Offender, ...] = ()


# -- pi_timeseries: one (date, shard) slice ------------------------------------------------------------


@dataclass(frozen=True)
class PointFigures:
    """What one point's values in a slice add up to."""

    rows: int
    nulls: int  # no value at all (no number, text or state) and not a system state
    bad: int  # system states (I/O Timeout, Shutdown, Bad Input, ...)
    good_quality: int  # PI's Good flag set and Questionable not
    duplicates: int  # rows that repeat an identical earlier row (web_id, time, value, text, state, flags)
    future: int  # rows stamped after the PI server's now + the clock-skew tolerance
    first_ns: int
    last_ns: int

    @property
    def typical_interval_ns(self) -> float | None:
        """The point's mean time between values over the slice; None with fewer than two values."""
        return (self.last_ns - self.first_ns) / (self.rows - 1) if self.rows > 1 else None


@dataclass(frozen=True)
class SliceFigures:
    """Per point, the figures of one (date, shard) slice of ``bronze.pi_timeseries``."""

    points: Mapping[str, PointFigures]

    def total(self, figure: str) -> int:
        return sum(getattr(point, figure) for point in self.points.values())

    @property
    def newest_ns(self) -> int | None:
        return max((point.last_ns for point in self.points.values()), default=None)


@dataclass(frozen=True)
class TimeseriesLimits:
    """The thresholds of the time-series checks (the server's ``check_*`` settings)."""

    null_or_bad_max_share: float
    freshness: timedelta
    volume_max_z: float
    good_quality_min_share: float
    duplicates_max_share: float
    skew_tolerance: timedelta


class TimeseriesQuality:
    """The time-series checks of one run's partitions: what they share (the PI server's now, the catalog, the
    row counts, the table's layout) is read once and only when a selected check needs it."""

    SCANNED = frozenset({"null_or_bad_values", "freshness", "good_quality", "duplicates", "clock_skew"})

    def __init__(
        self,
        *,
        timeseries: LakeTable,
        points: LakeTable,
        latency: LakeTable,
        now: datetime,
        limits: TimeseriesLimits,
        checks: Collection[str],
    ) -> None:
        self.timeseries, self.points, self.latency = timeseries, points, latency
        self.now, self.limits, self.checks = now, limits, frozenset(checks)

    @cached_property
    def _catalog(self) -> tuple[dict[str, str], frozenset[str]]:
        return point_catalog(self.points)

    @cached_property
    def _counts(self) -> Mapping[tuple[object, ...], int]:
        return (
            row_counts(self.timeseries, ("partition_date", "tag_shard")) if self.timeseries.exists() else {}
        )

    @cached_property
    def _schema(self) -> Outcome:
        return schema_drift(self.timeseries)

    def partition(self, day: date, shard: str, run_id: str | None) -> dict[str, Outcome]:
        """The selected checks of the (``day``, ``shard``) partition; ``run_id``: the run of its latest
        materialization (whose clock-skew count is read), if any."""
        names, future_points = self._catalog
        limits = self.limits
        outcomes: dict[str, Outcome] = {}
        figures = SliceFigures({})
        # Volume reads the slice only for today (how much of the day it holds); closed days, Delta's log.
        if self.checks & self.SCANNED or ("volume" in self.checks and day_bounds(day)[1] > self.now):
            future_after = self.now + limits.skew_tolerance
            figures = scan_slice(
                self.timeseries, day, shard, future_after=future_after, future_points=future_points
            )
        if "null_or_bad_values" in self.checks:
            outcomes["null_or_bad_values"] = null_or_bad_values(figures, names, limits.null_or_bad_max_share)
        if "freshness" in self.checks:
            outcomes["freshness"] = freshness(figures, names, day, self.now, limits.freshness)
        if "volume" in self.checks:
            coverage = slice_coverage(figures, day, self.now)
            outcomes["volume"] = volume(
                self._counts, day, shard, coverage=coverage, max_z=limits.volume_max_z
            )
        if "good_quality" in self.checks:
            outcomes["good_quality"] = good_quality(figures, names, limits.good_quality_min_share)
        if "duplicates" in self.checks:
            outcomes["duplicates"] = duplicates(figures, names, limits.duplicates_max_share)
        if "schema" in self.checks:
            outcomes["schema"] = self._schema
        if "clock_skew" in self.checks:
            found = pi_future_values(self.latency, day, shard, run_id) if run_id else None
            outcomes["clock_skew"] = clock_skew(figures, names, found, limits.skew_tolerance)
        return outcomes


def scan_slice(
    table: LakeTable, day: date, shard: str, *, future_after: datetime, future_points: Iterable[str] = ()
) -> SliceFigures:
    """Read the (``day``, ``shard``) slice batch by batch into per-point figures.

    ``future_after``: rows stamped later count as clock skew, except those of ``future_points`` (PI points
    that hold future values by design).
    """
    if not table.exists():
        return SliceFigures({})
    # The texts read as dictionaries (a point's WebId repeats on every row: about 60 bytes a row saved),
    # and one batch read ahead: the parquet reader holds a row group (up to 1 Mi rows) at a time anyway.
    dataset = table.partition_dataset(
        {"partition_date": day, "tag_shard": shard},
        read_options=ds.ParquetReadOptions(dictionary_columns={"web_id", "string_value"}),
    )
    scanner = dataset.scanner(
        columns=_SCAN_COLUMNS,
        filter=(ds.field("partition_date") == pa.scalar(day, pa.date32())) & (ds.field("tag_shard") == shard),
        batch_readahead=1,
        fragment_readahead=1,
    )
    tally = _SliceTally(to_ns(future_after), frozenset(future_points))
    for batch in scanner.to_batches():
        if batch.num_rows:
            tally.add(batch)
    return tally.figures()


class _SliceTally:
    """Per-point sums, first and last times, and the row hashes, added batch by batch."""

    _COUNTS = ("rows", "nulls", "bad", "good_quality", "future")

    def __init__(self, future_after_ns: int, future_points: frozenset[str]) -> None:
        self._future_after_ns = future_after_ns
        self._future_points = pa.array(sorted(future_points), pa.string())
        self._codes: dict[str, int] = {}  # web_id -> its index in the arrays below
        self._counts = np.zeros((len(self._COUNTS), 0), np.int64)
        self._first = np.zeros(0, np.int64)
        self._last = np.zeros(0, np.int64)
        self._hashes: list[np.ndarray] = []
        self._points: list[np.ndarray] = []

    def add(self, batch: pa.RecordBatch) -> None:
        codes = self._codes_of(batch["web_id"])
        size = len(self._codes)
        self._grow(size)
        stamps = batch["timestamp_ns"].to_numpy()
        no_value = pc.and_(
            pc.and_(pc.is_null(batch["value"]), pc.is_null(batch["string_value"])),
            pc.is_null(batch["state_code"]),
        )
        masks = {
            "nulls": pc.and_(no_value, pc.invert(batch["is_system"])),
            "bad": batch["is_system"],
            "good_quality": pc.and_(batch["good"], pc.invert(batch["questionable"])),
            "future": pc.and_(
                pc.greater(batch["timestamp_ns"], self._future_after_ns),
                pc.invert(pc.is_in(batch["web_id"], value_set=self._future_points)),
            ),
        }
        self._counts[0] += np.bincount(codes, minlength=size)
        for row, name in enumerate(self._COUNTS[1:], start=1):
            selected = masks[name].to_numpy(zero_copy_only=False)
            self._counts[row] += np.bincount(codes[selected], minlength=size)
        np.minimum.at(self._first, codes, stamps)
        np.maximum.at(self._last, codes, stamps)
        self._hashes.append(_row_hashes(batch, codes))
        self._points.append(codes.astype(np.int32))

    def figures(self) -> SliceFigures:
        duplicates = _repeated_rows(self._hashes, self._points, len(self._codes))
        return SliceFigures(
            {
                web_id: PointFigures(
                    **{name: int(self._counts[row, code]) for row, name in enumerate(self._COUNTS)},
                    duplicates=int(duplicates[code]),
                    first_ns=int(self._first[code]),
                    last_ns=int(self._last[code]),
                )
                for web_id, code in self._codes.items()
                if self._counts[0, code]  # a file's dictionary may name points absent from the slice
            }
        )

    def _codes_of(self, web_ids: pa.Array) -> np.ndarray:
        encoded = pc.dictionary_encode(web_ids)
        local = np.array(
            [self._codes.setdefault(web_id, len(self._codes)) for web_id in encoded.dictionary.to_pylist()],
            np.intp,
        )
        return local[encoded.indices.to_numpy()]

    def _grow(self, size: int) -> None:
        added = size - self._first.size
        if added > 0:
            self._counts = np.pad(self._counts, ((0, 0), (0, added)))
            self._first = np.append(self._first, np.full(added, np.iinfo(np.int64).max))
            self._last = np.append(self._last, np.full(added, np.iinfo(np.int64).min))


_MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2 = np.uint64(0x94D049BB133111EB)
_STEP = np.uint64(0x9E3779B97F4A7C15)


def _mix(words: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: a bijection of uint64 that spreads every input bit over the output."""
    words = (words ^ (words >> np.uint64(30))) * _MIX_1
    words = (words ^ (words >> np.uint64(27))) * _MIX_2
    return words ^ (words >> np.uint64(31))


def _row_hashes(batch: pa.RecordBatch, codes: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each row's (point, exact time, value, text, state, flags)."""
    flags = np.zeros(batch.num_rows, np.uint64)
    bits = [
        pc.is_null(batch["value"]),
        pc.is_null(batch["string_value"]),
        pc.is_null(batch["state_code"]),
        batch["is_system"],
        batch["good"],
        batch["questionable"],
        batch["substituted"],
        batch["annotated"],
    ]
    for bit, column in enumerate(bits):
        flags |= column.to_numpy(zero_copy_only=False).astype(np.uint64) << np.uint64(bit)
    state = pc.fill_null(batch["state_code"], 0).to_numpy().astype(np.int64).view(np.uint64)
    words = [
        batch["timestamp_ns"].to_numpy().view(np.uint64),
        pc.fill_null(batch["value"], 0.0).to_numpy().view(np.uint64),
        _text_hashes(batch["string_value"]),
        (state << np.uint64(8)) | flags,
    ]
    hashes = _mix(codes.astype(np.uint64) + _STEP)
    for word in words:
        hashes = _mix(hashes * _STEP + word)
    return hashes


def _text_hashes(texts: pa.Array) -> np.ndarray:
    # Each distinct text is hashed once (a batch holds few distinct texts); nulls (a null index, or a null in
    # a parquet dictionary) hash to 0, and the flags word tells a null from an empty text.
    encoded = pc.dictionary_encode(texts)
    words = [0 if text is None else _text_hash(text) for text in encoded.dictionary.to_pylist()]
    table = np.array([*words, 0], np.uint64)
    return table[pc.fill_null(encoded.indices, len(words)).to_numpy()]


def _text_hash(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def _repeated_rows(hashes: list[np.ndarray], points: list[np.ndarray], count: int) -> np.ndarray:
    """Per point, the rows that repeat an identical row of the same point.

    Each row becomes one sortable 64-bit key: its point's index in the top bits, its hash in the rest (at
    least 44 bits for up to a million points: about one false repeat per 5,000 point-days at 1 Hz). The
    chunks are freed as the keys are filled, and the keys are sorted in place.
    """
    total = sum(chunk.size for chunk in hashes)
    if total < 2:
        return np.zeros(count, np.int64)
    point_bits = np.uint64(max(1, (count - 1).bit_length()))
    keys = np.empty(total, np.uint64)
    at = 0
    hashes.reverse()
    points.reverse()
    while hashes:
        chunk, owners = hashes.pop(), points.pop()
        keys[at : at + chunk.size] = (owners.astype(np.uint64) << (np.uint64(64) - point_bits)) | (
            chunk >> point_bits
        )
        at += chunk.size
    keys.sort()
    again = keys[1:] == keys[:-1]
    owners = (keys[1:][again] >> (np.uint64(64) - point_bits)).astype(np.intp)
    return np.bincount(owners, minlength=count)


def null_or_bad_values(figures: SliceFigures, names: Mapping[str, str], max_share: float) -> Outcome:
    """Values that are null (no number, text or state) or bad (a system state such as I/O Timeout)."""
    rows, nulls, bad = figures.total("rows"), figures.total("nulls"), figures.total("bad")
    share = (nulls + bad) / rows if rows else 0.0
    return Outcome(
        passed=share <= max_share,
        description=f"{share:.2%} of {rows} values are null or bad ({nulls} null, {bad} bad: system states "
        f"such as I/O Timeout); at most {max_share:.2%} may be.",
        figures={
            "values": rows,
            "null_values": nulls,
            "bad_values": bad,
            "null_share": _share(nulls, rows),
            "bad_share": _share(bad, rows),
            "null_or_bad_share": share,
        },
        offenders=_worst(
            figures,
            names,
            lambda p: (p.nulls + p.bad) / p.rows,
            lambda p: {"null or bad": f"{(p.nulls + p.bad) / p.rows:.1%}", "null": p.nulls, "bad": p.bad},
            include=lambda p: p.nulls + p.bad > 0,
        ),
    )


def good_quality(figures: SliceFigures, names: Mapping[str, str], min_share: float) -> Outcome:
    """Values PI flags Good and not Questionable."""
    rows, good = figures.total("rows"), figures.total("good_quality")
    share = good / rows if rows else 1.0
    return Outcome(
        passed=share >= min_share,
        description=f"{share:.2%} of {rows} values are of good quality (PI's Good flag, not Questionable); "
        f"at least {min_share:.2%} must be.",
        figures={"values": rows, "good_quality_values": good, "good_quality_share": share},
        offenders=_worst(
            figures,
            names,
            lambda p: 1 - p.good_quality / p.rows,
            lambda p: {"good quality": f"{p.good_quality / p.rows:.1%}", "values": p.rows},
            include=lambda p: p.good_quality < p.rows,
        ),
    )


def duplicates(figures: SliceFigures, names: Mapping[str, str], max_share: float) -> Outcome:
    """Rows identical to another row in point, exact time, value, text, state and flags. Several different
    values at one timestamp are PI data and do not count."""
    rows, repeated = figures.total("rows"), figures.total("duplicates")
    share = repeated / rows if rows else 0.0
    return Outcome(
        passed=share <= max_share,
        description=f"{repeated} of {rows} rows ({share:.2%}) repeat an identical row (same point, exact "
        f"time, value, text, state and flags); at most {max_share:.2%} may.",
        figures={"values": rows, "duplicate_rows": repeated, "duplicate_share": share},
        offenders=_worst(
            figures,
            names,
            lambda p: p.duplicates,
            lambda p: {"duplicate rows": p.duplicates, "values": p.rows},
            include=lambda p: p.duplicates > 0,
        ),
    )


def freshness(
    figures: SliceFigures, names: Mapping[str, str], day: date, now: datetime, max_age: timedelta
) -> Outcome:
    """On today's partition (the PI server's today), every point that reports has a value no older than
    ``max_age`` or :data:`FRESHNESS_INTERVALS` of its own typical interval, whichever is longer (a point
    that reports every 4 h is not late after one hour). Points with fewer than two values today have no
    interval and are not judged. A closed day passes: its freshness is not a question any more."""
    today = now.date()
    if day != today:
        when = "closed" if day < today else "not begun"
        return Outcome(True, f"Not today: {day.isoformat()} has {when} on the PI server (today is {today}).")
    now_ns, limit_ns = to_ns(now), max_age // timedelta(microseconds=1) * 1_000
    late: dict[str, tuple[int, float]] = {}
    judged = 0
    for web_id, point in figures.points.items():
        interval = point.typical_interval_ns
        if interval is None:
            continue
        judged += 1
        allowed = max(limit_ns, FRESHNESS_INTERVALS * interval)
        if now_ns - point.last_ns > allowed:
            late[web_id] = (now_ns - point.last_ns, allowed)
    newest = figures.newest_ns
    minutes = max(0, now_ns - newest) / MINUTE_NS if newest is not None else None
    offenders = [
        Offender(
            web_id,
            names.get(web_id, NOT_IN_CATALOG),
            {"minutes behind": round(age / MINUTE_NS, 1), "allowed minutes": round(allowed / MINUTE_NS, 1)},
        )
        for web_id, (age, allowed) in sorted(late.items(), key=lambda item: -item[1][0])[:WORST]
    ]
    return Outcome(
        passed=not late,
        description=f"{len(late)} of {judged} reporting points are late at the PI server's now "
        f"{now.isoformat()} (late: the newest value is older than {max_age // timedelta(minutes=1)} minutes "
        f"and than {FRESHNESS_INTERVALS} of the point's typical intervals)."
        + (
            f" The newest value of the partition is {minutes:.1f} minutes old." if minutes is not None else ""
        ),
        figures={
            "points_judged": judged,
            "points_late": len(late),
            "points_with_too_few_values": len(figures.points) - judged,
            **({"newest_value_minutes_behind": round(minutes, 3)} if minutes is not None else {}),
        },
        offenders=tuple(offenders),
    )


def clock_skew(
    figures: SliceFigures, names: Mapping[str, str], pi_future_values: int | None, tolerance: timedelta
) -> Outcome:
    """Values stamped more than ``tolerance`` after the PI server's now: stored in the slice, or found in PI
    by the materialization's run (which never reads them, see ``gold.pi_data_latency``)."""
    stored = figures.total("future")
    found = pi_future_values or 0
    minutes = tolerance // timedelta(minutes=1)
    return Outcome(
        passed=stored == 0 and found == 0,
        description=f"{stored} stored values and {found} values in PI (counted by the materialization's run) "
        f"are stamped more than {minutes} minutes after the PI server's now: a source's clock is ahead.",
        figures={"future_values_stored": stored, "future_values_in_pi": found},
        offenders=_worst(
            figures,
            names,
            lambda p: p.future,
            lambda p: {"values in the future": p.future},
            include=lambda p: p.future > 0,
        ),
    )


def volume(
    counts: Mapping[tuple[object, ...], int],
    day: date,
    shard: str,
    *,
    coverage: float,
    max_z: float,
) -> Outcome:
    """The slice's row count against the same shard's previous :data:`VOLUME_HISTORY_DAYS` days.

    ``counts``: rows per (date, shard), from the Delta log's statistics. ``coverage``: the share of the day
    the slice holds (1 for a closed day; for today, up to its newest value): the count is scaled up by it.
    The spread is at least the square root of the mean (a count's own noise), so a steady history does not
    make a handful of values an anomaly.
    """
    count = counts.get((day, shard), 0)
    history = [
        counts[(past, shard)]
        for past in (day - timedelta(days=back) for back in range(1, VOLUME_HISTORY_DAYS + 1))
        if (past, shard) in counts
    ]
    figures: dict[str, int | float] = {"row_count": count, "history_days": len(history)}
    if len(history) < VOLUME_MIN_HISTORY_DAYS:
        return Outcome(
            True,
            f"Not enough history: {len(history)} of the {VOLUME_HISTORY_DAYS} previous days of shard {shard} "
            f"are stored, {VOLUME_MIN_HISTORY_DAYS} are needed; not checked.",
            figures,
        )
    if coverage < 1 / 24:
        return Outcome(True, "Less than an hour of the day is stored yet; not checked.", figures)
    mean = float(np.mean(history))
    spread = max(float(np.std(history)), math.sqrt(mean), 1.0)
    z = (count / coverage - mean) / spread
    expected = mean * coverage
    return Outcome(
        passed=abs(z) <= max_z,
        description=f"{count} rows against {expected:.0f} expected from the {len(history)} previous days "
        f"of shard {shard}"
        + (f" (scaled to the {coverage:.0%} of today stored)" if coverage < 1 else "")
        + f": z = {z:.2f}, at most ±{max_z:g}.",
        figures={**figures, "expected_rows": round(expected, 1), "z_score": round(z, 3)},
    )


def slice_coverage(figures: SliceFigures, day: date, now: datetime) -> float:
    """The share of ``day`` a slice covers: 1 once closed; for today, up to the slice's newest value."""
    start, end = day_bounds(day)
    if now >= end:
        return 1.0
    newest = figures.newest_ns
    return 0.0 if newest is None else min(1.0, max(0.0, (newest - to_ns(start)) / DAY_NS))


def pi_future_values(latency: LakeTable, day: date, shard: str, run_id: str) -> int | None:
    """The values a run found in PI stamped after its now + tolerance (``gold.pi_data_latency``), or None
    when the run recorded none for the partition."""
    if not latency.exists():
        return None
    rows = latency.load().to_pyarrow_table(
        columns=["future_values"],
        filters=(ds.field("partition_date") == pa.scalar(day, pa.date32()))
        & (ds.field("tag_shard") == shard)
        & (ds.field("run_id") == run_id),
    )
    return int(pc.sum(rows["future_values"]).as_py() or 0) if rows.num_rows else None


def schema_drift(table: LakeTable) -> Outcome:
    """The table's columns (names, types, nullability) and partition columns equal its contract
    (``lake/schemas.py``)."""
    spec = spec_of(table)
    if not table.exists():
        return Outcome(True, f"{table} does not exist yet.")
    delta_table = table.load()
    found = {f.name: f for f in pa.schema(delta_table.schema().to_arrow())}
    expected = {f.name: f for f in spec.schema}
    problems = [f"missing column {name} ({_typed(f)})" for name, f in expected.items() if name not in found]
    problems += [
        f"unexpected column {name} ({_typed(f)})" for name, f in found.items() if name not in expected
    ]
    problems += [
        f"column {name} is {_typed(found[name])}, the contract says {_typed(f)}"
        for name, f in expected.items()
        if name in found and (found[name].type, found[name].nullable) != (f.type, f.nullable)
    ]
    partitioned_by = list(delta_table.metadata().partition_columns)
    if partitioned_by != list(spec.partition_by):
        problems.append(f"partitioned by {partitioned_by}, the contract says {list(spec.partition_by)}")
    return Outcome(
        passed=not problems,
        description=f"{table} has the layout of its contract."
        if not problems
        else f"{table} differs from its contract (osipi_dagster/lake/schemas.py): "
        + "; ".join(problems)
        + ".",
        figures={"differences": len(problems), "columns": len(found)},
    )


def _typed(column: pa.Field) -> str:
    return f"{column.type}{'' if column.nullable else ' not null'}"


def _share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def _worst(
    figures: SliceFigures,
    names: Mapping[str, str],
    badness: Callable[[PointFigures], float],
    columns: Callable[[PointFigures], Mapping[str, object]],
    *,
    include: Callable[[PointFigures], bool],
) -> tuple[Offender, ...]:
    found = [(web_id, point) for web_id, point in figures.points.items() if include(point)]
    found.sort(key=lambda item: (-badness(item[1]), item[0]))
    return tuple(
        Offender(web_id, names.get(web_id, NOT_IN_CATALOG), columns(point)) for web_id, point in found[:WORST]
    )


# -- the catalog tables and event frames (small: read whole) ---------------------------------------------


def point_catalog(points: LakeTable) -> tuple[dict[str, str], frozenset[str]]:
    """The catalog's point names by WebId, and the points that hold future data by design."""
    rows = read_table(points)
    if rows is None:
        return {}, frozenset()
    names = dict(zip(rows["web_id"].to_pylist(), rows["name"].to_pylist(), strict=True))
    future = rows.filter(pc.fill_null(rows["future"], False))["web_id"].to_pylist()
    return names, frozenset(future)


def af_orphans(hierarchy: pa.Table | None, attributes: pa.Table | None) -> Outcome:
    """Every element's parent and every attribute's element is an element of the hierarchy."""
    if hierarchy is None:
        return Outcome(True, "The AF hierarchy does not exist yet.")
    elements = set(hierarchy["web_id"].to_pylist())
    orphans = [
        Offender(row["web_id"], row["path"], {"kind": "element", "missing": row["parent_web_id"]})
        for row in hierarchy.select(["web_id", "path", "parent_web_id"]).to_pylist()
        if row["parent_web_id"] is not None and row["parent_web_id"] not in elements
    ]
    if attributes is not None:
        orphans += [
            Offender(row["web_id"], row["path"], {"kind": "attribute", "missing": row["element_web_id"]})
            for row in attributes.select(["web_id", "path", "element_web_id"]).to_pylist()
            if row["element_web_id"] not in elements
        ]
    return Outcome(
        passed=not orphans,
        description=f"{len(orphans)} AF elements or attributes name a parent element the hierarchy does not "
        "hold.",
        figures={"elements": len(elements), "orphans": len(orphans)},
        offenders=tuple(orphans[:WORST]),
    )


def af_cycles(hierarchy: pa.Table | None) -> Outcome:
    """No element is its own ancestor."""
    if hierarchy is None:
        return Outcome(True, "The AF hierarchy does not exist yet.")
    rows = hierarchy.select(["web_id", "path", "parent_web_id"]).to_pylist()
    parent = {row["web_id"]: row["parent_web_id"] for row in rows}
    on_cycle = _cycle_members(parent)
    offenders = [
        Offender(row["web_id"], row["path"], {"parent": row["parent_web_id"]})
        for row in rows
        if row["web_id"] in on_cycle
    ]
    return Outcome(
        passed=not on_cycle,
        description=f"{len(on_cycle)} AF elements are their own ancestor (a cycle of parent links).",
        figures={"elements": len(parent), "elements_on_cycles": len(on_cycle)},
        offenders=tuple(offenders[:WORST]),
    )


def _cycle_members(parent: Mapping[str, str | None]) -> set[str]:
    """The nodes on a cycle of ``parent`` links, each link followed once."""
    state: dict[str, int] = {}  # 1: on the walk being followed, 2: done
    members: set[str] = set()
    for start in parent:
        walk: list[str] = []
        node: str | None = start
        while node is not None and node in parent and node not in state:
            state[node] = 1
            walk.append(node)
            node = parent[node]
        if node is not None and state.get(node) == 1:
            members.update(walk[walk.index(node) :])
        for visited in walk:
            state[visited] = 2
    return members


def af_point_references(attributes: pa.Table | None, points: pa.Table | None) -> Outcome:
    """Every AF attribute with a PI Point data reference names an active point of the catalog (by WebId or
    path, as the catalog matches them)."""
    if attributes is None or points is None:
        return Outcome(True, "The AF attributes or the tag catalog do not exist yet.")
    active, deleted = set(), set()
    for row in points.select(["web_id", "path", "is_deleted"]).to_pylist():
        keys = {row["web_id"], (row["path"] or "").upper()} - {""}
        (deleted if row["is_deleted"] else active).update(keys)
    references = attributes.filter(pc.equal(attributes["data_reference"], "PI Point"))
    unknown: list[Offender] = []
    gone = 0
    for row in references.select(["web_id", "path", "point_web_id", "config_string"]).to_pylist():
        keys = {row["point_web_id"], (row["config_string"] or "").split(";")[0].upper()} - {None, ""}
        if keys & active:
            continue
        if keys & deleted:
            gone += 1
        reference = row["point_web_id"] or (row["config_string"] or "").split(";")[0]
        unknown.append(
            Offender(row["web_id"], row["path"], {"point": reference, "in catalog": bool(keys & deleted)})
        )
    return Outcome(
        passed=not unknown,
        description=f"{len(unknown)} of {references.num_rows} PI Point attributes name no active point of "
        f"the catalog ({gone} a point it keeps as deleted: gone from PI or filtered out; the others one it "
        "never held, e.g. excluded by the catalog filters).",
        figures={
            "pi_point_attributes": references.num_rows,
            "unresolved": len(unknown),
            "unresolved_deleted_points": gone,
        },
        offenders=tuple(unknown[:WORST]),
    )


def duplicate_keys(rows: pa.Table | None, what: str) -> Outcome:
    """Every ``web_id`` appears once in ``rows`` (the key of the catalog and event-frame tables)."""
    if rows is None:
        return Outcome(True, f"No {what} table yet.")
    counts = rows.group_by("web_id").aggregate([("web_id", "count")])
    repeated = counts.filter(pc.greater(counts["web_id_count"], 1))
    names = dict(zip(rows["web_id"].to_pylist(), rows["name"].to_pylist(), strict=True))
    offenders = [
        Offender(row["web_id"], names[row["web_id"]], {"rows": row["web_id_count"]})
        for row in repeated.sort_by([("web_id_count", "descending")]).slice(0, WORST).to_pylist()
    ]
    return Outcome(
        passed=repeated.num_rows == 0,
        description=f"{repeated.num_rows} WebIds appear on more than one row of the {rows.num_rows} {what}.",
        figures={"rows": rows.num_rows, "duplicated_web_ids": repeated.num_rows},
        offenders=tuple(offenders),
    )


_SAME_ROWS = frozenset({"VACUUM START", "VACUUM END", "OPTIMIZE"})  # Delta operations that change no rows


def stable_shards(points: LakeTable) -> Outcome:
    """No point moved to another tag shard since the previous version of the catalog (its history would
    sit under its old shard while its new values land in the new one)."""
    if not points.exists():
        return Outcome(True, "The tag catalog does not exist yet.")
    current = points.load()
    # The last two versions that wrote rows: a vacuum (pi_lake_maintenance_job) or a compaction commits
    # versions of the same rows in between.
    versions = sorted(
        (
            int(commit["version"])
            for commit in current.history(20)
            if commit.get("operation") not in _SAME_ROWS
        ),
        reverse=True,
    )
    version = versions[0] if versions else current.version()
    nothing_before = Outcome(True, f"No previous version of {points} to compare version {version} with.")
    if len(versions) < 2:
        return nothing_before
    previous = points.load()
    try:
        previous.load_as_version(versions[1])
    except DeltaError:  # the log of that version was cleaned up
        return nothing_before
    try:
        before = previous.to_pyarrow_table(columns=["web_id", "tag_shard"])
    except OSError:  # its files were vacuumed (pi_lake_maintenance_job)
        return Outcome(
            True,
            f"The files of version {versions[1]} of {points} were vacuumed: version {version} has no "
            "previous version to compare with.",
        )
    after = current.to_pyarrow_table(columns=["web_id", "name", "tag_shard"])
    joined = after.join(before, "web_id", join_type="inner", left_suffix="", right_suffix="_before")
    moved = joined.filter(pc.not_equal(joined["tag_shard"], joined["tag_shard_before"]))
    offenders = [
        Offender(row["web_id"], row["name"], {"shard": row["tag_shard"], "was": row["tag_shard_before"]})
        for row in moved.slice(0, WORST).to_pylist()
    ]
    return Outcome(
        passed=moved.num_rows == 0,
        description=f"{moved.num_rows} of {joined.num_rows} points kept from version {versions[1]} are in "
        f"another tag shard in version {version} (a changed shard count re-assigns them: see "
        "defs/pi_server/partitions.py).",
        figures={"points_compared": joined.num_rows, "points_moved": moved.num_rows},
        offenders=tuple(offenders),
    )


def frames_end_after_start(frames: pa.Table | None) -> Outcome:
    """Every closed event frame ends at or after its start; open frames (no end yet) are counted."""
    if frames is None:
        return Outcome(True, "No event frames table yet.")
    closed = frames.filter(pc.is_valid(frames["end_time"]))
    backwards = closed.filter(pc.less(closed["end_time"], closed["start_time"]))
    offenders = [
        Offender(row["web_id"], row["name"], {"start": str(row["start_time"]), "end": str(row["end_time"])})
        for row in backwards.select(["web_id", "name", "start_time", "end_time"]).slice(0, WORST).to_pylist()
    ]
    return Outcome(
        passed=backwards.num_rows == 0,
        description=f"{backwards.num_rows} of {closed.num_rows} closed event frames end before they start; "
        f"{frames.num_rows - closed.num_rows} frames are open.",
        figures={
            "frames": frames.num_rows,
            "open_frames": frames.num_rows - closed.num_rows,
            "frames_ending_before_start": backwards.num_rows,
        },
        offenders=tuple(offenders),
    )
