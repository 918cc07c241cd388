"""Absolute ``Links`` URLs, built from the request's own base URL as the real server does."""

from __future__ import annotations

from starlette.requests import Request


def api_base(request: Request) -> str:
    """``http://host:port/piwebapi`` for the server that received ``request``."""
    return str(request.base_url).rstrip("/") + "/piwebapi"
