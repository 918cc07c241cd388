"""Notification rules and alarms into the lake, against the mock's own truth over real HTTP and Delta:
``bronze.pi_notification_rules``, ``silver.pi_alarms`` (acknowledgements and closes updated in place)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import pytest
import requests

from osipi_dagster.ingest.af import refresh_af
from osipi_dagster.ingest.alarms import AlarmInputError, AlarmsResult, build_alarms
from osipi_dagster.ingest.alarms_criteria import CriteriaError, parse_criteria
from osipi_dagster.ingest.alarms_rules import refresh_notification_rules
from osipi_dagster.ingest.event_frames import ingest_event_frames
from osipi_dagster.ingest.server_clock import server_now
from osipi_dagster.lake import Lakehouse, read_table
from osipi_dagster.mock import webids
from osipi_dagster.mock.server import RunningMock
from osipi_dagster.pi import PIWebAPIClient

PAST_DAY = date(2025, 1, 5)
TODAY = date(2025, 1, 6)  # the test clock is 2025-01-06T12:00:00Z


@dataclass
class Lake:
    lake: Lakehouse
    results: dict[date, AlarmsResult]

    def rows(self, name: str) -> list[dict]:
        return read_table(self.lake.table(name)).to_pylist()


def fill(running: RunningMock, root: Path, days: tuple[date, ...]) -> Lake:
    """Bronze (AF hierarchy, rules, event frames of ``days``) then silver alarms, from ``running``."""
    lake = Lakehouse(str(root))
    with PIWebAPIClient(running.api, compress=False) as pi:
        refresh_af(pi, lake.table("bronze.pi_af_hierarchy"), lake.table("bronze.pi_af_attributes"))
        refresh_notification_rules(pi, lake.table("bronze.pi_notification_rules"))
        now = server_now(pi)
        for day in days:
            ingest_event_frames(pi, lake.table("bronze.pi_event_frames"), day=day, now=now)
    return Lake(lake, {day: build(lake, day) for day in days})


def build(lake: Lakehouse, day: date) -> AlarmsResult:
    return build_alarms(
        event_frames=lake.table("bronze.pi_event_frames"),
        rules=lake.table("bronze.pi_notification_rules"),
        hierarchy=lake.table("bronze.pi_af_hierarchy"),
        alarms=lake.table("silver.pi_alarms"),
        day=day,
    )


@pytest.fixture(scope="module")
def filled(mock_pi: RunningMock, tmp_path_factory: pytest.TempPathFactory) -> Lake:
    return fill(mock_pi, tmp_path_factory.mktemp("alarms"), (PAST_DAY, TODAY))


def plain(url: str, **params) -> dict:
    answer = requests.get(url, params=params, timeout=60)
    answer.raise_for_status()
    return answer.json()


def test_the_rules_table_holds_every_rule_with_its_subscribers_and_no_config_string(
    filled: Lake, mock_pi: RunningMock
) -> None:
    truth = {}
    for server in plain(f"{mock_pi.api}/assetservers")["Items"]:
        for db in plain(server["Links"]["Databases"])["Items"]:
            for rule in plain(f"{mock_pi.api}/notificationrules/search", databaseWebId=db["WebId"])["Items"]:
                truth[rule["WebId"]] = (rule, plain(rule["Links"]["Self"] + "/notificationrulesubscribers"))
    rows = {row["web_id"]: row for row in filled.rows("bronze.pi_notification_rules")}
    assert rows.keys() == truth.keys() and len(rows) == len(mock_pi.state.notifications.rules)
    for web_id, (rule, subscribers) in truth.items():
        row = rows[web_id]
        assert (row["name"], row["path"], row["criteria"], row["status"], row["category_names"]) == (
            rule["Name"],
            rule["Path"],
            rule["Criteria"],
            rule["Status"],
            rule["CategoryNames"],
        )
        assert row["enabled"] == (rule["Status"] == "Enabled")
        assert row["element_path"] == rule["Path"].split("\\NotificationRules[")[0]
        assert [(s["web_id"], s["name"], s["notify_option"]) for s in row["subscribers"]] == [
            (s["WebId"], s["Name"], s["NotifyOption"]) for s in subscribers["Items"]
        ]
    stored = str(filled.rows("bronze.pi_notification_rules"))
    assert "ToEmail" not in stored and "@mockchem.example" not in stored


@pytest.mark.parametrize("day", [PAST_DAY, TODAY])
def test_alarms_are_the_frames_the_mocks_rules_select(filled: Lake, mock_pi: RunningMock, day: date) -> None:
    state = mock_pi.state
    now_ns = state.clock.now_ns()
    frames = [row for row in filled.rows("bronze.pi_event_frames") if row["partition_date"] == day]
    expected = {}
    for row in frames:
        matched = state.notifications.matching(state.event_frames.frame(webids.decode(row["web_id"])), now_ns)
        if matched:
            expected[row["web_id"]] = (min(r.path for r in matched), len(matched), row)
    alarms = {row["web_id"]: row for row in filled.rows("silver.pi_alarms") if row["partition_date"] == day}
    assert alarms.keys() == expected.keys() and alarms
    paths = {row["web_id"]: row["path"] for row in filled.rows("bronze.pi_af_hierarchy")}
    for web_id, (rule_path, count, frame) in expected.items():
        alarm = alarms[web_id]
        assert (alarm["rule_path"], alarm["rules_matched"]) == (rule_path, count)
        assert alarm["element_path"] == paths[frame["primary_element_web_id"]]
        for column in ("severity", "start_time", "end_time", "duration_seconds", "is_acknowledged"):
            assert alarm[column] == frame[column], column
        if frame["is_acknowledged"]:
            assert (alarm["acknowledged_by"], alarm["acknowledged_at"]) == (
                frame["acknowledged_by"],
                frame["acknowledged_date"],
            )
            assert (
                alarm["seconds_to_acknowledge"]
                == (frame["acknowledged_date"] - frame["start_time"]).total_seconds()
            )
        else:
            assert alarm["acknowledged_at"] is alarm["seconds_to_acknowledge"] is None
    result = filled.results[day]
    assert (result.alarms, result.merge.rows_inserted, result.merge.rows_updated) == (
        len(alarms),
        len(alarms),
        0,
    )
    assert result.active == sum(a["end_time"] is None for a in alarms.values())
    assert {a["template_name"] for a in alarms.values()} <= {"Process Alarm", "Equipment Alarm", "Downtime"}


def test_a_second_run_without_changes_rewrites_nothing(filled: Lake) -> None:
    again = build(filled.lake, PAST_DAY)
    assert (again.merge.rows_inserted, again.merge.rows_updated) == (0, 0)


def test_an_acknowledgement_after_the_first_read_updates_the_row_in_place(make_mock, tmp_path: Path) -> None:
    running = make_mock()
    lake = fill(running, tmp_path, (TODAY,))
    first = {row["web_id"]: row for row in lake.rows("silver.pi_alarms")}
    waiting = sorted(
        (row for row in first.values() if row["can_be_acknowledged"] and not row["is_acknowledged"]),
        key=lambda row: row["web_id"],
    )
    assert waiting, "the mock's open day has no unacknowledged alarm"
    alarm = waiting[0]
    answer = requests.post(
        f"{running.url}/admin/eventframes/acknowledge",
        json={"WebId": alarm["web_id"], "AcknowledgedBy": "MOCK\\j.smith"},
        timeout=10,
    )
    answer.raise_for_status()
    acknowledged_at = datetime.fromisoformat(answer.json()["AcknowledgedDate"].replace("Z", "+00:00"))

    with PIWebAPIClient(running.api, compress=False) as pi:
        ingest_event_frames(pi, lake.lake.table("bronze.pi_event_frames"), day=TODAY, now=server_now(pi))
    second = build(lake.lake, TODAY)

    after = {row["web_id"]: row for row in lake.rows("silver.pi_alarms")}
    assert after.keys() == first.keys()
    assert (second.merge.rows_inserted, second.merge.rows_updated) == (0, 1)
    row = after[alarm["web_id"]]
    assert (row["is_acknowledged"], row["acknowledged_by"], row["acknowledged_at"]) == (
        True,
        "MOCK\\j.smith",
        acknowledged_at,
    )
    assert row["seconds_to_acknowledge"] == (acknowledged_at - row["start_time"]).total_seconds()
    unchanged = {k: v for k, v in first.items() if k != alarm["web_id"]}
    assert {k: v for k, v in after.items() if k != alarm["web_id"]} == unchanged


def test_alarms_close_in_place_as_the_clock_moves(make_mock, tmp_path: Path) -> None:
    running = make_mock()
    lake = fill(running, tmp_path, (TODAY,))
    active = {row["web_id"] for row in lake.rows("silver.pi_alarms") if row["end_time"] is None}
    requests.post(f"{running.url}/admin/clock", json={"advance": "1d"}, timeout=10).raise_for_status()
    with PIWebAPIClient(running.api, compress=False) as pi:
        ingest_event_frames(pi, lake.lake.table("bronze.pi_event_frames"), day=TODAY, now=server_now(pi))
    second = build(lake.lake, TODAY)
    rows = lake.rows("silver.pi_alarms")
    assert len(rows) == len({row["web_id"] for row in rows}) == second.alarms
    closed = [row for row in rows if row["web_id"] in active and row["end_time"] is not None]
    assert closed and second.merge.rows_updated >= len(closed)
    assert all(row["duration_seconds"] > 0 for row in closed)


def test_alarms_need_the_rules_and_the_hierarchy(tmp_path: Path) -> None:
    with pytest.raises(AlarmInputError, match="materialize pi_notification_rules first"):
        build(Lakehouse(str(tmp_path)), PAST_DAY)


@pytest.mark.parametrize(
    "criteria, frame, expected",
    [
        (
            "Template:='Process Alarm' Severity:>=Major",
            {"template_name": "Process Alarm", "severity": "Major"},
            True,
        ),
        (
            "Template:='Process Alarm' Severity:<Major",
            {"template_name": "process alarm", "severity": "Major"},
            False,
        ),
        ("Name:=Tank* CanBeAcknowledged:=True", {"name": "Tank 7 High", "can_be_acknowledged": True}, True),
        ("Tank?", {"name": "Tank12"}, False),
        ("Category:<>Safety", {"category_names": ["Alarm", "Safety"]}, False),
        ("", {}, True),
    ],
)
def test_criteria_follow_af_search_syntax(criteria: str, frame: dict, expected: bool) -> None:
    assert parse_criteria(criteria, "\\\\AF\\DB\\E\\NotificationRules[R]").matches(frame) is expected


@pytest.mark.parametrize("criteria", ["Attribute:='Temp'>80", "Severity:=Huge", "IsAcknowledged:=maybe"])
def test_criteria_the_lake_cannot_evaluate_fail_naming_the_rule(criteria: str) -> None:
    with pytest.raises(CriteriaError, match=r"NotificationRules\[R\].*Nothing was written"):
        parse_criteria(criteria, "\\\\AF\\DB\\E\\NotificationRules[R]")
