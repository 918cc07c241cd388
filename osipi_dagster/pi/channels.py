"""Channels: follow many streams over PI Web API WebSockets, reconnecting by itself.

PI Web API pushes the values of streams over ``wss://host/piwebapi/streamsets/channel?webId=A&webId=B``
(stream-updates-channels.md section 2): each text message is ``{"Items": [{"WebId", "Items": [TimedValue,
...]}, ...]}`` holding only the streams that changed, values not in chronological order, and an empty
``Items`` as a heartbeat. There is no resume position: values that become visible while a socket is down
are never sent, so a caller fills each gap with a recorded read (see :class:`ChannelOpened`).

:class:`ChannelFollower` splits the WebIds into groups whose URL stays under ``max_url_length`` (one channel
with many streams is far cheaper for the server than many channels), opens one WebSocket per group, and
yields what happens on all of them, in arrival order:

- :class:`ChannelOpened` when a channel is open (again): values of its streams that became visible before
  this moment may be missing; read them (recorded, from the last value you kept) *after* this event, and
  expect the first channel values to overlap that read;
- :class:`ChannelValues`: the values of the messages received since the previous event, as Arrow rows of
  :data:`~osipi_dagster.contract.RECORDED_SCHEMA` (the same columns a recorded read gives): messages that
  wait together are decoded into one batch (a message carries a few dozen values; building an Arrow
  batch per message cost more than the values), never across an opened or lost channel;
- :class:`ChannelLost` when a channel fails (closed, dropped, silent for ``idle_timeout_s``, refused with a
  5xx or 429): it is opened again after a backoff with jitter, while the other channels go on.

Back-pressure: :meth:`ChannelFollower.pause` stops reading from every channel until
:meth:`~ChannelFollower.resume` (a caller that cannot keep up). The sockets stay open; the WebSocket
library buffers a few messages, then stops reading from the connection, and TCP flow control makes the
server wait: nothing is dropped. ``on_queued`` is called after each message is queued (``queued_values``
counts its values), so a caller can pause before the next message is read; each other channel may still
deliver the message it was receiving. The idle timeout does not run while paused; a server that gives up
on a paused channel closes it, and the channel is reopened (and its gap read) like any lost channel.

Channels are compressed (permessage-deflate, when the server offers it) only if the client asks for
compressed answers (``compress``): on loopback or a fast LAN, deflating every message costs both sides more
CPU than the values.

The upgrade request carries the client's credentials (Basic, Bearer, OIDC client credentials: the
``Authorization`` header its requests carry) and the client's TLS settings. A refused upgrade that will not
get better by retrying raises from the iteration: 401 (``PIAuthenticationError``, after renewing an OIDC
token once) and 400, 404, 409 (``PIResponseError`` with PI's messages: a malformed, unknown or static
stream).
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import msgspec
import pyarrow as pa
import requests
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from osipi_dagster.contract import RECORDED_SCHEMA
from osipi_dagster.pi import decode as dec
from osipi_dagster.pi.errors import LOGGER_NAME, PIAuthenticationError, PIConfigurationError, PIResponseError

if TYPE_CHECKING:
    from osipi_dagster.pi.client import PIWebAPIClient

log = logging.getLogger(LOGGER_NAME)

ROUTE = "streamsets/channel"
CLOSE_TIMEOUT_S = 2.0  # how long closing waits for the server's close frame
_REFUSED = frozenset({400, 404, 409, 413, 414})  # retrying the same upgrade gets the same answer
MAX_VALUES_PER_EVENT = 200_000  # messages waiting together are merged into one event up to this many values


@dataclass(frozen=True)
class ChannelOptions:
    """How channels are opened and kept open.

    Attributes:
        max_url_length: the longest upgrade URL; WebIds are split into as many channels as needed
            (PI Web API and its proxies commonly accept 8 to 16 KB; 4 KB is safe everywhere).
        heartbeat_rate: ``heartbeatRate``: PI sends an empty message after this many of its polling
            intervals without data, so a silent channel can be told from a dead one (0: none).
        idle_timeout_s: a channel that sends nothing (not even a heartbeat) for this long is closed and
            opened again.
        include_initial_values: ask for each stream's current value when a channel opens.
        open_timeout_s: the longest an upgrade may take.
        backoff_base_s, backoff_max_s: the wait before reopening a lost channel doubles from the base up to
            the maximum (with jitter), and starts again from the base once a channel opened.
        max_message_bytes: the largest message accepted (PI serialises a whole message before sending).
    """

    max_url_length: int = 4096
    heartbeat_rate: int = 5
    idle_timeout_s: float = 30.0
    include_initial_values: bool = False
    open_timeout_s: float = 30.0
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    max_message_bytes: int = 256 * 1024 * 1024

    def __post_init__(self) -> None:
        for name in ("idle_timeout_s", "open_timeout_s", "backoff_base_s", "backoff_max_s"):
            value = getattr(self, name)
            if not value > 0:
                raise PIConfigurationError(f"ChannelOptions.{name} must be positive (got {value})")
        if self.max_url_length < 256:
            raise PIConfigurationError(
                f"ChannelOptions.max_url_length must be at least 256 (got {self.max_url_length})"
            )


@dataclass(frozen=True)
class ChannelOpened:
    """Channel ``channel`` (over ``web_ids``) is open; ``opened_ns`` is this host's clock when it opened."""

    channel: int
    web_ids: tuple[str, ...]
    opened_ns: int
    reopened: bool


@dataclass(frozen=True)
class ChannelValues:
    """The values of the messages of ``channels`` received since the previous event (``RECORDED_SCHEMA``
    rows, in arrival order); the last of them was received at ``received_ns`` (this host's clock)."""

    channels: tuple[int, ...]
    values: pa.RecordBatch
    received_ns: int


@dataclass(frozen=True)
class _Received:
    """One message's values, not yet an Arrow batch."""

    channel: int
    segments: list[dec.Segment]
    received_ns: int
    count: int  # values


@dataclass(frozen=True)
class ChannelLost:
    """Channel ``channel`` failed (``reason``); it is opened again in ``retry_in_s`` seconds."""

    channel: int
    web_ids: tuple[str, ...]
    reason: str
    retry_in_s: float


ChannelEvent = ChannelOpened | ChannelValues | ChannelLost


# -- messages, as PI Web API sends them ---------------------------------------------------------------------


class _Stream(msgspec.Struct, gc=False):
    WebId: str = ""
    UnitsAbbreviation: str | None = None
    Items: list[dec.TimedValue] | None = None
    Value: dec.TimedValue | None = None  # the GetChannelAdHoc sample's one-value shape


class _Message(msgspec.Struct, gc=False):
    Items: list[_Stream] | None = None


_DECODER = msgspec.json.Decoder(_Message)


def decode_message(raw: str | bytes, known: frozenset[str]) -> pa.RecordBatch:
    """The values of one channel message as ``RECORDED_SCHEMA`` rows; streams not in ``known`` are left
    out (and logged). A blank message is a heartbeat. Raises PIResponseError for a message that is not
    one."""
    segments = decode_segments(raw, known)
    return dec.build_batch(segments) if segments else _EMPTY


def decode_segments(raw: str | bytes, known: frozenset[str]) -> list[dec.Segment]:
    """The values of one channel message, one segment per stream (see :func:`decode_message`)."""
    if not raw.strip():
        return []
    try:
        message = _DECODER.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise PIResponseError(f"a channel message is not PI's channel JSON: {exc}") from None
    segments = []
    for stream in message.Items or ():
        if stream.WebId not in known:
            log.warning("channel message for a stream that was not asked for (%.60s): ignored", stream.WebId)
            continue
        items = stream.Items if stream.Items is not None else [stream.Value] if stream.Value else []
        if items:
            units = stream.UnitsAbbreviation or items[0].UnitsAbbreviation
            segments.append(dec.Segment(stream.WebId, units, items))
    return segments


_EMPTY = pa.RecordBatch.from_pylist([], schema=RECORDED_SCHEMA)


# -- the channels ------------------------------------------------------------------------------------------


def channel_groups(base_url: str, web_ids: Sequence[str], max_url_length: int) -> list[tuple[str, ...]]:
    """``web_ids`` cut into consecutive groups whose channel URL is at most ``max_url_length`` long."""
    fixed = len(f"{base_url}/{ROUTE}?includeInitialValues=false&heartbeatRate=0000000000")
    groups: list[tuple[str, ...]] = []
    current: list[str] = []
    length = fixed
    for web_id in web_ids:
        part = len("&webId=") + len(quote(web_id, safe=""))
        if fixed + part > max_url_length:
            raise PIConfigurationError(
                f"the WebId {web_id[:40]}... alone makes a channel URL longer than max_url_length "
                f"({max_url_length}); raise max_url_length"
            )
        if current and length + part > max_url_length:
            groups.append(tuple(current))
            current, length = [], fixed
        current.append(web_id)
        length += part
    if current:
        groups.append(tuple(current))
    return groups


class ChannelFollower:
    """Follows ``web_ids`` over as many channels as their URLs need (see the module docstring).

    In an asyncio loop, iterate :meth:`events` (leaving the iteration closes the channels), or call
    :meth:`start`, then :meth:`next` for each event, and :meth:`aclose` to close every channel (1000).
    """

    def __init__(
        self,
        client: PIWebAPIClient,
        web_ids: Sequence[str],
        options: ChannelOptions | None = None,
        on_queued: Callable[[], None] | None = None,
    ) -> None:
        if not web_ids:
            raise PIConfigurationError("ChannelFollower needs at least one WebId")
        if len(set(web_ids)) != len(web_ids):
            raise PIConfigurationError("ChannelFollower was given the same WebId twice")
        self.client = client
        self.options = options or ChannelOptions()
        self.base_url = client.base_url.replace("http", "ws", 1)
        self.groups = channel_groups(self.base_url, list(web_ids), self.options.max_url_length)
        self._pending: deque[ChannelOpened | ChannelLost | _Received | BaseException] = deque()
        self._arrived = asyncio.Event()
        self._flowing = asyncio.Event()
        self._flowing.set()
        self.queued_values = 0  # received but not yet given by next()
        self.on_queued = on_queued
        self._tasks: list[asyncio.Task[None]] = []

    def url(self, channel: int) -> str:
        """The upgrade URL of channel number ``channel``."""
        o = self.options
        ids = "&".join(f"webId={quote(web_id, safe='')}" for web_id in self.groups[channel])
        initial = "true" if o.include_initial_values else "false"
        options = f"includeInitialValues={initial}&heartbeatRate={o.heartbeat_rate}"
        return f"{self.base_url}/{ROUTE}?{ids}&{options}"

    def start(self) -> None:
        """Open every channel (in the running loop); then :meth:`next` gives their events."""
        if not self._tasks:
            self._tasks = [asyncio.create_task(self._follow(index)) for index in range(len(self.groups))]

    async def next(self) -> ChannelEvent:
        """The next event of any channel; raises a refusal that retrying cannot mend (see the module)."""
        while not self._pending:
            self._arrived.clear()
            await self._arrived.wait()
        event = self._pending.popleft()
        if isinstance(event, BaseException):
            raise event
        if not isinstance(event, _Received):
            return event
        received = [event]
        count = event.count
        while self._pending and isinstance(self._pending[0], _Received) and count < MAX_VALUES_PER_EVENT:
            following = self._pending.popleft()
            assert isinstance(following, _Received)
            received.append(following)
            count += following.count
        self.queued_values -= count
        segments = [segment for message in received for segment in message.segments]
        channels = tuple(dict.fromkeys(message.channel for message in received))
        return ChannelValues(channels, dec.build_batch(segments), received[-1].received_ns)

    def _put(self, event: ChannelOpened | ChannelLost | _Received | BaseException) -> None:
        self._pending.append(event)
        self._arrived.set()
        if isinstance(event, _Received):
            self.queued_values += event.count
            if self.on_queued is not None:
                self.on_queued()

    @property
    def paused(self) -> bool:
        """Whether reading from the channels is paused (:meth:`pause`)."""
        return not self._flowing.is_set()

    def pause(self) -> None:
        """Stop reading from every channel (back-pressure, see the module docstring) until :meth:`resume`."""
        self._flowing.clear()

    def resume(self) -> None:
        """Read from the channels again after :meth:`pause`."""
        self._flowing.set()

    async def events(self) -> AsyncIterator[ChannelEvent]:
        """Every channel's events, as they happen, until the caller stops iterating."""
        self.start()
        try:
            while True:
                yield await self.next()
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        """Close every channel."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def _follow(self, index: int) -> None:
        web_ids = self.groups[index]
        known = frozenset(web_ids)
        backoff = self.options.backoff_base_s
        opened_before = False
        renewed = False
        while True:
            try:
                async with await self._open(index) as socket:
                    self._put(ChannelOpened(index, web_ids, time.time_ns(), opened_before))
                    opened_before, renewed, backoff = True, False, self.options.backoff_base_s
                    await self._receive(index, socket, known)
            except asyncio.CancelledError:
                raise
            except InvalidStatus as exc:
                status = exc.response.status_code
                if status == 401 and not renewed and self.client.auth.on_unauthorized():
                    renewed = True
                    continue
                if status == 401:
                    refused = PIAuthenticationError("PI Web API refused the channel credentials", status=401)
                    self._put(refused)
                    return
                if status in _REFUSED:
                    self._put(_refusal(status, exc.response.body, web_ids, self.url(index)))
                    return
                reason = f"the upgrade was answered {status}"
            except PIResponseError as exc:
                reason = str(exc)
            except (OSError, ConnectionClosed, InvalidHandshake, TimeoutError) as exc:
                reason = _reason(exc)
            wait = random.uniform(backoff / 2, backoff)
            self._put(ChannelLost(index, web_ids, reason, wait))
            log.info("channel %d lost (%s); opening it again in %.1f s", index, reason, wait)
            await asyncio.sleep(wait)
            backoff = min(backoff * 2, self.options.backoff_max_s)

    async def _open(self, index: int) -> Any:
        headers = await asyncio.to_thread(self._handshake_headers)
        return connect(
            self.url(index),
            additional_headers=headers,
            ssl=self._ssl(),
            open_timeout=self.options.open_timeout_s,
            max_size=self.options.max_message_bytes,
            ping_interval=None,  # liveness is PI's heartbeat and idle_timeout_s
            compression="deflate" if self.client.compress else None,
            close_timeout=CLOSE_TIMEOUT_S,
            user_agent_header=None,
        )

    async def _receive(self, index: int, socket: ClientConnection, known: frozenset[str]) -> None:
        while True:
            await self._flowing.wait()
            # asyncio.timeout rather than wait_for: Python 3.11's wait_for can swallow a cancellation.
            try:
                async with asyncio.timeout(self.options.idle_timeout_s):
                    raw = await socket.recv()
            except TimeoutError:
                raise TimeoutError(f"nothing received for {self.options.idle_timeout_s} s") from None
            received = time.time_ns()
            segments = decode_segments(raw, known)
            if segments:
                count = sum(len(segment.items) for segment in segments)
                self._put(_Received(index, segments, received, count))

    def _handshake_headers(self) -> dict[str, str]:
        """The headers the client's requests carry (credentials included), for the upgrade request."""
        prepared = requests.Request("GET", self.client.base_url).prepare()
        prepared = self.client.auth(prepared)
        headers = {key: value for key, value in prepared.headers.items() if key.lower() == "authorization"}
        headers["User-Agent"] = self.client.user_agent
        return headers

    def _ssl(self) -> ssl.SSLContext | None:
        if not self.base_url.startswith("wss://"):
            return None
        verify = self.client.verify
        if verify is False:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            return context
        return ssl.create_default_context(cafile=verify if isinstance(verify, str) else None)


def _refusal(status: int, body: bytes | None, web_ids: tuple[str, ...], url: str) -> PIResponseError:
    try:
        errors = [str(e) for e in msgspec.json.decode(body or b"{}").get("Errors", [])]
    except (msgspec.DecodeError, AttributeError):
        errors = []
    return PIResponseError(
        f"PI Web API refused a channel over {len(web_ids)} streams with {status} "
        f"({'; '.join(errors) or 'no message'}): remove the malformed, unknown or static WebIds from the "
        "streams to follow",
        status=status,
        url=url,
        errors=errors,
    )


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ConnectionClosed):
        frame = exc.rcvd
        return f"closed by the server ({frame.code} {frame.reason})" if frame else "connection dropped (1006)"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
