"""``pi_alarm_alerts_sensor``: new alarms at or above a severity, and failed ERROR asset checks, posted to a
webhook (Slack-compatible JSON: ``text`` and ``blocks``), each exactly once."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import dagster as dg
import requests
from dagster._core.storage.asset_check_execution_record import (
    AssetCheckExecutionRecord,
    AssetCheckExecutionRecordStatus,
)
from pydantic import Field, PrivateAttr

from osipi_dagster.defs.pi_server.wiring import LAKEHOUSE, ServerWiring
from osipi_dagster.ingest.alarms_alerts import (
    AlertCursor,
    WebhookError,
    alarm_message,
    check_failure_message,
    new_alarms,
    post_all,
    post_message,
)
from osipi_dagster.lake.schemas import ALARMS
from osipi_dagster.lake.tables import utc_now

# Check executions read per request.
CHECK_EXECUTIONS_PER_PAGE = 500


class AlertWebhookResource(dg.ConfigurableResource):
    """Where alerts are posted: a Slack-compatible incoming webhook. The URL is a secret (Slack's carries
    its token): give it as ``dg.EnvVar``; it never appears in a repr, a log line or a message."""

    url: str = Field(description="The webhook URL: use an EnvVar.")
    _session: requests.Session | None = PrivateAttr(default=None)

    def __repr_args__(self):
        for name, value in super().__repr_args__():
            yield name, ("***" if name == "url" and value else value)

    @property
    def session(self) -> requests.Session:
        if self._session is None:
            self._session = requests.Session()
        return self._session


def alarm_webhook_resource(server: ServerWiring) -> dict[str, AlertWebhookResource]:
    """The webhook resource of the server (by its key), if a webhook URL variable is configured."""
    variable = server.settings.alarm_webhook_url_env_var
    return {} if variable is None else {_resource_key(server): AlertWebhookResource(url=dg.EnvVar(variable))}


def _resource_key(server: ServerWiring) -> str:
    return server.settings.qualified("alarm_webhook")


def alarm_alerts_sensor(
    server: ServerWiring, checks: Sequence[dg.AssetChecksDefinition]
) -> list[dg.SensorDefinition]:
    """The server's ``pi_alarm_alerts_sensor`` (stopped until turned on), when a webhook is configured;
    it watches ``checks`` (the server's asset checks)."""
    settings = server.settings
    if settings.alarm_webhook_url_env_var is None:
        return []
    webhook_key = _resource_key(server)
    check_keys = [key for definition in checks for key in definition.check_keys]

    @dg.sensor(
        name=settings.qualified("pi_alarm_alerts_sensor"),
        minimum_interval_seconds=settings.alarm_alert_sensor_seconds,
        default_status=dg.DefaultSensorStatus.STOPPED,
        required_resource_keys={LAKEHOUSE, webhook_key},
    )
    def pi_alarm_alerts_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        """Posts each new alarm of `silver.pi_alarms` whose severity is `alarm_alert_min_severity` or
        higher, and each failed ERROR-severity asset check of this server, to the webhook
        (`alarm_webhook_url_env_var`), oldest first, each exactly once: the cursor records what was posted
        and advances per message, so a webhook failing half-way is retried on the next tick from the first
        message it did not take. Its first tick posts nothing already in the lake."""
        webhook: AlertWebhookResource = getattr(context.resources, webhook_key)
        alarms = server.lake(context).table(ALARMS.name)
        instance = context.instance
        if context.cursor:
            cursor = AlertCursor.from_json(context.cursor)
        else:
            cursor = AlertCursor.first(
                alarms, now=utc_now(), checks_after=_latest_check_execution(instance, check_keys)
            )
        cursor = cursor.advanced(alarms, timedelta(hours=settings.alarm_alert_lookback_hours))
        found = new_alarms(alarms, cursor, settings.alarm_alert_min_severity.value)
        failure = post_all(
            webhook.session,
            webhook.url,
            [(alarm["web_id"], alarm_message(alarm, settings.name)) for alarm in found],
            cursor.posted,
        )
        checks_posted = 0
        if failure is None:
            failure, checks_posted = _post_check_failures(instance, check_keys, webhook, cursor)
        alarms_posted = sum(alarm["web_id"] in cursor.posted for alarm in found)
        summary = f"{alarms_posted} of {len(found)} new alarm(s) and {checks_posted} failed check(s) posted."
        if failure is not None:
            context.log.error(f"{summary} {failure} The rest is posted on the next tick.")
            return dg.SensorResult(skip_reason=f"{summary} {failure}", cursor=cursor.to_json())
        context.log.info(summary)
        return dg.SensorResult(cursor=cursor.to_json())

    return [pi_alarm_alerts_sensor]


def _latest_check_execution(instance: dg.DagsterInstance, check_keys: Sequence[dg.AssetCheckKey]) -> int:
    storage = instance.event_log_storage
    latest = (storage.get_asset_check_execution_history(key, limit=1) for key in check_keys)
    return max((records[0].id for records in latest if records), default=0)


def _executions_since(
    instance: dg.DagsterInstance, key: dg.AssetCheckKey, after: int
) -> list[AssetCheckExecutionRecord]:
    """Every execution of the check with an id above ``after``, paged (Dagster answers newest first), so a
    backfill of thousands of partitions between two ticks is read whole."""
    found: list[AssetCheckExecutionRecord] = []
    before: int | None = None
    while True:
        page = instance.event_log_storage.get_asset_check_execution_history(
            key, limit=CHECK_EXECUTIONS_PER_PAGE, cursor=before
        )
        found += [record for record in page if record.id > after]
        if len(page) < CHECK_EXECUTIONS_PER_PAGE or page[-1].id <= after:
            return found
        before = page[-1].id


def _run_active(instance: dg.DagsterInstance, run_id: str) -> bool:
    run = instance.get_run_by_id(run_id) if run_id else None
    return run is not None and not run.is_finished


def _post_check_failures(
    instance: dg.DagsterInstance,
    check_keys: Sequence[dg.AssetCheckKey],
    webhook: AlertWebhookResource,
    cursor: AlertCursor,
) -> tuple[WebhookError | None, int]:
    """Post the failed ERROR checks executed since the cursor, oldest first, advancing it. An execution of a
    run still in progress holds ``checks_after`` below it, so its result is seen once it has one."""
    executions = sorted(
        (record for key in check_keys for record in _executions_since(instance, key, cursor.checks_after)),
        key=lambda record: record.id,
    )
    running_runs = {r.run_id for r in executions if r.status == AssetCheckExecutionRecordStatus.PLANNED}
    active = {run_id for run_id in running_runs if _run_active(instance, run_id)}
    # A check of a run that ended without evaluating it stays PLANNED forever: it holds nothing back.
    running = [
        r.id for r in executions if r.status == AssetCheckExecutionRecordStatus.PLANNED and r.run_id in active
    ]
    posted = 0
    for record in executions:
        if record.id in cursor.checks_posted or record.status == AssetCheckExecutionRecordStatus.PLANNED:
            continue
        evaluation = record.event.asset_check_evaluation if record.event else None
        if (
            evaluation is not None
            and not evaluation.passed
            and evaluation.severity == dg.AssetCheckSeverity.ERROR
        ):
            message = check_failure_message(
                evaluation.asset_key.to_user_string(),
                evaluation.check_name,
                record.partition,
                evaluation.description,
            )
            try:
                post_message(webhook.session, webhook.url, message)
            except WebhookError as exc:
                return exc, posted
            posted += 1
        cursor.checks_posted.add(record.id)
    done = min(running) - 1 if running else max((r.id for r in executions), default=cursor.checks_after)
    cursor.checks_after = max(cursor.checks_after, done)
    cursor.checks_posted = {i for i in cursor.checks_posted if i > cursor.checks_after}
    return None, posted
