"""The ingestion of one Dagster step, run by the Pipes entry point: the same ``osipi_dagster.ingest``
functions the in-process assets call, partition by partition, each result reported as soon as it is
committed."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from osipi_dagster.contract import from_ns, to_ns
from osipi_dagster.ingest.catalog import points_first_seen, shard_points
from osipi_dagster.ingest.event_frames import EventFrameResult, ingest_event_frames
from osipi_dagster.ingest.server_clock import server_now
from osipi_dagster.ingest.timeseries import PartitionResult, ingest_partition
from osipi_dagster.lake import Lakehouse
from osipi_dagster.lake.schemas import DATA_LATENCY, EVENT_FRAMES, POINTS, TIMESERIES, WATERMARKS
from osipi_dagster.pi import PIWebAPIClient
from osipi_dagster.pipes.request import RemoteJob, RemoteRequest

# Called with (partition key, result, log line) once the partition is committed.
Report = Callable[[str, Any, str], None]


def run_timeseries(request: RemoteRequest, client: PIWebAPIClient, report: Report) -> None:
    """``pi_timeseries`` for the request's partitions (see the asset's docstring)."""
    options, config = request.client, request.config
    lake = Lakehouse(request.lake_root, table_prefix=request.server.table_prefix)
    overlap_minutes = config.get("overlap_minutes")
    overlap = timedelta(
        minutes=request.server.overlap_minutes if overlap_minutes is None else overlap_minutes
    )
    now = server_now(client, options.data_server)
    new_points = None
    if config.get("new_points_after") is not None:
        until = _time(config.get("new_points_until")) or now
        new_points = points_first_seen(lake.table(POINTS.name), _time(config["new_points_after"]), until)
    for partition in request.partitions:
        shard = partition.shard
        if shard is None:
            raise ValueError(f"The time-series partition {partition.key} has no tag shard.")
        points = shard_points(lake.table(POINTS.name), shard)
        web_ids = points.read
        if new_points is not None:
            web_ids = sorted(web_id for web_id, point_shard in new_points.items() if point_shard == shard)
        result: PartitionResult = ingest_partition(
            client,
            timeseries=lake.table(TIMESERIES.name),
            watermarks=lake.table(WATERMARKS.name),
            web_ids=web_ids,
            kept_web_ids=points.keep,
            prune=bool(config.get("prune_absent_points", False)),
            reread_from=_time(config.get("reread_from")),
            points_only=new_points is not None,
            skew_tolerance=timedelta(minutes=request.server.clock_skew_tolerance_minutes),
            future_points=points.future,
            latency=lake.table(DATA_LATENCY.name),
            day=partition.day,
            shard=shard,
            now=now,
            overlap=overlap,
            settings=options.read,
            run_id=request.run_id,
        )
        line = f"{partition.key}: {result.rows} values of {result.points} points {result.note}".strip()
        report(partition.key, result, line)


def run_event_frames(request: RemoteRequest, client: PIWebAPIClient, report: Report) -> None:
    """``pi_event_frames`` for the request's days (see the asset's docstring)."""
    table = Lakehouse(request.lake_root, table_prefix=request.server.table_prefix).table(EVENT_FRAMES.name)
    now = server_now(client, request.client.data_server)
    for partition in request.partitions:
        result: EventFrameResult = ingest_event_frames(
            client, table, day=partition.day, now=now, concurrency=request.client.read.concurrency
        )
        line = (
            f"{partition.key}: {result.frames_read} event frames ({result.frames_open} open) active from "
            f"{result.window_start.isoformat()} to {result.window_end.isoformat()}: "
            f"{result.rows_inserted} inserted, {result.rows_updated} updated, Delta version "
            f"{result.table_version}."
        )
        report(partition.key, result, line)


JOBS: dict[RemoteJob, Callable[[RemoteRequest, PIWebAPIClient, Report], None]] = {
    RemoteJob.TIMESERIES: run_timeseries,
    RemoteJob.EVENT_FRAMES: run_event_frames,
}


def _time(text: str | None) -> datetime | None:
    return None if text is None else from_ns(to_ns(text))
