"""``POST /piwebapi/batch`` in the real format (piwebapi.md section 4).

The body is an object keyed by request id. Each request has ``Method``, and ``Resource`` (an absolute URL
whose authority is ignored, a ``/piwebapi/...`` path, a JSONPath into a parent's response, or a template
with ``{0}``, ``{1}``... filled from ``Parameters``, a list of JSONPaths) or ``RequestTemplate``
``{"Resource": ...}`` (one sub-request per token the JSONPaths select). ``ParentIds`` orders execution,
``Content`` is the body as a JSON *string*, ``Headers`` adds headers. Field names are case-insensitive.

The answer is 207, keyed by the same ids, each ``{"Status", "Headers", "Content"}``; a RequestTemplate
answers ``{"Status": 207, "Headers": {}, "Content": {"Total": n, "Items": [...]}}``.

Choices where PI Web API's documentation is silent:
- A malformed batch is rejected as a whole with 400 ``{"Errors": [...]}``: bad JSON, not an object, a request
  that is not an object, without ``Method`` or without a resource, fields of the wrong type, a ``ParentIds``
  entry naming no request of the batch, a cycle in ``ParentIds``.
- A sub-request whose parent failed (status outside 2xx) is not run and answers 424 with ``Errors``.
- A JSONPath may only reference the request's ancestors (through ``ParentIds``). Outside a RequestTemplate
  each JSONPath must select exactly one token, otherwise that sub-request answers 400.
- A resource outside ``/piwebapi``, or a nested ``/batch``, answers 400 for that sub-request.

Sub-requests run in process through the whole ASGI application (every route works in a batch), with the
caller's ``Authorization``, ``X-Requested-With`` and ``Host`` headers; they skip the rate limit, the CSRF
check and injected faults other than ``batch_fail_rate``. Independent requests run concurrently, one
``ParentIds`` level after another. Sub-responses are spliced into the answer as the JSON bytes the routes
produced, never parsed and re-serialised unless a JSONPath reads them.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import orjson
from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Scope

from osipi_dagster.mock import jsonpath
from osipi_dagster.mock.errors import JSON_MEDIA_TYPE, PIError
from osipi_dagster.mock.faults import MARK
from osipi_dagster.mock.middleware import SUBREQUEST, is_api_path

router = APIRouter(prefix="/piwebapi")

CONCURRENCY = 8  # sub-requests in flight at once within one batch
FORWARDED_HEADERS = (b"authorization", b"x-requested-with", b"host", b"cookie")
DROPPED_SUB_HEADERS = {"accept-encoding", "content-length", "host"}  # sub-bodies must stay raw JSON
_PLACEHOLDER = re.compile(r"\{(\d+)\}")


@dataclass
class SubRequest:
    """One request of the batch, validated."""

    id: str
    method: str
    resource: str | None
    template: str | None
    parameters: list[str]
    parent_ids: list[str]
    content: bytes
    headers: dict[str, str]
    ancestors: set[str] = field(default_factory=set)


class SubRequestError(Exception):
    """A sub-request that cannot run; it answers ``status`` with ``{"Errors": [message]}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class SubResult:
    """A sub-response: ``content`` is JSON text, spliced as it is into the batch answer."""

    status: int
    headers: dict[str, str]
    content: bytes
    _parsed: Any = None

    def encode(self) -> bytes:
        head = b'{"Status":%d,"Headers":' % self.status + orjson.dumps(self.headers)
        return head + b',"Content":' + self.content + b"}"

    def document(self) -> dict:
        """The sub-response as JSONPath sees it (``$.id.Status``, ``$.id.Headers``, ``$.id.Content``)."""
        if self._parsed is None:
            self._parsed = {
                "Status": self.status,
                "Headers": self.headers,
                "Content": orjson.loads(self.content),
            }
        return self._parsed

    @classmethod
    def error(cls, status: int, message: str) -> SubResult:
        return cls(status, {"Content-Type": JSON_MEDIA_TYPE}, orjson.dumps({"Errors": [message]}))


# --- parsing and planning -------------------------------------------------------------------------------


def _field(spec: dict[str, Any], name: str, kind: type, request_id: str) -> Any:
    value = spec.get(name.lower())
    if value is not None and not isinstance(value, kind):
        raise PIError(400, f"The field '{name}' of request '{request_id}' must be a {_KIND_NAMES[kind]}.")
    return value


_KIND_NAMES = {str: "string", list: "list", dict: "JSON object"}


def _strings(value: list | None, name: str, request_id: str) -> list[str]:
    if value is None:
        return []
    if not all(isinstance(item, str) for item in value):
        raise PIError(400, f"The field '{name}' of request '{request_id}' must be a list of strings.")
    return value


def _sub_request(request_id: str, raw: Any) -> SubRequest:
    if not isinstance(raw, dict):
        raise PIError(400, f"The request '{request_id}' must be a JSON object.")
    spec = {str(key).lower(): value for key, value in raw.items()}
    method = _field(spec, "Method", str, request_id)
    resource = _field(spec, "Resource", str, request_id)
    template_spec = _field(spec, "RequestTemplate", dict, request_id)
    template = None
    if template_spec is not None:
        template = {str(k).lower(): v for k, v in template_spec.items()}.get("resource")
        if not isinstance(template, str):
            raise PIError(400, f"The RequestTemplate of request '{request_id}' must have a string Resource.")
    if not method:
        raise PIError(400, f"The request '{request_id}' has no Method.")
    if (resource is None) == (template is None):
        raise PIError(400, f"The request '{request_id}' needs a Resource or a RequestTemplate (exactly one).")
    headers = _field(spec, "Headers", dict, request_id) or {}
    if not all(isinstance(value, str) for value in headers.values()):
        raise PIError(400, f"The Headers of request '{request_id}' must map names to strings.")
    content = _field(spec, "Content", str, request_id)
    return SubRequest(
        id=request_id,
        method=method.upper(),
        resource=resource,
        template=template,
        parameters=_strings(_field(spec, "Parameters", list, request_id), "Parameters", request_id),
        parent_ids=_strings(_field(spec, "ParentIds", list, request_id), "ParentIds", request_id),
        content=(content or "").encode("utf-8"),
        headers={str(name): value for name, value in headers.items()},
    )


def parse_batch(body: bytes) -> dict[str, SubRequest]:
    """The batch's requests by id, in the body's order; 400 for any malformed request."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise PIError(400, f"The batch body is not valid JSON: {exc}.") from exc
    if not isinstance(document, dict):
        raise PIError(400, "The batch body must be a JSON object keyed by request id.")
    return {request_id: _sub_request(request_id, raw) for request_id, raw in document.items()}


def execution_levels(requests: dict[str, SubRequest]) -> list[list[SubRequest]]:
    """Requests grouped by depth in the ``ParentIds`` graph (parents first); 400 for unknown ids and cycles.

    Also records each request's ancestors, the ids its JSONPaths may read.
    """
    for sub in requests.values():
        unknown = [parent for parent in sub.parent_ids if parent not in requests]
        if unknown:
            raise PIError(400, f"The request '{sub.id}' names unknown ParentIds: {', '.join(unknown)}.")
    depth: dict[str, int] = {}
    pending = dict(requests)
    while pending:
        ready = [sub for sub in pending.values() if all(p in depth for p in sub.parent_ids)]
        if not ready:
            raise PIError(400, f"The ParentIds of requests {', '.join(sorted(pending))} form a cycle.")
        for sub in ready:
            depth[sub.id] = max((depth[p] + 1 for p in sub.parent_ids), default=0)
            sub.ancestors = set(sub.parent_ids).union(*(requests[p].ancestors for p in sub.parent_ids))
            del pending[sub.id]
    levels: list[list[SubRequest]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for sub in requests.values():
        levels[depth[sub.id]].append(sub)
    return levels


# --- resolving resources ------------------------------------------------------------------------------------


class _Results(Mapping):
    """The JSONPath root of one request: its ancestors' responses, parsed only when a path reads them."""

    def __init__(self, results: dict[str, SubResult], visible: set[str]) -> None:
        self._results = results
        self._visible = visible

    def __getitem__(self, key: str) -> dict:
        if key not in self._visible:
            raise KeyError(key)
        return self._results[key].document()

    def __iter__(self) -> Iterator[str]:
        return iter(self._visible)

    def __len__(self) -> int:
        return len(self._visible)


def _tokens(root: _Results, path: str) -> list[str]:
    try:
        found = jsonpath.select(root, path)
    except jsonpath.JSONPathError as exc:
        raise SubRequestError(400, str(exc)) from exc
    return [token if isinstance(token, str) else orjson.dumps(token).decode() for token in found]


def _substitute(template: str, values: list[str]) -> str:
    def fill(match: re.Match) -> str:
        index = int(match.group(1))
        if index >= len(values):
            raise SubRequestError(
                400, f"The resource '{template}' uses {{{index}}} but has {len(values)} Parameters."
            )
        return values[index]

    return _PLACEHOLDER.sub(fill, template)


def resolve_resources(sub: SubRequest, root: _Results) -> list[str]:
    """The URLs ``sub`` fans out to: one for a plain request, one per selected token for a RequestTemplate."""
    source = sub.template if sub.template is not None else sub.resource
    assert source is not None
    resources = _tokens(root, source) if source.lstrip().startswith("$") else [source]
    columns = [resources, *(_tokens(root, path) for path in sub.parameters)]
    sizes = {len(column) for column in columns if len(column) != 1}
    if len(sizes) > 1:
        raise SubRequestError(400, f"The JSONPaths of request '{sub.id}' select different numbers of tokens.")
    count = sizes.pop() if sizes else 1
    if sub.template is None and count != 1:
        raise SubRequestError(
            400,
            f"The JSONPaths of request '{sub.id}' select {count} tokens where one is needed; "
            "use a RequestTemplate to make one request per token.",
        )
    pick = [column if len(column) == count else column * count for column in columns]
    return [_substitute(pick[0][i], [column[i] for column in pick[1:]]) for i in range(count)]


# --- running sub-requests -----------------------------------------------------------------------------------


def _title(name: bytes) -> str:
    return "-".join(part.capitalize() for part in name.decode("latin-1").split("-"))


class BatchRunner:
    """Runs a batch's sub-requests through the application itself and collects their results."""

    def __init__(self, request: Request) -> None:
        self.app = request.app
        self.parent: Scope = request.scope
        self.results: dict[str, SubResult] = {}
        self._forwarded = [(k, v) for k, v in request.scope["headers"] if k.lower() in FORWARDED_HEADERS]
        self._slots = asyncio.Semaphore(CONCURRENCY)

    async def run(self, levels: list[list[SubRequest]], failures: Iterator[bool]) -> None:
        """Run every level; ``failures`` says, in execution order, which sub-requests fail on purpose."""
        for level in levels:
            planned = [(sub, next(failures)) for sub in level]
            outcomes = await asyncio.gather(*(self._run_one(sub, fail) for sub, fail in planned))
            self.results.update(zip((sub.id for sub in level), outcomes, strict=True))

    async def _run_one(self, sub: SubRequest, fail: bool) -> SubResult:
        failed = [p for p in sub.parent_ids if not 200 <= self.results[p].status < 300]
        if failed:
            status = self.results[failed[0]].status
            return SubResult.error(424, f"The parent request '{failed[0]}' failed with status {status}.")
        if fail:
            return SubResult.error(500, f"The sub-request failed {MARK}.")
        try:
            urls = resolve_resources(sub, _Results(self.results, sub.ancestors))
            if sub.template is None:
                return await self._call(sub, urls[0])
        except SubRequestError as exc:
            return SubResult.error(exc.status, exc.message)
        items = await asyncio.gather(*(self._guarded_call(sub, url) for url in urls))
        content = b'{"Total":%d,"Items":[' % len(items) + b",".join(item.encode() for item in items) + b"]}"
        return SubResult(207, {}, content)

    async def _guarded_call(self, sub: SubRequest, url: str) -> SubResult:
        try:
            return await self._call(sub, url)
        except SubRequestError as exc:
            return SubResult.error(exc.status, exc.message)

    def _scope(self, sub: SubRequest, url: str) -> Scope:
        parts = urlsplit(url.strip())
        if parts.scheme.lower() not in ("", "http", "https") or not is_api_path(parts.path):
            raise SubRequestError(400, f"The resource '{url}' is not a URL of this PI Web API.")
        path = unquote(parts.path)
        if path.lower().rstrip("/") == "/piwebapi/batch":
            raise SubRequestError(400, "A batch cannot contain a batch request.")
        own = {
            name.lower(): value
            for name, value in sub.headers.items()
            if name.lower() not in DROPPED_SUB_HEADERS
        }
        headers = [(k, v) for k, v in self._forwarded if k.decode("latin-1") not in own]
        headers += [
            (name.encode("latin-1"), value.encode("latin-1", "replace")) for name, value in own.items()
        ]
        if sub.content:
            if "content-type" not in own:
                headers.append((b"content-type", JSON_MEDIA_TYPE.encode()))
            headers.append((b"content-length", str(len(sub.content)).encode()))
        return {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "method": sub.method,
            "scheme": self.parent.get("scheme", "http"),
            "server": self.parent.get("server"),
            "client": self.parent.get("client"),
            "root_path": self.parent.get("root_path", ""),
            "path": path,
            "raw_path": parts.path.encode("utf-8"),
            "query_string": parts.query.encode("utf-8"),
            "headers": headers,
            "state": dict(self.parent.get("state", {})),
            SUBREQUEST: True,
        }

    async def _call(self, sub: SubRequest, url: str) -> SubResult:
        """One sub-request through the ASGI application, collected in memory."""
        scope = self._scope(sub, url)
        done = asyncio.Event()
        body_sent = False
        start: Message = {}
        chunks: list[bytes] = []

        async def receive() -> Message:
            nonlocal body_sent
            if not body_sent:
                body_sent = True
                return {"type": "http.request", "body": sub.content, "more_body": False}
            await done.wait()  # a route listening for a disconnect hears one once its answer is complete
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    done.set()

        async with self._slots:
            try:
                await self.app(scope, receive, send)
            except Exception:  # the error handler answered 500 already; the server logs the traceback
                if not done.is_set():
                    return SubResult.error(500, "The sub-request failed unexpectedly.")
            finally:
                done.set()
        return _collected(start, b"".join(chunks))


def _collected(start: Message, body: bytes) -> SubResult:
    headers: dict[str, str] = {}
    content_type = b""
    for name, value in start.get("headers", []):
        if name.lower() == b"content-length":
            continue
        if name.lower() == b"content-type":
            content_type = value
        key = _title(name)
        text = value.decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    if not body:
        content = b"null"
    elif content_type.startswith(b"application/json"):
        content = body
    else:
        content = orjson.dumps(body.decode("utf-8", "replace"))
    return SubResult(start.get("status", 500), headers, content)


@router.post("/batch")
async def batch(request: Request) -> Response:
    """Execute a batch; 207 with one sub-response per request id."""
    requests = parse_batch(await request.body())
    levels = execution_levels(requests)
    order = [sub for level in levels for sub in level]
    failures = iter(request.app.state.mock.faults.fail_subrequests(len(order)))
    runner = BatchRunner(request)
    await runner.run(levels, failures)
    parts = (orjson.dumps(request_id) + b":" + runner.results[request_id].encode() for request_id in requests)
    return Response(b"{" + b",".join(parts) + b"}", 207, media_type=JSON_MEDIA_TYPE)
