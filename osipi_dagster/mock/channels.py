"""Channels (stream-updates-channels.md section 2): what one WebSocket channel sends, poll after poll.

A channel holds its streams and a position (a moment of the mock's clock and the admin edits posted by then,
as a stream-updates marker does). Every ``channel_poll_ms`` it moves the position to now and sends what
happened in between, read from the same change feed as stream updates, so a channel sees exactly what the
recorded reads see, when they start to see it:

- values whose timestamp the clock passed, and late values when they arrive (``Add`` and ``Insert`` events),
  as plain TimedValues;
- edits that replace earlier values (``Update`` events) with ``Substituted: true``, as the Channels topic
  says of modified values (a value an edit puts where there was none is sent as a plain value);
- deletions are not sent: the documented sentence about them is cut off, a TimedValue cannot say "deleted",
  and a client learns of deletions from stream updates or a recorded read.

A message is ``{"Links": {}, "Items": [{WebId, Name, Path, Links: {Self}, UnitsAbbreviation, Items:
[TimedValue...]}]}`` holding only the streams that changed, values in the order they became visible (not
chronological). ``includeInitialValues`` sends each stream's current value (its snapshot) first.
``heartbeatRate`` n > 0: after n polls in a row with nothing to send, an empty message
``{"Links": {}, "Items": []}``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import orjson

from osipi_dagster.mock.model import Stream
from osipi_dagster.mock.serialize import timed_values
from osipi_dagster.mock.updates import Position

if TYPE_CHECKING:  # the state holds the channel registry
    from osipi_dagster.mock.state import MockState

HEARTBEAT = b'{"Links":{},"Items":[]}'
_IGNORED_EVENT_FIELDS = ("Action", "PreviousEventAction")


@dataclass(frozen=True, slots=True)
class ChannelStream:
    """A stream of a channel, with the fixed part of its message item."""

    stream: Stream
    header: dict  # WebId, Name, Path, Links, UnitsAbbreviation


@dataclass(slots=True)
class ChannelInstance:
    """A running channel, as ``GET /channels/instances`` lists it."""

    id: str
    started: str
    last_sent: str | None = None
    sent: int = 0


@dataclass
class ChannelRegistry:
    """The running channels of one server."""

    instances: dict[str, ChannelInstance] = field(default_factory=dict)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    def open(self, started: str) -> ChannelInstance:
        instance = ChannelInstance(f"channel-{next(self._ids)}", started)
        self.instances[instance.id] = instance
        return instance

    def close(self, instance: ChannelInstance) -> None:
        self.instances.pop(instance.id, None)


class Channel:
    """The messages of one channel over ``streams``, from the moment it is built."""

    def __init__(
        self, state: MockState, streams: list[ChannelStream], heartbeat_rate: int, include_initial: bool
    ) -> None:
        self.state = state
        self.streams = streams
        self.heartbeat_rate = heartbeat_rate
        self.include_initial = include_initial
        self.position = state.updates.position()
        self._idle_polls = 0

    def initial(self) -> bytes:
        """The message of every stream's current value (``includeInitialValues``)."""
        data, now = self.state.archive.data, self.position.time
        items = []
        for entry in self.streams:
            point = entry.stream.point
            assert point is not None
            block = data.snapshot(point, now)
            values = orjson.loads(timed_values(block, entry.stream.units, None, self._states(entry)))
            items.append({**entry.header, "Items": values})
        return orjson.dumps({"Links": {}, "Items": items})

    def poll(self) -> bytes | None:
        """The next message: what became visible since the last poll, a heartbeat, or None (nothing)."""
        until: Position = self.state.updates.position()
        since, self.position = self.position, until
        items = []
        if since.time < until.time or since.posted < until.posted:
            feed = self.state.updates.feed
            for entry in self.streams:
                point = entry.stream.point
                assert point is not None
                events = feed.events(point, since, until)
                units = entry.stream.units
                values = [_value(event, units) for event in events if event["Action"] != "Delete"]
                if values:
                    items.append({**entry.header, "Items": values})
        if items:
            self._idle_polls = 0
            return orjson.dumps({"Links": {}, "Items": items})
        self._idle_polls += 1
        if self.heartbeat_rate > 0 and self._idle_polls >= self.heartbeat_rate:
            self._idle_polls = 0
            return HEARTBEAT
        return None

    def _states(self, entry: ChannelStream) -> tuple[tuple[int, str], ...]:
        point = entry.stream.point
        assert point is not None
        if not point.digital_set:
            return ()
        return self.state.archive.enumeration_set(point.digital_set).states


def _value(event: dict, units: str) -> dict:
    """The TimedValue a channel sends for a change-feed event."""
    value = {key: item for key, item in event.items() if key not in _IGNORED_EVENT_FIELDS}
    value["UnitsAbbreviation"] = units
    if event["Action"] == "Update":
        value["Substituted"] = True
    return value
