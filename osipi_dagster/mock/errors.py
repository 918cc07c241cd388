"""PI Web API error bodies: ``{"Errors": [...]}`` with the status the real server uses."""

from __future__ import annotations

import orjson
from starlette.responses import Response

JSON_MEDIA_TYPE = "application/json; charset=utf-8"


class PIError(Exception):
    """An error the mock answers with ``status`` and ``{"Errors": messages}``."""

    def __init__(self, status: int, *messages: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status}: {'; '.join(messages)}")
        self.status = status
        self.messages = list(messages)
        self.headers = headers or {}

    def body(self) -> dict:
        return {"Errors": self.messages}

    def response(self) -> Response:
        return Response(orjson.dumps(self.body()), self.status, self.headers, media_type=JSON_MEDIA_TYPE)


def not_found(kind: str, ident: str) -> PIError:
    """A 404 for a well-formed identifier that names no object."""
    return PIError(404, f"The specified {kind} was not found: '{ident}'.")
