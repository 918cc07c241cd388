"""JSON responses in PI Web API's shape: PascalCase bodies, ``selectedFields`` applied, orjson bytes."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from osipi_dagster.mock.errors import JSON_MEDIA_TYPE

FieldTree = dict[str, "FieldTree"]


def parse_selected_fields(text: str | None) -> FieldTree | None:
    """``Items.Timestamp;Items.Value`` -> ``{"items": {"timestamp": {}, "value": {}}}`` (lower case)."""
    if not text:
        return None
    tree: FieldTree = {}
    for path in text.split(";"):
        node = tree
        for part in path.strip().split("."):
            if part:
                node = node.setdefault(part.lower(), {})
    return tree or None


def select(body: Any, tree: FieldTree | None) -> Any:
    """Keep only the selected fields; lists are transparent, an empty subtree keeps the whole value."""
    if tree is None or not tree:
        return body
    if isinstance(body, list):
        return [select(item, tree) for item in body]
    if isinstance(body, dict):
        out = {}
        for key, value in body.items():
            sub = tree.get(key.lower())
            if sub is not None:
                out[key] = select(value, sub)
        return out
    return body


def json_response(body: Any, status: int = 200, selected_fields: str | None = None) -> Response:
    return Response(
        orjson.dumps(select(body, parse_selected_fields(selected_fields))),
        status,
        media_type=JSON_MEDIA_TYPE,
    )


def collection(items: list[dict]) -> dict:
    """The collection envelope every list endpoint answers with."""
    return {"Links": {}, "Items": items}
