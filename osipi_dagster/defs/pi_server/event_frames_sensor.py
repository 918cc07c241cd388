"""``pi_event_frames_sensor``: event frames change long after they start; their days follow them."""

from __future__ import annotations

from datetime import timedelta

import dagster as dg

from osipi_dagster.defs.pi_server.jobs import ServerJobs
from osipi_dagster.defs.pi_server.runs import IN_PROGRESS
from osipi_dagster.defs.pi_server.wiring import ServerWiring
from osipi_dagster.ingest.event_frames import stale_event_frame_days
from osipi_dagster.ingest.server_clock import server_now
from osipi_dagster.lake.schemas import EVENT_FRAMES


def event_frames_sensor(server: ServerWiring, jobs: ServerJobs) -> dg.SensorDefinition:
    """The server's ``pi_event_frames_sensor`` (stopped until turned on in the UI)."""
    settings = server.settings

    @dg.sensor(
        name=settings.qualified("pi_event_frames_sensor"),
        minimum_interval_seconds=settings.event_frames_sensor_minutes * 60,
        default_status=dg.DefaultSensorStatus.STOPPED,
        job=jobs.event_frames,
        required_resource_keys=server.resource_keys,
    )
    def pi_event_frames_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        """Materializes again the days of the event frames that opened, closed, were acknowledged or changed
        in PI, or were back-dated, within the last `event_frames_lookback_days`: it compares what PI reports
        active in that window with `bronze.pi_event_frames` and requests the start day of each frame that
        differs (one run per day; run keys from the day and the tick, so nothing is requested twice)."""
        pi, lake = server.pi(context), server.lake(context)
        now = server_now(pi.client, pi.data_server)
        days = stale_event_frame_days(
            pi.client,
            lake.table(EVENT_FRAMES.name),
            now=now,
            lookback=timedelta(days=settings.event_frames_lookback_days),
            first_day=settings.start_date,
        )
        if not days:
            return dg.SkipReason("The event frames in the lake are PI's.")
        busy = {
            run.tags.get("dagster/partition")
            for run in context.instance.get_runs(
                dg.RunsFilter(job_name=jobs.event_frames.name, statuses=[*IN_PROGRESS])
            )
        }
        requests = [
            dg.RunRequest(partition_key=day.isoformat(), run_key=f"{day.isoformat()}@{now.isoformat()}")
            for day in sorted(days)
            if day.isoformat() not in busy
        ]
        context.log.info(f"Event frames changed on {len(days)} day(s); {len(requests)} run(s) requested.")
        return dg.SensorResult(run_requests=requests)

    return pi_event_frames_sensor
