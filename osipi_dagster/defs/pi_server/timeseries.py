"""``pi_timeseries``: PI recorded values, one (UTC day, tag shard) partition at a time."""

from datetime import date, datetime, timedelta
from functools import cache

import dagster as dg
from pydantic import Field

from osipi_dagster.contract import from_ns, to_ns
from osipi_dagster.defs.compute import run_elsewhere
from osipi_dagster.defs.pi_server.metadata import KINDS, POOL, definition_metadata, table_metadata
from osipi_dagster.defs.pi_server.partitions import TIMESERIES_PARTITION, not_begun, split_partition_key
from osipi_dagster.defs.pi_server.wiring import ServerWiring
from osipi_dagster.ingest.catalog import points_first_seen, shard_points
from osipi_dagster.ingest.server_clock import server_now
from osipi_dagster.ingest.timeseries import PartitionResult, PointReadError, ingest_partition
from osipi_dagster.lake import LakeTable, row_count
from osipi_dagster.lake.schemas import DATA_LATENCY, POINTS, TIMESERIES, WATERMARKS
from osipi_dagster.pipes.request import RemoteJob

# A backfill's runs carry at most this many partitions: Dagster costs seconds per run, so one run per
# partition would spend most of a backfill starting runs. Dagster's backfill daemon fills a run with one
# day's shards or one shard's days, never several of both (docs/DEPLOYMENT.md, "Sizing the pools").
PARTITIONS_PER_RUN = 32


class TimeseriesConfig(dg.Config):
    """How the open day is read, for this run."""

    overlap_minutes: int | None = Field(
        default=None,
        ge=0,
        description="How far before its watermark each point of the open day is re-read (minutes, >= 0); "
        "unset: the server's setting (OSIPI_OVERLAP_MINUTES for the default server, 60 if unset).",
    )
    reread_from: str | None = Field(
        default=None,
        description="On the open day, read every point from this time (ISO 8601 UTC) at the latest; set by "
        "pi_timeseries_sensor when PI changed values older than the watermarks minus the overlap.",
    )
    new_points_after: str | None = Field(
        default=None,
        description="Read and replace only the points that entered the catalog after this time (ISO 8601 "
        "UTC; and up to new_points_until): their history. Set by pi_catalog_sensor.",
    )
    new_points_until: str | None = Field(default=None, description="See new_points_after.")
    prune_absent_points: bool = Field(
        default=False,
        description="Also delete the partition's rows of points the catalog keeps as deleted (gone from PI "
        "or filtered out). Off by default: their history cannot be read again.",
    )


def timeseries_asset(server: ServerWiring) -> dg.AssetsDefinition:
    """The server's recorded values, partitioned (UTC day x tag shard)."""

    @dg.asset(
        key=server.key("pi_timeseries"),
        deps=[server.key("pi_points")],
        partitions_def=server.partitions.timeseries,
        backfill_policy=dg.BackfillPolicy.multi_run(PARTITIONS_PER_RUN),
        group_name=server.group,
        kinds=KINDS,
        pool=POOL,
        metadata=definition_metadata(TIMESERIES, server.table_name(TIMESERIES.name), TIMESERIES_PARTITION),
        tags=server.tags("bronze"),
        freshness_policy=server.open_day_freshness,
        required_resource_keys=server.resource_keys,
    )
    def pi_timeseries(context: dg.AssetExecutionContext, config: TimeseriesConfig) -> dg.MaterializeResult:
        """Recorded values of every point of the shard over the partition's UTC day, at PI's native
        resolution. A closed day replaces its whole (date, shard) slice in one Delta commit; the open day
        (today) re-reads each point from its watermark minus the overlap window up to the PI server's now
        and replaces exactly that time range, so late values are picked up and nothing is duplicated. If any
        point fails, nothing of its partition is written and the run fails, listing the points. Rows of
        points the catalog keeps as deleted stay (unless `prune_absent_points`), and a shard the catalog
        lists empty never empties its slice.

        Today's partition holds values up to its last run only: materialize it once more after the UTC
        day has closed (and late values have arrived), which reads the closed day whole; the schedule
        `pi_timeseries_close_day` does that every night.

        Partition keys are `date|shard`, e.g. `2025-01-06|s03` (the UTC day, then the tag shard). A day that
        has not begun on the PI server fails the run, naming it, and writes nothing.

        Each partition's materialization carries its own figures (`dagster/row_count`, `values_per_second`,
        `late_values`, ...; Overview > Metadata > Plots draws them per partition): the Overview's
        "Row count" is the latest partition's. The whole table's row count, `table_rows`, is observed
        after every run (Events tab)."""
        if server.runs_in_process:
            materialized = _ingest(context, server, config)
        else:  # a subprocess or Databricks runs the same loop: defs/compute.py
            materialized = run_elsewhere(
                context,
                server,
                RemoteJob.TIMESERIES,
                TIMESERIES,
                config.model_dump(),
                lambda result, _table: _metadata(result),
                lambda _results, table: table_metadata(table),
            )
        table = server.lake(context).table(TIMESERIES.name)
        if table.exists():
            context.log_event(table_rows_observation(context.asset_key, table))
        return materialized

    return pi_timeseries


def table_rows_observation(key: dg.AssetKey, table: LakeTable) -> dg.AssetObservation:
    """The whole (existing) table's row count, observed after a run.

    `dagster/row_count` (the Overview's "Row count") is one partition's, as Dagster's partition views and
    plots expect, and the run's metadata lands on each of its partitions; so the table's total goes to an
    observation of no partition: the Events tab lists it, and its plot over time shows the table grow."""
    return dg.AssetObservation(
        asset_key=key,
        description=f"{table.name}, all partitions, after this run",
        metadata={
            "table_rows": dg.MetadataValue.int(row_count(table)),
            "delta_table_version": dg.MetadataValue.int(table.load().version()),
        },
    )


def _ingest(
    context: dg.AssetExecutionContext, server: ServerWiring, config: TimeseriesConfig
) -> dg.MaterializeResult:
    """Read and write the run's partitions in this process, one after the other."""
    pi, lake = server.pi(context), server.lake(context)
    settings = pi.read_options()
    overlap = timedelta(minutes=_or(config.overlap_minutes, server.settings.overlap_minutes))
    table = lake.table(TIMESERIES.name)
    now = server_now(pi.client, pi.data_server)
    not_begun(context.partition_keys, now)
    new_points = None
    if config.new_points_after is not None:
        until = _time(config.new_points_until) or now
        new_points = points_first_seen(lake.table(POINTS.name), _time(config.new_points_after), until)
    # A run over several days of a shard reads its catalog once: the same points for each of its days, and
    # one read of the whole catalog table per shard rather than per partition.
    points_of = cache(lambda shard: shard_points(lake.table(POINTS.name), shard))
    results: list[PartitionResult] = []
    for key in context.partition_keys:
        day, shard = split_partition_key(key)
        points = points_of(shard)
        web_ids = points.read
        if new_points is not None:
            web_ids = sorted(web_id for web_id, point_shard in new_points.items() if point_shard == shard)
        try:
            result = ingest_partition(
                pi.client,
                timeseries=table,
                watermarks=lake.table(WATERMARKS.name),
                web_ids=web_ids,
                kept_web_ids=points.keep,
                prune=config.prune_absent_points,
                reread_from=_time(config.reread_from),
                points_only=new_points is not None,
                skew_tolerance=timedelta(minutes=server.settings.clock_skew_tolerance_minutes),
                future_points=points.future,
                latency=lake.table(DATA_LATENCY.name),
                day=date.fromisoformat(day),
                shard=shard,
                now=now,
                overlap=overlap,
                settings=settings,
                run_id=context.run.run_id,
            )
        except PointReadError as error:
            raise dg.Failure(
                description=str(error),
                metadata={
                    "failed_points": dg.MetadataValue.md(_failures_table(error)),
                    "partitions_written_before_failure": len(results),
                },
            ) from error
        context.log.info(f"{key}: {result.rows} values of {result.points} points {result.note}".strip())
        context.add_asset_metadata(_metadata(result), partition_key=key)
        results.append(result)
    # Run totals go to the log, not the metadata: a run's metadata lands on each of its partitions,
    # where sums over partitions would count them once per partition.
    context.log.info(_run_summary(results))
    return dg.MaterializeResult(metadata=table_metadata(table))


def _time(text: str | None) -> datetime | None:
    return None if text is None else from_ns(to_ns(text))


def _or(given: int | None, setting: int) -> int:
    return setting if given is None else given


def _failures_table(error: PointReadError) -> str:
    lines = ["| point WebId | status | message | read again from |", "|---|---|---|---|"]
    lines += [
        f"| {f.web_id} | {f.status or '-'} | {f.message} | {f.resume_from or '-'} |" for f in error.failures
    ]
    return "\n".join(lines)


def _metadata(result: PartitionResult) -> dict[str, object]:
    """The metadata of one partition's materialization: its own figures only, typed so the UI plots them."""
    window: dict[str, object] = {}
    if result.window_start and result.window_end:
        window = {
            "window_start": dg.MetadataValue.timestamp(result.window_start),
            "window_end": dg.MetadataValue.timestamp(result.window_end),
        }
    seconds = result.duration_seconds
    return {
        "dagster/row_count": dg.MetadataValue.int(result.rows),
        # No points_failed: a partition with failed points is never committed (its run fails, listing them).
        "points_read": dg.MetadataValue.int(result.points),
        "incremental": dg.MetadataValue.bool(result.incremental),
        **window,
        "delta_table_version": dg.MetadataValue.int(result.write.version if result.write else -1),
        "files_added": dg.MetadataValue.int(result.write.files_added if result.write else 0),
        "pi_requests": dg.MetadataValue.int(result.requests),
        "pi_full_requests": dg.MetadataValue.int(result.full_requests),
        "duration_seconds": dg.MetadataValue.float(round(seconds, 3)),
        "values_per_second": dg.MetadataValue.float(round(result.rows / seconds, 1) if seconds else 0.0),
        **({"note": dg.MetadataValue.text(result.note)} if result.note else {}),
        **_lateness_metadata(result),
    }


def _lateness_metadata(result: PartitionResult) -> dict[str, object]:
    """Late values, their lateness and values in the future: numbers the UI plots per partition."""
    late = result.lateness
    metadata: dict[str, object] = {
        "late_values": dg.MetadataValue.int(late.late_values),
        "removed_values": dg.MetadataValue.int(late.removed_values),
        "clock_skew_values": dg.MetadataValue.int(sum(result.future_values.values())),
        "clock_skew_points": dg.MetadataValue.int(len(result.future_values)),
    }
    for name in ("p50", "p95", "p99", "max"):
        seconds = getattr(late, f"{name}_s")
        if seconds is not None:
            metadata[f"lateness_{name}_seconds"] = dg.MetadataValue.float(round(seconds, 3))
    return metadata


def _run_summary(results: list[PartitionResult]) -> str:
    """What the whole run did (a backfill run covers several partitions), for its log."""
    rows = sum(r.rows for r in results)
    seconds = sum(r.duration_seconds for r in results)
    rate = f"{rows / seconds:,.0f} values/s" if seconds else "no time spent"
    return f"{len(results)} partition(s), {rows:,} values ({rate})."
