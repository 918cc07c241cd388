r"""The mock's PI Notifications: notification rules on the process units, their subscribers, and the AF search
queries that select rules (``/notificationrules/search``) and that rules use as trigger criteria.

Rules are a pure function of ``config.seed`` and the asset model, built once. Every process unit owns one
rule per entry of ``RULE_SPECS`` (path ``\\AF\DB\...\Unit03\NotificationRules[Critical Process Alarms]``),
whose criteria select the unit's event frames (those that reference the unit, as every alarm and downtime
frame does):

- ``Process Alarms``: ``Template:='Process Alarm' Severity:<Major``;
- ``Critical Process Alarms``: ``Template:='Process Alarm' Severity:>=Major``;
- ``Equipment Faults``: ``Template:='Equipment Alarm' CanBeAcknowledged:=True``;
- ``Unplanned Downtime``: ``Template:=Downtime Severity:>=Major`` (downtimes cannot be acknowledged: a
  notification event frame that is not an alarm).

So every alarm frame matches exactly one rule of its unit. About one rule in twelve is ``Disabled``. Each rule
has one to three subscribers (e-mail contacts: shift supervisors, maintenance planners, operators).

Queries follow AF's search syntax: space-separated filters ``Field:=value`` (``:`` alone means ``:=``), with
``<>``, ``<``, ``<=``, ``>``, ``>=`` for severities, values quoted with ``'`` or ``"`` when they hold spaces,
``*`` and ``?`` wildcards, and a bare value meaning ``Name:=value``. Rule searches know ``Name``,
``Description``, ``Category`` (or ``CategoryName``) and ``Template``; criteria also know ``Severity``,
``CanBeAcknowledged`` and ``IsAcknowledged``. Anything else is a 400 naming the filter.
"""

from __future__ import annotations

import functools
import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from osipi_dagster.mock import webids
from osipi_dagster.mock.af_objects import Database, Element, path_key, stable_guid, stable_hash
from osipi_dagster.mock.af_search import wildcard
from osipi_dagster.mock.errors import PIError, not_found
from osipi_dagster.mock.eventframes import OPERATORS, SEVERITIES

if TYPE_CHECKING:
    from osipi_dagster.mock.af import AssetModel
    from osipi_dagster.mock.eventframes import EventFrame

DISABLED_ONE_IN = 12  # about one rule in twelve is disabled
TEMPLATE_NAME = ""  # the mock has no notification rule templates: its rules are made on the elements


@dataclass(frozen=True)
class RuleSpec:
    """A notification rule every process unit owns."""

    name: str
    description: str
    criteria: str
    categories: tuple[str, ...]
    nonrepetition_interval: str
    resend_interval: str


RULE_SPECS: tuple[RuleSpec, ...] = (
    RuleSpec(
        "Process Alarms",
        "Process alarms below Major",
        "Template:='Process Alarm' Severity:<Major",
        ("Alarm",),
        "PT5M",
        "PT0S",
    ),
    RuleSpec(
        "Critical Process Alarms",
        "Major and Critical process alarms",
        "Template:='Process Alarm' Severity:>=Major",
        ("Alarm", "Safety"),
        "PT0S",
        "PT1H",
    ),
    RuleSpec(
        "Equipment Faults",
        "Equipment faults an operator must acknowledge",
        "Template:='Equipment Alarm' CanBeAcknowledged:=True",
        ("Alarm", "Maintenance"),
        "PT15M",
        "PT0S",
    ),
    RuleSpec(
        "Unplanned Downtime",
        "Unplanned downtimes",
        "Template:=Downtime Severity:>=Major",
        ("Downtime",),
        "PT0S",
        "PT0S",
    ),
)
# (contact, contact type, e-mail address)
CONTACTS: tuple[tuple[str, str, str], ...] = (
    ("Shift Supervisors", "Group", "shift-supervisors@mockchem.example"),
    ("Maintenance Planners", "Group", "maintenance@mockchem.example"),
    *((name, "Individual", f"{name.replace('. ', '.').lower()}@mockchem.example") for name in OPERATORS),
)


@dataclass(frozen=True, eq=False)
class Subscriber:
    """A notification rule subscriber: who a rule notifies, and how."""

    guid: uuid.UUID
    name: str
    description: str
    path: str
    config_string: str
    contact_template_name: str
    contact_type: str
    escalation_timeout: str
    maximum_retries: int
    notify_option: str
    retry_interval: str
    delivery_format_name: str = "Default"
    plug_in_name: str = "Email"


@dataclass(frozen=True, eq=False)
class NotificationRule:
    """A notification rule owned by an element; its criteria select the element's event frames."""

    guid: uuid.UUID
    element: Element
    name: str
    description: str
    path: str
    criteria: str
    trigger: Query  # the criteria, parsed
    categories: tuple[str, ...]
    status: str
    nonrepetition_interval: str
    resend_interval: str
    subscribers: tuple[Subscriber, ...]
    auto_created: bool = False
    multi_trigger_event_option: str = "HighestSeverity"

    @property
    def database(self) -> Database:
        return self.element.database

    @property
    def enabled(self) -> bool:
        return self.status == "Enabled"

    def matches(self, frame: EventFrame, now_ns: int) -> bool:
        """Whether ``frame`` triggers the rule at ``now_ns``: it references the rule's element and passes
        the criteria (whatever the rule's status)."""
        return any(e is self.element for e in frame.references) and self.trigger.matches(
            lambda field: _frame_field(frame, field, now_ns)
        )


class NotificationModel:
    """Every notification rule of the asset model (see the module doc)."""

    def __init__(self, seed: int, af: AssetModel) -> None:
        self.af = af
        self.rules: list[NotificationRule] = [
            self._rule(seed, unit, spec) for unit in af.units for spec in RULE_SPECS
        ]
        self._by_guid = {rule.guid: rule for rule in self.rules}
        self._by_path = {path_key(rule.path): rule for rule in self.rules}
        pairs = [(rule, s) for rule in self.rules for s in rule.subscribers]
        self._subscribers = {s.guid: (rule, s) for rule, s in pairs}
        self._subscribers_by_path = {path_key(s.path): (rule, s) for rule, s in pairs}

    @staticmethod
    def _rule(seed: int, unit: Element, spec: RuleSpec) -> NotificationRule:
        path = f"{unit.path}\\NotificationRules[{spec.name}]"
        disabled = stable_hash(seed, "rule-status", path.upper()) % DISABLED_ONE_IN == 0
        return NotificationRule(
            guid=stable_guid(seed, "notification-rule", path.upper()),
            element=unit,
            name=spec.name,
            description=f"{spec.description} on {unit.name}",
            path=path,
            criteria=spec.criteria,
            trigger=Query(spec.criteria, FRAME_FIELDS),
            categories=spec.categories,
            status="Disabled" if disabled else "Enabled",
            nonrepetition_interval=spec.nonrepetition_interval,
            resend_interval=spec.resend_interval,
            subscribers=_subscribers(seed, path, spec.name),
        )

    # -- look-ups ---------------------------------------------------------------------------------------

    def rule(self, web: webids.WebId, text: str = "") -> NotificationRule:
        """The rule an ``NR`` WebID names; 404 if unknown."""
        if web.marker != "NR":
            raise not_found("notification rule", text)
        guid = self.af.check_system(web, "notification rule", text)
        found = self._by_guid.get(guid) if guid else self._by_path.get(web.path or "")
        if found is None:
            raise not_found("notification rule", text)
        return found

    def rule_by_path(self, path: str) -> NotificationRule:
        found = self._by_path.get(path_key(path))
        if found is None:
            raise not_found("notification rule", path)
        return found

    def subscriber(self, web: webids.WebId, text: str = "") -> tuple[NotificationRule, Subscriber]:
        """The rule and subscriber an ``NS`` WebID names; 404 if unknown."""
        if web.marker != "NS":
            raise not_found("notification rule subscriber", text)
        guid = self.af.check_system(web, "notification rule subscriber", text)
        found = self._subscribers.get(guid) if guid else self._subscribers_by_path.get(web.path or "")
        if found is None:
            raise not_found("notification rule subscriber", text)
        return found

    def rules_of(self, element: Element) -> list[NotificationRule]:
        """The rules an element owns, by name."""
        return sorted((r for r in self.rules if r.element is element), key=lambda r: r.name.lower())

    def search(self, database: Database, query: str | None) -> list[NotificationRule]:
        """The database's rules matching an AF search ``query`` (all when empty), by name then path."""
        parsed = Query(query or "", RULE_FIELDS)
        found = [
            rule
            for rule in self.rules
            if rule.database is database and parsed.matches(functools.partial(_rule_field, rule))
        ]
        return sorted(found, key=lambda r: (r.name.lower(), r.path.lower()))

    def matching(self, frame: EventFrame, now_ns: int) -> list[NotificationRule]:
        """The rules (enabled or not) that ``frame`` triggers, by name (the oracle of rule attribution)."""
        units = {id(e.unit) for e in frame.references if e.unit is not None}
        candidates: Iterable[NotificationRule] = (r for r in self.rules if id(r.element) in units)
        return sorted((r for r in candidates if r.matches(frame, now_ns)), key=lambda r: r.name.lower())


def _subscribers(seed: int, rule_path: str, rule_name: str) -> tuple[Subscriber, ...]:
    count = 1 + stable_hash(seed, "subscriber-count", rule_path.upper()) % 3
    first = stable_hash(seed, "subscriber-first", rule_path.upper()) % len(CONTACTS)
    found = []
    for offset in range(count):
        contact, kind, address = CONTACTS[(first + offset) % len(CONTACTS)]
        path = f"{rule_path}\\NotificationRuleSubscribers[{contact}]"
        escalates = kind == "Group"
        found.append(
            Subscriber(
                guid=stable_guid(seed, "subscriber", path.upper()),
                name=contact,
                description=f"{contact} subscription to {rule_name}",
                path=path,
                config_string=f"ToEmail={address}",
                contact_template_name=contact,
                contact_type=kind,
                escalation_timeout="PT15M" if escalates else "PT0S",
                maximum_retries=3,
                notify_option="EventStartAndEnd" if escalates else "EventStart",
                retry_interval="PT1M",
            )
        )
    return tuple(found)


# -- AF search queries ---------------------------------------------------------------------------------

RULE_FIELDS = ("Name", "Description", "Category", "CategoryName", "Template")
FRAME_FIELDS = (*RULE_FIELDS, "Severity", "CanBeAcknowledged", "IsAcknowledged")
_FILTER = re.compile(
    r"""\s*(?:(?P<field>[A-Za-z]+):(?P<op><>|<=|>=|<|>|=)?)?(?P<value>'[^']*'|"[^"]*"|[^\s'"]+)"""
)


@dataclass(frozen=True)
class Filter:
    field: str  # canonical spelling
    operator: str
    value: str


class Query:
    """A parsed AF search query: filters that must all hold. 400 for a filter outside ``fields``, a
    severity that is not one, a boolean that is not True/False, or an operator the field does not take."""

    def __init__(self, text: str, fields: tuple[str, ...]) -> None:
        self.text = text
        canonical = {name.lower(): name for name in fields}
        self.filters: list[Filter] = []
        position, end = 0, len(text.rstrip())
        while position < end:
            match = _FILTER.match(text, position)
            if match is None:
                raise PIError(
                    400, f"The query '{text}' is not valid AF search syntax near '{text[position:]}'."
                )
            position = match.end()
            field = match.group("field") or "Name"
            if field.lower() not in canonical:
                raise PIError(
                    400,
                    f"The query filter '{field}' is not supported here; supported: {', '.join(fields)}.",
                )
            value = match.group("value")
            if value[:1] in "'\"":
                value = value[1:-1]
            self.filters.append(Filter(canonical[field.lower()], match.group("op") or "=", value))
        for item in self.filters:
            _check(item)

    def matches(self, value_of: Callable[[str], object]) -> bool:
        """Whether an object, whose field values ``value_of`` gives, passes every filter."""
        return all(_holds(item, value_of(item.field)) for item in self.filters)


def _check(item: Filter) -> None:
    if item.field == "Severity":
        severity_level(item.value)
    elif item.field in ("CanBeAcknowledged", "IsAcknowledged"):
        if item.value.lower() not in ("true", "false") or item.operator not in ("=", "<>"):
            raise PIError(400, f"The query filter {item.field} takes :=True or :=False (got '{item.value}').")
    elif item.operator not in ("=", "<>"):
        raise PIError(400, f"The query filter {item.field} takes := or :<> (got :{item.operator}).")


def _holds(item: Filter, actual: object) -> bool:
    if item.field == "Severity":
        wanted, have = severity_level(item.value), severity_level(str(actual))
        return {
            "=": have == wanted,
            "<>": have != wanted,
            "<": have < wanted,
            "<=": have <= wanted,
            ">": have > wanted,
            ">=": have >= wanted,
        }[item.operator]
    if isinstance(actual, bool):
        same = actual == (item.value.lower() == "true")
    else:
        match = wildcard(item.value)
        values = actual if isinstance(actual, tuple) else (actual,)
        same = match is not None and any(match(str(value)) for value in values)
    return same if item.operator == "=" else not same


def severity_level(text: str) -> int:
    """The rank of an AF severity (None 0 ... Critical 5); 400 for anything else."""
    found = next((i for i, name in enumerate(SEVERITIES) if name.lower() == text.lower()), None)
    if found is None:
        raise PIError(400, f"The value '{text}' is not a severity; one of {', '.join(SEVERITIES)}.")
    return found


def _rule_field(rule: NotificationRule, field: str) -> object:
    return {
        "Name": rule.name,
        "Description": rule.description,
        "Category": rule.categories,
        "CategoryName": rule.categories,
        "Template": TEMPLATE_NAME,
    }[field]


def _frame_field(frame: EventFrame, field: str, now_ns: int) -> object:
    if field == "Template":
        return frame.template.lineage  # a template filter matches derived templates, as AF's does
    return {
        "Name": frame.name,
        "Description": frame.description,
        "Category": frame.categories,
        "CategoryName": frame.categories,
        "Severity": frame.severity,
        "CanBeAcknowledged": frame.template.spec.can_be_acknowledged,
        "IsAcknowledged": frame.is_acknowledged(now_ns),
    }[field]
