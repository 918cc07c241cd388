"""Summaries that a stream cannot compute (Average of a digital point): a per-value error, not a failed call.

PI Web API documents that "Count is the only summary type supported on non-numeric streams. Requesting a
summary for any other type will generate an error" (Stream GetSummary) and, for the stream sets, that "any
time series value in the response that contains an 'Errors' property indicates PI Web API encountered a
handled error" (StreamSet GetSummaries, GetSummariesAdHoc); AF SDK's data calls wrap the error of one
attribute in its value so that the others' results are kept ("Data Call Error Handling"). So the mock
answers 200: every stream and every computable type keeps its summary, and each type the stream cannot
compute is a TimedValue with ``Value`` null, ``Good`` false and ``Errors`` ``[{"FieldName", "Message"}]``.
"""

from __future__ import annotations

import requests

from osipi_dagster.mock.server import RunningMock

CSRF = {"X-Requested-With": "test"}
UNIT = "\\\\AFMOCK\\Operations\\MockChem\\Plant1\\Area1\\Unit01\\FIC0101"


def _get(mock: RunningMock, route: str, **params) -> requests.Response:
    return requests.get(mock.api + route, params=params, timeout=60)


def _web(mock: RunningMock, tag: str) -> str:
    return _get(mock, "/points/search", query=f"tag:={tag}").json()["Items"][0]["WebId"]


def _by_type(items: list[dict]) -> dict[str, dict]:
    return {item["Type"]: item["Value"] for item in items}


def _assert_failed(value: dict, kind: str) -> None:
    assert value["Value"] is None and value["Good"] is False, value
    (error,) = value["Errors"]
    assert error["FieldName"] == "Value" and f"'{kind}'" in error["Message"][0]


def test_a_digital_stream_fails_alone_inside_a_stream_set(mock_pi: RunningMock) -> None:
    flow, mode = _web(mock_pi, "*Unit01.FIC0101.PV"), _web(mock_pi, "*Unit01.FIC0101.MODE")
    window = {"startTime": "*-6h", "endTime": "*"}
    answer = _get(
        mock_pi, "/streamsets/summary", webId=[flow, mode], summaryType=["Average", "Count"], **window
    )
    assert answer.status_code == 200, answer.text
    numeric, digital = (_by_type(stream["Items"]) for stream in answer.json()["Items"])
    assert numeric["Average"]["Good"] and "Errors" not in numeric["Average"]
    _assert_failed(digital["Average"], "Average")
    assert digital["Average"]["Timestamp"] == digital["Count"]["Timestamp"]
    alone = _get(mock_pi, f"/streams/{mode}/summary", summaryType="Count", **window).json()["Items"]
    assert digital["Count"] == alone[0]["Value"]  # the computable type is unaffected by the failed one


def test_the_single_stream_route_answers_the_same(mock_pi: RunningMock) -> None:
    mode = _web(mock_pi, "*Unit01.FIC0101.MODE")
    answer = _get(mock_pi, f"/streams/{mode}/summary", summaryType="All", startTime="*-1d")
    assert answer.status_code == 200
    values = _by_type(answer.json()["Items"])
    assert values["Count"]["Good"] and values["PercentGood"]["Good"]
    for kind in ("Total", "Average", "Minimum", "Maximum", "Range", "StdDev", "PopulationStdDev"):
        _assert_failed(values[kind], kind)
    hourly = _get(mock_pi, f"/streams/{mode}/summary", summaryType="Maximum", summaryDuration="6h").json()
    stamps = [item["Value"]["Timestamp"] for item in hourly["Items"]]
    assert stamps == [
        "2025-01-05T12:00:00Z",
        "2025-01-05T18:00:00Z",
        "2025-01-06T00:00:00Z",
        "2025-01-06T06:00:00Z",
    ]
    slim = _get(
        mock_pi, f"/streams/{mode}/summary", summaryType="Average", selectedFields="Items.Value.Errors"
    )
    assert list(slim.json()["Items"][0]["Value"]) == ["Errors"]


def test_by_parent_and_in_a_batch(mock_pi: RunningMock) -> None:
    element = _get(mock_pi, "/elements", path=UNIT).json()
    route = f"/streamsets/{element['WebId']}/summary"
    by_parent = _get(mock_pi, route, categoryName="Measurement", summaryType="Average")
    assert by_parent.status_code == 200
    streams = {stream["Name"]: stream["Items"][0]["Value"] for stream in by_parent.json()["Items"]}
    _assert_failed(streams["Feed controller mode"], "Average")
    assert streams["Feed flow"]["Good"]
    mode = _web(mock_pi, "*Unit01.FIC0101.MODE")
    batch = requests.post(
        mock_pi.api + "/batch",
        json={
            "set": {
                "Method": "GET",
                "Resource": f"/piwebapi{route}?categoryName=Measurement&summaryType=Average",
            },
            "one": {"Method": "GET", "Resource": f"/piwebapi/streams/{mode}/summary?summaryType=Average"},
        },
        headers=CSRF,
        timeout=60,
    ).json()
    assert batch["set"]["Status"] == 200 and batch["set"]["Content"] == by_parent.json()
    assert batch["one"]["Status"] == 200
    _assert_failed(batch["one"]["Content"]["Items"][0]["Value"], "Average")
