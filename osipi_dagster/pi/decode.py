"""Decode PI Web API time-series bodies straight into Arrow.

msgspec decodes a body into typed structs (``gc=False``, so a million values do not wake the garbage
collector), the columns are gathered with list comprehensions, and the timestamps are parsed by one
vectorised Arrow cast that keeps PI's seven fractional digits. One comprehension per page finds the values
that are not a good plain number (:func:`odd_values`: errors, states, text, flags set: a handful on a real
page); the read's error check and the columns look at those only, the columns are built in C around them,
and only those values take a per-value Python branch.

A stream's answer must be one: ``Items`` (or ``Value`` for value and end reads) is required, so an answer
without it fails that stream instead of reading as "no values". A multi-stream answer is decoded strictly
first (the fast path); only when that fails is it decoded again entry by entry, so that the streams whose
entries are malformed fail alone (:class:`BadEntry`) and the others are kept.

Non-finite numbers: PI Web API writes a double that is NaN or infinite as the JSON strings ``"NaN"``,
``"Infinity"`` and ``"-Infinity"``. Exactly these three strings are always read as the float they stand for
(``value``), never as text. The answer does not say whether the point is numeric, and deciding by the other
values of the page would put one value in a different column depending on how the read was paged; the
price is that a String point whose value is literally one of these three strings reads as a float.

Timestamps are cast by Arrow in one call; only when the cast fails are the streams holding a timestamp
that is not a time, or lies outside what a nanosecond timestamp holds (1677-09-21 to 2262-04-11), found
(:class:`TimestampError`), so that they fail alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from osipi_dagster.contract import RECORDED_SCHEMA, SUMMARY_SCHEMA, TIMESTAMP_TYPE, dictionary_encoded, to_ns
from osipi_dagster.pi.errors import PIResponseError, error_messages


class State(msgspec.Struct, gc=False):
    """An enumeration value: a digital state (``IsSystem`` false) or a system state such as I/O Timeout.

    A bad value may also arrive as an object holding only ``Errors``; it decodes to this struct too.
    """

    Name: str | None = None
    Value: int | None = None
    IsSystem: bool = False
    Errors: list[Any] | None = None


class WebException(msgspec.Struct, gc=False):
    StatusCode: int | None = None
    Errors: list[Any] | None = None


class TimedValue(msgspec.Struct, gc=False):
    Timestamp: str
    Value: float | bool | str | State | list[Any] | None = None
    # Flags are JSON booleans on real servers, but some documentation samples show "true"/"false" strings.
    Good: bool | str | None = None
    Questionable: bool | str | None = None
    Substituted: bool | str | None = None
    Annotated: bool | str | None = None
    UnitsAbbreviation: str | None = None  # only read for single values; recorded reads leave it out
    Errors: list[Any] | None = None
    WebException: WebException | None = None


class TimedValues(msgspec.Struct, gc=False):
    """``/streams/{id}/recorded|interpolated|plot`` (also the content of a batch sub-request)."""

    Items: list[TimedValue]
    UnitsAbbreviation: str | None = None
    WebException: WebException | None = None
    Errors: list[Any] | None = None


class StreamValues(msgspec.Struct, gc=False):
    """One stream of ``/streamsets/recorded|interpolated|plot``."""

    Items: list[TimedValue]
    WebId: str = ""
    UnitsAbbreviation: str | None = None
    WebException: WebException | None = None
    Errors: list[Any] | None = None


class StreamValuesPage(msgspec.Struct, gc=False):
    Items: list[StreamValues]
    WebException: WebException | None = None


class StreamValue(msgspec.Struct, gc=False):
    """One stream of ``/streamsets/value|end``."""

    Value: TimedValue
    WebId: str = ""
    UnitsAbbreviation: str | None = None
    WebException: WebException | None = None
    Errors: list[Any] | None = None


class StreamValuePage(msgspec.Struct, gc=False):
    Items: list[StreamValue]
    WebException: WebException | None = None


class SummaryValue(msgspec.Struct, gc=False):
    Type: str
    Value: TimedValue


class SummaryValues(msgspec.Struct, gc=False):
    Items: list[SummaryValue]
    WebException: WebException | None = None


class StreamSummaries(msgspec.Struct, gc=False):
    Items: list[SummaryValue]
    WebId: str = ""
    WebException: WebException | None = None
    Errors: list[Any] | None = None


class StreamSummariesPage(msgspec.Struct, gc=False):
    Items: list[StreamSummaries]
    WebException: WebException | None = None


class SubResponse(msgspec.Struct, gc=False):
    """One answer of ``/batch``; ``Content`` stays raw until its status says how to read it."""

    Status: int
    Content: msgspec.Raw = msgspec.Raw(b"null")


_DECODERS: dict[type, msgspec.json.Decoder] = {}


def decoder(kind: type) -> msgspec.json.Decoder:
    """A cached typed decoder for ``kind`` (decoders are thread-safe and costly to build)."""
    found = _DECODERS.get(kind)
    if found is None:
        found = _DECODERS[kind] = msgspec.json.Decoder(kind)
    return found


def decode_page(body: bytes, kind: type) -> Any:
    """Decode a page; a top-level ``WebException`` (an error while PI streamed the answer) raises."""
    page = decoder(kind).decode(body)
    check_web_exception(page.WebException)
    return page


def check_web_exception(web_exception: WebException | None) -> None:
    if web_exception is not None:
        raise PIResponseError(
            "the answer carries a WebException",
            status=web_exception.StatusCode,
            errors=error_messages({"Errors": web_exception.Errors or []}),
        )


@dataclass(frozen=True, slots=True)
class BadEntry:
    """A stream of a multi-stream answer that is not a stream's answer: the WebId it names (empty when it
    names none) and what is wrong with it. ``WebId`` is spelt as in the answer, like the good entries."""

    WebId: str
    problem: str


class _LoosePage(msgspec.Struct, gc=False):
    Items: list[msgspec.Raw]
    WebException: WebException | None = None


class _EntryHeader(msgspec.Struct, gc=False):
    WebId: str = ""
    WebException: WebException | None = None
    Errors: list[Any] | None = None


def decode_streamset(body: bytes, page_kind: type, entry_kind: type) -> list[Any]:
    """The streams of a multi-stream answer: entries of ``entry_kind``, or :class:`BadEntry` for those
    that are not. Raises like :func:`decode_page` when the body is not a multi-stream answer at all."""
    try:
        page = decoder(page_kind).decode(body)
    except msgspec.ValidationError:
        page = decoder(_LoosePage).decode(body)
        check_web_exception(page.WebException)
        return [_entry(raw, entry_kind) for raw in page.Items]
    check_web_exception(page.WebException)
    return page.Items


def _entry(raw: msgspec.Raw, kind: type) -> Any:
    try:
        return decoder(kind).decode(raw)
    except msgspec.ValidationError as exc:
        reason = str(exc)
    try:
        header = decoder(_EntryHeader).decode(raw)
    except msgspec.ValidationError:
        return BadEntry("", f"an entry that names no stream ({reason})")
    # A stream PI could not read may come without its values, only with its Errors.
    return BadEntry(header.WebId, stream_problem(header) or f"the stream's entry is malformed ({reason})")


def decode_batch(body: bytes) -> dict[str, SubResponse | str]:
    """The sub-responses of a ``/batch`` answer by request id; a sub-response that is not one
    (``{Status, Content}``) is a string saying what is wrong with it."""
    try:
        return decoder(dict[str, SubResponse]).decode(body)
    except msgspec.ValidationError:
        raws = decoder(dict[str, msgspec.Raw]).decode(body)
    answers: dict[str, SubResponse | str] = {}
    for key, raw in raws.items():
        try:
            answers[key] = decoder(SubResponse).decode(raw)
        except msgspec.ValidationError as exc:
            answers[key] = f"the sub-response is malformed ({exc})"
    return answers


def stream_problem(stream: Any) -> str | None:
    """The message of a stream-level ``Errors`` or ``WebException``, or None when the stream is fine."""
    if stream.WebException is not None:
        return "; ".join(error_messages({"Errors": stream.WebException.Errors or []})) or "WebException"
    if stream.Errors is not None:
        return "; ".join(error_messages({"Errors": stream.Errors})) or "Errors"
    return None


def odd_values(items: Sequence[TimedValue]) -> list[int]:
    """The positions of the values that are not a good plain number: carrying ``Errors``, a ``Value`` that
    is not a float (a state, text, a flag, null), not ``Good``, or ``Questionable``, ``Substituted`` or
    ``Annotated``. A handful on a real page; every later step looks at these only."""
    return [
        i
        for i, item in enumerate(items)
        if item.Errors
        or type(item.Value) is not float
        or item.Good is not True
        or item.Questionable
        or item.Substituted
        or item.Annotated
    ]


def first_error(items: Sequence[TimedValue], odd: Sequence[int] | None = None) -> tuple[int, str] | None:
    """The index and message of the first value carrying ``Errors`` (PI's handled per-value error), or
    whose ``Value`` is an object holding ``Errors`` (decoded as a :class:`State`). ``odd`` is
    :func:`odd_values` of ``items`` when the caller has it."""
    for index in odd_values(items) if odd is None else odd:
        item = items[index]
        value = item.Value
        if item.Errors:
            errors = item.Errors
        elif type(value) is State and value.Errors is not None:
            errors = value.Errors
        else:
            continue
        return index, "; ".join(error_messages({"Errors": errors})) or "per-value Errors"
    return None


# The range of a nanosecond timestamp (int64 since the epoch).
_EARLIEST_NS, _LATEST_NS = -(2**63), 2**63 - 1


def time_ns(raw: str) -> int:
    """Nanoseconds since the epoch of a timestamp of PI's answer; ``ValueError`` saying why it is not one
    (not an ISO 8601 time with a zone, or outside the range a nanosecond timestamp holds)."""
    try:
        ns = to_ns(raw)
    except ValueError:
        raise ValueError(f"timestamp {raw!r} is not an ISO 8601 time with a zone") from None
    if not _EARLIEST_NS <= ns <= _LATEST_NS:
        raise ValueError(
            f"timestamp {raw!r} is outside the range of nanosecond timestamps (1677-09-21 to 2262-04-11)"
        )
    return ns


class TimestampError(ValueError):
    """Timestamps Arrow cannot read: ``problems`` maps the index of each segment holding one to why."""

    def __init__(self, problems: dict[int, str]):
        self.problems = problems
        super().__init__("; ".join(problems.values()))


@dataclass(frozen=True, slots=True)
class Segment:
    """Consecutive values of one stream to put in a batch (``summary_type`` only for summaries); ``odd``
    is :func:`odd_values` of ``items`` when known (the read found them while checking the page for
    errors), else :func:`build_batch` finds them."""

    web_id: str
    units: str | None
    items: list[TimedValue]
    summary_type: str | None = None
    odd: list[int] | None = None


_SCHEMAS = {
    (False, False): RECORDED_SCHEMA,
    (True, False): SUMMARY_SCHEMA,
    (False, True): dictionary_encoded(RECORDED_SCHEMA),
    (True, True): dictionary_encoded(SUMMARY_SCHEMA),
}


def batch_schema(*, summary: bool = False, dictionary: bool = False) -> pa.Schema:
    """The schema of :func:`build_batch`'s batches for these options."""
    return _SCHEMAS[summary, dictionary]


_TRUE = frozenset({"true", "True", "TRUE", "1"})
_NON_FINITE = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}


def _flag(raw: list[Any]) -> pa.Array:
    try:
        return pa.array(raw, pa.bool_())
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([v if v is None or type(v) is bool else v in _TRUE for v in raw], pa.bool_())


def _repeat(values: list[str | None], counts: list[int], dictionary: bool) -> pa.Array:
    """``values[i]`` repeated ``counts[i]`` times, as one Arrow string column (no per-row Python); with
    ``dictionary``, as ``dictionary<int32, string>`` indices into the distinct values (no string copied)."""
    if not dictionary:
        index = np.repeat(np.arange(len(values), dtype=np.int32), counts)
        return pa.array(values, pa.string()).take(pa.array(index))
    codes = {value: code for code, value in enumerate(dict.fromkeys(v for v in values if v is not None))}
    indices = np.repeat(np.array([codes.get(value, 0) for value in values], np.int32), counts)
    nulls = np.repeat(np.array([value is None for value in values]), counts) if None in values else None
    return pa.DictionaryArray.from_arrays(pa.array(indices, mask=nulls), pa.array(list(codes), pa.string()))


def _values(raw: list[Any], odd: list[int]) -> tuple[pa.Array, pa.Array, pa.Array, pa.Array, pa.Array]:
    """value, string_value, state_code, state_name, is_system for the raw ``Value`` fields; every value
    that is not a float is among the positions ``odd``."""
    n = len(raw)
    others = [i for i in odd if type(raw[i]) is not float]
    if not others:
        return (
            pa.array(raw, pa.float64()),
            pa.nulls(n, pa.string()),
            pa.nulls(n, pa.int32()),
            pa.nulls(n, pa.string()),
            pa.repeat(pa.scalar(False), n),
        )
    numbers: list[Any] = raw.copy()
    strings: list[str | None] | None = None  # each column is made when a value needs it
    codes: list[int | None] | None = None
    names: list[str | None] | None = None
    system: list[bool] | None = None
    for i in others:
        value = raw[i]
        kind = type(value)
        numbers[i] = None
        if kind is State:
            if codes is None:
                codes, names, system = [None] * n, [None] * n, [False] * n
            codes[i] = value.Value
            names[i] = value.Name
            system[i] = value.IsSystem
        elif kind is str:
            number = _NON_FINITE.get(value)
            if number is None:
                strings = strings or [None] * n
                strings[i] = value
            else:
                numbers[i] = number
        elif kind is bool:
            numbers[i] = 1.0 if value else 0.0
        elif kind is list:
            strings = strings or [None] * n
            strings[i] = msgspec.json.encode(value).decode()
    return (
        pa.array(numbers, pa.float64()),
        pa.nulls(n, pa.string()) if strings is None else pa.array(strings, pa.string()),
        pa.nulls(n, pa.int32()) if codes is None else pa.array(codes, pa.int32()),
        pa.nulls(n, pa.string()) if names is None else pa.array(names, pa.string()),
        pa.repeat(pa.scalar(False), n) if system is None else pa.array(system, pa.bool_()),
    )


def _timestamps(segments: list[Segment], items: list[TimedValue]) -> pa.Array:
    try:
        return pa.array([item.Timestamp for item in items], pa.string()).cast(TIMESTAMP_TYPE)
    except pa.ArrowInvalid:
        problems = {}
        for index, segment in enumerate(segments):
            raw = _first_unreadable([item.Timestamp for item in segment.items])
            if raw is not None:
                problems[index] = _timestamp_problem(raw)
        if not problems:
            raise
        raise TimestampError(problems) from None


def _first_unreadable(stamps: list[str]) -> str | None:
    """The first timestamp Arrow cannot cast, found by bisection (a few casts, never one per value)."""
    array = pa.array(stamps, pa.string())
    if _casts(array):
        return None
    good, bad = 0, len(stamps)  # array[:good] casts, array[:bad] does not
    while bad - good > 1:
        middle = (good + bad) // 2
        if _casts(array.slice(0, middle)):
            good = middle
        else:
            bad = middle
    return stamps[bad - 1]


def _casts(array: pa.Array) -> bool:
    try:
        array.cast(TIMESTAMP_TYPE)
    except pa.ArrowInvalid:
        return False
    return True


def _timestamp_problem(raw: str) -> str:
    try:
        time_ns(raw)
    except ValueError as exc:
        return str(exc)
    return f"timestamp {raw!r} cannot be read as a time"


def _quality(items: list[TimedValue], odd: list[int], is_system: pa.Array) -> tuple[pa.Array, list[pa.Array]]:
    """The good, questionable, substituted and annotated columns; every value that is not good or is
    questionable, substituted or annotated is among the positions ``odd``.

    Nearly every value is good and none of the other three: the columns are constants with the flags of
    the ``odd`` values put in place (building four columns from Python objects costs more than decoding).
    """
    n = len(items)
    if not odd:
        return pa.repeat(pa.scalar(True), n), [pa.repeat(pa.scalar(False), n)] * 3
    picked = [items[i] for i in odd]
    positions = np.array(odd, dtype=np.intp)
    good = _flag([item.Good for item in picked])
    if good.null_count:
        # A value without a Good flag is good unless it is a system state.
        good = pc.if_else(pc.is_null(good), pc.invert(is_system.take(positions)), good)
    flags = [
        _flag([item.Questionable for item in picked]).fill_null(False),
        _flag([item.Substituted for item in picked]).fill_null(False),
        _flag([item.Annotated for item in picked]).fill_null(False),
    ]
    return _scatter(True, n, positions, good), [_scatter(False, n, positions, flag) for flag in flags]


def _scatter(default: bool, n: int, positions: np.ndarray, values: pa.Array) -> pa.Array:
    """A bool column of ``n`` rows holding ``default`` but at ``positions``, which hold ``values``."""
    column = np.full(n, default)
    column[positions] = values.to_numpy(zero_copy_only=False)
    return pa.array(column)


def _odd_positions(segments: list[Segment]) -> list[int] | None:
    """The segments' ``odd`` positions among all their values, or None when a segment does not know its."""
    odd: list[int] = []
    offset = 0
    for segment in segments:
        if segment.odd is None:
            return None
        odd += [offset + i for i in segment.odd]
        offset += len(segment.items)
    return odd


def build_batch(
    segments: list[Segment], *, summary: bool = False, dictionary: bool = False
) -> pa.RecordBatch:
    """One record batch (``RECORDED_SCHEMA``, or ``SUMMARY_SCHEMA`` when ``summary``; their
    :func:`~osipi_dagster.contract.dictionary_encoded` form with ``dictionary``) from ``segments``.

    Raises :class:`TimestampError` naming every segment that holds a timestamp Arrow cannot read.
    """
    items: list[TimedValue] = []
    counts: list[int] = []
    for segment in segments:
        items.extend(segment.items)
        counts.append(len(segment.items))
    n = len(items)
    schema = batch_schema(summary=summary, dictionary=dictionary)
    if n == 0:
        return pa.RecordBatch.from_pylist([], schema=schema)
    timestamps = _timestamps(segments, items)
    raw = [item.Value for item in items]
    odd = _odd_positions(segments)
    if odd is None:
        odd = odd_values(items)
    value, string_value, state_code, state_name, is_system = _values(raw, odd)
    good, flags = _quality(items, odd, is_system)
    columns = [_repeat([s.web_id for s in segments], counts, dictionary)]
    if summary:
        columns.append(_repeat([s.summary_type for s in segments], counts, dictionary))
    columns += [timestamps, value, string_value, state_code, state_name, is_system, good, *flags]
    columns.append(_repeat([s.units or None for s in segments], counts, dictionary))
    return pa.RecordBatch.from_arrays(columns, schema=schema)
