"""The Stream and StreamSet routes of the mock over real HTTP: shapes, defaults, limits, errors, the clock."""

from __future__ import annotations

import pytest
import requests

from osipi_dagster.mock import webids
from osipi_dagster.mock.server import RunningMock
from osipi_dagster.mock.timeparse import NS, parse_time, zone

NOW = "2025-01-06T12:00:00Z"
TIMED_VALUE = ["Timestamp", "Value", "UnitsAbbreviation", "Good", "Questionable", "Substituted", "Annotated"]


def _ns(text: str) -> int:
    return parse_time(text, 0, zone("UTC"))


def _get(mock: RunningMock, route: str, **params) -> requests.Response:
    return requests.get(mock.api + route, params=params, timeout=60)


def _point(mock: RunningMock, query: str) -> dict:
    return _get(mock, "/points/search", query=query).json()["Items"][0]


def _web(mock: RunningMock, query: str) -> str:
    return _point(mock, query)["WebId"]


FLOW = "tag:=*Unit01.FIC0101.PV"  # Float32, 1 s


def test_recorded_defaults_and_shape(mock_pi: RunningMock) -> None:
    body = _get(mock_pi, f"/streams/{_web(mock_pi, FLOW)}/recorded").json()
    assert list(body) == ["Links", "Items", "UnitsAbbreviation"] and body["UnitsAbbreviation"] == "m3/h"
    items = body["Items"]
    assert len(items) == 1000  # a day of 1 s data, truncated silently at the default maxCount
    assert items[0]["Timestamp"] == "2025-01-05T12:00:00Z"  # startTime *-1d
    assert list(items[0]) == TIMED_VALUE and isinstance(items[0]["Value"], float)


def test_same_request_same_bytes_and_windows_agree(mock_pi: RunningMock) -> None:
    route = f"/streams/{_web(mock_pi, FLOW)}/recorded"
    window = {"startTime": "2025-01-06T00:00:00Z", "endTime": "2025-01-06T01:00:00Z", "maxCount": 5000}
    first, second = _get(mock_pi, route, **window), _get(mock_pi, route, **window)
    assert first.content == second.content
    part = _get(
        mock_pi, route, startTime="2025-01-06T00:30:00Z", endTime="2025-01-06T02:00:00Z", maxCount=5000
    )
    whole = {v["Timestamp"]: v for v in first.json()["Items"]}
    overlap = [v for v in part.json()["Items"] if v["Timestamp"] <= "2025-01-06T01:00:00Z"]
    assert overlap and all(whole[v["Timestamp"]] == v for v in overlap)


def test_descending_when_end_before_start(mock_pi: RunningMock) -> None:
    route = f"/streams/{_web(mock_pi, FLOW)}/recorded"
    up = _get(mock_pi, route, startTime="*-1h", endTime="*", maxCount=10000).json()["Items"]
    down = _get(mock_pi, route, startTime="*", endTime="*-1h", maxCount=10).json()["Items"]
    assert down == up[::-1][:10]


def test_boundary_types(mock_pi: RunningMock) -> None:
    route = f"/streams/{_web(mock_pi, 'tag:=*Unit01.FIC0101.SP')}/recorded"  # 60 s
    window = {"startTime": "2025-01-06T10:00:30Z", "endTime": "2025-01-06T10:05:30Z"}
    inside = _get(mock_pi, route, **window).json()["Items"]
    outside = _get(mock_pi, route, boundaryType="Outside", **window).json()["Items"]
    interpolated = _get(mock_pi, route, boundaryType="interpolated", **window).json()["Items"]
    assert [v["Timestamp"] for v in inside] == [f"2025-01-06T10:0{m}:00Z" for m in range(1, 6)]
    assert (
        outside[0]["Timestamp"] == "2025-01-06T10:00:00Z"
        and outside[-1]["Timestamp"] == "2025-01-06T10:06:00Z"
    )
    assert interpolated[0]["Timestamp"] == "2025-01-06T10:00:30Z" and len(interpolated) == 7
    assert _get(mock_pi, route, boundaryType="Sideways").status_code == 400


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"maxCount": 150_001}, 400),
        ({"maxCount": 0}, 400),
        ({"maxCount": "many"}, 400),
        ({"startTime": "yesterday-ish"}, 400),
        ({"endTime": "2025-13-45"}, 400),
        ({"filterExpression": "'.' > 5"}, 400),
        ({"maxCount": 150_000}, 200),
    ],
)
def test_recorded_limits_and_bad_input(mock_pi: RunningMock, params: dict, status: int) -> None:
    response = _get(mock_pi, f"/streams/{_web(mock_pi, FLOW)}/recorded", **params)
    assert response.status_code == status
    if status == 400:
        assert list(response.json()) == ["Errors"]


def test_bad_and_unknown_webids(mock_pi: RunningMock) -> None:
    bad = _get(mock_pi, "/streams/F1DPbad/recorded")
    assert bad.status_code == 400
    assert bad.json() == {"Errors": ["Unknown or invalid WebID format: 'F1DPbad'."]}
    guid = mock_pi.state.archive.server_guid
    unknown = webids.encode("DP", (guid,), "PIMOCK\\NOPE", point_id=987_654)
    assert _get(mock_pi, f"/streams/{unknown}/value").status_code == 404
    path_only = webids.encode("DP", (), "PIMOCK\\NOPE", webid_type="PathOnly")
    assert _get(mock_pi, f"/streams/{path_only}/end").status_code == 404
    server = webids.encode("DS", (guid,), "PIMOCK")
    assert _get(mock_pi, f"/streams/{server}/recorded").status_code == 400


def test_selected_fields(mock_pi: RunningMock) -> None:
    route = f"/streams/{_web(mock_pi, FLOW)}/recorded"
    body = _get(mock_pi, route, maxCount=3, selectedFields="Items.Timestamp;Items.Value;Items.Good").json()
    assert list(body) == ["Items"] and all(list(v) == ["Timestamp", "Value", "Good"] for v in body["Items"])
    value = _get(mock_pi, f"/streams/{_web(mock_pi, FLOW)}/value", selectedFields="Value").json()
    assert list(value) == ["Value"]


def test_digital_and_system_states(mock_pi: RunningMock) -> None:
    mode = _get(mock_pi, f"/streams/{_web(mock_pi, 'tag:=*Unit01.FIC0101.MODE')}/recorded", maxCount=20)
    values = [v["Value"] for v in mode.json()["Items"]]
    assert values and all(set(v) == {"Name", "Value", "IsSystem"} for v in values)
    assert {v["Name"] for v in values if not v["IsSystem"]} <= {"Manual", "Auto", "Cascade"}
    first = _get(mock_pi, f"/streams/{_web(mock_pi, FLOW)}/recorded", startTime="*-40d", maxCount=1).json()
    assert first["Items"][0]["Value"] == {"Name": "Pt Created", "Value": 253, "IsSystem": True}
    assert first["Items"][0]["Good"] is False


def test_sub_second_and_several_values_at_one_timestamp(mock_pi: RunningMock) -> None:
    archive = mock_pi.state.archive
    multi = next(p for p in archive.points if p.multi and p.sampling in ("1s", "5s"))
    route = f"/streams/{archive.point_webid(multi)}/recorded"
    stamps = [
        v["Timestamp"] for v in _get(mock_pi, route, startTime="*-2h", maxCount=150_000).json()["Items"]
    ]
    assert len(stamps) > len(set(stamps))
    fractions = []
    for point in archive.points[:40]:
        items = _get(mock_pi, f"/streams/{archive.point_webid(point)}/recorded", maxCount=5).json()["Items"]
        fractions += [v["Timestamp"] for v in items if "." in v["Timestamp"]]
    assert any(len(t.split(".")[1]) == 8 for t in fractions)  # 7 digits and the Z


def test_interpolated_plot_summary_value_end(mock_pi: RunningMock) -> None:
    web = _web(mock_pi, FLOW)
    interpolated = _get(mock_pi, f"/streams/{web}/interpolated", startTime="*-1d", interval="2h").json()[
        "Items"
    ]
    assert len(interpolated) == 13 and interpolated[-1]["Timestamp"] == NOW
    assert _get(mock_pi, f"/streams/{web}/interpolated", interval="soon").status_code == 400
    plot = _get(mock_pi, f"/streams/{web}/plot").json()["Items"]  # 24 intervals over *-1d..*
    assert 48 <= len(plot) <= 120
    summary = _get(mock_pi, f"/streams/{web}/summary", summaryType=["Average", "Count", "Maximum"]).json()
    types = [item["Type"] for item in summary["Items"]]
    assert types == ["Average", "Count", "Maximum"]
    assert summary["Items"][1]["Value"]["Value"] > 80_000
    default = _get(mock_pi, f"/streams/{web}/summary").json()["Items"]
    assert [item["Type"] for item in default] == ["Total"]
    hourly = _get(mock_pi, f"/streams/{web}/summary", summaryType="Count", summaryDuration="6h").json()[
        "Items"
    ]
    assert len(hourly) == 4
    digital = _web(mock_pi, "tag:=*Unit01.FIC0101.MODE")
    assert _get(mock_pi, f"/streams/{digital}/summary", summaryType="Count").status_code == 200
    average = _get(mock_pi, f"/streams/{digital}/summary", summaryType="Average")  # see test_mock_summaries
    assert average.status_code == 200 and average.json()["Items"][0]["Value"]["Errors"]
    value = _get(mock_pi, f"/streams/{web}/value").json()
    assert list(value) == TIMED_VALUE and value["Timestamp"] == NOW
    at = _get(mock_pi, f"/streams/{web}/value", time="2025-01-06T06:00:00.5Z").json()
    assert at["Timestamp"] == "2025-01-06T06:00:00.5Z"
    assert _get(mock_pi, f"/streams/{web}/end").json()["Timestamp"] == NOW
    exact = _get(
        mock_pi, f"/streams/{web}/recordedattime", time="2025-01-06T06:00:00.5Z", retrievalMode="After"
    )
    assert exact.json()["Timestamp"] == "2025-01-06T06:00:01Z"
    assert _get(mock_pi, f"/streams/{web}/recordedattime").status_code == 400


def test_no_values_beyond_now_except_future_points(mock_pi: RunningMock) -> None:
    flow = _get(mock_pi, f"/streams/{_web(mock_pi, FLOW)}/recorded", startTime="*-1m", endTime="*+1d").json()
    assert flow["Items"][-1]["Timestamp"] == NOW
    forecast = _web(mock_pi, "future:=true")
    ahead = _get(mock_pi, f"/streams/{forecast}/recorded", startTime="*+1d", endTime="*+1d+10m").json()[
        "Items"
    ]
    assert len(ahead) == 11
    assert _get(mock_pi, f"/streams/{forecast}/end").json()["Timestamp"] > "2025-01-13"


def test_streamset_ad_hoc(mock_pi: RunningMock) -> None:
    flows = _get(mock_pi, "/points/search", query="tag:=*FIC0?01.PV", maxCount=3).json()["Items"]
    level = _point(mock_pi, "tag:=*Unit01.LI0104.PV")
    wanted = [flows[2]["WebId"], level["WebId"], flows[0]["WebId"]]
    body = _get(mock_pi, "/streamsets/recorded", webId=wanted, startTime="*-1h", maxCount=100).json()
    streams = body["Items"]
    assert [s["WebId"] for s in streams] == wanted  # request order
    assert list(streams[0]) == ["WebId", "Name", "Path", "Links", "Items", "UnitsAbbreviation"]
    assert streams[0]["Links"]["Source"].endswith(f"/points/{wanted[0]}")
    assert len(streams[0]["Items"]) == 100 and len(streams[2]["Items"]) == 100  # maxCount per stream
    assert len(streams[1]["Items"]) < 100
    fields = "Items.WebId;Items.Items.Timestamp;Items.Items.Value"
    slim = _get(mock_pi, "/streamsets/recorded", webId=wanted, maxCount=2, selectedFields=fields).json()
    assert all(list(s) == ["WebId", "Items"] for s in slim["Items"])
    assert all(list(v) == ["Timestamp", "Value"] for s in slim["Items"] for v in s["Items"])
    values = _get(mock_pi, "/streamsets/value", webId=wanted, webIdType="IDOnly").json()["Items"]
    assert [list(s) for s in values] == [["WebId", "Name", "Path", "Links", "Value"]] * 3
    assert all(s["WebId"].startswith("I1DP") for s in values)
    summaries = _get(mock_pi, "/streamsets/summary", webId=wanted, summaryType="Count").json()["Items"]
    assert [s["Items"][0]["Type"] for s in summaries] == ["Count"] * 3
    assert _get(mock_pi, "/streamsets/recorded").status_code == 400
    assert _get(mock_pi, "/streamsets/end", webId=[wanted[0], "junk"]).status_code == 400


@pytest.mark.parametrize(
    ("action", "params"),
    [
        ("recorded", {"startTime": "*-2h", "endTime": "*", "maxCount": 700}),
        ("recorded", {"startTime": "*+1h", "endTime": "*+2h"}),  # nothing: every stream empty
        ("interpolated", {"startTime": "*-3h", "endTime": "*+1h", "interval": "7m"}),  # No Data after now
        ("plot", {"startTime": "*-1d", "endTime": "*", "intervals": 5}),
    ],
)
def test_streamset_streams_read_as_each_stream_alone(mock_pi: RunningMock, action: str, params: dict) -> None:
    """A stream set formats its streams' timestamps together: each stream still reads exactly as alone,
    whatever the lengths (sparse and dense points, a few values, none)."""
    points = _get(mock_pi, "/points/search", query="tag:=*Unit01*", maxCount=40).json()["Items"]
    wanted = [p["WebId"] for p in points]
    fields = "Items.WebId;Items.Items;Items.UnitsAbbreviation"
    streams = _get(mock_pi, f"/streamsets/{action}", webId=wanted, selectedFields=fields, **params).json()[
        "Items"
    ]
    assert [s["WebId"] for s in streams] == wanted
    for web_id, stream in zip(wanted, streams, strict=True):
        alone = _get(mock_pi, f"/streams/{web_id}/{action}", **params).json()
        assert stream["Items"] == alone["Items"]
        assert stream["UnitsAbbreviation"] == alone["UnitsAbbreviation"]


def test_streamset_by_parent_element_and_event_frame(mock_pi: RunningMock) -> None:
    server = _get(mock_pi, "/assetservers").json()["Items"][0]
    database = requests.get(server["Links"]["Databases"], timeout=30).json()["Items"][0]
    elements = requests.get(database["Links"]["Elements"], params={"searchFullHierarchy": "true"}, timeout=30)
    element = next(e for e in elements.json()["Items"] if not e["HasChildren"])
    values = _get(mock_pi, f"/streamsets/{element['WebId']}/value").json()["Items"]
    static = [s for s in values if s["Value"]["Timestamp"] == "1970-01-01T00:00:00Z"]
    live = [s for s in values if s["Value"]["Timestamp"] != "1970-01-01T00:00:00Z"]
    assert static and live
    recorded = _get(mock_pi, f"/streamsets/{element['WebId']}/recorded", maxCount=5).json()["Items"]
    assert {s["Name"] for s in recorded} == {s["Name"] for s in values}
    query = {"startTime": "*-20d", "templateName": "Process Alarm", "maxCount": 10_000}
    frames = requests.get(database["Links"]["EventFrames"], params=query, timeout=30).json()
    frame = next(f for f in frames["Items"] if not f["EndTime"].startswith("9999"))
    in_frame = _get(mock_pi, f"/streamsets/{frame['WebId']}/recorded", maxCount=100_000).json()["Items"]
    start, end = _ns(frame["StartTime"]), _ns(frame["EndTime"])
    stamps = [_ns(v["Timestamp"]) for s in in_frame for v in s["Items"] if v["Timestamp"] > "1971"]
    assert stamps and all(start <= t <= end for t in stamps)
    point = _web(mock_pi, FLOW)
    assert _get(mock_pi, f"/streamsets/{point}/value").status_code == 409


def test_late_values_appear_as_the_clock_moves(make_mock) -> None:
    mock = make_mock(late_share=1.0, tags=20)
    web = mock.state.archive.point_webid(mock.state.archive.points[1])  # a 60 s setpoint
    window = {"startTime": "2025-01-05T00:00:00Z", "endTime": "2025-01-06T00:00:00Z", "maxCount": 10_000}
    mock.state.clock.set(_ns("2025-01-05T00:00:00Z"))
    seen, grew = set(), 0
    for _ in range(96):  # a day in 15-minute steps
        mock.state.clock.advance(15 * 60 * NS)
        stamps = {v["Timestamp"] for v in _get(mock, f"/streams/{web}/recorded", **window).json()["Items"]}
        assert seen <= stamps
        grew += any(t < max(seen, default="") for t in stamps - seen)  # filled in behind the newest value
        seen = stamps
    assert grew >= 1
    assert len(seen) == 24 * 60 + 1
