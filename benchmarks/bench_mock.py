"""Throughput of the mock PI Web API's recorded reads: generation + JSON serialization (+ HTTP).

Prints values/s and µs per value for:

1. ``in-process``: ``DataSource.recorded`` + ``serialize.timed_values`` on 10,000-value pages (one core, no
   HTTP): the server's own CPU cost per value;
2. ``streamsets``: ``GET /streamsets/recorded?webId=..`` with ``--streams`` 1 s points, maxCount 10,000 each;
3. ``batch``: ``POST /batch`` with one ``/streams/{webId}/recorded`` sub-request (maxCount 10,000) per point.

For 2 and 3 the mock runs in its own process (``python -m osipi_dagster.mock``), so this client (which
only counts the values in the raw bytes) does not share its interpreter; the figure is wall clock.

Run: ``.venv/bin/python benchmarks/bench_mock.py [--tags 1000] [--streams 10] [--requests 20] [--gzip]``
(without ``--gzip`` the client asks for ``Accept-Encoding: identity``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import requests

from osipi_dagster.mock.archive import Archive
from osipi_dagster.mock.config import MockConfig
from osipi_dagster.mock.serialize import timed_values
from osipi_dagster.mock.server import free_port
from osipi_dagster.mock.timeparse import NS, format_time

NOW = "2025-01-06T12:00:00Z"
PAGE = 10_000


def in_process(config: MockConfig, pages: int) -> tuple[int, float]:
    """(values, seconds) of generating and serializing ``pages`` pages of the 1 s points."""
    archive = Archive(config, config.fixed_now_ns() or 0)
    now = config.fixed_now_ns() or 0
    points = [p for p in archive.points if p.sampling == "1s"]
    values, start = 0, time.perf_counter()
    for i in range(pages):
        point = points[i % len(points)]
        begin = now - (i + 1) * 3 * 3600 * NS
        block = archive.data.recorded(point, begin, now, now, PAGE)
        timed_values(block, point.units, None)
        values += len(block)
    return values, time.perf_counter() - start


def _windows(i: int) -> tuple[str, str]:
    end = MockConfig(now=NOW).fixed_now_ns() or 0
    begin = end - (i % 20 + 1) * 4 * 3600 * NS
    return format_time(begin), format_time(end)


def streamsets(api: str, session: requests.Session, webids: list[str], i: int) -> int:
    start, end = _windows(i)
    params = {"webId": webids, "startTime": start, "endTime": end, "maxCount": PAGE}
    response = session.get(f"{api}/streamsets/recorded", params=params)
    response.raise_for_status()
    return response.content.count(b'"Timestamp"')


def batch(api: str, session: requests.Session, webids: list[str], i: int) -> int:
    start, end = _windows(i)
    query = f"startTime={start}&endTime={end}&maxCount={PAGE}"
    body = {
        f"r{n}": {"Method": "GET", "Resource": f"{api}/streams/{w}/recorded?{query}"}
        for n, w in enumerate(webids)
    }
    response = session.post(f"{api}/batch", json=body, headers={"X-Requested-With": "bench"})
    if response.status_code != 207:
        raise RuntimeError(f"batch answered {response.status_code}: {response.text[:200]}")
    return response.content.count(b'"Timestamp"')


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (Linux ``/proc``)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(name: str, call: Callable[[int], int], requests_count: int, server_pid: int) -> None:
    """Median wall-clock rate of ``requests_count`` calls, and the server's CPU time per value overall."""
    rates, total, cpu_before = [], 0, cpu_seconds(server_pid)
    for i in range(requests_count):
        begin = time.perf_counter()
        values = call(i)
        total += values
        rates.append(values / (time.perf_counter() - begin))
    server_us = (cpu_seconds(server_pid) - cpu_before) / total * 1e6
    median = statistics.median(rates)
    print(
        f"{name:<12} {median:>12,.0f} values/s  {1e6 / median:6.2f} µs/value wall  "
        f"{server_us:5.2f} µs/value server CPU  (median of {requests_count} requests)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tags", type=int, default=1000)
    parser.add_argument("--streams", type=int, default=10)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--gzip", action="store_true", help="ask for gzip (the default asks for identity)")
    args = parser.parse_args()
    config = MockConfig(tags=args.tags, now=NOW, archive_days=30)
    values, seconds = in_process(config, args.requests * args.streams)
    print(f"{'in-process':<12} {values / seconds:>12,.0f} values/s  {seconds / values * 1e6:6.2f} µs/value")

    port = free_port()
    command = [sys.executable, "-m", "osipi_dagster.mock", "--port", str(port), "--tags", str(args.tags)]
    server = subprocess.Popen([*command, "--now", NOW, "--archive-days", "30"])
    api = f"http://127.0.0.1:{port}/piwebapi"
    try:
        session = requests.Session()
        session.headers["Accept-Encoding"] = "gzip" if args.gzip else "identity"
        deadline = time.monotonic() + 60
        while True:
            try:
                session.get(api, timeout=1)
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.1)
        query = {"query": "tag:=*.PV", "maxCount": 1000, "selectedFields": "Items.WebId;Items.Name"}
        points = session.get(f"{api}/points/search", params=query).json()["Items"]
        # The 1 s points: the flow and pressure PVs of each unit (FIC..01.PV, PI..03.PV).
        webids = [p["WebId"] for p in points if ".FIC" in p["Name"] or ".PI" in p["Name"]][: args.streams]
        measure("streamsets", lambda i: streamsets(api, session, webids, i), args.requests, server.pid)
        measure("batch", lambda i: batch(api, session, webids, i), args.requests, server.pid)
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
