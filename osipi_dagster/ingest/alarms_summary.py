"""``gold.pi_alarm_summary``: per notification rule, element and UTC day, the alarm-management figures of
ISA-18.2 / EEMUA 191, computed from ``silver.pi_alarms``.

A group is the alarms of one rule on one element (the "same alarm" of ISA-18.2). For the day
``[00:00, 24:00)``, clipped to ``now`` while it is open:

* ``alarms``, ``acknowledged``, ``mean_seconds_to_acknowledge``: of the alarms that started that day;
* ``seconds_in_alarm``: the time with at least one alarm of the group active, alarms from earlier days that
  were still active included (overlapping alarms are not counted twice);
* ``alarms_per_10_minutes`` (the day's alarms over its 10-minute intervals) and
  ``peak_alarms_per_10_minutes`` (the most in one interval ``[hh:m0, hh:m0 + 10 min)``);
* ``chattering_alarms``: alarms that started with two or more of the group in the 60 s before them (the same
  alarm three or more times in a minute);
* ``standing_alarms``: alarms active during the day that had been active for more than 24 hours by the end of
  the day (or now), or by their end;
* ``bad_actor_rank``: 1 to 10 for the day's ten groups with the most alarms (ties: more time in alarm, then by
  rule and element path), the "top 10 bad actors" that make most of an operator's load;
* ``day_alarms_per_operator_per_10_minutes``: all the day's alarms over its 10-minute intervals and the number
  of operators who share them (ISA-18.2 targets about 1; above 10 an operator is overloaded).

Each run replaces the day whole.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
import pyarrow.dataset as ds

from osipi_dagster.contract import day_bounds
from osipi_dagster.lake import LakeTable, WriteResult, replace_day
from osipi_dagster.lake.schemas import ALARM_SUMMARY
from osipi_dagster.lake.tables import without_columns

INTERVAL = timedelta(minutes=10)
CHATTER_WINDOW = timedelta(seconds=60)
CHATTER_COUNT = 3  # the same alarm this many times within CHATTER_WINDOW
STANDING_AFTER = timedelta(hours=24)
BAD_ACTORS = 10
_COLUMNS = [
    "rule_path",
    "rule_name",
    "element_path",
    "severity_level",
    "start_time",
    "end_time",
    "is_acknowledged",
    "seconds_to_acknowledge",
]


@dataclass(frozen=True)
class AlarmSummaryResult:
    """What one day's summary read and wrote."""

    day: date
    alarms: int
    groups: int
    alarms_per_operator_per_10_minutes: float
    write: WriteResult
    duration_seconds: float


def summarize_alarms(
    *, alarms: LakeTable, summary: LakeTable, day: date, now: datetime, operators: int = 1
) -> AlarmSummaryResult:
    """Replace ``day`` of ``summary`` with the figures of the alarms active during it (up to ``now``)."""
    if operators < 1:
        raise ValueError(f"operators must be 1 or more (the operators sharing the alarms); got {operators}.")
    started = time.perf_counter()
    day_start, day_end = day_bounds(day)
    window_end = max(day_start, min(day_end, now.astimezone(UTC)))
    intervals = (window_end - day_start) / INTERVAL
    groups: dict[tuple[str, str, str | None], list[dict]] = defaultdict(list)
    for alarm in _overlapping(alarms, day_start, window_end):
        groups[(alarm["rule_path"], alarm["rule_name"], alarm["element_path"])].append(alarm)
    rows = [_figures(key, found, day_start, day_end, window_end, intervals) for key, found in groups.items()]
    ranked = sorted(
        (row for row in rows if row["alarms"]),
        key=lambda r: (-r["alarms"], -r["seconds_in_alarm"], r["rule_path"], r["element_path"] or ""),
    )
    for rank, row in enumerate(ranked[:BAD_ACTORS], start=1):
        row["bad_actor_rank"] = rank
    total = sum(row["alarms"] for row in rows)
    per_operator = total / operators / intervals if intervals else 0.0
    for row in rows:
        row["day_alarms_per_operator_per_10_minutes"] = per_operator
        row["partition_date"] = day
    table = pa.Table.from_pylist(rows, schema=without_columns(ALARM_SUMMARY.schema, ["ingested_at"]))
    write = replace_day(summary, table, day)
    return AlarmSummaryResult(
        day=day,
        alarms=total,
        groups=len(rows),
        alarms_per_operator_per_10_minutes=per_operator,
        write=write,
        duration_seconds=time.perf_counter() - started,
    )


def _overlapping(alarms: LakeTable, start: datetime, end: datetime) -> list[dict]:
    """The alarms active at some time in ``[start, end)``."""
    if not alarms.exists() or end <= start:
        return []
    active = (ds.field("start_time") < end) & (
        ds.field("end_time").is_null() | (ds.field("end_time") > start)
    )
    return alarms.load().to_pyarrow_table(columns=_COLUMNS, filters=active).to_pylist()


def _figures(
    key: tuple[str, str, str | None],
    alarms: list[dict],
    day_start: datetime,
    day_end: datetime,
    window_end: datetime,
    intervals: float,
) -> dict[str, object]:
    rule_path, rule_name, element_path = key
    todays = sorted(
        (a for a in alarms if day_start <= a["start_time"] < day_end), key=lambda a: a["start_time"]
    )
    starts = [a["start_time"] for a in todays]
    acknowledge_seconds = [
        a["seconds_to_acknowledge"] for a in todays if a["seconds_to_acknowledge"] is not None
    ]
    per_interval: dict[int, int] = defaultdict(int)
    for start in starts:
        per_interval[(start - day_start) // INTERVAL] += 1
    return {
        "rule_path": rule_path,
        "rule_name": rule_name,
        "element_path": element_path,
        "alarms": len(todays),
        "acknowledged": sum(bool(a["is_acknowledged"]) for a in todays),
        "seconds_in_alarm": _seconds_active(alarms, day_start, window_end),
        "mean_seconds_to_acknowledge": (
            sum(acknowledge_seconds) / len(acknowledge_seconds) if acknowledge_seconds else None
        ),
        "max_severity_level": max(a["severity_level"] for a in alarms),
        "alarms_per_10_minutes": len(todays) / intervals if intervals else 0.0,
        "peak_alarms_per_10_minutes": max(per_interval.values(), default=0),
        "chattering_alarms": sum(
            1
            for i in range(CHATTER_COUNT - 1, len(starts))
            if starts[i] - starts[i - CHATTER_COUNT + 1] <= CHATTER_WINDOW
        ),
        "standing_alarms": sum(
            1
            for a in alarms
            if min(a["end_time"] or window_end, window_end) - a["start_time"] > STANDING_AFTER
        ),
        "bad_actor_rank": None,
    }


def _seconds_active(alarms: list[dict], start: datetime, end: datetime) -> float:
    """Seconds of ``[start, end)`` covered by at least one alarm (the union of their clipped intervals)."""
    spans = sorted(
        (max(a["start_time"], start), min(a["end_time"] or end, end))
        for a in alarms
        if max(a["start_time"], start) < min(a["end_time"] or end, end)
    )
    total, covered_until = timedelta(0), start
    for span_start, span_end in spans:
        if span_end > covered_until:
            total += span_end - max(span_start, covered_until)
            covered_until = span_end
    return total.total_seconds()
