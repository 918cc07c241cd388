"""Conformance of the mock to issue 2 and piwebapi.md 11.1, over real HTTP: the documented request forms our
own client never sends (PI time strings and timeZone, case-insensitive names, webIdType variants, point
queries, descending reads, stream sets by attribute), regressions of bad input that once answered 500, every
option from the environment, and a 100,000-point server."""

from __future__ import annotations

import time
from dataclasses import fields

import pytest
import requests

from osipi_dagster.mock.config import ENV_VARS, FAULT_ENV_VARS, FaultConfig, MockConfig, parse_args
from osipi_dagster.mock.server import RunningMock

FLOW = "Plant1.Area1.Unit01.FIC0101.PV"  # Float32, 1 s
SETPOINT = "Plant1.Area1.Unit01.FIC0101.SP"  # Float32, 60 s, step
MODE = "Plant1.Area1.Unit01.FIC0101.MODE"  # Digital


def _get(mock: RunningMock, route: str, **params) -> requests.Response:
    return requests.get(mock.api + route, params=params, timeout=60)


def _web(mock: RunningMock, tag: str) -> str:
    return _get(mock, "/points", path=f"\\\\PIMOCK\\{tag}").json()["WebId"]


def _stamps(response: requests.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [v["Timestamp"] for v in response.json()["Items"]]


# --- time strings and time zones on a real route ------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "first"),
    [
        ({"startTime": "2025-01-06T08:00:00Z"}, "2025-01-06T08:00:00Z"),
        ({"startTime": "2025-01-06T09:00:00+01:00"}, "2025-01-06T08:00:00Z"),
        ({"startTime": "2025-01-06T08:00:00"}, "2025-01-06T08:00:00Z"),  # zone-less: the server's zone, UTC
        ({"startTime": "06-Jan-25 08:00:00"}, "2025-01-06T08:00:00Z"),
        ({"startTime": "06-Jan-2025 08:00"}, "2025-01-06T08:00:00Z"),
        ({"startTime": "1/6/2025 8:00:00 AM"}, "2025-01-06T08:00:00Z"),
        ({"startTime": "06-Jan-25 08:00:00", "timeZone": "Europe/Paris"}, "2025-01-06T07:00:00Z"),
        ({"startTime": "06-Jan-25 08:00:00", "timeZone": "W. Europe Standard Time"}, "2025-01-06T07:00:00Z"),
        ({"startTime": "2025-01-06T08:00:00Z", "timeZone": "America/New_York"}, "2025-01-06T08:00:00Z"),
        ({"startTime": "t+8h"}, "2025-01-06T08:00:00Z"),
        ({"startTime": "today+8h"}, "2025-01-06T08:00:00Z"),
        ({"startTime": "y+16h30m"}, "2025-01-05T16:30:00Z"),
        ({"startTime": "yesterday+1d+8h"}, "2025-01-06T08:00:00Z"),
        ({"startTime": "t-1d+8h"}, "2025-01-05T08:00:00Z"),
        ({"startTime": "*-4h"}, "2025-01-06T08:00:00Z"),
        ({"startTime": "*-3h-60m"}, "2025-01-06T08:00:00Z"),
        ({"startTime": "*-0.5d+4h"}, "2025-01-06T04:00:00Z"),
        ({"startTime": "y+8h", "timeZone": "America/New_York"}, "2025-01-05T13:00:00Z"),  # New York's day
        ({"startTime": "2025-01-06T08:00:00.1234567Z"}, "2025-01-06T08:00:01Z"),
    ],
)
def test_time_strings_on_a_recorded_read(mock_pi: RunningMock, params: dict, first: str) -> None:
    answer = _get(mock_pi, f"/streams/{_web(mock_pi, FLOW)}/recorded", maxCount=1, **params)
    assert _stamps(answer) == [first]


@pytest.mark.parametrize(
    "params",
    [
        {"startTime": "2025-01-06T08:00:00.12345678Z"},  # 8 fractional digits: beyond 100 ns ticks
        {"startTime": "06-Foo-25 08:00:00"},
        {"startTime": "*-1parsec"},
        {"endTime": "t+"},
        {"timeZone": "Mars/Olympus"},
        {"timeZone": "../../etc/passwd"},
    ],
)
def test_bad_time_strings_and_zones_are_400(mock_pi: RunningMock, params: dict) -> None:
    answer = _get(mock_pi, f"/streams/{_web(mock_pi, FLOW)}/recorded", **params)
    assert answer.status_code == 400 and list(answer.json()) == ["Errors"]


def test_server_time_zone_reads_zone_less_strings(make_mock) -> None:
    mock = make_mock(tags=20, server_time_zone="America/New_York")
    web = mock.state.archive.point_webid(mock.state.archive.points[0])
    route = f"/streams/{web}/recorded"
    assert _stamps(_get(mock, route, startTime="2025-01-05T08:00:00", maxCount=1)) == ["2025-01-05T13:00:00Z"]
    assert _stamps(_get(mock, route, startTime="t", maxCount=1)) == ["2025-01-06T05:00:00Z"]
    utc = _get(mock, route, startTime="t", timeZone="UTC", maxCount=1)  # the request's zone wins
    assert _stamps(utc) == ["2025-01-06T00:00:00Z"]


def test_time_of_a_value_read_takes_the_time_zone(mock_pi: RunningMock) -> None:
    web = _web(mock_pi, FLOW)
    for text in ("06-Jan-25 07:30:00.5", "1/6/2025 7:30:00.5 AM", "2025-01-06 07:30:00.5", "07:30:00.5"):
        at = _get(mock_pi, f"/streams/{web}/value", time=text, timeZone="Europe/Paris")
        assert at.json()["Timestamp"] == "2025-01-06T06:30:00.5Z", text


# --- case-insensitive names, selectedFields, webIdType --------------------------------------------------


def test_query_parameter_names_are_case_insensitive(mock_pi: RunningMock) -> None:
    web = _web(mock_pi, FLOW)
    route = f"/streams/{web}/recorded"
    canonical = _get(
        mock_pi, route, startTime="*-2h", endTime="*-1h", maxCount=7, selectedFields="Items.Value"
    )
    for names in (
        ("STARTTIME", "ENDTIME", "MAXCOUNT", "SELECTEDFIELDS"),
        ("starttime", "endtime", "maxcount", "selectedfields"),
        ("StartTime", "EndTime", "MaxCount", "SelectedFields"),
    ):
        values = dict(zip(names, ("*-2h", "*-1h", "7", "Items.Value"), strict=True))
        assert _get(mock_pi, route, **values).content == canonical.content, names
    sets = _get(mock_pi, "/streamsets/value", WEBID=[web, _web(mock_pi, MODE)], WebIdType="IDOnly")
    assert [s["WebId"][:4] for s in sets.json()["Items"]] == ["I1DP", "I1DP"]
    assert _get(mock_pi, route, BOUNDARYTYPE="outside", maxCount=1).status_code == 200


@pytest.mark.parametrize(
    ("kind", "prefix"),
    [
        ("Full", "F1DP"),
        ("IDOnly", "I1DP"),
        ("PathOnly", "P1DP"),
        ("LocalIDOnly", "L1DP"),
        ("DefaultIDOnly", "D1DP"),
    ],
)
def test_every_web_id_type_reads_the_same_stream(mock_pi: RunningMock, kind: str, prefix: str) -> None:
    full = _web(mock_pi, FLOW)
    other = _get(mock_pi, f"/points/{full}", webIdType=kind, selectedFields="WebId").json()["WebId"]
    assert other.startswith(prefix)
    window = {"startTime": "*-10m", "maxCount": 50}
    direct = _get(mock_pi, f"/streams/{full}/recorded", **window).content
    assert _get(mock_pi, f"/streams/{other}/recorded", **window).content == direct
    assert _get(mock_pi, f"/points/{other}", selectedFields="Name").json() == {"Name": FLOW}
    streams = _get(mock_pi, "/streamsets/recorded", webId=other, webIdType=kind, **window).json()["Items"]
    assert streams[0]["WebId"] == other


def test_path_only_web_ids_of_af_objects_resolve(mock_pi: RunningMock) -> None:
    server = _get(mock_pi, "/assetservers").json()["Items"][0]
    database = requests.get(server["Links"]["Databases"], timeout=30).json()["Items"][0]
    elements = requests.get(
        database["Links"]["Elements"],
        params={"searchFullHierarchy": "true", "webIdType": "PathOnly", "maxCount": 5},
        timeout=30,
    ).json()["Items"]
    leaf = elements[-1]
    assert leaf["WebId"].startswith("P1Em")
    assert _get(mock_pi, f"/elements/{leaf['WebId']}", selectedFields="Path").json() == {"Path": leaf["Path"]}
    attributes = _get(mock_pi, f"/elements/{leaf['WebId']}/attributes", webIdType="PathOnly").json()["Items"]
    assert attributes and all(a["WebId"].startswith("P1Ab") for a in attributes)
    value = _get(mock_pi, f"/streams/{attributes[0]['WebId']}/value")
    assert value.status_code == 200 and "Timestamp" in value.json()


def test_selected_fields_on_collections_and_stream_sets(mock_pi: RunningMock) -> None:
    server = _get(mock_pi, "/dataservers").json()["Items"][0]["WebId"]
    points = _get(
        mock_pi, f"/dataservers/{server}/points", maxCount=3, selectedFields="Items.Name; Items.PointType"
    ).json()
    assert list(points) == ["Items"] and all(list(p) == ["Name", "PointType"] for p in points["Items"])
    summary = _get(
        mock_pi,
        "/streamsets/summary",
        webId=_web(mock_pi, FLOW),
        summaryType=["Average", "Count"],
        selectedFields="Items.Items.Type;Items.Items.Value.Value",
    ).json()
    assert summary["Items"][0]["Items"][0] == {
        "Type": "Average",
        "Value": {"Value": pytest.approx(150, abs=100)},
    }
    nothing = _get(mock_pi, f"/points/{_web(mock_pi, FLOW)}", selectedFields="NoSuchField").json()
    assert nothing == {}


# --- points: multiple and search -----------------------------------------------------------------------


def test_points_multiple_by_path_and_web_id(mock_pi: RunningMock) -> None:
    flow, mode = _web(mock_pi, FLOW), _web(mock_pi, MODE)
    by_id = _get(mock_pi, "/points/multiple", webId=[mode, flow], selectedFields="Items.Object.Name")
    assert by_id.status_code == 200
    assert [i["Object"]["Name"] for i in by_id.json()["Items"]] == [MODE, FLOW]
    by_path = _get(mock_pi, "/points/multiple", path=[f"\\\\PIMOCK\\{FLOW}", "\\\\PIMOCK\\NOPE"])
    assert by_path.status_code == 207
    found, missing = by_path.json()["Items"]
    assert found["Object"]["WebId"] == flow and found["IdentifierType"] == "Path"
    assert "Exception" in missing and missing["Exception"]["Errors"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("Tag:=Plant1.Area1.Unit01.FIC0101.PV", lambda p: p.name == FLOW),
        ("name:Plant1*", lambda p: p.name.startswith("Plant1")),
        ("tag:=*FIC0101.PV OR tag:=*FIC0101.SP", lambda p: p.name.endswith(("FIC0101.PV", "FIC0101.SP"))),
        ("name:*Unit0? AND PointType:=Digital", lambda p: False),
        ("name:*Unit01* PointType:=Digital", lambda p: ".Unit01." in p.name and p.point_type == "Digital"),
        ("pointtype:=Float64", lambda p: p.point_type == "Float64"),
        ("Descriptor:=*flow*", lambda p: "flow" in p.descriptor.lower()),
        ("PointSource:=OPC AND Step:=1", lambda p: p.point_source == "OPC" and p.step),
        ("Future:=true", lambda p: p.future),
    ],
)
def test_point_query_syntax(mock_pi: RunningMock, query: str, expected) -> None:
    answer = _get(mock_pi, "/points/search", query=query, maxCount=1000, selectedFields="Items.Name")
    assert answer.status_code == 200, answer.text
    names = [p["Name"] for p in answer.json()["Items"]]
    assert names == [p.name for p in mock_pi.state.archive.points if expected(p)]


# --- reads the client never makes ----------------------------------------------------------------------


@pytest.mark.parametrize("tag", [FLOW, SETPOINT, MODE])
def test_descending_interpolated_and_plot(mock_pi: RunningMock, tag: str) -> None:
    """Descending reads (endTime before startTime) once answered 500 (a reversed numpy view)."""
    web = _web(mock_pi, tag)
    for action, extra in (("interpolated", {"interval": "10m"}), ("plot", {"intervals": 4})):
        up = _get(mock_pi, f"/streams/{web}/{action}", startTime="*-2h", endTime="*", **extra)
        down = _get(mock_pi, f"/streams/{web}/{action}", startTime="*", endTime="*-2h", **extra)
        assert down.status_code == 200, down.text
        assert down.json()["Items"] == up.json()["Items"][::-1]
        sets = _get(mock_pi, f"/streamsets/{action}", webId=web, startTime="*", endTime="*-2h", **extra)
        assert sets.json()["Items"][0]["Items"] == down.json()["Items"]
    recorded = _get(mock_pi, f"/streams/{web}/recorded", startTime="*", endTime="*-1d", maxCount=5).json()
    stamps = [v["Timestamp"] for v in recorded["Items"]]
    assert stamps == sorted(stamps, reverse=True)


def test_boundary_type_outside_in_a_gap_and_descending(mock_pi: RunningMock) -> None:
    route = f"/streams/{_web(mock_pi, SETPOINT)}/recorded"  # one value a minute
    gap = {"startTime": "2025-01-06T10:00:10Z", "endTime": "2025-01-06T10:00:50Z"}
    assert _stamps(_get(mock_pi, route, **gap)) == []
    outside = _stamps(_get(mock_pi, route, boundaryType="Outside", **gap))
    assert outside == ["2025-01-06T10:00:00Z", "2025-01-06T10:01:00Z"]
    reverse = {"startTime": gap["endTime"], "endTime": gap["startTime"]}
    assert _stamps(_get(mock_pi, route, boundaryType="Outside", **reverse)) == outside[::-1]
    interpolated = _stamps(_get(mock_pi, route, boundaryType="Interpolated", **gap))
    assert interpolated == ["2025-01-06T10:00:10Z", "2025-01-06T10:00:50Z"]


def test_summary_types_and_calculation_basis(mock_pi: RunningMock) -> None:
    route = f"/streams/{_web(mock_pi, FLOW)}/summary"
    window = {"startTime": "*-1h", "endTime": "*"}
    every = _get(mock_pi, route, summaryType="All", **window).json()["Items"]
    assert [i["Type"] for i in every] == [
        "Total", "Average", "Minimum", "Maximum", "Range", "StdDev", "PopulationStdDev", "Count",
        "PercentGood",
    ]  # fmt: skip
    values = {i["Type"]: i["Value"]["Value"] for i in every}
    assert values["Minimum"] <= values["Average"] <= values["Maximum"]
    assert values["Range"] == pytest.approx(values["Maximum"] - values["Minimum"])
    assert values["Total"] == pytest.approx(values["Average"] / 24, rel=1e-9)  # per-day units over 1 h
    assert 3500 <= values["Count"] <= 3601 and 0 < values["PercentGood"] <= 100
    event = _get(mock_pi, route, summaryType="Average", calculationBasis="EventWeighted", **window).json()
    assert event["Items"][0]["Value"]["Value"] == pytest.approx(values["Average"], rel=0.05)
    listed = _get(mock_pi, route, summaryType="Minimum,Maximum", **window).json()["Items"]
    assert [i["Type"] for i in listed] == ["Minimum", "Maximum"]
    mode = _get(mock_pi, f"/streams/{_web(mock_pi, MODE)}/summary", summaryType="AllForNonNumeric").json()
    assert [i["Type"] for i in mode["Items"]] == ["Count", "PercentGood"]
    for bad in ({"summaryType": "Median"}, {"calculationBasis": "Sometimes"}, {"summaryDuration": "0s"}):
        assert _get(mock_pi, route, **bad).status_code == 400, bad


def test_interpolated_values_do_not_depend_on_the_request(mock_pi: RunningMock) -> None:
    """A value interpolated at t is the same whether t is asked alone or among 80,000 other times, and a
    dense interpolated read over weeks of 1 s data answers in seconds (it once took about a minute)."""
    web = _web(mock_pi, FLOW)
    started = time.monotonic()
    many = _get(mock_pi, f"/streams/{web}/interpolated", startTime="*-28d", interval="30s")
    assert time.monotonic() - started < 10
    items = many.json()["Items"]
    assert len(items) == 28 * 2880 + 1
    for item in items[:: len(items) // 7]:
        alone = _get(mock_pi, f"/streams/{web}/value", time=item["Timestamp"]).json()
        assert alone == item
    few = _get(mock_pi, f"/streams/{web}/interpolated", startTime=items[4000]["Timestamp"], interval="90s")
    assert few.json()["Items"][:5] == items[4000:4015:3]


def test_stream_set_by_attribute_parent(mock_pi: RunningMock) -> None:
    server = _get(mock_pi, "/assetservers").json()["Items"][0]
    database = requests.get(server["Links"]["Databases"], timeout=30).json()["Items"][0]
    elements = requests.get(
        database["Links"]["Elements"], params={"searchFullHierarchy": "true", "maxCount": 1000}, timeout=30
    ).json()["Items"]
    for element in elements:
        attributes = _get(mock_pi, f"/elements/{element['WebId']}/attributes").json()["Items"]
        parent = next((a for a in attributes if a["HasChildren"]), None)
        if parent:
            break
    else:
        pytest.fail("no attribute with child attributes")
    children = _get(mock_pi, f"/attributes/{parent['WebId']}/attributes").json()["Items"]
    values = _get(mock_pi, f"/streamsets/{parent['WebId']}/value").json()["Items"]
    assert [v["Name"] for v in values] == [c["Name"] for c in children] and values
    assert all(v["Value"]["Timestamp"] == "1970-01-01T00:00:00Z" for v in values)


def test_batch_in_the_documented_form(mock_pi: RunningMock) -> None:
    """The AVEVA batch example: a point found by path, its value through a JSONPath Parameter, and a
    RequestTemplate that reads the recorded values of every point a search returned."""
    body = {
        "point": {"Method": "GET", "Resource": f"{mock_pi.api}/points?path=\\\\PIMOCK\\{FLOW}"},
        "value": {
            "Method": "GET",
            "Resource": "{0}",
            "Parameters": ["$.point.Content.Links.Value"],
            "ParentIds": ["point"],
        },
        "search": {"Method": "GET", "Resource": f"{mock_pi.api}/points/search?query=tag:=*Unit01.FIC0101.*"},
        "recorded": {
            "Method": "GET",
            "RequestTemplate": {"Resource": mock_pi.api + "/streams/{0}/recorded?startTime=*-1h&maxCount=3"},
            "Parameters": ["$.search.Content.Items[*].WebId"],
            "ParentIds": ["search"],
        },
        "post": {
            "Method": "POST",
            "Resource": f"{mock_pi.api}/batch",
            "Content": "{}",
        },
    }
    answer = requests.post(mock_pi.api + "/batch", json=body, headers={"X-Requested-With": "t"}, timeout=60)
    assert answer.status_code == 207
    result = answer.json()
    assert list(result) == list(body)
    direct = _get(mock_pi, f"/streams/{_web(mock_pi, FLOW)}/value").json()
    assert result["value"]["Status"] == 200 and result["value"]["Content"] == direct
    fanned = result["recorded"]["Content"]
    searched = result["search"]["Content"]["Items"]
    assert result["recorded"]["Status"] == 207 and fanned["Total"] == len(searched) > 1
    assert all(item["Status"] == 200 and len(item["Content"]["Items"]) <= 3 for item in fanned["Items"])
    assert result["post"]["Status"] == 400  # a nested batch


# --- bad input that once answered 500 ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "params", "status"),
    [
        ("value", {"time": "*+1000000d"}, 400),
        ("recordedattime", {"time": "9999-12-31T23:59:59Z"}, 400),
        ("interpolated", {"interval": "100000000000000000000000d"}, 400),
        ("interpolated", {"startTime": "*+1000000d", "endTime": "*+1000000d+2h"}, 400),
        ("plot", {"startTime": "*+1000000d", "endTime": "*+1000000d+2h"}, 400),
        ("summary", {"summaryDuration": "100000000000000000000000d"}, 400),
        ("summary", {"startTime": "0001-01-01T00:00:00Z", "endTime": "0001-01-02T00:00:00Z"}, 400),
        ("recorded", {"startTime": "*-1m", "endTime": "9999-12-31T23:59:59Z"}, 200),
        ("recorded", {"startTime": "0001-01-01T00:00:00Z", "maxCount": 1}, 200),
    ],
)
def test_times_out_of_range_never_answer_500(
    mock_pi: RunningMock, action: str, params: dict, status: int
) -> None:
    web = _web(mock_pi, FLOW)
    answer = _get(mock_pi, f"/streams/{web}/{action}", **params)
    assert answer.status_code == status, answer.text
    if status == 400:
        assert list(answer.json()) == ["Errors"]
    assert _get(mock_pi, f"/streamsets/{action}", webId=web, **params).status_code == status


def test_recorded_to_the_end_of_time_reaches_now(mock_pi: RunningMock) -> None:
    route = f"/streams/{_web(mock_pi, FLOW)}/recorded"
    items = _get(mock_pi, route, startTime="*-1m", endTime="9999-12-31T23:59:59Z").json()["Items"]
    assert items[-1]["Timestamp"] == "2025-01-06T12:00:00Z" and len(items) == 61


# --- options -------------------------------------------------------------------------------------------


_SAMPLE = {bool: "false", int: "3", float: "0.25", str: "America/Chicago"}
_SPECIAL = {
    "now": "2025-02-01T00:00:00Z",
    "auth": "basic",
    "sampling": "1s",
    "port": "8123",
    "csrf_status": "403",
    "tags": "77",
    "late_share": "0.5",
}


def test_every_option_comes_from_an_environment_variable() -> None:
    covered = {f.name for f in fields(MockConfig)} - {"faults"}
    assert set(ENV_VARS) == covered and ENV_VARS["tags"] == "MOCK_PI_TAG_COUNT"
    for name, variable in ENV_VARS.items():
        default = getattr(MockConfig(), name)
        kind = str if default is None else type(default)
        text = _SPECIAL.get(name, _SAMPLE[kind])
        parsed = getattr(parse_args([], {variable: text}), name)
        assert parsed != default and str(parsed).lower() in (text.lower(), str(kind(text)).lower()), name
        flag = "--" + name.replace("_", "-")
        assert getattr(parse_args([flag, text], {variable: str(default)}), name) == parsed  # the flag wins
    assert set(FAULT_ENV_VARS) == {f.name for f in fields(FaultConfig)}
    for name, variable in FAULT_ENV_VARS.items():
        kind = type(getattr(FaultConfig(), name))
        faults = parse_args([], {variable: "1" if kind is int else "0.5"}).faults
        assert getattr(faults, name) == kind("1" if kind is int else "0.5"), name


def test_fault_options_take_effect_over_http(make_mock) -> None:
    mock = make_mock(tags=20, faults=FaultConfig(throttle_rate=1, retry_after_s=4))
    answer = requests.get(mock.api, timeout=30)
    assert answer.status_code == 429 and answer.headers["Retry-After"] == "4"
    assert requests.get(mock.url + "/admin/faults", timeout=30).json()["throttle_rate"] == 1


# --- 100,000 points ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_100000_point_server_starts_and_answers_quickly(make_mock) -> None:
    started = time.monotonic()
    mock = make_mock(tags=100_000, archive_days=730)
    assert time.monotonic() - started < 20
    server = _get(mock, "/dataservers").json()["Items"][0]["WebId"]

    def quick(route: str, **params) -> dict:
        began = time.monotonic()
        answer = _get(mock, route, **params)
        assert answer.status_code == 200, (route, answer.text[:200])
        assert time.monotonic() - began < 10, route  # generous: CI machines are shared
        return answer.json()

    last = quick(f"/dataservers/{server}/points", startIndex=99_990, maxCount=1000)["Items"]
    assert len(last) == 10 and last[-1]["Id"] == 100_000
    assert len(quick(f"/dataservers/{server}/points", nameFilter="Plant3*", maxCount=1000)["Items"]) == 1000
    assert quick("/points/search", query=f"tag:={last[-1]['Name']}")["Items"][0]["Id"] == 100_000
    recorded = quick(f"/streams/{last[-1]['WebId']}/recorded", startTime="*-730d", maxCount=10_000)
    assert recorded["Items"][0]["Value"]["Name"] == "Pt Created"
    webs = [p["WebId"] for p in last]
    assert len(quick("/streamsets/recorded", webId=webs, maxCount=100)["Items"]) == 10
    database = quick("/assetservers")["Items"][0]
    database = requests.get(database["Links"]["Databases"], timeout=30).json()["Items"][0]
    page = quick(
        f"/assetdatabases/{database['WebId']}/elements", searchFullHierarchy="true", startIndex=60_000
    )
    assert len(page["Items"]) == 1000
    assert quick(f"/assetdatabases/{database['WebId']}/eventframes", maxCount=100)["Items"]


def test_a_flag_overrides_a_malformed_environment_variable() -> None:
    """A flag wins over its variable, even a malformed one; the variable alone is a clear error (exit 2)."""
    environ = {"MOCK_PI_TAG_COUNT": "many"}
    assert parse_args(["--tags", "5"], environ).tags == 5
    with pytest.raises(SystemExit) as exit_info:
        parse_args([], environ)
    assert exit_info.value.code == 2
