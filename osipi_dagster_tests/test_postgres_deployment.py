"""The production deployment of deploy/: a Dagster instance on PostgreSQL served by three processes.

A real PostgreSQL cluster (Debian's package), the mock PI Web API as a subprocess, and ``dagster code-server
start``, ``dagster-daemon run`` and ``dagster-webserver`` as separate processes on one instance, configured
by ``deploy/dagster.yaml`` and ``deploy/workspace.yaml`` as docs/DEPLOYMENT.md runs them. The test launches
a multi-date x multi-shard backfill through GraphQL, lets the daemon run it four runs at a time, then checks
every slice against the mock's values and reads the runs, the materializations, the backfill and the
daemon's heartbeats back from PostgreSQL itself.

One of the runs is interrupted (SIGINT to its run worker, as when its host stops) after it committed some of
its partitions: the daemon re-executes it (deploy/dagster.yaml's ``run_retries``), and the retry writes those
partitions again without duplicating or losing a value.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from datetime import date
from pathlib import Path

import pytest
import requests

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
# Every PI answer held this long while the runs read, so that a run is caught between two partitions' commits.
SLOW_ANSWER_MS = 3000
NOT_YET_STARTED = {"NOT_STARTED", "QUEUED", "STARTING"}


@pytest.mark.slow(minutes=3.5)
@pytest.mark.timeout(2400)  # 17 min seen under a load average of 40 on 2 cores
def test_a_postgres_backfill_runs_in_parallel_retries_an_interrupted_run_and_writes_exactly_the_mock(
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
            _set_faults(pi_api, {"latency_ms": SLOW_ANSWER_MS})
            backfill_id = ui.launch_backfill("pi_timeseries", PARTITIONS, {"osipi/test": "postgres"})
            interrupted = _interrupt_a_run_between_commits(postgres, backfill_id)
            _set_faults(pi_api, {})
            expected = _mock_slices(pi_api, Lakehouse(str(lake)))  # read while the daemon works
            backfill = ui.wait_backfill(backfill_id, timeout_s=1500)
            run_ids = {run["runId"] for run in backfill["runs"]}
            errors = {run_id: ui.run_errors(run_id) for run_id in run_ids}
        assert backfill["status"] == "COMPLETED_SUCCESS", (backfill, errors)
        assert len(run_ids) == PARALLEL_RUNS + 1, (
            "one run per date: its shards are one partition range; a retry"
        )
        _assert_recorded_in_postgres(postgres, backfill_id, run_ids, interrupted)
    assert not (home / "history").exists(), "no SQLite run storage next to the PostgreSQL one"

    table = Lakehouse(str(lake)).table("bronze.pi_timeseries")
    for (day, shard), rows in expected.items():
        assert_same_rows(lake_rows(table, day, shard), rows)


def _set_faults(api: str, faults: dict[str, float]) -> None:
    answer = requests.put(api.removesuffix("/piwebapi") + "/admin/faults", json=faults, timeout=30)
    answer.raise_for_status()


def _interrupt_a_run_between_commits(postgres: PostgresServer, backfill_id: str) -> str:
    """Once all the backfill's runs have started, SIGINT the run worker of one that has committed some of its
    partitions but not all (as when the host it runs on stops); the run's id."""
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        runs = postgres.query("SELECT run_id, status FROM runs WHERE backfill_id = %s", (backfill_id,))
        if len(runs) == PARALLEL_RUNS and not {status for _, status in runs} & NOT_YET_STARTED:
            for run_id, status in runs:
                if status == "STARTED" and 0 < len(_committed(postgres, run_id)) < len(SHARDS):
                    ((event,),) = postgres.query(
                        "SELECT event FROM event_logs WHERE run_id = %s "
                        "AND dagster_event_type = 'PIPELINE_START'",
                        (run_id,),
                    )
                    os.kill(json.loads(event)["dagster_event"]["pid"], signal.SIGINT)  # the worker logged it
                    return run_id
        time.sleep(0.2)
    raise AssertionError(f"no run of backfill {backfill_id} was caught between two commits: {runs}")


def _committed(postgres: PostgresServer, run_id: str) -> set[str]:
    """The partitions a run has committed so far: the step logs each one once its Delta commit is done (its
    materializations are reported together when the step ends)."""
    messages = postgres.query(
        "SELECT event::json->>'user_message' FROM event_logs "
        "WHERE run_id = %s AND dagster_event_type IS NULL",
        (run_id,),
    )
    return {message.split(":")[0] for (message,) in messages if " values of " in message}


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


def _assert_recorded_in_postgres(
    postgres: PostgresServer, backfill_id: str, run_ids: set[str], interrupted: str
) -> None:
    """The backfill, its runs (that they overlapped, that the interrupted one failed and its retry
    succeeded), their materializations and the daemon, read from Dagster's tables in PostgreSQL."""
    runs = postgres.query(
        "SELECT run_id, status, start_time, end_time FROM runs WHERE backfill_id = %s", (backfill_id,)
    )
    assert {run_id for run_id, *_ in runs} == run_ids
    assert {run_id: status for run_id, status, *_ in runs if status != "SUCCESS"} == {interrupted: "FAILURE"}
    assert most_at_once([(start, end) for _, _, start, end in runs]) == PARALLEL_RUNS, runs
    tags = dict(postgres.query("SELECT key, value FROM run_tags WHERE run_id = %s", (interrupted,)))
    assert tags["dagster/failure_reason"] == "UNEXPECTED_TERMINATION", tags
    ((retry, status),) = postgres.query(
        "SELECT runs.run_id, status FROM runs JOIN run_tags ON run_tags.run_id = runs.run_id "
        "WHERE key = 'dagster/parent_run_id' AND value = %s",
        (interrupted,),
    )
    assert status == "SUCCESS"

    materialized = postgres.query(
        "SELECT partition, run_id FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION' "
        "AND asset_key = %s",
        (json.dumps(["pi_timeseries"]),),
    )
    # The interrupted step reported none of the partitions it had committed: its retry wrote them again.
    assert sorted(partition for partition, _ in materialized) == sorted(PARTITIONS)
    assert {run_id for _, run_id in materialized} == run_ids - {interrupted}
    committed = _committed(postgres, interrupted)
    assert committed, "the run was interrupted after a commit"
    assert committed <= {partition for partition, run_id in materialized if run_id == retry}

    ((status,),) = postgres.query("SELECT status FROM bulk_actions WHERE key = %s", (backfill_id,))
    assert status == "COMPLETED_SUCCESS"
    daemons = {daemon for (daemon,) in postgres.query("SELECT daemon_type FROM daemon_heartbeats")}
    assert {"BACKFILL", "QUEUED_RUN_COORDINATOR", "SCHEDULER", "SENSOR"} <= daemons
