"""``POST /piwebapi/batch`` in the real format: ids, ParentIds, JSONPath, Parameters, templates, errors."""

from __future__ import annotations

import time

import pytest
import requests

from osipi_dagster.mock import jsonpath
from osipi_dagster.mock.server import RunningMock

CSRF = {"X-Requested-With": "test"}


def _batch(mock: RunningMock, body: object) -> requests.Response:
    return requests.post(mock.api + "/batch", json=body, headers=CSRF)


def _ok(mock: RunningMock, body: dict) -> dict:
    answer = _batch(mock, body)
    assert answer.status_code == 207, answer.text
    result = answer.json()
    assert list(result) == list(body)  # keyed by the same ids, in the request's order
    return result


def test_resources_absolute_relative_and_jsonpath(mock_pi: RunningMock) -> None:
    result = _ok(
        mock_pi,
        {
            "abs": {"Method": "GET", "Resource": "https://pi.example.com:443/piwebapi/system"},
            "rel": {"Method": "GET", "Resource": "/piwebapi/system/status"},
            "path": {"Method": "GET", "Resource": "$.abs.Content.Links.UserInfo", "ParentIds": ["abs"]},
        },
    )
    for sub in result.values():
        assert sub["Status"] == 200
        assert sub["Headers"]["Content-Type"].startswith("application/json")
    # The authority of an absolute URL is ignored: links name the server that received the batch.
    assert result["abs"]["Content"]["Links"]["Self"] == mock_pi.api + "/system"
    assert result["rel"]["Content"]["State"] == "Running"
    assert result["path"]["Content"]["IsAuthenticated"] is False


def test_sub_response_content_equals_the_direct_answer(mock_pi: RunningMock) -> None:
    points = requests.get(mock_pi.api + "/dataservers").json()["Items"][0]["Links"]["Points"] + "?maxCount=7"
    result = _ok(mock_pi, {"p": {"Method": "GET", "Resource": points}})
    assert result["p"]["Content"] == requests.get(points).json()


def test_parameters_fill_placeholders(mock_pi: RunningMock) -> None:
    result = _ok(
        mock_pi,
        {
            "servers": {"Method": "GET", "Resource": mock_pi.api + "/dataservers"},
            "points": {
                "Method": "GET",
                "Resource": "{0}?maxCount={1}",
                "Parameters": [
                    "$.servers.Content.Items[0].Links.Points",
                    "$.servers.Content.Items[0].Links.Nope",
                ],
                "ParentIds": ["servers"],
            },
            "three": {
                "Method": "GET",
                "Resource": "{0}?maxCount=3&nameFilter=*",
                "Parameters": ["$.servers.Content.Items[0].Links.Points"],
                "ParentIds": ["servers"],
            },
        },
    )
    assert result["points"]["Status"] == 400  # "$...Links.Nope" selects nothing
    assert result["three"]["Status"] == 200 and len(result["three"]["Content"]["Items"]) == 3


def test_request_template_fans_out_per_token(mock_pi: RunningMock) -> None:
    result = _ok(
        mock_pi,
        {
            "points": {"Method": "GET", "Resource": "/piwebapi/dataservers"},
            "first": {
                "Method": "GET",
                "Resource": "{0}?maxCount=4",
                "Parameters": ["$.points.Content.Items[0].Links.Points"],
                "ParentIds": ["points"],
            },
            "each": {
                "Method": "GET",
                "RequestTemplate": {"Resource": "{0}?selectedFields=Name;PointType"},
                "Parameters": ["$.first.Content.Items[*].Links.Self"],
                "ParentIds": ["first"],
            },
            "links": {
                "Method": "GET",
                "RequestTemplate": {"Resource": "$.first.Content.Items[*].Links.Self"},
                "ParentIds": ["first"],
            },
            "none": {
                "Method": "GET",
                "RequestTemplate": {"Resource": "{0}"},
                "Parameters": ["$.first.Content.Items[*].Links.Missing"],
                "ParentIds": ["first"],
            },
        },
    )
    each = result["each"]
    assert each["Status"] == 207 and each["Headers"] == {}
    assert each["Content"]["Total"] == 4
    names = [item["Content"]["Name"] for item in each["Content"]["Items"]]
    assert names == [p["Name"] for p in result["first"]["Content"]["Items"]]
    assert all(set(item["Content"]) == {"Name", "PointType"} for item in each["Content"]["Items"])
    assert result["links"]["Content"]["Total"] == 4
    assert result["none"]["Content"] == {"Total": 0, "Items": []}


def test_a_template_answer_feeds_its_children(mock_pi: RunningMock) -> None:
    result = _ok(
        mock_pi,
        {
            "sys": {"Method": "GET", "Resource": "/piwebapi/system"},
            "all": {
                "Method": "GET",
                "RequestTemplate": {"Resource": "$.sys.Content.Links.*"},
                "ParentIds": ["sys"],
            },
            "state": {
                "Method": "GET",
                "Resource": "{0}",
                "Parameters": ["$.all.Content.Items[2].Content.Links.Self"],
                "ParentIds": ["all"],
            },
        },
    )
    assert result["all"]["Content"]["Total"] == 6  # the System links, CacheInstances included
    assert result["state"]["Status"] == 400  # /system/status has no Links: nothing selected


def test_failed_parents_fail_their_children(mock_pi: RunningMock) -> None:
    result = _ok(
        mock_pi,
        {
            "bad": {"Method": "GET", "Resource": "/piwebapi/points/notawebid"},
            "child": {"Method": "GET", "Resource": "/piwebapi/system", "ParentIds": ["bad"]},
            "grandchild": {"Method": "GET", "Resource": "/piwebapi/system", "ParentIds": ["child"]},
            "fine": {"Method": "GET", "Resource": "/piwebapi/system"},
        },
    )
    assert result["bad"]["Status"] == 400 and result["bad"]["Content"]["Errors"]
    assert result["child"]["Status"] == 424 and "'bad'" in result["child"]["Content"]["Errors"][0]
    assert result["grandchild"]["Status"] == 424
    assert result["fine"]["Status"] == 200


def test_sub_request_errors_keep_their_own_status(mock_pi: RunningMock) -> None:
    result = _ok(
        mock_pi,
        {
            "missing": {"Method": "GET", "Resource": "/piwebapi/nothing"},
            "method": {"Method": "DELETE", "Resource": "/piwebapi/system"},
            "outside": {"Method": "GET", "Resource": "/admin/clock"},
            "nested": {"Method": "POST", "Resource": "/piwebapi/batch", "Content": "{}"},
            "many": {
                "Method": "GET",
                "Resource": "{0}",
                "Parameters": ["$.missing.Content.Errors[*]"],
            },
            "unrelated": {"Method": "GET", "Resource": "$.missing.Content.Errors[0]"},
            "badpath": {"Method": "GET", "Resource": "$..[", "ParentIds": ["missing"]},
        },
    )
    assert result["missing"]["Status"] == 404
    assert result["method"]["Status"] == 405
    assert result["outside"]["Status"] == 400
    assert result["nested"]["Status"] == 400
    assert result["many"]["Status"] == 400  # "missing" is not among its parents: nothing to select
    assert result["unrelated"]["Status"] == 400
    assert result["badpath"]["Status"] == 424  # its parent failed first
    assert all(sub["Content"]["Errors"] for sub in result.values())


def test_multiple_tokens_need_a_request_template(mock_pi: RunningMock) -> None:
    result = _ok(
        mock_pi,
        {
            "sys": {"Method": "GET", "Resource": "/piwebapi/system"},
            "x": {
                "Method": "GET",
                "Resource": "{0}",
                "Parameters": ["$.sys.Content.Links.*"],
                "ParentIds": ["sys"],
            },
        },
    )
    assert result["x"]["Status"] == 400 and "RequestTemplate" in result["x"]["Content"]["Errors"][0]


def test_keys_are_case_insensitive_and_methods_any_case(mock_pi: RunningMock) -> None:
    result = _ok(
        mock_pi,
        {
            "a": {"method": "get", "resource": "/piwebapi/system"},
            "b": {"METHOD": "GET", "RESOURCE": "$.a.content.links.status", "parentids": ["a"]},
        },
    )
    assert result["b"]["Status"] == 200 and result["b"]["Content"]["State"] == "Running"


def test_sub_request_headers_never_make_a_sub_response_unreadable(mock_pi: RunningMock) -> None:
    headers = {"Cache-Control": "no-cache", "Accept-Encoding": "gzip"}  # gzip would break the splice
    many = {str(i): {"Method": "GET", "Resource": "/piwebapi/system", "Headers": headers} for i in range(3)}
    result = _ok(mock_pi, many)
    assert all(sub["Content"]["ProductTitle"] == "PI Web API" for sub in result.values())


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([{"Method": "GET"}], "must be a JSON object"),
        ({"a": "GET /piwebapi"}, "must be a JSON object"),
        ({"a": {"Resource": "/piwebapi"}}, "has no Method"),
        ({"a": {"Method": "GET"}}, "needs a Resource or a RequestTemplate"),
        (
            {"a": {"Method": "GET", "Resource": "/piwebapi", "RequestTemplate": {"Resource": "x"}}},
            "exactly one",
        ),
        ({"a": {"Method": "GET", "RequestTemplate": {}}}, "string Resource"),
        ({"a": {"Method": "POST", "Resource": "/piwebapi", "Content": {"Name": "x"}}}, "must be a string"),
        ({"a": {"Method": "GET", "Resource": "/piwebapi", "Parameters": "$.b"}}, "must be a list"),
        ({"a": {"Method": "GET", "Resource": "/piwebapi", "ParentIds": [1]}}, "list of strings"),
        ({"a": {"Method": "GET", "Resource": "/piwebapi", "Headers": {"X": 1}}}, "map names to strings"),
        ({"a": {"Method": "GET", "Resource": "/piwebapi", "ParentIds": ["zz"]}}, "unknown ParentIds: zz"),
        ({"a": {"Method": "GET", "Resource": "/piwebapi", "ParentIds": ["a"]}}, "form a cycle"),
        (
            {
                "a": {"Method": "GET", "Resource": "/piwebapi", "ParentIds": ["c"]},
                "b": {"Method": "GET", "Resource": "/piwebapi", "ParentIds": ["a"]},
                "c": {"Method": "GET", "Resource": "/piwebapi", "ParentIds": ["b"]},
                "d": {"Method": "GET", "Resource": "/piwebapi"},
            },
            "requests a, b, c form a cycle",
        ),
    ],
)
def test_malformed_batches_are_rejected_whole(mock_pi: RunningMock, body: object, message: str) -> None:
    answer = _batch(mock_pi, body)
    assert answer.status_code == 400
    assert message in answer.json()["Errors"][0]


def test_bad_json_and_empty_batch(mock_pi: RunningMock) -> None:
    headers = {**CSRF, "Content-Type": "application/json"}
    for raw in (b"{", b"", b"\xff", b"null", b'"text"'):
        answer = requests.post(mock_pi.api + "/batch", data=raw, headers=headers)
        assert answer.status_code == 400, raw
        assert answer.json()["Errors"]
    assert _ok(mock_pi, {}) == {}


def test_batch_needs_the_csrf_header(mock_pi: RunningMock) -> None:
    answer = requests.post(mock_pi.api + "/batch", json={"a": {"Method": "GET", "Resource": "/piwebapi"}})
    assert answer.status_code == 400 and "X-Requested-With" in answer.json()["Errors"][0]


def test_jsonpath_subset() -> None:
    doc = {"a": {"Content": {"Items": [{"Links": {"X": 1}}, {"Links": {"X": 2}}], "Name": "n"}}}
    assert jsonpath.select(doc, "$.a.Content.Items[*].Links.X") == [1, 2]
    assert jsonpath.select(doc, "$['a'].Content.Items[-1].Links.X") == [2]
    assert jsonpath.select(doc, '$.a["Content"].name') == ["n"]
    assert jsonpath.select(doc, "$..X") == [1, 2]
    assert jsonpath.select(doc, "$.a.Content.Items[5]") == []
    assert jsonpath.select(doc, "$.a.Content.*") == [doc["a"]["Content"]["Items"], "n"]
    for bad in ("a.b", "$.a[", "$.a[x]"):
        with pytest.raises(jsonpath.JSONPathError):
            jsonpath.select(doc, bad)


def test_recorded_sub_requests_are_spliced_unchanged(mock_pi: RunningMock) -> None:
    points = requests.get(mock_pi.api + "/dataservers").json()["Items"][0]["Links"]["Points"]
    items = requests.get(points, params={"maxCount": 3}).json()["Items"]
    urls = [p["Links"]["RecordedData"] + "?startTime=*-2h&endTime=*&maxCount=2000" for p in items]
    result = _ok(mock_pi, {f"r{i}": {"Method": "GET", "Resource": url} for i, url in enumerate(urls)})
    for i, url in enumerate(urls):
        assert result[f"r{i}"]["Status"] == 200
        assert result[f"r{i}"]["Content"] == requests.get(url).json()


@pytest.mark.slow
def test_batch_adds_little_over_its_sub_requests(mock_pi: RunningMock) -> None:
    points = requests.get(mock_pi.api + "/dataservers").json()["Items"][0]["Links"]["Points"]
    items = requests.get(points, params={"maxCount": 40}).json()["Items"]
    window = "startTime=2025-01-01T00:00:00Z&endTime=2025-01-06T00:00:00Z&maxCount=10000"
    urls = [p["Links"]["RecordedData"] + "?" + window for p in items if p["PointType"].startswith("Float")][
        :10
    ]
    body = {str(i): {"Method": "GET", "Resource": url} for i, url in enumerate(urls)}
    with requests.Session() as session:
        direct = batch = float("inf")
        for _ in range(3):  # best of three, against noise
            started = time.perf_counter()
            size = sum(len(session.get(url).content) for url in urls)
            direct = min(direct, time.perf_counter() - started)
            started = time.perf_counter()
            answer = session.post(mock_pi.api + "/batch", json=body, headers=CSRF)
            batch = min(batch, time.perf_counter() - started)
    assert answer.status_code == 207 and len(answer.content) >= size
    assert batch < direct * 2 + 0.1, (batch, direct)  # generous: CI machines are shared
