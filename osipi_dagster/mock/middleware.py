"""The gateway in front of every ``/piwebapi`` route: faults, rate limit, authentication and CSRF defense.

A pure ASGI middleware (cheaper than Starlette's ``BaseHTTPMiddleware`` and able to drop a connection).
Order for a request from a client: injected faults, rate limit, authentication, CSRF, then the route.
Batch sub-requests (marked in their scope by the batch route) are only authenticated: the batch itself
already passed the faults, the rate limit and the CSRF check. Paths outside ``/piwebapi`` (``/admin``,
the token endpoint) pass straight through.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import replace

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from osipi_dagster.mock.auth import ANONYMOUS, Authenticator, Identity
from osipi_dagster.mock.errors import PIError
from osipi_dagster.mock.faults import FaultPlan
from osipi_dagster.mock.state import MockState

API_PREFIX = "/piwebapi"
DISCOVERY_PATH = "/piwebapi/.well-known/openid-configuration"  # served without authentication
SUBREQUEST = "osipi.subrequest"  # scope key: set on batch sub-requests
IDENTITY = "osipi.identity"  # scope key: the authenticated identity
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
STREAM_PATHS = ("/piwebapi/streams/", "/piwebapi/streamsets")  # where per-value Errors are injected


def identity_of(request: Request) -> Identity:
    """The identity the gateway authenticated for ``request``."""
    return request.scope.get(IDENTITY, ANONYMOUS)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def is_api_path(path: str) -> bool:
    low = path.lower()
    return low == API_PREFIX or low.startswith(API_PREFIX + "/")


class RouteCaseFolder:
    """Gives a path the spelling of the route it matches case-insensitively, as ASP.NET routes match.

    ``/PIWebAPI/Streams/{webId}/Recorded`` becomes ``/piwebapi/streams/{webId}/recorded``; parameter
    segments (WebIDs are case-sensitive) keep their spelling. One combined regex, so one match per request.
    """

    def __init__(self, templates: list[str]) -> None:
        # No {name:path} convertors; static segments win over parameters (points/search before points/{id}).
        usable = sorted((t for t in dict.fromkeys(templates) if ":" not in t), key=lambda t: t.count("{"))
        self._templates = usable
        pieces = (f"(?P<t{i}>{self._pattern(t)})" for i, t in enumerate(usable))
        self._regex = re.compile("|".join(pieces), re.IGNORECASE) if usable else None

    @staticmethod
    def _pattern(template: str) -> str:
        parts = re.split(r"(\{[^}]+\})", template)
        return "".join("[^/]+" if part.startswith("{") else re.escape(part) for part in parts)

    def canonical(self, path: str) -> str:
        match = self._regex.fullmatch(path) if self._regex else None
        if match is None or match.lastgroup is None:
            return path
        template = self._templates[int(match.lastgroup[1:])]
        segments = zip(template.split("/"), path.split("/"), strict=True)
        return "/".join(given if "{" in wanted else wanted for wanted, given in segments)


class RateLimiter:
    """``max_requests`` per client IP per fixed window of ``duration_s`` (RateLimitMaxRequests/Duration)."""

    def __init__(self, max_requests: int, duration_s: float) -> None:
        self.max_requests = max_requests
        self.duration_s = duration_s
        self._windows: dict[str, tuple[float, int]] = {}

    def allow(self, client: str) -> bool:
        """Count one request of ``client``; False when it is over the limit (0 = no limit)."""
        if self.max_requests <= 0:
            return True
        now = time.monotonic()
        start, count = self._windows.get(client, (now, 0))
        if now - start >= self.duration_s:
            start, count = now, 0
        self._windows[client] = (start, count + 1)
        return count < self.max_requests


def drop_connection(receive: Receive) -> bool:
    """Abort the TCP connection under uvicorn (its ``receive`` is a bound method of the request cycle or of
    the WebSocket connection); False when the server is not uvicorn."""
    transport = getattr(getattr(receive, "__self__", None), "transport", None)
    if transport is None:
        return False
    transport.abort()
    return True


class BodyRewriter:
    """A ``send`` that buffers a 2xx JSON answer and passes it through ``rewrite`` before sending it."""

    def __init__(self, send: Send, rewrite: Callable[[bytes], bytes]) -> None:
        self._send = send
        self._rewrite = rewrite
        self._start: Message | None = None
        self._chunks: list[bytes] = []

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            content_type = dict(message.get("headers", [])).get(b"content-type", b"")
            if 200 <= message["status"] < 300 and content_type.startswith(b"application/json"):
                self._start = message
                return
        if self._start is None:
            await self._send(message)
            return
        self._chunks.append(message.get("body", b""))
        if message.get("more_body", False):
            return
        body = self._rewrite(b"".join(self._chunks))
        headers = [(k, v) for k, v in self._start.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await self._send({**self._start, "headers": headers})
        await self._send({"type": "http.response.body", "body": body, "more_body": False})


class PIGateway:
    """Faults, rate limit, authentication and CSRF for ``/piwebapi``; path normalisation for every path."""

    def __init__(
        self, app: ASGIApp, state: MockState, authenticator: Authenticator, routes: list[str]
    ) -> None:
        self.app = app
        self.state = state
        self.auth = authenticator
        self.case_folder = RouteCaseFolder(routes)
        self.rate_limiter = RateLimiter(state.config.rate_limit_max, state.config.rate_limit_duration_s)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # PI Web API answers /piwebapi/ like /piwebapi (its Links.Self even ends with a slash).
        path = scope["path"].rstrip("/") or "/"
        scope["path"] = path = self.case_folder.canonical(path)
        if not is_api_path(path):
            await self.app(scope, receive, send)
            return
        if scope.get(SUBREQUEST):
            await self._guarded(scope, receive, send, check_csrf=False)
            return
        plan = self.state.faults.next_plan()
        if plan.drop and drop_connection(receive):
            await asyncio.sleep(0)  # let the server see the connection is gone before this call returns
            return
        if plan.delay_s:
            await asyncio.sleep(plan.delay_s)
        if plan.status is not None:
            await self._injected_error(plan.status, scope, receive, send)
            return
        client = scope.get("client") or ("", 0)
        if not self.rate_limiter.allow(client[0]):
            await PIError(429, "Rate limit was reached").response()(scope, receive, send)
            return
        await self._guarded(scope, receive, self._faulty_send(plan, path, send))

    def _faulty_send(self, plan: FaultPlan, path: str, send: Send) -> Send:
        if plan.value_errors and not path.lower().startswith(STREAM_PATHS):
            plan = replace(plan, value_errors=False)
        if not plan.rewrites_body:
            return send
        return BodyRewriter(send, lambda body: self.state.faults.rewrite(plan, body))

    async def _injected_error(self, status: int, scope: Scope, receive: Receive, send: Send) -> None:
        faults = self.state.faults
        headers = {"Retry-After": str(faults.config.retry_after_s)} if status == 429 else None
        error = PIError(status, *faults.error_body(status)["Errors"], headers=headers)
        await error.response()(scope, receive, send)

    async def _guarded(self, scope: Scope, receive: Receive, send: Send, check_csrf: bool = True) -> None:
        """Authenticate, check CSRF, then run the route."""
        response = self._reject(scope, check_csrf)
        if response is not None:
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _reject(self, scope: Scope, check_csrf: bool) -> Response | None:
        if scope["path"].lower() != DISCOVERY_PATH:
            identity = self.auth.identify(_header(scope, b"authorization"))
            if identity is None:
                return self.auth.denied()
            scope[IDENTITY] = identity
        config = self.state.config
        unsafe = check_csrf and config.csrf and scope["method"] in UNSAFE_METHODS
        if unsafe and _header(scope, b"x-requested-with") is None:
            return PIError(
                config.csrf_status,
                "The request was rejected by the CSRF defense: "
                f"a {scope['method']} request needs an X-Requested-With header.",
            ).response()
        return None
