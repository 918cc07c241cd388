"""The JSONPath subset PI Web API batch requests use to reference their parents' responses.

Supported: ``$`` (the root), ``.name``, ``['name']`` / ``["name"]``, ``[n]`` (negative counts from the
end), ``[*]`` and ``.*`` (every child), ``..name`` (recursive descent). A name matches exactly, or else
case-insensitively (``$.GetDb.content.links`` finds ``Content.Links``). Any ``Mapping`` is an object, so a
root can parse its members lazily.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

Step = tuple[str, Any]  # ("key", name) | ("index", n) | ("all", None) | ("descend", name)

_TOKEN = re.compile(
    r"""\.\.(?P<descend>[^.\[\]]+)       # ..name
      | \.(?P<star>\*)                   # .*
      | \.(?P<name>[^.\[\]]+)            # .name
      | \[\s*(?P<all>\*)\s*\]            # [*]
      | \[\s*(?P<index>-?\d+)\s*\]       # [3]
      | \[\s*'(?P<sq>[^']*)'\s*\]        # ['name']
      | \[\s*"(?P<dq>[^"]*)"\s*\]        # ["name"]
    """,
    re.VERBOSE,
)


class JSONPathError(ValueError):
    """A JSONPath outside the supported subset."""


def parse(path: str) -> list[Step]:
    """The steps of ``path``, which must start with ``$``."""
    text = path.strip()
    if not text.startswith("$"):
        raise JSONPathError(f"The JSONPath '{path}' must start with '$'.")
    steps: list[Step] = []
    position = 1
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise JSONPathError(f"The JSONPath '{path}' is not valid at position {position}.")
        position = match.end()
        kind = match.lastgroup
        if kind == "descend":
            steps.append(("descend", match["descend"]))
        elif kind in ("star", "all"):
            steps.append(("all", None))
        elif kind == "index":
            steps.append(("index", int(match["index"])))
        else:
            steps.append(("key", match[kind]))
    return steps


def _member(node: Mapping, name: str) -> list[Any]:
    if name in node:
        return [node[name]]
    folded = name.lower()
    return [node[key] for key in node if isinstance(key, str) and key.lower() == folded][:1]


def _children(node: Any) -> list[Any]:
    if isinstance(node, Mapping):
        return [node[key] for key in node]
    return list(node) if isinstance(node, list) else []


def _descendants(node: Any, name: str) -> list[Any]:
    """Every member called ``name`` at any depth below ``node``, in document order."""
    found = _member(node, name) if isinstance(node, Mapping) else []
    for child in _children(node):
        found.extend(_descendants(child, name))
    return found


def _step(node: Any, step: Step) -> list[Any]:
    kind, arg = step
    if kind == "key":
        return _member(node, arg) if isinstance(node, Mapping) else []
    if kind == "index":
        in_range = isinstance(node, list) and -len(node) <= arg < len(node)
        return [node[arg]] if in_range else []
    if kind == "all":
        return _children(node)
    return _descendants(node, arg)


def select(root: Any, path: str) -> list[Any]:
    """Every token ``path`` selects in ``root``, in document order."""
    nodes = [root]
    for step in parse(path):
        nodes = [found for node in nodes for found in _step(node, step)]
    return nodes
