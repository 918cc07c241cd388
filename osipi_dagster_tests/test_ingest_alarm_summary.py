"""``gold.pi_alarm_summary`` from alarms written by hand into ``silver.pi_alarms`` (real Delta tables): each
figure on chosen alarms."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from osipi_dagster.ingest.alarms_summary import summarize_alarms
from osipi_dagster.lake import Lakehouse, LakeTable, merge_rows, read_table
from osipi_dagster.lake.schemas import ALARMS

DAY = date(2025, 1, 5)
MIDNIGHT = datetime(2025, 1, 5, tzinfo=UTC)
R1, R2 = "\\\\AF\\DB\\U1\\NotificationRules[High]", "\\\\AF\\DB\\U2\\NotificationRules[Low]"


def alarm(
    web_id: str,
    rule: str,
    element: str,
    start: datetime,
    seconds: float | None,
    acknowledge: float | None = None,
) -> dict:
    end = None if seconds is None else start + timedelta(seconds=seconds)
    return {
        "web_id": web_id,
        "name": web_id,
        "path": None,
        "template_name": "Process Alarm",
        "rule_web_id": rule,
        "rule_name": rule.split("[")[1][:-1],
        "rule_path": rule,
        "rules_matched": 1,
        "element_web_id": element,
        "element_path": element,
        "severity": "Major",
        "severity_level": 4,
        "start_time": start,
        "end_time": end,
        "duration_seconds": seconds,
        "can_be_acknowledged": True,
        "is_acknowledged": acknowledge is not None,
        "acknowledged_by": None,
        "acknowledged_at": None if acknowledge is None else start + timedelta(seconds=acknowledge),
        "seconds_to_acknowledge": acknowledge,
        "partition_date": start.date(),
        "ingested_at": MIDNIGHT,
    }


@pytest.fixture
def tables(tmp_path: Path) -> tuple[LakeTable, LakeTable]:
    lake = Lakehouse(str(tmp_path))
    ten = MIDNIGHT + timedelta(hours=10)
    rows = [
        # Chattering: four times within a minute, overlapping (80 s in alarm in all), two acknowledged.
        alarm("a1", R1, "E1", ten, 30, acknowledge=10),
        alarm("a2", R1, "E1", ten + timedelta(seconds=20), 30),
        alarm("a3", R1, "E1", ten + timedelta(seconds=40), 30, acknowledge=30),
        alarm("a4", R1, "E1", ten + timedelta(seconds=50), 30),
        # A standing alarm from the day before, still active.
        alarm("b1", R2, "E2", MIDNIGHT - timedelta(days=1), None),
        # Starts five minutes before the next midnight, ends after it.
        alarm("c1", R2, "E3", MIDNIGHT + timedelta(hours=23, minutes=55), 600),
        # Over before the day: not part of it.
        alarm("d1", R2, "E3", MIDNIGHT - timedelta(days=2), 60),
    ]
    silver = lake.table(ALARMS.name)
    merge_rows(silver, pa.Table.from_pylist(rows, schema=ALARMS.schema))
    return silver, lake.table("gold.pi_alarm_summary")


def summary_rows(table: LakeTable) -> dict[str | None, dict]:
    return {row["element_path"]: row for row in read_table(table).to_pylist()}


def test_each_figure_of_a_whole_day(tables: tuple[LakeTable, LakeTable]) -> None:
    silver, gold = tables
    result = summarize_alarms(
        alarms=silver, summary=gold, day=DAY, now=MIDNIGHT + timedelta(days=3), operators=2
    )
    rows = summary_rows(gold)
    assert rows.keys() == {"E1", "E2", "E3"} and result.alarms == 5
    chatter, standing, late = rows["E1"], rows["E2"], rows["E3"]
    assert (chatter["alarms"], chatter["acknowledged"], chatter["seconds_in_alarm"]) == (4, 2, 80.0)
    assert chatter["mean_seconds_to_acknowledge"] == 20.0
    assert (chatter["chattering_alarms"], chatter["peak_alarms_per_10_minutes"]) == (2, 4)
    assert chatter["alarms_per_10_minutes"] == 4 / 144
    assert (standing["alarms"], standing["seconds_in_alarm"], standing["standing_alarms"]) == (0, 86_400.0, 1)
    assert standing["mean_seconds_to_acknowledge"] is None and standing["bad_actor_rank"] is None
    assert (late["alarms"], late["seconds_in_alarm"], late["standing_alarms"]) == (1, 300.0, 0)
    assert (chatter["bad_actor_rank"], late["bad_actor_rank"]) == (1, 2)
    assert {row["day_alarms_per_operator_per_10_minutes"] for row in rows.values()} == {5 / 2 / 144}
    assert {row["partition_date"] for row in rows.values()} == {DAY}


def test_today_runs_up_to_now_and_a_second_run_replaces_the_day(tables: tuple[LakeTable, LakeTable]) -> None:
    silver, gold = tables
    noon = MIDNIGHT + timedelta(hours=12)
    summarize_alarms(alarms=silver, summary=gold, day=DAY, now=noon)
    summarize_alarms(alarms=silver, summary=gold, day=DAY, now=noon)
    rows = summary_rows(gold)
    assert len(read_table(gold)) == 2  # E3's alarm has not started by noon
    assert rows["E2"]["seconds_in_alarm"] == 43_200.0
    assert rows["E1"]["alarms_per_10_minutes"] == 4 / 72


def test_operators_must_be_counted(tables: tuple[LakeTable, LakeTable]) -> None:
    silver, gold = tables
    with pytest.raises(ValueError, match="operators must be 1 or more"):
        summarize_alarms(alarms=silver, summary=gold, day=DAY, now=MIDNIGHT, operators=0)
