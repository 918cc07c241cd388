r"""PI Notifications: notification rules and their subscribers, read from PI Web API.

A notification rule belongs to an AF element (its path is ``\\AF\DB\...\Unit\NotificationRules[Name]``)
and fires on the event frames its ``criteria`` (an AF event frame search) selects; its subscribers say who is
told, and how. Rules of a database are searched with AF's query syntax (``Name:=Boiler* Template:=HighTemp``)
and paged like every collection; an element's rules and a rule's subscribers come in one answer each.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

from osipi_dagster.pi.discovery import Discovery, _Object

_RULES_MARKER = "\\NotificationRules["


class NotificationRule(_Object, frozen=True, kw_only=True, rename="pascal"):
    """A notification rule. ``nonrepetition_interval`` and ``resend_interval`` are ISO 8601 durations
    (``PT5M``); ``status`` is ``Enabled`` or ``Disabled``; ``criteria`` is PI's text, as AF stores it."""

    id: str = ""
    description: str = ""
    auto_created: bool = False
    category_names: list[str] = []
    criteria: str = ""
    multi_trigger_event_option: str = ""
    nonrepetition_interval: str = ""
    resend_interval: str = ""
    status: str = ""
    template_name: str = ""

    @property
    def element_path(self) -> str | None:
        """The path of the element that owns the rule (the part of its path before ``\\NotificationRules[``);
        None when the path does not say."""
        head, marker, _ = self.path.rpartition(_RULES_MARKER)
        return head if marker and head else None

    @property
    def enabled(self) -> bool:
        return self.status.casefold() == "enabled"


class NotificationRuleSubscriber(_Object, frozen=True, kw_only=True, rename="pascal"):
    """Who a rule notifies, and how. ``config_string`` is the delivery channel's configuration (an e-mail
    address, a web service endpoint): it can hold credentials, so treat it as a secret."""

    id: str = ""
    description: str = ""
    config_string: str = ""
    contact_template_name: str = ""
    contact_type: str = ""
    delivery_format_name: str = ""
    plug_in_name: str = ""
    escalation_timeout: str = ""
    maximum_retries: int | None = None
    notify_option: str = ""
    retry_interval: str = ""


class Notifications(Discovery):
    """Notification rule calls, beside discovery's; :class:`~osipi_dagster.pi.client.PIWebAPIClient`
    inherits both."""

    def notification_rules(
        self, database_web_id: str, *, query: str | None = None, page_size: int = 1000
    ) -> Iterator[NotificationRule]:
        """The database's notification rules matching an AF search ``query`` (all without one), paged."""
        params: list[tuple[str, str | int | float]] = [("databaseWebId", database_web_id)]
        if query:
            params.append(("query", query))
        return self._paged("notificationrules/search", NotificationRule, params, page_size)

    def element_notification_rules(self, element_web_id: str) -> list[NotificationRule]:
        """The notification rules an element owns."""
        return self._list(f"elements/{quote(element_web_id, safe='')}/notificationrules", NotificationRule)

    def notification_rule(self, web_id: str) -> NotificationRule:
        """One notification rule."""
        return self._get_object(f"notificationrules/{quote(web_id, safe='')}", NotificationRule)

    def notification_rule_subscribers(self, rule_web_id: str) -> list[NotificationRuleSubscriber]:
        """Who a notification rule notifies."""
        path = f"notificationrules/{quote(rule_web_id, safe='')}/notificationrulesubscribers"
        return self._list(path, NotificationRuleSubscriber)
