"""The lake follows PI by itself: the sensors on a real daemon, PI changing underneath.

Everything is real: the mock PI Web API as a subprocess with its clock running in real time, ``dagster dev``
(webserver and daemon) on a fresh instance, the sensors turned on through GraphQL as the UI's toggle does.
While they run, PI gets late values (the mock's own), an edit and a delete of a closed day, an edit of the
open day, and loses its stream-updates caches. The test then waits for the sensors to settle and checks that
every (day, shard) slice equals an independent read of the mock: nothing missing, duplicated, stale or left
deleted, without a run storm. It also measures freshness: how far the lake's newest value of a 1 Hz point
is behind the wall clock, sampled while the sensors run.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pytest
import requests

from osipi_dagster.contract import to_ns
from osipi_dagster.lake import Lakehouse, read_watermarks
from osipi_dagster_tests.dagster_ui import DagsterUI
from osipi_dagster_tests.processes import dagster_dev, mock_pi
from osipi_dagster_tests.timeseries_helpers import SECOND_NS, assert_same_rows, day_start_ns, lake_rows, truth

SHARDS = ("s00", "s01")
SENSOR_SECONDS = 10
FRESHNESS_P95_S = 120.0
FOLLOW_S = 120
JOB = "pi_timeseries_job"


def _catalog_points(lake: Lakehouse) -> list[dict]:
    rows = lake.table("bronze.pi_points").load().to_pyarrow_table()
    return [row for row in rows.to_pylist() if not row["is_deleted"]]


def _first_value(api: str, web_id: str, start: str) -> str:
    """The timestamp of the point's first value at or after ``start``."""
    answer = requests.get(
        f"{api}/streams/{web_id}/recorded",
        params={"startTime": start, "endTime": "*", "maxCount": 1},
        timeout=30,
    )
    answer.raise_for_status()
    return answer.json()["Items"][0]["Timestamp"]


def _recent_count(api: str, web_id: str) -> int:
    """How many values the point has in the last five minutes (the freshest point is the fastest)."""
    answer = requests.get(
        f"{api}/streams/{web_id}/recorded", params={"startTime": "*-5m", "endTime": "*"}, timeout=30
    )
    answer.raise_for_status()
    return len(answer.json()["Items"])


def _wait_for_a_tick(ui: DagsterUI, location: str, timeout_s: float = 600) -> None:
    """Until the sensor has finished a tick (its first registers every point for stream updates)."""
    deadline = time.monotonic() + timeout_s
    while not [t for t in ui.sensor_ticks(location, "pi_timeseries_sensor") if t["status"] != "STARTED"]:
        assert time.monotonic() < deadline, "pi_timeseries_sensor finished no tick"
        time.sleep(2)


def _by_sensor(run: dict) -> bool:
    return any(tag["key"] == "dagster/sensor_name" for tag in run["tags"])


def _newest(lake: Lakehouse, web_id: str) -> datetime | None:
    table = (
        lake.table("bronze.pi_timeseries")
        .load()
        .to_pyarrow_table(columns=["web_id", "timestamp_ns", "partition_date"])
    )
    mine = table.filter(pc.equal(table["web_id"], web_id))
    if not mine.num_rows:
        return None
    return datetime.fromtimestamp(pc.max(mine["timestamp_ns"]).as_py() / 1e9, UTC)


@pytest.mark.slow(minutes=4)
@pytest.mark.timeout(1800)
def test_the_sensors_keep_the_lake_equal_to_pi(tmp_path: Path) -> None:
    today = datetime.now(UTC).date()
    yesterday = today - timedelta(days=1)
    lake = Lakehouse(str(tmp_path / "lake"))
    settings = {
        "OSIPI_LAKE_ROOT": lake.root,
        "OSIPI_TAG_SHARDS": str(len(SHARDS)),
        "OSIPI_START_DATE": yesterday.isoformat(),
        "OSIPI_SENSOR_INTERVAL_SECONDS": str(SENSOR_SECONDS),
        "OSIPI_PI_COMPRESS": "false",
    }
    mock_options = ["--tags", "30", "--archive-days", "3", "--edit-share", "0", "--sampling", "mixed"]
    with (
        mock_pi(tmp_path, *mock_options) as api,
        dagster_dev(tmp_path, {**settings, "OSIPI_PI_BASE_URL": api}) as ui,
    ):
        admin = api.removesuffix("/piwebapi") + "/admin"
        location = ui.location()
        ui.wait_run(ui.materialize(location, ["pi_af_hierarchy", "pi_af_attributes", "pi_points"]), 600)
        for day in (yesterday, today):
            tags = {
                "dagster/asset_partition_range_start": f"{day.isoformat()}|{SHARDS[0]}",
                "dagster/asset_partition_range_end": f"{day.isoformat()}|{SHARDS[-1]}",
            }
            ui.wait_run(ui.materialize(location, ["pi_timeseries"], tags), 600)
        points = _catalog_points(lake)
        numeric = sorted(p["web_id"] for p in points if p["point_type"].startswith("Float"))
        fast = max(numeric, key=lambda web_id: _recent_count(api, web_id))
        sensor_id = ui.start_sensor(location, "pi_timeseries_sensor")
        started = time.monotonic()
        # PI's stream updates start at registration: a change made before the first tick registered the
        # points is not an event (reconciliation finds those), so PI changes only after that tick.
        _wait_for_a_tick(ui, location)

        # PI changes while the sensor runs: an edit and a delete of yesterday, an edit of this morning.
        edited, deleted = numeric[1], numeric[2]
        morning = max(
            datetime.now(UTC) - timedelta(hours=2), datetime.combine(today, datetime.min.time(), UTC)
        )
        changes = [
            {
                "WebId": edited,
                "Timestamp": _first_value(api, edited, f"{yesterday}T06:00:00Z"),
                "Value": 4242.5,
            },
            {
                "WebId": deleted,
                "Timestamp": _first_value(api, deleted, f"{yesterday}T07:30:00Z"),
                "Delete": True,
            },
            {"WebId": edited, "Timestamp": _first_value(api, edited, morning.isoformat()), "Value": -17.25},
        ]
        requests.post(f"{admin}/edits", json={"Edits": changes}, timeout=30).raise_for_status()

        # The sensors follow PI for FOLLOW_S; half-way PI loses every stream-updates cache.
        lags: list[float] = []
        expired = steady = False
        while time.monotonic() - started < FOLLOW_S:
            # Freshness is sampled from the first run the sensor requested on (before it, the lake is as
            # the set-up's runs left it, minutes ago).
            steady = steady or any(_by_sensor(run) and run["status"] == "SUCCESS" for run in ui.runs(JOB))
            newest = _newest(lake, fast)
            if steady and newest is not None:
                lags.append((datetime.now(UTC) - newest).total_seconds())
            if not expired and time.monotonic() - started > FOLLOW_S / 2:
                requests.post(f"{admin}/updates/expire", timeout=30).raise_for_status()
                expired = True
            time.sleep(3)
        # Then the sensor is turned off and the runs it requested finish: the lake is what it made.
        ui.stop_sensor(sensor_id)
        for run in ui.runs(JOB):
            if run["status"] not in ("SUCCESS", "FAILURE", "CANCELED"):
                ui.wait_run(run["runId"], 600)
        runs = ui.runs(JOB)
        ticks = ui.sensor_ticks(location, "pi_timeseries_sensor")
        failed = {
            run["runId"]: (run["status"], ui.run_errors(run["runId"]))
            for run in runs
            if run["status"] != "SUCCESS"
        }
        # The checks read PI while the mock still runs: a value reaching it after the sensor stopped is
        # legitimately not in the lake yet, so nothing is read later than needed.
        assert not failed, failed
        assert not [tick for tick in ticks if tick["status"] == "FAILURE"], ticks[:3]
        # No run storm: at most one run per tick (most ticks request one run for every shard of today).
        sensor_runs = [run for run in runs if _by_sensor(run)]
        assert 0 < len(sensor_runs) <= len(ticks) + 2

        # Yesterday (closed) equals PI whole: the edit is there, the deleted value gone, nothing else moved.
        start = day_start_ns(yesterday)
        for shard in SHARDS:
            web_ids = sorted(p["web_id"] for p in points if p["tag_shard"] == shard)
            assert_same_rows(
                lake_rows(lake.table("bronze.pi_timeseries"), yesterday, shard),
                truth(api, web_ids, start, start + 86_400 * SECOND_NS),
            )
            # Today up to the last read of every point of the shard equals PI over the same range.
            marks = read_watermarks(lake.table("checkpoints.pi_watermarks"), shard)
            until = min(to_ns(marks[w].read_until) for w in web_ids)
            rows = lake_rows(lake.table("bronze.pi_timeseries"), today, shard)
            assert_same_rows(
                Counter({row: n for row, n in rows.items() if row[1] < until}),
                truth(api, web_ids, day_start_ns(today), until),
            )
        p95 = float(np.percentile(lags, 95))
        print(f"freshness: {len(lags)} samples, p50 {np.percentile(lags, 50):.0f} s, p95 {p95:.0f} s")
        assert p95 <= FRESHNESS_P95_S, lags
