"""``pi_timeseries_clean``: the silver time series, one partition per bronze (UTC day, tag shard)."""

from datetime import date

import dagster as dg

from osipi_dagster.defs.pi_server.derived import (
    DERIVED_KINDS,
    PARTITIONS_PER_RUN,
    follows_upstream,
    materialize_partitions,
)
from osipi_dagster.defs.pi_server.metadata import definition_metadata
from osipi_dagster.defs.pi_server.wiring import LAKEHOUSE, ServerWiring
from osipi_dagster.ingest.silver import SilverResult, clean_partition
from osipi_dagster.lake.schemas import (
    AF_ATTRIBUTES,
    AF_HIERARCHY,
    POINTS,
    SILVER_EDGES,
    SILVER_TIMESERIES,
    TIMESERIES,
)


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

        def clean(day: date, shard: str) -> SilverResult:
            return clean_partition(
                bronze=lake.table(TIMESERIES.name),
                silver=table,
                edges=lake.table(SILVER_EDGES.name),
                points=lake.table(POINTS.name),
                af_hierarchy=lake.table(AF_HIERARCHY.name),
                af_attributes=lake.table(AF_ATTRIBUTES.name),
                day=day,
                shard=shard,
            )

        return materialize_partitions(
            context,
            table,
            clean,
            values=lambda result: result.rows_read,
            describe=lambda result: (
                f"{result.rows} values of {result.points} points, {result.duplicates_removed} duplicates "
                f"removed, {result.system_states} system states"
            ),
            metadata=_metadata,
            run_metadata=lambda results: {
                "run_duplicates_removed": dg.MetadataValue.int(sum(r.duplicates_removed for r in results))
            },
        )

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
