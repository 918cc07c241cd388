"""``pi_timeseries_clean``: the silver time series, one partition per bronze (UTC day, tag shard)."""

from datetime import date

import dagster as dg

from osipi_dagster.defs.pi_server.metadata import definition_metadata, table_metadata
from osipi_dagster.defs.pi_server.partitions import split_partition_key
from osipi_dagster.defs.pi_server.wiring import LAKEHOUSE, ServerWiring
from osipi_dagster.ingest.silver import SilverResult, clean_partition
from osipi_dagster.lake import LakeTable
from osipi_dagster.lake.schemas import (
    AF_ATTRIBUTES,
    AF_HIERARCHY,
    POINTS,
    SILVER_EDGES,
    SILVER_TIMESERIES,
    TIMESERIES,
)

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


def silver_asset(server: ServerWiring) -> dg.AssetsDefinition:
    """The server's cleaned time series, partitioned like ``pi_timeseries``."""
    catalog = [server.key(name) for name in ("pi_points", "pi_af_hierarchy", "pi_af_attributes")]

    @dg.asset(
        key=server.key("pi_timeseries_clean"),
        deps=[
            dg.AssetDep(server.key("pi_timeseries"), partition_mapping=dg.IdentityPartitionMapping()),
            *catalog,
        ],
        partitions_def=server.partitions.timeseries,
        backfill_policy=dg.BackfillPolicy.multi_run(PARTITIONS_PER_RUN),
        automation_condition=follows_upstream(dg.AssetSelection.assets(*catalog)),
        group_name=server.settings.qualified("pi_silver"),
        kinds=DERIVED_KINDS,
        metadata=definition_metadata(SILVER_TIMESERIES, server.table_name(SILVER_TIMESERIES.name)),
        required_resource_keys={LAKEHOUSE},
    )
    def pi_timeseries_clean(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        """PI recorded values cleaned, one partition per `pi_timeseries` partition, replaced whole in one
        Delta commit whenever its bronze partition changes (automatically, old days included, once the
        automation sensor is on).

        * every bronze value once: a value repeated at the same timestamp right after itself is dropped;
          several distinct values at one timestamp stay, in PI's order;
        * typed: `value` (numeric points), `string_value`, `digital_state_code`/`digital_state_name`;
          system states (I/O Timeout, Shutdown, ...) split out into `system_state_code`/`system_state_name`
          with `value` null and `is_good` false: a state is never a number;
        * AF context: the referencing attribute (`af_attribute_path`, `af_attribute_name`; the first path in
          alphabetical order when several reference the point, `af_attribute_count` of them), its element
          (`af_element_path`, `af_element_template`) and the element's `site`, `area` and `unit` (the
          nearest ancestors whose template or category is Site, Area, Unit or Process Unit);
        * sorted by point, then time."""
        lake = server.lake(context)
        table = lake.table(SILVER_TIMESERIES.name)
        results: list[SilverResult] = []
        for key in context.partition_keys:
            day, shard = split_partition_key(key)
            result = clean_partition(
                bronze=lake.table(TIMESERIES.name),
                silver=table,
                edges=lake.table(SILVER_EDGES.name),
                points=lake.table(POINTS.name),
                af_hierarchy=lake.table(AF_HIERARCHY.name),
                af_attributes=lake.table(AF_ATTRIBUTES.name),
                day=date.fromisoformat(day),
                shard=shard,
            )
            context.log.info(
                f"{key}: {result.rows} values of {result.points} points, {result.duplicates_removed} "
                f"duplicates removed, {result.system_states} system states"
            )
            context.add_asset_metadata(_metadata(result), partition_key=key)
            results.append(result)
        return dg.MaterializeResult(metadata=_run_metadata(results, table))

    return pi_timeseries_clean


def _metadata(result: SilverResult) -> dict[str, object]:
    return {
        "dagster/row_count": dg.MetadataValue.int(result.rows),
        "bronze_values": dg.MetadataValue.int(result.rows_read),
        "duplicates_removed": dg.MetadataValue.int(result.duplicates_removed),
        "system_states": dg.MetadataValue.int(result.system_states),
        "points": dg.MetadataValue.int(result.points),
        "points_without_af": dg.MetadataValue.int(result.points_without_af),
        "buckets": dg.MetadataValue.int(result.buckets),
        "edge_rows": dg.MetadataValue.int(result.edges.rows_written),
        "delta_table_version": dg.MetadataValue.int(result.write.version),
        "files_added": dg.MetadataValue.int(result.write.files_added),
        "duration_seconds": dg.MetadataValue.float(round(result.duration_seconds, 3)),
        "values_per_second": dg.MetadataValue.int(round(result.values_per_second)),
    }


def _run_metadata(results: list[SilverResult], table: LakeTable) -> dict[str, object]:
    """What the whole run did (a backfill run covers several partitions)."""
    values = sum(r.rows_read for r in results)
    seconds = sum(r.duration_seconds for r in results)
    return {
        **table_metadata(table),
        "run_partitions": dg.MetadataValue.int(len(results)),
        "run_duplicates_removed": dg.MetadataValue.int(sum(r.duplicates_removed for r in results)),
        "run_values_per_second": dg.MetadataValue.int(round(values / seconds) if seconds else 0),
    }
