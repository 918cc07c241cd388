"""``checkpoints.pi_watermarks``: how far each point of a shard has been read into the time series.

A watermark is the end of the window a run read for the point (exclusive), not the point's last value:
a point that changes once an hour must not be re-read from its last value on every run. The caller
writes watermarks only after the data they cover is committed (:func:`replace_slice` returned), so a
crash between the two commits only causes a re-read, never a gap. A watermark never moves backwards:
re-materializing an older day does not send the open day's reader back in time.

Watermarks are keyed by (``tag_shard``, ``web_id``) and the table is partitioned by shard, so runs of
different shards upsert disjoint partitions and never conflict. A point moved to another shard (the shard
count changed) starts without a watermark there and is read from the start of the day: a re-read, never
a gap.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa
import pyarrow.dataset as ds

from osipi_dagster.lake.merge import MergeResult, merge_rows
from osipi_dagster.lake.schemas import WATERMARKS
from osipi_dagster.lake.tables import LakeTable, require_utc, utc_now


@dataclass(frozen=True)
class Watermark:
    """Where a point was last read up to.

    Attributes:
        web_id: the point.
        read_until: the end (exclusive) of the window read, timezone-aware.
        window_start: the start of that window, for diagnostics.
        values_read: how many values that window held.
        run_id: the run that read it (the Dagster run id).
        updated_at: when the watermark was written; set by :func:`write_watermarks`.
    """

    web_id: str
    read_until: datetime
    window_start: datetime | None = None
    values_read: int = 0
    run_id: str | None = None
    updated_at: datetime | None = None


def write_watermarks(
    table: LakeTable, tag_shard: str, watermarks: Iterable[Watermark], *, updated_at: datetime | None = None
) -> MergeResult:
    """Upsert the watermarks of points of ``tag_shard``; a stored watermark only ever moves forward.

    Call it only after the data commit the watermarks describe. ``read_until`` is stored to the
    microsecond, truncated: a watermark a few hundred nanoseconds early only re-reads those nanoseconds.
    """
    stamp = require_utc(updated_at or utc_now(), what="updated_at")
    rows = pa.Table.from_pylist(
        [
            {
                "web_id": entry.web_id,
                "tag_shard": tag_shard,
                "read_until": require_utc(entry.read_until, what=f"read_until of {entry.web_id}"),
                "window_start": entry.window_start and require_utc(entry.window_start, what="window_start"),
                "values_read": entry.values_read,
                "run_id": entry.run_id,
                "updated_at": stamp,
            }
            for entry in watermarks
        ],
        schema=WATERMARKS.schema,
    )
    return merge_rows(
        table,
        rows,
        target_partition={"tag_shard": tag_shard},
        update_condition="s.read_until >= t.read_until",
    )


def read_watermarks(table: LakeTable, tag_shard: str) -> dict[str, Watermark]:
    """The watermarks of ``tag_shard`` by point WebId; empty if nothing was written yet."""
    if not table.exists():
        return {}
    rows = table.load().to_pyarrow_table(filters=ds.field("tag_shard") == tag_shard)
    return {
        row["web_id"]: Watermark(
            web_id=row["web_id"],
            read_until=row["read_until"],
            window_start=row["window_start"],
            values_read=row["values_read"],
            run_id=row["run_id"],
            updated_at=row["updated_at"],
        )
        for row in rows.to_pylist()
    }
