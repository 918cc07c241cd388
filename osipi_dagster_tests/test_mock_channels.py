"""Channels on the mock over real WebSockets: message shape, initial values, values following the mock's
clock (late values and edits included), heartbeats, authentication of the upgrade, refusals, close codes and
injected faults (stream-updates-channels.md section 2)."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable

import orjson
import pytest
import requests
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from osipi_dagster.contract import to_ns
from osipi_dagster.mock.server import RunningMock

STREAM_FIELDS = ["WebId", "Name", "Path", "Links", "UnitsAbbreviation", "Items"]
VALUE_FIELDS = ["Timestamp", "Value", "UnitsAbbreviation", "Good", "Questionable", "Substituted", "Annotated"]
FLOW = "tag:=*Unit01.FIC0101.PV"  # Float32, 1 s
PRESSURE = "tag:=*Unit01.PI0103.PV"
FAST_POLL = {"channel_poll_ms": 50.0}


def _web(mock: RunningMock, query: str) -> str:
    answer = requests.get(mock.api + "/points/search", params={"query": query}, timeout=30)
    return answer.json()["Items"][0]["WebId"]


def _webs(mock: RunningMock, count: int) -> list[str]:
    server = requests.get(mock.api + "/dataservers", timeout=30).json()["Items"][0]
    points = requests.get(server["Links"]["Points"], params={"maxCount": count}, timeout=30).json()["Items"]
    return [point["WebId"] for point in points]


def _url(mock: RunningMock, webs: list[str], **params: str) -> str:
    base = mock.api.replace("http://", "ws://")
    query = "&".join([f"webId={web}" for web in webs] + [f"{key}={value}" for key, value in params.items()])
    return f"{base}/streamsets/channel?{query}"


def _advance(mock: RunningMock, interval: str) -> None:
    assert requests.post(mock.url + "/admin/clock", json={"advance": interval}, timeout=30).status_code == 200


def _receive(ws: ClientConnection, timeout: float = 10.0) -> dict:
    return orjson.loads(ws.recv(timeout=timeout))


def _collect(ws: ClientConnection, until: Callable[[dict], bool], timeout: float = 30.0) -> dict:
    """Values per (WebId, Timestamp) from the messages received until ``until(values)`` holds."""
    values: dict = {}
    deadline = time.monotonic() + timeout
    while not until(values):
        remaining = deadline - time.monotonic()
        assert remaining > 0, "the channel did not send the expected values in time"
        for stream in _receive(ws, remaining)["Items"]:
            for value in stream["Items"]:
                values[(stream["WebId"], value["Timestamp"])] = value
    return values


def _recorded(mock: RunningMock, web: str, start: str, end: str) -> dict:
    answer = requests.get(
        f"{mock.api}/streams/{web}/recorded",
        params={"startTime": start, "endTime": end, "maxCount": 100_000},
        timeout=30,
    )
    return {(web, value["Timestamp"]): value for value in answer.json()["Items"]}


def test_initial_values_are_the_snapshots_in_the_documented_shape(
    make_mock: Callable[..., RunningMock],
) -> None:
    mock = make_mock(**FAST_POLL)
    webs = _webs(mock, 5)
    with connect(_url(mock, webs, includeInitialValues="true")) as ws:
        message = _receive(ws)
    assert list(message) == ["Links", "Items"]
    assert [stream["WebId"] for stream in message["Items"]] == webs
    for stream in message["Items"]:
        assert list(stream) == STREAM_FIELDS
        assert stream["Links"]["Self"] == f"{mock.api}/points/{stream['WebId']}"
        snapshot = requests.get(f"{mock.api}/streams/{stream['WebId']}/value", timeout=30).json()
        assert stream["Items"] == [{key: snapshot[key] for key in VALUE_FIELDS}]


def test_single_stream_channel_sends_items_of_items(make_mock: Callable[..., RunningMock]) -> None:
    mock = make_mock(**FAST_POLL)
    web = _web(mock, FLOW)
    url = f"{mock.api.replace('http://', 'ws://')}/streams/{web}/channel?includeInitialValues=true"
    with connect(url) as ws:
        message = _receive(ws)
    assert message["Items"][0]["WebId"] == web
    assert list(message["Items"][0]["Items"][0]) == VALUE_FIELDS


def test_values_follow_the_clock_and_equal_the_recorded_values(make_mock: Callable[..., RunningMock]) -> None:
    """Everything that becomes visible while the clock moves 10 minutes is sent once, late values included,
    and equals what a recorded read of the window answers afterwards."""
    mock = make_mock(late_share=0.5, edit_share=0.0, **FAST_POLL)
    webs = _webs(mock, 40)
    start = requests.get(mock.url + "/admin/clock", timeout=30).json()["Now"]
    received: dict = {}
    with connect(_url(mock, webs)) as ws:
        for _ in range(10):
            _advance(mock, "1m")
        end = requests.get(mock.url + "/admin/clock", timeout=30).json()["Now"]
        truth: dict = {}
        for web in webs:
            truth |= {k: v for k, v in _recorded(mock, web, start, end).items() if k[1] != start}
        received = _collect(ws, lambda values: set(truth) <= set(values))
    assert {key: received[key] for key in truth} == truth
    # Late values of earlier windows arrive too; nothing after the clock's end is sent.
    assert all(timestamp <= end for _, timestamp in received)


def test_values_follow_an_accelerated_clock(make_mock: Callable[..., RunningMock]) -> None:
    """With ``clock_speed`` 120 the clock runs two minutes a second: a channel sends them as they pass."""
    mock = make_mock(clock_speed=120.0, late_share=0.0, edit_share=0.0, **FAST_POLL)
    web = _web(mock, FLOW)
    with connect(_url(mock, [web])) as ws:
        start = requests.get(mock.url + "/admin/clock", timeout=30).json()["Now"]
        started = time.monotonic()
        received = _collect(ws, lambda values: len(values) >= 240)  # four minutes of a 1 s point
        elapsed = time.monotonic() - started
        end = requests.get(mock.url + "/admin/clock", timeout=30).json()["Now"]
    assert elapsed < 30  # not real time: four minutes would take 240 s
    stamps = sorted(timestamp for _, timestamp in received)
    truth = _recorded(mock, web, stamps[0], end)
    assert to_ns(start) < to_ns(stamps[-1]) <= to_ns(end)
    assert received == {key: truth[key] for key in received}  # each as the recorded read answers it


def test_a_channel_by_parent_sends_its_attributes_values(make_mock: Callable[..., RunningMock]) -> None:
    """``/streamsets/{element}/channel``: the values of the element's attributes over PI points, in the
    order of its stream set (static attributes have nothing to send); a point is no parent (409)."""
    mock = make_mock(late_share=0.0, edit_share=0.0, **FAST_POLL)
    server = requests.get(mock.api + "/assetservers", timeout=30).json()["Items"][0]
    database = requests.get(server["Links"]["Databases"], timeout=30).json()["Items"][0]
    elements = requests.get(
        database["Links"]["Elements"], params={"searchFullHierarchy": "true", "maxCount": 20}, timeout=30
    ).json()["Items"]
    element = next(e for e in elements if e["TemplateName"])  # a unit: its attributes hold PI points
    attributes = requests.get(f"{mock.api}/elements/{element['WebId']}/attributes", timeout=30).json()
    followed = [a["WebId"] for a in attributes["Items"] if a["DataReferencePlugIn"] == "PI Point"]
    assert followed and len(followed) < len(attributes["Items"])
    base = mock.api.replace("http://", "ws://")
    with connect(f"{base}/streamsets/{element['WebId']}/channel?includeInitialValues=true") as ws:
        initial = _receive(ws)
        assert [item["WebId"] for item in initial["Items"]] == followed
        start = requests.get(mock.url + "/admin/clock", timeout=30).json()["Now"]
        _advance(mock, "10m")
        end = requests.get(mock.url + "/admin/clock", timeout=30).json()["Now"]
        truth: dict = {}
        for web in followed:
            truth |= {
                key: value for key, value in _recorded(mock, web, start, end).items() if key[1] != start
            }
        received = _collect(ws, lambda values: set(truth) <= set(values))
    assert received == truth
    with pytest.raises(InvalidStatus) as refused:
        connect(f"{base}/streamsets/{_web(mock, FLOW)}/channel")
    assert refused.value.response.status_code == 409


def test_an_edit_is_sent_substituted(make_mock: Callable[..., RunningMock]) -> None:
    mock = make_mock(edit_share=0.0, **FAST_POLL)
    web = _web(mock, PRESSURE)
    with connect(_url(mock, [web], heartbeatRate="1")) as ws:
        edit = {"Edits": [{"WebId": web, "Timestamp": "*-10m", "Value": 1234.5}]}
        answer = requests.post(mock.url + "/admin/edits", json=edit, timeout=30).json()
        stamp = answer["Edits"][0]["Timestamp"]
        values = _collect(ws, lambda values: (web, stamp) in values)
    assert values[(web, stamp)]["Value"] == 1234.5
    assert values[(web, stamp)]["Substituted"] is True


def test_a_delete_is_not_sent(make_mock: Callable[..., RunningMock]) -> None:
    """A TimedValue cannot say "deleted" and the Channels topic's sentence on deletions is cut off: the mock
    sends nothing for a delete (the stream leaves deletions to the closed-day batch run)."""
    mock = make_mock(edit_share=0.0, **FAST_POLL)
    web = _web(mock, PRESSURE)
    with connect(_url(mock, [web])) as ws:
        deleted = {"Edits": [{"WebId": web, "Timestamp": "*-10m", "Delete": True}]}
        answer = requests.post(mock.url + "/admin/edits", json=deleted, timeout=30).json()
        assert answer["Edits"][0]["Action"] == "Delete"
        edit = {"Edits": [{"WebId": web, "Timestamp": "*-20m", "Value": 1234.5}]}
        edited = requests.post(mock.url + "/admin/edits", json=edit, timeout=30).json()
        stamp = edited["Edits"][0]["Timestamp"]
        values = _collect(ws, lambda values: (web, stamp) in values)
    assert list(values) == [(web, stamp)]


def test_heartbeat_after_idle_polls_and_none_without_it(make_mock: Callable[..., RunningMock]) -> None:
    mock = make_mock(**FAST_POLL)  # a fixed clock: nothing new becomes visible
    web = _web(mock, FLOW)
    with connect(_url(mock, [web], heartbeatRate="3")) as ws:
        started = time.monotonic()
        assert _receive(ws) == {"Links": {}, "Items": []}
        assert time.monotonic() - started >= 0.1  # three polls of 50 ms
    with connect(_url(mock, [web])) as ws, pytest.raises(TimeoutError):
        ws.recv(timeout=0.5)


@pytest.mark.parametrize("auth", ["basic", "bearer"])
def test_upgrade_is_authenticated_as_http(make_mock: Callable[..., RunningMock], auth: str) -> None:
    mock = make_mock(auth=auth, **FAST_POLL)
    header = (
        "Basic " + base64.b64encode(b"piuser:pipassword").decode()
        if auth == "basic"
        else "Bearer mock-static-token"
    )
    web = _web_with(mock, FLOW, header)
    with pytest.raises(InvalidStatus) as refused:
        connect(_url(mock, [web]))
    assert refused.value.response.status_code == 401
    with pytest.raises(InvalidStatus):
        connect(_url(mock, [web]), additional_headers={"Authorization": header[:-1]})
    with connect(
        _url(mock, [web], includeInitialValues="true"), additional_headers={"Authorization": header}
    ) as ws:
        assert _receive(ws)["Items"][0]["WebId"] == web


def _web_with(mock: RunningMock, query: str, authorization: str) -> str:
    answer = requests.get(
        mock.api + "/points/search",
        params={"query": query},
        headers={"Authorization": authorization},
        timeout=30,
    )
    return answer.json()["Items"][0]["WebId"]


def test_bad_requests_are_refused_over_http(mock_pi: RunningMock) -> None:
    web = _web(mock_pi, FLOW)
    # (uvicorn's sans-I/O WebSocket protocol logs "ASGI callable returned without completing handshake" after
    # each refusal although it sent it: a log line, not a failure.)
    cases = [
        (_url(mock_pi, ["not-a-webid"]), 400, "Unknown or invalid WebID"),
        (_url(mock_pi, []), 400, "webId"),
        (_url(mock_pi, [web], heartbeatRate="often"), 400, "heartbeatRate"),
        (_url(mock_pi, [web], includeInitialValues="maybe"), 400, "includeInitialValues"),
    ]
    for url, status, message in cases:
        with pytest.raises(InvalidStatus) as refused:
            connect(url)
        response = refused.value.response
        assert response.status_code == status, url
        assert message in orjson.loads(response.body)["Errors"][0]


def test_client_close_ends_the_channel_and_instances_list_it(make_mock: Callable[..., RunningMock]) -> None:
    mock = make_mock(**FAST_POLL)
    web = _web(mock, FLOW)
    ws = connect(_url(mock, [web], includeInitialValues="true"))
    _receive(ws)
    instances = requests.get(mock.api + "/channels/instances", timeout=30).json()["Items"]
    assert len(instances) == 1
    assert instances[0]["SentMessageCount"] == 1
    assert list(instances[0]) == ["Id", "StartTime", "LastMessageSentTime", "SentMessageCount"]
    ws.close()
    assert ws.close_code == 1000
    deadline = time.monotonic() + 5
    while requests.get(mock.api + "/channels/instances", timeout=30).json()["Items"]:
        assert time.monotonic() < deadline, "the closed channel is still listed"
        time.sleep(0.05)


def test_injected_close_is_going_away(make_mock: Callable[..., RunningMock]) -> None:
    mock = make_mock(**FAST_POLL)
    requests.put(mock.url + "/admin/faults", json={"channel_close_after": 2}, timeout=30)
    web = _web(mock, FLOW)
    with connect(_url(mock, [web], heartbeatRate="1")) as ws:
        _receive(ws)
        _receive(ws)
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001


def test_injected_drop_aborts_without_close_frame(make_mock: Callable[..., RunningMock]) -> None:
    mock = make_mock(**FAST_POLL)
    requests.put(mock.url + "/admin/faults", json={"channel_drop_rate": 1.0}, timeout=30)
    web = _web(mock, FLOW)
    with connect(_url(mock, [web], heartbeatRate="1")) as ws, pytest.raises(ConnectionClosed) as closed:
        ws.recv(timeout=10)
    assert closed.value.rcvd is None  # no close frame: an abnormal closure (1006)


def test_injected_stall_delays_then_delivers(make_mock: Callable[..., RunningMock]) -> None:
    mock = make_mock(**FAST_POLL)
    requests.put(
        mock.url + "/admin/faults", json={"channel_stall_rate": 1.0, "channel_stall_s": 1.0}, timeout=30
    )
    web = _web(mock, FLOW)
    with connect(_url(mock, [web])) as ws:
        _advance(mock, "5s")
        started = time.monotonic()
        message = _receive(ws)
    assert time.monotonic() - started >= 0.5
    assert len(message["Items"][0]["Items"]) == 5


def test_injected_repeat_sends_a_message_again_later(make_mock: Callable[..., RunningMock]) -> None:
    mock = make_mock(**FAST_POLL)
    faults = {"channel_repeat_rate": 1.0, "channel_repeat_s": 0.5}
    requests.put(mock.url + "/admin/faults", json=faults, timeout=30).raise_for_status()
    web = _web(mock, FLOW)
    with connect(_url(mock, [web])) as ws:
        _advance(mock, "3s")
        first = _receive(ws)
        started = time.monotonic()
        again = _receive(ws)
    assert again == first  # the same values, timestamps and flags
    assert time.monotonic() - started >= 0.3
