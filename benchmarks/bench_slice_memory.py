"""What ``replace_slice`` holds while it writes: synthetic recorded values streamed into one
``bronze.pi_timeseries`` slice of a fresh lake, no PI and no Dagster, so the writer's memory shows alone.

``--batches`` batches of ``--rows`` rows (1,000 points, 45-character WebIds, random floats, the other
columns null or constant, as the mock's points are), each produced ``--pace`` seconds after the one before
(about the PI client's pace: 0.12 s a 100,000-value batch at 550,000 values/s end to end; 0 for a producer
faster than the writer), are written with ``replace_slice`` in one commit. A thread samples, every 50 ms,
the bytes allocated by Arrow's default memory pool (the caller's batches the writer holds: the row group
being gathered and the one being encoded) and the RSS; the figures are their maxima, the process's CPU
seconds during the write, and its peak RSS.

    .venv/bin/python benchmarks/bench_slice_memory.py                                    # 150 x 100,000 rows
    .venv/bin/python benchmarks/bench_slice_memory.py --pace 0 --batches 600             # a fast producer

Prints one line and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
from bench_ingest import self_peak_rss_mib, self_rss_mib

from osipi_dagster.contract import RECORDED_SCHEMA
from osipi_dagster.lake import Lakehouse, replace_slice

DAY = date(2025, 1, 6)
POINTS = 1000


class PeakSampler:
    """The maxima of Arrow's allocated bytes and of the RSS, sampled every 50 ms in a thread."""

    def __init__(self) -> None:
        self.arrow_mib = 0
        self.rss_mib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="peak-sampler", daemon=True)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.arrow_mib = max(self.arrow_mib, pa.total_allocated_bytes() >> 20)
            self.rss_mib = max(self.rss_mib, round(self_rss_mib()))


def recorded_batches(batches: int, rows: int, pace: float) -> Iterator[pa.RecordBatch]:
    """``batches`` batches of ``rows`` values, two points a batch, ``pace`` seconds apart."""
    web_ids = pa.array([f"F1DPsyntheticPointWebId{n:06d}abcdefghijklmnop" for n in range(POINTS)])
    day_start = int(datetime(DAY.year, DAY.month, DAY.day, tzinfo=UTC).timestamp()) * 1_000_000_000
    per_point = rows // 2
    rng = np.random.default_rng(0)
    false = pa.array(np.zeros(rows, bool))
    for i in range(batches):
        points = np.repeat(np.array([2 * i, 2 * i + 1]) % POINTS, [per_point, rows - per_point])
        seconds = np.concatenate([np.arange(per_point), np.arange(rows - per_point)]) % 86_400
        yield pa.RecordBatch.from_arrays(
            [
                web_ids.take(pa.array(points)),
                pa.array(day_start + seconds * 1_000_000_000 + i, pa.timestamp("ns", tz="UTC")),
                pa.array(rng.random(rows)),
                pa.nulls(rows, pa.string()),
                pa.nulls(rows, pa.int32()),
                pa.nulls(rows, pa.string()),
                false,
                pa.array(np.ones(rows, bool)),
                false,
                false,
                false,
                pa.nulls(rows, pa.string()),
            ],
            schema=RECORDED_SCHEMA,
        )
        if pace:
            time.sleep(pace)


def run(args: argparse.Namespace) -> dict[str, object]:
    """Write the slice; return the measurements."""
    with tempfile.TemporaryDirectory(prefix="bench_slice_memory_") as folder:
        root = Path(folder)
        table = Lakehouse(str(root / "lake")).table("bronze.pi_timeseries")
        cpu = time.process_time()
        started = time.perf_counter()
        with PeakSampler() as peaks:
            written = replace_slice(
                table,
                recorded_batches(args.batches, args.rows, args.pace),
                partition_date=DAY,
                tag_shard="s00",
            )
        wall = time.perf_counter() - started
        cpu = time.process_time() - cpu
    return {
        "rows": written.rows_written,
        "batch_rows": args.rows,
        "pace_seconds": args.pace,
        "wall_seconds": round(wall, 1),
        "cpu_seconds": round(cpu, 1),
        "arrow_max_mib": peaks.arrow_mib,
        "rss_max_mib": peaks.rss_mib,
        "peak_rss_mib": round(self_peak_rss_mib()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=150)
    parser.add_argument("--rows", type=int, default=100_000, help="rows a batch")
    parser.add_argument("--pace", type=float, default=0.12, help="seconds between batches")
    figures = run(parser.parse_args())
    print(
        f"{figures['rows']:,} rows in batches of {figures['batch_rows']:,} "
        f"every {figures['pace_seconds']} s: "
        f"{figures['wall_seconds']} s wall, {figures['cpu_seconds']} s CPU; Arrow memory at most "
        f"{figures['arrow_max_mib']} MiB, peak RSS {figures['peak_rss_mib']} MiB"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
