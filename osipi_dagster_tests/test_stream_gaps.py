"""The live stream's gap reads against the mock: a channel of a Future point (values stamped up to a week
ahead) reopens after a restart and the stream commits again (its gap ends now, not at the future value)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import requests

from osipi_dagster.ingest.stream import CommitReport, LiveStream, StreamOptions
from osipi_dagster.lake import Lakehouse
from osipi_dagster.lake.schemas import LIVE_TIMESERIES
from osipi_dagster.mock.server import RunningMock
from osipi_dagster.pi import PIWebAPIClient
from osipi_dagster.pi.channels import ChannelOptions


def _advance(mock: RunningMock, interval: str) -> None:
    requests.post(mock.url + "/admin/clock", json={"advance": interval}, timeout=30).raise_for_status()


def _channels(mock: RunningMock) -> int:
    return len(requests.get(mock.api + "/channels/instances", timeout=30).json()["Items"])


async def _commits_after(
    stream: LiveStream, reports: list[CommitReport], mock: RunningMock, move: Callable[[], None]
) -> None:
    """Run ``stream`` until it committed once after ``move`` (called once a channel is open)."""
    running = asyncio.create_task(stream.run())
    deadline = time.monotonic() + 60
    while not await asyncio.to_thread(_channels, mock):
        assert time.monotonic() < deadline and not running.done(), "the channel did not open"
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)  # the gap read (if any) starts
    before = len(reports)
    move()
    while len(reports) == before:
        assert time.monotonic() < deadline and not running.done(), "no commit after the channel opened"
        await asyncio.sleep(0.05)
    stream.stop()
    await running


def test_a_restart_resumes_a_future_point(make_mock: Callable[..., RunningMock], tmp_path: Path) -> None:
    mock = make_mock(now=None, channel_poll_ms=50.0, late_share=0.0, edit_share=0.0)  # the real clock
    server = requests.get(mock.api + "/dataservers", timeout=30).json()["Items"][0]
    points = requests.get(server["Links"]["Points"], params={"maxCount": 1000}, timeout=30).json()["Items"]
    future = [p["WebId"] for p in points if p["Future"]][:1]
    assert future
    live = Lakehouse(str(tmp_path)).table(LIVE_TIMESERIES.name)
    options = StreamOptions(commit_seconds=0.2)
    with PIWebAPIClient(mock.api, compress=False) as client:
        for _ in range(2):  # the second run resumes from the first one's future values
            reports: list[CommitReport] = []
            stream = LiveStream(client, live, future, options, on_commit=reports.append)
            moved = _commits_after(stream, reports, mock, lambda: _advance(mock, "1h"))
            asyncio.run(asyncio.wait_for(moved, 120))
    stamps = live.load().to_pyarrow_dataset().to_table(columns=["timestamp_ns"]).column("timestamp_ns")
    assert max(stamps.to_pylist()) > time.time_ns()  # the point's values run ahead of the clock


def test_a_restart_drops_values_committed_before_that_the_channel_sends_again(
    make_mock: Callable[..., RunningMock], tmp_path: Path
) -> None:
    """A channel opened with ``includeInitialValues`` sends each point's current value, which the stream
    before the restart committed already: the restarted stream drops it (what a restarted channel repeats
    of values committed before)."""
    mock = make_mock(tags=5, archive_days=2, channel_poll_ms=50.0, late_share=0.0, edit_share=0.0)
    live = Lakehouse(str(tmp_path)).table(LIVE_TIMESERIES.name)
    with PIWebAPIClient(mock.api, compress=False) as client:
        web_ids = [point.web_id for point in client.points(client.data_servers()[0].web_id)]
        for initial in (False, True):
            reports: list[CommitReport] = []
            channel = ChannelOptions(include_initial_values=initial)
            options = StreamOptions(commit_seconds=0.2, channel=channel)
            stream = LiveStream(client, live, web_ids, options, on_commit=reports.append)
            moved = _commits_after(stream, reports, mock, lambda: _advance(mock, "10s"))
            asyncio.run(asyncio.wait_for(moved, 120))
    rows = live.load().to_pyarrow_dataset().to_table(columns=["web_id", "timestamp_ns", "value"])
    identities = Counter(zip(*(rows[name].to_pylist() for name in rows.column_names), strict=True))
    assert len(identities) > 10 and max(identities.values()) == 1
