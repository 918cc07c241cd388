"""The contract between the PI client (``osipi_dagster.pi``) and the lake (``osipi_dagster.lake``): what a PI
value is as Arrow, and PI's time arithmetic. Both import it from here and neither imports the other, so both
agree on one definition of a value and of a PI time. (The mock never imports it: it is the client's test
oracle and keeps its own copy on purpose.)

Times are always explicit UTC with PI's 100 ns precision, never ``*`` or local time.

``RECORDED_SCHEMA`` is the schema of every recorded, interpolated, plot, value and end read; one row is one
PI event of one stream:

==============  ===========================  ==========================================================
column          type                         meaning
==============  ===========================  ==========================================================
web_id          string, not null             the stream's WebId, exactly as the caller passed it
timestamp       timestamp[ns, UTC], not null PI's time, 100 ns ticks kept
value           float64                      the numeric value; null for strings, digital and system
                                             states (AF Booleans read as 1.0 / 0.0); NaN and +-inf for
                                             the "NaN", "Infinity", "-Infinity" PI writes for them
string_value    string                       the value of String points (and DateTime, Guid, arrays as
                                             text); otherwise null. Never exactly "NaN", "Infinity" or
                                             "-Infinity": those always read as floats (pi/decode.py)
state_code      int32                        the code of a digital or system state, otherwise null
state_name      string                       the name of a digital or system state, otherwise null
is_system       bool, not null               the value is a system state (I/O Timeout, Shutdown, ...)
good            bool, not null               PI's Good flag
questionable    bool, not null               PI's Questionable flag
substituted     bool, not null               PI's Substituted flag
annotated       bool, not null               PI's Annotated flag
units           string                       the stream's units abbreviation, null when PI gives none
==============  ===========================  ==========================================================

``SUMMARY_SCHEMA`` adds ``summary_type`` after ``web_id``; its ``timestamp`` is the one PI gives the
summary value (the interval start, or the event time for Minimum and Maximum).

:func:`dictionary_encoded` gives a schema whose repeated string columns (``web_id``, ``summary_type``,
``units``) are ``dictionary<int32, string>``: the same values, each batch holding every distinct string
once and an index per row. A reader asks for it (``read_recorded(dictionary=True)``) when its batches go to
a writer that dictionary-encodes them anyway (Parquet): the client does not write an 80-byte WebId per value,
and the writer does not hash it again (``docs/BENCHMARKS.md``, "Dictionary-encoded WebIds").
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

import pyarrow as pa

TIMESTAMP_TYPE = pa.timestamp("ns", tz="UTC")

_VALUE_FIELDS = [
    pa.field("timestamp", TIMESTAMP_TYPE, nullable=False),
    pa.field("value", pa.float64()),
    pa.field("string_value", pa.string()),
    pa.field("state_code", pa.int32()),
    pa.field("state_name", pa.string()),
    pa.field("is_system", pa.bool_(), nullable=False),
    pa.field("good", pa.bool_(), nullable=False),
    pa.field("questionable", pa.bool_(), nullable=False),
    pa.field("substituted", pa.bool_(), nullable=False),
    pa.field("annotated", pa.bool_(), nullable=False),
    pa.field("units", pa.string()),
]

RECORDED_SCHEMA = pa.schema([pa.field("web_id", pa.string(), nullable=False), *_VALUE_FIELDS])

SUMMARY_SCHEMA = pa.schema(
    [
        pa.field("web_id", pa.string(), nullable=False),
        pa.field("summary_type", pa.string(), nullable=False),
        *_VALUE_FIELDS,
    ]
)

DICTIONARY_STRING = pa.dictionary(pa.int32(), pa.string())
REPEATED_COLUMNS = frozenset({"web_id", "summary_type", "units"})


def dictionary_encoded(schema: pa.Schema) -> pa.Schema:
    """``schema`` with its :data:`REPEATED_COLUMNS` as ``dictionary<int32, string>`` (see the module)."""
    return pa.schema(
        [field.with_type(DICTIONARY_STRING) if field.name in REPEATED_COLUMNS else field for field in schema]
    )


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


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """The UTC day ``[00:00, next 00:00)`` as timezone-aware datetimes: the window of a daily partition."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start, start + timedelta(days=1)
