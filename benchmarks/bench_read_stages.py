"""Where a live recorded read spends its CPU, stage by stage, and how many page faults it takes.

Starts the mock PI Web API (``--sampling 1s``, clock at the end of 2025-01-06), reads ``--tags`` points over
the first ``--hours`` of that day with the client's defaults (gzip, stream sets, planned pages), and prints
for the whole read: values, requests, this process's CPU per value, minor page faults per 100,000 values,
the gzip and inflated bytes per value, and the thread CPU time per value and minor page faults per 100,000
values of each stage, measured around the
client's own functions (inflate ``transport._gunzip``, decode ``decode.decode_streamset`` /
``decode_page`` / ``decode_batch``, the odd-value scan ``decode.odd_values``, batch building
``decode.build_batch`` and, inside it, the timestamp cast, the value columns, the flag columns and the
repeated WebId and units columns). The wrappers are this script's only change to the client.

    .venv/bin/python benchmarks/bench_read_stages.py --tags 3000 --hours 1    # many tags, short window
    .venv/bin/python benchmarks/bench_read_stages.py --tags 125 --hours 24    # the same values, few tags

``--dictionary`` reads ``web_id`` and ``units`` as dictionary columns, as the bronze ingest does;
``--concurrency`` sets the requests in flight (the client's default is 2; 1 keeps every stage in one thread).

Set ``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_`` in the environment to see their effect on the
page faults (docs/OPERATIONS.md, "The memory allocator").
"""

from __future__ import annotations

import argparse
import json
import resource
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta

from bench_ingest import DAY, start_mock

from osipi_dagster.pi import PIWebAPIClient, transport
from osipi_dagster.pi import decode as dec

STAGES = {
    "inflate": (transport, "_gunzip"),
    "decode_streamset": (dec, "decode_streamset"),
    "decode_page": (dec, "decode_page"),
    "decode_batch": (dec, "decode_batch"),
    "odd_values": (dec, "odd_values"),
    "build_batch": (dec, "build_batch"),
    "build: timestamps": (dec, "_timestamps"),
    "build: values": (dec, "_values"),
    "build: flags": (dec, "_quality"),
    "build: repeated strings": (dec, "_repeat"),
}


def timed(
    name: str, function: Callable, seconds: Counter, faults: Counter, sizes: Counter, lock: threading.Lock
) -> Callable:
    """``function`` adding its calling thread's CPU time to ``seconds[name]`` and minor page faults to
    ``faults[name]`` (and, for the inflate, the bytes in and out to ``sizes``)."""

    def wrapper(*args, **kwargs):
        faulted = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
        started = time.thread_time()
        result = function(*args, **kwargs)
        spent = time.thread_time() - started
        faulted = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - faulted
        with lock:
            seconds[name] += spent
            faults[name] += faulted
            if name == "inflate":
                sizes["gzip"] += len(args[0])
                sizes["inflated"] += len(result)
        return result

    return wrapper


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tags", type=int, default=3000)
    parser.add_argument("--hours", type=int, default=1, help="1 to 24: the first hours of 2025-01-06")
    parser.add_argument(
        "--dictionary", action="store_true", help="web_id and units as dictionary columns (as ingest reads)"
    )
    parser.add_argument("--concurrency", type=int, default=2, help="requests in flight at once")
    args = parser.parse_args()
    seconds: Counter[str] = Counter()
    stage_faults: Counter[str] = Counter()
    sizes: Counter[str] = Counter()
    lock = threading.Lock()
    for name, (module, attribute) in STAGES.items():
        setattr(
            module, attribute, timed(name, getattr(module, attribute), seconds, stage_faults, sizes, lock)
        )
    process, base_url = start_mock(args.tags, DAY + timedelta(days=1))
    try:
        with PIWebAPIClient(base_url) as client:
            web_ids = [p.web_id for p in client.points(client.data_servers()[0].web_id)]
            end = DAY + timedelta(hours=args.hours, microseconds=-1)
            faults, cpu = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.process_time()
            read = client.read_recorded(
                web_ids,
                DAY.isoformat(),
                end.isoformat(),
                dictionary=args.dictionary,
                concurrency=args.concurrency,
            )
            values = sum(batch.num_rows for batch in read)
            cpu = time.process_time() - cpu
            faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    finally:
        process.terminate()
        process.wait()
    figures = {
        "tags": args.tags,
        "hours": args.hours,
        "dictionary": args.dictionary,
        "values": values,
        "requests": read.requests,
        "client_cpu_ns_per_value": round(cpu / values * 1e9, 1),
        "page_faults_per_100k_values": round(faults / values * 1e5),
        "gzip_bytes_per_value": round(sizes["gzip"] / values, 2),
        "inflated_bytes_per_value": round(sizes["inflated"] / values, 1),
        "stage_cpu_ns_per_value": {name: round(seconds[name] / values * 1e9, 1) for name in STAGES},
        "stage_page_faults_per_100k_values": {
            name: round(stage_faults[name] / values * 1e5) for name in STAGES
        },
    }
    print(
        f"{values:,} values of {args.tags} points x {args.hours} h in {read.requests:,} requests: client "
        f"{figures['client_cpu_ns_per_value']} ns CPU/value, {figures['page_faults_per_100k_values']:,} page "
        f"faults per 100,000 values, {figures['gzip_bytes_per_value']} gzip / "
        f"{figures['inflated_bytes_per_value']} inflated bytes per value"
    )
    for name, ns in figures["stage_cpu_ns_per_value"].items():
        stage_faults_per_100k = figures["stage_page_faults_per_100k_values"][name]
        print(f"  {name:24s} {ns:7.1f} ns/value {stage_faults_per_100k:7,} page faults per 100,000 values")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
