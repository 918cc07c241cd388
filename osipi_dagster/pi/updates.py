"""Stream Updates: register streams, then read every change to their archives with one marker per stream.

PI Web API's Stream Updates register streams with ``POST /streamsets/updates?webId=…&webId=…`` (no body)
and then deliver, per stream, the changes since a *marker* with ``GET /streamsets/updates?marker=…``: new
values (``Add``), late or out-of-order values (``Insert``), edits (``Update``), deletions (``Delete``) and
``Refresh`` (re-read the stream from this time). Each answer carries the stream's next marker. A marker is a
position that can be read again (as long as the server keeps its registration), so a read that fails, or a
caller that stops before it stored the new markers, reads the same events again.

How a caller keeps every event (e.g. a sensor that keeps one marker per point):

1. :func:`register_updates` the streams and store their ``markers``. A registration starts at *now*: read
   the recorded values from your last stored timestamp up to now for what happened before.
2. Each poll, :func:`read_updates` with the stored markers; process (durably write) ``events``; only then
   store the new ``markers``. A crash in between reads the same events again: apply events idempotently.
3. Streams in ``failures`` keep their old marker and are read again on the next poll. Streams in
   ``needs_registration`` have lost their registration (the server's cache expired or restarted, the
   marker is invalid, or PI unregistered the stream): register them again and fill the gap with their
   recorded values from the last event you stored.

Requests are cut so that no URL is longer than ``max_url_length`` and ``concurrency`` of them are in flight
at once. A request refused as a whole (400, 409, 413, 414) is split in halves until the refused streams
stand alone, so one invalid WebId or marker never sinks the others. Answers are matched to the requested
streams by identity (the ``RequestedMarker`` sent, the ``Source`` WebId), never by position; an answer for a
stream that was not requested is ignored and logged. Only a refused authentication (401) raises.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

import msgspec
import pyarrow as pa

from osipi_dagster.contract import RECORDED_SCHEMA
from osipi_dagster.pi import decode as dec
from osipi_dagster.pi.errors import (
    LOGGER_NAME,
    PIAuthenticationError,
    PIResponseError,
    PIWebAPIError,
    error_messages,
)
from osipi_dagster.pi.options import DEFAULT_READ
from osipi_dagster.pi.transport import check_count

if TYPE_CHECKING:
    from osipi_dagster.pi.transport import Transport

log = logging.getLogger(LOGGER_NAME)

T = TypeVar("T")
R = TypeVar("R")

ROUTE = "streamsets/updates"

Markers = Mapping[str, str]  # WebId -> the marker to read its updates from

#: One row per event: the columns of :data:`~osipi_dagster.contract.RECORDED_SCHEMA` (a value means the same
#: as in a recorded read), then ``action`` (PI's ``Action``: ``Add``, ``Insert``, ``Update``, ``Delete`` or
#: ``Refresh``, spelt as PI sends it) and ``previous_event_action`` (PI's ``PreviousEventAction``: ``None``,
#: ``PreviousEventArchived`` or ``PreviousEventDiscarded`` as text; null when PI leaves it out).
UPDATE_EVENTS_SCHEMA = pa.schema(
    [
        *RECORDED_SCHEMA,
        pa.field("action", pa.string(), nullable=False),
        pa.field("previous_event_action", pa.string()),
    ]
)

# Whole-request refusals that may concern only some of the request's streams: the request is split in
# halves to find them (413/414: the server's URL limit is below max_url_length). A registration refused
# with 404 names an unknown WebId; a retrieval refused with 404 lost its whole cache (see _request_failed).
_SPLIT_REGISTRATION = frozenset({400, 404, 409, 413, 414})
_SPLIT_RETRIEVAL = frozenset({400, 409, 413, 414})
# A marker the server refuses for itself: it will never be read again.
_LOST_STATUSES = frozenset({400, 404, 409})
# PI's topic page spells "Succeded"; an item without Status is registered when it has a marker.
_REGISTERED = frozenset({"", "succeeded", "succeded", "alreadyregistered"})

# Per-stream messages are short and put the cause first: callers keep a few hundred characters of them
# per stream (the stream is the key they are filed under, and its WebId or marker is in the URL).
_LOST_HINT = "register it again and read its recorded values from the last event you stored"
_RETRY_HINT = "keep its marker and read it again next time"
_REGISTER_LATER = "register it again later"
# The characters quote() never encodes.
_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]*")


class UpdatesLostError(PIWebAPIError):
    """PI Web API will not deliver this stream's updates through its marker any more.

    The server answered 404 "Cache not found" (its cache of registrations expired or was restarted, or the
    request went to another node), 409 or 400 for the marker ("Invalid marker supplied"), or put an
    ``Exception`` on the stream ("The signup was updated and any cached data could be invalid", "The signup
    was removed because it is no longer valid"; PI then unregisters the stream). Reading again cannot bring
    the missed events back: register the stream again and read its recorded values from the last event you
    stored. ``status`` is the HTTP status, or None for an ``Exception`` on the stream.

    A 404 is reported for every stream of the request (one error, shared): the cache holds them all, and
    asking for each marker alone would cost two requests per stream in the usual case, an expired cache.
    Registering again a stream that was not lost is harmless (PI answers ``AlreadyRegistered``).
    """


class RegistrationRefusedError(PIWebAPIError):
    """PI Web API refused to register this WebId for updates: it is invalid or unknown (400, 404), a static
    AF attribute (409), or its registration ``Failed`` (``status`` None; PI's ``Exception`` in ``errors``).
    Registering it again will fail the same way: fix the WebId or leave the stream out."""


@dataclass(frozen=True)
class UpdateRegistration:
    """What :func:`register_updates` did, per WebId (each WebId is in exactly one of ``markers`` and
    ``failures``, spelt as the caller gave it).

    Attributes:
        markers: WebId -> the marker to read its updates from (pass it to ``read_updates``). Updates start at
            the registration: read the stream's recorded values up to now for the time before.
        already_registered: the WebIds PI answered ``AlreadyRegistered`` for (their marker may be the
            earlier registration's position rather than now).
        failures: WebId -> why it is not registered: a :class:`RegistrationRefusedError` when PI refused the
            WebId (registering again fails the same way), any other :class:`PIWebAPIError` when the request
            failed (no answer, 5xx after retries, an answer without this WebId): register it again later.
        requests: the HTTP requests sent, retries included.
    """

    markers: Mapping[str, str]
    already_registered: frozenset[str]
    failures: Mapping[str, PIWebAPIError]
    requests: int


@dataclass(frozen=True)
class UpdatesRead:
    """What :func:`read_updates` read. Each requested WebId is in exactly one of ``markers``,
    ``needs_registration`` and ``failures``.

    Attributes:
        events: one row per event, schema :data:`UPDATE_EVENTS_SCHEMA`, only of the streams in ``markers``.
            ``web_id`` is the requested WebId the event belongs to. The rows of one stream are contiguous and
            in PI's order, which is the order to apply them in: it is not the order of timestamps (an
            ``Insert`` comes after later values; an ``Add``, an ``Update`` and a ``Delete`` of one timestamp
            only make sense in order). Do not sort them.
        markers: WebId -> its new marker, for every stream read (also those without events). Store it only
            after ``events`` are durably processed: the new marker skips them for good, while the old one
            reads them again.
        needs_registration: WebId -> :class:`UpdatesLostError` for the streams whose marker PI no longer
            serves. Their events in this answer, if any, are not in ``events`` (PI says they may be invalid).
            Register them again and read their recorded values from the last event you stored.
        failures: WebId -> :class:`PIWebAPIError` for the streams that could not be read this time (no
            answer, 5xx after retries, a malformed or missing answer, an event carrying ``Errors``): keep
            their old marker and read them again on the next poll.
        requests: the HTTP requests sent, retries included.
    """

    events: pa.Table
    markers: Mapping[str, str]
    needs_registration: Mapping[str, UpdatesLostError]
    failures: Mapping[str, PIWebAPIError]
    requests: int


# -- the answers, as PI Web API sends them -------------------------------------------------------------------


class _Errors(msgspec.Struct, gc=False):
    Errors: list[Any] | None = None


class DataPipeEvent(dec.TimedValue, gc=False):
    """One event of a stream (PI's ``DataPipeEvent``): a timed value with what happened to it."""

    Action: str | None = None
    PreviousEventAction: str | None = None


class _Registered(msgspec.Struct, gc=False):
    """One stream of a registration answer (PI's ``StreamUpdatesRegister``)."""

    Source: str | None = None
    Status: str | None = None
    LatestMarker: str | None = None
    exception: _Errors | None = msgspec.field(default=None, name="Exception")


class _Retrieved(msgspec.Struct, gc=False):
    """One stream of a retrieval answer (PI's ``StreamUpdatesRetrieve``)."""

    Source: str | None = None
    RequestedMarker: str | None = None
    LatestMarker: str | None = None
    Events: list[DataPipeEvent] | None = None
    exception: _Errors | None = msgspec.field(default=None, name="Exception")
    WebException: dec.WebException | None = None


class _RegisteredPage(msgspec.Struct, gc=False):
    Items: list[_Registered]
    WebException: dec.WebException | None = None


class _RetrievedPage(msgspec.Struct, gc=False):
    Items: list[_Retrieved]
    WebException: dec.WebException | None = None


class _LoosePage(msgspec.Struct, gc=False):
    Items: list[msgspec.Raw]
    WebException: dec.WebException | None = None


class _Identity(msgspec.Struct, gc=False):
    Source: Any = None
    RequestedMarker: Any = None


@dataclass(frozen=True, slots=True)
class _Malformed:
    """An item of the answer that is not one stream's answer, with whatever identity it shows."""

    Source: str | None
    RequestedMarker: str | None
    problem: str


def _decode_items(body: bytes, page_kind: type, item_kind: type) -> list[Any]:
    """The items of a stream-set answer: strictly typed at once (the fast path); when that fails, item by
    item, so that a malformed item (a :class:`_Malformed`) fails only its stream. An answer that is not a
    stream-set answer at all, or carries a top-level ``WebException``, raises (the transport retries it)."""
    try:
        page = dec.decoder(page_kind).decode(body)
    except msgspec.ValidationError:
        page = dec.decoder(_LoosePage).decode(body)
        dec.check_web_exception(page.WebException)
        return [_decode_item(raw, item_kind) for raw in page.Items]
    dec.check_web_exception(page.WebException)
    return page.Items


def _decode_item(raw: msgspec.Raw, kind: type) -> Any:
    try:
        return dec.decoder(kind).decode(raw)
    except msgspec.ValidationError as exc:
        problem = f"the stream's answer is malformed ({exc})"
    try:
        identity = dec.decoder(_Identity).decode(raw)
    except msgspec.ValidationError:
        return _Malformed(None, None, problem)
    return _Malformed(_text(identity.Source), _text(identity.RequestedMarker), problem)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _messages(errors: _Errors | None) -> list[str]:
    """PI's messages of an ``Exception``; empty when there is none (null, or no messages in it)."""
    if errors is None or not errors.Errors:
        return []
    return error_messages({"Errors": errors.Errors})


# -- requests: cut by URL length, several in flight, split when refused --------------------------------------


@dataclass(frozen=True)
class _Chunking:
    transport: Transport
    parameter: str  # webId | marker
    max_url_length: int

    def url(self, values: Iterable[str]) -> str:
        query = "&".join(f"{self.parameter}={_quoted(value)}" for value in values)
        return f"{self.transport.url(ROUTE)}?{query}"

    def one(self, value: str) -> str:
        """The URL of a request for this stream alone: the URL an error of one stream shows."""
        return self.url([value])

    def chunks(self, values: Sequence[str]) -> list[list[int]]:
        """Indexes of ``values`` cut into runs whose URL stays within ``max_url_length`` (a value too long
        on its own goes alone)."""
        room = self.max_url_length - len(self.transport.url(ROUTE)) - 1
        chunks: list[list[int]] = []
        current: list[int] = []
        used = 0
        for index, value in enumerate(values):
            cost = len(self.parameter) + 2 + len(_quoted(value))  # "&name=" + value
            if current and used + cost - 1 > room:  # the first parameter has no "&"
                chunks.append(current)
                current, used = [], 0
            current.append(index)
            used += cost
        if current:
            chunks.append(current)
        return chunks


def _quoted(value: str) -> str:
    """``value`` percent-encoded for a query (as ``quote(value, safe="")``), at the cost of one match when it
    needs nothing (WebIds and markers usually do not): a tick's URLs carry tens of thousands of them."""
    return value if _UNRESERVED.fullmatch(value) else quote(value, safe="")


def _run(
    chunks: list[list[T]], fetch: Callable[[list[T]], R], concurrency: int, split: frozenset[int]
) -> list[tuple[list[T], R | PIWebAPIError]]:
    """``fetch`` of every chunk, ``concurrency`` at a time; a chunk refused as a whole with a status in
    ``split`` is split in halves until the refused members stand alone. Returns each final chunk with its
    result or its error; a refused authentication raises."""
    pending = deque(chunks)
    results: list[tuple[list[T], R | PIWebAPIError]] = []
    inflight: dict[Future[R | PIWebAPIError], list[T]] = {}
    with ThreadPoolExecutor(concurrency, thread_name_prefix="pi-updates") as pool:
        try:
            while pending or inflight:
                while pending and len(inflight) < concurrency:
                    chunk = pending.popleft()
                    inflight[pool.submit(_attempt, fetch, chunk)] = chunk
                done, _ = wait(inflight, return_when=FIRST_COMPLETED)
                for future in done:
                    chunk = inflight.pop(future)
                    outcome = future.result()
                    if isinstance(outcome, PIAuthenticationError):
                        raise outcome
                    if isinstance(outcome, PIWebAPIError) and outcome.status in split and len(chunk) > 1:
                        half = len(chunk) // 2
                        pending.extend([chunk[:half], chunk[half:]])
                    else:
                        results.append((chunk, outcome))
        finally:
            for future in inflight:
                future.cancel()
    return results


def _attempt(fetch: Callable[[list[T]], R], chunk: list[T]) -> R | PIWebAPIError:
    try:
        return fetch(chunk)
    except PIWebAPIError as error:
        return error


class _Counter:
    """Counts the requests of one call; the transport calls it from the worker threads."""

    def __init__(self) -> None:
        self.value = 0
        self._lock = threading.Lock()

    def __call__(self) -> None:
        with self._lock:
            self.value += 1


def _match(items: list[Any], owner: Callable[[Any], str | None]) -> tuple[dict[str, list[Any]], list[Any]]:
    """The items of an answer by the requested stream ``owner`` names, and the items it names none for."""
    matched: dict[str, list[Any]] = {}
    strays: list[Any] = []
    for item in items:
        web_id = owner(item)
        if web_id is None:
            strays.append(item)
        else:
            matched.setdefault(web_id, []).append(item)
    return matched, strays


def _log_strays(strays: list[Any], url: str) -> None:
    if strays:
        shown = ", ".join(repr(item.Source) for item in strays[:3])
        log.warning(
            "PI Web API answered for %d stream(s) that were not requested (Source %s%s); ignored [%s]",
            len(strays),
            shown,
            ", ..." if len(strays) > 3 else "",
            url[:200],
        )


# -- registration --------------------------------------------------------------------------------------------


def register_updates(
    transport: Transport,
    web_ids: str | Iterable[str],
    *,
    max_url_length: int = DEFAULT_READ.max_url_length,
    concurrency: int = DEFAULT_READ.concurrency,
) -> UpdateRegistration:
    """Register streams for updates (``POST /streamsets/updates?webId=…``); see
    :meth:`~osipi_dagster.pi.client.PIWebAPIClient.register_updates`."""
    check_count("max_url_length", max_url_length, 1)
    check_count("concurrency", concurrency, 1)
    ids = list(dict.fromkeys(_web_ids(web_ids)))
    counter = _Counter()
    chunking = _Chunking(transport, "webId", max_url_length)

    def fetch(chunk: list[str]) -> list[Any]:
        return transport.request(
            "POST",
            chunking.url(chunk),
            decode=lambda body: _decode_items(body, _RegisteredPage, _Registered),
            on_send=counter,
        )

    markers: dict[str, str] = {}
    already: set[str] = set()
    failures: dict[str, PIWebAPIError] = {}
    chunks = [[ids[i] for i in chunk] for chunk in chunking.chunks(ids)]
    for chunk, outcome in _run(chunks, fetch, concurrency, _SPLIT_REGISTRATION):
        if isinstance(outcome, PIWebAPIError):
            _registration_failed(chunk, outcome, failures)
            continue
        matched, strays = _match(outcome, partial(_requested_source, frozenset(chunk)))
        _log_strays(strays, chunking.url(chunk))
        for web_id in chunk:
            result = _registration(web_id, matched.get(web_id, []), chunking)
            if isinstance(result, PIWebAPIError):
                failures[web_id] = result
            else:
                marker, is_already = result
                markers[web_id] = marker
                if is_already:
                    already.add(web_id)
    if failures:
        log.warning("PI Web API did not register %d of %d stream(s) for updates", len(failures), len(ids))
    return UpdateRegistration(markers, frozenset(already), failures, counter.value)


def _requested_source(requested: frozenset[str], item: Any) -> str | None:
    """The requested WebId a registration item is for: its ``Source`` (the only identity it carries)."""
    return item.Source if item.Source in requested else None


def _web_ids(web_ids: str | Iterable[str]) -> list[str]:
    ids = [web_ids] if isinstance(web_ids, str) else list(web_ids)
    for web_id in ids:
        if not isinstance(web_id, str) or not web_id:
            raise ValueError(f"a WebId must be a non-empty string (got {web_id!r})")
    return ids


def _registration_failed(chunk: list[str], error: PIWebAPIError, failures: dict[str, PIWebAPIError]) -> None:
    if len(chunk) == 1 and error.status is not None and 400 <= error.status < 500 and error.status != 429:
        error = RegistrationRefusedError(
            "PI Web API refused to register the stream for updates",
            status=error.status,
            url=error.url,
            errors=error.errors,
        )
    log.warning("PI Web API did not register %d stream(s) for updates: %s", len(chunk), error)
    for web_id in chunk:
        failures[web_id] = error


def _registration(web_id: str, items: list[Any], chunking: _Chunking) -> tuple[str, bool] | PIWebAPIError:
    """The marker of ``web_id`` and whether PI said AlreadyRegistered, or why it is not registered."""
    item = items[0] if len(items) == 1 else None
    status = (getattr(item, "Status", None) or "").lower()
    if isinstance(item, _Registered) and not item.exception and status in _REGISTERED and item.LatestMarker:
        return item.LatestMarker, status == "alreadyregistered"
    url = chunking.one(web_id)
    if item is None:
        return _unanswered(len(items), url, "register it again later")
    if isinstance(item, _Malformed):
        return PIResponseError(f"{item.problem}; {_REGISTER_LATER}", url=url)
    errors = _messages(item.exception)
    if errors or status == "failed":
        return RegistrationRefusedError(
            f"PI Web API did not register the stream for updates (Status {item.Status})",
            url=url,
            errors=errors,
        )
    if status not in _REGISTERED:
        return PIResponseError(
            f"PI Web API answered the registration with the Status {item.Status!r}, not Succeeded, "
            f"AlreadyRegistered or Failed; {_REGISTER_LATER}",
            url=url,
        )
    return PIResponseError(
        f"PI Web API registered the stream without a LatestMarker; {_REGISTER_LATER}", url=url
    )


def _unanswered(count: int, url: str, hint: str) -> PIResponseError:
    if count == 0:
        return PIResponseError(
            "PI Web API's answer has no item for this stream (PI spells WebIds in its configured "
            f"WebIDType: pass them as PI's discovery returns them); {hint}",
            url=url,
        )
    return PIResponseError(f"PI Web API answered {count} times for this stream; {hint}", url=url)


# -- retrieval -----------------------------------------------------------------------------------------------


@dataclass
class _ChunkRead:
    """What one answer did to the streams of its request (built in a worker thread)."""

    batch: pa.RecordBatch | None = None
    markers: dict[str, str] = field(default_factory=dict)
    lost: dict[str, UpdatesLostError] = field(default_factory=dict)
    failures: dict[str, PIWebAPIError] = field(default_factory=dict)


def read_updates(
    transport: Transport,
    markers: Markers,
    *,
    max_url_length: int = DEFAULT_READ.max_url_length,
    concurrency: int = DEFAULT_READ.concurrency,
) -> UpdatesRead:
    """Read the events of each stream since its marker (``GET /streamsets/updates?marker=…``); see
    :meth:`~osipi_dagster.pi.client.PIWebAPIClient.read_updates`."""
    check_count("max_url_length", max_url_length, 1)
    check_count("concurrency", concurrency, 1)
    pairs = _marker_pairs(markers)
    counter = _Counter()
    chunking = _Chunking(transport, "marker", max_url_length)

    def fetch(chunk: list[tuple[str, str]]) -> _ChunkRead:
        items = transport.get(
            chunking.url([marker for _, marker in chunk]),
            decode=lambda body: _decode_items(body, _RetrievedPage, _Retrieved),
            on_send=counter,
        )
        return _read_chunk(chunk, items, chunking)

    batches: list[pa.RecordBatch] = []
    new_markers: dict[str, str] = {}
    lost: dict[str, UpdatesLostError] = {}
    failures: dict[str, PIWebAPIError] = {}
    chunks = [[pairs[i] for i in chunk] for chunk in chunking.chunks([m for _, m in pairs])]
    for chunk, outcome in _run(chunks, fetch, concurrency, _SPLIT_RETRIEVAL):
        if isinstance(outcome, PIWebAPIError):
            _request_failed(chunk, outcome, lost, failures)
            continue
        if outcome.batch is not None and outcome.batch.num_rows:
            batches.append(outcome.batch)
        new_markers.update(outcome.markers)
        lost.update(outcome.lost)
        failures.update(outcome.failures)
    if lost:
        web_id, error = next(iter(lost.items()))
        log.warning(
            "PI Web API lost the updates of %d stream(s): register them again and fill the gap from their "
            "recorded values (e.g. %s: HTTP %s: %s)",
            len(lost),
            web_id,
            error.status,
            "; ".join(error.errors) or error.message,
        )
    if failures:
        log.warning(
            "%d stream(s) could not be read for updates: keep their markers and read them again next time",
            len(failures),
        )
    events = pa.Table.from_batches(batches, schema=UPDATE_EVENTS_SCHEMA)
    return UpdatesRead(events, new_markers, lost, failures, counter.value)


def _marker_pairs(markers: Markers) -> list[tuple[str, str]]:
    if not isinstance(markers, Mapping):
        raise TypeError(
            f"markers must map each WebId to its marker (a dict such as registration.markers), not "
            f"{type(markers).__name__}"
        )
    pairs = list(markers.items())
    for web_id, marker in pairs:
        if not isinstance(web_id, str) or not web_id:
            raise ValueError(f"a WebId must be a non-empty string (got {web_id!r})")
        if not isinstance(marker, str) or not marker:
            raise ValueError(
                f"the marker of {web_id} must be a non-empty string (got {marker!r}): give the marker "
                "register_updates or the last read_updates returned for it"
            )
    return pairs


def _request_failed(
    chunk: list[tuple[str, str]],
    error: PIWebAPIError,
    lost: dict[str, UpdatesLostError],
    failures: dict[str, PIWebAPIError],
) -> None:
    # 404 "Cache not found": every marker of the request is lost (see UpdatesLostError). 400 and 409 reach
    # here for one marker alone: _run splits a request they refuse.
    if error.status in _LOST_STATUSES and (error.status == 404 or len(chunk) == 1):
        reason = (
            "PI Web API's cache of registrations is gone"
            if error.status == 404
            else "PI Web API refused the marker"
        )
        shared = UpdatesLostError(
            f"{reason}: {_LOST_HINT}",
            status=error.status,
            url=error.url,
            errors=error.errors,
        )
        for web_id, _ in chunk:
            lost[web_id] = shared
        return
    log.warning("%d stream(s) could not be read for updates: %s", len(chunk), error)
    for web_id, _ in chunk:
        failures[web_id] = error


def _read_chunk(chunk: list[tuple[str, str]], items: list[Any], chunking: _Chunking) -> _ChunkRead:
    by_marker: dict[str, list[str]] = {}
    for web_id, marker in chunk:
        by_marker.setdefault(marker, []).append(web_id)
    requested = {web_id for web_id, _ in chunk}

    def owner(item: Any) -> str | None:
        candidates = by_marker.get(item.RequestedMarker) if item.RequestedMarker is not None else None
        if candidates is None:
            # No RequestedMarker to go by (one we never sent is another stream's answer): only Source.
            return item.Source if item.RequestedMarker is None and item.Source in requested else None
        if len(candidates) == 1:
            # PI may spell the WebId its own way (another WebIDType); the marker we sent is the identity,
            # unless Source names another requested stream, which contradicts it.
            if item.Source is not None and item.Source != candidates[0] and item.Source in requested:
                return None
            return candidates[0]
        return item.Source if item.Source in candidates else None

    matched, strays = _match(items, owner)
    if strays:
        _log_strays(strays, chunking.url([marker for _, marker in chunk]))
    read = _ChunkRead()
    good: list[tuple[str, list[DataPipeEvent]]] = []
    for web_id, marker in chunk:
        problem = _stream_problem(marker, matched.get(web_id, []), chunking)
        if isinstance(problem, UpdatesLostError):
            read.lost[web_id] = problem
        elif isinstance(problem, PIWebAPIError):
            read.failures[web_id] = problem
        else:
            item = matched[web_id][0]
            read.markers[web_id] = item.LatestMarker
            if item.Events:
                good.append((web_id, item.Events))
    if good:
        read.batch = _events_batch(good, read, chunking, dict(chunk))
    return read


def _stream_problem(marker: str, items: list[Any], chunking: _Chunking) -> PIWebAPIError | None:
    """Why the answer (``items``) for the stream read from ``marker`` cannot be used (it is lost, or must be
    read again), or None when it can."""
    item = items[0] if len(items) == 1 else None
    if (
        isinstance(item, _Retrieved)
        and item.LatestMarker
        and item.Events is not None
        and not item.exception
        and item.WebException is None
    ):
        if not item.Events:
            return None  # the common case: no events
        return _events_problem(item.Events, chunking, marker)
    url = chunking.one(marker)
    if item is None:
        return _unanswered(len(items), url, _RETRY_HINT)
    if isinstance(item, _Malformed):
        return PIResponseError(f"{item.problem}; {_RETRY_HINT}", url=url)
    errors = _messages(item.exception)
    if errors:
        return UpdatesLostError(
            f"PI Web API stopped the stream's updates: {_LOST_HINT}", url=url, errors=errors
        )
    if item.WebException is not None:
        return PIResponseError(
            f"the stream's answer carries a WebException; {_RETRY_HINT}",
            status=item.WebException.StatusCode,
            url=url,
            errors=error_messages({"Errors": item.WebException.Errors or []}),
        )
    if item.Events is not None and item.LatestMarker:  # an Exception without messages: not an error
        return _events_problem(item.Events, chunking, marker) if item.Events else None
    missing = "LatestMarker" if not item.LatestMarker else "Events"
    return PIResponseError(f"the stream's answer has no {missing}; {_RETRY_HINT}", url=url)


def _events_problem(events: list[DataPipeEvent], chunking: _Chunking, marker: str) -> PIResponseError | None:
    """The first event carrying ``Errors`` (PI's handled per-value error), as the stream's failure."""
    failed = dec.first_error(events)
    if failed is not None:
        index, message = failed
        return PIResponseError(
            f"the event at {events[index].Timestamp} carries Errors ({message}); {_RETRY_HINT}",
            url=chunking.one(marker),
        )
    return None


def _events_batch(
    streams: list[tuple[str, list[DataPipeEvent]]],
    read: _ChunkRead,
    chunking: _Chunking,
    markers: dict[str, str],
) -> pa.RecordBatch | None:
    """One batch of the events of ``streams``; a stream whose events cannot be made into rows (an event
    without Action, a timestamp that is not a time) fails alone, its marker withdrawn."""
    try:
        return _build(streams)
    except (ValueError, pa.ArrowException):
        pass
    kept = []
    for web_id, events in streams:
        try:
            _build([(web_id, events)])
        except (ValueError, pa.ArrowException) as exc:
            del read.markers[web_id]
            read.failures[web_id] = PIResponseError(
                f"the stream's events cannot be read ({exc}); {_RETRY_HINT}",
                url=chunking.one(markers[web_id]),
            )
        else:
            kept.append((web_id, events))
    return _build(kept) if kept else None


def _build(streams: list[tuple[str, list[DataPipeEvent]]]) -> pa.RecordBatch:
    segments = [segment for web_id, events in streams for segment in _segments(web_id, events)]
    values = dec.build_batch(segments)
    actions = pa.array([event.Action for _, events in streams for event in events], pa.string())
    if actions.null_count:
        raise ValueError("an event has no Action")
    previous = [event.PreviousEventAction for _, events in streams for event in events]
    columns = [*values.columns, actions, pa.array(previous, pa.string())]
    return pa.RecordBatch.from_arrays(columns, schema=UPDATE_EVENTS_SCHEMA)


def _segments(web_id: str, events: list[DataPipeEvent]) -> list[dec.Segment]:
    """The events of one stream as segments of one units each (units rarely change within an answer)."""
    units = [event.UnitsAbbreviation for event in events]
    if units.count(units[0]) == len(units):
        return [dec.Segment(web_id, units[0], events)]
    segments = []
    start = 0
    for index in range(1, len(events) + 1):
        if index == len(events) or units[index] != units[start]:
            segments.append(dec.Segment(web_id, units[start], events[start:index]))
            start = index
    return segments
