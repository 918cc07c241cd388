"""Edits, deletes and late arrivals on the mock over real HTTP: the events stream updates report, and every
read reflecting them from the moment they happen on the mock's clock."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable

import orjson
import pytest
import requests

from osipi_dagster.mock.config import MockConfig
from osipi_dagster.mock.routes.streams import resolve_stream
from osipi_dagster.mock.server import RunningMock
from osipi_dagster.mock.state import MockState
from osipi_dagster.mock.timeparse import NS, format_time, parse_time, zone
from osipi_dagster_tests.test_mock_updates import FLOW, advance, read, read_set, register

HOUR_NS = 3600 * NS


def _ns(text: str) -> int:
    return parse_time(text, 0, zone("UTC"))


def _point(mock: RunningMock, query: str) -> dict:
    return requests.get(mock.api + "/points/search", params={"query": query}, timeout=30).json()["Items"][0]


def edit(mock: RunningMock, *edits: dict) -> requests.Response:
    return requests.post(mock.url + "/admin/edits", json={"Edits": list(edits)}, timeout=30)


def recorded(mock: RunningMock, web: str, start: str, end: str, **params: object) -> list[dict]:
    query = {"startTime": start, "endTime": end, "maxCount": 150_000, **params}
    answer = requests.get(f"{mock.api}/streams/{web}/recorded", params=query, timeout=60)
    assert answer.status_code == 200, answer.text
    return answer.json()["Items"]


def _get(mock: RunningMock, route: str, **params: object) -> dict:
    answer = requests.get(mock.api + route, params=params, timeout=60)
    assert answer.status_code == 200, answer.text
    return answer.json()


# -- admin edits ---------------------------------------------------------------------------------------------


def test_an_edit_and_a_delete_of_a_closed_day(make_mock: Callable[..., RunningMock]) -> None:
    mock = make_mock(edit_share=0)
    web = _point(mock, FLOW)["WebId"]
    marker = register(mock, web).json()["LatestMarker"]
    before = recorded(mock, web, "2025-01-05T10:00:00Z", "2025-01-05T10:00:02Z")
    answer = edit(
        mock,
        {"WebId": web, "Timestamp": "2025-01-05T10:00:00Z", "Value": 1234.5},
        {"webid": web, "timestamp": "2025-01-05T10:00:01Z", "delete": True},  # field names in any case
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "Now": "2025-01-06T12:00:00Z",
        "Edits": [
            {"WebId": web, "Timestamp": "2025-01-05T10:00:00Z", "Action": "Update"},
            {"WebId": web, "Timestamp": "2025-01-05T10:00:01Z", "Action": "Delete"},
        ],
    }
    events = read(mock, marker).json()["Events"]  # the clock has not moved: the edits alone
    edited = {"Timestamp": "2025-01-05T10:00:00Z", "Value": 1234.5, "UnitsAbbreviation": "m3/h", "Good": True,
              "Questionable": False, "Substituted": True, "Annotated": False}  # fmt: skip
    assert events == [
        {"Action": "Update", "PreviousEventAction": "None", **edited},
        {"Action": "Delete", "PreviousEventAction": "None", **before[1]},
    ]
    after = recorded(mock, web, "2025-01-05T10:00:00Z", "2025-01-05T10:00:02Z")
    assert after == [edited, before[2]]


def test_every_read_reflects_edits_and_deletes(make_mock: Callable[..., RunningMock]) -> None:
    mock = make_mock(edit_share=0)
    web = _point(mock, FLOW)["WebId"]
    window = {"startTime": "2025-01-05T09:59:00Z", "endTime": "2025-01-05T10:01:00Z"}
    count_before = _get(mock, f"/streams/{web}/summary", summaryType="Count", **window)["Items"][0]
    following = recorded(mock, web, "2025-01-05T10:00:02Z", "2025-01-05T10:00:02Z")[0]["Value"]
    assert edit(
        mock,
        {"WebId": web, "Timestamp": "2025-01-05T10:00:00Z", "Value": 1234.5},
        {"WebId": web, "Timestamp": "2025-01-05T10:00:01Z", "Delete": True},
        {"WebId": web, "Timestamp": "*", "Value": 99.0},  # the snapshot
    ).ok
    count = _get(mock, f"/streams/{web}/summary", summaryType="Count", **window)["Items"][0]
    assert count["Value"]["Value"] == count_before["Value"]["Value"] - 1
    maximum = _get(mock, f"/streams/{web}/summary", summaryType="Maximum", **window)["Items"][0]
    assert maximum["Value"]["Value"] == 1234.5 and maximum["Value"]["Timestamp"] == "2025-01-05T10:00:00Z"
    plot = _get(mock, f"/streams/{web}/plot", intervals=1, **window)["Items"]
    assert 1234.5 in [v["Value"] for v in plot]
    halfway = _get(mock, f"/streams/{web}/interpolated", startTime="2025-01-05T10:00:01Z",
                   endTime="2025-01-05T10:00:01Z")["Items"][0]  # fmt: skip
    assert halfway["Value"] == pytest.approx(1234.5 + (following - 1234.5) / 2, rel=1e-6)
    assert _get(mock, f"/streams/{web}/value", time="2025-01-05T10:00:00Z")["Value"] == 1234.5
    exact = _get(mock, f"/streams/{web}/recordedattime", time="2025-01-05T10:00:01Z", retrievalMode="Exact")
    assert exact["Good"] is False  # No Data: the value is gone
    assert _get(mock, f"/streams/{web}/value")["Value"] == 99.0
    assert _get(mock, f"/streams/{web}/end")["Value"] == 99.0
    direct = recorded(mock, web, "2025-01-05T10:00:00Z", "2025-01-05T10:00:02Z")
    assert [v["Timestamp"][17:19] for v in direct] == ["00", "02"] and direct[0]["Value"] == 1234.5
    query = {"webId": web, "startTime": "2025-01-05T10:00:00Z", "endTime": "2025-01-05T10:00:02Z"}
    assert _get(mock, "/streamsets/recorded", **query)["Items"][0]["Items"] == direct
    resource = (
        f"{mock.api}/streams/{web}/recorded?startTime=2025-01-05T10:00:00Z&endTime=2025-01-05T10:00:02Z"
    )
    batch = requests.post(
        mock.api + "/batch",
        json={"r": {"Method": "GET", "Resource": resource}},
        headers={"X-Requested-With": "t"},
    ).json()
    assert batch["r"]["Content"]["Items"] == direct


def test_an_edit_exists_from_the_moment_it_happened(make_mock: Callable[..., RunningMock]) -> None:
    mock = make_mock(edit_share=0)
    web = _point(mock, FLOW)["WebId"]
    original = recorded(mock, web, "*-1h", "*-1h")
    assert edit(mock, {"WebId": web, "Timestamp": "*-1h", "Value": -5.0}).ok
    assert recorded(mock, web, "2025-01-06T11:00:00Z", "2025-01-06T11:00:00Z")[0]["Value"] == -5.0
    mock.state.clock.set(_ns("2025-01-06T11:59:59Z"))  # before the edit happened
    assert recorded(mock, web, "2025-01-06T11:00:00Z", "2025-01-06T11:00:00Z") == original
    mock.state.clock.set(_ns("2025-01-06T12:00:00Z"))
    assert recorded(mock, web, "2025-01-06T11:00:00Z", "2025-01-06T11:00:00Z")[0]["Value"] == -5.0


def test_new_values_are_inserted_or_added(make_mock: Callable[..., RunningMock]) -> None:
    mock = make_mock(edit_share=0)
    point = _point(mock, "tag:=*Unit01.FIC0101.SP")  # 60 s
    web = point["WebId"]
    mock.state.clock.set(_ns("2025-01-06T12:00:30Z"))
    marker = register(mock, web).json()["LatestMarker"]
    answer = edit(
        mock,
        {"WebId": web, "Timestamp": "2025-01-06T11:59:30Z", "Value": 10},  # before the last value
        {"WebId": web, "Timestamp": "2025-01-06T12:00:30Z", "Value": 20},  # after it
    ).json()
    assert [e["Action"] for e in answer["Edits"]] == ["Insert", "Add"]
    events = read(mock, marker).json()["Events"]
    assert [(e["Action"], e["PreviousEventAction"], e["Value"]) for e in events] == [
        ("Insert", "None", 10.0),
        ("Add", "PreviousEventArchived", 20.0),
    ]
    values = recorded(mock, web, "2025-01-06T11:59:00Z", "*")
    assert [(v["Timestamp"], v["Value"]) for v in values if v["Substituted"]] == [
        ("2025-01-06T11:59:30Z", 10.0),
        ("2025-01-06T12:00:30Z", 20.0),
    ]


def test_digital_and_string_edits(make_mock: Callable[..., RunningMock]) -> None:
    mock = make_mock(edit_share=0)
    mode = _point(mock, "tag:=*Unit01.FIC0101.MODE")["WebId"]
    batch = _point(mock, "tag:=*Unit01.BATCH01.ID")["WebId"]
    last_mode = recorded(mock, mode, "*-1d", "*")[-1]["Timestamp"]
    last_batch = recorded(mock, batch, "*-2d", "*")[-1]["Timestamp"]
    assert edit(
        mock,
        {"WebId": mode, "Timestamp": last_mode, "Value": "manual"},
        {"WebId": batch, "Timestamp": last_batch, "Value": "B-FIXED"},
    ).ok
    assert recorded(mock, mode, last_mode, last_mode)[0]["Value"] == {
        "Name": "Manual",
        "Value": 0,
        "IsSystem": False,
    }
    assert recorded(mock, batch, last_batch, last_batch)[0]["Value"] == "B-FIXED"
    assert edit(mock, {"WebId": mode, "Timestamp": last_mode, "Value": 2}).ok  # a state's code
    assert recorded(mock, mode, last_mode, last_mode)[0]["Value"]["Name"] == "Cascade"


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"Timestamp": "*-1h", "Value": 1}, "needs a WebId and a Timestamp"),
        ({"WebId": "{flow}", "Timestamp": "*-1h"}, 'either a "Value" or "Delete": true'),
        ({"WebId": "{flow}", "Timestamp": "*-1h", "Value": 1, "Delete": True}, "either a"),
        ({"WebId": "{flow}", "Timestamp": "*-1h", "Value": 1, "Good": False}, "unknown fields Good"),
        ({"WebId": "{flow}", "Timestamp": "*+1h", "Value": 1}, "outside the stream's values"),
        ({"WebId": "{flow}", "Timestamp": "2020-01-01T00:00:00Z", "Value": 1}, "after the archive start"),
        ({"WebId": "{flow}", "Timestamp": "*-1h", "Value": "high"}, "is not a finite number"),
        ({"WebId": "{flow}", "Timestamp": "*-1h+0.5s", "Delete": True}, "has none there"),
        ({"WebId": "{mode}", "Timestamp": "*-1h", "Value": "Sideways"}, "is not a state of Modes"),
        ({"WebId": "{hours}", "Timestamp": "*-1h", "Value": 1.5}, "is not an Int32"),
        ({"WebId": "{static}", "Timestamp": "*-1h", "Value": 1}, "static attribute"),
        ({"WebId": "junk", "Timestamp": "*-1h", "Value": 1}, "Unknown or invalid WebID"),
        ({"WebId": "{flow}", "Timestamp": "soon", "Value": 1}, "Cannot parse time string"),
        ("not an object", "must be an object"),
    ],
)
def test_a_bad_edit_changes_nothing(
    make_mock: Callable[..., RunningMock], item: object, message: str
) -> None:
    mock = make_mock(edit_share=0)
    webs = {
        "flow": _point(mock, FLOW)["WebId"],
        "mode": _point(mock, "tag:=*Unit01.FIC0101.MODE")["WebId"],
        "hours": _point(mock, "tag:=*Unit01.P0106.HOURS")["WebId"],
        "static": _static_attribute(mock),
    }
    if isinstance(item, dict):
        item = {k: v.format(**webs) if isinstance(v, str) else v for k, v in item.items()}
    marker = register(mock, webs["flow"]).json()["LatestMarker"]
    before = recorded(mock, webs["flow"], "*-1h", "*-1h")
    good = {"WebId": webs["flow"], "Timestamp": "*-1h", "Value": 7.0}
    answer = edit(mock, good, item)
    assert answer.status_code == 400 and answer.json()["Errors"][0].startswith("Edits[1] ")
    assert message in answer.json()["Errors"][0], answer.json()
    assert recorded(mock, webs["flow"], "*-1h", "*-1h") == before  # the good first edit was withdrawn too
    assert read(mock, marker).json()["Events"] == []


def _static_attribute(mock: RunningMock) -> str:
    server = requests.get(mock.api + "/assetservers", timeout=30).json()["Items"][0]
    database = requests.get(server["Links"]["Databases"], timeout=30).json()["Items"][0]
    elements = requests.get(database["Links"]["Elements"], params={"searchFullHierarchy": "true"}, timeout=30)
    element = next(e for e in elements.json()["Items"] if not e["HasChildren"])
    values = requests.get(f"{mock.api}/streamsets/{element['WebId']}/value", timeout=30).json()["Items"]
    return next(s["WebId"] for s in values if s["Value"]["Timestamp"] == "1970-01-01T00:00:00Z")


def test_an_edits_request_must_list_edits(make_mock: Callable[..., RunningMock]) -> None:
    mock = make_mock(edit_share=0)
    for body in ({}, {"Edits": []}, {"Edits": {}}, []):
        answer = requests.post(mock.url + "/admin/edits", json=body, timeout=30)
        assert answer.status_code == 400 and answer.json()["Errors"]


# -- generated edits and late arrivals -----------------------------------------------------------------------


def _not_one_hertz(mock: RunningMock, count: int) -> list[str]:
    """WebIDs of ``count`` points of every kind but the 1 s ones (a day of those is 86,400 values)."""
    points = [p for p in mock.state.archive.points if p.sampling != "1s"][:count]
    return [mock.state.archive.point_webid(p) for p in points]


def test_generated_edits_reach_closed_days(make_mock: Callable[..., RunningMock]) -> None:
    mock = make_mock(edit_share=1.0)  # every point gets one edit an hour
    webs = _not_one_hertz(mock, 40)
    markers = [item["LatestMarker"] for item in register(mock, *webs).json()["Items"]]
    edits = []
    for _ in range(6):
        advance(mock, "10m")
        items = read_set(mock, *markers).json()["Items"]
        markers = [item["LatestMarker"] for item in items]
        edits += [(web, e) for web, item in zip(webs, items, strict=True) for e in item["Events"]
                  if e["Action"] in ("Update", "Delete")]  # fmt: skip
    assert {e["Action"] for _, e in edits} == {"Update", "Delete"}
    assert all(e["Timestamp"] < "2025-01-06T13:00:00Z" for _, e in edits)  # past values only
    assert any(e["Timestamp"] < "2025-01-06T12:00:00Z" for _, e in edits)  # some from before registering
    assert any(e["Timestamp"] < "2025-01-06T00:00:00Z" for _, e in edits)  # some of a closed day
    assert all(e["Substituted"] and e["Good"] for _, e in edits if e["Action"] == "Update")
    last = {}
    for web, event in edits:
        last[(web, event["Timestamp"])] = event
    for (web, stamp), event in last.items():
        now = recorded(mock, web, stamp, stamp)
        if event["Action"] == "Delete":
            assert now == [] or now[0]["Timestamp"] != stamp
        else:
            assert [{k: v for k, v in event.items() if k not in ("Action", "PreviousEventAction")}] == now


def _late_start(state: MockState, points: list, after: int) -> int:
    """A whole hour from ``after`` such that one of ``points`` receives late values in the 3.5 h after it."""
    data = state.archive.data
    for hour in range(48):
        start = after + hour * HOUR_NS
        for point in points:
            block, moments = data.arrivals(point, start, start + 3 * HOUR_NS)
            if (moments > block.ts).any():
                return start
    raise AssertionError("no late arrival within two days")


def _apply(truth: dict[str, list], event: dict) -> None:
    """Apply one event to a stream's values (timestamp -> values), as a client would."""
    value = orjson.dumps({k: v for k, v in event.items() if k not in ("Action", "PreviousEventAction")})
    stamp = event["Timestamp"]
    if event["Action"] in ("Add", "Insert"):
        truth[stamp].append(value)
    elif event["Action"] == "Update":
        truth[stamp] = [value]
    else:
        assert truth.pop(stamp), event  # a Delete removes values that were there


def _truth(mock: RunningMock, web: str, start: str, end: str) -> dict[str, list]:
    found: dict[str, list] = defaultdict(list)
    for value in recorded(mock, web, start, end):
        found[value["Timestamp"]].append(orjson.dumps(value))
    return found


def test_applying_the_events_gives_the_later_truth(make_mock: Callable[..., RunningMock]) -> None:
    """Whatever happens (new, late, edited, deleted values, generated or posted), the values read at the
    registration plus the events read since are the values read now."""
    mock = make_mock(edit_share=0.3, late_share=0.5)
    state = mock.state
    forecast = next(p for p in state.archive.points if p.future)
    five_seconds = next(p for p in state.archive.points if p.sampling == "5s" and p.multi)
    sparse = [p for p in state.archive.points if p.sampling in ("60s", "irregular")][:24]
    chosen = [*sparse, five_seconds, forecast]
    assert {p.point_type for p in chosen} == {"Float32", "Float64", "Int32", "Digital", "String"}
    assert any(p.multi for p in chosen) and any(p.late for p in chosen)
    webs = [state.archive.point_webid(p) for p in chosen]
    start = _late_start(state, [p for p in chosen if p.late], state.clock.now_ns())
    state.clock.set(start)
    # Generated edits reach at most 68 h + 1 day back; a Future point's values 7 days ahead.
    window = (format_time(start - 4 * 24 * HOUR_NS), format_time(start + 8 * 24 * HOUR_NS))
    truths = [_truth(mock, web, *window) for web in webs]
    markers = [item["LatestMarker"] for item in register(mock, *webs).json()["Items"]]
    actions: dict[str, int] = defaultdict(int)
    for step in range(30):
        advance(mock, "7m")
        if step == 10:  # a person corrects, deletes and adds values while the stream is read
            values = recorded(mock, webs[0], "*-3d", "*-3d+1h")
            assert edit(
                mock,
                {"WebId": webs[0], "Timestamp": values[0]["Timestamp"], "Value": 1.0},
                {"WebId": webs[0], "Timestamp": values[1]["Timestamp"], "Delete": True},
                {"WebId": webs[0], "Timestamp": "*-2d+0.5s", "Value": 2.0},
            ).ok
        items = read_set(mock, *markers).json()["Items"]
        for truth, item in zip(truths, items, strict=True):
            for event in item["Events"]:
                actions[event["Action"]] += 1
                _apply(truth, event)
        markers = [item["LatestMarker"] for item in items]
    assert set(actions) == {"Add", "Insert", "Update", "Delete"}, dict(actions)
    for web, truth in zip(webs, truths, strict=True):
        assert {k: sorted(v) for k, v in truth.items() if v} == {
            k: sorted(v) for k, v in _truth(mock, web, *window).items()
        }, web


def test_late_values_arrive_as_inserts(make_mock: Callable[..., RunningMock]) -> None:
    mock = make_mock(late_share=1.0, edit_share=0)
    point = next(p for p in mock.state.archive.points if p.sampling == "5s")
    start = _late_start(mock.state, [point], mock.state.clock.now_ns())
    block, moments = mock.state.archive.data.arrivals(point, start, start + 3 * HOUR_NS)
    late = moments > block.ts
    arrival = int(moments[late][0])
    web = mock.state.archive.point_webid(point)
    mock.state.clock.set(arrival - 30 * NS)
    hidden = recorded(mock, web, format_time(int(block.ts[late][0])), format_time(int(block.ts[late][0])))
    assert hidden == []  # not arrived yet
    marker = register(mock, web).json()["LatestMarker"]
    advance(mock, "1m")
    events = read(mock, marker).json()["Events"]
    inserts = [e for e in events if e["Action"] == "Insert"]
    assert inserts and all(_ns(e["Timestamp"]) < arrival - 30 * NS for e in inserts)
    assert all(e["PreviousEventAction"] == "None" for e in inserts)
    stamps = [e["Timestamp"] for e in inserts]
    assert stamps == sorted(stamps) and stamps[0] == format_time(int(block.ts[late][0]))
    shown = recorded(mock, web, stamps[0], stamps[-1])
    assert [{k: e[k] for k in shown[0]} for e in inserts] == [v for v in shown if v["Timestamp"] in stamps]


# -- cost ---------------------------------------------------------------------------------------------------


def test_reading_ten_thousand_unchanged_markers_is_cheap() -> None:
    """The server's CPU for 10,000 markers that have nothing new: registry, events and JSON, in process."""
    state = MockState(MockConfig(tags=10_000, now="2025-01-06T12:00:00Z", archive_days=30))
    registry = state.updates
    markers = []
    for point in state.archive.points:
        key = state.archive.point_webid(point)
        markers.append(registry.register("", key, resolve_stream(state, key))[1])
    began = time.process_time()
    items = []
    for marker in markers:
        reading = registry.read("", marker)
        events = registry.feed.events(reading.registration.point, reading.since, reading.until)
        items.append({"RequestedMarker": marker, "LatestMarker": reading.latest, "Events": events})
    body = orjson.dumps({"Items": items})
    assert time.process_time() - began < 1.0
    assert body.count(b'"Events":[]') == 10_000
