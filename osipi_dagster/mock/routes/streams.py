"""The Stream controller: ``/streams/{webId}/recorded|interpolated|plot|summary|value|end|recordedattime``.

A stream is a PI point (``DP``) or an AF attribute (``Ab``). An attribute with a PI Point data reference
reads its point's data in the attribute's units; a static attribute answers its value stamped
1970-01-01T00:00:00Z (as AF does) for every read but summary (409). An event-frame attribute's default time
range is its frame's (start, end) instead of ``*-1d`` / ``*``.

Parameters and defaults (piwebapi.md 3.1-3.2): ``startTime`` ``*-1d``, ``endTime`` ``*`` (descending order
when ``endTime < startTime``), ``maxCount`` 1000 (silent truncation; above MaxReturnedItemsPerCall a 400),
``boundaryType`` Inside | Outside | Interpolated, ``interval`` ``1h``, ``intervals`` 24, ``summaryType``
Total (repeatable; All, AllForNonNumeric), ``calculationBasis`` TimeWeighted | EventWeighted,
``summaryDuration`` (one summary per duration), ``time`` for value (default: the snapshot, or the event
frame's end), ``retrievalMode`` for recordedattime, ``timeZone``, ``selectedFields``. ``filterExpression``
is not simulated (400). The reading logic here is shared with the stream sets (``streamsets.py``).
"""

from __future__ import annotations

import re

import numpy as np
import orjson
from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from osipi_dagster.mock import webids
from osipi_dagster.mock.errors import JSON_MEDIA_TYPE, PIError
from osipi_dagster.mock.links import api_base
from osipi_dagster.mock.model import Attribute, Stream
from osipi_dagster.mock.params import Params
from osipi_dagster.mock.responses import FieldTree, parse_selected_fields, select
from osipi_dagster.mock.serialize import failed_value, included, timed_value, timed_values
from osipi_dagster.mock.state import MockState
from osipi_dagster.mock.timeparse import NS
from osipi_dagster.mock.values import NON_NUMERIC_SUMMARIES, SUMMARY_TYPES, Block, SummaryError

router = APIRouter(prefix="/piwebapi")

STATIC_TIMESTAMP = "1970-01-01T00:00:00Z"
_SPAN = re.compile(r"^\s*([+-]?\d+(?:\.\d+)?)\s*(s|sec|m|min|h|hr|hour|d|day|w|wk|week)s?\s*$", re.I)
_SPAN_NS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600, "hour": 3600, "d": 86_400,
            "day": 86_400, "w": 604_800, "wk": 604_800, "week": 604_800}  # fmt: skip
_BASES = {"TimeWeighted": "TimeWeighted", "EventWeighted": "EventWeighted",
          "TimeWeightedContinuous": "TimeWeighted", "TimeWeightedDiscrete": "TimeWeighted",
          "EventWeightedExcludeMostRecentEvent": "EventWeighted",
          "EventWeightedExcludeEarliestEvent": "EventWeighted",
          "EventWeightedIncludeBothEnds": "EventWeighted"}  # fmt: skip
_RETRIEVAL = ["Auto", "AtOrBefore", "Before", "AtOrAfter", "After", "Exact"]
_STATIC_ERROR = "The data reference of this attribute does not support the requested operation."
# Stream times are int64 ns (until 2116 here, with room for arithmetic): a recorded window is clamped to this
# range (nothing is recorded beyond it); other reads that would stamp a time beyond it, and longer time
# spans, are a 400.
MAX_STREAM_NS = 1 << 62


def resolve_stream(state: MockState, text: str) -> Stream:
    """The stream a WebId names: 400 if malformed or not a stream, 404 if unknown."""
    web = webids.decode(text)
    if web.marker == "DP":
        point = state.archive.resolve_point(text)
        return Stream(point.name, state.archive.point_path(point), point.units, point, None, None)
    if web.marker == "Ab":
        context = state.af.time_context(web) if web.owner == "F" else None
        return attribute_stream(state, state.af.attribute(web), context)
    raise PIError(400, f"Unknown or invalid WebID format: '{text}'.")


def attribute_stream(state: MockState, attribute: Attribute, context: tuple[int, int] | None) -> Stream:
    point = state.archive.point(attribute.point_id) if attribute.point_id is not None else None
    return Stream(attribute.name, attribute.path, attribute.units, point, attribute, context)


def stream_webid(state: MockState, stream: Stream, kind: str) -> str:
    """The stream's WebID in the requested ``webIdType``."""
    if stream.attribute is None:
        assert stream.point is not None
        return state.archive.point_webid(stream.point, kind)
    a = stream.attribute
    guids = (state.af.system_guid, a.owner_guid, a.guid)
    return webids.encode("Ab", guids, a.path, owner=a.owner_kind, webid_type=kind)


def source_link(request: Request, stream: Stream, web: str) -> str:
    return f"{api_base(request)}/{'points' if stream.attribute is None else 'attributes'}/{web}"


def parse_span(text: str, name: str) -> int:
    """An AFTimeSpan such as ``1h``, ``30m``, ``1.5d`` or ``00:10:00`` in ns; 400 if malformed."""
    match = _SPAN.match(text)
    parts = text.strip().split(":")
    if match:
        span = round(float(match.group(1)) * _SPAN_NS[match.group(2).lower()] * NS)
    elif len(parts) == 3 and all(p.replace(".", "", 1).isdigit() for p in parts):
        span = round((int(parts[0]) * 3600 + int(parts[1]) * 60 + float(parts[2])) * NS)
    else:
        span = None
    if span is None or abs(span) > MAX_STREAM_NS:
        raise PIError(400, f"The value '{text}' is not valid for {name}.")
    return span


class Reader:
    """One request's reads: its parameters, its now, the server's limits."""

    def __init__(self, request: Request) -> None:
        self.request = request
        self.state: MockState = request.app.state.mock
        self.params = Params.of(request)
        self.now = self.params.now_ns
        self.limit = self.state.config.max_returned_items
        self.data = self.state.archive.data
        self.tree = parse_selected_fields(self.params.get("selectedFields"))
        if self.params.get("filterExpression"):
            raise PIError(400, "The filterExpression parameter is not supported by this server.")
        # Windows by context: the streams of a stream set share one, parsed once rather than per stream.
        self._windows: dict[tuple[int, int] | None, tuple[int, int]] = {}

    def window(self, stream: Stream | None, context: tuple[int, int] | None = None) -> tuple[int, int]:
        """(startTime, endTime): defaults ``*-1d`` / ``*``, or the event frame's time range."""
        context = context or (stream.context if stream else None)
        found = self._windows.get(context)
        if found is None:
            found = self._windows[context] = self._window(context)
        return found

    def _window(self, context: tuple[int, int] | None) -> tuple[int, int]:
        if context is None:
            start, end = self.params.time("startTime", "*-1d"), self.params.time("endTime", "*")
        else:
            start = self.params.time("startTime", "*") if self.params.get("startTime") else context[0]
            end = self.params.time("endTime", "*") if self.params.get("endTime") else context[1]
        return start, end

    def bounded(self, window: tuple[int, int]) -> tuple[int, int]:
        """``window`` unchanged for reads that stamp its times; 400 beyond the range of stream times."""
        if max(abs(window[0]), abs(window[1])) > MAX_STREAM_NS:
            raise PIError(400, "The time range is out of the supported range.")
        return window

    def single_time(self, name: str) -> int:
        """A time parameter naming one moment (``time``): 400 beyond the range of stream times."""
        at = self.params.time(name, "*")
        if abs(at) > MAX_STREAM_NS:
            raise PIError(400, f"The time '{self.params.get(name)}' is out of the supported range.")
        return at

    def digital_states(self, stream: Stream) -> tuple[tuple[int, str], ...]:
        if stream.point is None or not stream.point.digital_set:
            return ()
        return self.state.archive.enumeration_set(stream.point.digital_set).states

    # -- reads returning blocks (None for a static attribute) ------------------------------------------

    def recorded(self, stream: Stream, max_count: int, window: tuple[int, int]) -> Block | None:
        boundary = self.params.choice("boundaryType", "Inside", ["Inside", "Outside", "Interpolated"])
        if stream.point is None:
            return None
        start, end = (max(-MAX_STREAM_NS, min(t, MAX_STREAM_NS)) for t in window)
        return self.data.recorded(stream.point, start, end, self.now, max_count, boundary)

    def interpolated(self, stream: Stream, window: tuple[int, int]) -> Block | None:
        interval = parse_span(self.params.get("interval") or "1h", "interval")
        if stream.point is None:
            return None
        start, end = self.bounded(window)
        block = self.data.interpolated(
            stream.point, min(start, end), max(start, end), interval, self.now, self.limit
        )
        return block.take(slice(None, None, -1)) if end < start else block

    def plot(self, stream: Stream, window: tuple[int, int]) -> Block | None:
        intervals = self.params.int("intervals", 24)
        if intervals < 1 or intervals > self.limit:
            raise PIError(400, f"The value '{intervals}' is not valid for intervals.")
        if stream.point is None:
            return None
        return self.data.plot(stream.point, *self.bounded(window), intervals, self.now)

    def value(self, stream: Stream, context: tuple[int, int] | None = None) -> Block | None:
        """The value at ``time`` (interpolated), else at the event frame's end, else the snapshot."""
        context = context or stream.context
        text = self.params.get("time")
        if stream.point is None:
            return None
        if text:
            at = self.single_time("time")
        elif context is not None:
            at = context[1]
        else:
            return self.data.snapshot(stream.point, self.now)
        return self.data.interpolated_at(stream.point, np.array([at], np.int64), self.now)

    def end(self, stream: Stream) -> Block | None:
        return None if stream.point is None else self.data.end(stream.point, self.now)

    def recorded_at(self, stream: Stream) -> Block | None:
        if not self.params.get("time"):
            raise PIError(400, "The 'time' parameter is required.")
        at = self.single_time("time")
        mode = self.params.choice("retrievalMode", "Auto", _RETRIEVAL)
        return None if stream.point is None else self.data.recorded_at(stream.point, at, self.now, mode)

    def summary_types(self) -> list[str]:
        names = self.params.get_list("summaryType") or ["Total"]
        canonical = {t.lower(): t for t in (*SUMMARY_TYPES, "All", "AllForNonNumeric")}
        types: list[str] = []
        for name in (part.strip() for text in names for part in text.split(",")):
            if name.lower() not in canonical:
                raise PIError(400, f"The value '{name}' is not valid for summaryType.")
            found = canonical[name.lower()]
            expanded = SUMMARY_TYPES if found == "All" else NON_NUMERIC_SUMMARIES
            types += list(expanded) if found in ("All", "AllForNonNumeric") else [found]
        return list(dict.fromkeys(types))

    def summaries(self, stream: Stream, window: tuple[int, int]) -> list[tuple[str, Block | SummaryError]]:
        """(type, one-value block, or the error of a type the stream cannot compute) per summary type and
        summary interval."""
        types = self.summary_types()
        basis = _BASES[self.params.choice("calculationBasis", "TimeWeighted", list(_BASES))]
        if stream.point is None:
            raise PIError(409, _STATIC_ERROR)
        start, end = min(self.bounded(window)), max(window)
        duration_text = self.params.get("summaryDuration")
        duration = parse_span(duration_text, "summaryDuration") if duration_text else max(end - start, 1)
        if duration <= 0:
            raise PIError(400, f"The value '{duration_text}' is not valid for summaryDuration.")
        if (end - start) / duration > self.limit:
            raise PIError(
                400, f"The number of summary intervals is greater than the maximum allowed ({self.limit})."
            )
        edges = (
            np.r_[np.arange(start, end, duration, dtype=np.int64), end]
            if end > start
            else np.array([start, end], np.int64)
        )
        per_interval = self.data.summaries(stream.point, edges, types, self.now, basis)
        return [pairs[i] for i in range(len(types)) for pairs in per_interval]

    # -- JSON ------------------------------------------------------------------------------------------

    def values_bytes(
        self, stream: Stream, block: Block | None, tree: FieldTree | None, stamps: list[bytes] | None = None
    ) -> bytes:
        """A JSON array of TimedValues (the static value alone for a static attribute); ``stamps``: the
        block's timestamps, formatted already (see :func:`~osipi_dagster.mock.serialize.timed_values`)."""
        if block is None:
            return orjson.dumps([select(self.static_value(stream), tree)])
        return timed_values(block, stream.units, tree, self.digital_states(stream), stamps)

    def value_bytes(self, stream: Stream, block: Block | None, tree: FieldTree | None) -> bytes:
        """One TimedValue object (the static value for a static attribute)."""
        if block is None:
            return orjson.dumps(select(self.static_value(stream), tree))
        return timed_value(block, stream.units, tree, self.digital_states(stream))

    def static_value(self, stream: Stream) -> dict:
        assert stream.attribute is not None
        return {
            "Timestamp": STATIC_TIMESTAMP,
            "Value": stream.attribute.static_value,
            "UnitsAbbreviation": stream.units,
            "Good": True,
            "Questionable": False,
            "Substituted": False,
            "Annotated": False,
        }

    def summary_items(
        self, stream: Stream, pairs: list[tuple[str, Block | SummaryError]], tree: FieldTree | None
    ) -> list:
        """``[{"Type", "Value": TimedValue}]``, trimmed by ``tree`` (the selection below ``Items``); a type
        the stream cannot compute is a value carrying ``Errors``, as PI answers it."""
        _, value_tree = included(tree, "Value")
        items = []
        for kind, result in pairs:
            units = "" if kind == "Count" else "%" if kind == "PercentGood" else stream.units
            if isinstance(result, SummaryError):
                value = select(failed_value(result.ts, units, result.message), value_tree)
            else:
                value = orjson.Fragment(timed_value(result, units, value_tree))
            items.append(select({"Type": kind, "Value": value}, tree))
        return items


def json_bytes(body: bytes) -> Response:
    return Response(body, 200, media_type=JSON_MEDIA_TYPE)


def _collection(reader: Reader, stream: Stream, block: Block) -> Response:
    """``{"Links", "Items": [TimedValue...], "UnitsAbbreviation"}`` for a block of values."""
    keep, tree = _items_tree(reader)
    items = reader.values_bytes(stream, block, tree) if keep else b"[]"
    body = {"Links": {}, "Items": orjson.Fragment(items), "UnitsAbbreviation": stream.units}
    return json_bytes(orjson.dumps(select(body, reader.tree)))


def _items_tree(reader: Reader) -> tuple[bool, FieldTree | None]:
    return included(reader.tree, "Items")


def _stream(request: Request) -> tuple[Reader, Stream]:
    reader = Reader(request)
    return reader, resolve_stream(reader.state, request.path_params["webId"])


@router.get("/streams/{webId}/recorded")
async def recorded(request: Request) -> Response:
    reader, stream = _stream(request)
    max_count = reader.params.max_count(reader.limit)
    return _collection(reader, stream, reader.recorded(stream, max_count, reader.window(stream)))


@router.get("/streams/{webId}/interpolated")
async def interpolated(request: Request) -> Response:
    reader, stream = _stream(request)
    return _collection(reader, stream, reader.interpolated(stream, reader.window(stream)))


@router.get("/streams/{webId}/plot")
async def plot(request: Request) -> Response:
    reader, stream = _stream(request)
    return _collection(reader, stream, reader.plot(stream, reader.window(stream)))


@router.get("/streams/{webId}/summary")
async def summary(request: Request) -> Response:
    reader, stream = _stream(request)
    pairs = reader.summaries(stream, reader.window(stream))
    _, tree = _items_tree(reader)
    body = {"Links": {}, "Items": reader.summary_items(stream, pairs, tree)}
    return json_bytes(orjson.dumps(select(body, reader.tree)))


def _single(reader: Reader, stream: Stream, block: Block | None) -> Response:
    return json_bytes(reader.value_bytes(stream, block, reader.tree))


@router.get("/streams/{webId}/value")
async def value(request: Request) -> Response:
    reader, stream = _stream(request)
    return _single(reader, stream, reader.value(stream))


@router.get("/streams/{webId}/end")
async def end(request: Request) -> Response:
    reader, stream = _stream(request)
    return _single(reader, stream, reader.end(stream))


@router.get("/streams/{webId}/recordedattime")
async def recorded_at_time(request: Request) -> Response:
    reader, stream = _stream(request)
    return _single(reader, stream, reader.recorded_at(stream))
