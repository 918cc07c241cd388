"""The mock PI Data Archive: its points, WebIDs, queries and the DataServer/Point/EnumerationSet routes."""

from __future__ import annotations

import time

import pytest
import requests
from pydantic import ValidationError

from osipi_dagster.mock import webids
from osipi_dagster.mock.archive import Archive, parse_point_query
from osipi_dagster.mock.config import MockConfig, parse_args
from osipi_dagster.mock.errors import PIError
from osipi_dagster.mock.server import RunningMock

NOW_NS = MockConfig(now="2025-01-06T12:00:00Z").fixed_now_ns() or 0


@pytest.fixture(scope="module")
def archive() -> Archive:
    return Archive(MockConfig(tags=200, now="2025-01-06T12:00:00Z"), NOW_NS)


def _get(mock: RunningMock, route: str, **params) -> requests.Response:
    return requests.get(mock.api + route, params=params, timeout=30)


def _server(mock: RunningMock) -> dict:
    return _get(mock, "/dataservers").json()["Items"][0]


# -- the archive itself -------------------------------------------------------------------------------


def test_100000_points_build_fast() -> None:
    start = time.process_time()  # CPU time: what the build costs, whatever else shares the machine
    big = Archive(MockConfig(tags=100_000), NOW_NS)
    assert time.process_time() - start < 10.0  # about 0.5 s here
    assert len(big.points) == 100_000
    assert [p.id for p in big.points[:3]] == [1, 2, 3]
    assert big.point(100_000).name == big.points[-1].name


def test_points_are_deterministic_and_varied(archive: Archive) -> None:
    again = Archive(MockConfig(tags=200, now="2025-01-06T12:00:00Z"), NOW_NS)
    assert again.points == archive.points
    assert {p.point_type for p in archive.points} == {"Float32", "Float64", "Int32", "Digital", "String"}
    assert {p.sampling for p in archive.points} == {"1s", "5s", "60s", "irregular"}
    assert any(p.future for p in archive.points)
    assert any(p.multi for p in archive.points)
    assert all(p.name.startswith("Plant") for p in archive.points)
    assert all(p.digital_set for p in archive.points if p.point_type == "Digital")


def test_sampling_1s_makes_every_point_1hz_numeric(archive: Archive) -> None:
    config = MockConfig(tags=200, now="2025-01-06T12:00:00Z", sampling="1s")
    assert parse_args(["--sampling", "1s"], {}).sampling == "1s"
    assert parse_args([], {"MOCK_PI_SAMPLING": "1s"}).sampling == "1s"
    with pytest.raises(ValidationError, match="sampling"):
        MockConfig(sampling="5s")
    uniform = Archive(config, NOW_NS)
    assert [p.name for p in uniform.points] == [p.name for p in archive.points]
    assert [(p.multi, p.late) for p in uniform.points] == [(p.multi, p.late) for p in archive.points]
    assert {p.sampling for p in uniform.points} == {"1s"}
    assert {p.point_type for p in uniform.points} == {"Float32", "Float64", "Int32"}
    assert not any(p.digital_set for p in uniform.points)
    start = NOW_NS - 36 * 3600 * 10**9  # 2025-01-05, a closed day; the end is inclusive
    end = start + 86_399 * 10**9
    values = sum(len(uniform.data.recorded(p, start, end, NOW_NS, 10**6)) for p in uniform.points[:30])
    assert 0.99 * 30 * 86_400 < values < 1.01 * 30 * 86_400  # outages remove a little, multi-values add
    assert Archive(config, NOW_NS).points == uniform.points  # deterministic


def test_points_of_a_unit_are_consecutive(archive: Archive) -> None:
    units = [".".join(p.name.split(".")[:3]) for p in archive.points]
    seen: list[str] = []
    for unit in units:
        if not seen or seen[-1] != unit:
            assert unit not in seen
            seen.append(unit)
    assert len(seen) > 10


@pytest.mark.parametrize("kind", ["Full", "IDOnly", "PathOnly", "LocalIDOnly", "DefaultIDOnly"])
def test_every_point_webid_type_resolves(archive: Archive, kind: str) -> None:
    point = archive.points[42]
    assert archive.resolve_point(archive.point_webid(point, kind)) == point


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("Tag:=Plant1*", lambda p: p.name.lower().startswith("plant1")),
        ("name:plant1*", lambda p: p.name.lower().startswith("plant1")),
        ("tag:=*FIC* AND PointType:=Float32", lambda p: "FIC" in p.name and p.point_type == "Float32"),
        ("*.PV pointsource:OPC", lambda p: p.name.endswith(".PV") and p.point_source == "OPC"),
        ("PointType:=Digital OR PointType:=String", lambda p: p.point_type in ("Digital", "String")),
        ('(tag:<>*.PV AND DataType:Float64) OR (tag:="*FC*")', lambda p: (not p.name.endswith(".PV")
                                                                      and p.point_type == "Float64")
                                                                     or "FC" in p.name),
        ("pointid:<=10", lambda p: p.id <= 10),
        ("future:=true", lambda p: p.future),
        ("Tag:='Plant1.Area1.Unit0?.LI*'", lambda p: p.name.startswith("Plant1.Area1.Unit0")
                                                     and ".LI" in p.name),
    ],
)  # fmt: skip
def test_point_queries(archive: Archive, query: str, expected) -> None:
    found = archive.search(query)
    assert found == [p for p in archive.points if expected(p)]
    assert found


@pytest.mark.parametrize(
    "query", ["tag:=", "(tag:=a", "OR tag:=a", "tag:=a OR", "foo:=1", "pointid:<x", "Value:>1"]
)
def test_bad_point_queries_are_400(query: str) -> None:
    with pytest.raises(PIError) as error:
        parse_point_query(query)
    assert error.value.status == 400


# -- data servers ---------------------------------------------------------------------------------------


def test_dataserver_shape(mock_pi: RunningMock) -> None:
    server = _server(mock_pi)
    assert server["Name"] == "PIMOCK"
    assert server["Path"] == "\\\\PIServer[PIMOCK]"
    assert server["WebId"].startswith("F1DS")
    assert server["IsConnected"] is True
    assert server["ServerTime"] == "2025-01-06T12:00:00Z"
    assert set(server["Links"]) == {"Self", "Points", "EnumerationSets"}
    assert _get(mock_pi, f"/dataservers/{server['WebId']}").json() == server


@pytest.mark.parametrize(
    ("param", "value"), [("path", "\\\\PIMOCK"), ("path", "\\\\PIServer[pimock]"), ("name", "pimock")]
)
def test_dataserver_by_path_and_name(mock_pi: RunningMock, param: str, value: str) -> None:
    response = _get(mock_pi, "/dataservers", **{param: value})
    assert response.status_code == 200
    assert response.json()["Name"] == "PIMOCK"


def test_dataserver_errors(mock_pi: RunningMock) -> None:
    assert _get(mock_pi, "/dataservers", path="\\\\OTHER").status_code == 404
    bad = _get(mock_pi, "/dataservers/not-a-webid")
    assert bad.status_code == 400
    assert bad.json() == {"Errors": ["Unknown or invalid WebID format: 'not-a-webid'."]}
    other = _server(mock_pi)["WebId"].replace("F1DS", "P1DS")[:4] + "T1RIRVI"  # PathOnly "OTHER"
    assert _get(mock_pi, f"/dataservers/{other}").status_code == 404


def test_points_paging_default_1000_and_limits(make_mock) -> None:
    mock = make_mock(tags=1500)
    url = _server(mock)["Links"]["Points"]
    first = requests.get(url, timeout=30).json()["Items"]
    assert len(first) == 1000  # the default maxCount truncates silently
    rest = requests.get(url, params={"startIndex": 1000}, timeout=30).json()["Items"]
    assert len(rest) == 500
    assert [p["Id"] for p in first + rest] == list(range(1, 1501))
    too_many = requests.get(url, params={"maxCount": 150_001}, timeout=30)
    assert too_many.status_code == 400
    assert "150000" in too_many.json()["Errors"][0]
    assert requests.get(url, params={"maxCount": 150_000}, timeout=30).status_code == 200
    assert requests.get(url, params={"startIndex": -1}, timeout=30).status_code == 400


def test_points_name_filter_fields_and_webid_type(mock_pi: RunningMock) -> None:
    url = _server(mock_pi)["Links"]["Points"]
    params = {"nameFilter": "plant1.area1.unit0?.fic*.pv", "selectedFields": "Items.Name;Items.WebId"}
    items = requests.get(url, params={**params, "webIdType": "IDOnly"}, timeout=30).json()["Items"]
    assert items and all(set(item) == {"Name", "WebId"} for item in items)
    assert all(item["Name"].endswith(".PV") and ".FIC" in item["Name"] for item in items)
    assert all(item["WebId"].startswith("I1DP") for item in items)
    assert _get(mock_pi, f"/points/{items[0]['WebId']}").json()["Name"] == items[0]["Name"]
    bad = requests.get(url, params={"webIdType": "Short"}, timeout=30)
    assert bad.status_code == 400


def test_point_object_and_lookups(mock_pi: RunningMock) -> None:
    point = _get(mock_pi, "/points/search", query="tag:=*FIC0101.PV").json()["Items"][0]
    assert point["Path"] == f"\\\\PIMOCK\\{point['Name']}"
    assert point["PointType"] == "Float32" and point["EngineeringUnits"] == "m3/h"
    expected_links = {"Self", "DataServer", "Attributes", "InterpolatedData", "RecordedData", "PlotData",
                      "SummaryData", "Value", "EndValue"}  # fmt: skip
    assert set(point["Links"]) == expected_links
    assert _get(mock_pi, "/points", path=point["Path"].lower()).json() == point
    assert _get(mock_pi, f"/points/{point['WebId']}").json() == point
    assert _get(mock_pi, "/points", path="\\\\PIMOCK\\nope").status_code == 404
    archive = mock_pi.state.archive
    unknown = webids.encode("DP", (archive.server_guid,), "PIMOCK\\X", point_id=999_999, webid_type="IDOnly")
    assert _get(mock_pi, f"/points/{unknown}").status_code == 404


def test_points_multiple_is_207_when_some_fail(mock_pi: RunningMock) -> None:
    point = _get(mock_pi, "/points/search", query="tag:=*FIC0101.PV").json()["Items"][0]
    ok = _get(mock_pi, "/points/multiple", webId=[point["WebId"]], path=[point["Path"]])
    assert ok.status_code == 200
    assert [i["IdentifierType"] for i in ok.json()["Items"]] == ["WebId", "Path"]
    mixed = _get(mock_pi, "/points/multiple", webId=[point["WebId"], "junk"], path=["\\\\PIMOCK\\none"])
    assert mixed.status_code == 207
    items = mixed.json()["Items"]
    assert items[0]["Object"]["Name"] == point["Name"] and "Exception" not in items[0]
    assert "Unknown or invalid WebID format" in items[1]["Exception"]["Errors"][0]
    assert "Object" not in items[2] and items[2]["Exception"]["Errors"]


def test_points_search_limits(mock_pi: RunningMock) -> None:
    assert len(_get(mock_pi, "/points/search", query="Tag:=Plant1*", maxCount=5).json()["Items"]) == 5
    assert _get(mock_pi, "/points/search", query="Tag:=Plant1*", maxCount=1001).status_code == 400
    assert _get(mock_pi, "/points/search", query="(tag:=x").status_code == 400
    assert _get(mock_pi, "/points/search", query="tag:=x", dataServerWebId="bad").status_code == 400


def test_point_attributes(mock_pi: RunningMock) -> None:
    point = _get(mock_pi, "/points/search", query="tag:=*FIC0101.MODE").json()["Items"][0]
    attributes = {
        a["Name"]: a["Value"] for a in _get(mock_pi, f"/points/{point['WebId']}/attributes").json()["Items"]
    }
    assert attributes["tag"] == point["Name"] and attributes["digitalset"] == "Modes"
    one = _get(mock_pi, f"/points/{point['WebId']}/attributes/PointSource").json()
    assert one["Value"] == "OPC"
    assert _get(mock_pi, f"/points/{point['WebId']}/attributes", name="nope").status_code == 400


def test_enumeration_sets_and_values(mock_pi: RunningMock) -> None:
    sets = requests.get(_server(mock_pi)["Links"]["EnumerationSets"], timeout=30).json()["Items"]
    by_name = {s["Name"]: s for s in sets}
    assert {"SYSTEM", "Modes", "OnOff", "AlarmStates", "ValveState"} <= set(by_name)
    modes = by_name["Modes"]
    assert modes["WebId"].startswith("F1MSD")
    assert _get(mock_pi, f"/enumerationsets/{modes['WebId']}").json() == modes
    assert _get(mock_pi, "/enumerationsets", path=modes["Path"]).json() == modes
    values = requests.get(modes["Links"]["Values"], timeout=30).json()["Items"]
    assert [(v["Name"], v["Value"]) for v in values] == [("Manual", 0), ("Auto", 1), ("Cascade", 2)]
    system = requests.get(by_name["SYSTEM"]["Links"]["Values"], timeout=30).json()["Items"]
    assert {"Name": "I/O Timeout", "Value": 246} in [{"Name": v["Name"], "Value": v["Value"]} for v in system]
    assert _get(mock_pi, "/enumerationsets/garbage").status_code == 400
