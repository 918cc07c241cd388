"""The live stream: PI channels into ``bronze.pi_timeseries_live`` in micro-batches, exactly once
(docs/STREAMING.md).

:class:`LiveStream` follows the points over channels (``pi/channels.py``) and buffers what arrives. It
commits the buffer every ``commit_seconds``, or sooner once it holds ``commit_values`` values, as one
micro-batch numbered after the last one the table holds for its ``app_id`` (``lake/live.py``: the number is
committed with the rows, so a batch is never committed twice and a restart continues the numbering).

**Gaps.** Channels have no resume position. Whenever a channel opens (at start, after a restart, after a
lost connection) the stream reads its points' recorded values from the latest value committed for them
minus ``lookback_s`` (late values arrive stamped in the past, and a crash loses what was buffered) up to
now, and commits them with what the channel sends. Rows whose identity the table already holds are dropped
(the reads overlap the channel and what was committed before), so each value is committed once. While such
a read is running no batch is committed, so that what the table holds of a channel's points is complete up
to their latest committed value (late values aside, within ``lookback_s``): a safe place to resume from
after a crash at any moment.

**Each value once.** A value is its point, exact timestamp, value and flags (``lake.live.IDENTITY``; values at
one timestamp that differ are all kept, two that are the same are one row: a channel cannot tell the second
from a message sent twice; the batch table holds both). Before a commit the stream drops rows identical to an
earlier row of the batch or to a row it committed in the last ``RECENT_S`` seconds (a gap read overlapping the
channel, a message sent twice); a channel value stamped at or before its point's last committed value that
those do not know (a restarted channel's initial values, a value sent again later) is looked up in the table
(the channel's new values, stamped after their point's last one, never are).

**Back-pressure.** The values the stream holds (its buffer, the micro-batch being committed, and what the
channels received but the stream has not taken yet) are bounded by ``max_buffered_values``: when they reach
it (commits fall behind: slow storage, a compaction, a burst, more points than the machine sustains), the
stream stops reading from the channels (:meth:`ChannelFollower.pause`: the sockets stay open and TCP flow
control makes PI wait; nothing is dropped) and commits without waiting for ``commit_seconds``; reading
resumes as soon as a commit brought them below the bound. Each channel may still deliver the message it
was receiving. A gap read's values are added whole (at most the points' values over the lookback and the
outage) and pause the channels until they are committed. Each pause is logged when it begins and ends, and
each commit reports how many pauses began and how long reading was paused since the previous commit
(``CommitReport.paused``, ``paused_s``, and the commit's metadata). A channel PI closes because it was
paused too long is reopened and its gap read like any lost channel.

**Files.** Each micro-batch is a file; every ``compact_every`` batches the days written since are compacted
(``lake.live.compact_days``) in a thread of their own while commits go on, so that a commit's cost (delta-rs
handles every file of the table on each one) stays flat over hours.

What the live table cannot hold: deletions (channels do not report them) and edits beyond ``lookback_s``
of a gap (the edited value arrives as a new row ``Substituted``, next to the value it replaced). The
closed-day batch run writes the day from PI's archive, and the query surface (``lake.live.read_values``)
prefers it for closed days.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable

from osipi_dagster.contract import RECORDED_SCHEMA
from osipi_dagster.lake.live import (
    IDENTITY_SCHEMA,
    STREAM_ROWS_SCHEMA,
    append_batch,
    committed_version,
    compact_days,
    identities,
    identity_of,
    lake_rows,
    last_timestamps,
    stream_commits,
    unseen,
    with_identity,
)
from osipi_dagster.lake.schemas import UTC_NS
from osipi_dagster.lake.tables import LakeTable, ensure_table
from osipi_dagster.pi import PIWebAPIClient
from osipi_dagster.pi.channels import (
    ChannelEvent,
    ChannelFollower,
    ChannelLost,
    ChannelOpened,
    ChannelOptions,
    ChannelValues,
)

log = logging.getLogger("osipi_dagster.stream")

NS = 1_000_000_000
RESUME_LOOKBACKS = 2  # a restart looks for each point's last value this many lookbacks before the last commit
RESUME_COMMITS = 20
RECENT_S = 120
GAP_RETRY_S = 1.0
PERCENTILES = (("p50", 50), ("p95", 95), ("p99", 99), ("max", 100))


@dataclass(frozen=True)
class StreamOptions:
    """How the stream buffers, commits and fills gaps (settings: ``OSIPI_STREAM_*``)."""

    app_id: str = "osipi-stream"
    commit_seconds: float = 1.0
    commit_values: int = 100_000
    lookback_s: float = 600.0
    compact_every: int = 200
    max_buffered_values: int = 400_000
    channel: ChannelOptions = field(default_factory=ChannelOptions)

    def __post_init__(self) -> None:
        if self.max_buffered_values < 1:
            raise ValueError(
                f"StreamOptions.max_buffered_values must be at least 1 (got {self.max_buffered_values})"
            )


@dataclass(frozen=True)
class CommitReport:
    """One committed micro-batch: what it held and how late its values were."""

    version: int
    rows: int
    streamed_rows: int  # received over a channel (the rest filled gaps)
    duplicates: int  # dropped: the table (or the batch) held them already
    committed_ns: int
    latency_s: dict[str, float]  # p50/p95/p99/max of commit time - value timestamp, channel values only
    commit_s: float  # wall time from taking the buffer to the commit (deduplication, rows, Delta)
    channels_open: int
    buffered_after: int
    paused: int = 0  # pauses of reading from the channels (back-pressure) begun since the previous commit
    paused_s: float = 0.0  # seconds reading was paused since the previous commit


class LiveStream:
    """Follows ``web_ids`` of ``client`` into ``table`` until :meth:`stop` (see the module docstring)."""

    def __init__(
        self,
        client: PIWebAPIClient,
        table: LakeTable,
        web_ids: Sequence[str],
        options: StreamOptions | None = None,
        on_commit: Callable[[CommitReport], None] | None = None,
    ) -> None:
        self.client = client
        self.table = table
        self.web_ids = list(web_ids)
        self.options = options or StreamOptions()
        self.on_commit = on_commit
        self._buffer: list[pa.RecordBatch] = []
        self._buffered = 0
        self._in_commit = 0  # values of the micro-batch being committed
        self._follower: ChannelFollower | None = None
        self._pauses = _Pauses()
        self._gap_reads: set[asyncio.Task[None]] = set()
        self._open: set[int] = set()
        self._stopping = asyncio.Event()
        self._latest = _LATEST_SCHEMA.empty_table()  # each point's last committed timestamp_ns
        self._latest_since_ns = 0  # _latest knows every point with a committed value stamped from then on
        self._recent: deque[tuple[int, pa.Table]] = deque()  # (commit time, identities) of recent commits
        self._delta_table: DeltaTable | None = None
        self._committing: asyncio.Future[None] | None = None
        self._version = 0
        self._days_written: set[date] = set()  # partitions written since the last compaction
        self._since_compaction = 0
        self._compacting: asyncio.Future[None] | None = None

    def stop(self) -> None:
        """Commit what is buffered and return from :meth:`run` (call from the loop, e.g. a signal handler)."""
        self._stopping.set()

    async def run(self) -> None:
        """Stream until :meth:`stop`; the buffer is committed before returning (unless a gap read was still
        running: its channel's values are then read again at the next start)."""
        await asyncio.to_thread(self._resume)
        follower = ChannelFollower(self.client, self.web_ids, self.options.channel, on_queued=self._regulate)
        self._follower = follower
        follower.start()
        committer = asyncio.create_task(self._commit_loop())
        stopping = asyncio.create_task(self._stopping.wait())
        next_event: asyncio.Task[ChannelEvent] | None = None
        try:
            while not self._stopping.is_set():
                next_event = next_event or asyncio.create_task(follower.next())
                waits = {next_event, stopping, committer}
                done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                if committer in done:
                    committer.result()  # a commit that failed for good ends the stream with its error
                if next_event in done:
                    self._handle(next_event.result())
                    next_event = None
        finally:
            pending_reads = bool(self._gap_reads)
            for task in [stopping, committer, *self._gap_reads, *([next_event] if next_event else [])]:
                task.cancel()
            await follower.aclose()
            if self._committing is not None:
                await asyncio.wait({self._committing})  # its failure, if any, was raised by the committer
            if self._compacting is not None:
                await asyncio.wait({self._compacting})
        if self._buffered and not pending_reads:
            await self._commit_now()

    # -- events ------------------------------------------------------------------------------------------

    def _handle(self, event: ChannelEvent) -> None:
        if isinstance(event, ChannelValues):
            self._add(event.values, event.received_ns, streamed=True)
        elif isinstance(event, ChannelOpened):
            self._open.add(event.channel)
            task = asyncio.create_task(self._fill_gap(event))
            self._gap_reads.add(task)
            task.add_done_callback(self._gap_reads.discard)
        elif isinstance(event, ChannelLost):
            self._open.discard(event.channel)
            log.warning(
                "channel %d lost (%s); reopening in %.1f s", event.channel, event.reason, event.retry_in_s
            )

    def _add(self, values: pa.RecordBatch, received_ns: int, *, streamed: bool) -> None:
        received = pa.repeat(pa.scalar(received_ns, UTC_NS), values.num_rows)
        origin = pa.repeat(pa.scalar(streamed), values.num_rows)
        columns = [*values.columns, received, origin]
        self._buffer.append(pa.RecordBatch.from_arrays(columns, schema=_BUFFER_SCHEMA))
        self._buffered += values.num_rows

    def _regulate(self) -> None:
        """Pause reading from the channels while the values held reach ``max_buffered_values``; resume once a
        commit brought them below it (see the module docstring)."""
        follower = self._follower
        if follower is None:
            return
        held = self._buffered + self._in_commit + follower.queued_values
        limit = self.options.max_buffered_values
        if held >= limit and not follower.paused:
            follower.pause()
            self._pauses.begin()
            log.warning(
                "%d values held, the limit (max_buffered_values) is %d: reading from the channels paused "
                "until a commit drains them",
                held,
                limit,
            )
        elif held < limit and follower.paused:
            follower.resume()
            log.info("reading from the channels resumed after %.1f s paused", self._pauses.end())

    async def _commit_now(self) -> None:
        """Commit the buffer as the next micro-batch (in a thread); on failure the rows go back in front.

        The commit is shielded: cancelling the caller (shutting down) does not stop a commit half-way, and
        :meth:`run` waits for it (``_committing``) before committing what is left."""
        batches, self._buffer = self._buffer, []
        count, self._buffered = self._buffered, 0
        self._in_commit = count
        paused = self._pauses.take()
        self._committing = asyncio.ensure_future(asyncio.to_thread(self._commit, batches, count, paused))
        try:
            await asyncio.shield(self._committing)
        except asyncio.CancelledError:
            raise  # the commit goes on in its thread; run() waits for it
        except BaseException:
            self._buffer = batches + self._buffer
            self._buffered += count
            raise
        finally:
            self._in_commit = 0
            self._regulate()

    async def _fill_gap(self, opened: ChannelOpened) -> None:
        """Read what the channel's points recorded since their last committed value (minus the lookback)."""
        # The channel delivered every point of the group up to the group's last committed value: a point whose
        # own last value is older had nothing since (but what arrives late or out of order: the lookback).
        # Points the table never held have no gap: they are followed from the channel's opening.
        known = self._latest.filter(pc.is_in(self._latest.column("web_id"), pa.array(opened.web_ids)))
        if not known.num_rows:
            return
        end = time.time_ns()
        # A future point (PI's Future data: forecasts) holds values stamped ahead of now: the gap ends now.
        latest = min(pc.max(known.column("timestamp_ns")).as_py(), end)
        start = latest - int(self.options.lookback_s * NS)
        while True:
            try:
                read = await asyncio.to_thread(self._read_recorded, list(opened.web_ids), start, end)
                break
            except Exception as exc:
                log.warning("filling the gap of channel %d failed (%s); trying again", opened.channel, exc)
                await asyncio.sleep(GAP_RETRY_S)
        for batch in read.to_batches():
            self._add(batch, end, streamed=False)
        self._regulate()

    def _read_recorded(self, web_ids: list[str], start: int, end: int) -> pa.Table:
        """The points' recorded values in [start, end] that the table does not hold yet (no commit runs
        meanwhile: gap reads hold them back)."""
        stream = self.client.read_recorded(web_ids, start, end)
        rows = stream.read_all()
        if stream.failures:
            raise RuntimeError(f"{len(stream.failures)} stream(s) failed, e.g. {stream.failures[0]}")
        keyed = with_identity(rows.append_column("timestamp_ns", rows.column("timestamp").cast(pa.int64())))
        return unseen(keyed, identities(self.table, start, web_ids)).select(RECORDED_SCHEMA.names)

    # -- commits -----------------------------------------------------------------------------------------

    async def _commit_loop(self) -> None:
        options = self.options
        last = time.monotonic()
        while True:
            await asyncio.sleep(min(options.commit_seconds, 0.05))
            due = (
                time.monotonic() - last >= options.commit_seconds
                or self._buffered >= options.commit_values
                or self._pauses.running  # the buffer is full: commit now
            )
            if due and self._buffered and not self._gap_reads:
                last = time.monotonic()  # commits start every commit_seconds, however long one takes
                await self._commit_now()
                self._maybe_compact()
            elif due and not self._buffered:
                last = time.monotonic()

    def _maybe_compact(self) -> None:
        """Start compacting the days written since the last compaction, every ``compact_every`` commits
        (one compaction at a time; it runs beside the commits)."""
        every = self.options.compact_every
        if not every or self._since_compaction < every:
            return
        if self._compacting is not None and not self._compacting.done():
            return
        days, self._days_written, self._since_compaction = self._days_written, set(), 0
        self._compacting = asyncio.ensure_future(asyncio.to_thread(self._compact, days))

    def _compact(self, days: set[date]) -> None:
        started = time.monotonic()
        try:
            metrics = compact_days(self.table, days)
        except Exception as exc:  # maintenance: the next round compacts what this one left
            log.warning("compacting %s failed (%s); trying again after the next batches", self.table, exc)
            return
        log.info(
            "compacted %d files into %d in %.1f s",
            metrics["numFilesRemoved"],
            metrics["numFilesAdded"],
            time.monotonic() - started,
        )

    def _resume(self) -> None:
        """Where the table stands: the next batch number, and each point's last value around the last commit
        (``RESUME_LOOKBACKS`` lookbacks before it: a point silent longer counts as new)."""
        self._delta_table = ensure_table(self.table)
        self._version = committed_version(self.table, self.options.app_id) or 0
        commits = stream_commits(self.table, None, limit=RESUME_COMMITS)
        if commits:
            last_commit_ns = commits[-1]["timestamp"] * 1_000_000
            since = last_commit_ns - RESUME_LOOKBACKS * int(self.options.lookback_s * NS)
            self._latest_since_ns = since
            latest = last_timestamps(self.table, since)
            self._latest = pa.table(
                [pa.array(list(latest), pa.string()), pa.array(list(latest.values()), pa.int64())],
                schema=_LATEST_SCHEMA,
            )
        log.info("resuming after batch %d: %d points streamed before", self._version, self._latest.num_rows)

    def _commit(self, batches: list[pa.RecordBatch], count: int, paused: tuple[int, float]) -> None:
        started_ns = time.time_ns()
        rows = pa.Table.from_batches(batches, schema=_BUFFER_SCHEMA)
        rows = with_identity(rows.append_column("timestamp_ns", rows.column("timestamp").cast(pa.int64())))
        recent = [identity for _, identity in self._recent]
        fresh = unseen(rows, pa.concat_tables(recent) if recent else IDENTITY_SCHEMA.empty_table())
        fresh = self._not_committed_before(fresh)
        version = self._version + 1
        live_rows = lake_rows(fresh.select(STREAM_ROWS_SCHEMA.names), version)
        streamed_ns = fresh.filter(fresh.column("streamed")).column("timestamp_ns").to_numpy()
        latency = _latency(streamed_ns)
        metadata = {f"osipi.latency_{name}_s": f"{value:.3f}" for name, value in latency.items()}
        metadata |= {"osipi.streamed_rows": str(len(streamed_ns)), "osipi.rows": str(fresh.num_rows)}
        metadata |= {"osipi.paused": str(paused[0]), "osipi.paused_s": f"{paused[1]:.3f}"}
        append_batch(self.table, live_rows, self.options.app_id, version, metadata, self._delta_table)
        committed_ns = time.time_ns()
        self._version = version
        self._days_written.update(pc.unique(live_rows.column("partition_date")).to_pylist())
        self._since_compaction += 1
        self._remember(fresh, committed_ns)
        if self.on_commit is not None:
            self.on_commit(
                CommitReport(
                    version=version,
                    rows=fresh.num_rows,
                    streamed_rows=len(streamed_ns),
                    duplicates=count - fresh.num_rows,
                    committed_ns=committed_ns,
                    latency_s=_latency(streamed_ns, committed_ns),
                    commit_s=(committed_ns - started_ns) / NS,
                    channels_open=len(self._open),
                    buffered_after=self._buffered,
                    paused=paused[0],
                    paused_s=round(paused[1], 3),
                )
            )

    def _not_committed_before(self, rows: pa.Table) -> pa.Table:
        """``rows`` without the channel values the table holds already though ``_recent`` does not know them.

        Only a value stamped at or before its point's last committed one can have been committed (or, for a
        point ``_latest`` does not know, before ``_latest_since_ns``): a restarted channel's initial values,
        a value a server sends again after ``RECENT_S``, an edit. Those few are looked up in the table; a
        channel's new values (the bulk) are not. Gap reads were checked against the table when read."""
        stamps = rows.column("timestamp_ns")
        position = pc.index_in(rows.column("web_id"), value_set=self._latest.column("web_id"))
        latest = pc.fill_null(pc.take(self._latest.column("timestamp_ns"), position), self._latest_since_ns)
        suspect = pc.and_(rows.column("streamed"), pc.less_equal(stamps, latest))
        if not pc.any(suspect).as_py():
            return rows
        suspects = rows.filter(suspect)
        web_ids = pc.unique(suspects.column("web_id")).to_pylist()
        held = identities(self.table, pc.min(suspects.column("timestamp_ns")).as_py(), web_ids)
        kept = unseen(suspects, held).select(rows.column_names).cast(rows.schema)  # the join drops "not null"
        return pa.concat_tables([rows.filter(pc.invert(suspect)), kept])

    def _remember(self, fresh: pa.Table, committed_ns: int) -> None:
        """Each point's last committed value, and the identities of the last ``RECENT_S`` seconds' commits
        (a value read to fill a gap may also come over the channel a moment later)."""
        both = pa.concat_tables([self._latest, fresh.select(_LATEST_SCHEMA.names).cast(_LATEST_SCHEMA)])
        latest = both.group_by("web_id", use_threads=False).aggregate([("timestamp_ns", "max")])
        self._latest = latest.rename_columns(_LATEST_SCHEMA.names)
        self._recent.append((committed_ns, identity_of(fresh)))
        while self._recent and self._recent[0][0] < committed_ns - RECENT_S * NS:
            self._recent.popleft()


class _Pauses:
    """The pauses of reading from the channels: how many began and how long reading was paused since the
    last :meth:`take` (a pause still running counts up to that moment)."""

    def __init__(self) -> None:
        self._began: float | None = None  # the running pause's start
        self._counted_from = 0.0  # its part before this moment was taken already
        self._count = 0
        self._seconds = 0.0

    @property
    def running(self) -> bool:
        return self._began is not None

    def begin(self) -> None:
        self._began = self._counted_from = time.monotonic()
        self._count += 1

    def end(self) -> float:
        """End the running pause; returns its length in seconds."""
        assert self._began is not None
        now = time.monotonic()
        self._seconds += now - self._counted_from
        length, self._began = now - self._began, None
        return length

    def take(self) -> tuple[int, float]:
        """(pauses begun, seconds paused) since the last take."""
        if self._began is not None:
            now = time.monotonic()
            self._seconds += now - self._counted_from
            self._counted_from = now
        taken, self._count, self._seconds = (self._count, self._seconds), 0, 0.0
        return taken


def _latency(streamed_ns: np.ndarray, at_ns: int | None = None) -> dict[str, float]:
    """p50/p95/p99/max of ``at_ns`` (now) minus the timestamps ``streamed_ns``, in seconds."""
    if not len(streamed_ns):
        return {}
    lags = ((at_ns or time.time_ns()) - streamed_ns) / NS
    found = np.percentile(lags, [q for _, q in PERCENTILES])
    return {name: float(value) for (name, _), value in zip(PERCENTILES, found, strict=True)}


_BUFFER_SCHEMA = pa.schema([*STREAM_ROWS_SCHEMA, pa.field("streamed", pa.bool_(), nullable=False)])
_LATEST_SCHEMA = pa.schema([("web_id", pa.string()), ("timestamp_ns", pa.int64())])
