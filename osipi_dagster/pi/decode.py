"""Decode PI Web API time-series bodies straight into Arrow.

msgspec decodes a body into typed structs (``gc=False``, so a million values do not wake the garbage
collector), the columns are gathered with list comprehensions, and the timestamps are parsed by one
vectorised Arrow cast that keeps PI's seven fractional digits. The common case, a page of plain numbers,
never runs a per-value Python branch; digital states, system states, strings and string-typed flags take a
slower path that only runs when such values are present.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from osipi_dagster.contract import RECORDED_SCHEMA, SUMMARY_SCHEMA, TIMESTAMP_TYPE
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

    Items: list[TimedValue] = []
    UnitsAbbreviation: str | None = None
    WebException: WebException | None = None
    Errors: list[Any] | None = None


class StreamValues(msgspec.Struct, gc=False):
    """One stream of ``/streamsets/recorded|interpolated|plot``."""

    WebId: str = ""
    Items: list[TimedValue] = []
    UnitsAbbreviation: str | None = None
    WebException: WebException | None = None
    Errors: list[Any] | None = None


class StreamValuesPage(msgspec.Struct, gc=False):
    Items: list[StreamValues] = []
    WebException: WebException | None = None


class StreamValue(msgspec.Struct, gc=False):
    """One stream of ``/streamsets/value|end``."""

    WebId: str = ""
    Value: TimedValue | None = None
    UnitsAbbreviation: str | None = None
    WebException: WebException | None = None
    Errors: list[Any] | None = None


class StreamValuePage(msgspec.Struct, gc=False):
    Items: list[StreamValue] = []
    WebException: WebException | None = None


class SummaryValue(msgspec.Struct, gc=False):
    Type: str
    Value: TimedValue


class SummaryValues(msgspec.Struct, gc=False):
    Items: list[SummaryValue] = []
    WebException: WebException | None = None


class StreamSummaries(msgspec.Struct, gc=False):
    WebId: str = ""
    Items: list[SummaryValue] = []
    WebException: WebException | None = None
    Errors: list[Any] | None = None


class StreamSummariesPage(msgspec.Struct, gc=False):
    Items: list[StreamSummaries] = []
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


def decode_batch(body: bytes) -> dict[str, SubResponse]:
    return decoder(dict[str, SubResponse]).decode(body)


def stream_problem(stream: Any) -> str | None:
    """The message of a stream-level ``Errors`` or ``WebException``, or None when the stream is fine."""
    if stream.WebException is not None:
        return "; ".join(error_messages({"Errors": stream.WebException.Errors or []})) or "WebException"
    if stream.Errors is not None:
        return "; ".join(error_messages({"Errors": stream.Errors})) or "Errors"
    return None


_get_errors = operator.attrgetter("Errors")


def first_error(items: list[TimedValue]) -> tuple[int, str] | None:
    """The index and message of the first value carrying ``Errors`` (PI's handled per-value error)."""
    if any(map(_get_errors, items)):
        index = next(i for i, item in enumerate(items) if item.Errors)
        return index, "; ".join(error_messages({"Errors": items[index].Errors})) or "per-value Errors"
    for index, item in enumerate(items):
        value = item.Value
        if type(value) is State and value.Errors is not None:
            return index, "; ".join(error_messages({"Errors": value.Errors})) or "per-value Errors"
    return None


@dataclass(frozen=True, slots=True)
class Segment:
    """Consecutive values of one stream to put in a batch (``summary_type`` only for summaries)."""

    web_id: str
    units: str | None
    items: list[TimedValue]
    summary_type: str | None = None


_TRUE = frozenset({"true", "True", "TRUE", "1"})


def _flag(raw: list[Any]) -> pa.Array:
    try:
        return pa.array(raw, pa.bool_())
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([v if v is None or type(v) is bool else v in _TRUE for v in raw], pa.bool_())


def _repeat(values: list[str | None], counts: list[int]) -> pa.Array:
    """``values[i]`` repeated ``counts[i]`` times, as one Arrow string column (no per-row Python)."""
    index = np.repeat(np.arange(len(values), dtype=np.int32), counts)
    return pa.array(values, pa.string()).take(pa.array(index))


def _values(raw: list[Any]) -> tuple[pa.Array, pa.Array, pa.Array, pa.Array, pa.Array]:
    """value, string_value, state_code, state_name, is_system for the raw ``Value`` fields."""
    n = len(raw)
    kinds = set(map(type, raw))
    if kinds <= {float}:
        return (
            pa.array(raw, pa.float64()),
            pa.nulls(n, pa.string()),
            pa.nulls(n, pa.int32()),
            pa.nulls(n, pa.string()),
            pa.repeat(pa.scalar(False), n),
        )
    numbers: list[float | None] = [None] * n
    strings: list[str | None] = [None] * n
    codes: list[int | None] = [None] * n
    names: list[str | None] = [None] * n
    system = [False] * n
    for i, value in enumerate(raw):
        kind = type(value)
        if kind is float:
            numbers[i] = value
        elif kind is State:
            codes[i] = value.Value
            names[i] = value.Name
            system[i] = value.IsSystem
        elif kind is str:
            strings[i] = value
        elif kind is bool:
            numbers[i] = 1.0 if value else 0.0
        elif kind is list:
            strings[i] = msgspec.json.encode(value).decode()
    return (
        pa.array(numbers, pa.float64()),
        pa.array(strings, pa.string()),
        pa.array(codes, pa.int32()),
        pa.array(names, pa.string()),
        pa.array(system, pa.bool_()),
    )


def build_batch(segments: list[Segment], *, summary: bool = False) -> pa.RecordBatch:
    """One record batch (``RECORDED_SCHEMA``, or ``SUMMARY_SCHEMA`` when ``summary``) from ``segments``."""
    items: list[TimedValue] = []
    counts: list[int] = []
    for segment in segments:
        items.extend(segment.items)
        counts.append(len(segment.items))
    n = len(items)
    schema = SUMMARY_SCHEMA if summary else RECORDED_SCHEMA
    if n == 0:
        return pa.RecordBatch.from_pylist([], schema=schema)
    timestamps = pa.array([item.Timestamp for item in items], pa.string()).cast(TIMESTAMP_TYPE)
    value, string_value, state_code, state_name, is_system = _values([item.Value for item in items])
    good = _flag([item.Good for item in items])
    if good.null_count:
        # A value without a Good flag is good unless it is a system state.
        good = pc.if_else(pc.is_null(good), pc.invert(is_system), good)
    flags = [
        _flag([getattr(item, name) for item in items]).fill_null(False)
        for name in ("Questionable", "Substituted", "Annotated")
    ]
    columns = [_repeat([s.web_id for s in segments], counts)]
    if summary:
        columns.append(_repeat([s.summary_type for s in segments], counts))
    columns += [timestamps, value, string_value, state_code, state_name, is_system, good, *flags]
    columns.append(_repeat([s.units or None for s in segments], counts))
    return pa.RecordBatch.from_arrays(columns, schema=schema)
