"""``pi_event_frames``: AF event frames by UTC day, upserted by WebId into ``bronze.pi_event_frames``."""

from datetime import date

import dagster as dg

from osipi_dagster.defs.compute import run_elsewhere
from osipi_dagster.defs.pi_server.metadata import KINDS, POOL, definition_metadata, merge_metadata
from osipi_dagster.defs.pi_server.partitions import DATE_PARTITION, not_begun
from osipi_dagster.defs.pi_server.wiring import ServerWiring
from osipi_dagster.ingest.event_frames import EventFrameResult, ingest_event_frames
from osipi_dagster.ingest.server_clock import server_now
from osipi_dagster.lake import LakeTable
from osipi_dagster.lake.schemas import EVENT_FRAMES
from osipi_dagster.pipes.request import RemoteJob

DAYS_PER_RUN = 31  # a backfill launches one run per month of days, not one per day


def event_frames_asset(server: ServerWiring) -> dg.AssetsDefinition:
    """The server's AF event frames, partitioned by UTC day."""

    @dg.asset(
        key=server.key("pi_event_frames"),
        partitions_def=server.partitions.dates,
        backfill_policy=dg.BackfillPolicy.multi_run(DAYS_PER_RUN),
        group_name=server.group,
        kinds=KINDS,
        pool=POOL,
        metadata=definition_metadata(EVENT_FRAMES, server.table_name(EVENT_FRAMES.name), DATE_PARTITION),
        tags=server.tags("bronze"),
        required_resource_keys=server.resource_keys,
    )
    def pi_event_frames(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        """AF event frames: every frame of every AF database active during the partition's UTC day (up to
        the PI server's now for today), child frames such as batch phases included, with template,
        categories, severity, start, end, duration, primary and referenced elements, acknowledgement and
        attribute values as a map.

        Rows are MERGEd by event frame WebId: a frame that was open (null `end_time`) and later closes, is
        acknowledged or changes is updated in place, never duplicated. Re-materialize today's partition to
        follow open frames, and an old day to pick up frames back-dated into it. The Delta table itself is
        not partitioned (a frame spans days); each Dagster partition is the UTC day `2025-01-06` of the
        frames read. A day that has not begun on the PI server fails the run and writes nothing.
        """
        if not server.runs_in_process:  # a subprocess or Databricks runs the same loop: defs/compute.py
            return run_elsewhere(context, server, RemoteJob.EVENT_FRAMES, EVENT_FRAMES, {}, _metadata)
        pi = server.pi(context)
        client = pi.client
        table = server.lake(context).table(EVENT_FRAMES.name)
        now = server_now(client, pi.data_server)
        not_begun(context.partition_keys, now)
        for key in context.partition_keys:  # a backfill run covers several days
            result = ingest_event_frames(
                client, table, day=date.fromisoformat(key), now=now, concurrency=pi.concurrency
            )
            context.log.info(
                f"{key}: {result.frames_read} event frames ({result.frames_open} open) active from "
                f"{result.window_start.isoformat()} to {result.window_end.isoformat()}: "
                f"{result.rows_inserted} inserted, {result.rows_updated} updated, Delta version "
                f"{result.table_version}."
            )
            context.add_asset_metadata(_metadata(result, table), partition_key=key)
        return dg.MaterializeResult()

    return pi_event_frames


def _metadata(result: EventFrameResult, table: LakeTable) -> dict[str, object]:
    """One day's materialization metadata."""
    return {
        **merge_metadata(result.merge, table),
        "frames_read": dg.MetadataValue.int(result.frames_read),
        "frames_open": dg.MetadataValue.int(result.frames_open),
        "frames_closed": dg.MetadataValue.int(result.frames_closed),
        "attribute_values": dg.MetadataValue.int(result.attribute_values),
        "window_start": dg.MetadataValue.timestamp(result.window_start),
        "window_end": dg.MetadataValue.timestamp(result.window_end),
        "af_databases": dg.MetadataValue.json(list(result.databases)),
        "pi_requests": dg.MetadataValue.int(result.requests),
        "duration_seconds": dg.MetadataValue.float(round(result.duration_seconds, 3)),
    }
