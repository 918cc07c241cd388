"""The StreamSet controller: many streams in one call (piwebapi.md 3.3).

- Ad hoc: ``/streamsets/recorded|interpolated|plot|summary|value|end|recordedattime?webId=A&webId=B``;
  streams answer in request order; one bad WebID fails the call (400 malformed, 404 unknown).
- By parent: ``/streamsets/{webId}/...`` where the parent is an element, an event frame or an attribute:
  its attributes (``nameFilter``, ``categoryName``, ``templateName``, ``searchFullHierarchy``,
  ``showExcluded``, ``showHidden``) in the asset model's order; an event frame's time range is the default
  window (and the time of ``value``). Another kind of object is a 409.

Recorded, interpolated and plot answer ``Items[{WebId, Name, Path, Links: {Source}, Items,
UnitsAbbreviation}]``, value, end and recordedattime ``Items[{WebId, Name, Path, Links, Value}]``, summary
``Items[{WebId, Name, Path, Links, Items: [{Type, Value}]}]``. ``maxCount`` applies per stream. Parameters
and defaults are the single stream's (``streams.py``), plus ``webIdType`` for the WebIds of the answer.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import numpy as np
import orjson
from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from osipi_dagster.mock import webids
from osipi_dagster.mock.errors import PIError
from osipi_dagster.mock.responses import FieldTree, select
from osipi_dagster.mock.routes.dataservers import webid_type
from osipi_dagster.mock.routes.streams import (
    Reader,
    Stream,
    attribute_stream,
    json_bytes,
    resolve_stream,
    source_link,
    stream_webid,
)
from osipi_dagster.mock.serialize import included, timestamps
from osipi_dagster.mock.values import Block

router = APIRouter(prefix="/piwebapi")

MULTI_VALUE = ("recorded", "interpolated", "plot")
SINGLE_VALUE = ("value", "end", "recordedattime")
PARENT_MARKERS = ("Em", "Fm", "Ab")


def _ad_hoc(reader: Reader) -> tuple[list[Stream], tuple[int, int] | None]:
    texts = reader.params.get_list("webId")
    if not texts:
        raise PIError(400, "At least one 'webId' parameter is required.")
    return [resolve_stream(reader.state, text) for text in texts], None


def _by_parent(reader: Reader, text: str) -> tuple[list[Stream], tuple[int, int] | None]:
    web = webids.decode(text)
    if web.marker not in PARENT_MARKERS:
        raise PIError(409, f"The object '{text}' does not support stream sets.")
    af = reader.state.af
    context = af.time_context(web)
    attributes = af.stream_attributes(web, reader.params)
    return [attribute_stream(reader.state, a, context) for a in attributes], context


def _answer(
    request: Request,
    action: str,
    select_streams: Callable[[Reader], tuple[list[Stream], tuple[int, int] | None]],
) -> Response:
    reader = Reader(request)
    streams, context = select_streams(reader)
    keep, stream_tree = included(reader.tree, "Items")
    if not keep:
        items = []
    elif action in MULTI_VALUE:
        items = _values_items(reader, action, streams, context, stream_tree)
    else:
        items = [_stream_item(reader, action, s, context, stream_tree) for s in streams]
    body = {"Links": {}, "Items": orjson.Fragment(b"[" + b",".join(items) + b"]")}
    return json_bytes(orjson.dumps(select(body, reader.tree)))


def _header(reader: Reader, stream: Stream) -> dict:
    web = stream_webid(reader.state, stream, webid_type(reader.params))
    return {
        "WebId": web,
        "Name": stream.name,
        "Path": stream.path,
        "Links": {"Source": source_link(reader.request, stream, web)},
    }


def _values_items(
    reader: Reader,
    action: str,
    streams: list[Stream],
    context: tuple[int, int] | None,
    tree: FieldTree | None,
) -> list[bytes]:
    """The streams' objects for recorded, interpolated or plot. Every stream's values are read first (in
    the streams' order, so the first error is the same), then their timestamps are formatted in one call:
    formatting them stream by stream cost more than the reads in a stream set of many short streams."""
    keep, value_tree = included(tree, "Items")
    heads, blocks = [], []
    for stream in streams:
        heads.append(_header(reader, stream))
        window = reader.window(stream, context)
        blocks.append(_values_block(reader, action, stream, window) if keep else None)
    stamped = [b for b in blocks if b is not None and len(b)]
    stamps: Iterator[list[bytes]] = iter(())
    if stamped and included(value_tree, "Timestamp")[0]:
        every = timestamps(np.concatenate([b.ts for b in stamped]))
        bounds = itertools.accumulate([len(b) for b in stamped], initial=0)
        stamps = (every[a:b] for a, b in itertools.pairwise(bounds))
    items = []
    for stream, body, block in zip(streams, heads, blocks, strict=True):
        if keep:
            own = next(stamps, None) if block is not None and len(block) else None
            body["Items"] = orjson.Fragment(reader.values_bytes(stream, block, value_tree, own))
        body["UnitsAbbreviation"] = stream.units
        items.append(orjson.dumps(select(body, tree)))
    return items


def _values_block(reader: Reader, action: str, stream: Stream, window: tuple[int, int]) -> Block | None:
    if action == "recorded":
        return reader.recorded(stream, reader.params.max_count(reader.limit), window)
    if action == "interpolated":
        return reader.interpolated(stream, window)
    return reader.plot(stream, window)


def _stream_item(
    reader: Reader, action: str, stream: Stream, context: tuple[int, int] | None, tree: FieldTree | None
) -> bytes:
    """One stream's object for value, end, recordedattime or summary: its header, then its values
    (computed only when selected)."""
    body = _header(reader, stream)
    if action in SINGLE_VALUE:
        keep, value_tree = included(tree, "Value")
        if keep:
            block = {"value": reader.value, "end": reader.end, "recordedattime": reader.recorded_at}[action]
            args = (stream, context) if action == "value" else (stream,)
            body["Value"] = orjson.Fragment(reader.value_bytes(stream, block(*args), value_tree))
        return orjson.dumps(select(body, tree))
    keep, value_tree = included(tree, "Items")
    window = reader.window(stream, context)
    body["Items"] = reader.summary_items(stream, reader.summaries(stream, window), value_tree) if keep else []
    return orjson.dumps(select(body, tree))


def _register(action: str) -> None:
    async def ad_hoc(request: Request) -> Response:
        return _answer(request, action, _ad_hoc)

    async def by_parent(request: Request) -> Response:
        text = request.path_params["webId"]
        return _answer(request, action, lambda reader: _by_parent(reader, text))

    ad_hoc.__doc__ = f"``GET /streamsets/{action}?webId=..``: {action} of each stream."
    by_parent.__doc__ = f"``GET /streamsets/{{webId}}/{action}``: {action} of the parent's attributes."
    router.add_api_route(f"/streamsets/{action}", ad_hoc, methods=["GET"], name=f"streamset_{action}_ad_hoc")
    router.add_api_route(
        f"/streamsets/{{webId}}/{action}", by_parent, methods=["GET"], name=f"streamset_{action}"
    )


for _action in (*MULTI_VALUE, "summary", *SINGLE_VALUE):
    _register(_action)
