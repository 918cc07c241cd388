"""``gold.pi_timeseries_hourly`` against PI's own summaries: the mock's ``/streamsets/summary`` over real
HTTP, for every point and hour of a closed test day with every kind of point the mock has.

* Time-weighted (``calculationBasis=TimeWeighted``, ``summaryDuration=1h`` over the day, so each interval
  is PI's closed ``[hour, hour + 1 h]``): Minimum and Maximum equal within 1e-9 (relative), Average (the
  time-weighted mean) within 1e-6, PercentGood against ``good_seconds``.
* Event-weighted, one request per hour over ``[hour, hour + 1 h - 100 ns]`` (PI's rule for ascending
  intervals: a value at an hour's end belongs to the next hour): Count, Average and PercentGood. Silver drops
  a value repeated at one timestamp (the mock's multi points repeat values: a step point's level, a digital
  state), which PI counts once more; the expected figures are PI's minus those repeats, found in an
  independent plain-HTTP read of the mock's recorded values.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from osipi_dagster.lake import read_table
from osipi_dagster_tests.pi_helpers import raw_recorded
from osipi_dagster_tests.silver_gold_helpers import (
    CONFIG,
    DAY,
    HOUR_NS,
    DayLake,
    build_day_lake,
    day_start,
    get_json,
    summaries,
)
from osipi_dagster_tests.timeseries_helpers import pi_time

pytestmark = pytest.mark.slow
NUMERIC = {"Float32", "Float64", "Int32", "Int16", "Float16"}
TICK_NS = 100


@pytest.fixture(scope="module")
def day_lake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DayLake]:
    from osipi_dagster.mock.server import serve_in_thread

    with serve_in_thread(CONFIG) as mock:
        yield build_day_lake(mock, Path(tmp_path_factory.mktemp("gold")))


@pytest.fixture(scope="module")
def gold_rows(day_lake: DayLake) -> dict[tuple[str, int], dict]:
    rows = read_table(day_lake.table("gold.pi_timeseries_hourly")).to_pylist()
    return {(row["web_id"], row["hour"].hour): row for row in rows}


@pytest.fixture(scope="module")
def point_types(day_lake: DayLake, gold_rows: dict) -> dict[str, str]:
    web_ids = sorted({web_id for web_id, _ in gold_rows})
    return {w: get_json(day_lake.mock.api, f"points/{w}")["PointType"] for w in web_ids}


def close(got: float | None, want: float, tolerance: float) -> bool:
    return got is not None and math.isclose(got, want, rel_tol=tolerance, abs_tol=tolerance * 1e-3)


def test_every_kind_of_point_is_on_the_test_day(
    day_lake: DayLake, gold_rows: dict, point_types: dict
) -> None:
    assert len(gold_rows) == len(point_types) * 24, "one row per point and hour"
    assert all(row["complete"] for row in gold_rows.values())
    assert set(point_types.values()) >= {"Float32", "Float64", "Int32", "Digital", "String"}
    per_hour = Counter(row["events"] for (web_id, hour), row in gold_rows.items() if hour == 5)
    assert {3600, 720, 60} <= set(per_hour), "1 s, 5 s and 60 s points"
    assert any(c not in (3600, 720, 60) for c in per_hour), "irregular points"
    steps = {row["step"] for row in gold_rows.values() if point_types[row["web_id"]] in NUMERIC}
    assert steps == {True, False}, "step and interpolated numeric points"
    assert any(row["good_share"] is not None and row["good_share"] < 1 for row in gold_rows.values())
    silver = read_table(day_lake.table("silver.pi_timeseries_clean")).select(["web_id", "timestamp_ns"])
    stamps = Counter(
        zip(silver.column("web_id").to_pylist(), silver.column("timestamp_ns").to_pylist(), strict=True)
    )
    assert max(stamps.values()) > 1, "several values at one timestamp"


def test_time_weighted_summaries_equal_pi(day_lake: DayLake, gold_rows: dict, point_types: dict) -> None:
    start = day_start()
    found = summaries(
        day_lake.mock.api,
        sorted(point_types),
        start,
        start + 24 * HOUR_NS,
        "Count,Minimum,Maximum,Average,PercentGood",
        calculationBasis="TimeWeighted",
        summaryDuration="1h",
    )
    compared = Counter()
    for web_id, per_type in found.items():
        numeric = point_types[web_id] in NUMERIC
        for hour in range(24):
            row = gold_rows[(web_id, hour)]
            for kind, column, tolerance in (
                ("Minimum", "minimum", 1e-9),
                ("Maximum", "maximum", 1e-9),
                ("Average", "mean_time_weighted", 1e-6),
            ):
                pi = per_type[kind][hour]
                if not numeric:
                    assert "Errors" in pi and row[column] is None, (web_id, hour, kind)
                    continue
                assert pi["Good"], (web_id, hour, kind, pi)
                assert close(row[column], pi["Value"], tolerance), (web_id, hour, kind, row[column], pi)
                compared[kind] += 1
            if numeric:
                percent = per_type["PercentGood"][hour]["Value"]
                assert close(row["good_seconds"] / 36, percent, 1e-6), (web_id, hour, row, percent)
    assert compared["Minimum"] >= 24 * 30


def test_event_weighted_summaries_equal_pi_less_repeats(
    day_lake: DayLake, gold_rows: dict, point_types: dict
) -> None:
    api, start = day_lake.mock.api, day_start()
    web_ids = sorted(point_types)
    repeats = {web_id: _repeats(api, web_id, point_types[web_id]) for web_id in web_ids}
    for hour in range(24):
        lo = start + hour * HOUR_NS
        found = summaries(
            api,
            web_ids,
            lo,
            lo + HOUR_NS - TICK_NS,
            "Count,Average,PercentGood",
            calculationBasis="EventWeighted",
        )
        for web_id, per_type in found.items():
            row = gold_rows[(web_id, hour)]
            good_repeats, bad_repeats, repeated_sum = repeats[web_id].get(hour, (0, 0, 0.0))
            pi_count = per_type["Count"][0]["Value"]
            assert row["count"] == pi_count - good_repeats, (web_id, hour, row, pi_count)
            events = round(pi_count * 100 / per_type["PercentGood"][0]["Value"]) if pi_count else None
            if events is not None:
                assert row["events"] == events - good_repeats - bad_repeats, (web_id, hour)
                assert close(row["good_share"], row["count"] / row["events"], 1e-12)
            if point_types[web_id] in NUMERIC and row["count"]:
                pi_mean = per_type["Average"][0]["Value"]
                want = (pi_mean * pi_count - repeated_sum) / (pi_count - good_repeats)
                assert close(row["mean_event_weighted"], want, 1e-9), (web_id, hour, row, pi_mean)


def _repeats(api: str, web_id: str, point_type: str) -> dict[int, tuple[int, int, float]]:
    """Per hour of the test day, the values that repeat the value just before them at one timestamp (what
    silver drops): how many good, how many bad, and the sum of the good ones (as PI stores them)."""
    start = day_start()
    rows = raw_recorded(api, web_id, pi_time(start), pi_time(start + 24 * HOUR_NS - TICK_NS))
    found: dict[int, tuple[int, int, float]] = {}
    for before, row in itertools.pairwise(rows):
        if row != before:
            continue
        hour = (row[1] - start) // HOUR_NS
        good, bad, total = found.get(hour, (0, 0, 0.0))
        value = row[2] or 0.0
        if point_type == "Float32":
            value = float(np.float32(value))
        found[hour] = (good + 1, bad, total + value) if row[7] else (good, bad + 1, total)
    return found


def test_the_day_is_summarized_for_every_hour_of_the_test_day(gold_rows: dict) -> None:
    assert {hour for _, hour in gold_rows} == set(range(24))
    assert {row["hour"].date() for row in gold_rows.values()} == {DAY}


def test_an_open_next_day_leaves_the_last_hours_incomplete(day_lake: DayLake, tmp_path: Path) -> None:
    """Without the next day in silver, gold does not guess past the day's last value."""
    from osipi_dagster.lake import Lakehouse
    from osipi_dagster_tests.silver_gold_helpers import DAYS, build_bronze, run_gold, run_silver

    lake = Lakehouse(str(tmp_path))
    build_bronze(day_lake.mock.api, lake, DAYS[:2])
    for day in DAYS[:2]:
        run_silver(lake, day)
    result = run_gold(lake)
    rows = read_table(lake.table("gold.pi_timeseries_hourly")).to_pylist()
    last = [row for row in rows if row["hour"].hour == 23]
    assert last and not any(row["complete"] for row in last)
    assert result.hours_incomplete == sum(not row["complete"] for row in rows) >= len(last)
    assert all(row["complete"] for row in rows if row["hour"].hour < 12)
