r"""Alarms: the event frames notification rules select, by UTC day of their start, upserted by WebId into
``silver.pi_alarms``.

An alarm (or any notification event frame) is a frame of ``bronze.pi_event_frames`` that references the
element owning a rule of ``bronze.pi_notification_rules`` and meets the rule's criteria
(:mod:`osipi_dagster.ingest.alarms_criteria`), whether the rule is enabled or not: a disabled rule notifies
nobody, but its alarms still happened. A frame several rules select is one row, attributed to the first rule
by path, with ``rules_matched`` saying how many. The element of an alarm is the frame's primary referenced
element, its path from ``bronze.pi_af_hierarchy``.

A day is rebuilt from bronze on every run and MERGEd by WebId: an alarm that was active (null ``end_time``)
and closes, or is acknowledged, after the first read is updated in place; a MERGE updates only rows that
changed, so ``rows_updated`` counts alarms that closed, were acknowledged or changed since the last run.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import date

import pyarrow as pa
import pyarrow.dataset as ds

from osipi_dagster.ingest.alarms_criteria import Criteria, parse_criteria, severity_level
from osipi_dagster.lake import LakeTable, MergeResult, merge_rows
from osipi_dagster.lake.schemas import AF_HIERARCHY, ALARMS, NOTIFICATION_RULES
from osipi_dagster.lake.tables import utc_now

_FRAME_COLUMNS = [
    "web_id",
    "name",
    "description",
    "path",
    "template_name",
    "category_names",
    "severity",
    "start_time",
    "end_time",
    "duration_seconds",
    "primary_element_web_id",
    "referenced_element_web_ids",
    "can_be_acknowledged",
    "is_acknowledged",
    "acknowledged_by",
    "acknowledged_date",
]
# The columns that change while an alarm lives: a MERGE rewrites a stored row only when one of them differs.
_CHANGING = (
    "name",
    "severity",
    "end_time",
    "rule_web_id",
    "rules_matched",
    "element_path",
    "is_acknowledged",
    "acknowledged_by",
    "acknowledged_at",
)
_UPDATE_WHEN_CHANGED = " OR ".join(f"(s.{column} IS DISTINCT FROM t.{column})" for column in _CHANGING)


class AlarmInputError(RuntimeError):
    """The bronze tables the alarms are built from are missing or do not agree; nothing was written."""


@dataclass(frozen=True)
class _Rule:
    web_id: str
    name: str
    path: str
    criteria: Criteria


@dataclass(frozen=True)
class AlarmsResult:
    """What one day's run read from bronze and merged into ``silver.pi_alarms``."""

    day: date
    frames_read: int
    alarms: int
    active: int
    acknowledged: int
    merge: MergeResult
    duration_seconds: float


def build_alarms(
    *, event_frames: LakeTable, rules: LakeTable, hierarchy: LakeTable, alarms: LakeTable, day: date
) -> AlarmsResult:
    """Merge the alarms that started on the UTC ``day`` into ``alarms`` in one commit.

    Raises:
        AlarmInputError: a bronze table is missing, or a rule's element is not in the AF hierarchy.
        CriteriaError: a rule's criteria cannot be evaluated.
    """
    started = time.perf_counter()
    for table, asset in ((rules, "pi_notification_rules"), (hierarchy, "pi_af_hierarchy")):
        if not table.exists():
            raise AlarmInputError(
                f"{table} does not exist yet: materialize {asset} first. Nothing was written."
            )
    element_paths = _element_paths(hierarchy)
    rules_by_element = _rules_by_element(rules, element_paths)
    frames = _frames(event_frames, day)
    rows, stamp = [], utc_now()
    for frame in frames:
        matched = sorted(
            (
                rule
                for element in frame["referenced_element_web_ids"] or ()
                for rule in rules_by_element.get(element, ())
                if rule.criteria.matches(frame)
            ),
            key=lambda rule: rule.path.casefold(),
        )
        if matched:
            rows.append(_row(frame, matched, element_paths, day) | {"ingested_at": stamp})
    table = pa.Table.from_pylist(rows, schema=ALARMS.schema)
    merge = merge_rows(alarms, table, update_condition=_UPDATE_WHEN_CHANGED)
    return AlarmsResult(
        day=day,
        frames_read=len(frames),
        alarms=len(rows),
        active=sum(row["end_time"] is None for row in rows),
        acknowledged=sum(bool(row["is_acknowledged"]) for row in rows),
        merge=merge,
        duration_seconds=time.perf_counter() - started,
    )


def _element_paths(hierarchy: LakeTable) -> dict[str, str]:
    rows = hierarchy.load().to_pyarrow_table(columns=["web_id", "path"]).to_pydict()
    return dict(zip(rows["web_id"], rows["path"], strict=True))


def _rules_by_element(rules: LakeTable, element_paths: dict[str, str]) -> dict[str, list[_Rule]]:
    """The rules by the WebId of the element owning them (AF paths compare case-insensitively)."""
    web_id_of = {path.casefold(): web_id for web_id, path in element_paths.items()}
    found: dict[str, list[_Rule]] = defaultdict(list)
    for rule in (
        rules.load()
        .to_pyarrow_table(columns=["web_id", "name", "path", "element_path", "criteria"])
        .to_pylist()
    ):
        element = web_id_of.get((rule["element_path"] or "").casefold())
        if element is None:
            raise AlarmInputError(
                f"Notification rule {rule['path']} ({NOTIFICATION_RULES.name}) belongs to element "
                f"{rule['element_path']!r}, which {AF_HIERARCHY.name} does not hold: materialize "
                "pi_af_hierarchy again, then this partition. Nothing was written."
            )
        found[element].append(
            _Rule(rule["web_id"], rule["name"], rule["path"], parse_criteria(rule["criteria"], rule["path"]))
        )
    return found


def _frames(event_frames: LakeTable, day: date) -> list[dict]:
    if not event_frames.exists():
        return []
    return (
        event_frames.load()
        .to_pyarrow_table(columns=_FRAME_COLUMNS, filters=ds.field("partition_date") == day)
        .to_pylist()
    )


def _row(frame: dict, matched: list[_Rule], element_paths: dict[str, str], day: date) -> dict[str, object]:
    rule = matched[0]
    acknowledged_at = frame["acknowledged_date"] if frame["is_acknowledged"] else None
    element = frame["primary_element_web_id"]
    return {
        "web_id": frame["web_id"],
        "name": frame["name"],
        "path": frame["path"],
        "template_name": frame["template_name"],
        "rule_web_id": rule.web_id,
        "rule_name": rule.name,
        "rule_path": rule.path,
        "rules_matched": len(matched),
        "element_web_id": element,
        "element_path": element_paths.get(element) if element else None,
        "severity": frame["severity"],
        "severity_level": severity_level(frame["severity"]),
        "start_time": frame["start_time"],
        "end_time": frame["end_time"],
        "duration_seconds": frame["duration_seconds"],
        "can_be_acknowledged": frame["can_be_acknowledged"],
        "is_acknowledged": frame["is_acknowledged"],
        "acknowledged_by": frame["acknowledged_by"] if frame["is_acknowledged"] else None,
        "acknowledged_at": acknowledged_at,
        "seconds_to_acknowledge": (
            (acknowledged_at - frame["start_time"]).total_seconds() if acknowledged_at else None
        ),
        "partition_date": day,
    }
