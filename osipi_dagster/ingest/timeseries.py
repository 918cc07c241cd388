"""Recorded values of one (UTC day, tag shard) partition into ``bronze.pi_timeseries``, exactly once.

* A closed day (it ended before the PI server's now) is read whole and replaces its whole slice.
* The open day is read incrementally: every point from its watermark minus an overlap window (values that
  reached PI late inside the overlap are picked up) up to now, and exactly that time range of the slice is
  replaced. One commit covers every point of the shard, from the earliest start any point needs, so a
  point without a watermark (new, or failed last time) makes the whole shard re-read from there: a re-read,
  never a gap or a duplicate.
* Windows are half-open, ``[start, end)``: PI's bounds are inclusive, so the read ends one 100 ns tick
  before ``end``, and a value stamped exactly ``end`` belongs to the next window.
* All or nothing: the batches stream into one Delta commit; if any point fails for good, the stream raises
  before the commit and nothing is written, so a partial partition never looks complete. Watermarks are
  written only after the data commit, so a crash between the two only causes a re-read.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import pyarrow as pa

from osipi_dagster.contract import TICK_NS, day_bounds, to_ns
from osipi_dagster.ingest.cancellation import run_interruptibly
from osipi_dagster.ingest.lateness import Lateness, LatenessProbe
from osipi_dagster.lake import (
    LakeTable,
    Watermark,
    WriteResult,
    merge_rows,
    read_watermarks,
    replace_slice,
    slice_row_count,
    write_watermarks,
)
from osipi_dagster.lake.schemas import DATA_LATENCY
from osipi_dagster.pi import PIWebAPIClient, StreamFailure, StreamRead
from osipi_dagster.pi.options import DEFAULT_READ, ReadOptions

DEFAULT_OVERLAP = timedelta(hours=1)
DEFAULT_SKEW_TOLERANCE = timedelta(minutes=5)


@dataclass(frozen=True)
class PartitionResult:
    """What one partition's ingestion read and wrote."""

    day: date
    shard: str
    points: int
    window_start: datetime | None
    window_end: datetime | None
    incremental: bool
    write: WriteResult | None
    requests: int = 0
    full_requests: int = 0  # requests whose answer was full (see osipi_dagster.pi.recorded.FULL_SHARE)
    duration_seconds: float = 0.0
    note: str = ""
    lateness: Lateness = field(default_factory=Lateness)
    # Per point, values stamped after the PI server's now + the tolerance (open day only): clock skew.
    future_values: dict[str, int] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return self.write.rows_written if self.write else 0


class PointReadError(Exception):
    """Some points failed for good; nothing of the partition was committed."""

    def __init__(self, day: date, shard: str, failures: Sequence[StreamFailure]) -> None:
        self.failures = list(failures)
        shown = "; ".join(f"{f.web_id}: {f.status or 'no answer'} {f.message}" for f in self.failures[:5])
        more = f" (and {len(self.failures) - 5} more)" if len(self.failures) > 5 else ""
        super().__init__(
            f"{len(self.failures)} point(s) of {day.isoformat()}|{shard} could not be read: {shown}{more}. "
            "Nothing was written for this partition; re-run it once PI answers for these points."
        )


class EmptyShardError(RuntimeError):
    """The catalog lists no point of a shard whose slice holds rows; nothing was replaced."""


def ingest_partition(
    client: PIWebAPIClient,
    *,
    timeseries: LakeTable,
    watermarks: LakeTable,
    web_ids: Sequence[str],
    day: date,
    shard: str,
    now: datetime,
    overlap: timedelta = DEFAULT_OVERLAP,
    settings: ReadOptions = DEFAULT_READ,
    run_id: str | None = None,
    kept_web_ids: Collection[str] = (),
    prune: bool = False,
    reread_from: datetime | None = None,
    points_only: bool = False,
    skew_tolerance: timedelta | None = DEFAULT_SKEW_TOLERANCE,
    future_points: Collection[str] = (),
    latency: LakeTable | None = None,
) -> PartitionResult:
    """Read the partition's points from PI and replace their slice; raise ``PointReadError`` on failures.

    An interrupt (SIGINT, or Dagster's run termination) stops the read within seconds and nothing is
    committed (see :mod:`osipi_dagster.ingest.cancellation`).

    Args:
        web_ids: the shard's points to read (the catalog's active points).
        kept_web_ids: points whose stored rows the replacement keeps (the catalog's deleted points: their
            history cannot be read again). Ignored with ``prune``.
        prune: replace the whole slice, so the rows of every point not in ``web_ids`` are deleted too; only
            when the user asked for it.
        reread_from: on the open day, read every point from this time at the latest (PI changed values
            there: an edit, a delete or a late value older than the watermarks minus the overlap).
        points_only: replace only the rows of ``web_ids`` (a point's history, read when it enters the
            catalog); every other row of the slice stays.
        skew_tolerance: on the open day, count the values stamped after now + this (the source's clock is
            off: never read as if they were in the past); None: do not count. ``future_points`` (PI points
            that hold future data by design) are not counted.
        latency: ``gold.pi_data_latency``, to record the run's late values, lateness and clock skew in.

    Raises:
        PointReadError: some points failed for good; nothing was written.
        EmptyShardError: ``web_ids`` is empty but the slice holds rows of points not kept, and ``prune``
            is off: an empty catalog must not empty the lake.
    """
    if overlap < timedelta(0):
        # A negative overlap would start after the watermarks and skip the values in between for good.
        raise ValueError(f"overlap must not be negative, got {overlap}: use 0 or more (default one hour).")
    started = time.perf_counter()
    day_start, day_end = day_bounds(day)
    if now <= day_start:
        return PartitionResult(
            day, shard, len(web_ids), None, None, False, None, note="the day has not begun"
        )
    kept = () if prune or points_only else kept_web_ids
    if points_only and not web_ids:
        return PartitionResult(
            day, shard, 0, None, None, False, None, note="none of the points is in this shard"
        )
    if not web_ids and not prune:
        stored = slice_row_count(timeseries, day, shard, kept_web_ids=kept)
        if stored:
            raise EmptyShardError(
                f"The catalog lists no active point in shard {shard}, but {timeseries} holds {stored} "
                f"values of {day.isoformat()}|{shard} from points it does not keep as deleted: nothing was "
                "replaced. "
                "Materialize pi_points again (a catalog emptied by a filter or permission change, or a "
                "changed shard count, can cause this) and re-run; to delete these rows on purpose, run with "
                "prune_absent_points: true."
            )
        return PartitionResult(day, shard, 0, None, None, False, None, note="no active point in this shard")
    incremental = now < day_end
    end = now if incremental else day_end
    known = read_watermarks(watermarks, shard)
    start = _incremental_start(known, web_ids, day_start, end, overlap) if incremental else day_start
    if reread_from is not None:
        start = max(day_start, min(start, reread_from))
    if start >= end:
        return PartitionResult(day, shard, len(web_ids), start, end, True, None, note="nothing new to read")

    def read_and_replace(cancel: threading.Event) -> PartitionResult:
        # One commit for the window of every point, then the watermarks (see the module docstring).
        # The stored values of the window's already-read part, loaded before the write replaces them.
        wanted = set(web_ids)
        probe = LatenessProbe(
            timeseries, day, shard, {w: m.read_until for w, m in known.items() if w in wanted}, start
        )
        read: StreamRead | None = None
        if web_ids:
            read = client.read_recorded(
                list(web_ids),
                start,
                to_ns(end) - TICK_NS,
                mode=settings.mode,
                page_size=settings.page_size,
                values_per_request=settings.values_per_request,
                streams_per_request=settings.streams_per_request,
                max_url_length=settings.max_url_length,
                concurrency=settings.concurrency,
                cancel=cancel,
                expected_counts=_expected_counts(known, web_ids, start, end),
                dictionary=True,  # for the Parquet writer (lake/timeseries.py)
            )
        write = replace_slice(
            timeseries,
            _checked(read, probe, day, shard),
            partition_date=day,
            tag_shard=shard,
            time_range=(start, end) if incremental else None,
            web_ids=web_ids if points_only else None,
            kept_web_ids=kept,
        )
        if read is not None:
            write_watermarks(
                watermarks,
                shard,
                [
                    Watermark(
                        web_id,
                        read_until=end,
                        window_start=start,
                        values_read=read.values_read[web_id],
                        run_id=run_id,
                    )
                    for web_id in web_ids
                ],
            )
        future = {}
        if incremental and skew_tolerance is not None:
            by_design = set(future_points)
            future = _future_values(client, [w for w in web_ids if w not in by_design], now, skew_tolerance)
        result = PartitionResult(
            day,
            shard,
            len(web_ids),
            start,
            end,
            incremental,
            write,
            requests=read.requests if read else 0,
            full_requests=read.full_requests if read else 0,
            duration_seconds=time.perf_counter() - started,
            lateness=probe.result(now),
            future_values=future,
        )
        if latency is not None:
            record_latency(latency, result, run_id or "", now)
        return result

    return run_interruptibly(read_and_replace)


def record_latency(table: LakeTable, result: PartitionResult, run_id: str, read_at: datetime) -> None:
    """Upsert one partition run's late values, lateness and clock skew into ``gold.pi_data_latency``."""
    late = result.lateness
    row = {
        "partition_date": result.day,
        "tag_shard": result.shard,
        "run_id": run_id,
        "read_at": read_at,
        "window_start": result.window_start,
        "window_end": result.window_end,
        "late_values": late.late_values,
        "removed_values": late.removed_values,
        "lateness_exact": late.exact,
        "lateness_p50_s": late.p50_s,
        "lateness_p95_s": late.p95_s,
        "lateness_p99_s": late.p99_s,
        "lateness_max_s": late.max_s,
        "future_values": sum(result.future_values.values()),
        "future_points": len(result.future_values),
        "ingested_at": read_at,
    }
    merge_rows(table, pa.Table.from_pylist([row], schema=DATA_LATENCY.schema))


def _future_values(
    client: PIWebAPIClient, web_ids: Sequence[str], now: datetime, tolerance: timedelta
) -> dict[str, int]:
    """Per point, the good values PI holds after ``now + tolerance`` (up to a day later)."""
    if not web_ids:
        return {}
    read = client.read_summary(
        list(web_ids), now + tolerance, now + timedelta(days=1), ["Count"], calculation_basis="EventWeighted"
    )
    counts = read.read_all().select(["web_id", "value"]).to_pylist()
    return {row["web_id"]: int(row["value"]) for row in counts if row["value"]}


def _checked(
    read: StreamRead | None, probe: LatenessProbe, day: date, shard: str
) -> Iterator[pa.RecordBatch]:
    """The read's batches; raises before the stream ends (so before the commit) if any point failed (a
    cancelled read raises by itself, within a fraction of a second)."""
    if read is None:
        return
    for batch in read:
        probe.add(batch)
        yield batch
    if read.failures:
        raise PointReadError(day, shard, read.failures)


def _expected_counts(
    known: Mapping[str, Watermark], web_ids: Sequence[str], start: datetime, end: datetime
) -> dict[str, float]:
    """Each point's expected values in ``[start, end)``, at the density of the window it was last read
    in (the client plans its requests from them; a wrong guess costs requests, never values)."""
    expected = {}
    window = (end - start).total_seconds()
    for web_id in web_ids:
        mark = known.get(web_id)
        if mark is None or mark.window_start is None or mark.read_until <= mark.window_start:
            continue
        expected[web_id] = mark.values_read * window / (mark.read_until - mark.window_start).total_seconds()
    return expected


def _incremental_start(
    known: Mapping[str, Watermark],
    web_ids: Sequence[str],
    day_start: datetime,
    end: datetime,
    overlap: timedelta,
) -> datetime:
    """The earliest time any point of the shard must be read from on the open day."""
    starts = [
        max(day_start, min(known[w].read_until, end) - overlap) if w in known else day_start for w in web_ids
    ]
    return min(starts, default=max(day_start, end - overlap))
