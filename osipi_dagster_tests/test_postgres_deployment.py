"""The production deployment of deploy/: a Dagster instance on PostgreSQL served by three processes.

A real PostgreSQL cluster (Debian's package), the mock PI Web API as a subprocess, and ``dagster code-server
start``, ``dagster-daemon run`` and ``dagster-webserver`` as separate processes on one instance, configured
by ``deploy/dagster.yaml`` and ``deploy/workspace.yaml`` as docs/DEPLOYMENT.md runs them. The test launches
a multi-date x multi-shard backfill through GraphQL, lets the daemon run it four runs at a time, then checks
every slice against the mock's values and reads the runs, the materializations, the backfill and the
daemon's heartbeats back from PostgreSQL itself.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import date
from pathlib import Path

import pytest

from osipi_dagster.lake import Lakehouse
from osipi_dagster_tests.pi_helpers import Row
from osipi_dagster_tests.processes import mock_pi
from osipi_dagster_tests.services import PostgresServer, dagster_deployment, most_at_once, postgres_server
from osipi_dagster_tests.timeseries_helpers import (
    SECOND_NS,
    assert_same_rows,
    day_start_ns,
    lake_rows,
    shard_web_ids,
    truth,
)

MOCK_NOW = "2025-01-06T12:00:00Z"  # fixed, so the backfilled days are closed and their values final
MOCK_TAGS = 16  # about 270,000 values a day: the slices are compared value by value
# Dagster's multi-run backfill policy groups a multi-partition backfill by its dimension with fewer keys
# (here the date, ties go to it) and makes a run of each group's range: 4 dates, 4 runs.
SHARDS = [f"s{index:02d}" for index in range(4)]
DATES = ["2025-01-02", "2025-01-03", "2025-01-04", "2025-01-05"]
PARTITIONS = [f"{day}|{shard}" for day in DATES for shard in SHARDS]
PARALLEL_RUNS = 4  # deploy/dagster.yaml: dagster/backfill runs at once, and the pi_webapi pool


@pytest.mark.slow
@pytest.mark.timeout(1800)  # 9 min seen under a load average of 15 on 2 cores
def test_a_backfill_on_the_postgres_instance_runs_in_parallel_and_writes_exactly_the_mock(
    tmp_path: Path,
) -> None:
    lake = tmp_path / "lake"
    settings = {"OSIPI_LAKE_ROOT": str(lake), "OSIPI_TAG_SHARDS": str(len(SHARDS))}
    with (
        postgres_server() as postgres,
        mock_pi(tmp_path, "--tags", str(MOCK_TAGS), "--now", MOCK_NOW) as pi_api,
    ):
        environment = postgres.environment() | settings | {"OSIPI_PI_BASE_URL": pi_api}
        home = tmp_path / "dagster_home"
        with dagster_deployment(home, environment, tmp_path) as ui:
            location = ui.location()
            ui.wait_run(ui.materialize(location, ["pi_af_hierarchy", "pi_af_attributes", "pi_points"]), 600)
            backfill_id = ui.launch_backfill("pi_timeseries", PARTITIONS, {"osipi/test": "postgres"})
            expected = _mock_slices(pi_api, Lakehouse(str(lake)))  # read while the daemon works
            backfill = ui.wait_backfill(backfill_id, timeout_s=1200)
            run_ids = {run["runId"] for run in backfill["runs"]}
            errors = {run_id: ui.run_errors(run_id) for run_id in run_ids}
        assert backfill["status"] == "COMPLETED_SUCCESS", (backfill, errors)
        assert len(run_ids) == PARALLEL_RUNS, "one run per date: its shards are one partition range"
        _assert_recorded_in_postgres(postgres, backfill_id, run_ids)
    assert not (home / "history").exists(), "no SQLite run storage next to the PostgreSQL one"

    table = Lakehouse(str(lake)).table("bronze.pi_timeseries")
    for (day, shard), rows in expected.items():
        assert_same_rows(lake_rows(table, day, shard), rows)


def _mock_slices(api: str, lake: Lakehouse) -> dict[tuple[date, str], Counter[Row]]:
    """Every partition's values read from the mock, for the points the catalog puts in its shard."""
    expected = {}
    for shard in SHARDS:
        web_ids = shard_web_ids(lake, shard)
        assert web_ids, f"no point in shard {shard}: choose another tag count"
        for day in map(date.fromisoformat, DATES):
            start = day_start_ns(day)
            expected[(day, shard)] = truth(api, web_ids, start, start + 86_400 * SECOND_NS)
    return expected


def _assert_recorded_in_postgres(postgres: PostgresServer, backfill_id: str, run_ids: set[str]) -> None:
    """The backfill, its runs (and that they overlapped), their materializations and the daemon, read from
    Dagster's tables in PostgreSQL."""
    runs = postgres.query(
        "SELECT run_id, status, start_time, end_time FROM runs WHERE backfill_id = %s", (backfill_id,)
    )
    assert {run_id for run_id, *_ in runs} == run_ids
    assert {status for _, status, *_ in runs} == {"SUCCESS"}
    assert most_at_once([(start, end) for _, _, start, end in runs]) == PARALLEL_RUNS, runs

    materialized = postgres.query(
        "SELECT partition, run_id FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION' "
        "AND asset_key = %s",
        (json.dumps(["pi_timeseries"]),),
    )
    assert sorted(partition for partition, _ in materialized) == sorted(PARTITIONS)
    assert {run_id for _, run_id in materialized} == run_ids

    ((status,),) = postgres.query("SELECT status FROM bulk_actions WHERE key = %s", (backfill_id,))
    assert status == "COMPLETED_SUCCESS"
    daemons = {daemon for (daemon,) in postgres.query("SELECT daemon_type FROM daemon_heartbeats")}
    assert {"BACKFILL", "QUEUED_RUN_COORDINATOR", "SCHEDULER", "SENSOR"} <= daemons
