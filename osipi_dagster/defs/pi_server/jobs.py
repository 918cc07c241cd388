"""Named jobs of one PI server, so its runs, schedules and sensors carry a name in the UI (not
``__anonymous_asset_job``) and the job page shows the partition matrix."""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

from osipi_dagster.defs.pi_server.wiring import ServerWiring


@dataclass(frozen=True)
class ServerJobs:
    catalog: dg.UnresolvedAssetJobDefinition
    timeseries: dg.UnresolvedAssetJobDefinition
    event_frames: dg.UnresolvedAssetJobDefinition
    reconciliation: dg.UnresolvedAssetJobDefinition
    report: dg.UnresolvedAssetJobDefinition

    @property
    def all(self) -> list[dg.UnresolvedAssetJobDefinition]:
        return [self.catalog, self.timeseries, self.event_frames, self.reconciliation, self.report]


def server_jobs(server: ServerWiring) -> ServerJobs:
    """The server's catalog (AF and points), time-series and event-frame jobs."""
    name = server.settings.qualified
    return ServerJobs(
        catalog=dg.define_asset_job(
            name("pi_catalog_job"),
            selection=[
                server.key("pi_af_hierarchy"),
                server.key("pi_af_attributes"),
                server.key("pi_points"),
                server.key("pi_notification_rules"),
            ],
            description="The AF hierarchy and attributes, then the tag catalog; the notification rules.",
        ),
        timeseries=dg.define_asset_job(
            name("pi_timeseries_job"),
            selection=[server.key("pi_timeseries")],
            partitions_def=server.partitions.timeseries,
            description="Recorded values, per UTC day and tag shard: partition keys are `date|shard`, e.g. "
            "`2025-01-06|s03`.",
        ),
        event_frames=dg.define_asset_job(
            name("pi_event_frames_job"),
            selection=[server.key("pi_event_frames")],
            partitions_def=server.partitions.dates,
            description="AF event frames, per UTC day: partition keys are dates, e.g. `2025-01-06`.",
        ),
        reconciliation=dg.define_asset_job(
            name("pi_reconciliation_job"),
            selection=[server.key("pi_reconciliation")],
            partitions_def=server.partitions.dates,
            description="Closed days compared with PI, per UTC day: partition keys are dates, e.g. "
            "`2025-01-06`.",
        ),
        report=dg.define_asset_job(
            name("pi_ingestion_report_job"),
            selection=[server.key("pi_ingestion_report")],
            partitions_def=server.partitions.dates,
            description="The daily ingestion report, per UTC day: partition keys are dates, e.g. "
            "`2025-01-06`.",
        ),
    )
