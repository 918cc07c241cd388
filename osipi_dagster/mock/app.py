"""The FastAPI application of the mock PI Web API."""

from __future__ import annotations

from fastapi import FastAPI

from osipi_dagster.mock.config import MockConfig
from osipi_dagster.mock.routes import (
    admin,
    assets,
    batch,
    dataservers,
    eventframes,
    streams,
    streamsets,
    system,
)
from osipi_dagster.mock.state import MockState

ROUTERS = (system, dataservers, assets, eventframes, streams, streamsets, batch, admin)


def create_app(config: MockConfig) -> FastAPI:
    """A new mock server application with its own state."""
    app = FastAPI(title="Mock PI Web API", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.mock = MockState(config)
    for module in ROUTERS:
        app.include_router(module.router)
    return app
