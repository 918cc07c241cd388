"""``pi_ingestion_report``: one UTC day's ingestion at a glance, as a dashboard and as a gold table."""

from datetime import date
from pathlib import Path

import dagster as dg
from dagster._core.event_api import PartitionKeyFilter
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from osipi_dagster.defs.pi_server.checks import server_checks
from osipi_dagster.defs.pi_server.metadata import definition_metadata, write_metadata
from osipi_dagster.defs.pi_server.partitions import DATE_PARTITION
from osipi_dagster.defs.pi_server.wiring import LAKEHOUSE, ServerWiring
from osipi_dagster.ingest.report import (
    FailingCheck,
    ReportTables,
    build_report,
    render_html,
    summary_markdown,
    write_report,
)
from osipi_dagster.lake import Lakehouse
from osipi_dagster.lake.schemas import (
    AF_ATTRIBUTES,
    AF_HIERARCHY,
    DATA_LATENCY,
    EVENT_FRAMES,
    INGESTION_REPORT,
    POINTS,
    TIMESERIES,
)

REPORT_KINDS = {"deltalake", "html"}


def report_asset(server: ServerWiring) -> dg.AssetsDefinition:
    """The server's daily ingestion report."""
    by_date = dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name="date")
    check_specs = [spec for checks in server_checks(server) for spec in checks.check_specs]

    @dg.asset(
        key=server.key("pi_ingestion_report"),
        deps=[
            dg.AssetDep(server.key("pi_timeseries"), partition_mapping=by_date),
            server.key("pi_event_frames"),
        ],
        partitions_def=server.partitions.dates,
        group_name=server.settings.qualified("pi_gold"),
        kinds=REPORT_KINDS,
        tags=server.tags("gold"),
        metadata=definition_metadata(
            INGESTION_REPORT, server.table_name(INGESTION_REPORT.name), DATE_PARTITION
        ),
        required_resource_keys={LAKEHOUSE},
    )
    def pi_ingestion_report(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        """A dashboard of one UTC day (`2025-01-06`): values ingested per hour, the good-value share by AF
        area, late values found per tag shard, the asset checks whose latest evaluation of the day's
        partitions failed, and the day's alarm event frames by severity. Materialize it after the day's
        time series and their checks; it reads the lake and the checks' results, never PI.

        The figures replace the day's rows of `gold.pi_ingestion_report` (one row per figure, for SQL);
        the dashboard is an HTML page beside the Dagster instance's storage, its path in the metadata
        (`report_path`), with the same figures as Markdown (`summary`)."""
        lake = server.lake(context)
        tables = ReportTables(
            timeseries=lake.table(TIMESERIES.name),
            points=lake.table(POINTS.name),
            hierarchy=lake.table(AF_HIERARCHY.name),
            attributes=lake.table(AF_ATTRIBUTES.name),
            latency=lake.table(DATA_LATENCY.name),
            event_frames=lake.table(EVENT_FRAMES.name),
        )
        target = lake.table(INGESTION_REPORT.name)
        for key in context.partition_keys:
            day = date.fromisoformat(key)
            report = build_report(tables, day, failing_checks(context.instance, server, check_specs, day))
            write = write_report(target, report)
            path = report_path(context.instance, lake, day)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(render_html(report), encoding="utf-8")
            context.log.info(f"{key}: report written to {path}")
            context.add_asset_metadata(
                {
                    **write_metadata(write, target),
                    "report_path": dg.MetadataValue.path(str(path)),
                    "summary": dg.MetadataValue.md(summary_markdown(report)),
                    "values": dg.MetadataValue.int(report.values),
                    "good_share": dg.MetadataValue.float(round(report.good_share, 6)),
                    "late_values": dg.MetadataValue.int(report.late_total),
                    "failing_checks": dg.MetadataValue.int(len(report.failing_checks)),
                    "alarm_event_frames": dg.MetadataValue.int(report.alarms),
                },
                partition_key=key,
            )
        return dg.MaterializeResult()

    return pi_ingestion_report


def report_path(instance: dg.DagsterInstance, lake: Lakehouse, day: date) -> Path:
    """Where the HTML dashboard of ``day`` is written: under the instance's storage, one file per day."""
    name = f"{lake.table_prefix}pi_ingestion_report" if lake.table_prefix else "pi_ingestion_report"
    return Path(instance.storage_directory()) / "reports" / name / f"{day.isoformat()}.html"


def failing_checks(
    instance: dg.DagsterInstance, server: ServerWiring, specs: list[dg.AssetCheckSpec], day: date
) -> list[FailingCheck]:
    """The server's asset checks whose latest evaluation failed: of the day's time-series partitions for the
    partitioned checks, the latest evaluation for the others."""
    timeseries = server.key("pi_timeseries")
    partitions = [f"{day.isoformat()}|{shard}" for shard in server.partitions.shard_keys]
    found = []
    for spec in specs:
        for partition in partitions if spec.asset_key == timeseries else [None]:
            latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(
                [spec.key], partition_filter=PartitionKeyFilter(key=partition) if partition else None
            ).get(spec.key)
            if latest is None or latest.status != AssetCheckExecutionRecordStatus.FAILED or not latest.event:
                continue
            evaluation = latest.event.dagster_event.event_specific_data
            found.append(
                FailingCheck(
                    name=f"{spec.asset_key.path[-1]}.{spec.name}",
                    partition=partition or "latest",
                    severity=evaluation.severity.value,
                    description=spec.description or "",
                )
            )
    return found
