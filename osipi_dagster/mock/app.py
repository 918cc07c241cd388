"""The FastAPI application of the mock PI Web API: routes, error handlers, gateway and gzip.

Every error leaves in PI's shape ``{"Errors": [...]}``: a ``PIError`` raised anywhere, unknown routes (404),
wrong methods (405), request-validation failures (400) and, as a last resort, unexpected exceptions (500).
Route paths match case-insensitively, as the real (ASP.NET) server's do.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import Response

from osipi_dagster.mock.auth import Authenticator
from osipi_dagster.mock.config import MockConfig
from osipi_dagster.mock.errors import PIError
from osipi_dagster.mock.middleware import PIGateway
from osipi_dagster.mock.routes import (
    admin,
    assets,
    batch,
    dataservers,
    eventframes,
    oidc,
    streams,
    streamsets,
    system,
    updates,
)
from osipi_dagster.mock.state import MockState

# The updates routes come before the streams routes: /streams/updates/{marker} is not a stream's read.
ROUTERS = (system, oidc, dataservers, assets, eventframes, updates, streams, streamsets, batch, admin)
GZIP_MIN_BYTES = 1000
GZIP_LEVEL = 1  # the fastest level: the mock must not be the bottleneck of a gzip benchmark


def create_app(config: MockConfig) -> FastAPI:
    """A new mock server application with its own state."""
    app = FastAPI(
        title="Mock PI Web API", docs_url=None, redoc_url=None, openapi_url=None, redirect_slashes=False
    )
    state = MockState(config)
    authenticator = Authenticator(config)
    app.state.mock = state
    app.state.auth = authenticator
    for module in ROUTERS:
        app.include_router(module.router)
    templates = [route.path for module in ROUTERS for route in module.router.routes if hasattr(route, "path")]
    app.add_exception_handler(PIError, _pi_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected_error)
    app.add_middleware(PIGateway, state=state, authenticator=authenticator, routes=templates)
    app.add_middleware(GZipMiddleware, minimum_size=GZIP_MIN_BYTES, compresslevel=GZIP_LEVEL)
    return app


async def _pi_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PIError)
    return exc.response()


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own errors (no route, wrong method) in PI's shape, with ASP.NET's messages."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        message = f"No HTTP resource was found that matches the request URI '{request.url}'."
    elif exc.status_code == 405:
        message = f"The requested resource does not support http method '{request.method}'."
    else:
        message = str(exc.detail)
    return PIError(exc.status_code, message, headers=dict(exc.headers or {})).response()


async def _validation_error(request: Request, exc: Exception) -> Response:
    """FastAPI's parameter validation failures as a 400 with one message per bad parameter."""
    assert isinstance(exc, RequestValidationError)
    messages = []
    for error in exc.errors():
        name = ".".join(str(part) for part in error.get("loc", ())[1:]) or "request"
        value = error.get("input")
        if isinstance(value, str | int | float):
            messages.append(f"The value '{value}' is not valid for {name}.")
        else:
            messages.append(f"The parameter '{name}' is not valid: {error.get('msg', 'invalid')}.")
    return PIError(400, *messages).response()


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    """A bug in the mock: still PI's shape (the traceback goes to the server log, as uvicorn logs it)."""
    return PIError(500, f"An unexpected error occurred: {type(exc).__name__}.").response()
