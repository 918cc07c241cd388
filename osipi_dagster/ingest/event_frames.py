"""AF event frames active during one UTC day, upserted into ``bronze.pi_event_frames`` by WebId.

One run reads, for every AF database of every asset server (or a configured one), the frames whose time
range overlaps ``[day 00:00, next day 00:00)`` clipped to the PI server's now (``searchMode=Overlapped``,
paged, ``searchFullHierarchy=true`` so child frames such as batch phases come too), with their attribute
values as a text map, and MERGEs them in one commit. Every run of a day reads all the frames overlapping it
again (runs of today keep re-reading the frames still open), so a frame that closes, is acknowledged or
whose attribute values change is updated in place, never duplicated, and a frame back-dated into an old
day is picked up when that day is materialized again.

Attribute values: PI Web API has no call listing the attributes of many event frames, so each frame's
attributes are listed once, ``concurrency`` requests in flight, then all values are read with bulk
stream-set ``value`` requests (about 40 attributes per request, bounded by the URL length). Without a
``time``, an event frame attribute is read in its frame's time context: the value at the frame's end, or
now while it is open, as AF shows it. Measured on the mock (2,000 points, one day: 884 frames, 2,034
attributes): 940 requests; 1.9 s end to end on loopback, and with 10 ms added to every request 7.3 s with
2 requests in flight, 4.6 s with 4 and 3.4 s with 8. Reading ``/streamsets/{frame}/value`` (by parent)
instead would replace the listing and the bulk reads with one request per frame: about the same time
(measured within 10 %), and not a call the client offers.

A failed read (search, attribute listing or any attribute value) raises :class:`EventFrameReadError` before
anything is written, so a day is never left half-merged.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
import pyarrow.dataset as ds

from osipi_dagster.contract import TICK_NS, day_bounds, format_ns, from_ns, to_ns
from osipi_dagster.lake import EVENT_FRAME_INPUT_SCHEMA, LakeTable, MergeResult, merge_event_frames
from osipi_dagster.pi import AssetDatabase, Attribute, EventFrame, PIWebAPIClient, PIWebAPIError

# Requests in flight while listing attributes and reading their values: enough to hide the round trips
# of one request per frame without loading PI Web API much.
DEFAULT_CONCURRENCY = 4
# AF value types whose numbers are whole (the client reads every number as a float64).
_INTEGER_TYPES = frozenset({"Byte", "Int16", "Int32", "Int64", "UInt16", "UInt32", "UInt64"})
# How many failed attribute values an error message names.
_FAILURES_SHOWN = 5
_NOTHING_WRITTEN = "Nothing was written; re-run the partition."


class EventFrameReadError(RuntimeError):
    """Event frames or their attribute values could not be read completely; nothing was written."""


@dataclass(frozen=True)
class EventFrameResult:
    """What one run read from PI and merged into ``bronze.pi_event_frames``.

    Attributes:
        window_start: the start of the day searched (inclusive).
        window_end: the end of the window searched (exclusive): the next midnight, or the server's now.
        databases: the paths of the AF databases searched.
        frames_read: the distinct frames overlapping the window, child frames included.
        frames_open: how many of them are still open (stored with a null ``end_time``).
        attribute_values: the attribute values read.
        requests: the HTTP requests sent to PI Web API, retries included.
        merge: what the MERGE committed.
        duration_seconds: the wall time of the whole run.
    """

    window_start: datetime
    window_end: datetime
    databases: tuple[str, ...]
    frames_read: int
    frames_open: int
    attribute_values: int
    requests: int
    merge: MergeResult
    duration_seconds: float

    @property
    def frames_closed(self) -> int:
        return self.frames_read - self.frames_open

    @property
    def rows_inserted(self) -> int:
        return self.merge.rows_inserted

    @property
    def rows_updated(self) -> int:
        return self.merge.rows_updated

    @property
    def table_version(self) -> int:
        return self.merge.version


def ingest_event_frames(
    client: PIWebAPIClient,
    table: LakeTable,
    *,
    day: date,
    now: datetime,
    asset_server: str | None = None,
    database: str | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    page_size: int = 1000,
) -> EventFrameResult:
    """Merge the event frames overlapping the UTC ``day`` (up to ``now``) into ``table`` in one commit.

    Args:
        day: the UTC day whose frames are read.
        now: the PI server's now (timezone-aware; see :func:`~osipi_dagster.ingest.server_clock.server_now`):
            the window never reaches past it, so a skewed local clock never asks for the future.
        asset_server: the name of the only AF server to read (case-insensitive); default: every one.
        database: the name of the only AF database to read (case-insensitive); default: every one.
        concurrency: requests in flight while reading attributes and their values.
        page_size: event frames asked per search request.

    Raises:
        EventFrameReadError: a search, an attribute listing or an attribute value failed; nothing was
            written.
        LookupError: ``asset_server`` or ``database`` names nothing PI Web API knows.
    """
    started = time.perf_counter()
    requests_before = client.requests_sent
    window_start, window_end = day_window(day, now)
    try:
        databases = _databases(client, asset_server, database)
        frames = _search(client, databases, window_start, window_end, page_size)
        attributes = _attribute_values(client, frames, concurrency)
    except PIWebAPIError as exc:
        raise EventFrameReadError(
            f"Reading the event frames active from {window_start:%Y-%m-%d %H:%M:%S} to "
            f"{window_end:%Y-%m-%d %H:%M:%S} UTC failed: {exc}. {_NOTHING_WRITTEN}"
        ) from exc
    merge = merge_event_frames(table, _frame_table(frames, attributes))
    return EventFrameResult(
        window_start=window_start,
        window_end=window_end,
        databases=tuple(db.path for db in databases),
        frames_read=len(frames),
        frames_open=sum(frame.is_open for frame in frames),
        attribute_values=sum(len(values) for values in attributes),
        requests=client.requests_sent - requests_before,
        merge=merge,
        duration_seconds=time.perf_counter() - started,
    )


def day_window(day: date, now: datetime) -> tuple[datetime, datetime]:
    """``[day 00:00 UTC, next day 00:00 UTC)`` with its end clipped to ``now``; empty for a future day."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"now must be a timezone-aware datetime (e.g. the PI server's now); got {now!r}")
    start, day_end = day_bounds(day)
    end = min(day_end, now.astimezone(UTC))
    return start, max(start, end)


def _databases(client: PIWebAPIClient, asset_server: str | None, database: str | None) -> list[AssetDatabase]:
    """The AF databases to search: every one, or those the configured names select."""
    servers = [s for s in client.asset_servers() if _same_name(s.name, asset_server)]
    if asset_server is not None and not servers:
        raise LookupError(f"PI Web API at {client.base_url} knows no AF server named {asset_server!r}.")
    found = [db for s in servers for db in client.asset_databases(s.web_id) if _same_name(db.name, database)]
    if database is not None and not found:
        raise LookupError(
            f"No AF database named {database!r} on "
            f"{', '.join(s.name for s in servers) or 'any AF server'} at {client.base_url}."
        )
    return found


def _same_name(name: str, wanted: str | None) -> bool:
    # AF names are case-insensitive.
    return wanted is None or name.casefold() == wanted.casefold()


def _search(
    client: PIWebAPIClient, databases: Sequence[AssetDatabase], start: datetime, end: datetime, page_size: int
) -> list[EventFrame]:
    """Every frame active in ``[start, end)``, once each (a frame can show up on two pages if frames are
    added while the search pages through)."""
    if end <= start:
        return []
    # PI's search bounds are inclusive: stop one 100 ns tick before the exclusive end, so a frame that
    # starts exactly at the next midnight belongs to the next day only.
    last_tick = format_ns(to_ns(end) - TICK_NS)
    frames: dict[str, EventFrame] = {}
    for db in databases:
        for frame in client.event_frames(
            db.web_id,
            start,
            last_tick,
            search_mode="Overlapped",
            search_full_hierarchy=True,
            page_size=page_size,
        ):
            frames[frame.web_id] = frame
    return list(frames.values())


def _attribute_values(
    client: PIWebAPIClient, frames: Sequence[EventFrame], concurrency: int
) -> list[dict[str, str | None]]:
    """Each frame's attribute values as text, keyed by the attribute's path below the frame."""
    with ThreadPoolExecutor(concurrency, thread_name_prefix="event-frame-attributes") as pool:
        listings = list(pool.map(client.event_frame_attributes, [f.web_id for f in frames]))
    attributes = [attribute for listing in listings for attribute in listing]
    values = _read_values(client, attributes, concurrency)
    return [{_key(a): values.get(a.web_id) for a in listing} for listing in listings]


def _read_values(
    client: PIWebAPIClient, attributes: Sequence[Attribute], concurrency: int
) -> dict[str, str | None]:
    """The value of every attribute (in its frame's time context) as text, by attribute WebId."""
    if not attributes:
        return {}
    kinds = {a.web_id: a.type for a in attributes}
    read = client.read_value(list(kinds), concurrency=concurrency)
    rows = read.read_all().select(["web_id", "value", "string_value", "state_name"]).to_pylist()
    if read.failures:
        paths = {a.web_id: a.path for a in attributes}
        shown = "; ".join(
            f"{paths[failure.web_id]}: {failure.message}" for failure in read.failures[:_FAILURES_SHOWN]
        )
        raise EventFrameReadError(
            f"{len(read.failures)} of {len(attributes)} event frame attribute values could not be read "
            f"(e.g. {shown}). {_NOTHING_WRITTEN}"
        )
    return {row["web_id"]: _as_text(row, kinds[row["web_id"]]) for row in rows}


def _key(attribute: Attribute) -> str:
    """The attribute's path below its frame (``Capacity|Minimum`` for a child attribute): unlike its name,
    unique among the frame's attributes."""
    _, separator, below = attribute.path.partition("|")
    return below if separator else attribute.name


def _as_text(value: dict, kind: str) -> str | None:
    """A value as AF shows it: state names for digital and system states, ``True``/``False`` for
    Booleans, whole numbers without a decimal point, other numbers in their shortest exact form."""
    if value["state_name"] is not None:
        return value["state_name"]
    if value["string_value"] is not None:
        return value["string_value"]
    number = value["value"]
    if number is None:
        return None
    if kind == "Boolean":
        return str(bool(number))
    if kind in _INTEGER_TYPES and number.is_integer():
        return str(int(number))
    return repr(number)


def _frame_table(frames: Sequence[EventFrame], attributes: Sequence[dict[str, str | None]]) -> pa.Table:
    """The frames as rows of ``EVENT_FRAME_INPUT_SCHEMA``."""
    return pa.Table.from_pylist(
        [_row(frame, values) for frame, values in zip(frames, attributes, strict=True)],
        schema=EVENT_FRAME_INPUT_SCHEMA,
    )


def _row(frame: EventFrame, attributes: dict[str, str | None]) -> dict[str, object]:
    return {
        "web_id": frame.web_id,
        "name": frame.name,
        "description": frame.description or None,
        "path": frame.path,
        "template_name": frame.template_name or None,
        "category_names": frame.category_names,
        "severity": frame.severity,
        "start_time": _utc(frame.start_time),
        "end_time": _utc(frame.end_time),
        "primary_element_web_id": frame.primary_element_web_id,
        "referenced_element_web_ids": frame.ref_element_web_ids,
        "parent_web_id": frame.parent_web_id,
        "can_be_acknowledged": frame.can_be_acknowledged,
        "is_acknowledged": frame.is_acknowledged,
        # PI sends an empty AcknowledgedBy until someone acknowledges the frame.
        "acknowledged_by": frame.acknowledged_by or None,
        "acknowledged_date": _utc(frame.acknowledged_date),
        "attributes": list(attributes.items()),
    }


def _utc(text: str | None) -> datetime | None:
    """A PI time string as a UTC datetime, floored to the microsecond Delta stores (PI keeps 100 ns)."""
    if not text:
        return None
    return from_ns(to_ns(text))


# The fields of a frame that PI changes after it starts; attribute values are not compared (reading them
# would cost one request per frame): a frame whose only change is an attribute value is picked up when its
# day is materialized again (the close-day run, a backfill).
_COMPARED = (
    "name",
    "description",
    "template_name",
    "category_names",
    "severity",
    "start_time",
    "end_time",
    "can_be_acknowledged",
    "is_acknowledged",
    "acknowledged_by",
    "acknowledged_date",
)


def stale_event_frame_days(
    client: PIWebAPIClient,
    table: LakeTable,
    *,
    now: datetime,
    lookback: timedelta,
    first_day: date,
    page_size: int = 1000,
) -> set[date]:
    """The UTC days (of their start) of the frames active in ``[now - lookback, now)`` that the lake lacks
    or holds in another state: frames that opened, closed, were acknowledged or changed, and frames back-dated
    into the window. Days before ``first_day`` (the first partition) are left out."""
    start = max(now - lookback, day_bounds(first_day)[0])
    frames = _search(client, _databases(client, None, None), start, now, page_size)
    stored = {}
    if table.exists():
        rows = table.load().to_pyarrow_table(
            columns=["web_id", *_COMPARED],
            filters=ds.field("partition_date") >= (start - timedelta(days=1)).date(),
        )
        stored = {row["web_id"]: row for row in rows.to_pylist()}
    days = set()
    for frame in frames:
        now_row = _row(frame, {})
        before = stored.get(frame.web_id)
        if before is None or any(_normal(before[name]) != _normal(now_row[name]) for name in _COMPARED):
            days.add(now_row["start_time"].date())
    return {day for day in days if day >= first_day}


def _normal(value: object) -> object:
    # Lists compare by content; end times are stored open as null either way.
    return tuple(value) if isinstance(value, list) else value
