"""``GET /piwebapi`` (Landing) and the System controller: versions, status, cache instances, user info,
configuration."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from osipi_dagster.mock.links import api_base
from osipi_dagster.mock.middleware import identity_of
from osipi_dagster.mock.params import Params
from osipi_dagster.mock.responses import collection, json_response
from osipi_dagster.mock.timeparse import format_time

router = APIRouter(prefix="/piwebapi")

PRODUCT_TITLE = "PI Web API"
PRODUCT_VERSION = "1.19.1.7"  # the mock answers as PI Web API 2023 SP1
AUTH_METHODS = {"none": ["Anonymous"], "basic": ["Basic"], "bearer": ["Bearer"]}


def _answer(request: Request, body: dict) -> Response:
    """``body`` as JSON, trimmed by the request's ``selectedFields``."""
    return json_response(body, selected_fields=Params.of(request).get("selectedFields"))


@router.get("")
async def landing(request: Request) -> Response:
    """The root: links to the top-level collections."""
    base = api_base(request)
    links = {
        "Self": base + "/",
        "AssetServers": base + "/assetservers",
        "DataServers": base + "/dataservers",
        "Search": base + "/search",
        "System": base + "/system",
    }
    return _answer(request, {"Links": links})


@router.get("/system")
async def system_landing(request: Request) -> Response:
    base = api_base(request) + "/system"
    names = ("Configuration", "Status", "UserInfo", "Versions", "CacheInstances")
    links = {name: f"{base}/{name.lower()}" for name in names}
    body = {
        "Links": {"Self": base, **links},
        "ProductTitle": PRODUCT_TITLE,
        "ProductVersion": PRODUCT_VERSION,
    }
    return _answer(request, body)


@router.get("/system/versions")
async def versions(request: Request) -> Response:
    major_minor_revision, _, build = PRODUCT_VERSION.rpartition(".")
    version = {"FullVersion": PRODUCT_VERSION, "MajorMinorRevision": major_minor_revision, "Build": build}
    return _answer(request, {name: version for name in ("OSIsoft.REST.Core", "OSIsoft.REST.Documentation")})


@router.get("/system/status")
async def status(request: Request) -> Response:
    """Up time and server time follow the mock clock, so a fixed clock gives fixed answers."""
    state = request.app.state.mock
    now = state.clock.now_ns()
    body = {
        "UpTimeInMinutes": round((now - state.started_ns) / 60e9, 4),
        "State": "Running",
        "CacheInstances": 0,
        "ServerTime": format_time(now),
    }
    return _answer(request, body)


@router.get("/system/cacheinstances")
async def cache_instances(request: Request) -> Response:
    """The AF caches serving users: the mock keeps none (``/system/status`` says ``CacheInstances: 0``)."""
    return _answer(request, collection([]))


@router.get("/system/userinfo")
async def user_info(request: Request) -> Response:
    """The identity the request was authenticated as."""
    return _answer(request, identity_of(request).user_info())


@router.get("/system/configuration")
async def configuration(request: Request) -> Response:
    """The configuration items a client may care about, named as PI Web API names them."""
    config = request.app.state.mock.config
    body = {
        "AuthenticationMethods": AUTH_METHODS[config.auth],
        "EnableCSRFDefense": config.csrf,
        "MaxReturnedItemsPerCall": config.max_returned_items,
        "RateLimitMaxRequests": config.rate_limit_max,
        "RateLimitDuration": config.rate_limit_duration_s,
        "WebIDType": "Full",
    }
    return _answer(request, body)
