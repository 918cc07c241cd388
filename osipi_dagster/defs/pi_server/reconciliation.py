"""``pi_reconciliation``: is the lake equal to PI? Per point and closed day, and repaired when not."""

from datetime import date, timedelta

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from osipi_dagster.defs.pi_server.metadata import KINDS, POOL, definition_metadata, write_metadata
from osipi_dagster.defs.pi_server.partitions import DATE_PARTITION
from osipi_dagster.defs.pi_server.wiring import ServerWiring
from osipi_dagster.ingest.reconciliation import CatalogPoint, ReconciliationResult, reconcile_day
from osipi_dagster.ingest.server_clock import server_now
from osipi_dagster.lake import LakeTable, read_table
from osipi_dagster.lake.schemas import POINTS, RECONCILIATION, TIMESERIES

DAYS_PER_RUN = 31


def reconciliation_asset(server: ServerWiring) -> dg.AssetsDefinition:
    """The server's reconciliation, partitioned by UTC day like its event frames."""

    @dg.asset(
        key=server.key("pi_reconciliation"),
        deps=[
            dg.AssetDep(
                server.key("pi_timeseries"),
                partition_mapping=dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name="date"),
            )
        ],
        partitions_def=server.partitions.dates,
        backfill_policy=dg.BackfillPolicy.multi_run(DAYS_PER_RUN),
        group_name=server.settings.qualified("pi_gold"),
        kinds=KINDS,
        pool=POOL,
        metadata=definition_metadata(RECONCILIATION, server.table_name(RECONCILIATION.name), DATE_PARTITION),
        tags=server.tags("gold"),
        required_resource_keys=server.resource_keys,
    )
    def pi_reconciliation(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        """Compares, per point and closed UTC day, the lake's good values (count and mean) and first and
        last times with PI's own (`/streamsets/summary` Count and event-weighted Average, and a one-interval
        plot for the first and last values), and writes `gold.pi_reconciliation`. A (day, shard) partition
        that differs is materialized again by `pi_timeseries_sensor`; the next reconciliation of that day
        marks its points `repaired`, naming the run."""
        pi, lake = server.pi(context), server.lake(context)
        now = server_now(pi.client, pi.data_server)
        points = _catalog(lake.table(POINTS.name))
        table = lake.table(RECONCILIATION.name)
        for key in context.partition_keys:
            day = date.fromisoformat(key)
            result = reconcile_day(
                pi.client,
                timeseries=lake.table(TIMESERIES.name),
                reconciliation=table,
                points=points,
                day=day,
                now=now,
                repaired_by=_last_runs(context.instance, server, day),
            )
            context.log.info(
                f"{key}: {result.matches} points match PI, {result.differs} differ (shards "
                f"{', '.join(result.differing_shards) or '-'}), {result.repaired} repaired, "
                f"{result.unread} unread."
            )
            context.add_asset_metadata(_metadata(result, table), partition_key=key)
        return dg.MaterializeResult()

    return pi_reconciliation


def reconciliation_schedule(server: ServerWiring, job: UnresolvedAssetJobDefinition) -> dg.ScheduleDefinition:
    """Every night after the days close: the last `reconciliation_days` closed days."""
    settings = server.settings
    name = settings.qualified("pi_reconciliation_nightly")

    @dg.schedule(
        name=name,
        cron_schedule=f"45 {settings.close_day_hour} * * *",
        execution_timezone="UTC",
        job=job,
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description=f"Every night: the last {settings.reconciliation_days} closed days compared with PI.",
    )
    def _nightly(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest]:
        tick = context.scheduled_execution_time
        assert tick is not None
        days = [tick.date() - timedelta(days=n) for n in range(1, settings.reconciliation_days + 1)]
        return [
            dg.RunRequest(
                run_key=f"{name}:{day.isoformat()}:{tick.isoformat()}", partition_key=day.isoformat()
            )
            for day in days
            if day >= settings.start_date
        ]

    return _nightly


def _catalog(points_table: LakeTable) -> dict[str, CatalogPoint]:
    rows = read_table(points_table)
    if rows is None:
        raise LookupError(f"{points_table} does not exist yet: materialize the pi_points asset first.")
    return {
        row["web_id"]: CatalogPoint(row["name"], row["tag_shard"], row["point_type"] or "")
        for row in rows.select(["web_id", "name", "tag_shard", "point_type", "is_deleted"]).to_pylist()
        if not row["is_deleted"]
    }


def _last_runs(instance: dg.DagsterInstance, server: ServerWiring, day: date) -> dict[str, str]:
    """Per shard, the run that last materialized the (day, shard) time-series partition."""
    found = {}
    for shard in server.partitions.shard_keys:
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(
                asset_key=server.key("pi_timeseries"), asset_partitions=[f"{day.isoformat()}|{shard}"]
            ),
            limit=1,
        ).records
        if records:
            found[shard] = records[0].event_log_entry.run_id
    return found


def _metadata(result: ReconciliationResult, table: LakeTable) -> dict[str, object]:
    return {
        **write_metadata(result.write, table),
        "points_matched": dg.MetadataValue.int(result.matches),
        "points_differ": dg.MetadataValue.int(result.differs),
        "points_repaired": dg.MetadataValue.int(result.repaired),
        "points_unread": dg.MetadataValue.int(result.unread),
        "differing_shards": dg.MetadataValue.text(", ".join(result.differing_shards) or "-"),
        "duration_seconds": dg.MetadataValue.float(round(result.duration_seconds, 3)),
    }
