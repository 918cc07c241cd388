r"""The ``PIServer`` component: one instance per PI Web API server, each in its own ``defs/<site>/defs.yaml``.

```yaml
type: osipi_dagster.defs.pi_server.PIServer
attributes:
  name: site_b                              # prefixes asset keys, tables, schedules, the resource key
  base_url: https://pi-site-b.example.com/piwebapi
  auth: basic
  username: CORP\svc_pi
  password_env_var: SITE_B_PI_PASSWORD      # the variable's name: Dagster resolves it at run time
  tag_shards: 8
  start_date: "2024-06-01"
```

Every attribute is a setting of :class:`~osipi_dagster.settings.PIServerSettings` (docs/CONFIGURATION.md).
With ``from_environment: true`` (the embedded default, ``defs/embedded/defs.yaml``) the settings not given
in the YAML come from the ``OSIPI_*`` variables, so existing configurations keep working.
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg
from pydantic import Field

from osipi_dagster.defs.compute import compute_resources
from osipi_dagster.defs.pi_server.af import af_assets
from osipi_dagster.defs.pi_server.alarms import alarm_summary_asset, alarms_asset, notification_rules_asset
from osipi_dagster.defs.pi_server.alarms_sensor import alarm_alerts_sensor, alarm_webhook_resource
from osipi_dagster.defs.pi_server.catalog_sensor import catalog_sensor
from osipi_dagster.defs.pi_server.checks import server_checks
from osipi_dagster.defs.pi_server.event_frames import event_frames_asset
from osipi_dagster.defs.pi_server.event_frames_sensor import event_frames_sensor
from osipi_dagster.defs.pi_server.gold import gold_asset
from osipi_dagster.defs.pi_server.jobs import server_jobs
from osipi_dagster.defs.pi_server.live import live_asset, live_check, live_sensor
from osipi_dagster.defs.pi_server.maintenance import maintenance_job, maintenance_schedule
from osipi_dagster.defs.pi_server.points import points_asset
from osipi_dagster.defs.pi_server.reconciliation import reconciliation_asset, reconciliation_schedule
from osipi_dagster.defs.pi_server.report import report_asset
from osipi_dagster.defs.pi_server.schedules import day_schedules, report_schedule
from osipi_dagster.defs.pi_server.sensors import timeseries_sensor
from osipi_dagster.defs.pi_server.silver import silver_asset
from osipi_dagster.defs.pi_server.timeseries import timeseries_asset
from osipi_dagster.defs.pi_server.wiring import ServerWiring
from osipi_dagster.defs.resources import pi_resource
from osipi_dagster.settings import PIServerSettings, pi_server_from_env, stream_from_env


@dataclass(frozen=True)
class ServerAssets:
    """The assets of one PI server, by role."""

    af: dg.AssetsDefinition
    points: dg.AssetsDefinition
    timeseries: dg.AssetsDefinition
    event_frames: dg.AssetsDefinition
    reconciliation: dg.AssetsDefinition
    silver: dg.AssetsDefinition
    gold: dg.AssetsDefinition
    notification_rules: dg.AssetsDefinition
    alarms: dg.AssetsDefinition
    alarm_summary: dg.AssetsDefinition
    report: dg.AssetsDefinition

    @property
    def all(self) -> list[dg.AssetsDefinition]:
        return [
            self.af,
            self.points,
            self.timeseries,
            self.event_frames,
            self.reconciliation,
            self.silver,
            self.gold,
            self.notification_rules,
            self.alarms,
            self.alarm_summary,
            self.report,
        ]


def server_assets(settings: PIServerSettings) -> ServerAssets:
    """The assets of the PI server ``settings`` describes."""
    server = ServerWiring(settings)
    return ServerAssets(
        af=af_assets(server),
        points=points_asset(server),
        timeseries=timeseries_asset(server),
        event_frames=event_frames_asset(server),
        reconciliation=reconciliation_asset(server),
        silver=silver_asset(server),
        gold=gold_asset(server),
        notification_rules=notification_rules_asset(server),
        alarms=alarms_asset(server),
        alarm_summary=alarm_summary_asset(server),
        report=report_asset(server),
    )


def server_definitions(settings: PIServerSettings) -> dg.Definitions:
    """Everything one PI server adds to the code location (the shared ``lakehouse`` resource excepted)."""
    server = ServerWiring(settings)
    jobs = server_jobs(server)
    assets = server_assets(settings)
    stream = stream_from_env()
    checks = server_checks(server)
    maintenance = maintenance_job(server)
    return dg.Definitions(
        assets=dg.map_asset_specs(server.owned, [*assets.all, live_asset(server)]),
        asset_checks=[*checks, live_check(server, stream)],
        jobs=[*jobs.all, maintenance],
        schedules=[
            *day_schedules(server, jobs),
            reconciliation_schedule(server, jobs.reconciliation),
            report_schedule(server, jobs.report),
            maintenance_schedule(server, maintenance),
        ],
        sensors=[
            timeseries_sensor(server, jobs.timeseries),
            catalog_sensor(server, jobs),
            event_frames_sensor(server, jobs),
            live_sensor(server, stream),
            *alarm_alerts_sensor(server, checks),
        ],
        resources={
            server.pi_resource_key: pi_resource(settings),
            **compute_resources(server),
            **alarm_webhook_resource(server),
        },
    )


class PIServer(dg.Component, dg.Resolvable, dg.Model, PIServerSettings):
    """A PI Web API server: its AF hierarchy, tag catalog, time series and event frames as assets, their
    partitions and schedules, and the `pi` resource that reads it. One instance per PI server."""

    # Dates are not a YAML type Dagster resolves: given as "YYYY-MM-DD", checked by the settings.
    start_date: str = Field(
        default=PIServerSettings.model_fields["start_date"].default.isoformat(),
        description=PIServerSettings.model_fields["start_date"].description,
    )
    from_environment: bool = Field(
        default=False,
        description="Take the settings not given here from the OSIPI_* environment variables (the embedded "
        "default server).",
    )

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        given = self.model_dump(exclude_unset=True, exclude={"from_environment"})
        settings = pi_server_from_env(**given) if self.from_environment else PIServerSettings(**given)
        return server_definitions(settings)
