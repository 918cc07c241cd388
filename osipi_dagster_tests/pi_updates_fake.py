"""A PI Web API that plays Stream Updates for the ``test_pi_updates_*`` tests, on a real HTTP server.

Until the mock serves Stream Updates, these tests need a server that answers like PI Web API does
(``/work/shared/reference/stream-updates-channels.md`` §1): ``POST /streamsets/updates?webId=…`` registers
(400 for an unknown WebId, 409 for a static attribute, ``Status: Failed`` with an ``Exception`` for a
registration that fails) and ``GET /streamsets/updates?marker=…`` reads (404 "Cache not found" once the
cache is dropped, 409 "Invalid marker supplied" for a marker it never gave, an ``Exception`` on the item of
a stream whose signup changed). It shares no code with the client nor with the mock.

Markers are ``<cache>_<n>`` and name a position in a stream's log of events: they can be read again, and a
read answers every event after the position with the marker of the end of the log.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from osipi_dagster_tests.untrusted_server import Answer, Exchange, Proxy

ROUTE = "/piwebapi/streamsets/updates"


@dataclass
class FakePoint:
    web_id: str
    name: str
    static: bool = False  # a static AF attribute: registration answers 409
    events: list[dict[str, Any]] = field(default_factory=list)


def event(
    action: str,
    timestamp: str,
    value: Any,
    *,
    previous: str | None = "PreviousEventArchived",
    units: str = "",
    good: Any = True,
    questionable: Any = False,
    substituted: Any = False,
    annotated: Any = False,
    **extra: Any,
) -> dict[str, Any]:
    """One ``DataPipeEvent`` as PI Web API writes it."""
    body: dict[str, Any] = {"Action": action}
    if previous is not None:
        body["PreviousEventAction"] = previous
    body.update(
        {
            "Timestamp": timestamp,
            "UnitsAbbreviation": units,
            "Good": good,
            "Questionable": questionable,
            "Substituted": substituted,
            "Annotated": annotated,
            "Value": value,
        }
    )
    body.update(extra)
    return body


def _errors(*messages: str) -> dict[str, list[str]]:
    return {"Errors": list(messages)}


class FakeUpdatesPI:
    """The server, its points (``points``), and every request it received (``exchanges``).

    Knobs the tests turn: ``failed`` (WebId -> the Exception of a Failed registration), ``signup_changed``
    (WebId -> the Exception of its retrieval item), ``spelling`` (WebId -> the Source PI answers with),
    ``strays`` (items of streams nobody asked for, added to every answer), ``omit`` (WebIds whose items are
    left out of retrievals), ``reverse`` (answer items in reverse order), ``whole`` (may answer any request
    itself, e.g. with a 500), ``item_hook`` (edits each item of a retrieval), ``delay_s`` (a pause in each
    answer, to see requests overlap).
    """

    def __init__(self, points: list[FakePoint]):
        self.points = {point.web_id: point for point in points}
        self.cache = uuid.uuid4().hex
        self.markers: dict[str, tuple[str, int]] = {}  # marker -> (WebId, position in its log)
        self.registered: set[str] = set()
        self.failed: dict[str, str] = {}
        self.signup_changed: dict[str, str] = {}
        self.spelling: dict[str, str] = {}
        self.strays: list[dict[str, Any]] = []
        self.omit: set[str] = set()
        self.reverse = False
        self.whole: Callable[[Exchange], Answer | None] | None = None
        self.item_hook: Callable[[str, dict[str, Any]], None] | None = None
        self.delay_s = 0.0
        self.inflight = 0
        self.max_inflight = 0
        self._lock = threading.Lock()
        self._count = 0
        self.proxy = Proxy(answer=self.answer)
        self.api = self.proxy.api
        self.exchanges = self.proxy.exchanges

    def close(self) -> None:
        self.proxy.close()

    def drop_cache(self) -> None:
        """What an expired or restarted cache does: every marker given so far is unknown."""
        with self._lock:
            self.cache = uuid.uuid4().hex
            self.markers.clear()
            self.registered.clear()

    def add(self, web_id: str, *events: dict[str, Any]) -> None:
        self.points[web_id].events.extend(events)

    def _marker(self, web_id: str, position: int) -> str:
        with self._lock:
            self._count += 1
            marker = f"{self.cache}_{self._count}"
            self.markers[marker] = (web_id, position)
        return marker

    def answer(self, exchange: Exchange) -> Answer:
        with self._lock:
            self.inflight += 1
            self.max_inflight = max(self.max_inflight, self.inflight)
        try:
            time.sleep(self.delay_s)
            forced = self.whole(exchange) if self.whole is not None else None
            if forced is not None:
                return forced
            if exchange.route != ROUTE:
                return _json(404, _errors(f"no route {exchange.route}"))
            if exchange.method == "POST":
                return self._register([v for k, v in exchange.query if k == "webId"])
            return self._retrieve([v for k, v in exchange.query if k == "marker"])
        finally:
            with self._lock:
                self.inflight -= 1

    def _register(self, web_ids: list[str]) -> Answer:
        unknown = [w for w in web_ids if w not in self.points]
        if unknown:
            return _json(400, _errors(f"Unknown or invalid WebID format: '{unknown[0]}'."))
        static = [w for w in web_ids if self.points[w].static]
        if static:
            return _json(409, _errors(f"The WebId '{static[0]}' represents a static attribute."))
        items = []
        for web_id in web_ids:
            point = self.points[web_id]
            item: dict[str, Any] = {
                "Source": self.spelling.get(web_id, web_id),
                "SourceName": point.name,
                "SourcePath": f"\\\\PISRV01\\{point.name}",
            }
            if web_id in self.failed:
                item.update(Status="Failed", LatestMarker=None, Exception=_errors(self.failed[web_id]))
            else:
                status = "AlreadyRegistered" if web_id in self.registered else "Succeeded"
                self.registered.add(web_id)
                marker = self._marker(web_id, len(point.events))
                item.update(Status=status, LatestMarker=marker, Exception=None)
            items.append(item)
        return self._items(items)

    def _items(self, items: list[dict[str, Any]]) -> Answer:
        if self.reverse:
            items.reverse()
        return _json(200, {"Items": [*items, *self.strays], "Links": {}})

    def _retrieve(self, markers: list[str]) -> Answer:
        with self._lock:
            known = dict(self.markers)
        if any(marker.split("_")[0] != self.cache for marker in markers):
            return _json(404, _errors("Cache not found"))
        if any(marker not in known for marker in markers):
            return _json(409, _errors("Invalid marker supplied"))
        items = []
        for marker in markers:
            web_id, position = known[marker]
            if web_id in self.omit:
                continue
            point = self.points[web_id]
            item: dict[str, Any] = {
                "Source": self.spelling.get(web_id, web_id),
                "SourceName": point.name,
                "SourcePath": f"\\\\PISRV01\\{point.name}",
                "RequestedMarker": marker,
                "LatestMarker": self._marker(web_id, len(point.events)),
                "Status": "Updated",
                "Events": point.events[position:],
                "Links": {},
            }
            if web_id in self.signup_changed:
                item["Exception"] = _errors(self.signup_changed[web_id])
            if self.item_hook is not None:
                self.item_hook(web_id, item)
            items.append(item)
        return self._items(items)


def _json(status: int, body: Any) -> Answer:
    return Answer(status, json.dumps(body).encode())


def web_id(n: int) -> str:
    """A Full PI point WebId-like string (opaque to the client), ~60 characters."""
    return f"F1DPmN0123abcdEXAMPLEwebid{n:06d}QUJDREVGR0hJSktMTU5PUFFSU1RVVldY"
