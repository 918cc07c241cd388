r"""PI Notifications rules, with their subscribers, refreshed whole into ``bronze.pi_notification_rules``.

One run searches the rules of every AF database of every asset server (paged), reads each rule's
subscribers (``concurrency`` requests in flight), and replaces the table in one commit. A subscriber's
``ConfigString`` (its e-mail address or web service endpoint, possibly with credentials) is never read into
the lake. A failed read raises :class:`NotificationRuleReadError` before anything is written, and an answer
that drops all the rules the table holds, or more than ``max_removed_share`` of them, raises
:class:`NotificationRulesShrinkError` (an AF database that vanished behind a permission change or a proxy
is not a mass deletion of rules).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pyarrow as pa

from osipi_dagster.ingest.shrink import removal_refused
from osipi_dagster.lake import LakeTable, RowDiff, WriteResult, diff_rows, overwrite_table, read_table
from osipi_dagster.lake.schemas import NOTIFICATION_RULES
from osipi_dagster.lake.tables import without_columns
from osipi_dagster.pi import NotificationRule, NotificationRuleSubscriber, PIWebAPIClient, PIWebAPIError

DEFAULT_CONCURRENCY = 4


class NotificationRuleReadError(RuntimeError):
    """Notification rules or their subscribers could not be read completely; nothing was written."""


class NotificationRulesShrinkError(RuntimeError):
    """A refresh would remove too many of the rules the table holds; nothing was written."""


@dataclass(frozen=True)
class NotificationRulesResult:
    """What one refresh of ``bronze.pi_notification_rules`` read and wrote."""

    databases: tuple[str, ...]
    rules: int
    enabled: int
    subscribers: int
    requests: int
    diff: RowDiff
    write: WriteResult
    duration_seconds: float


def refresh_notification_rules(
    client: PIWebAPIClient,
    table: LakeTable,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    page_size: int = 1000,
    max_removed_share: float = 0.10,
    confirm_removed: int | None = None,
) -> NotificationRulesResult:
    """Replace ``table`` with every notification rule PI Web API knows, with its subscribers.

    Raises:
        NotificationRuleReadError: a search or a subscriber listing failed; nothing was written.
        NotificationRulesShrinkError: the answer drops every rule the table holds, or more than
            ``max_removed_share`` of them, and ``confirm_removed`` is not their exact count; nothing was
            written.
    """
    started = time.perf_counter()
    requests_before = client.requests_sent
    try:
        databases = [db for server in client.asset_servers() for db in client.asset_databases(server.web_id)]
        rules = [
            (db.path, rule)
            for db in databases
            for rule in client.notification_rules(db.web_id, page_size=page_size)
        ]
        with ThreadPoolExecutor(concurrency, thread_name_prefix="notification-rule-subscribers") as pool:
            subscribers = list(pool.map(client.notification_rule_subscribers, [r.web_id for _, r in rules]))
    except PIWebAPIError as exc:
        raise NotificationRuleReadError(
            f"Reading the notification rules failed: {exc}. Nothing was written; re-run the asset."
        ) from exc
    rows = pa.Table.from_pylist(
        [_row(path, rule, found) for (path, rule), found in zip(rules, subscribers, strict=True)],
        schema=without_columns(NOTIFICATION_RULES.schema, ["ingested_at"]),
    )
    before = read_table(table)
    _refuse_a_shrink(before, rows, max_removed_share=max_removed_share, confirm_removed=confirm_removed)
    write = overwrite_table(table, rows)
    return NotificationRulesResult(
        databases=tuple(db.path for db in databases),
        rules=rows.num_rows,
        enabled=sum(rule.enabled for _, rule in rules),
        subscribers=sum(len(found) for found in subscribers),
        requests=client.requests_sent - requests_before,
        diff=diff_rows(before, rows, key=NOTIFICATION_RULES.key),
        write=write,
        duration_seconds=time.perf_counter() - started,
    )


def _refuse_a_shrink(
    before: pa.Table | None, rows: pa.Table, *, max_removed_share: float, confirm_removed: int | None
) -> None:
    if before is None:  # the first refresh
        return
    kept = set(rows.column("web_id").to_pylist())
    removed = [
        row["path"] for row in before.select(["web_id", "path"]).to_pylist() if row["web_id"] not in kept
    ]
    if not removal_refused(
        len(removed),
        before.num_rows,
        rows.num_rows,
        max_removed_share=max_removed_share,
        confirm_removed=confirm_removed,
    ):
        return
    limit = "all of them" if not rows.num_rows else f"more than {max_removed_share:.0%} of them"
    examples = ", ".join(removed[:5])
    raise NotificationRulesShrinkError(
        f"Refusing to remove {len(removed)} of the {before.num_rows} notification rules the lake holds "
        f"({limit}; e.g. {examples}): PI Web API listed {rows.num_rows} rules. Nothing was written. If an "
        "AF database, a permission or the PI server changed by mistake, fix it and re-run. If these rules "
        "really are gone, confirm with the pi_notification_rules run config "
        f"`confirm_removed_rules: {len(removed)}` (the exact count), or raise catalog_max_removed_share "
        "(OSIPI_CATALOG_MAX_REMOVED_SHARE)."
    )


def _row(database_path: str, rule: NotificationRule, subscribers: list[NotificationRuleSubscriber]) -> dict:
    return {
        "web_id": rule.web_id,
        "id": rule.id or None,
        "name": rule.name,
        "description": rule.description or None,
        "path": rule.path,
        "element_path": rule.element_path,
        "database_path": database_path,
        "criteria": rule.criteria or None,
        "category_names": rule.category_names,
        "template_name": rule.template_name or None,
        "status": rule.status or None,
        "enabled": rule.enabled,
        "auto_created": rule.auto_created,
        "multi_trigger_event_option": rule.multi_trigger_event_option or None,
        "nonrepetition_interval": rule.nonrepetition_interval or None,
        "resend_interval": rule.resend_interval or None,
        "subscribers": [
            {
                "web_id": s.web_id,
                "name": s.name,
                "contact_type": s.contact_type or None,
                "contact_template_name": s.contact_template_name or None,
                "delivery_format_name": s.delivery_format_name or None,
                "plug_in_name": s.plug_in_name or None,
                "notify_option": s.notify_option or None,
                "escalation_timeout": s.escalation_timeout or None,
                "maximum_retries": s.maximum_retries,
                "retry_interval": s.retry_interval or None,
            }
            for s in subscribers
        ],
    }
