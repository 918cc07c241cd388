"""``osipi-stream`` end to end against the mock in real time: killed with SIGKILL at random moments and
restarted while the mock drops channels, the live table ends up holding every value of the window once; a
batch run of the day then takes over in the query surface, each value still read once."""

from __future__ import annotations

import os
import random
import signal
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import pyarrow as pa
import pytest
import requests

from osipi_dagster.contract import to_ns
from osipi_dagster.ingest.shards import shard_keys
from osipi_dagster.ingest.timeseries import ingest_partition
from osipi_dagster.lake import Lakehouse
from osipi_dagster.lake.live import read_values
from osipi_dagster.lake.schemas import LIVE_TIMESERIES, TIMESERIES, WATERMARKS
from osipi_dagster.mock.config import MockConfig
from osipi_dagster.mock.server import serve_in_thread
from osipi_dagster.pi import PIWebAPIClient
from osipi_dagster_tests.pi_helpers import raw_recorded
from osipi_dagster_tests.processes import subprocess_group, wait_for

pytestmark = pytest.mark.slow

POINTS = 40
KILLS = 3
NS = 1_000_000_000


def _env(api: str, root: Path) -> dict[str, str]:
    return {
        **os.environ,
        "OSIPI_PI_BASE_URL": api,
        "OSIPI_LAKE_ROOT": str(root),
        "OSIPI_PI_COMPRESS": "false",
        "OSIPI_STREAM_MAX_URL_LENGTH": "1200",  # several channels
        "OSIPI_STREAM_HEARTBEAT_RATE": "2",
        "OSIPI_STREAM_IDLE_TIMEOUT_SECONDS": "5",
        "OSIPI_STREAM_LOOKBACK_SECONDS": "300",
    }


def _commits(log: Path) -> int:
    return sum(1 for line in log.read_text(errors="replace").splitlines() if line.startswith('{"version"'))


def _committed_since(log: Path, before: int) -> bool:
    return _commits(log) > before + 1


def _holds(root: Path, start_ns: int, end_ns: int, truth: Counter) -> bool:
    return _streamed(root, start_ns, end_ns) == truth


def _live_rows(root: Path) -> pa.Table:
    table = Lakehouse(str(root)).table(LIVE_TIMESERIES.name)
    return table.load().to_pyarrow_dataset().to_table() if table.exists() else pa.table({})


COLUMNS = ["web_id", "timestamp_ns", "value", "string_value", "state_code", "state_name", "is_system", "good",
           "questionable", "substituted", "annotated"]  # fmt: skip


def _key(row: tuple) -> tuple:
    """An oracle row (``raw_recorded``) as the values of ``COLUMNS``."""
    return row[: len(COLUMNS)]


def _truth(api: str, web_ids: list[str], start_ns: int, end_ns: int) -> Counter:
    start = datetime.fromtimestamp(start_ns / NS, UTC).isoformat()
    end = datetime.fromtimestamp(end_ns / NS, UTC).isoformat()
    return Counter(
        _key(row) for web_id in web_ids for row in raw_recorded(api, web_id, start, end) if start_ns <= row[1]
    )


def _streamed(root: Path, start_ns: int, end_ns: int) -> Counter:
    live = _live_rows(root)
    if not live.num_rows:
        return Counter()
    rows = zip(*(live[name].to_pylist() for name in COLUMNS), strict=True)
    return Counter(row for row in rows if start_ns <= row[1] <= end_ns)


@pytest.mark.timeout(900)
def test_killed_and_restarted_stream_holds_each_value_once(tmp_path: Path) -> None:
    rng = random.Random(13)
    config = MockConfig(
        port=0, tags=POINTS, archive_days=1, channel_poll_ms=200.0, late_share=0.3, edit_share=0.0
    )
    with serve_in_thread(config) as mock:
        with PIWebAPIClient(mock.api, compress=False) as client:
            web_ids = [p.web_id for p in client.points(client.data_servers()[0].web_id)]
        faults = {"channel_drop_rate": 0.02, "seed": 13}
        requests.put(mock.url + "/admin/faults", json=faults, timeout=30).raise_for_status()
        root = tmp_path / "lake"
        command = [sys.executable, "-m", "osipi_dagster.stream"]
        window_start = 0
        for run in range(KILLS + 1):
            log = tmp_path / f"stream-{run}.log"
            with subprocess_group(command, _env(mock.api, root), log) as process:
                started = partial(_committed_since, log, _commits(log))
                wait_for(started, "osipi-stream's first commits", process, log, 180)
                window_start = window_start or time.time_ns()
                if run < KILLS:
                    time.sleep(rng.uniform(1.0, 8.0))
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
                    time.sleep(rng.uniform(0.0, 3.0))  # down for a while: values pile up in PI
                    continue
                # Long enough after the last restart that every sampling rate of the mock has values in it.
                time.sleep(10.0 + rng.uniform(3.0, 8.0))
                # Stop the world: no more faults, and the mock's clock fixed, so PI's truth stops moving.
                requests.put(mock.url + "/admin/faults", json={}, timeout=30).raise_for_status()
                now = requests.get(mock.url + "/admin/clock", timeout=30).json()["Now"]
                requests.post(mock.url + "/admin/clock", json={"now": now}, timeout=30).raise_for_status()
                window_end = to_ns(now)
                truth = _truth(mock.api, web_ids, window_start, window_end)
                # PI can hold the same value twice at one timestamp (the mock's multi-value points do): the
                # live table holds it once, the batch table twice (docs/STREAMING.md, "Each value once").
                live_truth = Counter(set(truth))
                settled = partial(_holds, root, window_start, window_end, live_truth)
                wait_for(settled, "the live table to hold the window's values", process, log, 180)
            assert process.returncode in (0, -signal.SIGINT), log.read_text()[-3000:]

        # Not an empty comparison: the window holds several values per point (how many depends on how fast
        # the restarts were: a quiet machine restarts in a second or two).
        assert sum(truth.values()) > POINTS * 4
        assert _streamed(root, window_start, window_end) == live_truth
        live = _live_rows(root)
        identities = Counter(zip(*(live[name].to_pylist() for name in COLUMNS), strict=True))
        assert max(identities.values()) == 1  # no value twice, in the window or out of it

        # A batch run writes the day from PI; read as a closed day, the window comes from it, once each.
        lake = Lakehouse(str(root))
        day = datetime.fromtimestamp(window_end / NS, UTC).date()
        with PIWebAPIClient(mock.api, compress=False) as client:
            ingest_partition(
                client,
                timeseries=lake.table(TIMESERIES.name),
                watermarks=lake.table(WATERMARKS.name),
                web_ids=web_ids,
                day=day,
                shard=shard_keys(1)[0],
                now=datetime.fromtimestamp(window_end / NS, UTC),
            )
        surface = read_values(
            lake.table(TIMESERIES.name),
            lake.table(LIVE_TIMESERIES.name),
            window_start,
            window_end + 1,
            today=day + timedelta(days=1),
        )
        assert set(surface["source"].to_pylist()) == {"batch"}
        surface = surface.set_column(1, "timestamp_ns", surface["timestamp"].cast(pa.int64()))
        rows = zip(*(surface[name].to_pylist() for name in COLUMNS), strict=True)
        assert Counter(rows) == truth
