"""Channels over WebSocket: ``/streams/{webId}/channel``, ``/streamsets/channel?webId=..``,
``/streamsets/{webId}/channel`` and ``GET /channels/instances`` (what a channel sends:
``osipi_dagster.mock.channels``).

By parent (``/streamsets/{webId}/channel``, an element, event frame or attribute): the attributes the stream
set of that parent holds (``nameFilter``, ``categoryName``, ``templateName``, ``searchFullHierarchy``,
``showExcluded``, ``showHidden``, as ``streamsets.py``) that have values (static attributes are left out:
there is nothing to send); another kind of object is a 409, as for the other stream-set actions.

The upgrade request is an ordinary GET and is authenticated as any request (Basic or Bearer in the
``Authorization`` header). Before the upgrade, a request that cannot be served is answered over HTTP as PI
answers it: 401 without valid credentials, 400 for a malformed WebID or parameter, 404 for a WebID naming
nothing, 409 for a static attribute (no data to follow). Parameters: ``includeInitialValues`` (false),
``heartbeatRate`` (polls without data before an empty message; 0 or less: none), ``webIdType``.

Closing: when the client closes, the channel ends (its close frame is answered, code 1000); a server that
shuts down closes with 1012 (uvicorn's Service Restart). Injected faults (``MockConfig.faults``, per
channel, drawn from the fault seed and the channel's number): ``channel_close_after`` closes the channel with
1001 (Going Away) after that many messages; ``channel_drop_rate`` aborts the TCP connection instead of
sending a message (no close frame); ``channel_stall_rate`` makes a poll send nothing for
``channel_stall_s`` seconds, after which what became visible meanwhile is sent; ``channel_repeat_rate``
sends a message again ``channel_repeat_s`` later (before the next message due then), as a server that
repeats itself: the same values, stamps and flags twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from datetime import UTC, datetime

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from osipi_dagster.mock import webids
from osipi_dagster.mock.channels import HEARTBEAT, Channel, ChannelInstance, ChannelStream
from osipi_dagster.mock.errors import PIError
from osipi_dagster.mock.faults import channel_draws
from osipi_dagster.mock.middleware import API_PREFIX, drop_connection
from osipi_dagster.mock.model import Stream
from osipi_dagster.mock.params import Params
from osipi_dagster.mock.responses import json_response
from osipi_dagster.mock.routes.dataservers import webid_type
from osipi_dagster.mock.routes.streams import attribute_stream, resolve_stream, stream_webid
from osipi_dagster.mock.routes.streamsets import PARENT_MARKERS
from osipi_dagster.mock.state import MockState

router = APIRouter(prefix=API_PREFIX)

GOING_AWAY = 1001
POLICY_VIOLATION = 1008  # a refusal when the server cannot answer the upgrade over HTTP


def _now_text() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class ChannelEndpoint:
    """The ASGI endpoint of a channel route (raw ASGI, so that a fault can abort the connection)."""

    def __init__(self, form: str) -> None:
        self.form = (
            form  # "stream" /streams/{webId}, "ad hoc" /streamsets?webId=, "parent" /streamsets/{webId}
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope, receive, send)
        state: MockState = websocket.app.state.mock
        try:
            channel = self._open(websocket, state)
        except PIError as error:
            await _refuse(websocket, error.response())
            return
        if channel is None:
            await _refuse(websocket, websocket.app.state.auth.denied())
            return
        await websocket.accept()
        instance = state.channels.open(_now_text())
        try:
            await _serve(websocket, receive, state, channel, instance)
        finally:
            state.channels.close(instance)

    def _open(self, websocket: WebSocket, state: MockState) -> Channel | None:
        """The channel the upgrade request asks for; None without valid credentials, PIError if bad."""
        if websocket.app.state.auth.identify(websocket.headers.get("authorization")) is None:
            return None
        params = Params(websocket.query_params.multi_items(), state.clock.now_ns(), "UTC")
        kind = webid_type(params)
        heartbeat_rate = params.int("heartbeatRate", 0)
        include_initial = params.bool("includeInitialValues", False)
        base = str(websocket.base_url).replace("ws", "http", 1).rstrip("/") + API_PREFIX
        streams = []
        for stream in self._streams(websocket, state, params):
            web = stream_webid(state, stream, kind)
            collection = "points" if stream.attribute is None else "attributes"
            header = {
                "WebId": web,
                "Name": stream.name,
                "Path": stream.path,
                "Links": {"Self": f"{base}/{collection}/{web}"},
                "UnitsAbbreviation": stream.units,
            }
            streams.append(ChannelStream(stream, header))
        return Channel(state, streams, heartbeat_rate, include_initial)

    def _streams(self, websocket: WebSocket, state: MockState, params: Params) -> list[Stream]:
        """The streams the upgrade request names; PIError 400/404/409 as PI answers it."""
        if self.form == "parent":
            text = websocket.path_params["webId"]
            web = webids.decode(text)
            if web.marker not in PARENT_MARKERS:
                raise PIError(409, f"The object '{text}' does not support stream sets.")
            context = state.af.time_context(web)
            attributes = state.af.stream_attributes(web, params)
            return [s for a in attributes if not (s := attribute_stream(state, a, context)).static]
        texts = [websocket.path_params["webId"]] if self.form == "stream" else params.get_list("webId")
        if not texts:
            raise PIError(400, "At least one 'webId' parameter is required.")
        streams = [resolve_stream(state, text) for text in texts]
        for stream in streams:
            if stream.static:
                raise PIError(
                    409, f"WebId represents a static attribute: '{stream.path}' has no data to follow."
                )
        return streams


async def _refuse(websocket: WebSocket, response: Response) -> None:
    """Answer the upgrade request over HTTP (401, 400, ...), or close with 1008 if the server cannot."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(response)
    else:
        await websocket.close(POLICY_VIOLATION)


async def _serve(
    websocket: WebSocket,
    receive: Receive,
    state: MockState,
    channel: Channel,
    instance: ChannelInstance,
) -> None:
    """Send the channel's messages until the client leaves or a fault ends the channel."""
    client_gone = asyncio.ensure_future(_until_disconnect(websocket))
    faults = state.faults.config
    number = int(instance.id.rsplit("-", 1)[1])
    poll_s = state.config.channel_poll_ms / 1000
    loop = asyncio.get_running_loop()
    repeats: list[tuple[float, bytes]] = []  # (when, message): messages to send again
    try:
        if channel.include_initial:
            await _send(websocket, instance, channel.initial())
        for index in itertools.count():
            drop, stall, repeat = channel_draws(faults.seed, number, index)
            wait_s = poll_s + (faults.channel_stall_s if stall < faults.channel_stall_rate else 0.0)
            done, _ = await asyncio.wait({client_gone}, timeout=wait_s)
            if done:
                return
            while repeats and repeats[0][0] <= loop.time():
                await _send(websocket, instance, repeats.pop(0)[1])
            message = channel.poll()
            if message is None:
                continue
            if drop < faults.channel_drop_rate and drop_connection(receive):
                return
            await _send(websocket, instance, message)
            if repeat < faults.channel_repeat_rate and message is not HEARTBEAT:
                repeats.append((loop.time() + faults.channel_repeat_s, message))
            if 0 < faults.channel_close_after <= instance.sent:
                await websocket.close(GOING_AWAY, "injected fault: the channel closes")
                return
    except (WebSocketDisconnect, ConnectionError):
        return
    finally:
        client_gone.cancel()
        with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect):
            await client_gone


async def _send(websocket: WebSocket, instance: ChannelInstance, message: bytes) -> None:
    if websocket.application_state is not WebSocketState.CONNECTED:
        raise WebSocketDisconnect(1006)
    await websocket.send_text(message.decode())
    instance.sent += 1
    instance.last_sent = _now_text()


async def _until_disconnect(websocket: WebSocket) -> None:
    """Read (and ignore) what the client sends until it leaves."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return


# Starlette routes added directly do not take the router's prefix.
router.add_websocket_route(API_PREFIX + "/streams/{webId}/channel", ChannelEndpoint("stream"))
router.add_websocket_route(API_PREFIX + "/streamsets/channel", ChannelEndpoint("ad hoc"))
router.add_websocket_route(API_PREFIX + "/streamsets/{webId}/channel", ChannelEndpoint("parent"))


@router.get("/channels/instances")
async def channel_instances(request: Request) -> Response:
    """The running channels: ``Items[{Id, StartTime, LastMessageSentTime, SentMessageCount}]``."""
    state: MockState = request.app.state.mock
    items = [
        {
            "Id": instance.id,
            "StartTime": instance.started,
            "LastMessageSentTime": instance.last_sent,
            "SentMessageCount": instance.sent,
        }
        for instance in list(state.channels.instances.values())
    ]
    return json_response({"Items": items, "Links": {}})
