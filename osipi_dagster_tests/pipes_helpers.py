"""Helpers for the compute-target tests: materialize a server's assets through its definitions, read back
each partition's metadata, and compare the lake with the mock's truth."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import dagster as dg

from osipi_dagster.definitions import build_definitions
from osipi_dagster.defs.pi_server.wiring import ServerWiring
from osipi_dagster.lake import Lakehouse
from osipi_dagster.mock.server import RunningMock
from osipi_dagster.settings import LakeSettings, PIServerSettings
from osipi_dagster_tests.test_ingest_event_frames import raw_event_frames, stored_rows
from osipi_dagster_tests.timeseries_helpers import (
    SECOND_NS,
    assert_same_rows,
    day_start_ns,
    lake_rows,
    shard_web_ids,
    truth,
)

DAY = date(2025, 1, 5)
SHARDS = ("s00", "s01")
# Metadata that measures time differs from run to run; everything else must be the same wherever it ran.
TIMINGS = frozenset({"duration_seconds", "values_per_second", "run_values_per_second", "write_seconds"})


class Materializer:
    """A server's definitions over one lakehouse, materialized on one Dagster instance."""

    def __init__(self, server: PIServerSettings, root: Path | str, instance: dg.DagsterInstance) -> None:
        self.server, self.root, self.instance = server, root, instance
        self.defs = build_definitions(LakeSettings(root=str(root)), [server])
        self.key = ServerWiring(server).key
        self.lake = Lakehouse(str(root), table_prefix=server.table_prefix)

    def run(self, names: list[str], tags: dict[str, str] | None = None, partition: str | None = None):
        keys = [self.key(name) for name in names]
        job = self.defs.resolve_implicit_job_def_def_for_assets(keys)
        assert job is not None
        return job.execute_in_process(
            instance=self.instance,
            asset_selection=keys,
            partition_key=partition,
            tags=tags,
            raise_on_error=False,
        )

    def catalog(self) -> None:
        assert self.run(["pi_af_hierarchy", "pi_af_attributes", "pi_points"]).success

    def timeseries_day(self):
        """Every shard of DAY in one run (one step covers a range of partitions, as a backfill's runs do)."""
        return self.run(
            ["pi_timeseries"],
            tags={
                "dagster/asset_partition_range_start": f"{DAY.isoformat()}|{SHARDS[0]}",
                "dagster/asset_partition_range_end": f"{DAY.isoformat()}|{SHARDS[-1]}",
            },
        )

    def event_frames_day(self):
        return self.run(["pi_event_frames"], partition=DAY.isoformat())


def partition_metadata(result: dg.ExecuteInProcessResult) -> dict[str, dict[str, Any]]:
    """Each materialized partition's metadata as plain values, timings left out."""
    return {
        str(event.partition): {
            key: value.value for key, value in event.materialization.metadata.items() if key not in TIMINGS
        }
        for event in result.get_asset_materialization_events()
    }


def failure_of(result: dg.ExecuteInProcessResult) -> tuple[str, dict[str, Any]]:
    """The failed step's description and metadata."""
    assert not result.success
    (event,) = result.get_step_failure_events()
    data = event.step_failure_data
    user = data.user_failure_data
    assert user is not None, data.error
    return user.description or "", {key: value.value for key, value in user.metadata.items()}


def assert_day_matches_mock(lake: Lakehouse, mock: RunningMock) -> None:
    """Every shard of DAY holds exactly the mock's values of its points."""
    start = day_start_ns(DAY)
    for shard in SHARDS:
        web_ids = shard_web_ids(lake, shard)
        assert web_ids
        assert_same_rows(
            lake_rows(lake.table("bronze.pi_timeseries"), DAY, shard),
            truth(mock.api, web_ids, start, start + 86_400 * SECOND_NS),
        )


def assert_event_frames_match_mock(lake: Lakehouse, mock: RunningMock, now: datetime) -> None:
    assert stored_rows(lake.table("bronze.pi_event_frames")) == raw_event_frames(mock.api, DAY, now)


def mock_now(now: str) -> datetime:
    return datetime.fromisoformat(now.replace("Z", "+00:00")).astimezone(UTC)
