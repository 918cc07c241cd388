"""``pi_timeseries_hourly``: hourly statistics of every point, partitioned like the silver time series."""

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
from osipi_dagster.ingest.gold import GoldResult, aggregate_partition
from osipi_dagster.lake.schemas import GOLD_HOURLY, SILVER_EDGES, SILVER_TIMESERIES

# Day D needs the last value of D-1 (carried into its first hour) and the first values of D+1 (closing its
# last hour), of the same shard. The day after the newest partition does not exist yet: not a dependency.
NEIGHBOUR_DAYS = dg.MultiPartitionMapping(
    {
        "date": dg.DimensionPartitionMapping(
            "date",
            dg.TimeWindowPartitionMapping(
                start_offset=-1, end_offset=1, allow_nonexistent_upstream_partitions=True
            ),
        ),
        "shard": dg.DimensionPartitionMapping("shard", dg.IdentityPartitionMapping()),
    }
)


def gold_asset(server: ServerWiring) -> dg.AssetsDefinition:
    """The server's hourly statistics, partitioned like ``pi_timeseries``."""

    @dg.asset(
        key=server.key("pi_timeseries_hourly"),
        deps=[dg.AssetDep(server.key("pi_timeseries_clean"), partition_mapping=NEIGHBOUR_DAYS)],
        partitions_def=server.partitions.timeseries,
        backfill_policy=dg.BackfillPolicy.multi_run(PARTITIONS_PER_RUN),
        automation_condition=follows_upstream(dg.AssetSelection.assets()),
        group_name=server.settings.qualified("pi_gold"),
        kinds=DERIVED_KINDS,
        metadata=definition_metadata(GOLD_HOURLY, server.table_name(GOLD_HOURLY.name)),
        required_resource_keys={LAKEHOUSE},
    )
    def pi_timeseries_hourly(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        """Per point and UTC hour, PI's own summaries computed from `pi_timeseries_clean` (the same figures
        as PI Web API's `/summary` with `summaryDuration=1h`):

        * `events` and `count` (good values) stamped in `[hour, hour + 1 h)`, `good_share`;
        * `minimum`, `maximum` (PI's time-weighted ones: over the closed hour, the interpolated values at
          its ends included), `first_value`, `last_value`;
        * `mean_event_weighted`, and `mean_time_weighted` over `good_seconds`: the value held (points whose
          `step` is true) or interpolated linearly between values, bad values not weighed, the value before
          the hour carried in;
        * numeric points only for the value columns; digital and string points get counts.

        A day needs its neighbours: the previous day's last value opens its first hour, the next day's
        first values close its last hour. It is replaced whole whenever one of the three silver days
        changes; until the next day is in silver, its last hours are marked `complete = false`."""
        lake = server.lake(context)
        table = lake.table(GOLD_HOURLY.name)

        def aggregate(day: date, shard: str) -> GoldResult:
            return aggregate_partition(
                silver=lake.table(SILVER_TIMESERIES.name),
                edges=lake.table(SILVER_EDGES.name),
                gold=table,
                day=day,
                shard=shard,
            )

        return materialize_partitions(
            context,
            table,
            aggregate,
            values=lambda result: result.values,
            describe=lambda result: (
                f"{result.rows} point-hours from {result.values} values of {result.points} points"
            ),
            metadata=_metadata,
        )

    return pi_timeseries_hourly


def _metadata(result: GoldResult) -> dict[str, object]:
    return {
        "dagster/row_count": dg.MetadataValue.int(result.rows),
        "silver_values": dg.MetadataValue.int(result.values),
        "points": dg.MetadataValue.int(result.points),
        "hours_incomplete": dg.MetadataValue.int(result.hours_incomplete),
        "neighbour_days_read_whole": dg.MetadataValue.int(result.neighbours_read_whole),
        "delta_table_version": dg.MetadataValue.int(result.write.version),
        "duration_seconds": dg.MetadataValue.float(round(result.duration_seconds, 3)),
        "values_per_second": dg.MetadataValue.int(round(result.values_per_second)),
    }
