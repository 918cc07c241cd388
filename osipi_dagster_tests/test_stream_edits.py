"""Edits and deletes made in PI while the live stream runs (docs/STREAMING.md, "What the live table does not
hold"): the channel sends an edit as a new value flagged ``Substituted`` and the stream commits it once; a
delete is sent by no channel message, so the live table keeps the deleted value until the closed-day batch
run, which reads the day from PI's archive and which the query surface prefers."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import requests

from osipi_dagster.ingest.stream import LiveStream, StreamOptions
from osipi_dagster.lake import Lakehouse
from osipi_dagster.lake.live import read_values
from osipi_dagster.lake.schemas import LIVE_TIMESERIES, TIMESERIES
from osipi_dagster.lake.timeseries import replace_slice
from osipi_dagster.mock.server import RunningMock
from osipi_dagster.pi import PIWebAPIClient
from osipi_dagster.pi.channels import ChannelOptions

POINTS = 5
KEY = ["web_id", "timestamp_ns", "value", "substituted"]


def _clock(mock: RunningMock) -> int:
    now = requests.get(mock.url + "/admin/clock", timeout=30).json()["Now"]
    return int(datetime.fromisoformat(now).timestamp() * 1e9)


def _advance(mock: RunningMock, interval: str) -> None:
    requests.post(mock.url + "/admin/clock", json={"advance": interval}, timeout=30).raise_for_status()


def _rows(table: pa.Table) -> Counter:
    if "timestamp_ns" not in table.column_names:
        table = table.append_column("timestamp_ns", table.column("timestamp").cast(pa.int64()))
    return Counter(zip(*(table[name].to_pylist() for name in KEY), strict=True))


def _live(root: Path) -> pa.Table:
    table = Lakehouse(str(root)).table(LIVE_TIMESERIES.name)
    return table.load().to_pyarrow_dataset().to_table() if table.exists() else pa.table({"timestamp_ns": []})


async def _until(condition: Callable[[], bool], what: str, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not await asyncio.to_thread(condition):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


def test_edits_are_streamed_once_and_deletes_are_left_to_the_batch_run(
    make_mock: Callable[..., RunningMock], tmp_path: Path
) -> None:
    mock = make_mock(tags=POINTS, archive_days=2, channel_poll_ms=50.0, late_share=0.0, edit_share=0.0)
    lake = Lakehouse(str(tmp_path))
    live, batch = lake.table(LIVE_TIMESERIES.name), lake.table(TIMESERIES.name)
    options = StreamOptions(commit_seconds=0.2, channel=ChannelOptions(heartbeat_rate=1))
    with PIWebAPIClient(mock.api, compress=False) as client:
        web_ids = [point.web_id for point in client.points(client.data_servers()[0].web_id)]
        start_ns = _clock(mock)

        def recorded() -> pa.Table:
            """What PI shows after the channel opened (its values at start_ns were there before)."""
            rows = client.read_recorded(web_ids, start_ns, _clock(mock)).read_all()
            return rows.filter(pc.greater(rows.column("timestamp").cast(pa.int64()), start_ns))

        async def scenario() -> tuple[pa.Table, str, str]:
            stream = LiveStream(client, live, web_ids, options)
            running = asyncio.create_task(stream.run())
            await _until(lambda: _channels(mock) == 1, "the channel to open")
            _advance(mock, "2m")
            first = await asyncio.to_thread(recorded)
            await _until(lambda: _live(tmp_path).num_rows == first.num_rows, "the first values")
            numbers = first.filter(pc.is_valid(first.column("value")))
            web = numbers.column("web_id")[0].as_py()
            stamps = numbers.filter(pc.equal(numbers.column("web_id"), web)).column("timestamp")
            edited, deleted = stamps[1].value, stamps[3].value  # values PI holds: replaced, removed
            edits = {
                "Edits": [
                    {"WebId": web, "Timestamp": _iso(edited), "Value": 4321.5},
                    {"WebId": web, "Timestamp": _iso(deleted), "Delete": True},
                ]
            }
            answer = requests.post(mock.url + "/admin/edits", json=edits, timeout=30)
            assert answer.status_code == 200, (edits, answer.text)
            _advance(mock, "30s")
            after = await asyncio.to_thread(recorded)
            # Everything PI shows now plus what it deleted and what the edit replaced (an append-only table).
            await _until(lambda: _live(tmp_path).num_rows == after.num_rows + 2, "the edit and new values")
            stream.stop()
            await running
            return after, web, edited, deleted

        truth, web, edited_ns, deleted_ns = asyncio.run(asyncio.wait_for(scenario(), 120))

    streamed = _rows(_live(tmp_path))
    assert max(streamed.values()) == 1  # each value once
    assert _rows(truth) - streamed == Counter()  # every value PI shows, the edited one included
    extra = streamed - _rows(truth)
    # What stays in the live table: the value the edit replaced, and the deleted one (no channel message).
    assert sorted(key[1] for key in extra) == [edited_ns, deleted_ns]
    assert all(key[3] is False for key in extra)
    assert (web, edited_ns, 4321.5, True) in streamed

    # The day closes and the batch run writes it from PI's archive: the query surface reads it from there,
    # without the deleted value and with only the edited one.
    days = pc.cast(truth.column("timestamp"), pa.date32())
    for day in pc.unique(days).to_pylist():
        rows = truth.filter(pc.equal(days, pa.scalar(day, pa.date32())))
        replace_slice(batch, rows.to_batches(), partition_date=day.isoformat(), tag_shard="s00")
    end_ns = pc.max(truth.column("timestamp")).value + 1
    tomorrow = pc.max(days).as_py() + timedelta(days=1)
    surface = read_values(batch, live, start_ns + 1, end_ns, today=tomorrow)
    assert set(surface.column("source").to_pylist()) == {"batch"}
    assert _rows(surface.drop_columns(["source"])) == _rows(truth)


def _channels(mock: RunningMock) -> int:
    return len(requests.get(mock.api + "/channels/instances", timeout=30).json()["Items"])


def _iso(ns: int) -> str:
    """``ns`` as PI writes a time: ISO 8601 in UTC with 100 ns ticks."""
    whole = datetime.fromtimestamp(ns // 1_000_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{whole}.{ns % 1_000_000_000 // 100:07d}Z"
