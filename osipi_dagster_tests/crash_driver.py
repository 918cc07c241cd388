"""Run one time-series partition in a real process and kill that process (SIGKILL) at a chosen point.

    python -m osipi_dagster_tests.crash_driver --api URL --root DIR --day 2025-01-05 --shard s02 \
        --web-ids ID,ID,... --crash after-data-commit|mid-stream|none [--after-batches N] [--small-files]

* ``after-data-commit``: ``write_watermarks`` (as ``osipi_dagster.ingest.timeseries`` calls it, so only
  after ``replace_slice`` returned) kills the process instead of writing.
* ``mid-stream``: the client's read yields ``--after-batches`` batches into the Delta commit, then the
  process kills itself while the Parquet writer is consuming the stream.
* ``--small-files``: make the writer roll its Parquet files over every few thousand rows, so that files really
  are on disk (written, not yet committed) when the process dies.

Only the crash is placed by patching, and only inside this process; the ingestion itself is the real code.
The shard's WebIds come from the parent (``shard_points`` of its catalog): importing the catalog module
would import Dagster and double the process's start-up time.
Progress goes to stdout, one line per event, flushed, so the parent sees how far the run got.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import sys
from datetime import date, timedelta

import osipi_dagster.ingest.timeseries as ingest
import osipi_dagster.lake.timeseries as lake_timeseries
from osipi_dagster.ingest.server_clock import server_now
from osipi_dagster.lake import Lakehouse
from osipi_dagster.pi import PIWebAPIClient
from osipi_dagster.pi.options import ReadOptions


def say(text: str) -> None:
    print(text, flush=True)


def die(reason: str) -> None:
    say(f"SIGKILL {reason}")
    os.kill(os.getpid(), signal.SIGKILL)


class DyingRead:
    """A ``StreamRead`` that yields ``batches`` batches, then kills the process when asked for more."""

    def __init__(self, read, batches: int) -> None:
        self._read = read
        self._left = batches
        self.failures = read.failures

    def __iter__(self) -> DyingRead:
        return self

    def __next__(self):
        if self._left == 0:
            die("mid-stream")
        batch = next(self._read)
        self._left -= 1
        say(f"batch {batch.num_rows}")
        return batch

    @property
    def requests(self) -> int:
        return self._read.requests


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="crash_driver")
    parser.add_argument("--api", required=True)
    parser.add_argument("--root", required=True)
    parser.add_argument("--day", required=True)
    parser.add_argument("--shard", required=True)
    parser.add_argument("--web-ids", required=True, help="the shard's point WebIds, comma-separated")
    parser.add_argument("--crash", choices=("after-data-commit", "mid-stream", "none"), required=True)
    parser.add_argument("--after-batches", type=int, default=3)
    parser.add_argument("--values-per-request", type=int, default=20_000)
    parser.add_argument("--overlap-minutes", type=int, default=60)
    parser.add_argument("--small-files", action="store_true")
    args = parser.parse_args(argv)

    lake = Lakehouse(args.root)
    client = PIWebAPIClient(args.api)
    if args.crash == "after-data-commit":
        ingest.write_watermarks = lambda *_, **__: die("after-data-commit")  # type: ignore[assignment]
    if args.crash == "mid-stream":
        read_recorded = client.read_recorded

        def dying_read_recorded(*positional, **named):
            return DyingRead(read_recorded(*positional, **named), args.after_batches)

        client.read_recorded = dying_read_recorded  # type: ignore[method-assign]
    if args.small_files:
        lake_timeseries.BRONZE_LAYOUT = dataclasses.replace(
            lake_timeseries.BRONZE_LAYOUT, target_file_size=64 * 1024, row_group_rows=4096
        )
    result = ingest.ingest_partition(
        client,
        timeseries=lake.table("bronze.pi_timeseries"),
        watermarks=lake.table("checkpoints.pi_watermarks"),
        web_ids=args.web_ids.split(","),
        day=date.fromisoformat(args.day),
        shard=args.shard,
        now=server_now(client),
        overlap=timedelta(minutes=args.overlap_minutes),
        settings=ReadOptions(values_per_request=args.values_per_request),
        run_id="crash-driver",
    )
    say(f"done {result.rows} rows, version {result.write.version if result.write else None}")
    client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
