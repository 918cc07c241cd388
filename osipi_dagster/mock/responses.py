"""JSON responses in PI Web API's shape: PascalCase bodies, ``selectedFields`` applied, orjson bytes."""

from __future__ import annotations

import threading
import zlib
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import orjson
from starlette.requests import Request
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
        plans: dict[tuple[str, ...], list[tuple[str, FieldTree]]] = {}  # the items of a page share keys
        return [_select(item, tree, plans) for item in body]
    return _select(body, tree, {})


def _select(body: Any, tree: FieldTree, plans: dict[tuple[str, ...], list[tuple[str, FieldTree]]]) -> Any:
    """``select`` of a non-empty ``tree``; ``plans`` holds the kept keys (and their subtrees) of each set of
    keys seen so far, so that objects with the same keys are trimmed without looking each key up again."""
    if isinstance(body, list):
        return [_select(item, tree, plans) for item in body]
    if not isinstance(body, dict):
        return body
    keys = tuple(body)
    plan = plans.get(keys)
    if plan is None:
        plan = plans[keys] = [(key, sub) for key in keys if (sub := tree.get(key.lower())) is not None]
    # Scalars and whole subtrees stay as they are (no call for most fields of a catalog's page).
    return {
        key: select(body[key], sub) if sub and isinstance(body[key], dict | list) else body[key]
        for key, sub in plan
    }


def json_response(body: Any, status: int = 200, selected_fields: str | None = None) -> Response:
    return Response(
        orjson.dumps(select(body, parse_selected_fields(selected_fields))),
        status,
        media_type=JSON_MEDIA_TYPE,
    )


def collection(items: list[dict]) -> dict:
    """The collection envelope every list endpoint answers with."""
    return {"Links": {}, "Items": items}


class AnswerCache:
    """Answers of requests whose answer depends only on their URL, kept zlib-compressed (a page of the
    catalog shrinks about tenfold) and dropped least recently used first beyond ``budget_bytes``.

    A real PI Web API answers a repeated catalog read from its own caches; without this the mock would
    render a few hundred thousand objects again for every refresh of a catalog that did not change. Only
    for answers that neither the clock nor any request changes: the AF hierarchy and the point list are
    fixed when the mock starts.
    """

    def __init__(self, budget_bytes: int = 128 << 20) -> None:
        self.budget_bytes = budget_bytes
        self._answers: OrderedDict[str, bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """How many answers are kept."""
        return len(self._answers)

    def answer(self, request: Request, render: Callable[[], Response]) -> Response:
        """The answer kept for ``request``'s URL, else ``render()``'s (kept when it is a 200)."""
        key = str(request.url)
        with self._lock:
            packed = self._answers.get(key)
            if packed is not None:
                self._answers.move_to_end(key)
        if packed is not None:
            return Response(zlib.decompress(packed), 200, media_type=JSON_MEDIA_TYPE)
        response = render()
        if response.status_code == 200:
            self._keep(key, zlib.compress(bytes(response.body), 1))
        return response

    def _keep(self, key: str, packed: bytes) -> None:
        if len(packed) > self.budget_bytes:
            return
        with self._lock:
            if key in self._answers:
                return
            self._answers[key] = packed
            self._size += len(packed)
            while self._size > self.budget_bytes:
                _, dropped = self._answers.popitem(last=False)
                self._size -= len(dropped)
