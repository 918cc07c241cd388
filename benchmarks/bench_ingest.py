"""End-to-end ingestion: a Dagster materialization of ``pi_timeseries`` for N 1 Hz points x a time window.

Starts the mock PI Web API in its own process (``python -m osipi_dagster.mock --sampling 1s --tags N --now
<fixed>``), materializes ``pi_af`` and ``pi_points`` (so the tag catalog exists), then ``pi_timeseries``
for one partition through Dagster (``dg.materialize`` on a ``dg.instance_for_test()`` instance), with
``OSIPI_TAG_SHARDS=1`` so the single shard ``s00`` holds every point. The partition is 2025-01-06:

* ``--hours 24`` fixes the mock's clock at the end of that day, so the day is closed and read whole
  (the target case: ``--points 1000 --hours 24``, about 86.4 million values);
* ``--hours H`` below 24 fixes the clock at 00:00 + H, so the day is the open day, read incrementally
  from its start (no watermark yet) up to now.

Prints the values written, the wall time of the ``pi_timeseries`` materialization (Dagster run included),
values/s end to end, the CPU time per value of this process (and of delta-rs's ``tokio-rt-worker`` threads in
it: the Rust side of the Delta append, about nothing since bronze's Parquet files are written by Arrow's
writer in this process's own threads; and the kernel's share of it, with the process's minor page faults
per 100,000 values) and of the mock, the cores used on average (both processes' CPU
seconds over the wall time: 2 is the whole machine), the share of requests that were full (their answer
carried at least 80 % of ``values_per_request``: ``pi_full_requests`` of ``pi_requests`` in the
materialization's metadata) and their average fill, and the peak RSS of this process (``ru_maxrss``: it
includes Dagster and the lake writer) and of the mock (``VmHWM``), then one JSON line.

    .venv/bin/python benchmarks/bench_ingest.py                                   # quick: 200 points x 6 h
    .venv/bin/python benchmarks/bench_ingest.py --points 1000 --hours 24          # the target case
    .venv/bin/python benchmarks/bench_ingest.py --mode batch --values-per-request 200000 --concurrency 3
    .venv/bin/python benchmarks/bench_ingest.py --identity      # experiment: no gzip between mock and client

One configuration per invocation, so each peak RSS belongs to that configuration alone.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
DAY = datetime(2025, 1, 6, tzinfo=UTC)
SHARD = "s00"


def free_port() -> int:
    """A TCP port free on the loopback right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(url: str, process: subprocess.Popen) -> None:
    """Wait until ``url`` answers (the mock builds its archive and AF model first)."""
    for _ in range(1200):
        if process.poll() is not None:
            raise SystemExit(f"the mock exited with status {process.returncode}")
        try:
            requests.get(url, timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (Linux ``/proc``)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def thread_cpu_seconds(name: str) -> float:
    """CPU seconds of this process's live threads whose kernel name is ``name`` (e.g. delta-rs's
    ``tokio-rt-worker`` threads, which outlive the write: the Rust side of the Delta append)."""
    total = 0.0
    for task in Path("/proc/self/task").iterdir():
        try:
            if (task / "comm").read_text().strip() != name:
                continue
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended meanwhile
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def proc_peak_rss_mib(pid: int) -> float:
    """Peak resident set size (``VmHWM``) of process ``pid`` in MiB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def self_peak_rss_mib() -> float:
    """Peak RSS of this process in MiB (Linux reports ``ru_maxrss`` in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def self_rss_mib() -> float:
    """This process's resident set size now (``VmRSS``) in MiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def self_cpu_seconds() -> float:
    """User + system CPU seconds of this process, every thread included."""
    return self_cpu_usage()[0]


def self_cpu_usage() -> tuple[float, float, int]:
    """This process's CPU seconds so far (user + system, every thread included), the system's share of
    them (the kernel: mostly the faults of memory mapped afresh, docs/OPERATIONS.md "The memory
    allocator") and its minor page faults."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime, usage.ru_stime, usage.ru_minflt


def start_mock(points: int, now: datetime) -> tuple[subprocess.Popen, str]:
    """The mock in its own process, every point 1 Hz, the clock fixed at ``now``; returns (process, api)."""
    port = free_port()
    command = [
        sys.executable, "-m", "osipi_dagster.mock", "--port", str(port), "--tags", str(points),
        "--sampling", "1s", "--now", now.isoformat().replace("+00:00", "Z"), "--archive-days", "3",
    ]  # fmt: skip
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    api = f"http://127.0.0.1:{port}/piwebapi"
    wait_until_up(api, process)
    return process, api


def run(args: argparse.Namespace) -> dict[str, object]:
    """Materialize the catalog then one ``pi_timeseries`` partition; return the measurements."""
    import dagster as dg

    from osipi_dagster.defs.pi_server import server_assets
    from osipi_dagster.defs.resources import DeltaLakehouseResource, PIWebAPIResource
    from osipi_dagster.settings import PIServerSettings

    assets = server_assets(PIServerSettings(tag_shards=1))  # one shard: the whole catalog in one partition
    pi_af, pi_points, pi_timeseries = assets.af, assets.points, assets.timeseries

    now = DAY + timedelta(hours=args.hours)
    root = args.root or Path(tempfile.mkdtemp(prefix="bench_ingest_"))
    load_before = os.getloadavg()
    mock, api = start_mock(args.points, now)
    try:
        resources = {
            "pi": PIWebAPIResource(
                base_url=api,
                compress=not args.identity,
                read_mode=args.mode,
                values_per_request=args.values_per_request,
                streams_per_request=args.streams_per_request,
                concurrency=args.concurrency,
            ),
            "lakehouse": DeltaLakehouseResource(root=str(root)),
        }
        with dg.instance_for_test() as instance:
            started = time.perf_counter()
            catalog = dg.materialize([pi_af, pi_points], resources=resources, instance=instance)
            assert catalog.success
            catalog_seconds = time.perf_counter() - started
            rss_before = self_peak_rss_mib()
            mock_cpu, (own_cpu, system_cpu, faults), delta_cpu = (
                proc_cpu_seconds(mock.pid),
                self_cpu_usage(),
                thread_cpu_seconds("tokio-rt-worker"),
            )
            started = time.perf_counter()
            result = dg.materialize(
                [pi_timeseries],
                resources=resources,
                instance=instance,
                partition_key=f"{DAY.date().isoformat()}|{SHARD}",
            )
            wall = time.perf_counter() - started
            assert result.success
            mock_cpu = proc_cpu_seconds(mock.pid) - mock_cpu
            own_after, system_after, faults_after = self_cpu_usage()
            own_cpu, system_cpu, faults = (
                own_after - own_cpu,
                system_after - system_cpu,
                faults_after - faults,
            )
            delta_cpu = thread_cpu_seconds("tokio-rt-worker") - delta_cpu
            metadata = result.asset_materializations_for_node("pi_timeseries")[0].metadata
        mock_rss = proc_peak_rss_mib(mock.pid)
    finally:
        mock.terminate()
        mock.wait(10)
        if args.root is None:
            shutil.rmtree(root, ignore_errors=True)
    values = int(metadata["dagster/row_count"].value)
    requests = int(metadata["pi_requests"].value)
    return {
        "points": args.points,
        "hours": args.hours,
        "mode": args.mode,
        "values_per_request": args.values_per_request,
        "streams_per_request": args.streams_per_request,
        "concurrency": args.concurrency,
        "accept_encoding": "identity" if args.identity else "gzip, deflate",
        "values": values,
        "requests": requests,
        "full_request_share": round(int(metadata["pi_full_requests"].value) / requests, 3),
        "values_per_request_filled": round(values / requests / args.values_per_request, 3),
        "catalog_seconds": round(catalog_seconds, 1),
        "wall_seconds": round(wall, 1),
        "ingest_seconds": metadata["duration_seconds"].value,
        "values_per_second": round(values / wall),
        "cores_used": round((own_cpu + mock_cpu) / wall, 2),
        "client_cpu_us_per_value": round(own_cpu / values * 1e6, 3),
        "delta_rs_cpu_us_per_value": round(delta_cpu / values * 1e6, 3),
        "client_system_cpu_us_per_value": round(system_cpu / values * 1e6, 3),
        "client_page_faults_per_100k_values": round(faults / values * 1e5),
        "mock_cpu_us_per_value": round(mock_cpu / values * 1e6, 3),
        "peak_rss_mib": round(self_peak_rss_mib()),
        "peak_rss_mib_before_timeseries": round(rss_before),
        "mock_peak_rss_mib": round(mock_rss),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=200)
    parser.add_argument(
        "--hours", type=float, default=6.0, help="window from 2025-01-06T00:00Z (24 = closed)"
    )
    parser.add_argument("--mode", choices=("streamsets", "batch", "streams"), default="streamsets")
    parser.add_argument("--values-per-request", type=lambda s: int(s.replace("_", "")), default=100_000)
    parser.add_argument("--streams-per-request", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument(
        "--identity",
        action="store_true",
        help="experiment: the client asks for Accept-Encoding identity instead of gzip (no compression)",
    )
    parser.add_argument("--root", type=Path, default=None, help="table root (default: a temporary folder)")
    args = parser.parse_args()
    if not 0 < args.hours <= 24:
        parser.error("--hours must be in (0, 24]")
    figures = run(args)
    print(
        f"{figures['values']:,} values of {args.points} points x {args.hours:g} h ({args.mode}, "
        f"values_per_request {args.values_per_request:,}, streams_per_request {args.streams_per_request}, "
        f"concurrency {args.concurrency}"
        f"{', identity' if args.identity else ''}): "
        f"{figures['wall_seconds']} s wall = {figures['values_per_second']:,} values/s end to end; "
        f"CPU µs/value: this process {figures['client_cpu_us_per_value']} (of which delta-rs threads "
        f"{figures['delta_rs_cpu_us_per_value']}, kernel {figures['client_system_cpu_us_per_value']}, "
        f"{figures['client_page_faults_per_100k_values']:,} page faults per 100,000 values), mock "
        f"{figures['mock_cpu_us_per_value']}; requests {figures['requests']:,}, on average "
        f"{figures['values_per_request_filled']:.0%} full, share at least 80 % full "
        f"{figures['full_request_share']}; peak RSS {figures['peak_rss_mib']:,} MiB "
        f"(mock {figures['mock_peak_rss_mib']:,} MiB)"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
