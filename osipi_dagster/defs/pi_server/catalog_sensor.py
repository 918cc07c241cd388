"""``pi_catalog_sensor``: the tag catalog refreshed every few minutes, and new points given their history."""

from __future__ import annotations

import json
from datetime import date, timedelta

import dagster as dg

from osipi_dagster.contract import from_ns, to_ns
from osipi_dagster.defs.pi_server.jobs import ServerJobs
from osipi_dagster.defs.pi_server.runs import busy_runs
from osipi_dagster.defs.pi_server.timeseries import TimeseriesConfig
from osipi_dagster.defs.pi_server.wiring import ServerWiring
from osipi_dagster.ingest.catalog import points_first_seen
from osipi_dagster.ingest.server_clock import server_now
from osipi_dagster.lake.schemas import POINTS


def catalog_sensor(server: ServerWiring, jobs: ServerJobs) -> dg.SensorDefinition:
    """The server's ``pi_catalog_sensor`` (stopped until turned on in the UI)."""
    settings = server.settings
    op_name = server.key("pi_timeseries").to_python_identifier()

    @dg.sensor(
        name=settings.qualified("pi_catalog_sensor"),
        minimum_interval_seconds=settings.catalog_sensor_minutes * 60,
        default_status=dg.DefaultSensorStatus.STOPPED,
        jobs=[jobs.catalog, jobs.timeseries],
        required_resource_keys=server.resource_keys,
    )
    def pi_catalog_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        """Refreshes the AF hierarchy and the tag catalog on every tick, and gives each point that entered
        the catalog since the last tick its history: the closed days of the lookback
        (`new_point_lookback_days`), read for the new points only (the other points' rows stay). Deleted
        and renamed points keep their history (the catalog marks them) and are reported in the tick's log.
        The first tick only starts counting: the points already in the catalog are not new."""
        pi, lake = server.pi(context), server.lake(context)
        now = server_now(pi.client, pi.data_server)
        cursor = json.loads(context.cursor) if context.cursor else {}
        seen_through = from_ns(to_ns(cursor["seen_through"])) if "seen_through" in cursor else now
        new = points_first_seen(lake.table(POINTS.name), seen_through, now)
        requests = []
        if new:
            config = TimeseriesConfig(
                new_points_after=seen_through.isoformat(), new_points_until=now.isoformat()
            )
            run_config = dg.RunConfig(ops={op_name: config}).to_config_dict()
            shards = sorted(set(new.values()))
            first_day = max(
                settings.start_date, now.date() - timedelta(days=settings.new_point_lookback_days)
            )
            for day in _days(first_day, now.date() - timedelta(days=1)):
                requests.append(
                    dg.RunRequest(
                        job_name=jobs.timeseries.name,
                        run_key=f"history:{day.isoformat()}@{seen_through.isoformat()}",
                        run_config=run_config,
                        tags={
                            "dagster/asset_partition_range_start": f"{day.isoformat()}|{shards[0]}",
                            "dagster/asset_partition_range_end": f"{day.isoformat()}|{shards[-1]}",
                        },
                    )
                )
            context.log.info(f"{len(new)} new point(s): history of {len(requests)} closed day(s) requested.")
        if not busy_runs(context.instance, jobs.catalog.name):
            requests.append(dg.RunRequest(job_name=jobs.catalog.name, run_key=f"catalog@{now.isoformat()}"))
        _report_catalog_changes(context, server)
        return dg.SensorResult(run_requests=requests, cursor=json.dumps({"seen_through": now.isoformat()}))

    return pi_catalog_sensor


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def _report_catalog_changes(context: dg.SensorEvaluationContext, server: ServerWiring) -> None:
    """Log what the last catalog refresh found gone or renamed (their history stays in the lake)."""
    event = context.instance.get_latest_materialization_event(server.key("pi_points"))
    if event is None or event.asset_materialization is None:
        return
    metadata = event.asset_materialization.metadata
    counts = {name: getattr(metadata.get(f"points_{name}"), "value", 0) for name in ("deleted", "renamed")}
    if any(counts.values()):
        context.log.info(
            f"The last catalog refresh (run {event.run_id[:8]}) marked {counts['deleted']} point(s) deleted "
            f"and {counts['renamed']} renamed; their history stays in the lake (see bronze.pi_points)."
        )
