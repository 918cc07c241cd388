"""The mock's event frames over real HTTP: every search mode, filters, paging, open frames, lookups."""

from __future__ import annotations

import uuid
from datetime import datetime

import pytest
import requests

from osipi_dagster.mock import webids
from osipi_dagster.mock.eventframes import OPEN_END
from osipi_dagster.mock.server import RunningMock
from osipi_dagster.mock.timeparse import NS

NOW = datetime.fromisoformat("2025-01-06T12:00:00+00:00")
HOUR = 3_600 * NS


def get(mock: RunningMock, resource: str, status: int = 200, /, **params) -> dict:
    """GET ``/piwebapi{resource}`` (or an absolute link) and check the status."""
    url = resource if resource.startswith("http") else mock.api + resource
    response = requests.get(url, params=params, timeout=30)
    assert response.status_code == status, response.text
    return response.json()


def frames_url(mock: RunningMock) -> str:
    server = get(mock, "/assetservers")["Items"][0]
    return get(mock, server["Links"]["Databases"])["Items"][0]["Links"]["EventFrames"]


def search(mock: RunningMock, **params) -> list[dict]:
    return get(mock, frames_url(mock), **({"maxCount": 150_000} | params))["Items"]


def ns(text: str) -> int:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return int(moment.timestamp()) * NS + moment.microsecond * 1000


def everything(mock: RunningMock) -> list[dict]:
    """Every top-level frame the mock holds (search mode None has no time condition)."""
    return search(mock, searchMode="None")


# -- the event frame object --------------------------------------------------------------------------------


def test_default_search_and_frame_shape(mock_pi: RunningMock) -> None:
    frames = get(mock_pi, frames_url(mock_pi))["Items"]  # Overlapped, *-8h to *
    assert frames
    now = ns("2025-01-06T12:00:00Z")
    for frame in frames:
        assert ns(frame["StartTime"]) <= now
        assert frame["EndTime"] == OPEN_END or ns(frame["EndTime"]) >= now - 8 * HOUR
        assert "PrimaryReferencedElementWebId" not in frame and "Attributes" not in frame
        assert frame["Links"]["PrimaryReferencedElement"].endswith(frame["RefElementWebIds"][0])
        assert frame["Links"]["RecordedData"].endswith(f"/streamsets/{frame['WebId']}/recorded")
        assert frame["WebId"].startswith("F1Fm") and frame["Path"].startswith(
            "\\\\AFMOCK\\Operations\\EventFrames["
        )
        assert frame["Severity"] in ("None", "Information", "Warning", "Minor", "Major", "Critical")
    assert [f["Name"] for f in frames] == sorted((f["Name"] for f in frames), key=str.lower)
    assert {f["TemplateName"] for f in everything(mock_pi)} >= {"Batch", "Downtime", "Process Alarm"}


def test_some_frames_are_open_and_some_acknowledged(mock_pi: RunningMock) -> None:
    frames = everything(mock_pi)
    assert any(f["EndTime"] == OPEN_END for f in frames)
    alarms = [f for f in frames if f["CanBeAcknowledged"]]
    acknowledged = [f for f in alarms if f["IsAcknowledged"]]
    assert acknowledged and len(acknowledged) < len(alarms)
    for frame in acknowledged:
        assert frame["AcknowledgedBy"].startswith("MOCK\\") and ns(frame["AcknowledgedDate"]) >= ns(
            frame["StartTime"]
        )
    assert all(
        f["AcknowledgedBy"] == "" and "AcknowledgedDate" not in f for f in frames if not f["IsAcknowledged"]
    )
    assert not any(f["IsAcknowledged"] for f in frames if not f["CanBeAcknowledged"])


def test_frames_cover_the_configured_days(mock_pi: RunningMock) -> None:
    starts = [ns(f["StartTime"]) for f in everything(mock_pi)]
    now = ns("2025-01-06T12:00:00Z")
    assert max(starts) <= now
    assert now - 31 * 24 * HOUR <= min(starts) <= now - 29 * 24 * HOUR


# -- search modes ------------------------------------------------------------------------------------------

WINDOW = ("2025-01-05T06:00:00Z", "2025-01-06T03:00:00Z")


def _matches(mode: str, frame: dict, lo: int, hi: int) -> bool:
    """The reference's search-mode semantics, written independently of the mock."""
    start, is_open = ns(frame["StartTime"]), frame["EndTime"] == OPEN_END
    end = ns("9999-12-31T23:59:59Z") if is_open else ns(frame["EndTime"])
    return {
        "StartInclusive": lo <= start <= hi,
        "EndInclusive": lo <= end <= hi,
        "Inclusive": lo <= start and end <= hi,
        "Overlapped": start <= hi and end >= lo,
        "InProgress": is_open and lo <= start <= hi,
        "BackwardFromStartTime": start <= lo,
        "ForwardFromStartTime": start >= lo,
        "BackwardFromEndTime": end <= lo,
        "ForwardFromEndTime": end >= lo,
        "BackwardInProgress": is_open and start <= lo,
        "ForwardInProgress": is_open and start >= lo,
    }[mode]


@pytest.mark.parametrize("mode", ["StartInclusive", "EndInclusive", "Inclusive", "Overlapped"])
def test_window_search_modes(mock_pi: RunningMock, mode: str) -> None:
    lo, hi = (ns(t) for t in WINDOW)
    expected = [f["WebId"] for f in everything(mock_pi) if _matches(mode, f, lo, hi)]
    found = search(mock_pi, searchMode=mode, startTime=WINDOW[0], endTime=WINDOW[1])
    assert expected and [f["WebId"] for f in found] == expected
    swapped = search(mock_pi, searchMode=mode, startTime=WINDOW[1], endTime=WINDOW[0])
    assert [f["WebId"] for f in swapped] == expected


def test_in_progress_mode(mock_pi: RunningMock) -> None:
    now = ns("2025-01-06T12:00:00Z")
    expected = [f["WebId"] for f in everything(mock_pi) if _matches("InProgress", f, now - 24 * HOUR, now)]
    found = search(mock_pi, searchMode="InProgress", startTime="*-1d")
    assert expected and [f["WebId"] for f in found] == expected


@pytest.mark.parametrize(
    ("mode", "key", "start"),
    [
        ("BackwardFromStartTime", "StartTime", "2025-01-05T00:00:00Z"),
        ("ForwardFromStartTime", "StartTime", "2025-01-05T00:00:00Z"),
        ("BackwardFromEndTime", "EndTime", "2025-01-05T00:00:00Z"),
        ("ForwardFromEndTime", "EndTime", "2025-01-05T00:00:00Z"),
        ("BackwardInProgress", "StartTime", "*"),
        ("ForwardInProgress", "StartTime", "2025-01-06T00:00:00Z"),
    ],
)
def test_directional_search_modes(mock_pi: RunningMock, mode: str, key: str, start: str) -> None:
    lo = ns("2025-01-06T12:00:00Z") if start == "*" else ns(start)
    expected = {f["WebId"] for f in everything(mock_pi) if _matches(mode, f, lo, lo)}
    found = search(mock_pi, searchMode=mode, startTime=start)
    assert expected and {f["WebId"] for f in found} == expected
    times = [ns(f[key]) if f[key] != OPEN_END else ns("9999-12-31T23:59:59Z") for f in found]
    assert times == sorted(times, reverse=mode.startswith("Backward"))
    page = search(mock_pi, searchMode=mode, startTime=start, maxCount=5)
    assert [f["WebId"] for f in page] == [f["WebId"] for f in found[:5]]


def test_search_mode_none_ignores_time(mock_pi: RunningMock) -> None:
    assert everything(mock_pi) == search(mock_pi, searchMode="none", startTime="*", endTime="*")


@pytest.mark.parametrize("name", ["endTime", "sortField", "sortOrder"])
def test_directional_modes_reject_end_time_and_sorting(mock_pi: RunningMock, name: str) -> None:
    value = {"endTime": "*", "sortField": "Name", "sortOrder": "Ascending"}[name]
    body = get(mock_pi, frames_url(mock_pi), 400, searchMode="ForwardFromStartTime", **{name: value})
    assert name in body["Errors"][0]


# -- filters, sorting and paging ---------------------------------------------------------------------------


def test_template_and_category_filters(mock_pi: RunningMock) -> None:
    frames = everything(mock_pi)
    alarms = search(mock_pi, searchMode="None", templateName="alarm")
    assert {f["TemplateName"] for f in alarms} == {"Process Alarm", "Equipment Alarm"} & {
        f["TemplateName"] for f in frames
    }
    assert alarms == search(mock_pi, searchMode="None", categoryName="Alarm")
    assert alarms == [f for f in frames if f["CanBeAcknowledged"]]
    batches = search(mock_pi, searchMode="None", templateName="Batch")
    assert batches == [f for f in frames if f["TemplateName"] == "Batch"]
    assert search(mock_pi, searchMode="None", nameFilter="Downtime *") == [
        f for f in frames if f["TemplateName"] == "Downtime"
    ]


def test_severity_and_acknowledgement_filters(mock_pi: RunningMock) -> None:
    frames = everything(mock_pi)
    severe = search(mock_pi, searchMode="None", severity=["Major", "critical"])
    assert severe == [f for f in frames if f["Severity"] in ("Major", "Critical")]
    acknowledged = search(mock_pi, searchMode="None", isAcknowledged="true")
    assert acknowledged == [f for f in frames if f["IsAcknowledged"]]
    assert search(mock_pi, searchMode="None", isAcknowledged="false") == [
        f for f in frames if not f["IsAcknowledged"]
    ]
    assert search(mock_pi, searchMode="None", canBeAcknowledged="false") == [
        f for f in frames if not f["CanBeAcknowledged"]
    ]


def test_referenced_element_filters(mock_pi: RunningMock) -> None:
    frames = everything(mock_pi)
    on_pumps = search(mock_pi, searchMode="None", referencedElementNameFilter="P0*")
    assert on_pumps and all(f["TemplateName"] != "Batch" for f in on_pumps)
    equipment = search(mock_pi, searchMode="None", referencedElementTemplateName="Equipment")
    assert equipment == [f for f in frames if len(f["RefElementWebIds"]) == 2]
    units = search(mock_pi, searchMode="None", referencedElementTemplateName="Process Unit")
    assert units == frames


def test_sorting_and_paging(mock_pi: RunningMock) -> None:
    by_start = search(mock_pi, searchMode="None", sortField="StartTime")
    assert [f["StartTime"] for f in by_start] == sorted(f["StartTime"] for f in by_start)
    by_end = search(mock_pi, searchMode="None", sortField="EndTime", sortOrder="Descending")
    ends = [ns(f["EndTime"]) for f in by_end]
    assert ends == sorted(ends, reverse=True) and by_end[0]["EndTime"] == OPEN_END
    pages = [
        search(mock_pi, searchMode="None", startIndex=i, maxCount=100)
        for i in range(0, len(by_start) + 100, 100)
    ]
    assert [f["WebId"] for page in pages for f in page] == [f["WebId"] for f in everything(mock_pi)]
    assert len(get(mock_pi, frames_url(mock_pi), searchMode="None")["Items"]) == min(1000, len(by_start))


def test_full_hierarchy_adds_batch_phases(mock_pi: RunningMock) -> None:
    top = everything(mock_pi)
    full = search(mock_pi, searchMode="None", searchFullHierarchy="true")
    phases = [f for f in full if f["TemplateName"] == "Batch Phase"]
    assert phases and len(full) == len(top) + len(phases)
    batch = next(f for f in top if f["TemplateName"] == "Batch" and f["EndTime"] != OPEN_END)
    children = get(
        mock_pi, batch["Links"]["EventFrames"], startTime=batch["StartTime"], endTime=batch["EndTime"]
    )
    names = [c["Name"] for c in children["Items"]]
    assert names == ["Charge", "Discharge", "React"]
    assert all(c["Links"]["Parent"] == batch["Links"]["Self"] for c in children["Items"])
    assert all(c["Path"].startswith(batch["Path"] + "\\EventFrames[") for c in children["Items"])
    assert get(mock_pi, batch["Links"]["EventFrames"])["Items"] == []  # default window: the last 8 hours


# -- single frames and their attributes --------------------------------------------------------------------


def test_frame_by_web_id_and_path(mock_pi: RunningMock) -> None:
    frames = search(mock_pi, searchMode="None", searchFullHierarchy="true")
    for frame in frames[:: max(1, len(frames) // 25)]:
        assert get(mock_pi, f"/eventframes/{frame['WebId']}") == frame
        assert get(mock_pi, "/eventframes", path=frame["Path"].upper())["WebId"] == frame["WebId"]
        for webid_type in ("IDOnly", "PathOnly"):
            short = get(mock_pi, f"/eventframes/{frame['WebId']}", webIdType=webid_type)["WebId"]
            assert get(mock_pi, f"/eventframes/{short}")["WebId"] == frame["WebId"]


def test_referenced_elements_and_element_event_frames(mock_pi: RunningMock) -> None:
    alarm = next(f for f in everything(mock_pi) if f["TemplateName"] == "Process Alarm")
    elements = get(mock_pi, alarm["Links"]["ReferencedElements"])["Items"]
    assert [e["WebId"] for e in elements] == alarm["RefElementWebIds"]
    equipment, unit = elements
    assert equipment["Path"].rsplit("\\", 1)[0] == unit["Path"]
    on_equipment = get(mock_pi, equipment["Links"]["EventFrames"], searchMode="None")["Items"]
    assert alarm in on_equipment and all(equipment["WebId"] in f["RefElementWebIds"] for f in on_equipment)
    on_unit = get(mock_pi, unit["Links"]["EventFrames"], searchMode="None")["Items"]
    assert {f["WebId"] for f in on_equipment} < {f["WebId"] for f in on_unit}


def test_event_frame_attributes(mock_pi: RunningMock) -> None:
    frames = everything(mock_pi)
    alarm = next(f for f in frames if f["TemplateName"] == "Process Alarm")
    attributes = {a["Name"]: a for a in get(mock_pi, alarm["Links"]["Attributes"])["Items"]}
    assert set(attributes) == {"Message", "Alarm Type", "Limit", "Process Value"}
    value = attributes["Process Value"]
    assert value["DataReferencePlugIn"] == "PI Point" and value["WebId"].startswith("F1AbF")
    assert value["Links"]["EventFrame"] == alarm["Links"]["Self"] and "/points/" in value["Links"]["Point"]
    assert get(mock_pi, f"/attributes/{value['WebId']}") == value
    assert get(mock_pi, "/attributes", path=value["Path"])["WebId"] == value["WebId"]
    batch = next(f for f in frames if f["TemplateName"] == "Batch")
    names = {a["Name"] for a in get(mock_pi, batch["Links"]["Attributes"])["Items"]}
    assert names == {"Batch ID", "Product", "Recipe", "Operator", "Target Quantity"}
    af = mock_pi.state.af
    product = af.attribute(
        webids.decode(get(mock_pi, batch["Links"]["Attributes"], nameFilter="Product")["Items"][0]["WebId"])
    )
    assert product.owner_kind == "F" and isinstance(product.static_value, str)
    downtime = next(f for f in frames if f["TemplateName"] == "Downtime")
    planned = get(mock_pi, downtime["Links"]["Attributes"], nameFilter="Planned")["Items"][0]
    assert planned["Type"] == "Boolean"


def test_time_context_and_stream_attributes(mock_pi: RunningMock) -> None:
    af = mock_pi.state.af
    now = mock_pi.state.clock.now_ns()
    frames = everything(mock_pi)
    open_frame = next(f for f in frames if f["EndTime"] == OPEN_END)
    closed = next(f for f in frames if f["EndTime"] != OPEN_END)
    assert af.time_context(webids.decode(open_frame["WebId"])) == (ns(open_frame["StartTime"]), now)
    assert af.time_context(webids.decode(closed["WebId"])) == (ns(closed["StartTime"]), ns(closed["EndTime"]))
    attribute = get(mock_pi, closed["Links"]["Attributes"])["Items"][0]
    assert af.time_context(webids.decode(attribute["WebId"])) == af.time_context(
        webids.decode(closed["WebId"])
    )
    from osipi_dagster.mock.params import Params

    names = [a.name for a in af.stream_attributes(webids.decode(closed["WebId"]), Params([], now))]
    assert names == [a["Name"] for a in get(mock_pi, closed["Links"]["Attributes"])["Items"]]


# -- the clock ---------------------------------------------------------------------------------------------


def test_open_frames_close_and_new_frames_start_as_the_clock_moves(make_mock) -> None:
    mock = make_mock(event_frame_days=3)
    frames = search(mock, searchMode="None")
    open_frames = [f for f in frames if f["EndTime"] == OPEN_END]
    assert open_frames
    state = mock.state
    ends = {f["WebId"]: state.event_frames.frame(webids.decode(f["WebId"])).end_ns for f in open_frames}
    state.clock.set(max(ends.values()) + NS)
    for frame in open_frames:
        closed = get(mock, f"/eventframes/{frame['WebId']}")
        assert ns(closed["EndTime"]) == ends[frame["WebId"]] and closed["StartTime"] == frame["StartTime"]
    later = search(mock, searchMode="None")
    assert {f["WebId"] for f in frames} < {f["WebId"] for f in later}
    assert all(ns(f["StartTime"]) <= state.clock.now_ns() for f in later)


def test_acknowledgement_follows_the_clock(make_mock) -> None:
    mock = make_mock(event_frame_days=3)
    frame = search(mock, searchMode="None", isAcknowledged="true")[0]
    mock.state.clock.set(ns(frame["StartTime"]))  # the alarm has just been raised
    before = get(mock, f"/eventframes/{frame['WebId']}")
    assert (
        before["IsAcknowledged"] is False and before["AcknowledgedBy"] == "" and before["EndTime"] == OPEN_END
    )
    mock.state.clock.set(ns(frame["AcknowledgedDate"]))
    assert get(mock, f"/eventframes/{frame['WebId']}")["IsAcknowledged"] is True


def test_frames_that_have_not_started_are_unknown(make_mock) -> None:
    mock = make_mock(event_frame_days=3)
    state = mock.state
    frame = search(mock, searchMode="None", sortField="StartTime", sortOrder="Descending")[0]
    state.clock.set(ns(frame["StartTime"]) - NS)
    get(mock, f"/eventframes/{frame['WebId']}", 404)
    assert frame["WebId"] not in {f["WebId"] for f in search(mock, searchMode="None")}


# -- determinism and bad input -----------------------------------------------------------------------------


def test_identical_requests_give_identical_bytes(mock_pi: RunningMock) -> None:
    url = frames_url(mock_pi)
    params = {"searchMode": "None", "searchFullHierarchy": "true", "maxCount": 150_000}
    first = requests.get(url, params=params, timeout=30).content
    assert requests.get(url, params=params, timeout=30).content == first


def test_bad_input_answers(mock_pi: RunningMock) -> None:
    url = frames_url(mock_pi)
    get(mock_pi, url, 400, searchMode="Exact")
    get(mock_pi, url, 400, severity="Dreadful")
    get(mock_pi, url, 400, sortField="Colour")
    get(mock_pi, url, 400, startTime="not a time")
    get(mock_pi, url, 400, maxCount=150_001)
    get(mock_pi, url, 400, isAcknowledged="perhaps")
    get(mock_pi, "/eventframes/nonsense", 400)
    get(mock_pi, "/eventframes", 400)
    get(mock_pi, "/eventframes", 404, path="\\\\AFMOCK\\Operations\\EventFrames[Nothing]")
    get(mock_pi, "/eventframes", 404, path="\\\\AFMOCK\\Operations\\EventFrames[Batch X 2025-01-05 00:00:00]")
    af = mock_pi.state.af
    unknown = webids.encode(
        "Fm", (af.system_guid, uuid.UUID(int=5)), "\\\\AFMOCK\\Operations\\EventFrames[X]"
    )
    get(mock_pi, f"/eventframes/{unknown}", 404)
    get(mock_pi, f"/eventframes/{unknown}/attributes", 404)
    element = get(mock_pi, "/elements", path="\\\\AFMOCK\\Operations\\MockChem")
    get(mock_pi, f"/eventframes/{element['WebId']}", 404)
    assert get(mock_pi, element["Links"]["EventFrames"], searchMode="None")["Items"] == []
