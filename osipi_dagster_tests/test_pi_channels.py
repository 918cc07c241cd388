"""The channel client (``pi/channels.py``) against the mock over real WebSockets: values equal a recorded
read, many channels when URLs would be too long, reopening after faults, refusals raised."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pyarrow as pa
import pytest
import requests
from websockets.asyncio.server import ServerConnection, serve

from osipi_dagster.contract import to_ns
from osipi_dagster.mock.server import RunningMock
from osipi_dagster.pi import BasicAuth, PIWebAPIClient
from osipi_dagster.pi.channels import (
    ChannelFollower,
    ChannelLost,
    ChannelOpened,
    ChannelOptions,
    ChannelValues,
    channel_groups,
    decode_message,
)
from osipi_dagster.pi.errors import PIAuthenticationError, PIConfigurationError, PIResponseError
from osipi_dagster_tests.pi_helpers import raw_recorded, rows_of

FAST = {"channel_poll_ms": 50.0}


def _webs(mock: RunningMock, count: int, **headers: str) -> list[str]:
    server = requests.get(mock.api + "/dataservers", headers=headers, timeout=30).json()["Items"][0]
    answer = requests.get(server["Links"]["Points"], params={"maxCount": count}, headers=headers, timeout=30)
    return [point["WebId"] for point in answer.json()["Items"]]


def _now(mock: RunningMock) -> str:
    return requests.get(mock.url + "/admin/clock", timeout=30).json()["Now"]


def _advance(mock: RunningMock, interval: str) -> None:
    requests.post(mock.url + "/admin/clock", json={"advance": interval}, timeout=30).raise_for_status()


async def _gather(follower: ChannelFollower, enough: Callable[[list], bool], timeout: float = 60) -> list:
    events: list = []

    async def run() -> None:
        async for event in follower.events():
            events.append(event)
            if enough(events):
                return

    await asyncio.wait_for(run(), timeout)
    return events


def test_groups_keep_urls_short() -> None:
    webs = [f"F1DP{'x' * 60}{i:04d}" for i in range(200)]
    groups = channel_groups("ws://pi/piwebapi", webs, 2048)
    assert [web for group in groups for web in group] == webs
    assert len(groups) > 1
    for group in groups:
        assert len("ws://pi/piwebapi/streamsets/channel?" + "&".join(f"webId={w}" for w in group)) < 2048
    with pytest.raises(PIConfigurationError, match="max_url_length"):
        channel_groups("ws://pi/piwebapi", ["F1DP" + "x" * 600], 300)


def test_decode_accepts_both_documented_shapes_and_heartbeats() -> None:
    known = frozenset({"A", "B"})
    value = b'{"Timestamp": "2025-01-06T12:00:00Z", "Value": 1.5, "Good": true}'
    raw = b'{"Items":[{"WebId":"A","Items":[%s]},{"WebId":"B","Value":%s},{"WebId":"C","Items":[%s]}]}' % (
        value,
        value,
        value,
    )
    batch = decode_message(raw, known)
    assert batch.column("web_id").to_pylist() == ["A", "B"]
    assert decode_message('{"Links":{},"Items":[]}', known).num_rows == 0
    assert decode_message("", known).num_rows == 0
    with pytest.raises(PIResponseError):
        decode_message("<html>", known)


def test_values_of_several_channels_equal_the_recorded_read(make_mock: Callable[..., RunningMock]) -> None:
    mock = make_mock(late_share=0.3, edit_share=0.0, **FAST)
    webs = _webs(mock, 60)
    start = _now(mock)
    with PIWebAPIClient(mock.api) as client:
        follower = ChannelFollower(client, webs, ChannelOptions(max_url_length=1500))
        assert len(follower.groups) > 2

        start_ns = to_ns(start)

        async def scenario() -> list:
            gathered: list = []
            opened, received, expected = 0, 0, None
            async for event in follower.events():
                gathered.append(event)
                opened += isinstance(event, ChannelOpened)
                received += event.values.num_rows if isinstance(event, ChannelValues) else 0
                if expected is None and opened == len(follower.groups):
                    _advance(mock, "3m")  # every channel is open: what the move shows must reach them
                    end = _now(mock)
                    expected = sum(
                        1
                        for web in webs
                        for row in raw_recorded(mock.api, web, start, end)
                        if row[1] > start_ns
                    )
                if expected is not None and received >= expected:
                    return gathered
            return gathered

        events = asyncio.run(asyncio.wait_for(scenario(), 60))
    end = _now(mock)
    truth = sorted(
        row for web in webs for row in raw_recorded(mock.api, web, start, end) if row[1] > start_ns
    )
    got = sorted(rows_of(pa.Table.from_batches([e.values for e in events if isinstance(e, ChannelValues)])))
    # Late values stamped before the start arrive too (their outage flushed while the channels were open).
    assert [row for row in got if row[1] > start_ns] == truth
    assert all(row[1] <= start_ns for row in got if row not in set(truth))


def test_a_lost_channel_is_opened_again(make_mock: Callable[..., RunningMock]) -> None:
    mock = make_mock(**FAST)
    requests.put(mock.url + "/admin/faults", json={"channel_close_after": 1}, timeout=30)
    webs = _webs(mock, 3)
    options = ChannelOptions(heartbeat_rate=1, backoff_base_s=0.05)
    with PIWebAPIClient(mock.api) as client:
        follower = ChannelFollower(client, webs, options)
        events = asyncio.run(
            _gather(follower, lambda got: sum(isinstance(e, ChannelOpened) for e in got) >= 3)
        )
    lost = [e for e in events if isinstance(e, ChannelLost)]
    assert len(lost) >= 2
    assert "1001" in lost[0].reason
    opened = [e for e in events if isinstance(e, ChannelOpened)]
    assert [e.reopened for e in opened] == [False, True, True]


def test_silent_channel_is_reopened_after_the_idle_timeout(make_mock: Callable[..., RunningMock]) -> None:
    mock = make_mock(**FAST)
    requests.put(
        mock.url + "/admin/faults", json={"channel_stall_rate": 1.0, "channel_stall_s": 5}, timeout=30
    )
    webs = _webs(mock, 2)
    options = ChannelOptions(heartbeat_rate=1, idle_timeout_s=0.3, backoff_base_s=0.05)
    with PIWebAPIClient(mock.api) as client:
        events = asyncio.run(_gather(ChannelFollower(client, webs, options), lambda got: len(got) >= 2))
    assert isinstance(events[1], ChannelLost)
    assert "nothing received" in events[1].reason


def test_credentials_go_on_the_upgrade(make_mock: Callable[..., RunningMock]) -> None:
    mock = make_mock(auth="basic", **FAST)
    webs = _webs(mock, 2, Authorization="Basic cGl1c2VyOnBpcGFzc3dvcmQ=")
    options = ChannelOptions(include_initial_values=True)
    with PIWebAPIClient(mock.api, auth=BasicAuth("piuser", "pipassword")) as client:
        events = asyncio.run(_gather(ChannelFollower(client, webs, options), lambda got: len(got) >= 2))
    assert isinstance(events[1], ChannelValues)
    assert events[1].values.num_rows == 2
    wrong = PIWebAPIClient(mock.api, auth=BasicAuth("piuser", "wrong"))
    with wrong as client, pytest.raises(PIAuthenticationError) as refused:
        asyncio.run(_gather(ChannelFollower(client, webs), lambda got: False))
    assert "wrong" not in str(refused.value)


def test_refused_streams_raise_with_pi_messages(mock_pi: RunningMock) -> None:
    refusal = pytest.raises(PIResponseError, match="Unknown or invalid WebID")
    with PIWebAPIClient(mock_pi.api) as client, refusal as refused:
        asyncio.run(_gather(ChannelFollower(client, ["not-a-webid"]), lambda got: False))
    assert refused.value.status == 400


@pytest.mark.parametrize("compress", [True, False])
def test_channels_are_deflated_only_when_the_client_compresses(compress: bool) -> None:
    """A small WebSocket server in the test records the upgrade's extensions and sends one value."""
    offered: list[str | None] = []
    message = '{"Items":[{"WebId":"A","Items":[{"Timestamp":"2025-01-06T12:00:00Z","Value":1.5}]}]}'

    async def handler(connection: ServerConnection) -> None:
        offered.append(connection.request.headers.get("Sec-WebSocket-Extensions"))
        await connection.send(message)
        await connection.wait_closed()

    async def scenario() -> list:
        async with serve(handler, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            with PIWebAPIClient(f"http://127.0.0.1:{port}/piwebapi", compress=compress) as client:
                follower = ChannelFollower(client, ["A"])
                return await _gather(follower, lambda got: any(isinstance(e, ChannelValues) for e in got))

    events = asyncio.run(scenario())
    assert [e.values.num_rows for e in events if isinstance(e, ChannelValues)] == [1]
    assert ("permessage-deflate" in (offered[0] or "")) is compress
