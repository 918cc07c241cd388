"""``pi_lake_maintenance_job``: the storage upkeep of one PI server's tables, and its daily schedule.

Every run of every asset leaves the files it replaced on storage (``lake/maintenance.py`` says why and why
deleting them later loses no data); this job deletes those older than the server's
``vacuum_retention_hours``, table by table. It is an op job, not an asset: it changes no data. The schedule
starts stopped, as every schedule here (docs/OPERATIONS.md, "Storage upkeep").
"""

import dagster as dg

from osipi_dagster.defs.pi_server.wiring import LAKEHOUSE, ServerWiring
from osipi_dagster.lake import TABLE_SPECS
from osipi_dagster.lake.maintenance import vacuum_table


def maintenance_job(server: ServerWiring) -> dg.JobDefinition:
    """The server's vacuum job."""
    retention_hours = server.settings.vacuum_retention_hours

    @dg.op(
        name=server.settings.qualified("pi_lake_vacuum"),
        required_resource_keys={LAKEHOUSE},
    )
    def pi_lake_vacuum(context: dg.OpExecutionContext) -> dg.Output[None]:
        """Delete the files each of the server's Delta tables stopped using more than the server's
        `vacuum_retention_hours` ago (Delta VACUUM). The current version of every table is untouched; time
        travel reaches back as far as the retention."""
        lake = server.lake(context)
        deleted: dict[str, int] = {}
        for name in sorted(TABLE_SPECS):
            result = vacuum_table(lake.table(name), retention_hours=retention_hours)
            if result is None:
                continue
            deleted[result.table] = result.files_deleted
            context.log.info(
                f"{result.table}: {result.files_deleted} file(s) deleted in {result.duration_seconds:.1f} s "
                f"(version {result.version})"
            )
        return dg.Output(
            None,
            metadata={
                "files_deleted": sum(deleted.values()),
                "tables_vacuumed": len(deleted),
                "retention_hours": retention_hours,
                "files_deleted_per_table": dg.MetadataValue.json(deleted),
            },
        )

    @dg.job(
        name=server.settings.qualified("pi_lake_maintenance_job"),
        description="Storage upkeep: delete the files the server's Delta tables stopped using more than "
        f"vacuum_retention_hours ({retention_hours} h) ago. Changes no data.",
    )
    def pi_lake_maintenance_job() -> None:
        pi_lake_vacuum()

    return pi_lake_maintenance_job


def maintenance_schedule(server: ServerWiring, job: dg.JobDefinition) -> dg.ScheduleDefinition:
    """Every day, two hours after the close-day runs started (after the ingestion report)."""
    return dg.ScheduleDefinition(
        name=server.settings.qualified("pi_lake_maintenance_daily"),
        cron_schedule=f"30 {(server.settings.close_day_hour + 2) % 24} * * *",
        execution_timezone="UTC",
        job=job,
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description="Every day, two hours after the close-day runs: the lake's storage upkeep (vacuum).",
    )
