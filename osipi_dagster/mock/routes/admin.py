"""The admin API (outside ``/piwebapi``: no authentication, no injected faults): clock, faults, summary.

- ``GET /admin/clock`` -> ``{"Now": iso}``; ``POST /admin/clock`` with ``{"now": time}`` (ISO 8601 or any PI
  time string) or ``{"advance": "1h"}`` (a PI interval: s, m, h, d, w, mo, y; chained, signed) -> ``{"Now"}``.
- ``GET /admin/faults`` -> the fault configuration (snake_case fields); ``PUT /admin/faults`` with a JSON
  object of fields replaces it (omitted fields take their defaults) and restarts the fault schedule.
- ``GET /admin/info`` -> what the server serves: data server, points, AF databases, event frames, URLs.
- ``POST /admin/edits`` with ``{"Edits": [{"WebId", "Timestamp", "Value"} | {"WebId", "Timestamp",
  "Delete": true}, ...]}`` edits or deletes stored values now (on the mock's clock), in order, all or none
  -> ``{"Now", "Edits": [{"WebId", "Timestamp", "Action"}]}`` (the stream-updates action each made).
- ``POST /admin/updates/expire`` expires every stream-updates cache at once -> ``{"Expired": count}``.
"""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from fastapi import APIRouter
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response

from osipi_dagster.mock.config import FaultConfig, problem
from osipi_dagster.mock.edits import EditValue
from osipi_dagster.mock.errors import PIError
from osipi_dagster.mock.faults import FaultInjector
from osipi_dagster.mock.links import api_base
from osipi_dagster.mock.model import Point
from osipi_dagster.mock.params import Params
from osipi_dagster.mock.responses import json_response
from osipi_dagster.mock.routes.streams import resolve_stream
from osipi_dagster.mock.state import MockState
from osipi_dagster.mock.timeparse import format_time, parse_time

router = APIRouter(prefix="/admin")

_UTC = ZoneInfo("UTC")


async def _json_object(request: Request) -> dict[str, Any]:
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError as exc:
        raise PIError(400, f"The request body is not valid JSON: {exc}.") from exc
    if not isinstance(body, dict):
        raise PIError(400, "The request body must be a JSON object.")
    return body


def _now(request: Request) -> Response:
    return json_response({"Now": format_time(request.app.state.mock.clock.now_ns())})


@router.get("/clock")
async def get_clock(request: Request) -> Response:
    return _now(request)


@router.post("/clock")
async def set_clock(request: Request) -> Response:
    """Fix the clock at ``now``, or move it by ``advance``."""
    body = {key.lower(): value for key, value in (await _json_object(request)).items()}
    clock = request.app.state.mock.clock
    now_ns = clock.now_ns()
    if isinstance(body.get("now"), str) and "advance" not in body:
        clock.set(parse_time(body["now"], now_ns, _UTC))
    elif isinstance(body.get("advance"), str) and "now" not in body:
        interval = body["advance"].strip()
        sign = "" if interval.startswith(("+", "-")) else "+"
        clock.advance(parse_time(f"*{sign}{interval}", now_ns, _UTC) - now_ns)
    else:
        raise PIError(400, 'Send {"now": "<time>"} or {"advance": "<interval>"}, e.g. {"advance": "1h"}.')
    return _now(request)


def _faults_answer(config: FaultConfig) -> Response:
    return json_response(asdict(config))


@router.get("/faults")
async def get_faults(request: Request) -> Response:
    return _faults_answer(request.app.state.mock.faults.config)


def fault_config(body: dict[str, Any]) -> FaultConfig:
    """A ``FaultConfig`` from a JSON object; 400 for unknown fields, wrong types or values out of range."""
    known = {f.name: type(f.default) for f in fields(FaultConfig)}
    unknown = sorted(set(body) - set(known))
    if unknown:
        raise PIError(400, f"Unknown fault settings: {', '.join(unknown)}. Known: {', '.join(known)}.")
    values = {}
    for name, value in body.items():
        kind = known[name]
        valid = isinstance(value, int | float) and not isinstance(value, bool)
        if not valid or (kind is int and value != int(value)):
            raise PIError(400, f"The fault setting {name} must be a {kind.__name__} (got {value!r}).")
        values[name] = kind(value)
    try:
        return FaultConfig(**values)
    except ValidationError as error:
        raise PIError(400, f"The fault setting {problem(error, FaultConfig, {})}.") from None


@router.put("/faults")
async def put_faults(request: Request) -> Response:
    """Replace the fault configuration and start its schedule again."""
    config = fault_config(await _json_object(request))
    request.app.state.mock.faults = FaultInjector(config)
    return _faults_answer(config)


def _event_frames_last_day(state: MockState) -> int:
    """Event frames (with their children) that overlap the last day, over every database."""
    now_ns = state.clock.now_ns()
    params = Params([("startTime", "*-1d"), ("endTime", "*"), ("searchFullHierarchy", "true")], now_ns)
    return sum(len(state.event_frames.search(database, params)) for database in state.af.databases)


@router.get("/info")
async def info(request: Request) -> Response:
    """What this server serves, with example URLs (``make demo`` prints it)."""
    state: MockState = request.app.state.mock
    archive, af, config = state.archive, state.af, state.config
    api = api_base(request)
    first_point = archive.point_webid(archive.points[0])
    body = {
        "Now": format_time(state.clock.now_ns()),
        "ArchiveStart": format_time(archive.start_ns),
        "DataServer": {
            "Name": config.server_name,
            "WebId": archive.webid(),
            "PointCount": len(archive.points),
        },
        "AssetServer": {
            "Name": config.af_server_name,
            "Databases": [
                {"Name": db.name, "Path": db.path, "ElementCount": len(db.elements)} for db in af.databases
            ],
        },
        "EventFramesLastDay": _event_frames_last_day(state),
        "Auth": config.auth,
        "CSRF": config.csrf,
        "RateLimitMaxRequests": config.rate_limit_max,
        "FaultsEnabled": state.faults.enabled,
        "ExampleUrls": [
            api,
            f"{api}/dataservers",
            f"{api}/dataservers/{archive.webid()}/points?maxCount=10",
            f"{api}/streams/{first_point}/recorded?startTime=*-1h&endTime=*&maxCount=1000",
            f"{api}/assetservers",
            str(request.base_url).rstrip("/") + "/admin/clock",
        ],
    }
    return json_response(body)


_EDIT_FIELDS = {"webid": "WebId", "timestamp": "Timestamp", "value": "Value", "delete": "Delete"}


def _edit_request(state: MockState, item: object, now_ns: int) -> tuple[str, Point, int, EditValue | None]:
    """(WebId, point, timestamp, value or None for a delete) of one edit; PIError 400 when it is not one."""
    if not isinstance(item, dict):
        raise PIError(400, 'must be an object such as {"WebId": ..., "Timestamp": ..., "Value": ...}.')
    fields = {key.lower(): value for key, value in item.items()}
    unknown = sorted(key for key in item if key.lower() not in _EDIT_FIELDS)
    if unknown:
        raise PIError(
            400, f"has unknown fields {', '.join(unknown)}; known: {', '.join(_EDIT_FIELDS.values())}."
        )
    web, stamp = fields.get("webid"), fields.get("timestamp")
    if not isinstance(web, str) or not isinstance(stamp, str):
        raise PIError(400, "needs a WebId and a Timestamp, both strings.")
    deletes = fields.get("delete", False)
    if not isinstance(deletes, bool) or deletes == ("value" in fields):
        raise PIError(400, 'needs either a "Value" or "Delete": true.')
    stream = resolve_stream(state, web)
    if stream.point is None:
        raise PIError(400, f"names a static attribute ('{stream.path}'): it stores no values to edit.")
    point, data = stream.point, state.archive.data
    ts = parse_time(stamp, now_ns, _UTC)
    if not data.start_ns < ts <= data.horizon(point, now_ns):
        raise PIError(
            400,
            f"has Timestamp {format_time(ts)}, outside the stream's values: after the archive start "
            f"{format_time(data.start_ns)} and up to {format_time(data.horizon(point, now_ns))}.",
        )
    if deletes and not len(data.recorded(point, ts, ts, now_ns, 1)):
        raise PIError(400, f"deletes the values at {format_time(ts)}, but {point.name} has none there.")
    return web, point, ts, None if deletes else data.edits.admin_value(point, fields["value"])


@router.post("/edits")
async def post_edits(request: Request) -> Response:
    """Edit or delete stored values now, in order; a bad item fails the request and changes nothing."""
    state: MockState = request.app.state.mock
    body = {key.lower(): value for key, value in (await _json_object(request)).items()}
    items = body.get("edits")
    if not isinstance(items, list) or not items:
        raise PIError(400, 'Send {"Edits": [{"WebId": "...", "Timestamp": "...", "Value": ...}, ...]}.')
    now_ns = state.clock.now_ns()
    store, feed = state.archive.data.edits, state.updates.feed
    posted, answers = store.posted, []
    for index, item in enumerate(items):
        try:
            web, point, ts, value = _edit_request(state, item, now_ns)
        except PIError as error:
            store.withdraw(posted)
            raise PIError(
                error.status, *(f"Edits[{index}] {message}" for message in error.messages)
            ) from None
        event = feed.edit_event(point, store.post(point, ts, value, now_ns))
        answers.append({"WebId": web, "Timestamp": format_time(ts), "Action": event and event["Action"]})
    return json_response({"Now": format_time(now_ns), "Edits": answers})


@router.post("/updates/expire")
async def expire_updates(request: Request) -> Response:
    """Expire every stream-updates cache: their markers answer 404 until the streams register again."""
    return json_response({"Expired": request.app.state.mock.updates.expire_all()})
