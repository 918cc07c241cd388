"""Alarms and notifications: ``pi_notification_rules`` (bronze, read from PI), ``pi_alarms`` (silver, per UTC
day, from the bronze event frames and rules) and ``pi_alarm_summary`` (gold, per UTC day)."""

from datetime import date

import dagster as dg
from pydantic import Field

from osipi_dagster.defs.pi_server.metadata import (
    KINDS,
    POOL,
    definition_metadata,
    merge_metadata,
    table_metadata,
    write_metadata,
)
from osipi_dagster.defs.pi_server.silver import DERIVED_KINDS, follows_upstream
from osipi_dagster.defs.pi_server.wiring import LAKEHOUSE, ServerWiring
from osipi_dagster.ingest.alarms import build_alarms
from osipi_dagster.ingest.alarms_rules import refresh_notification_rules
from osipi_dagster.ingest.alarms_summary import summarize_alarms
from osipi_dagster.lake.schemas import AF_HIERARCHY, ALARM_SUMMARY, ALARMS, EVENT_FRAMES, NOTIFICATION_RULES
from osipi_dagster.lake.tables import utc_now

DAYS_PER_RUN = 64  # derived days take well under a second each

# A day's summary counts the alarms still active from the day before (standing alarms).
WITH_PREVIOUS_DAY = dg.TimeWindowPartitionMapping(
    start_offset=-1, end_offset=0, allow_nonexistent_upstream_partitions=True
)


class NotificationRulesConfig(dg.Config):
    """Confirmation of a refresh that removes many rules, for this run."""

    confirm_removed_rules: int | None = Field(
        default=None,
        ge=0,
        description="Confirm a refresh that removes this many rules, above the server's "
        "catalog_max_removed_share: the exact count the refused run's error gave.",
    )


def notification_rules_asset(server: ServerWiring) -> dg.AssetsDefinition:
    """The server's PI Notifications rules, refreshed whole."""

    @dg.asset(
        key=server.key("pi_notification_rules"),
        group_name=server.group,
        kinds=KINDS,
        pool=POOL,
        metadata=definition_metadata(NOTIFICATION_RULES, server.table_name(NOTIFICATION_RULES.name)),
        required_resource_keys={server.pi_resource_key, LAKEHOUSE},
    )
    def pi_notification_rules(
        context: dg.AssetExecutionContext, config: NotificationRulesConfig
    ) -> dg.MaterializeResult:
        """PI Notifications rules of every AF database: name, path, owning element, criteria (the AF event
        frame search that triggers the rule), categories, status (`enabled`), re-notification intervals,
        and subscribers (contact, delivery plug-in, notify option, escalation and retries; never the
        `ConfigString`, which holds addresses and may hold credentials). The table is replaced whole; a
        refresh that would remove all the rules it holds, or more than the server's
        `catalog_max_removed_share` of them, fails and writes nothing unless the run config confirms the
        count (`confirm_removed_rules`)."""
        pi = server.pi(context)
        table = server.lake(context).table(NOTIFICATION_RULES.name)
        result = refresh_notification_rules(
            pi.client,
            table,
            concurrency=pi.concurrency,
            max_removed_share=server.settings.catalog_max_removed_share,
            confirm_removed=config.confirm_removed_rules,
        )
        context.log.info(
            f"{result.rules} notification rules ({result.enabled} enabled), {result.subscribers} subscribers "
            f"in {len(result.databases)} AF database(s)."
        )
        return dg.MaterializeResult(
            metadata={
                **write_metadata(result.write, table),
                "rules_enabled": dg.MetadataValue.int(result.enabled),
                "subscribers": dg.MetadataValue.int(result.subscribers),
                "rules_added": dg.MetadataValue.int(result.diff.added),
                "rules_removed": dg.MetadataValue.int(result.diff.removed),
                "rules_changed": dg.MetadataValue.int(result.diff.changed),
                "af_databases": dg.MetadataValue.json(list(result.databases)),
                "pi_requests": dg.MetadataValue.int(result.requests),
                "duration_seconds": dg.MetadataValue.float(round(result.duration_seconds, 3)),
            }
        )

    return pi_notification_rules


def alarms_asset(server: ServerWiring) -> dg.AssetsDefinition:
    """The server's alarms, partitioned by the UTC day they started."""
    catalog = [server.key("pi_notification_rules"), server.key("pi_af_hierarchy")]

    @dg.asset(
        key=server.key("pi_alarms"),
        deps=[
            dg.AssetDep(server.key("pi_event_frames"), partition_mapping=dg.IdentityPartitionMapping()),
            *catalog,
        ],
        partitions_def=server.partitions.dates,
        backfill_policy=dg.BackfillPolicy.multi_run(DAYS_PER_RUN),
        automation_condition=follows_upstream(dg.AssetSelection.assets(*catalog)),
        group_name=server.settings.qualified("pi_silver"),
        kinds=DERIVED_KINDS,
        metadata=definition_metadata(ALARMS, server.table_name(ALARMS.name)),
        required_resource_keys={LAKEHOUSE},
    )
    def pi_alarms(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        """Alarms and notification event frames that started on the partition's UTC day: one row per event
        frame of `pi_event_frames` that a notification rule of `pi_notification_rules` selects (it
        references the rule's element and meets its criteria), with the rule, the alarm's element path,
        severity, start, end, duration, who acknowledged it and when, and the seconds to acknowledge.

        Rows are MERGEd by event frame WebId and only rewritten when they changed: an alarm that was active
        (null `end_time`) and closes, or is acknowledged, is updated in place, never duplicated. It follows
        `pi_event_frames` automatically (old days included) once the automation sensor is on."""
        lake = server.lake(context)
        table = lake.table(ALARMS.name)
        for key in context.partition_keys:
            result = build_alarms(
                event_frames=lake.table(EVENT_FRAMES.name),
                rules=lake.table(NOTIFICATION_RULES.name),
                hierarchy=lake.table(AF_HIERARCHY.name),
                alarms=table,
                day=date.fromisoformat(key),
            )
            context.log.info(
                f"{key}: {result.alarms} alarms ({result.active} active) of {result.frames_read} event "
                f"frames: {result.merge.rows_inserted} new, {result.merge.rows_updated} updated."
            )
            context.add_asset_metadata(
                {
                    **merge_metadata(result.merge, table),
                    "alarms": dg.MetadataValue.int(result.alarms),
                    "alarms_active": dg.MetadataValue.int(result.active),
                    "alarms_acknowledged": dg.MetadataValue.int(result.acknowledged),
                    "event_frames_read": dg.MetadataValue.int(result.frames_read),
                    "duration_seconds": dg.MetadataValue.float(round(result.duration_seconds, 3)),
                },
                partition_key=key,
            )
        return dg.MaterializeResult()

    return pi_alarms


def alarm_summary_asset(server: ServerWiring) -> dg.AssetsDefinition:
    """The server's daily alarm-management figures."""

    @dg.asset(
        key=server.key("pi_alarm_summary"),
        deps=[dg.AssetDep(server.key("pi_alarms"), partition_mapping=WITH_PREVIOUS_DAY)],
        partitions_def=server.partitions.dates,
        backfill_policy=dg.BackfillPolicy.multi_run(DAYS_PER_RUN),
        automation_condition=follows_upstream(dg.AssetSelection.assets()),
        group_name=server.settings.qualified("pi_gold"),
        kinds=DERIVED_KINDS,
        metadata=definition_metadata(ALARM_SUMMARY, server.table_name(ALARM_SUMMARY.name)),
        required_resource_keys={LAKEHOUSE},
    )
    def pi_alarm_summary(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        """Per notification rule, element and UTC day, from `pi_alarms` (ISA-18.2 / EEMUA 191): alarms
        started, acknowledged, seconds in alarm, mean seconds to acknowledge, the highest severity, alarms
        per 10 minutes (mean and peak), chattering alarms (3 or more of the same alarm within 60 s),
        standing alarms (active more than 24 h), the day's top-10 bad actors (`bad_actor_rank`), and the
        day's alarms per operator per 10 minutes (`alarm_operators` operators). Each day is replaced whole;
        today's figures run up to this host's clock."""
        lake = server.lake(context)
        table = lake.table(ALARM_SUMMARY.name)
        for key in context.partition_keys:
            result = summarize_alarms(
                alarms=lake.table(ALARMS.name),
                summary=table,
                day=date.fromisoformat(key),
                now=utc_now(),
                operators=server.settings.alarm_operators,
            )
            context.log.info(
                f"{key}: {result.alarms} alarms in {result.groups} rule/element groups, "
                f"{result.alarms_per_operator_per_10_minutes:.2f} per operator per 10 minutes."
            )
            context.add_asset_metadata(
                {
                    **write_metadata(result.write, table),
                    "alarms": dg.MetadataValue.int(result.alarms),
                    "alarms_per_operator_per_10_minutes": dg.MetadataValue.float(
                        round(result.alarms_per_operator_per_10_minutes, 3)
                    ),
                    "duration_seconds": dg.MetadataValue.float(round(result.duration_seconds, 3)),
                },
                partition_key=key,
            )
        return dg.MaterializeResult(metadata=table_metadata(table))

    return pi_alarm_summary
