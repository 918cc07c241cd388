"""PI time strings, parsed the way PI Web API parses them, to integer nanoseconds since the epoch (UTC).

Supported: ``*`` (now), ``t``/``today``, ``y``/``yesterday``, weekday and month names, a day of the month
(a number < 32), a year (4 digits), ISO 8601 with or without an offset and with up to 7 fractional
digits, PI absolute formats (``06-Jan-25 08:00:00``, ``06-Jan-2025``, ``1/6/2025 8:00:00 AM``, seconds with
up to 6 fractional digits), a time alone (today at that time), and chained offsets ``+1d-2h30m`` with
units s, m, h, d, w, mo, y (and long forms). A zone-less string is read in ``tz`` (the request's
``timeZone``, else the server's zone).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from osipi_dagster.mock.errors import PIError

NS = 1_000_000_000
TICK_NS = 100  # PI stores 100 ns ticks
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_UNITS = {
    "s": "s", "sec": "s", "secs": "s", "second": "s", "seconds": "s",
    "m": "m", "min": "m", "mins": "m", "minute": "m", "minutes": "m",
    "h": "h", "hr": "h", "hour": "h", "hours": "h",
    "d": "d", "day": "d", "days": "d",
    "w": "w", "wk": "w", "week": "w", "weeks": "w",
    "mo": "mo", "mon": "mo", "month": "mo", "months": "mo",
    "y": "y", "yr": "y", "year": "y", "years": "y",
}  # fmt: skip
_WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
_MONTHS = ["january", "february", "march", "april", "may", "june", "july", "august", "september",
           "october", "november", "december"]  # fmt: skip
_WINDOWS_ZONES = {
    "utc": "UTC", "gmt standard time": "Europe/London", "w. europe standard time": "Europe/Berlin",
    "eastern standard time": "America/New_York", "central standard time": "America/Chicago",
    "mountain standard time": "America/Denver", "pacific standard time": "America/Los_Angeles",
}  # fmt: skip
_ISO_FRACTION = re.compile(r"^(.*T\d{2}:\d{2}:\d{2})\.(\d+)(.*)$")
_ABSOLUTE_FORMATS = (
    "%d-%b-%y %H:%M:%S", "%d-%b-%y %H:%M:%S.%f", "%d-%b-%y %H:%M", "%d-%b-%y", "%d-%b-%Y %H:%M:%S",
    "%d-%b-%Y %H:%M:%S.%f", "%d-%b-%Y %H:%M", "%d-%b-%Y", "%m/%d/%Y %I:%M:%S %p", "%m/%d/%Y %I:%M:%S.%f %p",
    "%m/%d/%Y %H:%M:%S", "%m/%d/%Y %H:%M:%S.%f", "%m/%d/%Y", "%Y/%m/%d %H:%M:%S", "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d",
)  # fmt: skip


def zone(name: str | None, default: str = "UTC") -> ZoneInfo:
    """The zone a ``timeZone`` parameter names (IANA or a common Windows id); 400 if unknown."""
    text = (name or default).strip()
    try:
        return ZoneInfo(_WINDOWS_ZONES.get(text.lower(), text))
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise PIError(400, f"The time zone '{text}' is not a supported time zone.") from exc


def to_ns(moment: datetime) -> int:
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * NS + delta.microseconds * 1000


def from_ns(ns: int) -> datetime:
    return _EPOCH + timedelta(microseconds=ns // 1000)


def format_time(ns: int) -> str:
    """ISO 8601 UTC with ``Z`` and up to 7 fractional digits, trailing zeros trimmed (as PI prints)."""
    seconds, rest = divmod(int(ns), NS)
    text = (_EPOCH + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S")
    ticks = rest // TICK_NS
    return f"{text}.{ticks:07d}".rstrip("0") + "Z" if ticks else text + "Z"


def parse_time(text: str | None, now_ns: int, tz: ZoneInfo) -> int:
    """Parse a PI time string relative to ``now_ns`` in zone ``tz``; a bad string is a 400."""
    raw = "*" if text is None else text.strip().strip("'\"")
    try:
        return _parse(raw or "*", now_ns, tz)
    except (ValueError, OverflowError) as exc:
        raise PIError(400, f"Cannot parse time string '{text}'.") from exc


def _parse(raw: str, now_ns: int, tz: ZoneInfo) -> int:
    base_text, offsets = _split_offsets(raw)
    now_local = from_ns(now_ns).astimezone(tz)
    if base_text in ("", "*"):
        if not base_text and not offsets:
            raise ValueError(raw)
        base, extra_ns = now_local, now_ns % 1000  # keep the full precision of "*"
    else:
        base, extra_ns = _parse_base(base_text, now_local, tz)
    for sign, amount, unit in offsets:
        base = _apply_offset(base, -amount if sign == "-" else amount, unit)
    return to_ns(base.astimezone(UTC)) + extra_ns


_OFFSET_TAIL = re.compile(
    r"(?:[+-]\s*\d+(?:\.\d+)?\s*[a-z]+\s*)(?:[+-]?\s*\d+(?:\.\d+)?\s*[a-z]+\s*)*$", re.I
)
_OFFSET_TOKEN = re.compile(r"([+-]?)\s*(\d+(?:\.\d+)?)\s*([a-z]+)\s*", re.I)


def _split_offsets(raw: str) -> tuple[str, list[tuple[str, float, str]]]:
    """Split ``*-1d+2h30m`` into ``*`` and its offsets; ISO dates and zone offsets are not intervals."""
    for i, char in enumerate(raw):
        if char not in "+-":
            continue
        tail = raw[i:]
        if not _OFFSET_TAIL.fullmatch(tail):
            continue
        tokens = _OFFSET_TOKEN.findall(tail)
        if all(unit.lower() in _UNITS for _, _, unit in tokens):
            offsets, sign = [], "+"
            for token_sign, amount, unit in tokens:
                sign = token_sign or sign  # "+16h30m": an unsigned token keeps the previous sign
                offsets.append((sign, float(amount), _UNITS[unit.lower()]))
            return raw[:i].strip(), offsets
    return raw.strip(), []


def _apply_offset(base: datetime, amount: float, unit: str) -> datetime:
    if unit in ("mo", "y"):
        months = round(amount * (12 if unit == "y" else 1))
        year, month = divmod(base.month - 1 + months, 12)
        day = min(base.day, _days_in_month(base.year + year, month + 1))
        return base.replace(year=base.year + year, month=month + 1, day=day)
    seconds = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}[unit] * amount
    return base + timedelta(seconds=seconds)


def _days_in_month(year: int, month: int) -> int:
    nxt = date(year + month // 12, month % 12 + 1, 1)
    return (nxt - timedelta(days=1)).day


def _midnight(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(), tzinfo=tz)


def _parse_base(text: str, now_local: datetime, tz: ZoneInfo) -> tuple[datetime, int]:
    """The moment a date-time part names, and its sub-microsecond remainder in ns."""
    low = text.lower()
    today = now_local.date()
    if low in ("t", "today"):
        return _midnight(today, tz), 0
    if low in ("y", "yesterday"):
        return _midnight(today - timedelta(days=1), tz), 0
    for i, name in enumerate(_WEEKDAYS):
        if len(low) >= 3 and name.startswith(low):
            return _midnight(today - timedelta(days=(today.weekday() - i) % 7), tz), 0
    for i, name in enumerate(_MONTHS):
        if len(low) >= 3 and name.startswith(low):
            day = min(today.day, _days_in_month(today.year, i + 1))
            return _midnight(date(today.year, i + 1, day), tz), 0
    if low.isdigit():
        number = int(low)
        if 0 < number < 32:
            return _midnight(today.replace(day=number), tz), 0
        if len(low) == 4 and number >= 1970:
            return _midnight(date(number, 1, 1), tz), 0
        raise ValueError(text)
    return _parse_absolute(text, today, tz)


def _parse_absolute(text: str, today: date, tz: ZoneInfo) -> tuple[datetime, int]:
    iso = text.replace("z", "Z")
    extra_ns = 0
    match = _ISO_FRACTION.match(iso)
    if match:
        digits = match.group(2)
        if len(digits) > 7:
            raise ValueError(text)
        digits = digits.ljust(7, "0")
        extra_ns = int(digits[6]) * TICK_NS  # the 7th digit: datetime stops at microseconds
        iso = f"{match.group(1)}.{digits[:6]}{match.group(3)}"
    for parse in (_from_iso, *(lambda s, f=f: datetime.strptime(s, f) for f in _ABSOLUTE_FORMATS)):
        try:
            moment = parse(iso)
            break
        except ValueError:
            continue
    else:
        moment = _time_alone(text, today)
    return (moment if moment.tzinfo else moment.replace(tzinfo=tz)), extra_ns


def _from_iso(text: str) -> datetime:
    if "T" not in text and " " not in text:
        raise ValueError(text)
    return datetime.fromisoformat(text)


def _time_alone(text: str, today: date) -> datetime:
    for fmt in ("%H:%M:%S", "%H:%M:%S.%f", "%H:%M", "%I:%M:%S %p", "%I:%M %p"):
        try:
            return datetime.combine(today, datetime.strptime(text, fmt).time())
        except ValueError:
            continue
    raise ValueError(text)
