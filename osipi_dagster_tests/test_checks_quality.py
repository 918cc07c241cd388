"""The figures behind the checks (``osipi_dagster.ingest.quality``) on slices written to real Delta tables
with chosen rows: what counts as a duplicate (and what, being PI data, does not), null against bad values,
freshness judged by each point's own interval, the volume's history and today's scaling, AF cycles, and row
counts per partition from Delta's statistics or, for files without them, a scan."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import deltalake
import pyarrow as pa
import pytest

from osipi_dagster.contract import RECORDED_SCHEMA
from osipi_dagster.ingest.quality import (
    af_cycles,
    duplicates,
    freshness,
    null_or_bad_values,
    scan_slice,
    volume,
)
from osipi_dagster.lake import Lakehouse, LakeTable, replace_slice, row_count, row_counts
from osipi_dagster_tests.lake_helpers import at, dense

DAY = date(2025, 1, 6)
NAMES = {"A": "Area.A", "B": "Area.B"}


def batch(rows: list[dict]) -> pa.RecordBatch:
    """Recorded values from partial rows: a numeric good value unless a row says otherwise."""
    defaults = {
        "value": None,
        "string_value": None,
        "state_code": None,
        "state_name": None,
        "is_system": False,
        "good": True,
        "questionable": False,
        "substituted": False,
        "annotated": False,
        "units": None,
    }
    full = [{**defaults, **row} for row in rows]
    columns = {name: [row[name] for row in full] for name in RECORDED_SCHEMA.names}
    columns["timestamp"] = pa.array(columns["timestamp"], pa.int64()).cast(pa.timestamp("ns", tz="UTC"))
    return pa.RecordBatch.from_pydict(columns, schema=RECORDED_SCHEMA)


def table_with(tmp_path: Path, *writes: list[dict]) -> LakeTable:
    """``bronze.pi_timeseries`` with the slice (DAY, s00) written by ``writes``: the first replaces the
    slice, the others are appended as files of their own (another writer)."""
    table = Lakehouse(str(tmp_path)).table("bronze.pi_timeseries")
    replace_slice(table, [batch(writes[0])], partition_date=DAY, tag_shard="s00")
    for rows in writes[1:]:
        appended = pa.Table.from_batches([batch(rows)])
        lake_rows = table.load().to_pyarrow_table().slice(0, 0)
        extra = {
            "timestamp_ns": appended["timestamp"].cast(pa.int64()),
            "timestamp": appended["timestamp"].cast(pa.timestamp("us", tz="UTC")),
            "partition_date": pa.repeat(pa.scalar(DAY, pa.date32()), len(rows)),
            "tag_shard": pa.repeat("s00", len(rows)),
            "ingested_at": pa.repeat(pa.scalar(datetime.now(UTC), pa.timestamp("us", tz="UTC")), len(rows)),
        }
        columns = [extra[name] if name in extra else appended[name] for name in lake_rows.column_names]
        deltalake.write_deltalake(
            table.uri, pa.Table.from_arrays(columns, schema=lake_rows.schema), mode="append"
        )
    return table


def figures_of(table: LakeTable, future_after: datetime = datetime(2025, 1, 7, tzinfo=UTC), **kwargs):
    return scan_slice(table, DAY, "s00", future_after=future_after, **kwargs)


def test_only_identical_rows_are_duplicates_wherever_they_are_stored(tmp_path: Path) -> None:
    """Several different values at one timestamp are PI data, not duplicates; a row identical in point,
    exact time, value, text, state and flags is, whether in the same file or another writer's. A NaN
    repeats a NaN; a null differs from a NaN, an empty text from a null text, a system state from the
    digital state with the same code, a Questionable value from the same value unflagged."""
    t = at(DAY, 3600)
    first = [
        {"web_id": "A", "timestamp": t, "value": 1.0},
        {"web_id": "A", "timestamp": t, "value": 2.0},  # another value at the same time
        {"web_id": "A", "timestamp": t + 100, "value": 3.0},
        {"web_id": "A", "timestamp": t + 100, "value": 3.0},  # 1 duplicate
        {"web_id": "A", "timestamp": t + 200, "value": float("nan")},
        {"web_id": "A", "timestamp": t + 200, "value": float("nan")},  # 1 duplicate
        {"web_id": "A", "timestamp": t + 200},  # no value: not a NaN
        {"web_id": "B", "timestamp": t, "string_value": "x"},
        {"web_id": "B", "timestamp": t, "string_value": ""},
        {"web_id": "B", "timestamp": t},
        {
            "web_id": "B",
            "timestamp": t + 1,
            "state_code": 246,
            "state_name": "I/O Timeout",
            "is_system": True,
        },
        {
            "web_id": "B",
            "timestamp": t + 1,
            "state_code": 246,
            "state_name": "I/O Timeout",
            "is_system": False,
        },
        {"web_id": "B", "timestamp": t + 2, "value": 5.0},
        {"web_id": "B", "timestamp": t + 2, "value": 5.0, "questionable": True},
    ]
    again = [first[0], first[7], first[7]]  # another file: A's first row once more, B's "x" twice more

    table = table_with(tmp_path, first, again)
    found = figures_of(table)

    assert {web_id: point.duplicates for web_id, point in found.points.items()} == {"A": 3, "B": 2}
    assert {web_id: point.rows for web_id, point in found.points.items()} == {"A": 8, "B": 9}
    outcome = duplicates(found, NAMES, max_share=0.01)
    assert not outcome.passed
    assert outcome.figures == {"values": 17, "duplicate_rows": 5, "duplicate_share": 5 / 17}
    assert [(o.web_id, o.name, o.figures["duplicate rows"]) for o in outcome.offenders] == [
        ("A", "Area.A", 3),
        ("B", "Area.B", 2),
    ]


def test_system_states_are_bad_not_null_and_future_values_skip_future_points(tmp_path: Path) -> None:
    """A row with no number, text or state is null; a system state is bad even though it has no number; a
    digital state is neither. Rows after ``future_after`` count as clock skew, but not those of a point
    that holds future data by design."""
    t = at(DAY, 7200)
    rows = [
        {"web_id": "A", "timestamp": t},
        {
            "web_id": "A",
            "timestamp": t + 1,
            "state_code": 246,
            "state_name": "I/O Timeout",
            "is_system": True,
        },
        {"web_id": "A", "timestamp": t + 2, "state_code": 1, "state_name": "On"},
        {"web_id": "A", "timestamp": t + 3, "value": 1.0},
        {"web_id": "B", "timestamp": at(DAY, 80_000), "value": 1.0},
        {"web_id": "A", "timestamp": at(DAY, 80_000), "value": 1.0},
    ]
    found = figures_of(
        table_with(tmp_path, rows), future_after=datetime(2025, 1, 6, 20, tzinfo=UTC), future_points={"B"}
    )

    assert (found.points["A"].nulls, found.points["A"].bad, found.points["A"].future) == (1, 1, 1)
    assert found.points["B"].future == 0
    outcome = null_or_bad_values(found, NAMES, max_share=0.5)
    assert outcome.passed
    assert (outcome.figures["null_values"], outcome.figures["bad_values"]) == (1, 1)


def test_a_point_is_late_by_its_own_interval_and_closed_days_are_not_judged(tmp_path: Path) -> None:
    """At 12:00 with a 60-minute limit: a point that reported every 10 s until 10:00 is late; one that
    reports every 4 h and last did at 09:00 is not (three of its intervals are 12 h); a point with one value
    has no interval and is not judged. The same slice seen from the next day passes: not today."""
    fast = [{"web_id": "A", "timestamp": at(DAY, s), "value": 1.0} for s in range(0, 36_000 + 1, 10)]
    slow = [{"web_id": "B", "timestamp": at(DAY, h * 3600), "value": 1.0} for h in (1, 5, 9)]
    single = [{"web_id": "C", "timestamp": at(DAY, 60), "value": 1.0}]
    found = figures_of(table_with(tmp_path, fast + slow + single))
    noon = datetime(2025, 1, 6, 12, tzinfo=UTC)

    outcome = freshness(found, NAMES, DAY, noon, timedelta(minutes=60))

    assert not outcome.passed
    assert outcome.figures == {
        "points_judged": 2,
        "points_late": 1,
        "points_with_too_few_values": 1,
        "newest_value_minutes_behind": 120.0,
    }
    (late,) = outcome.offenders
    assert (late.name, late.figures) == ("Area.A", {"minutes behind": 120.0, "allowed minutes": 60.0})
    assert freshness(
        found, NAMES, DAY, noon + timedelta(days=1), timedelta(minutes=60)
    ).description.startswith("Not today")


def test_volume_needs_a_week_of_history_and_scales_today_to_the_part_stored() -> None:
    """The shard's own previous days only; fewer than 7 stored: not checked. Today, half the day stored,
    half the usual count is normal and a quarter is an anomaly. Less than an hour stored: not checked."""
    history = {(DAY - timedelta(days=back), "s00"): 1000 + back for back in range(1, 8)}
    other_shard = {(DAY - timedelta(days=back), "s01"): 5 for back in range(1, 15)}

    short = volume(
        {**other_shard, **dict(list(history.items())[:6]), (DAY, "s00"): 1}, DAY, "s00", coverage=1, max_z=3
    )
    half = volume({**history, (DAY, "s00"): 502}, DAY, "s00", coverage=0.5, max_z=3)
    quarter = volume({**history, (DAY, "s00"): 250}, DAY, "s00", coverage=0.5, max_z=3)
    early = volume({**history, (DAY, "s00"): 0}, DAY, "s00", coverage=0.01, max_z=3)

    assert short.passed and short.figures["history_days"] == 6 and "Not enough history" in short.description
    assert half.passed and abs(half.figures["z_score"]) < 1
    assert half.figures["expected_rows"] == pytest.approx(1004 * 0.5)
    assert not quarter.passed and quarter.figures["z_score"] < -3
    assert early.passed and "Less than an hour" in early.description


def test_cycles_are_found_and_a_chain_leading_into_one_is_not_on_it() -> None:
    """A self-parent, a two-element loop, and an element whose parent chain ends in that loop: only the
    three elements on loops are reported."""
    elements = pa.table(
        {
            "web_id": ["root", "child", "self", "x", "y", "tail"],
            "path": ["\\\\AF\\DB\\root", "\\\\AF\\DB\\root\\child", "s", "x", "y", "tail"],
            "parent_web_id": [None, "root", "self", "y", "x", "x"],
        }
    )

    outcome = af_cycles(elements)

    assert not outcome.passed
    assert sorted(o.web_id for o in outcome.offenders) == ["self", "x", "y"]
    assert af_cycles(elements.slice(0, 2)).passed


def test_row_counts_come_from_statistics_and_from_a_scan_for_files_without_them(tmp_path: Path) -> None:
    """Rows per (date, shard) from the Delta log's statistics; with the statistics removed from the log
    (a writer that records none), the partitions are counted by a scan and the figures are the same."""
    table = Lakehouse(str(tmp_path)).table("bronze.pi_timeseries")
    for day, shard, count in ((DAY, "s00", 30), (DAY, "s01", 20), (DAY - timedelta(days=1), "s00", 10)):
        replace_slice(table, [dense("P", count, day)], partition_date=day, tag_shard=shard)
    expected = {(DAY, "s00"): 30, (DAY, "s01"): 20, (DAY - timedelta(days=1), "s00"): 10}

    assert row_counts(table, ("partition_date", "tag_shard")) == expected
    assert row_counts(table) == {(): 60}

    for log in Path(table.uri, "_delta_log").glob("*.json"):
        actions = [json.loads(line) for line in log.read_text().splitlines() if line]
        for action in actions:
            action.get("add", {}).pop("stats", None)
        log.write_text("\n".join(json.dumps(action) for action in actions) + "\n")

    assert row_counts(table, ("partition_date", "tag_shard")) == expected
    assert row_count(table, {"tag_shard": "s00"}) == 40
    assert row_count(table) == 60
