r"""Notification rule criteria: AF event frame searches, evaluated against event frames in the lake.

A rule's ``Criteria`` is an AF search query, space-separated filters ``Field:=value`` (``:`` alone means
``:=``; ``:<>`` negates; severities also take ``<``, ``<=``, ``>``, ``>=``), values quoted with ``'`` or ``"``
when they hold spaces, ``*`` and ``?`` wildcards (case-insensitive, as AF names are), and a bare value meaning
``Name:=value``. The fields understood: ``Name``, ``Description``, ``Category`` (``CategoryName``),
``Template``, ``Severity``, ``CanBeAcknowledged``, ``IsAcknowledged``.

A ``Template`` filter matches the frame's own template name: the lake does not know which templates derive
from which, so a rule on a base template (``Template:=Alarm`` where frames use ``Process Alarm``) matches
nothing here. Anything else in a criteria is a :class:`CriteriaError` naming the rule and the filter: an
alarm must never be attributed to a rule on a guess.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache

# AF's severities, lowest first: their rank is what <, >= compare.
SEVERITIES = ("None", "Information", "Warning", "Minor", "Major", "Critical")
_SEVERITY_LEVEL = {name.casefold(): level for level, name in enumerate(SEVERITIES)}
_FIELDS = {
    "name": "name",
    "description": "description",
    "category": "category_names",
    "categoryname": "category_names",
    "template": "template_name",
    "severity": "severity",
    "canbeacknowledged": "can_be_acknowledged",
    "isacknowledged": "is_acknowledged",
}
_BOOLEANS = frozenset({"can_be_acknowledged", "is_acknowledged"})
_FILTER = re.compile(
    r"""\s*(?:(?P<field>[A-Za-z]+):(?P<op><>|<=|>=|<|>|=)?)?(?P<value>'[^']*'|"[^"]*"|[^\s'"]+)"""
)


class CriteriaError(ValueError):
    """A notification rule's criteria cannot be evaluated on the lake's event frames."""


def severity_level(severity: str | None) -> int:
    """The rank of an AF severity (None 0 ... Critical 5); an unknown or missing severity ranks 0."""
    return _SEVERITY_LEVEL.get((severity or "None").casefold(), 0)


def check_severity(severity: str) -> str:
    """``severity`` spelled as AF does; ValueError naming the choices for anything else."""
    if severity.casefold() not in _SEVERITY_LEVEL:
        raise ValueError(f"{severity!r} is not an AF severity; use one of {', '.join(SEVERITIES)}.")
    return SEVERITIES[_SEVERITY_LEVEL[severity.casefold()]]


@dataclass(frozen=True)
class _Filter:
    column: str  # the bronze.pi_event_frames column compared
    operator: str
    value: str


@dataclass(frozen=True)
class Criteria:
    """A parsed criteria; :meth:`matches` takes a ``bronze.pi_event_frames`` row."""

    text: str
    filters: tuple[_Filter, ...]

    def matches(self, frame: Mapping[str, object]) -> bool:
        return all(_holds(item, frame[item.column]) for item in self.filters)


def parse_criteria(text: str | None, rule_path: str) -> Criteria:
    """The criteria ``text`` of the rule at ``rule_path``; an empty criteria matches every frame.

    Raises:
        CriteriaError: a filter this module does not understand (named, with the rule).
    """
    text = text or ""
    filters: list[_Filter] = []
    position, end = 0, len(text.rstrip())
    while position < end:
        match = _FILTER.match(text, position)
        if match is None:
            raise CriteriaError(_unsupported(rule_path, text, f"unreadable near {text[position:]!r}"))
        position = match.end()
        field, operator = match.group("field") or "Name", match.group("op") or "="
        column = _FIELDS.get(field.casefold())
        if column is None:
            raise CriteriaError(_unsupported(rule_path, text, f"the filter {field!r} is not supported"))
        value = match.group("value")
        if value[:1] in "'\"":
            value = value[1:-1]
        if column == "severity":
            if value.casefold() not in _SEVERITY_LEVEL:
                raise CriteriaError(_unsupported(rule_path, text, f"{value!r} is not a severity"))
        elif operator not in ("=", "<>") or (
            column in _BOOLEANS and value.casefold() not in ("true", "false")
        ):
            raise CriteriaError(_unsupported(rule_path, text, f"{field}:{operator}{value} is not supported"))
        filters.append(_Filter(column, operator, value))
    return Criteria(text, tuple(filters))


def _unsupported(rule_path: str, text: str, why: str) -> str:
    return (
        f"The criteria {text!r} of notification rule {rule_path} cannot be evaluated: {why}. Supported: "
        "Name, Description, Category, Template, Severity, CanBeAcknowledged, IsAcknowledged filters. "
        "Nothing was written; simplify the rule in PI System Explorer or report the criteria."
    )


def _holds(item: _Filter, actual: object) -> bool:
    if item.column == "severity":
        have, wanted = severity_level(actual), _SEVERITY_LEVEL[item.value.casefold()]  # type: ignore[arg-type]
        return {
            "=": have == wanted,
            "<>": have != wanted,
            "<": have < wanted,
            "<=": have <= wanted,
            ">": have > wanted,
            ">=": have >= wanted,
        }[item.operator]
    if item.column in _BOOLEANS:
        same = bool(actual) == (item.value.casefold() == "true")
    else:
        values = actual if isinstance(actual, list) else [actual]
        pattern = _wildcard(item.value)
        same = any(value is not None and pattern.fullmatch(str(value)) for value in values)
    return same if item.operator == "=" else not same


@cache
def _wildcard(value: str) -> re.Pattern[str]:
    """AF's ``*`` (any run) and ``?`` (one character), case-insensitive; the rest literal."""
    return re.compile("".join({"*": ".*", "?": "."}.get(c, re.escape(c)) for c in value), re.IGNORECASE)
