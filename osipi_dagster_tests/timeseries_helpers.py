"""Helpers for the time-series ingestion tests: the truth read independently from the mock, Delta rows in
the same shape, the tag catalog, and the late values of the open day.

The truth is a plain ``requests`` + ``json`` read of each point (``pi_helpers.raw_recorded``, which shares
no code with the client) over a half-open window ``[start, end)`` asked as PI's inclusive
``[start, end - 100 ns]``. Rows are compared as multisets of
``(web_id, timestamp ns, value, string_value, state_code, state_name, is_system, good, questionable,
substituted, annotated, units)``, so several values at one timestamp count once each and a duplicate or a
missing row shows up.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow as pa

from osipi_dagster.defs.resources import DeltaLakehouseResource, PIWebAPIResource
from osipi_dagster.ingest.catalog import PointFilter, refresh_point_catalog, shard_points
from osipi_dagster.lake import Lakehouse, LakeTable, read_slice
from osipi_dagster.mock.server import RunningMock
from osipi_dagster.mock.values import MINUTE_NS
from osipi_dagster.pi import PIWebAPIClient
from osipi_dagster_tests.pi_helpers import Row, raw_recorded, rows_of

SECOND_NS = 1_000_000_000
TICK_NS = 100
SHARD_COUNT = 16
# The value columns of a row, in the order raw_recorded builds them.
ROW_COLUMNS = [
    "web_id",
    "timestamp",
    "value",
    "string_value",
    "state_code",
    "state_name",
    "is_system",
    "good",
    "questionable",
    "substituted",
    "annotated",
    "units",
]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def ns_of(moment: datetime) -> int:
    """Exact nanoseconds since the epoch of a timezone-aware datetime (microsecond precision)."""
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * SECOND_NS + delta.microseconds * 1_000


def moment_of(ns: int) -> datetime:
    """The UTC datetime of ``ns`` (which must be a whole microsecond)."""
    assert ns % 1_000 == 0, f"{ns} is not a whole microsecond"
    return _EPOCH + timedelta(microseconds=ns // 1_000)


def day_start_ns(day: date) -> int:
    return ns_of(datetime(day.year, day.month, day.day, tzinfo=UTC))


def pi_time(ns: int) -> str:
    """A PI time string with all seven fractional digits (100 ns ticks), written without the client."""
    seconds, rest = divmod(ns, SECOND_NS)
    whole = (_EPOCH + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{whole}.{rest // TICK_NS:07d}Z"


def truth(api: str, web_ids: Iterable[str], start_ns: int, end_ns: int) -> Counter[Row]:
    """The mock's values of ``web_ids`` in ``[start_ns, end_ns)``, read now over plain HTTP."""
    rows: Counter[Row] = Counter()
    for web_id in web_ids:
        rows.update(raw_recorded(api, web_id, pi_time(start_ns), pi_time(end_ns - TICK_NS)))
    return rows


def lake_rows(
    table: LakeTable, day: date, shard: str, time_range: tuple[datetime, datetime] | None = None
) -> Counter[Row]:
    """The Delta slice's rows (exact timestamps) as a multiset in the truth's shape."""
    return Counter(rows_of(read_slice(table, day, shard, time_range=time_range).select(ROW_COLUMNS)))


def sorted_slice(table: LakeTable, day: date, shard: str) -> pa.Table:
    """Every column of the slice but ``ingested_at``, rows sorted by every column: identical contents give
    equal tables (compare with ``==``, which is ``pa.Table.equals``), whatever the files and their order."""
    rows = read_slice(table, day, shard).drop_columns(["ingested_at"])
    return rows.sort_by([(name, "ascending") for name in rows.column_names])


def assert_same_rows(got: Counter[Row], want: Counter[Row]) -> None:
    """Multiset equality with a readable difference (never prints a whole day of rows)."""
    missing, extra = want - got, got - want
    assert not missing and not extra, (
        f"{sum(missing.values())} row(s) missing, e.g. {sorted(missing)[:3]}; "
        f"{sum(extra.values())} row(s) extra (duplicates or invented), e.g. {sorted(extra)[:3]}"
    )
    assert sum(got.values()) == sum(want.values())


def kinds_of(rows: Counter[Row]) -> set[str]:
    """Which hard cases occur in ``rows``: several values at one timestamp, system states, digital and
    string values, sub-second and sub-microsecond (7-digit) timestamps, flags."""
    found: set[str] = set()
    stamps = Counter((row[0], row[1]) for row in rows.elements())
    if any(count > 1 for count in stamps.values()):
        found.add("multi")
    for _, stamp, value, string, code, name, system, good, questionable, *_ in rows:
        if system and code is not None and name and not good and value is None:
            found.add("system")
        if code is not None and not system:
            found.add("digital")
        if string is not None:
            found.add("string")
        if stamp % SECOND_NS:
            found.add("subsecond")
        if stamp % 1_000:
            found.add("subsecond-7-digits")
        if questionable:
            found.add("questionable")
    return found


# -- set-up ------------------------------------------------------------------------------------------------


def build_catalog(api: str, lake: Lakehouse, now: datetime) -> None:
    """``bronze.pi_points`` of the mock at ``api`` (no AF tables: every point is kept)."""
    with PIWebAPIClient(api) as client:
        refresh_point_catalog(
            client,
            lake.table("bronze.pi_points"),
            af_attributes_table=lake.table("bronze.pi_af_attributes"),
            hierarchy_table=lake.table("bronze.pi_af_hierarchy"),
            shard_count=SHARD_COUNT,
            point_filter=PointFilter(),
            now=now,
        )


def shard_web_ids(lake: Lakehouse, shard: str) -> list[str]:
    return shard_points(lake.table("bronze.pi_points"), shard).read


def resources(api: str, root: Path | str) -> dict[str, object]:
    """The ``pi`` and ``lakehouse`` resources for ``dg.materialize``."""
    return {
        "pi": PIWebAPIResource(base_url=api, max_retries=1),
        "lakehouse": DeltaLakehouseResource(root=str(root)),
    }


def set_clock(mock: RunningMock, ns: int) -> None:
    mock.state.clock.set(ns)


# -- late values -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LateValue:
    """A value stamped ``stamp`` that the mock shows only from ``arrival`` on."""

    web_id: str
    stamp: int
    arrival: int


def late_values(mock: RunningMock, web_ids: Sequence[str], start_ns: int, end_ns: int) -> list[LateValue]:
    """Every value stamped in ``[start_ns, end_ns)`` of ``web_ids`` that reaches the archive late.

    Uses the mock's own generator (``values.DataSource``): its stored events, visible or not, and the time
    each one arrives (``_arrival``: the end of a buffering outage plus the flush lag).
    """
    data = mock.state.archive.data
    found: list[LateValue] = []
    for web_id in web_ids:
        point = mock.state.archive.resolve_point(web_id)
        if not point.late:
            continue
        schedule = data.schedule(point)
        events = data._events(schedule, start_ns, end_ns - 1)
        arrival = data._arrival(schedule, events.ts)
        late = arrival > events.ts
        found += [
            LateValue(web_id, int(stamp), int(at))
            for stamp, at in zip(events.ts[late].tolist(), arrival[late].tolist(), strict=True)
        ]
    return found


@dataclass(frozen=True)
class OpenDayPlan:
    """Two incremental runs of the open day at ``first`` and ``second`` (clock times, ns)."""

    first: int
    second: int
    caught: list[LateValue]  # invisible at ``first``, visible at ``second``, stamped inside the overlap


def plan_open_day(
    late: Sequence[LateValue], day: date, overlap_ns: int, gap_ns: int = 20 * MINUTE_NS
) -> OpenDayPlan:
    """Run times that put a late value inside the second run's overlap window.

    The first run sits one minute before a late batch arrives, so the batch's values (stamped before the
    first run, inside the overlap) are invisible then and visible at the second run. Times where a late
    value stamped *before* the overlap would arrive in between are skipped: no overlap can catch those,
    so the truth at the second run would differ from any exact reader's result.
    """
    start = day_start_ns(day)
    end = start + 86_400 * SECOND_NS
    for arrival in sorted({value.arrival for value in late}):
        first = arrival - MINUTE_NS
        second = first + gap_ns
        if not (start + overlap_ns < first and second < end):
            continue
        arriving = [v for v in late if first < v.arrival <= second]
        caught = [v for v in arriving if first - overlap_ns <= v.stamp < first]
        missed = [v for v in arriving if v.stamp < first - overlap_ns]
        if caught and not missed:
            return OpenDayPlan(first, second, caught)
    raise AssertionError(f"no late value of these points can be caught on {day}")


def catchable_late_value(
    mock: RunningMock, lake: Lakehouse, day: date, overlap: timedelta
) -> tuple[str, OpenDayPlan]:
    """The first shard of the catalog in ``lake`` whose points have a late value on ``day`` that two
    overlapping runs can catch (see :func:`plan_open_day`), and the plan of those runs."""
    start = day_start_ns(day)
    for shard in (f"s{index:02d}" for index in range(SHARD_COUNT)):
        late = late_values(mock, shard_web_ids(lake, shard), start, start + 86_400 * SECOND_NS)
        try:
            return shard, plan_open_day(late, day, overlap // timedelta(microseconds=1) * 1_000)
        except AssertionError:
            continue
    raise AssertionError(f"no shard of the mock has a late value overlapping runs can catch on {day}")
