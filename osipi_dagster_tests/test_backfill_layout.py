"""How the partitions of a date x shard backfill of ``pi_timeseries`` are split into runs, and that a run over
several days *and* several shards writes every slice exactly.

The split is Dagster's own: the asset daemon's backfill iteration calls
``build_run_requests_with_backfill_policies`` (``dagster._core.execution.asset_backfill``), given here the
code location's asset graph and a test instance, as the daemon gives it its workspace's. A run over a
rectangle of days x shards is what a run launched with the partition range tags does (the launchpad's tags,
``dagster job launch --tags``, ``DagsterGraphQLClient.submit_job_execution(tags=...)``, the bench);
the test runs ``pi_timeseries_job`` so, against the mock over real HTTP, and compares each slice with an
independent read of the mock.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.definitions.automation_tick_evaluation_context import (
    build_run_requests_with_backfill_policies,
)
from dagster._core.definitions.events import AssetKeyPartitionKey

from osipi_dagster.definitions import build_definitions
from osipi_dagster.defs.pi_server.timeseries import PARTITIONS_PER_RUN
from osipi_dagster.lake import Lakehouse
from osipi_dagster.mock.server import RunningMock
from osipi_dagster.settings import LakeSettings, PIServerSettings
from osipi_dagster_tests.timeseries_helpers import (
    assert_same_rows,
    day_start_ns,
    lake_rows,
    shard_web_ids,
    truth,
)

RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"
DAY_NS = 86_400 * 10**9


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as instance:
        yield instance


def backfill_runs(instance: dg.DagsterInstance, days: list[str], shards: int) -> list[tuple[str, str]]:
    """The (first, last) partition of each run Dagster's backfill daemon makes of ``days`` x every shard."""
    defs = build_definitions(LakeSettings(root="unused"), [PIServerSettings(tag_shards=shards)])
    shard_keys = [f"s{index:02d}" for index in range(shards)]
    selected = {
        AssetKeyPartitionKey(dg.AssetKey("pi_timeseries"), f"{day}|{shard}")
        for day in days
        for shard in shard_keys
    }
    requests = build_run_requests_with_backfill_policies(selected, defs.resolve_asset_graph(), instance)
    return sorted((request.tags[RANGE_START], request.tags[RANGE_END]) for request in requests)


def days_from(first: date, count: int) -> list[str]:
    return [date.fromordinal(first.toordinal() + offset).isoformat() for offset in range(count)]


def test_a_backfill_of_fewer_days_than_shards_makes_one_run_per_day(instance: dg.DagsterInstance) -> None:
    """3 days x 16 shards (the bench's 48 partitions): Dagster groups by the dimension with fewer selected
    keys, so each run is one day's 16 shards: 3 runs, never a rectangle of days x shards."""
    runs = backfill_runs(instance, days_from(date(2025, 1, 3), 3), shards=16)

    assert runs == [(f"{day}|s00", f"{day}|s15") for day in ("2025-01-03", "2025-01-04", "2025-01-05")]


def test_a_backfill_of_many_days_makes_runs_of_one_shard_over_many_days(instance: dg.DagsterInstance) -> None:
    """40 days x 16 shards: one range per shard over the 40 days, cut at ``PARTITIONS_PER_RUN`` days: 32
    runs of 32 or 8 partitions, so the pool's 4 runs at once each carry many partitions."""
    days = days_from(date(2024, 12, 1), 40)

    runs = backfill_runs(instance, days, shards=16)

    cut = days[PARTITIONS_PER_RUN - 1]
    expected = [
        (f"{first}|s{index:02d}", f"{last}|s{index:02d}")
        for index in range(16)
        for first, last in ((days[0], cut), (days[PARTITIONS_PER_RUN], days[-1]))
    ]
    assert runs == sorted(expected)


def test_a_run_over_days_and_shards_writes_each_slice_exactly_and_reports_each_partition(
    mock_pi: RunningMock, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    """A run over 2 days x 2 shards (the range tags of one rectangle, as the bench launches 4 of them):
    4 partitions, each committed on its own and equal to the mock's values of its shard's points over its
    day, each with its own materialization and row count, and the checks evaluated per partition."""
    defs = build_definitions(
        LakeSettings(root=str(tmp_path / "lake")), [PIServerSettings(base_url=mock_pi.api, compress=False)]
    )
    assert defs.resolve_job_def("pi_catalog_job").execute_in_process(instance=instance).success
    days, shards = [date(2025, 1, 4), date(2025, 1, 5)], ["s01", "s02"]
    partitions = [f"{day}|{shard}" for day in days for shard in shards]

    result = defs.resolve_job_def("pi_timeseries_job").execute_in_process(
        instance=instance, tags={RANGE_START: partitions[0], RANGE_END: partitions[-1]}
    )

    assert result.success
    lake = Lakehouse(str(tmp_path / "lake"))
    table = lake.table("bronze.pi_timeseries")
    materializations = {
        event.partition: event.materialization.metadata for event in result.get_asset_materialization_events()
    }
    assert sorted(materializations) == sorted(partitions)
    versions = set()
    for day in days:
        for shard in shards:
            want = truth(
                mock_pi.api, shard_web_ids(lake, shard), day_start_ns(day), day_start_ns(day) + DAY_NS
            )
            assert_same_rows(lake_rows(table, day, shard), want)
            metadata = materializations[f"{day}|{shard}"]
            assert metadata["dagster/row_count"].value == sum(want.values())
            versions.add(metadata["delta_table_version"].value)
    assert len(versions) == len(partitions), "each partition is its own Delta commit"
    checked = {evaluation.partition for evaluation in result.get_asset_check_evaluations()}
    assert checked == set(partitions)
