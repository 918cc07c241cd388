"""Stream updates: registrations, markers, their caches, and the events between two markers.

**Caches and markers.** As PI Web API keeps one cache per user, each user has one updates cache at a time,
named by 32 hex digits; a marker is ``<cache>_<n>``, ``n`` counting the markers of that cache. A marker
stands for a position: a moment of the mock's clock and the number of admin edits posted by then. Reading a
marker for the first time issues the next one (positioned at the clock's now) and binds the two, so reading
a marker again answers the same events and the same ``LatestMarker``, and reading that one answers what
happened after. Each registration keeps its last ``MARKERS_KEPT`` markers; an older one, or one the server
never issued, is an invalid marker (409). A cache unused (no registration, no read) for
``updates_cache_minutes`` on the mock's clock expires with its registrations and markers: its markers then
name no cache (404) and the client must register again, from the clock's now. Registering a stream the cache
already holds answers ``AlreadyRegistered`` and a new marker from now; the older markers stay readable.

**Events** between two positions, in the order they happened (ties by timestamp):

- ``Add``: a value whose timestamp the clock passed (for a Future point: that came within its horizon);
- ``Insert``: a late value that arrived (its buffering outage flushed), unless an edit of its timestamp
  happened before it arrived (the edit hides it);
- ``Update``: an edit replaced the values at a timestamp (``Insert``, or ``Add`` when nothing visible is
  later, if the timestamp held no value);
- ``Delete``: an edit removed the values at a timestamp; the event carries the first of them. Deleting a
  timestamp that holds nothing is no event.

``PreviousEventAction`` is ``PreviousEventArchived`` for an ``Add`` (the mock has no compression: every value
is archived) and ``None`` for the others.

**Cost.** A read whose interval is empty costs a few dictionary lookups. Otherwise the values arriving in it
come from a window cached per point (about ``WINDOW_VALUES`` values or ``WINDOW_MAX_NS`` ahead, their JSON
rendered once), so a sensor tick costs a bisection per point and the point's share of the window.
"""

from __future__ import annotations

import bisect
import hashlib
import re
from collections import deque
from dataclasses import dataclass, field
from typing import NamedTuple

import orjson

from osipi_dagster.mock.clock import MockClock
from osipi_dagster.mock.edits import Edit
from osipi_dagster.mock.model import Point, Stream
from osipi_dagster.mock.serialize import timed_values
from osipi_dagster.mock.timeparse import NS
from osipi_dagster.mock.values import HOUR_NS, Block, DataSource

MARKERS_KEPT = 8  # markers each registration keeps readable
WINDOW_VALUES = 64  # values a cached arrival window of a point holds about
WINDOW_MAX_NS = HOUR_NS  # and the longest it reaches ahead
_MARKER = re.compile(r"([0-9a-f]{32})_(\d{1,18})")


class Position(NamedTuple):
    """Where a marker stands: a moment of the mock's clock, and the admin edits posted by then."""

    time: int
    posted: int


class MarkerError(Exception):
    """A marker that cannot be read: 404 (its cache is gone) or 409 (not a marker of a live cache)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(slots=True)
class Registration:
    """A stream registered for updates in one cache."""

    key: str  # the stream's Full WebID
    stream: Stream
    point: Point
    markers: deque[int] = field(default_factory=deque)


@dataclass(slots=True)
class _Marker:
    registration: Registration
    position: Position
    next: int | None = None  # the marker issued when this one was first read


@dataclass(slots=True)
class _Cache:
    guid: str
    user: str
    last_used: int
    count: int = 0  # markers issued
    registrations: dict[str, Registration] = field(default_factory=dict)
    markers: dict[int, _Marker] = field(default_factory=dict)

    def issue(self, registration: Registration, position: Position) -> int:
        """A new marker of ``registration`` at ``position``; its oldest marker beyond MARKERS_KEPT goes."""
        number = self.count
        self.count += 1
        self.markers[number] = _Marker(registration, position)
        registration.markers.append(number)
        if len(registration.markers) > MARKERS_KEPT:
            del self.markers[registration.markers.popleft()]
        return number


@dataclass(frozen=True, slots=True)
class Reading:
    """What reading a marker gives: the registration, the two markers and the interval between them."""

    registration: Registration
    requested: str
    latest: str
    since: Position
    until: Position


class UpdatesRegistry:
    """Every user's updates cache."""

    def __init__(self, seed: int, clock: MockClock, data: DataSource, cache_minutes: float) -> None:
        self.seed = seed
        self.clock = clock
        self.data = data
        self.lifetime_ns = round(cache_minutes * 60 * NS)
        self._caches: dict[str, _Cache] = {}
        self._by_user: dict[str, _Cache] = {}
        self._created = 0
        self.feed = ChangeFeed(data)

    def position(self) -> Position:
        return Position(self.clock.now_ns(), self.data.edits.posted)

    def register(self, user: str, key: str, stream: Stream) -> tuple[str, str]:
        """Register ``stream`` (named by ``key``, its Full WebID) for ``user``: (status, marker from now)."""
        assert stream.point is not None
        position = self.position()
        cache = self._by_user.get(user)
        if cache is None or not self._alive(cache, position.time):
            cache = self._create(user, position.time)
        cache.last_used = max(cache.last_used, position.time)
        registration = cache.registrations.get(key)
        status = "AlreadyRegistered" if registration is not None else "Succeeded"
        if registration is None:
            registration = cache.registrations[key] = Registration(key, stream, stream.point)
        return status, f"{cache.guid}_{cache.issue(registration, position)}"

    def read(self, user: str, text: str) -> Reading:
        """Read marker ``text`` of ``user``'s cache (see the module docstring); MarkerError if it cannot
        be."""
        match = _MARKER.fullmatch(text)
        if match is None:
            raise MarkerError(409, f"Invalid marker supplied: '{text}' is not a marker this server issued.")
        position = self.position()
        cache = self._caches.get(match[1])
        if cache is None or cache.user != user or not self._alive(cache, position.time):
            raise MarkerError(
                404,
                f"Cache not found: the updates cache of marker '{text}' has expired or does not exist; "
                "register the stream for updates again.",
            )
        marker = cache.markers.get(int(match[2]))
        if marker is None:
            raise MarkerError(
                409, f"Invalid marker supplied: '{text}' is not a current marker of its cache (too old?)."
            )
        cache.last_used = max(cache.last_used, position.time)
        if marker.next is None:
            later = Position(max(position.time, marker.position.time), position.posted)
            marker.next = cache.issue(marker.registration, later)
        until = cache.markers[marker.next].position
        return Reading(marker.registration, text, f"{cache.guid}_{marker.next}", marker.position, until)

    def expire_all(self) -> int:
        """Drop every cache (as if each had expired); the number dropped."""
        count = len(self._caches)
        self._caches.clear()
        self._by_user.clear()
        return count

    def _alive(self, cache: _Cache, now: int) -> bool:
        if now - cache.last_used <= self.lifetime_ns:
            return True
        del self._caches[cache.guid]
        if self._by_user.get(cache.user) is cache:
            del self._by_user[cache.user]
        return False

    def _create(self, user: str, now: int) -> _Cache:
        self._created += 1
        digest = hashlib.blake2b(f"{self.seed}:{user}:{self._created}".encode(), digest_size=16)
        cache = _Cache(digest.hexdigest(), user, now)
        self._caches[cache.guid] = self._by_user[user] = cache
        return cache


@dataclass(frozen=True, slots=True)
class _Window:
    """The stored values of a point arriving in (after, until], by (moment, timestamp), as TimedValue
    dicts."""

    after: int
    until: int
    moments: list[int]
    stamps: list[int]
    values: list[dict]


class ChangeFeed:
    """The events of a point between two positions (see the module docstring)."""

    def __init__(self, data: DataSource) -> None:
        self.data = data
        self._windows: dict[int, _Window] = {}

    def events(self, point: Point, since: Position, until: Position) -> list[dict]:
        """The events of ``point`` from ``since`` to ``until``, in the order they happened."""
        timed: list[tuple[int, int, int, dict]] = []  # (moment, timestamp, order, event)
        if since.time < until.time:
            timed = self._arrived(point, since.time, until.time)
        if since.posted < until.posted or since.time < until.time:
            for edit in self.data.edits.happened(point, since.time, until.time, since.posted, until.posted):
                event = self.edit_event(point, edit)
                if event is not None:
                    timed.append((edit.happened, edit.ts, edit.order + 1, event))
            timed.sort(key=lambda row: row[:3])
        return [row[3] for row in timed]

    def edit_event(self, point: Point, edit: Edit) -> dict | None:
        """The event ``edit`` made: Update, Insert, Add or Delete; None for a delete of nothing."""
        earlier = [
            e for e in self.data.edits.between(point, edit.ts, edit.ts, edit.happened) if e.rank < edit.rank
        ]
        if earlier:
            last = earlier[-1]
            before = (
                []
                if last.slot is None
                else self._dicts(point, self.data.edited_value(point, last.ts, last.slot))
            )
        else:
            before = self._dicts(point, self.data.stored_at(point, edit.ts, edit.happened))
        if edit.slot is None:
            return _event("Delete", before[0]) if before else None
        value = self._dicts(point, self.data.edited_value(point, edit.ts, edit.slot))[0]
        if before:
            return _event("Update", value)
        horizon = self.data.horizon(point, edit.happened)
        later = edit.ts < horizon and len(self.data.recorded(point, edit.ts + 1, horizon, edit.happened, 1))
        return _event("Insert" if later else "Add", value)

    def _arrived(self, point: Point, after: int, until: int) -> list[tuple[int, int, int, dict]]:
        """Add and Insert events of the values arriving in (after, until]."""
        window = self._window(point, after, until)
        first = bisect.bisect_right(window.moments, after)
        last = bisect.bisect_right(window.moments, until)
        if first == last:
            return []
        rows = []
        hidden = self._hidden(point, window, first, last)
        for i in range(first, last):
            moment, ts = window.moments[i], window.stamps[i]
            if moment <= ts:
                rows.append((moment, ts, 0, _event("Add", window.values[i])))
            elif not (ts in hidden and hidden[ts] <= moment):
                rows.append((moment, ts, 0, _event("Insert", window.values[i])))
        return rows

    def _hidden(self, point: Point, window: _Window, first: int, last: int) -> dict[int, int]:
        """Timestamps of late values in the slice that an edit acts on -> when the first such edit
        happened."""
        late = [
            ts
            for moment, ts in zip(window.moments[first:last], window.stamps[first:last], strict=True)
            if moment > ts
        ]
        if not late:
            return {}
        hidden: dict[int, int] = {}
        for edit in self.data.edits.between(point, min(late), max(late), window.moments[last - 1]):
            hidden.setdefault(edit.ts, edit.happened)
        return hidden

    def _window(self, point: Point, after: int, until: int) -> _Window:
        """A cached window of arrivals holding (after, until]; a new one (cached when short) if none does."""
        window = self._windows.get(point.id)
        if window is not None and window.after <= after and until <= window.until:
            return window
        density = self.data.schedule(point).density
        reach = max(until, after + min(max(int(WINDOW_VALUES / density), NS), WINDOW_MAX_NS))
        block, moments = self.data.arrivals(point, after, reach)
        window = _Window(after, reach, moments.tolist(), block.ts.tolist(), self._dicts(point, block))
        if reach - after <= WINDOW_MAX_NS:
            self._windows[point.id] = window
        return window

    def _dicts(self, point: Point, block: Block) -> list[dict]:
        states = self.data.archive.enumeration_set(point.digital_set).states if point.digital_set else ()
        return orjson.loads(timed_values(block, point.units, None, states))


def _event(action: str, value: dict) -> dict:
    previous = "PreviousEventArchived" if action == "Add" else "None"
    return {"Action": action, "PreviousEventAction": previous, **value}
