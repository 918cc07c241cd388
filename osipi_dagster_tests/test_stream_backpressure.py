"""The live stream when commits fall behind, and when a channel repeats itself, against the mock over real
HTTP and WebSockets with its clock in real time (docs/STREAMING.md, "Back-pressure" and "Each value once").

- Back-pressure: commits slowed down and a small ``max_buffered_values``: the values the stream holds never
  go beyond the bound (but for the message a channel was receiving), the pauses are reported, and once the
  mock's clock stops the live table holds exactly the mock's recorded values, each once.
- The same with the channel closed by the server every few messages, paused or not: reopened, its gap read,
  still each value once.
- A server that sends a message again a second later (mock fault ``channel_repeat_rate``): the repeat lands
  in a later micro-batch and is dropped there; each value once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest
import requests

from osipi_dagster.contract import to_ns
from osipi_dagster.ingest.stream import CommitReport, LiveStream, StreamOptions
from osipi_dagster.lake import Lakehouse, LakeTable
from osipi_dagster.lake.schemas import LIVE_TIMESERIES
from osipi_dagster.mock.server import RunningMock
from osipi_dagster.pi import PIWebAPIClient
from osipi_dagster.pi.channels import ChannelOptions
from osipi_dagster_tests.pi_helpers import raw_recorded

pytestmark = pytest.mark.slow

POINTS = 20  # 1 Hz each, over one channel
LIMIT = 30
COMMIT_DELAY_S = 1.5
NS = 1_000_000_000
COLUMNS = ["web_id", "timestamp_ns", "value", "string_value", "state_code", "state_name", "is_system", "good",
           "questionable", "substituted", "annotated"]  # fmt: skip


class SlowCommits(LiveStream):
    """A stream whose Delta commits take ``COMMIT_DELAY_S`` longer, and that records what it held.

    Slow storage cannot be had for real here (no slow filesystem or object store on this machine): the
    delay is added in the commit's thread, where a commit to slow storage would wait. The values held are
    read where the stream decides to pause (``_regulate``: after every message queued and every commit).
    Without gap reads they grow only when a message arrives (by its values), so each growth is a message."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.most_held = 0
        self.largest_message = 0
        self.messages_while_paused = 0
        self._held = 0

    def _commit(self, batches: list[pa.RecordBatch], count: int, paused: tuple[int, float]) -> None:
        time.sleep(COMMIT_DELAY_S)
        super()._commit(batches, count, paused)

    def _regulate(self) -> None:
        if self._follower is not None:
            held = self._buffered + self._in_commit + self._follower.queued_values
            if held > self._held:
                self.largest_message = max(self.largest_message, held - self._held)
                self.messages_while_paused += self._follower.paused
            self._held = held
            self.most_held = max(self.most_held, held)
        super()._regulate()


def _truth(api: str, web_ids: list[str], start_ns: int, end_ns: int) -> Counter:
    """The mock's recorded values in the window, each identity once: PI can hold the same value twice at one
    timestamp (the mock's multi-value points do), and the live table holds it once (docs/STREAMING.md,
    "Each value once")."""
    start = datetime.fromtimestamp(start_ns / NS, UTC).isoformat()
    end = datetime.fromtimestamp(end_ns / NS, UTC).isoformat()
    rows = (row for web_id in web_ids for row in raw_recorded(api, web_id, start, end))
    return Counter({row[: len(COLUMNS)] for row in rows if start_ns <= row[1] <= end_ns})


def _streamed(table: LakeTable, start_ns: int, end_ns: int) -> Counter:
    live = table.load().to_pyarrow_dataset().to_table(columns=COLUMNS)
    rows = zip(*(live[name].to_pylist() for name in COLUMNS), strict=True)
    return Counter(row for row in rows if start_ns <= row[1] <= end_ns)


def _each_once(table: LakeTable) -> bool:
    live = table.load().to_pyarrow_dataset().to_table(columns=COLUMNS)
    return max(Counter(zip(*(live[name].to_pylist() for name in COLUMNS), strict=True)).values()) == 1


async def _until(condition: Callable[[], bool], what: str, running: asyncio.Task, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not await asyncio.to_thread(condition):
        assert not running.done(), f"the stream ended while waiting for {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.2)


def _run(
    mock: RunningMock, table: LakeTable, options: StreamOptions, seconds: float, slow: bool = True
) -> tuple[LiveStream, list[CommitReport], Counter, int, int]:
    """Stream the mock's points for ``seconds`` after the first commit, stop the mock's clock, wait until
    the live table holds the window's recorded values; the stream, its reports, the truth and the window."""
    reports: list[CommitReport] = []
    with PIWebAPIClient(mock.api, compress=False) as client:
        web_ids = [point.web_id for point in client.points(client.data_servers()[0].web_id)]
        kind = SlowCommits if slow else LiveStream
        stream = kind(client, table, web_ids, options, on_commit=reports.append)

        async def scenario() -> tuple[Counter, int, int]:
            running = asyncio.create_task(stream.run())
            await _until(lambda: len(reports) > 0, "the first commit", running, 120)
            start_ns = time.time_ns()  # values stamped from now on became visible after the channels opened
            await asyncio.sleep(seconds)
            clock = await asyncio.to_thread(requests.get, mock.url + "/admin/clock", timeout=30)
            now = clock.json()["Now"]
            frozen = await asyncio.to_thread(
                requests.post, mock.url + "/admin/clock", json={"now": now}, timeout=30
            )
            frozen.raise_for_status()
            end_ns = to_ns(now)
            truth = await asyncio.to_thread(_truth, mock.api, web_ids, start_ns, end_ns)
            try:
                await _until(lambda: _streamed(table, start_ns, end_ns) == truth, "the window", running, 240)
            except AssertionError as exc:
                streamed = _streamed(table, start_ns, end_ns)
                missing, extra = truth - streamed, streamed - truth
                last = (time.time_ns() - reports[-1].committed_ns) / NS if reports else None
                raise AssertionError(
                    f"{exc}: {sum(missing.values())} value(s) missing, e.g. {sorted(missing)[:3]}; "
                    f"{sum(extra.values())} extra, e.g. {sorted(extra)[:3]}; {len(reports)} commits, "
                    f"the last {last} s ago; window [{start_ns}, {end_ns}]; the stream's buffer holds "
                    f"{stream._buffered} values, {stream._in_commit} in a commit, "
                    f"{len(stream._gap_reads)} gap read(s) running"
                ) from exc
            stream.stop()
            await running
            return truth, start_ns, end_ns

        truth, start_ns, end_ns = asyncio.run(asyncio.wait_for(scenario(), 400))
    return stream, reports, truth, start_ns, end_ns


def _mock(make_mock: Callable[..., RunningMock], **faults: object) -> RunningMock:
    mock = make_mock(
        now=None,
        tags=POINTS,
        sampling="1s",
        archive_days=1,
        channel_poll_ms=50.0,
        late_share=0.0,
        edit_share=0.0,
    )
    if faults:
        requests.put(mock.url + "/admin/faults", json=faults, timeout=30).raise_for_status()
    return mock


@pytest.mark.timeout(600)
def test_slow_commits_pause_the_channels_within_the_bound(
    make_mock: Callable[..., RunningMock], tmp_path: Path
) -> None:
    mock = _mock(make_mock)
    table = Lakehouse(str(tmp_path)).table(LIVE_TIMESERIES.name)
    options = StreamOptions(commit_seconds=0.2, commit_values=10, max_buffered_values=LIMIT)
    stream, reports, truth, start_ns, end_ns = _run(mock, table, options, seconds=8.0)
    assert isinstance(stream, SlowCommits)
    # The bound was reached and passed by the message that reached it at most; the only channel paused on
    # that message, so none arrived while paused.
    assert LIMIT <= stream.most_held <= LIMIT - 1 + stream.largest_message
    assert stream.messages_while_paused == 0
    assert stream._follower is not None and len(stream._follower.groups) == 1
    assert sum(report.paused for report in reports) > 0
    assert sum(report.paused_s for report in reports) > 0.5
    commits = table.load().history()
    assert any(int(commit.get("osipi.paused", 0)) > 0 for commit in commits)  # the sensor's metadata
    assert sum(truth.values()) >= POINTS * 6  # not an empty comparison
    assert _streamed(table, start_ns, end_ns) == truth
    assert _each_once(table)


@pytest.mark.timeout(600)
def test_a_channel_closed_while_paused_is_reopened_and_its_gap_read_once(
    make_mock: Callable[..., RunningMock], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "osipi_dagster.stream")
    mock = _mock(make_mock, channel_close_after=3)
    table = Lakehouse(str(tmp_path)).table(LIVE_TIMESERIES.name)
    channel = ChannelOptions(backoff_base_s=0.2, backoff_max_s=0.5)
    options = StreamOptions(
        commit_seconds=0.2, commit_values=10, max_buffered_values=LIMIT, lookback_s=5.0, channel=channel
    )
    _, reports, truth, start_ns, end_ns = _run(mock, table, options, seconds=10.0)
    assert sum(report.paused for report in reports) > 0
    messages = [record.getMessage() for record in caplog.records]
    assert any("reading from the channels paused" in message for message in messages)
    assert any("reading from the channels resumed" in message for message in messages)
    assert sum("lost" in message for message in messages) >= 2  # closed by the server, reopened
    assert any(report.rows > report.streamed_rows for report in reports)  # gap reads were committed
    assert sum(truth.values()) >= POINTS * 8
    assert _streamed(table, start_ns, end_ns) == truth
    assert _each_once(table)


@pytest.mark.timeout(600)
def test_a_repeated_message_is_committed_once(make_mock: Callable[..., RunningMock], tmp_path: Path) -> None:
    mock = _mock(make_mock, channel_repeat_rate=0.5, channel_repeat_s=1.0, seed=13)
    table = Lakehouse(str(tmp_path)).table(LIVE_TIMESERIES.name)
    options = StreamOptions(commit_seconds=0.2)  # a repeat one second later is in a later micro-batch
    _, reports, truth, start_ns, end_ns = _run(mock, table, options, seconds=6.0, slow=False)
    assert sum(report.duplicates for report in reports) >= POINTS  # repeats arrived and were dropped
    assert sum(truth.values()) >= POINTS * 4
    assert _streamed(table, start_ns, end_ns) == truth
    assert _each_once(table)
