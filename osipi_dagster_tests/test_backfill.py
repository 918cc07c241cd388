"""A multi-date, multi-shard backfill of ``pi_timeseries`` through Dagster's own backfill machinery.

Everything runs as a user runs it: the mock PI Web API and ``dagster dev -w workspace.yaml`` are real
subprocesses on loopback, with a fresh ``DAGSTER_HOME`` holding the project's ``dagster.yaml``. The test
materializes the AF and catalog assets with ``launchRun`` (the Materialize button), launches the backfill
with ``launchPartitionBackfill`` (the UI's backfill dialog), lets the daemon run it, and checks the
instance, the runs and the Delta table against counts read independently from the mock.
"""

from __future__ import annotations

import sys
from datetime import date, timedelta
from pathlib import Path
from typing import TypeVar

import pytest
import requests
from deltalake import DeltaTable

from osipi_dagster.ingest.shards import shard_of
from osipi_dagster_tests.processes import dagster_dev, mock_pi

T = TypeVar("T")
SliceCounts = dict[tuple[str, str, str], int]  # (partition date, tag shard, point WebId) -> values

REPO = Path(__file__).resolve().parents[1]
DAGSTER = str(Path(sys.executable).with_name("dagster"))  # the venv's CLI, next to its python
MOCK_NOW = "2025-01-06T12:00:00Z"  # fixed, so the backfilled days are closed and their values final
MOCK_TAGS = 100
SHARDS = [f"s{index:02d}" for index in range(4)]
DATES = ["2025-01-04", "2025-01-05"]
PARTITIONS = [f"{day}|{shard}" for day in DATES for shard in SHARDS]
MAX_COUNT = 150_000  # the mock's MaxReturnedItemsPerCall: one request must hold a point's whole day


@pytest.mark.slow(minutes=2.5)
@pytest.mark.timeout(1800)  # waits return as soon as done; CI's 2 cores may be shared
def test_backfill_through_the_daemon_writes_exactly_the_selected_slices(tmp_path: Path) -> None:
    """2 dates x 4 shards launched as one backfill: every partition materialized by backfill runs, and
    the Delta table holds exactly those slices with the mock's value count for every point."""
    lake = tmp_path / "lake"
    with (
        mock_pi(tmp_path, "--tags", str(MOCK_TAGS), "--now", MOCK_NOW) as pi_api,
        dagster_dev(
            tmp_path,
            {"OSIPI_PI_BASE_URL": pi_api, "OSIPI_LAKE_ROOT": str(lake), "OSIPI_TAG_SHARDS": str(len(SHARDS))},
        ) as ui,
    ):
        location = ui.location()  # fails with Dagster's own error if the code location did not load
        ui.wait_run(ui.materialize(location, ["pi_af_hierarchy", "pi_af_attributes", "pi_points"]), 600)

        backfill_id = ui.launch_backfill("pi_timeseries", PARTITIONS, {"osipi/test": "backfill"})
        truth = _mock_counts(pi_api)  # read while the daemon sleeps before its first backfill tick
        backfill = ui.wait_backfill(backfill_id, timeout_s=900)
        run_ids = {run["runId"] for run in backfill["runs"]}
        errors = {run_id: ui.run_errors(run_id) for run_id in run_ids}
        assert backfill["status"] == "COMPLETED_SUCCESS", (backfill, errors)
        assert sorted(backfill["partitionNames"]) == sorted(PARTITIONS)
        assert 0 < len(run_ids) < len(PARTITIONS), "the backfill policy batches partitions into runs"
        for run in backfill["runs"]:
            tags = {tag["key"]: tag["value"] for tag in run["tags"]}
            assert run["status"] == "SUCCESS", (run, errors[run["runId"]])
            assert tags["dagster/backfill"] == backfill_id
            assert tags["osipi/test"] == "backfill"

        materializations = ui.materializations("pi_timeseries", PARTITIONS)
        assert sorted(m["partition"] for m in materializations) == sorted(PARTITIONS)
        assert {m["runId"] for m in materializations} <= run_ids
    assert {(day, shard) for day, shard, _ in truth} == {tuple(p.split("|")) for p in PARTITIONS}
    assert _table_counts(lake / "bronze" / "pi_timeseries") == truth


def _table_counts(path: Path) -> SliceCounts:
    """Rows of the Delta table per (partition date, tag shard, point)."""
    rows = DeltaTable(str(path)).to_pyarrow_table(columns=["partition_date", "tag_shard", "web_id"])
    counts = rows.group_by(["partition_date", "tag_shard", "web_id"]).aggregate([([], "count_all")])
    return {
        (str(row["partition_date"]), row["tag_shard"], row["web_id"]): row["count_all"]
        for row in counts.to_pylist()
    }


def _mock_counts(api: str) -> SliceCounts:
    """The mock's recorded values per (day, shard, point), read with plain HTTP requests, one per point
    and day: every value stamped inside ``[day, day + 1)``, sharded by the data server's id and point id."""
    with requests.Session() as session:
        server = session.get(f"{api}/dataservers", timeout=30).json()["Items"][0]
        points = session.get(
            server["Links"]["Points"],
            params={"maxCount": "10000", "selectedFields": "Items.WebId;Items.Id"},
            timeout=30,
        ).json()["Items"]
        assert len(points) == MOCK_TAGS
        counts: SliceCounts = {}
        for point in points:
            shard = shard_of(f"{server['Id']}:{point['Id']}", len(SHARDS))
            for day in DATES:
                end = date.fromisoformat(day) + timedelta(days=1)
                answer = session.get(
                    f"{api}/streams/{point['WebId']}/recorded",
                    params={
                        "startTime": f"{day}T00:00:00Z",
                        "endTime": f"{end.isoformat()}T00:00:00Z",
                        "maxCount": str(MAX_COUNT),
                        "selectedFields": "Items.Timestamp",
                    },
                    timeout=60,
                )
                answer.raise_for_status()
                items = answer.json()["Items"]
                assert len(items) < MAX_COUNT, "a truncated answer would undercount"
                in_day = sum(item["Timestamp"].startswith(day) for item in items)
                if in_day:
                    counts[(day, shard, point["WebId"])] = in_day
    return counts
