"""Throughput and peak memory of ``replace_slice`` for one (date, shard) slice of synthetic PI values.

Generates ``--rows`` values in the PI client's schema with numpy, in batches of ``--batch-rows``, point
after point and in time order within a point (the order the client yields them), spread evenly over one
UTC day, streams them through :func:`osipi_dagster.lake.replace_slice`, then replaces the same slice a
second time (the idempotent re-run), then replaces the day's last ``--range-hours`` hours with their rows (an
open day's run re-reading its overlap: the files holding those rows are removed and their other rows written
again). Prints, per write, rows/s and the process's CPU nanoseconds per row written (and per row kept, for
the range), and the process's peak RSS.

    .venv/bin/python benchmarks/bench_lake.py --rows 10_000_000
    .venv/bin/python benchmarks/bench_lake.py --rows 86_400_000 --points 1000   # a 1,000-point 1 Hz day
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from osipi_dagster.contract import RECORDED_SCHEMA
from osipi_dagster.lake import Lakehouse, read_slice, replace_slice, row_count

DAY = date(2025, 1, 6)
DAY_START_NS = int(datetime(DAY.year, DAY.month, DAY.day, tzinfo=UTC).timestamp()) * 1_000_000_000
DAY_NS = 86_400 * 1_000_000_000


def synthetic_batches(rows: int, points: int, batch_rows: int, seed: int = 7) -> Iterator[pa.RecordBatch]:
    """``rows`` recorded values of ``points`` points, as the client would yield them."""
    rng = np.random.default_rng(seed)
    per_point = -(-rows // points)
    step_ns = DAY_NS // per_point
    web_ids = pa.array([f"F1DPmN4ZbWQ1AkSb3nXwH0AAAA{i:06d}QUJDX1NFUlZFUlxUQUc" for i in range(points)])
    units = pa.scalar("degC")
    for start in range(0, rows, batch_rows):
        index = np.arange(start, min(start + batch_rows, rows), dtype=np.int64)
        n = len(index)
        point, position = np.divmod(index, per_point)
        # Sub-microsecond jitter keeps PI's 100 ns ticks in the data, as real archives have.
        timestamps = DAY_START_NS + position * step_ns + rng.integers(0, 10, n) * 100
        good = rng.random(n) > 0.001
        values = np.round(np.sin(position / 600.0) * 50 + rng.normal(0, 0.5, n), 3)
        yield pa.RecordBatch.from_arrays(
            [
                web_ids.take(pa.array(point)),
                pa.array(timestamps, pa.timestamp("ns", tz="UTC")),
                pa.array(values),
                pa.nulls(n, pa.string()),
                pa.nulls(n, pa.int32()),
                pa.nulls(n, pa.string()),
                pa.array(~good),
                pa.array(good),
                pa.repeat(pa.scalar(False), n),
                pa.repeat(pa.scalar(False), n),
                pa.repeat(pa.scalar(False), n),
                pa.repeat(units, n),
            ],
            schema=RECORDED_SCHEMA,
        )


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=lambda s: int(s.replace("_", "")), default=10_000_000)
    parser.add_argument("--points", type=int, default=1000)
    parser.add_argument("--batch-rows", type=int, default=100_000)
    parser.add_argument("--range-hours", type=float, default=2.0, help="the last write's time range")
    parser.add_argument("--root", type=Path, default=None, help="table root (default: a temporary folder)")
    parser.add_argument("--verify", action="store_true", help="read the slice back and check it (needs RAM)")
    args = parser.parse_args()

    root = args.root or Path(tempfile.mkdtemp(prefix="bench_lake_"))
    table = Lakehouse(str(root)).table("bronze.pi_timeseries")
    rss_at_start = peak_rss_mib()
    started = time.perf_counter()
    try:
        runs, cpu_ns_per_row = [], []
        range_start = DAY_START_NS + DAY_NS - int(args.range_hours * 3600) * 1_000_000_000
        time_range = (
            datetime.fromtimestamp(range_start / 1e9, UTC),
            datetime.fromtimestamp((DAY_START_NS + DAY_NS) / 1e9, UTC),
        )
        for attempt in ("first write", "idempotent re-run", f"the last {args.range_hours:g} h"):
            batches = synthetic_batches(args.rows, args.points, args.batch_rows)
            ranged = attempt.startswith("the last")
            if ranged:
                batches = (
                    b.filter(pc.greater_equal(b["timestamp"].cast(pa.int64()), range_start)) for b in batches
                )
            cpu = time.process_time()
            result = replace_slice(
                table, batches, partition_date=DAY, tag_shard="s00", time_range=time_range if ranged else None
            )
            cpu = time.process_time() - cpu
            runs.append(result)
            kept = args.rows - result.rows_written if ranged else 0
            cpu_ns_per_row.append(round(cpu / (result.rows_written + kept) * 1e9, 1))
            print(
                f"{attempt}: {result.rows_written:,} rows ({kept:,} kept) in "
                f"{result.duration_seconds:.1f} s = {result.rows_per_second:,.0f} rows/s, "
                f"{cpu_ns_per_row[-1]} ns of CPU a row written or kept, {result.files_added} file(s) added, "
                f"{result.files_removed} removed, version {result.version}, "
                f"peak RSS {peak_rss_mib():,.0f} MiB"
            )
        counted = row_count(table, {"partition_date": DAY, "tag_shard": "s00"})
        assert counted == args.rows, f"expected {args.rows:,} rows in the slice, found {counted:,}"
        if args.verify:
            assert read_slice(table, DAY, "s00").num_rows == args.rows
        files = table.load().get_add_actions(flatten=True)
        sizes = pa.table(files).column("num_records").to_pylist()
        summary = {
            "rows": args.rows,
            "points": args.points,
            "batch_rows": args.batch_rows,
            "rows_per_second": [round(r.rows_per_second) for r in runs],
            "cpu_ns_per_row": cpu_ns_per_row,
            "files": len(sizes),
            "min_rows_per_file": min(sizes),
            "table_bytes": sum(pa.table(files).column("size_bytes").to_pylist()),
            "peak_rss_mib_before_writing": round(rss_at_start),
            "peak_rss_mib": round(peak_rss_mib()),
            "wall_seconds": round(time.perf_counter() - started, 1),
        }
        print(json.dumps(summary))
    finally:
        if args.root is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
