"""The mock's notification rules over real HTTP: search, look-ups, subscribers, the rules' criteria against
the mock's alarm event frames, determinism, and the admin acknowledgement of an alarm."""

from __future__ import annotations

import uuid
from collections import Counter

import pytest
import requests

from osipi_dagster.mock import webids
from osipi_dagster.mock.notifications import RULE_SPECS, Query
from osipi_dagster.mock.server import RunningMock

UNIT = "\\\\AFMOCK\\Operations\\MockChem\\Plant1\\Area1\\Unit01"


def get(mock: RunningMock, resource: str, status: int = 200, /, **params) -> dict:
    """GET ``/piwebapi{resource}`` (or an absolute link) and check the status."""
    url = resource if resource.startswith("http") else mock.api + resource
    response = requests.get(url, params=params, timeout=30)
    assert response.status_code == status, response.text
    return response.json()


def database_id(mock: RunningMock) -> str:
    return get(mock, "/assetdatabases", path="\\\\AFMOCK\\Operations")["WebId"]


def rules(mock: RunningMock, **params) -> list[dict]:
    return get(mock, "/notificationrules/search", databaseWebId=database_id(mock), **params)["Items"]


def acknowledge(mock: RunningMock, web_id: str, **extra) -> requests.Response:
    return requests.post(
        f"{mock.url}/admin/eventframes/acknowledge", json={"WebId": web_id, **extra}, timeout=30
    )


def test_every_unit_owns_the_rules_and_search_filters_them(mock_pi: RunningMock) -> None:
    units = len(mock_pi.state.af.units)
    found = rules(mock_pi)
    assert len(found) == units * len(RULE_SPECS)
    assert [r["Name"].lower() for r in found] == sorted(r["Name"].lower() for r in found)
    assert Counter(r["Name"] for r in found) == {spec.name: units for spec in RULE_SPECS}
    statuses = Counter(r["Status"] for r in found)
    assert set(statuses) == {"Enabled", "Disabled"} and statuses["Disabled"] < statuses["Enabled"] / 4
    rule = next(r for r in found if r["Path"] == f"{UNIT}\\NotificationRules[Critical Process Alarms]")
    assert rule["WebId"].startswith("F1NR") and uuid.UUID(rule["Id"])
    assert rule["Criteria"] == "Template:='Process Alarm' Severity:>=Major"
    assert rule["AutoCreated"] is False and rule["MultiTriggerEventOption"] == "HighestSeverity"
    assert rule["ResendInterval"] == "PT1H" and rule["NonrepetitionInterval"] == "PT0S"
    assert rule["CategoryNames"] == ["Alarm", "Safety"] and rule["TemplateName"] == ""
    assert rule["Links"] == {"Self": f"{mock_pi.api}/notificationrules/{rule['WebId']}"}

    critical = rules(mock_pi, query="Name:='Critical*' Category:=Safety")
    assert {r["Name"] for r in critical} == {"Critical Process Alarms"} and len(critical) == units
    assert {r["Name"] for r in rules(mock_pi, query="*Downtime")} == {"Unplanned Downtime"}
    assert rules(mock_pi, query="Description:='*on Unit01' Name:<>'Process*'") and all(
        r["Name"] != "Process Alarms" for r in rules(mock_pi, query="Name:<>'Process Alarms'")
    )
    page = rules(mock_pi, startIndex=3, maxCount=5)
    assert [r["WebId"] for r in page] == [r["WebId"] for r in found[3:8]]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "'databaseWebId' parameter is required"),
        ({"databaseWebId": "garbage"}, "Unknown or invalid WebID"),
        ({"query": "Severity:>=Major"}, "'Severity' is not supported here"),
        ({"query": "Name:>Pump"}, "takes := or :<>"),
        ({"query": "Name:='open"}, "not valid AF search syntax"),
    ],
)
def test_bad_searches_are_400_naming_the_problem(mock_pi: RunningMock, params: dict, message: str) -> None:
    if "databaseWebId" not in params and params:
        params = {"databaseWebId": database_id(mock_pi), **params}
    answer = get(mock_pi, "/notificationrules/search", 400, **params)
    assert message in answer["Errors"][0]


def test_rules_and_subscribers_are_found_by_web_id_of_every_type_and_by_path(mock_pi: RunningMock) -> None:
    rule = rules(mock_pi, query="Name:='Equipment Faults'")[0]
    for kind in webids.WEBID_TYPES:
        web_id = get(mock_pi, rule["Links"]["Self"], webIdType=kind)["WebId"]
        assert get(mock_pi, f"/notificationrules/{web_id}")["Id"] == rule["Id"], kind
    assert get(mock_pi, "/notificationrules", path=rule["Path"].lower()) == rule
    get(mock_pi, "/notificationrules/garbage", 400)
    by_id = get(mock_pi, rule["Links"]["Self"], webIdType="IDOnly")["WebId"]
    get(mock_pi, f"/notificationrules/{by_id[:-22]}{'A' * 22}", 404)  # an unknown rule GUID
    element = get(mock_pi, "/elements", path=UNIT)
    get(mock_pi, f"/notificationrules/{element['WebId']}", 404)  # an element is not a rule

    subscribers = get(mock_pi, rule["Links"]["Self"] + "/notificationrulesubscribers")["Items"]
    assert 1 <= len(subscribers) <= 3
    for subscriber in subscribers:
        assert subscriber["WebId"].startswith("F1NSL")
        assert subscriber["Path"].startswith(rule["Path"] + "\\NotificationRuleSubscribers[")
        assert subscriber["PlugInName"] == "Email" and subscriber["ConfigString"].startswith("ToEmail=")
        assert subscriber["ContactType"] in ("Group", "Individual") and subscriber["MaximumRetries"] == 3
        assert get(mock_pi, subscriber["Links"]["Self"]) == subscriber
        by_id = get(mock_pi, subscriber["Links"]["Self"], webIdType="IDOnly")["WebId"]
        assert get(mock_pi, f"/notificationrulesubscribers/{by_id}")["Name"] == subscriber["Name"]


def test_elements_link_the_rules_they_own(mock_pi: RunningMock) -> None:
    unit = get(mock_pi, "/elements", path=UNIT)
    owned = get(mock_pi, unit["Links"]["NotificationRules"])["Items"]
    assert sorted(r["Name"] for r in owned) == sorted(spec.name for spec in RULE_SPECS)
    assert all(r["Path"].startswith(UNIT + "\\NotificationRules[") for r in owned)
    equipment = get(mock_pi, unit["Links"]["Elements"])["Items"][0]
    assert get(mock_pi, equipment["Links"]["NotificationRules"])["Items"] == []


def test_every_alarm_frame_triggers_exactly_one_rule_of_its_unit(mock_pi: RunningMock) -> None:
    """The rules' criteria, read over HTTP and evaluated on the frames read over HTTP: each alarm (a frame
    that can be acknowledged) and each unplanned downtime matches exactly one rule of the unit it
    references; batches and planned downtimes match none."""
    frames = get(mock_pi, f"/assetdatabases/{database_id(mock_pi)}/eventframes", startTime="*-2d")["Items"]
    by_unit: dict[str, list[dict]] = {}
    for rule in rules(mock_pi):
        by_unit.setdefault(rule["Path"].split("\\NotificationRules[")[0].upper(), []).append(rule)
    element_paths = {
        e["WebId"]: e["Path"].upper()
        for e in get(
            mock_pi,
            f"/assetdatabases/{database_id(mock_pi)}/elements",
            searchFullHierarchy="true",
            maxCount=10_000,
        )["Items"]
    }
    seen = Counter()
    for frame in frames:
        paths = {element_paths[web_id] for web_id in frame["RefElementWebIds"]}
        candidates = [rule for path in paths for rule in by_unit.get(path, [])]
        matched = [r["Name"] for r in candidates if _matches(r["Criteria"], frame)]
        unplanned = frame["TemplateName"] == "Downtime" and frame["Severity"] == "Major"
        if frame["CanBeAcknowledged"] or unplanned:
            assert len(matched) == 1, (frame["Name"], matched)
            seen[matched[0]] += 1
        else:
            assert matched == [], (frame["Name"], matched)
    assert set(seen) == {spec.name for spec in RULE_SPECS}


def _matches(criteria: str, frame: dict) -> bool:
    fields = {
        "Template": frame["TemplateName"],
        "Severity": frame["Severity"],
        "CanBeAcknowledged": frame["CanBeAcknowledged"],
        "Name": frame["Name"],
    }
    return Query(criteria, tuple(fields)).matches(fields.__getitem__)


def test_rules_are_deterministic(make_mock) -> None:
    first, again, other = make_mock(tags=60), make_mock(tags=60), make_mock(tags=60, seed=7)
    assert rules(first) == [
        {**rule, "Links": {"Self": rule["Links"]["Self"].replace(again.url, first.url)}}
        for rule in rules(again)
    ]
    assert [r["Path"] for r in rules(first)] == [r["Path"] for r in rules(other)]
    assert [r["Id"] for r in rules(first)] != [r["Id"] for r in rules(other)]


def test_an_alarm_acknowledged_through_the_admin_api_reads_acknowledged(make_mock) -> None:
    mock = make_mock()
    frames_url = f"/assetdatabases/{database_id(mock)}/eventframes"
    open_alarms = get(mock, frames_url, startTime="*-1d", canBeAcknowledged="true", isAcknowledged="false")
    frame = open_alarms["Items"][0]
    assert frame["AcknowledgedBy"] == "" and "AcknowledgedDate" not in frame

    answer = acknowledge(mock, frame["WebId"], AcknowledgedBy="MOCK\\tester")
    assert answer.status_code == 200, answer.text
    now = requests.get(f"{mock.url}/admin/clock", timeout=30).json()["Now"]
    after = get(mock, frame["Links"]["Self"])
    assert after["IsAcknowledged"] is True and after["AcknowledgedBy"] == "MOCK\\tester"
    assert after["AcknowledgedDate"] == answer.json()["AcknowledgedDate"] == now
    assert {k: v for k, v in after.items() if not k.startswith("Acknowledged") and k != "IsAcknowledged"} == {
        k: v for k, v in frame.items() if not k.startswith("Acknowledged") and k != "IsAcknowledged"
    }
    still_open = get(mock, frames_url, startTime="*-1d", canBeAcknowledged="true", isAcknowledged="false")
    assert frame["WebId"] not in {f["WebId"] for f in still_open["Items"]}

    assert acknowledge(mock, frame["WebId"]).status_code == 409
    batch = get(mock, frames_url, startTime="*-1d", templateName="Batch")["Items"][0]
    refused = acknowledge(mock, batch["WebId"])
    assert refused.status_code == 400 and "cannot be acknowledged" in refused.json()["Errors"][0]
    assert acknowledge(mock, "garbage").status_code == 400
    assert requests.post(f"{mock.url}/admin/eventframes/acknowledge", json=[], timeout=30).status_code == 400
