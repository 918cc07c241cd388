"""Schedules that keep the lake current and close every day exactly.

* ``*_open_day``: every hour, today's partitions: the time series of every shard (read incrementally from
  each point's watermark minus the overlap window) and the event frames (open frames updated in place).
* ``*_close_day``: every day at the server's ``close_day_hour`` (UTC, default 03:15), yesterday's partitions
  again, now that the day is over: the stretch after today's last hourly run and the values that reached PI
  late for that day are read, and each slice is replaced in one commit. Without these runs the end of every
  day would be in the lake only if someone re-materialized it.

``pi_ingestion_report_daily``: an hour after the close-day runs, yesterday's ingestion report.

A schedule targets assets of one partitions definition, hence one schedule per asset and cadence. All start
stopped (turn them on in the UI) so that a fresh ``make ui`` on the mock's fixed clock launches nothing.
Run keys make a tick evaluated twice launch nothing twice.

The time-series schedules are for a PI Web API without stream updates (the ``pi`` resource's
``stream_updates`` is false): otherwise ``pi_timeseries_sensor`` does their work within a minute, and they
skip, saying so.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta

import dagster as dg

from osipi_dagster.defs.pi_server.jobs import ServerJobs
from osipi_dagster.defs.pi_server.wiring import ServerWiring

OPEN_DAY_CRON = "5 * * * *"


def day_schedules(server: ServerWiring, jobs: ServerJobs) -> list[dg.ScheduleDefinition]:
    """The server's open-day and close-day schedules of the time series and the event frames."""
    shards = server.partitions.shard_keys
    close_day_cron = f"15 {server.settings.close_day_hour} * * *"

    def timeseries_keys(day: date) -> list[dg.MultiPartitionKey]:
        return [dg.MultiPartitionKey({"date": day.isoformat(), "shard": shard}) for shard in shards]

    def event_frame_keys(day: date) -> list[str]:
        return [day.isoformat()]

    return [
        _day_schedule(
            server,
            jobs.timeseries,
            "pi_timeseries",
            "open_day",
            OPEN_DAY_CRON,
            0,
            timeseries_keys,
            "Every hour: today's recorded values of every shard, from each point's watermark minus the "
            "overlap.",
        ),
        _day_schedule(
            server,
            jobs.timeseries,
            "pi_timeseries",
            "close_day",
            close_day_cron,
            1,
            timeseries_keys,
            "Every day after midnight UTC: yesterday's recorded values of every shard read whole again, the "
            "end of the day and late values included.",
        ),
        _day_schedule(
            server,
            jobs.event_frames,
            "pi_event_frames",
            "open_day",
            OPEN_DAY_CRON,
            0,
            event_frame_keys,
            "Every hour: today's event frames; open frames are updated in place.",
        ),
        _day_schedule(
            server,
            jobs.event_frames,
            "pi_event_frames",
            "close_day",
            close_day_cron,
            1,
            event_frame_keys,
            "Every day after midnight UTC: yesterday's event frames read again, frames closed since "
            "included.",
        ),
    ]


def _day_schedule(
    server: ServerWiring,
    job: dg.UnresolvedAssetJobDefinition,
    asset: str,
    cadence: str,
    cron: str,
    days_back: int,
    keys: Callable[[date], list],
    description: str,
) -> dg.ScheduleDefinition:
    """A schedule that materializes ``asset``'s partitions of the day ``days_back`` before the tick."""
    name = server.settings.qualified(f"{asset}_{cadence}")
    follows_updates = asset == "pi_timeseries"

    @dg.schedule(
        name=name,
        cron_schedule=cron,
        execution_timezone="UTC",
        job=job,
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description=description,
        required_resource_keys={server.pi_resource_key} if follows_updates else None,
    )
    def _schedule(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest] | dg.SkipReason:
        if follows_updates and getattr(context.resources, server.pi_resource_key).stream_updates:
            return dg.SkipReason(
                f"{server.settings.qualified('pi_timeseries_sensor')} follows this PI server by its stream "
                "updates; this schedule is for servers without them (set stream_updates to false)."
            )
        tick = context.scheduled_execution_time
        assert tick is not None
        day = tick.date() - timedelta(days=days_back)
        return [
            dg.RunRequest(run_key=f"{name}:{key}:{tick.isoformat()}", partition_key=key) for key in keys(day)
        ]

    return _schedule


def report_schedule(server: ServerWiring, job: dg.UnresolvedAssetJobDefinition) -> dg.ScheduleDefinition:
    """Yesterday's ingestion report, an hour after the close-day runs (and their checks) started."""
    return _day_schedule(
        server,
        job,
        "pi_ingestion_report",
        "daily",
        f"0 {(server.settings.close_day_hour + 1) % 24} * * *",
        1,
        lambda day: [day.isoformat()],
        "Every day an hour after the close-day runs: yesterday's ingestion report, once its time series and "
        "their checks are in.",
    )
