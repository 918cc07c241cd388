"""Stream updates (stream-updates-channels.md section 1): register streams, then read markers.

- ``POST /streams/{webId}/updates`` and ``POST /streamsets/updates?webId=..&webId=..`` (no body; the CSRF
  header like any POST) register a point or an attribute over a point from the clock's now. The answer is
  ``{Source, SourceName, SourcePath, Status, LatestMarker, Links: {Updates}}`` (a stream set:
  ``{Items: [...], Links: {}}`` in request order) with a ``Location`` header for the next read. ``Status`` is
  ``Succeeded``, ``AlreadyRegistered`` or ``Failed``. A malformed WebID (or one that is not a stream) is a
  400 and a static attribute a 409, for the whole request; a well-formed WebID naming nothing is answered
  ``Failed`` with ``Exception: {Errors: [...]}`` (the documentation lists only 200/400/409, and the stream
  set's other streams register).
- ``GET /streams/updates/{marker}`` answers ``{Source, SourceName, SourcePath, RequestedMarker,
  LatestMarker, Status: "Updated", Events: [...], Links: {}}`` and a ``Location`` header; 404 when the
  marker's cache is gone (expired, or never existed), 409 for a marker that is malformed or not a current
  marker of its cache. ``desiredUnits`` is accepted and ignored, as on recorded reads.
- ``GET /streamsets/updates?marker=..&marker=..`` answers ``{Items: [...], Links: {}}``, one item per marker
  in request order. Its documentation lists only 200, and PI Web API 2018 SP1 reports marker errors in
  ``Exception``: so a marker the single read would answer 404 or 409 gets an item ``{RequestedMarker,
  Events: [], Exception: {Errors: ["Cache not found: ..." | "Invalid marker supplied: ..."]}, Links: {}}``
  and the other markers are read as usual.

Every route takes ``selectedFields`` and ``webIdType`` (of ``Source``); fields without a value are left out,
as PI leaves out a null ``Exception``. A stream set's ``Location`` lists its latest markers, so it grows with
the request; it is left out when it would exceed ``LOCATION_MAX_BYTES`` (16 KB, the total header size many
HTTP stacks accept by default, e.g. Node.js; Python's ``http.client`` refuses header lines over 64 KB).
"""

from __future__ import annotations

from urllib.parse import urlencode

import orjson
from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from osipi_dagster.mock.errors import JSON_MEDIA_TYPE, PIError
from osipi_dagster.mock.links import api_base
from osipi_dagster.mock.middleware import identity_of
from osipi_dagster.mock.model import Stream
from osipi_dagster.mock.params import Params
from osipi_dagster.mock.responses import parse_selected_fields, select
from osipi_dagster.mock.routes.dataservers import webid_type
from osipi_dagster.mock.routes.streams import resolve_stream, stream_webid
from osipi_dagster.mock.state import MockState
from osipi_dagster.mock.updates import MarkerError, Reading, Registration

router = APIRouter(prefix="/piwebapi")

LOCATION_MAX_BYTES = 16_384


class _Call:
    """One request's state, parameters, user and the WebID type of its answer."""

    def __init__(self, request: Request) -> None:
        self.request = request
        self.state: MockState = request.app.state.mock
        self.params = Params.of(request)
        self.kind = webid_type(self.params)
        self.user = identity_of(request).name
        self.api = api_base(request)

    def answer(self, body: dict, location: str | None) -> Response:
        headers = {"Location": location} if location and len(location) <= LOCATION_MAX_BYTES else None
        tree = parse_selected_fields(self.params.get("selectedFields"))
        return Response(orjson.dumps(select(body, tree)), 200, headers, media_type=JSON_MEDIA_TYPE)

    def set_location(self, markers: list[str]) -> str | None:
        return (
            f"{self.api}/streamsets/updates?{urlencode([('marker', m) for m in markers])}"
            if markers
            else None
        )

    # -- registration ----------------------------------------------------------------------------------

    def resolve(self, texts: list[str]) -> list[Stream | PIError]:
        """The stream of each WebID, or the 404 of one naming nothing; 400 and 409 fail the request."""
        found: list[Stream | PIError] = []
        for text in texts:
            try:
                found.append(resolve_stream(self.state, text))
            except PIError as error:
                if error.status != 404:
                    raise
                found.append(error)
        for stream in found:
            if isinstance(stream, Stream) and stream.static:
                raise PIError(
                    409,
                    f"WebId represents a static attribute: '{stream.path}' has no data reference, so it has "
                    "no updates to register.",
                )
        return found

    def register(self, text: str, stream: Stream | PIError) -> dict:
        if isinstance(stream, PIError):
            return {"Source": text, "Status": "Failed", "Exception": {"Errors": stream.messages}, "Links": {}}
        key = stream_webid(self.state, stream, "Full")
        status, marker = self.state.updates.register(self.user, key, stream)
        return {
            **self.source(stream, key),
            "Status": status,
            "LatestMarker": marker,
            "Links": {"Updates": f"{self.api}/streams/updates/{marker}"},
        }

    def source(self, stream: Stream, key: str) -> dict:
        web = key if self.kind == "Full" else stream_webid(self.state, stream, self.kind)
        return {"Source": web, "SourceName": stream.name, "SourcePath": stream.path}

    # -- retrieval -------------------------------------------------------------------------------------

    def retrieve(self, reading: Reading) -> dict:
        registration: Registration = reading.registration
        stream, point = registration.stream, registration.point
        events = self.state.updates.feed.events(point, reading.since, reading.until)
        if stream.units != point.units:
            events = [{**event, "UnitsAbbreviation": stream.units} for event in events]
        return {
            **self.source(stream, registration.key),
            "RequestedMarker": reading.requested,
            "LatestMarker": reading.latest,
            "Status": "Updated",
            "Events": events,
            "Links": {},
        }


@router.post("/streams/{webId}/updates")
async def register_stream(request: Request) -> Response:
    """Register one stream for updates."""
    call = _Call(request)
    text = request.path_params["webId"]
    item = call.register(text, call.resolve([text])[0])
    marker = item.get("LatestMarker")
    return call.answer(item, f"{call.api}/streams/updates/{marker}" if marker else None)


@router.post("/streamsets/updates")
async def register_streams(request: Request) -> Response:
    """Register several streams for updates, one marker each."""
    call = _Call(request)
    texts = call.params.get_list("webId")
    if not texts:
        raise PIError(400, "At least one 'webId' parameter is required.")
    items = [call.register(text, stream) for text, stream in zip(texts, call.resolve(texts), strict=True)]
    markers = [item["LatestMarker"] for item in items if "LatestMarker" in item]
    return call.answer({"Items": items, "Links": {}}, call.set_location(markers))


@router.get("/streams/updates/{marker}")
async def retrieve_stream(request: Request) -> Response:
    """The events of one stream since a marker."""
    call = _Call(request)
    try:
        reading = call.state.updates.read(call.user, request.path_params["marker"])
    except MarkerError as error:
        raise PIError(error.status, error.message) from None
    return call.answer(call.retrieve(reading), f"{call.api}/streams/updates/{reading.latest}")


@router.get("/streamsets/updates")
async def retrieve_streams(request: Request) -> Response:
    """The events of several streams, each since its marker; a marker that cannot be read fails its item
    alone."""
    call = _Call(request)
    texts = call.params.get_list("marker")
    if not texts:
        raise PIError(400, "At least one 'marker' parameter is required.")
    items, markers = [], []
    for text in texts:
        try:
            reading = call.state.updates.read(call.user, text)
        except MarkerError as error:
            items.append(
                {"RequestedMarker": text, "Events": [], "Exception": {"Errors": [error.message]}, "Links": {}}
            )
            continue
        items.append(call.retrieve(reading))
        markers.append(reading.latest)
    return call.answer({"Items": items, "Links": {}}, call.set_location(markers))
