"""What the derived assets (silver and gold: computed from the lake, never from PI) share: their kinds,
backfill runs, automation, and the loop that materializes a run's partitions one by one."""

from collections.abc import Callable, Sequence
from datetime import date
from typing import Protocol, TypeVar

import dagster as dg

from osipi_dagster.defs.pi_server.metadata import table_metadata
from osipi_dagster.defs.pi_server.partitions import split_partition_key
from osipi_dagster.lake import LakeTable

# Computed from the lake, never from PI: no `pi_webapi` pool, no PI resource.
DERIVED_KINDS = {"deltalake", "numpy"}
# Derived partitions are fast (seconds each): a backfill runs many per run.
PARTITIONS_PER_RUN = 64


def follows_upstream(catalog: dg.AssetSelection) -> dg.AutomationCondition:
    """Materialize a partition after a partition it depends on was updated, old days included, once every
    blocking check of those partitions passed.

    Dagster's ``AutomationCondition.eager()`` with three changes:

    * no ``in_latest_time_window()``: a re-materialized or late-corrected bronze day flows through, not
      only today (Dagster's documented way to follow older time partitions);
    * an update of a dependency stays pending until the partition is *requested* again, not merely
      materialized (``eager()`` forgets it when the partition is materialized): an update that lands while
      the partition's run is in progress, which that run may not have read, is followed by one more run
      after it instead of being lost. The price: a run that materializes a dependency and the partition
      together (by hand) is followed by one automatic run of the partition;
    * ``all_deps_blocking_checks_passed()``: a partition whose dependency failed a blocking check (the
      bronze checks of severity error) waits until that check passes for the dependency's latest
      materialization; a check that has not run yet for it blocks too.

    The catalog assets in ``catalog`` (unpartitioned, refreshed often) are ignored for updates, missing
    partitions and checks: a catalog refresh does not rewrite every partition of history (re-materialize
    silver to apply a changed AF model to past days), and a catalog check does not hold up the time series.

    The first evaluation requests nothing, however much history exists (Dagster's ``initial_evaluation``
    and the ``newly_*`` conditions only see changes after it): partitions older than the automation are
    filled by a backfill, ``PARTITIONS_PER_RUN`` a run.
    """
    updated = (
        dg.AutomationCondition.any_deps_match(dg.AutomationCondition.newly_updated())
        .ignore(catalog)
        .since(dg.AutomationCondition.newly_requested())
        .with_label("dependency_updated_since_requested")
    )
    return (
        (dg.AutomationCondition.newly_missing().since_last_handled() | updated)
        & ~dg.AutomationCondition.any_deps_missing().ignore(catalog)
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
        & dg.AutomationCondition.all_deps_blocking_checks_passed().ignore(catalog)
    ).with_label("follows_upstream")


class PartitionRun(Protocol):
    """What a derived partition's run reports (``SilverResult``, ``GoldResult``)."""

    @property
    def duration_seconds(self) -> float: ...


R = TypeVar("R", bound=PartitionRun)


def materialize_partitions(
    context: dg.AssetExecutionContext,
    table: LakeTable,
    run_one: Callable[[date, str], R],
    *,
    values: Callable[[R], int],
    describe: Callable[[R], str],
    metadata: Callable[[R], dict[str, object]],
    run_metadata: Callable[[Sequence[R]], dict[str, object]] = lambda _: {},
) -> dg.MaterializeResult:
    """Run ``run_one(day, shard)`` for each partition of the run (a backfill run covers several), logging
    ``describe`` of each and attaching its ``metadata`` to its partition; the run's own metadata is the
    table's, how many partitions, the values read per second over them (``values`` of each) and
    ``run_metadata``."""
    results: list[R] = []
    for key in context.partition_keys:
        day, shard = split_partition_key(key)
        result = run_one(date.fromisoformat(day), shard)
        context.log.info(f"{key}: {describe(result)}")
        context.add_asset_metadata(metadata(result), partition_key=key)
        results.append(result)
    read = sum(values(r) for r in results)
    seconds = sum(r.duration_seconds for r in results)
    return dg.MaterializeResult(
        metadata={
            **table_metadata(table),
            "run_partitions": dg.MetadataValue.int(len(results)),
            "run_values_per_second": dg.MetadataValue.int(round(read / seconds) if seconds else 0),
            **run_metadata(results),
        }
    )
