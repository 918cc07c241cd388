"""Throughput of the PI Web API client's bulk recorded reads.

Prints, for the streamsets and the batch modes, values per second (wall clock) and the client's CPU time per
value (``time.process_time`` of this process only; every server runs in another process):

0. ``decode only``: the decode path alone, from a response body in memory to an Arrow batch (typed msgspec
   decode, per-stream paging, column building, one vectorised timestamp cast), with the GC enabled;
1. ``pregenerated``: a tiny local HTTP server that answers from pre-rendered JSON fragments, so the server
   costs next to nothing and the figure is the client's own ceiling;
2. ``live mock``: the project's mock PI Web API (``python -m osipi_dagster.mock``) generating the data; the
   line ends with the mock's CPU time per value (``/proc``), so the server's cost per value can be compared
   between shapes (e.g. ``--tags 600 --hours 1 --sampling 1s`` against ``--tags 100 --hours 6``).

Run: ``.venv/bin/python benchmarks/bench_client.py [--tags 200] [--hours 6] [--repeat 3] [--sampling 1s]``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import requests

from osipi_dagster.pi import PIWebAPIClient
from osipi_dagster.pi import decode as dec
from osipi_dagster.pi.paging import Cursor, plan_page

ROOT = Path(__file__).resolve().parent.parent
ORIGIN = datetime(2025, 1, 6, tzinfo=UTC)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- the pre-generated server -------------------------------------------------------------------------


def _serve_pregenerated(port: int, seconds: int) -> None:
    """Answer recorded reads for any WebId with one value per second from ORIGIN, from pre-rendered JSON."""
    stamps = [(ORIGIN + timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%SZ") for i in range(seconds)]
    index = {s: i for i, s in enumerate(stamps)}
    index.update({s[:-1] + ".0000000Z": i for i, s in enumerate(stamps)})
    fragments = [
        f'{{"Timestamp":"{s}","Value":{20 + (i % 600) / 7:.6f},"Good":true,"Questionable":false,'
        f'"Substituted":false,"Annotated":false}}'
        for i, s in enumerate(stamps)
    ]

    def items(query: dict[str, str]) -> str:
        first = index.get(query["startTime"], 0)
        last = index.get(query["endTime"], seconds - 1)
        stop = min(last + 1, first + int(query["maxCount"]))
        return ",".join(fragments[first:stop])

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:
            pass

        def _send(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            pairs = parse_qsl(parts.query)
            query = dict(pairs)
            if parts.path.endswith("/streamsets/recorded"):
                streams = ",".join(
                    f'{{"WebId":"{v}","UnitsAbbreviation":"degC","Items":[{items(query)}]}}'
                    for k, v in pairs
                    if k == "webId"
                )
                self._send(200, f'{{"Links":{{}},"Items":[{streams}]}}'.encode())
            elif parts.path.endswith("/recorded"):
                self._send(
                    200, f'{{"Links":{{}},"UnitsAbbreviation":"degC","Items":[{items(query)}]}}'.encode()
                )
            else:
                self._send(404, b'{"Errors":["not here"]}')

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            answers = []
            for key, sub in body.items():
                query = dict(parse_qsl(urlsplit(sub["Resource"]).query))
                content = f'{{"Links":{{}},"UnitsAbbreviation":"degC","Items":[{items(query)}]}}'
                answers.append(f'"{key}":{{"Status":200,"Headers":{{}},"Content":{content}}}')
            self._send(207, ("{" + ",".join(answers) + "}").encode())

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


def _decode_only(streams: int, per_stream: int, repeat: int) -> None:
    """CPU per value of body -> typed structs -> paging -> Arrow, exactly as the engine chains them."""
    stamps = [(ORIGIN + timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%S.%fZ") for i in range(per_stream)]
    items = ",".join(
        f'{{"Timestamp":"{s}","Value":{20 + (i % 600) / 7:.6f},"Good":true,"Questionable":false,'
        f'"Substituted":false,"Annotated":false}}'
        for i, s in enumerate(stamps)
    )
    body = (
        '{"Links":{},"Items":['
        + ",".join(
            f'{{"WebId":"W{n:05d}","UnitsAbbreviation":"degC","Items":[{items}]}}' for n in range(streams)
        )
        + "]}"
    ).encode()
    runs = []
    for _ in range(repeat):
        cpu = time.process_time()
        page = dec.decode_page(body, dec.StreamValuesPage)
        segments = []
        for stream in page.Items:
            step = plan_page([v.Timestamp for v in stream.Items], Cursor(stamps[0]), per_stream + 1)
            segments.append(
                dec.Segment(stream.WebId, stream.UnitsAbbreviation, stream.Items[step.begin : step.end])
            )
        batch = dec.build_batch(segments)
        runs.append((time.process_time() - cpu) / batch.num_rows * 1e6)
    print(
        f"{'decode only':<13} {'-':<10} {streams * per_stream:>10,} values {'':>20} "
        f"{statistics.median(runs):6.3f} µs CPU/value"
    )


# -- measuring ----------------------------------------------------------------------------------------


def _server_cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds of the server process ``pid`` (Linux ``/proc``); 0 without one."""
    if pid is None:
        return 0.0
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _measure(
    client: PIWebAPIClient, web_ids: list[str], start: str, end: str, mode: str, server: int | None
) -> tuple[float, float, float, int]:
    wall, cpu, server_cpu = time.perf_counter(), time.process_time(), _server_cpu_seconds(server)
    read = client.read_recorded(web_ids, start, end, mode=mode)
    rows = sum(batch.num_rows for batch in read)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    server_cpu = _server_cpu_seconds(server) - server_cpu
    if read.failures:
        raise SystemExit(f"{len(read.failures)} streams failed, e.g. {read.failures[0]}")
    return rows / wall, cpu / rows * 1e6, server_cpu / rows * 1e6, rows


def _report(
    label: str,
    client: PIWebAPIClient,
    web_ids: list[str],
    start: str,
    end: str,
    repeat: int,
    server: int | None = None,
) -> None:
    """One line per mode; ``server``: the pid of a server process whose CPU per value to print too."""
    for mode in ("streamsets", "batch"):
        runs = [_measure(client, web_ids, start, end, mode, server) for _ in range(repeat)]
        rate = statistics.median(r[0] for r in runs)
        cpu = statistics.median(r[1] for r in runs)
        server_cpu = f", server {statistics.median(r[2] for r in runs):6.3f}" if server else ""
        values = runs[0][3]
        print(
            f"{label:<13} {mode:<10} {values:>10,} values {rate:>11,.0f} values/s {cpu:6.3f} µs CPU/value"
            f"{server_cpu}"
        )


def _wait_until_up(url: str) -> None:
    for _ in range(600):
        try:
            requests.get(url, timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tags", type=int, default=200)
    parser.add_argument("--hours", type=float, default=6.0, help="window per tag (1 value/s pre-generated)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-live", action="store_true")
    parser.add_argument(
        "--sampling", default=None, help="the live mock's sampling for every point (e.g. 1s; default: mixed)"
    )
    args = parser.parse_args()
    seconds = int(args.hours * 3600)
    _decode_only(100, 5000, args.repeat)
    start, end = ORIGIN.isoformat(), (ORIGIN + timedelta(seconds=seconds - 1)).isoformat()

    port = _free_port()
    server = multiprocessing.get_context("spawn").Process(
        target=_serve_pregenerated, args=(port, seconds), daemon=True
    )
    server.start()
    try:
        base = f"http://127.0.0.1:{port}/piwebapi"
        _wait_until_up(base)
        with PIWebAPIClient(base) as client:
            _report("pregenerated", client, [f"W{i:05d}" for i in range(args.tags)], start, end, args.repeat)
    finally:
        server.terminate()
    if args.skip_live:
        return

    port = _free_port()
    now = "2025-01-06T12:00:00Z"
    mock = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "osipi_dagster.mock",
            "--port",
            str(port),
            "--tags",
            str(args.tags),
            "--now",
            now,
            "--archive-days",
            "3",
            *(["--sampling", args.sampling] if args.sampling else []),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}/piwebapi"
        _wait_until_up(base)
        with PIWebAPIClient(base) as client:
            server_id = client.data_servers()[0].web_id
            web_ids = [p.web_id for p in client.points(server_id)][: args.tags]
            live_end = datetime(2025, 1, 6, 12, tzinfo=UTC)
            live_start = live_end - timedelta(hours=args.hours)
            _report(
                "live mock",
                client,
                web_ids,
                live_start.isoformat(),
                live_end.isoformat(),
                args.repeat,
                server=mock.pid,
            )
    finally:
        mock.terminate()
        mock.wait(10)


if __name__ == "__main__":
    main()
