"""``bronze.pi_event_frames``: AF event frames upserted by WebId.

A frame is read again on every run while it is open (and whenever it overlaps a re-materialized day), so
the table is written with a MERGE by WebId: a frame that was open and later closes, is acknowledged or
gets new attribute values is updated in place, never duplicated.

Open frames: AF's "no end time" is AFTime.MaxValue, serialized as ``9999-12-31T23:59:59Z``. The table
stores it as a null ``end_time`` (and a null ``duration_seconds``): any end time in the year 9999 is
turned into null on write, so readers test ``end_time IS NULL`` and durations never read 8,000 years.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc

from osipi_dagster.lake.merge import MergeResult, merge_rows
from osipi_dagster.lake.schemas import EVENT_FRAMES, UTC_US
from osipi_dagster.lake.tables import LakeTable, conform, require_utc, utc_now, without_columns

_COMPUTED = ("duration_seconds", "partition_date", "ingested_at")
# The columns callers provide: every column of the table except those computed on write.
EVENT_FRAME_INPUT_SCHEMA = without_columns(EVENT_FRAMES.schema, _COMPUTED)
# Any end time from here on is AF's "open" sentinel (AFTime.MaxValue is 9999-12-31T23:59:59).
_OPEN_END = pa.scalar(datetime(9999, 1, 1, tzinfo=UTC), UTC_US)


def merge_event_frames(
    table: LakeTable, frames: pa.Table | pa.RecordBatch, *, ingested_at: datetime | None = None
) -> MergeResult:
    """Upsert event frames (``EVENT_FRAME_INPUT_SCHEMA``) into ``bronze.pi_event_frames`` by WebId.

    ``end_time`` may be null or AF's 9999-12-31 for open frames; both are stored as null.
    ``duration_seconds``, ``partition_date`` (the UTC date of ``start_time``) and ``ingested_at`` are
    computed here.
    """
    rows = conform(pa.table(frames), EVENT_FRAME_INPUT_SCHEMA, what=f"Event frames for {table}")
    start, end = rows.column("start_time"), rows.column("end_time")
    end = pc.if_else(pc.greater_equal(end, _OPEN_END), pa.scalar(None, UTC_US), end)
    micros = pc.subtract(end.cast(pa.int64()), start.cast(pa.int64()))
    computed = {
        "end_time": end,
        "duration_seconds": pc.divide(micros.cast(pa.float64()), 1_000_000.0),
        "partition_date": start.cast(pa.date32()),
        "ingested_at": pa.repeat(
            pa.scalar(require_utc(ingested_at or utc_now(), what="ingested_at"), UTC_US), rows.num_rows
        ),
    }
    columns = [
        computed[name] if name in computed else rows.column(name) for name in EVENT_FRAMES.schema.names
    ]
    return merge_rows(
        table, pa.Table.from_arrays(columns, names=EVENT_FRAMES.schema.names), key=EVENT_FRAMES.key
    )
