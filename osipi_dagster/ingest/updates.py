"""Following PI by its stream updates: which (date, shard) partitions PI's changes made stale.

PI Web API's stream updates deliver, per point, every change to its archive since a marker: new values
(``Add``), late values (``Insert``), edits (``Update``) and deletions (``Delete``) (see
:mod:`osipi_dagster.pi.updates`). :func:`poll_updates` reads them for every active point of a server and
turns them into *pending work*: the UTC days (of the point's shard) that must be materialized again, today's
included, and for today the earliest time to read again from (an edit of this morning is older than the open
day's watermark minus the overlap).

Nothing is ever lost, in this order:

1. A point without a marker (new, or its registration was lost: the server's cache expired, PI unregistered
   it) is registered; a point that had been read before is given pending work from its watermark up to
   today, so the values of the time without a registration are read again, never skipped.
2. The events are read from the stored markers (a marker can be read again while PI keeps it).
3. The new markers and the pending work they imply are written in **one** commit of
   ``checkpoints.pi_update_markers``: a crash before it reads the same events again; after it, the work is
   stored. Pending work stays until a run of its partition that *started after* the event was seen, and
   read from the event's time or earlier, succeeded (``completed``): a run that failed, started just before
   the event, or was requested before it and so reads the open day only from its own window's start (it
   waited in the queue while the edit of this morning was seen), does not clear it.

The caller (a Dagster sensor) turns the pending partitions into runs. Events of days that were never
materialized (before the lake's history) are ignored; events stamped in the future of the PI server's clock
(by more than ``skew_tolerance``) are counted as clock skew, never scheduled as if they were in the past.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc

from osipi_dagster.contract import day_bounds
from osipi_dagster.lake import LakeTable, overwrite_table, read_table, read_watermarks
from osipi_dagster.lake.schemas import UPDATE_MARKERS, UTC_US
from osipi_dagster.lake.tables import without_columns
from osipi_dagster.pi import PIWebAPIClient

Partition = tuple[date, str]  # (UTC day, tag shard)
DEFAULT_SKEW_TOLERANCE = timedelta(minutes=5)
# Problems are kept short in the state table (the full text goes to the log).
_PROBLEM_CHARS = 300
_INPUT = without_columns(UPDATE_MARKERS.schema, ["ingested_at"])
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Work:
    """A partition to materialize again: for events seen up to ``since`` (this host's clock, like the
    start times of Dagster's runs it is compared with), the earliest stamped ``reread_from`` (the PI
    server's time: what the open day must read again from)."""

    since: datetime
    reread_from: datetime

    def merge(self, other: Work) -> Work:
        return Work(max(self.since, other.since), min(self.reread_from, other.reread_from))

    def done_by(self, completion: Completion | None) -> bool:
        """Whether ``completion`` read what this work owes: it started after the work was seen and its
        window began at ``reread_from`` or earlier."""
        return (
            completion is not None
            and completion.started > self.since
            and (completion.read_from is None or completion.read_from <= self.reread_from)
        )


@dataclass(frozen=True)
class Completion:
    """The latest successful materialization of a partition: when its run started (this host's clock) and
    where its window began (the PI server's time; ``None`` when it read nothing: no point in the shard)."""

    started: datetime
    read_from: datetime | None


@dataclass
class UpdatesTick:
    """What one poll did, and the partitions still owed (old and new)."""

    pending: dict[Partition, Work] = field(default_factory=dict)
    points: int = 0
    registered: int = 0
    re_registered: int = 0
    events: Counter[str] = field(default_factory=Counter)  # by PI action
    future_values: int = 0  # stamped after the PI server's now + tolerance: the source's clock is off
    failed: dict[str, str] = field(default_factory=dict)  # WebId -> why it was not read this time
    requests: int = 0
    wrote_state: bool = False
    duration_seconds: float = 0.0


@dataclass
class _Point:
    web_id: str
    tag_shard: str
    marker: str | None = None
    registered_at: datetime | None = None
    read_at: datetime | None = None
    pending: dict[date, Work] = field(default_factory=dict)
    problem: str | None = None

    def owe(self, day: date, work: Work) -> None:
        known = self.pending.get(day)
        self.pending[day] = work if known is None else known.merge(work)


def poll_updates(
    client: PIWebAPIClient,
    *,
    markers: LakeTable,
    watermarks: LakeTable,
    points: Mapping[str, str],
    now: datetime,
    in_lake: Callable[[Partition], bool],
    completed: Callable[[Iterable[Partition]], Mapping[Partition, Completion]],
    skew_tolerance: timedelta = DEFAULT_SKEW_TOLERANCE,
    seen_at: datetime | None = None,
) -> UpdatesTick:
    """Read every change PI made to ``points`` since their stored markers; store the new markers and the
    pending work in one commit; return every partition still owed.

    Args:
        points: the active points of the server, WebId -> tag shard.
        now: the PI server's now (timezone-aware).
        in_lake: whether a (day, shard) partition was ever materialized (events of other days are ignored:
            they are before the lake's history; today always counts).
        completed: given partitions, the latest successful materialization of each (a partition without
            one left out); asked once, for every partition with pending work.
        seen_at: this host's now (default: the local clock): when the work was seen, compared with the
            start times of runs (the PI server's clock may differ from ours).
    """
    started = time.perf_counter()
    seen = seen_at or datetime.now(UTC)
    tick = UpdatesTick(points=len(points))
    today = now.date()
    state, stored = _load(markers)
    for web_id, shard in points.items():
        point = state.get(web_id)
        if point is None:
            state[web_id] = _Point(web_id, shard)
        elif point.tag_shard != shard:  # the shard count changed: the point's work moves with it
            point.tag_shard, point.marker = shard, None
    done = completed({(day, point.tag_shard) for point in state.values() for day in point.pending})
    for point in state.values():
        if point.pending:
            point.pending = {
                day: work
                for day, work in point.pending.items()
                if not work.done_by(done.get((day, point.tag_shard)))
            }
        if point.web_id not in points:
            point.marker = None  # deleted or filtered out: not followed any more; its pending work stays

    _register(client, state, points, watermarks, now, seen, today, tick)
    readable = {web_id: state[web_id].marker for web_id in points if state[web_id].marker}
    if readable:
        read = client.read_updates(readable)
        tick.requests += read.requests
        _apply_events(state, read.events, now, seen, today, in_lake, skew_tolerance, tick)
        for web_id, marker in read.markers.items():
            state[web_id].marker, state[web_id].read_at, state[web_id].problem = marker, now, None
        for web_id, error in read.failures.items():
            state[web_id].problem = str(error)[:_PROBLEM_CHARS]
            tick.failed[web_id] = str(error)
        lost = {web_id: str(error) for web_id, error in read.needs_registration.items()}
        for web_id, reason in lost.items():
            state[web_id].marker, state[web_id].problem = None, reason[:_PROBLEM_CHARS]
        if lost:
            # Registered again at once; the time without a registration is read again from the watermark.
            _register(client, state, {w: points[w] for w in lost}, watermarks, now, seen, today, tick)

    rows = _rows(state.values())
    if not rows.equals(stored):
        overwrite_table(markers, rows, ingested_at=now)
        tick.wrote_state = True
    for point in state.values():
        for day, work in point.pending.items():
            key = (day, point.tag_shard)
            tick.pending[key] = work if key not in tick.pending else tick.pending[key].merge(work)
    tick.duration_seconds = time.perf_counter() - started
    return tick


def _register(
    client: PIWebAPIClient,
    state: dict[str, _Point],
    points: Mapping[str, str],
    watermarks: LakeTable,
    now: datetime,
    seen: datetime,
    today: date,
    tick: UpdatesTick,
) -> None:
    """Register the points without a marker; owe their time without a registration from the watermark."""
    missing = [web_id for web_id in points if not state[web_id].marker]
    if not missing:
        return
    registration = client.register_updates(missing)
    tick.requests += registration.requests
    marks: dict[str, datetime] = {}
    for shard in {points[w] for w in missing}:
        marks |= {w: mark.read_until for w, mark in read_watermarks(watermarks, shard).items()}
    for web_id, marker in registration.markers.items():
        point = state[web_id]
        if point.registered_at is not None:
            tick.re_registered += 1
        else:
            tick.registered += 1
        point.marker, point.registered_at, point.problem = marker, now, None
        # A registration starts at now: what happened since the point was last read must be read again.
        # A point never read has no watermark: today's run reads it from the start of the day.
        start = marks.get(web_id, day_bounds(today)[0])
        for day in _days(start.date(), today):
            point.owe(day, Work(since=seen, reread_from=max(start, day_bounds(day)[0])))
    for web_id, error in registration.failures.items():
        state[web_id].problem = str(error)[:_PROBLEM_CHARS]
        tick.failed[web_id] = str(error)


def _apply_events(
    state: dict[str, _Point],
    events: pa.Table,
    now: datetime,
    seen: datetime,
    today: date,
    in_lake: Callable[[Partition], bool],
    skew_tolerance: timedelta,
    tick: UpdatesTick,
) -> None:
    """Owe the partitions the events touched (vectorised per point and day: no per-event Python)."""
    if not events.num_rows:
        return
    counts = pc.value_counts(events["action"])
    tick.events.update(
        dict(zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True))
    )
    limit = pa.scalar(now + skew_tolerance, events.schema.field("timestamp").type)
    future = pc.greater(events["timestamp"], limit)
    tick.future_values += pc.sum(future).as_py() or 0
    present = events.filter(pc.invert(future))
    days = pc.cast(present["timestamp"], pa.date32())
    touched = (
        pa.table({"web_id": present["web_id"], "day": days, "timestamp": present["timestamp"]})
        .group_by(["web_id", "day"])
        .aggregate([("timestamp", "min")])
    )
    # Microseconds, as the state table keeps them: floored, so the re-read starts no later than the event.
    earliest = touched["timestamp_min"].cast(UTC_US, safe=False)
    for web_id, day, start in zip(
        touched["web_id"].to_pylist(), touched["day"].to_pylist(), earliest.to_pylist(), strict=True
    ):
        point = state[web_id]
        if day == today or in_lake((day, point.tag_shard)):
            point.owe(day, Work(since=seen, reread_from=start))


def _days(first: date, last: date) -> Iterable[date]:
    day = first
    while day <= last:
        yield day
        day += timedelta(days=1)


def _load(markers: LakeTable) -> tuple[dict[str, _Point], pa.Table]:
    """Every point's stored state, and the stored rows (to tell whether a tick changed them)."""
    table = read_table(markers)
    if table is None:
        return {}, _INPUT.empty_table()
    stored = pa.table([table[field.name].cast(field.type) for field in _INPUT], schema=_INPUT)
    pending = _pending_by_row(stored["pending"].combine_chunks())
    state: dict[str, _Point] = {}
    for row, (web_id, shard, marker, registered_at, read_at, problem) in enumerate(
        zip(
            stored["web_id"].to_pylist(),
            stored["tag_shard"].to_pylist(),
            stored["marker"].to_pylist(),
            _datetimes(stored["registered_at"]),
            _datetimes(stored["read_at"]),
            stored["problem"].to_pylist(),
            strict=True,
        )
    ):
        state[web_id] = _Point(web_id, shard, marker, registered_at, read_at, pending.get(row, {}), problem)
    return state, stored


def _pending_by_row(pending: pa.ListArray) -> dict[int, dict[date, Work]]:
    """The pending work of the rows that have some, by row (most rows have none)."""
    work = pc.list_flatten(pending)
    by_row: dict[int, dict[date, Work]] = {}
    for row, day, since, reread_from in zip(
        pc.list_parent_indices(pending).to_pylist(),
        pc.struct_field(work, "date").to_pylist(),
        _datetimes(pc.struct_field(work, "since")),
        _datetimes(pc.struct_field(work, "reread_from")),
        strict=True,
    ):
        by_row.setdefault(row, {})[day] = Work(since=since, reread_from=reread_from)
    return by_row


def _datetimes(stamps: pa.Array | pa.ChunkedArray) -> list[datetime | None]:
    """UTC microsecond timestamps as datetimes, several times faster than pyarrow's ``to_pylist`` (which
    looks the time zone up for each value): the state table holds one row per point."""
    return [
        None if micros is None else _EPOCH + timedelta(microseconds=micros)
        for micros in stamps.cast(pa.int64()).to_pylist()
    ]


def _rows(points: Iterable[_Point]) -> pa.Table:
    """The state table's rows (every column but ``ingested_at``), built column by column."""
    points = list(points)
    return pa.table(
        {
            "web_id": [point.web_id for point in points],
            "tag_shard": [point.tag_shard for point in points],
            "marker": [point.marker for point in points],
            "registered_at": [point.registered_at for point in points],
            "read_at": [point.read_at for point in points],
            "pending": [
                [
                    {"date": day, "since": work.since, "reread_from": work.reread_from}
                    for day, work in sorted(point.pending.items())
                ]
                for point in points
            ],
            "problem": [point.problem for point in points],
        },
        schema=_INPUT,
    )
