"""Time values for requests: always explicit UTC with PI's 100 ns precision, never ``*`` or local time."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_ISO = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}(?::\d{2})?)(?:[.,](\d+))?\s*(Z|z|[+-]\d{2}:?\d{2})$",
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
TICK_NS = 100  # PI stores 100 ns ticks: the last tick before an exclusive end is end - TICK_NS

TimeLike = datetime | str | int


def to_ns(value: TimeLike) -> int:
    """Nanoseconds since the Unix epoch for a timezone-aware datetime, an ISO 8601 string with ``Z`` or an
    offset, or an int that already is nanoseconds. Naive datetimes and zone-less strings raise
    ``ValueError``: read in the server's time zone they would silently shift the window.
    """
    if isinstance(value, bool):
        raise TypeError("a time must be a datetime, an ISO 8601 string or nanoseconds, not a bool")
    if isinstance(value, int):
        return value
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: give a timezone-aware datetime (e.g. tzinfo=UTC)")
        delta = value - _EPOCH
        nanos = getattr(value, "nanosecond", 0)  # pandas.Timestamp keeps nanoseconds here
        return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000 + nanos
    if isinstance(value, str):
        match = _ISO.match(value.strip())
        if match is None:
            raise ValueError(
                f"time string {value!r} is not ISO 8601 with a zone (e.g. 2025-01-06T12:00:00Z); relative PI "
                "times such as '*-1d' are not accepted for windows that must be reproducible"
            )
        day, clock, fraction, zone = match.groups()
        if clock.count(":") == 1:
            clock += ":00"
        zone = "+00:00" if zone in ("Z", "z") else zone
        if ":" not in zone:
            zone = f"{zone[:3]}:{zone[3:]}"
        whole = datetime.fromisoformat(f"{day}T{clock}{zone}")
        digits = (fraction or "")[:9].ljust(9, "0")
        return to_ns(whole) + int(digits)
    raise TypeError(
        f"a time must be a datetime, an ISO 8601 string or nanoseconds, not {type(value).__name__}"
    )


def format_ns(ns: int) -> str:
    """PI's UTC form with seven fractional digits (100 ns ticks; finer parts are cut, as PI stores ticks)."""
    seconds, rest = divmod(ns, 1_000_000_000)
    moment = _EPOCH + timedelta(seconds=seconds)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{rest // TICK_NS:07d}Z"


def from_ns(ns: int) -> datetime:
    """A timezone-aware UTC datetime for ``ns``, floored to the microsecond (datetime's precision)."""
    return _EPOCH + timedelta(microseconds=ns // 1000)


def to_pi_time(value: TimeLike) -> str:
    """The request form of ``value`` (see :func:`to_ns` for what is accepted)."""
    return format_ns(to_ns(value))
