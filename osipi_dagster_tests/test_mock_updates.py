"""Stream updates on the mock over real HTTP: registration, markers, caches, shapes, status codes.

The field lists are the swagger models' (``StreamUpdatesRegister``, ``StreamUpdatesRetrieve``,
``DataPipeEvent`` in ``pidevguru/PI-Web-API-Client-Generators`` ``swagger.json``), in the order of the
reference's samples, plus ``Links`` (the topic page's ``Updates`` link on a registration, the doc sample's
empty ``Links`` on a read); ``Exception`` appears only when there is one.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import orjson
import pytest
import requests

from osipi_dagster.mock.server import RunningMock
from osipi_dagster.mock.timeparse import format_time

CSRF = {"X-Requested-With": "test"}
MARKER = re.compile(r"[0-9a-f]{32}_\d+")
EVENT_FIELDS = [
    "Action", "PreviousEventAction", "Timestamp", "Value", "UnitsAbbreviation", "Good", "Questionable",
    "Substituted", "Annotated",
]  # fmt: skip
RETRIEVE_FIELDS = [
    "Source", "SourceName", "SourcePath", "RequestedMarker", "LatestMarker", "Status", "Events", "Links"
]  # fmt: skip
FLOW = "tag:=*Unit01.FIC0101.PV"  # Float32, 1 s
PRESSURE = "tag:=*Unit01.PI0103.PV"  # Float32, 1 s


def _web(mock: RunningMock, query: str) -> str:
    return requests.get(mock.api + "/points/search", params={"query": query}, timeout=30).json()["Items"][0][
        "WebId"
    ]


def register(mock: RunningMock, *webs: str, **params: str) -> requests.Response:
    """``POST /streams/{webId}/updates`` for one WebID, ``POST /streamsets/updates`` for several."""
    if len(webs) == 1:
        return requests.post(f"{mock.api}/streams/{webs[0]}/updates", params=params, headers=CSRF, timeout=30)
    return requests.post(
        f"{mock.api}/streamsets/updates", params={"webId": list(webs), **params}, headers=CSRF, timeout=30
    )


def read(mock: RunningMock, marker: str, **params: str) -> requests.Response:
    return requests.get(f"{mock.api}/streams/updates/{marker}", params=params, timeout=30)


def read_set(mock: RunningMock, *markers: str, **params: str) -> requests.Response:
    return requests.get(
        f"{mock.api}/streamsets/updates", params={"marker": list(markers), **params}, timeout=30
    )


def advance(mock: RunningMock, interval: str) -> None:
    assert requests.post(mock.url + "/admin/clock", json={"advance": interval}, timeout=30).status_code == 200


def _element_attributes(mock: RunningMock) -> tuple[str, str]:
    """(WebID of a static attribute, WebID of a PI Point attribute) of one equipment element."""
    server = requests.get(mock.api + "/assetservers", timeout=30).json()["Items"][0]
    database = requests.get(server["Links"]["Databases"], timeout=30).json()["Items"][0]
    elements = requests.get(database["Links"]["Elements"], params={"searchFullHierarchy": "true"}, timeout=30)
    element = next(e for e in elements.json()["Items"] if not e["HasChildren"])
    values = requests.get(f"{mock.api}/streamsets/{element['WebId']}/value", timeout=30).json()["Items"]
    static = next(s["WebId"] for s in values if s["Value"]["Timestamp"] == "1970-01-01T00:00:00Z")
    live = next(s["WebId"] for s in values if s["Value"]["Timestamp"] != "1970-01-01T00:00:00Z")
    return static, live


# -- registration -------------------------------------------------------------------------------------------


def test_register_one_stream(mock_pi: RunningMock) -> None:
    web = _web(mock_pi, FLOW)
    answer = register(mock_pi, web)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert list(body) == ["Source", "SourceName", "SourcePath", "Status", "LatestMarker", "Links"]
    assert body["Source"] == web and body["SourceName"] == "Plant1.Area1.Unit01.FIC0101.PV"
    assert body["SourcePath"] == "\\\\PIMOCK\\Plant1.Area1.Unit01.FIC0101.PV"
    assert body["Status"] == "Succeeded" and MARKER.fullmatch(body["LatestMarker"])
    location = f"{mock_pi.api}/streams/updates/{body['LatestMarker']}"
    assert answer.headers["Location"] == location and body["Links"] == {"Updates": location}
    again = register(mock_pi, web).json()
    assert again["Status"] == "AlreadyRegistered" and again["LatestMarker"] != body["LatestMarker"]


def test_register_a_stream_set(mock_pi: RunningMock) -> None:
    webs = [_web(mock_pi, FLOW), _web(mock_pi, PRESSURE)]
    answer = register(mock_pi, *webs, webIdType="IDOnly")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert list(body) == ["Items", "Links"] and body["Links"] == {}
    assert [item["SourceName"].endswith(("FIC0101.PV", "PI0103.PV")) for item in body["Items"]] == [True] * 2
    assert all(item["Source"].startswith("I1DP") for item in body["Items"])  # webIdType applies to Source
    markers = [item["LatestMarker"] for item in body["Items"]]
    assert len(set(markers)) == 2 and len({m.split("_")[0] for m in markers}) == 1  # one cache per user
    assert (
        answer.headers["Location"]
        == f"{mock_pi.api}/streamsets/updates?marker={markers[0]}&marker={markers[1]}"
    )
    slim = register(mock_pi, *webs, selectedFields="Items.LatestMarker").json()
    assert slim == {
        "Items": [
            {"LatestMarker": slim["Items"][0]["LatestMarker"]},
            {"LatestMarker": slim["Items"][1]["LatestMarker"]},
        ]
    }


def test_register_an_attribute_over_a_point(mock_pi: RunningMock) -> None:
    _, attribute = _element_attributes(mock_pi)
    body = register(mock_pi, attribute).json()
    assert body["Status"] == "Succeeded" and body["Source"] == attribute and "|" in body["SourcePath"]


def test_registration_needs_the_csrf_header(mock_pi: RunningMock) -> None:
    web = _web(mock_pi, FLOW)
    single = requests.post(f"{mock_pi.api}/streams/{web}/updates", timeout=30)
    several = requests.post(f"{mock_pi.api}/streamsets/updates", params={"webId": web}, timeout=30)
    for answer in (single, several):
        assert answer.status_code == 400 and "X-Requested-With" in answer.json()["Errors"][0]


def test_registration_errors(mock_pi: RunningMock) -> None:
    web = _web(mock_pi, FLOW)
    static, _ = _element_attributes(mock_pi)
    assert register(mock_pi, web).status_code == 200
    for webs in (["not-a-webid"], [web, "F1DPjunk"]):
        answer = register(mock_pi, *webs)
        assert answer.status_code == 400 and "Unknown or invalid WebID" in answer.json()["Errors"][0]
    for webs in ([static], [web, static]):
        answer = register(mock_pi, *webs)
        assert answer.status_code == 409 and "static attribute" in answer.json()["Errors"][0]
    element = requests.get(mock_pi.api + "/assetservers", timeout=30).json()["Items"][0]["WebId"]
    assert register(mock_pi, element).status_code == 400  # not a stream
    assert requests.post(f"{mock_pi.api}/streamsets/updates", headers=CSRF, timeout=30).status_code == 400
    # A well-formed WebID of a point that does not exist: that stream fails, the others register.
    missing = "I1DP" + web[4:26] + "AAAAAA"  # IDOnly: the server's GUID and point id 0, which no point has
    body = register(mock_pi, web, missing).json()
    assert [item["Status"] for item in body["Items"]] == ["AlreadyRegistered", "Failed"]  # (registered above)
    failed = body["Items"][1]
    assert failed["Source"] == missing and "LatestMarker" not in failed
    assert failed["Exception"]["Errors"] and "not found" in failed["Exception"]["Errors"][0]
    alone = register(mock_pi, missing)
    assert alone.status_code == 200 and alone.json()["Status"] == "Failed" and "Location" not in alone.headers


# -- retrieval ----------------------------------------------------------------------------------------------


def test_registration_starts_at_now_and_markers_chain(make_mock: Callable[..., RunningMock]) -> None:
    mock = make_mock()
    web = _web(mock, FLOW)
    first = register(mock, web).json()["LatestMarker"]
    nothing = read(mock, first)
    assert nothing.status_code == 200 and nothing.json()["Events"] == []
    advance(mock, "3s")
    second = nothing.json()["LatestMarker"]
    answer = read(mock, second)
    body = answer.json()
    assert list(body) == RETRIEVE_FIELDS and body["Status"] == "Updated" and body["Links"] == {}
    assert body["RequestedMarker"] == second and body["Source"] == web
    assert answer.headers["Location"] == f"{mock.api}/streams/updates/{body['LatestMarker']}"
    events = body["Events"]
    # Only what happened after the registration: the 1 s values stamped after 12:00:00, as Add events.
    assert [e["Timestamp"] for e in events] == [f"2025-01-06T12:00:0{s}Z" for s in (1, 2, 3)]
    assert all(list(e) == EVENT_FIELDS for e in events)
    assert {(e["Action"], e["PreviousEventAction"], e["UnitsAbbreviation"]) for e in events} == {
        ("Add", "PreviousEventArchived", "m3/h")
    }
    recorded = requests.get(
        f"{mock.api}/streams/{web}/recorded", params={"startTime": "*-3s", "endTime": "*"}, timeout=30
    ).json()["Items"]
    assert [{k: e[k] for k in recorded[0]} for e in events] == recorded[-3:]


def test_a_marker_reads_the_same_until_its_cache_goes(make_mock: Callable[..., RunningMock]) -> None:
    mock = make_mock()
    marker = register(mock, _web(mock, FLOW)).json()["LatestMarker"]
    advance(mock, "2s")
    once, twice = read(mock, marker), read(mock, marker)
    assert once.content == twice.content and len(once.json()["Events"]) == 2
    advance(mock, "5s")
    assert read(mock, marker).content == once.content  # bound to its answer, however late it is read again
    after = read(mock, once.json()["LatestMarker"]).json()
    assert [e["Timestamp"] for e in after["Events"]] == [f"2025-01-06T12:00:0{s}Z" for s in range(3, 8)]
    assert after["LatestMarker"] != once.json()["LatestMarker"]


def test_selected_fields_and_webid_type_of_a_read(make_mock: Callable[..., RunningMock]) -> None:
    mock = make_mock()
    marker = register(mock, _web(mock, FLOW)).json()["LatestMarker"]
    advance(mock, "1s")
    slim = read(mock, marker, selectedFields="LatestMarker;Events.Timestamp;Events.Action").json()
    assert list(slim) == ["LatestMarker", "Events"]
    assert slim["Events"] == [{"Action": "Add", "Timestamp": "2025-01-06T12:00:01Z"}]
    assert read(mock, marker, webIdType="PathOnly").json()["Source"].startswith("P1DP")
    assert read(mock, marker, webIdType="Nonsense").status_code == 400


def test_bad_markers(mock_pi: RunningMock) -> None:
    marker = register(mock_pi, _web(mock_pi, FLOW)).json()["LatestMarker"]
    cache, _ = marker.split("_")
    for text, status in (("garbage", 409), (f"{cache}_99999", 409), ("0" * 32 + "_0", 404)):
        answer = read(mock_pi, text)
        assert answer.status_code == status, text
        expected = "Cache not found" if status == 404 else "Invalid marker supplied"
        assert answer.json()["Errors"][0].startswith(expected)
    assert requests.get(f"{mock_pi.api}/streamsets/updates", timeout=30).status_code == 400


def test_old_markers_become_invalid(make_mock: Callable[..., RunningMock]) -> None:
    mock = make_mock()
    first = marker = register(mock, _web(mock, FLOW)).json()["LatestMarker"]
    for _ in range(10):
        marker = read(mock, marker).json()["LatestMarker"]
    assert read(mock, first).status_code == 409  # a registration keeps its last 8 markers
    assert read(mock, marker).status_code == 200


def test_caches_expire_when_unused(make_mock: Callable[..., RunningMock]) -> None:
    mock = make_mock(updates_cache_minutes=2)
    web = _web(mock, FLOW)
    marker = register(mock, web).json()["LatestMarker"]
    advance(mock, "90s")
    marker = read(mock, marker).json()["LatestMarker"]  # a read keeps the cache alive
    advance(mock, "90s")
    assert read(mock, marker).status_code == 200
    advance(mock, "121s")
    gone = read(mock, marker)
    assert gone.status_code == 404 and "register the stream for updates again" in gone.json()["Errors"][0]
    again = register(mock, web).json()
    assert again["Status"] == "Succeeded" and again["LatestMarker"].split("_")[0] != marker.split("_")[0]
    advance(mock, "1s")
    assert [e["Timestamp"] for e in read(mock, again["LatestMarker"]).json()["Events"]] == [
        format_time(mock.state.clock.now_ns())
    ]  # a new registration starts at now: the gap is the client's to fill from recorded values


def test_admin_expires_every_cache(make_mock: Callable[..., RunningMock]) -> None:
    mock = make_mock(auth="basic", users="ann:pw1,bob:pw2")
    web = _web_as(mock, FLOW, ("ann", "pw1"))
    markers = {}
    for user in (("ann", "pw1"), ("bob", "pw2")):
        answer = requests.post(f"{mock.api}/streams/{web}/updates", headers=CSRF, auth=user, timeout=30)
        markers[user[0]] = answer.json()["LatestMarker"]
    assert markers["ann"].split("_")[0] != markers["bob"].split("_")[0]  # one cache per user
    bob_reads_ann = requests.get(
        f"{mock.api}/streams/updates/{markers['ann']}", auth=("bob", "pw2"), timeout=30
    )
    assert bob_reads_ann.status_code == 404
    assert requests.post(mock.url + "/admin/updates/expire", timeout=30).json() == {"Expired": 2}
    for user, password in (("ann", "pw1"), ("bob", "pw2")):
        answer = requests.get(
            f"{mock.api}/streams/updates/{markers[user]}", auth=(user, password), timeout=30
        )
        assert answer.status_code == 404


def _web_as(mock: RunningMock, query: str, user: tuple[str, str]) -> str:
    answer = requests.get(mock.api + "/points/search", params={"query": query}, auth=user, timeout=30)
    return answer.json()["Items"][0]["WebId"]


def test_a_stream_set_read_reports_a_dead_marker_in_its_item(make_mock: Callable[..., RunningMock]) -> None:
    mock = make_mock(updates_cache_minutes=1)
    flow, pressure = _web(mock, FLOW), _web(mock, PRESSURE)
    expired = register(mock, flow).json()["LatestMarker"]
    advance(mock, "2m")
    alive = register(mock, pressure).json()["LatestMarker"]  # a new cache: the old one expired
    advance(mock, "2s")
    answer = read_set(mock, expired, alive, "garbage")
    assert answer.status_code == 200
    dead, live, invalid = answer.json()["Items"]
    assert list(dead) == ["RequestedMarker", "Events", "Exception", "Links"] and dead["Events"] == []
    assert dead["RequestedMarker"] == expired and dead["Exception"]["Errors"][0].startswith("Cache not found")
    assert invalid["Exception"]["Errors"][0].startswith("Invalid marker supplied")
    assert list(live) == RETRIEVE_FIELDS and live["Source"] == pressure and len(live["Events"]) == 2
    assert answer.headers["Location"] == f"{mock.api}/streamsets/updates?marker={live['LatestMarker']}"
    slim = read_set(mock, expired, alive, selectedFields="Items.LatestMarker;Items.Exception").json()
    assert slim["Items"][0].keys() == {"Exception"} and slim["Items"][1].keys() == {"LatestMarker"}


def test_updates_through_a_batch(make_mock: Callable[..., RunningMock]) -> None:
    """A batch registers with POST and reads the marker its sub-response's Location header names."""
    mock = make_mock()
    web = _web(mock, FLOW)
    first = {"reg": {"Method": "POST", "Resource": f"{mock.api}/streams/{web}/updates"}}
    answer = requests.post(mock.api + "/batch", json=first, headers=CSRF, timeout=30).json()
    assert answer["reg"]["Status"] == 200 and answer["reg"]["Headers"]["Location"].endswith(
        answer["reg"]["Content"]["LatestMarker"]
    )
    advance(mock, "2s")
    chained = {
        "reg": {"Method": "POST", "Resource": f"{mock.api}/streams/{web}/updates"},
        "read": {"Method": "GET", "Resource": "$.reg.Headers.Location", "ParentIds": ["reg"]},
    }
    result = requests.post(mock.api + "/batch", json=chained, headers=CSRF, timeout=30).json()
    assert result["reg"]["Content"]["Status"] == "AlreadyRegistered"
    assert result["read"]["Status"] == 200 and result["read"]["Content"]["Events"] == []


@pytest.mark.parametrize("route", ["/streams/updates/x/y", "/streamsets/updates/x"])
def test_unknown_update_routes_are_404(mock_pi: RunningMock, route: str) -> None:
    assert requests.get(mock_pi.api + route, timeout=30).status_code == 404


def test_two_mocks_with_one_seed_and_clock_answer_the_same_bytes(
    make_mock: Callable[..., RunningMock],
) -> None:
    mocks = [make_mock(edit_share=0.2, late_share=0.5), make_mock(edit_share=0.2, late_share=0.5)]
    transcripts = []
    for mock in mocks:
        points = requests.get(
            mock.api + "/points/search",
            params={"query": "tag:=Plant1.Area1.Unit0*", "maxCount": 40},
            timeout=30,
        ).json()["Items"]
        steps = [register(mock, *[p["WebId"] for p in points])]
        markers = [item["LatestMarker"] for item in steps[0].json()["Items"]]
        for step in range(4):
            advance(mock, "7m")
            if step == 2:
                edit = {"WebId": points[0]["WebId"], "Timestamp": "*-2d", "Value": 3.5}
                assert requests.post(mock.url + "/admin/edits", json={"Edits": [edit]}, timeout=30).ok
            steps.append(read_set(mock, *markers))
            markers = [item["LatestMarker"] for item in steps[-1].json()["Items"]]
        transcripts.append(
            [
                (s.content.replace(mock.url.encode(), b""), s.headers["Location"].replace(mock.url, ""))
                for s in steps
            ]
        )
    assert transcripts[0] == transcripts[1]
    actions = {
        e["Action"]
        for step in transcripts[0][1:]
        for item in orjson.loads(step[0])["Items"]
        for e in item["Events"]
    }
    assert {"Add", "Update"} <= actions


def test_a_clock_moved_back_gives_no_events_and_keeps_the_position(
    make_mock: Callable[..., RunningMock],
) -> None:
    mock = make_mock()
    marker = register(mock, _web(mock, FLOW)).json()["LatestMarker"]
    advance(mock, "-1m")
    back = read(mock, marker).json()
    assert back["Events"] == []
    advance(mock, "1m")
    advance(mock, "1s")
    assert [e["Timestamp"] for e in read(mock, back["LatestMarker"]).json()["Events"]] == [
        "2025-01-06T12:00:01Z"
    ]
