"""``osipi-stream`` under load: N points at 1 Hz from the mock (real clock) into a local live table.

Starts the mock in its own process (every point 1 Hz, the real clock, channels polled every 500 ms) and
``osipi-stream`` in another, lets the stream run ``--seconds`` after its first commit, samples the stream's
RSS and CPU every second, then stops it (SIGINT: it commits its buffer) and reads the table back:

- latency mock -> committed Delta: per value received over a channel, the Delta commit time of its
  micro-batch (from the table's history) minus the value's timestamp (the moment PI made it visible, as
  the mock's real clock does); p50 / p95 / p99 / max over the run after a warm-up of ``--warmup`` seconds;
- throughput: values committed per second over the run, against the N values per second offered; the
  sustained rate is the offered one when the latency stays flat (p99 within a few seconds), less otherwise;
- CPU of the stream per value committed (robust under the shared machine's load), its peak RSS and its RSS
  over time (first, middle, last samples); the mock's CPU over the run, also per value committed (when the
  mock uses a whole core, it is what limits the rate, not the stream);
- the wall time of the stream's commits (p50 / p95 / max, from its JSON lines) and the load average (1 min)
  when the run starts and ends;
- back-pressure: how often and how many seconds the stream paused reading from its channels over the whole
  run (its JSON lines; ``OSIPI_STREAM_MAX_BUFFERED_VALUES``).

    .venv/bin/python benchmarks/bench_stream.py                    # 10,000 points, 60 s
    .venv/bin/python benchmarks/bench_stream.py --points 20000 --seconds 60
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_ingest import ROOT, proc_cpu_seconds, wait_until_up

from osipi_dagster.lake import Lakehouse, LakeTable
from osipi_dagster.lake.live import BATCH_KEY, stream_commits
from osipi_dagster.lake.schemas import LIVE_TIMESERIES
from osipi_dagster.mock.server import free_port

NS = 1_000_000_000


def start_mock(points: int) -> tuple[subprocess.Popen, str]:
    """The mock in its own process: every point 1 Hz, the real clock."""
    port = free_port()
    command = [
        sys.executable, "-m", "osipi_dagster.mock", "--port", str(port), "--tags", str(points),
        "--sampling", "1s", "--archive-days", "1", "--late-share", "0", "--edit-share", "0",
    ]  # fmt: skip
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    api = f"http://127.0.0.1:{port}/piwebapi"
    wait_until_up(api, process)
    return process, api


def rss_mib(pid: int) -> tuple[float, float]:
    """(current, peak) RSS of ``pid`` in MiB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def run(args: argparse.Namespace) -> dict[str, object]:
    """Run the mock and the stream; return the measurements."""
    mock, api = start_mock(args.points)
    lake_root = Path(tempfile.mkdtemp(prefix="bench-stream-"))
    env = {**os.environ, "OSIPI_PI_BASE_URL": api, "OSIPI_LAKE_ROOT": str(lake_root)}
    env["OSIPI_PI_COMPRESS"] = "false"  # loopback
    log = lake_root / "stream.log"
    try:
        with log.open("wb") as out:
            command = [sys.executable, "-m", "osipi_dagster.stream"]
            stream = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            table = Lakehouse(str(lake_root)).table(LIVE_TIMESERIES.name)
            deadline = time.monotonic() + 600
            while not (table.exists() and stream_commits(table, None, limit=5)):
                if stream.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"osipi-stream did not commit:\n{log.read_text()[-3000:]}")
                time.sleep(0.5)
            started_ns, cpu_before = time.time_ns(), proc_cpu_seconds(stream.pid)
            load_start = os.getloadavg()[0]
            mock_cpu_before = proc_cpu_seconds(mock.pid)
            samples = []
            while time.time_ns() - started_ns < args.seconds * NS:
                samples.append(rss_mib(stream.pid)[0])
                time.sleep(1.0)
            cpu = proc_cpu_seconds(stream.pid) - cpu_before
            mock_cpu = proc_cpu_seconds(mock.pid) - mock_cpu_before
            peak = rss_mib(stream.pid)[1]
            ended_ns = time.time_ns()
        finally:
            stream.send_signal(signal.SIGINT)
            stream.wait(120)
    finally:
        mock.terminate()
        try:
            mock.wait(30)
        except subprocess.TimeoutExpired:  # uvicorn waits for open WebSockets: do not wait with it
            mock.kill()
            mock.wait()
    result = measure(args, table, started_ns, ended_ns, cpu, peak, samples)
    committed = float(result["committed_values_per_s"]) * args.seconds  # type: ignore[arg-type]
    return result | {
        "mock_cpu_s": round(mock_cpu, 2),
        "mock_cpu_us_per_value": round(mock_cpu / max(committed, 1) * 1e6, 2),
        "commit_wall_s": commit_wall(log),
        "channel_pauses": pauses(log),
        "load_average_1m_start": load_start,
    }


def commit_lines(log: Path) -> list[dict]:
    """The stream's JSON lines (one per commit)."""
    return [json.loads(line) for line in log.read_text().splitlines() if line.startswith('{"version"')]


def pauses(log: Path) -> dict[str, float]:
    """How many times and how many seconds the stream paused reading from its channels (back-pressure)."""
    lines = commit_lines(log)
    return {
        "count": sum(line["paused"] for line in lines),
        "seconds": round(sum(line["paused_s"] for line in lines), 1),
    }


def commit_wall(log: Path) -> dict[str, float]:
    """p50 / p95 / max of the stream's commit wall times (its JSON lines)."""
    walls = [line["commit_s"] for line in commit_lines(log)]
    if not walls:
        return {}
    return {q: round(float(np.percentile(walls, p)), 3) for q, p in (("p50", 50), ("p95", 95), ("max", 100))}


def measure(
    args: argparse.Namespace,
    table: LakeTable,
    started_ns: int,
    ended_ns: int,
    cpu: float,
    peak: float,
    samples: list[float],
) -> dict[str, object]:
    """Latency and throughput from the table, with the process figures."""
    history = stream_commits(table, None, limit=100_000)
    commits = {int(commit[BATCH_KEY]): commit["timestamp"] * 1_000_000 for commit in history}
    rows = (
        table.load().to_pyarrow_dataset().to_table(columns=["timestamp_ns", "received_at", "batch_version"])
    )
    committed = np.array([commits[v] for v in rows["batch_version"].to_pylist()], np.int64)
    stamps = rows["timestamp_ns"].to_numpy()
    received = rows["received_at"].cast("int64").to_numpy() * 1000
    # Values received over a channel (a gap read's rows are received when the read ends: not a latency).
    streamed = (received - stamps) < 60 * NS
    window = (stamps >= started_ns + args.warmup * NS) & (stamps < ended_ns) & streamed
    latency = (committed[window] - stamps[window]) / NS
    in_run = (committed >= started_ns) & (committed < ended_ns)
    rate = int(in_run.sum()) / ((ended_ns - started_ns) / NS)
    percentiles = (("p50", 50), ("p95", 95), ("p99", 99), ("max", 100))
    rss = [samples[0], samples[len(samples) // 2], samples[-1]] if samples else []
    return {
        "points": args.points,
        "seconds": args.seconds,
        "offered_values_per_s": args.points,
        "committed_values_per_s": round(rate, 1),
        "latency_s": {q: round(float(np.percentile(latency, p)), 3) for q, p in percentiles}
        if len(latency)
        else {},
        "commits": len(commits),
        "stream_cpu_s": round(cpu, 2),
        "stream_cpu_us_per_value": round(cpu / max(rate * args.seconds, 1) * 1e6, 2),
        "stream_peak_rss_mib": round(peak, 1),
        "stream_rss_mib_first_mid_last": [round(value, 1) for value in rss],
        "load_average_1m": os.getloadavg()[0],
    }


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--points", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=10.0)
    result = run(parser.parse_args())
    print(json.dumps(result))


if __name__ == "__main__":
    main()
