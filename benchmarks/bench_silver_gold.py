"""Silver and gold of a 1,000-point 1 Hz day: ``pi_timeseries_clean`` then ``pi_timeseries_hourly`` for one
partition, each materialized through Dagster in a process of its own.

The lake is built first with the real pipeline, like ``bench_ingest.py``: the mock PI Web API in its own
process (``python -m osipi_dagster.mock --sampling 1s --tags N``, clock fixed at ``--next-day-hours`` after
the midnight that ends the measured day), then ``pi_af``, ``pi_points`` and ``pi_timeseries`` through Dagster
with ``OSIPI_TAG_SHARDS=1`` (the one shard ``s00`` holds every point) for the measured day 2025-01-06 (closed,
read whole: about 86.4 million values for 1,000 points), the day before (closed, whole: gold carries its last
values in) and the day after (open, ``--next-day-hours`` of it: gold closes the day's last hour with it).
With ``--root`` the lake is kept, and a later run reuses its bronze.

Then, each in a fresh process (so each peak RSS belongs to one stage): silver of the day before and of the
day after (setup, not reported), silver of the day (``silver``) and gold of the day (``gold``). For each:
the values it read (silver: bronze values of the day; gold: silver values of the day), the wall time of the
materialization (Dagster run included), values/s, the CPU time per value of the process (and of delta-rs's
``tokio-rt-worker`` threads in it: once the Parquet writer, now only the commit, since silver and gold encode
their files with Arrow's writer in a thread of the process), and the peak RSS of the process (``VmHWM``,
Dagster included) and what it was before the materialization started.

    .venv/bin/python benchmarks/bench_silver_gold.py --points 1000 --root /tmp/bench_sg   # the target case
    .venv/bin/python benchmarks/bench_silver_gold.py --points 1000 --root /tmp/bench_sg --stages silver,gold
    .venv/bin/python benchmarks/bench_silver_gold.py                                      # quick: 50 points

With ``--compare-writers ROWS`` (after silver, or with a ``--root`` that holds it) the first ``ROWS`` rows of
the day's silver partition, read as silver hands them to its writer (strings dictionary-encoded), are
written once by delta-rs's Parquet writer (``write_deltalake``, the same encodings) and once by
``replace_partition`` (Arrow's Parquet writer, then a delta-rs commit), each into a fresh table: CPU µs a row
of the process (every thread), wall time and bytes a row of the files:

    .venv/bin/python benchmarks/bench_silver_gold.py --points 1000 --root /tmp/bench_sg --stages silver \
        --compare-writers 2000000

Prints one line per stage and one JSON line with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_ingest import (  # noqa: E402 - a sibling script, found through the line above
    proc_peak_rss_mib,
    self_cpu_seconds,
    start_mock,
    thread_cpu_seconds,
)

DAY = date(2025, 1, 6)
SHARD = "s00"
BRONZE_MARKER = "bench_silver_gold_bronze.json"


def days() -> tuple[date, date, date]:
    return DAY - timedelta(days=1), DAY, DAY + timedelta(days=1)


def resources(root: Path, api: str | None = None) -> dict[str, object]:
    from osipi_dagster.defs.resources import DeltaLakehouseResource, PIWebAPIResource

    found: dict[str, object] = {"lakehouse": DeltaLakehouseResource(root=str(root))}
    if api is not None:
        found["pi"] = PIWebAPIResource(base_url=api, compress=False)
    return found


def server_assets():
    from osipi_dagster.defs.pi_server import server_assets as assets_of
    from osipi_dagster.settings import PIServerSettings

    return assets_of(PIServerSettings(tag_shards=1))  # one shard: the whole catalog in one partition


def build_bronze(root: Path, points: int, next_day_hours: float) -> dict[str, object]:
    """Bronze of the three days through Dagster against the mock; returns what was built."""
    import dagster as dg

    marker = root / BRONZE_MARKER
    wanted = {"points": points, "next_day_hours": next_day_hours}
    if marker.exists() and {k: v for k, v in json.loads(marker.read_text()).items() if k in wanted} == wanted:
        return json.loads(marker.read_text())
    if root.exists():
        shutil.rmtree(root)
    assets = server_assets()
    now = datetime.combine(DAY + timedelta(days=1), datetime.min.time(), UTC) + timedelta(
        hours=next_day_hours
    )
    mock, api = start_mock(points, now)
    started = time.perf_counter()
    rows: dict[str, int] = {}
    try:
        res = resources(root, api)
        with dg.instance_for_test() as instance:
            assert dg.materialize([assets.af, assets.points], resources=res, instance=instance).success
            for day in days():
                result = dg.materialize(
                    [assets.timeseries], resources=res, instance=instance, partition_key=f"{day}|{SHARD}"
                )
                assert result.success
                metadata = result.asset_materializations_for_node("pi_timeseries")[0].metadata
                rows[day.isoformat()] = int(metadata["dagster/row_count"].value)
    finally:
        mock.terminate()
        mock.wait(10)
    built = {**wanted, "bronze_rows": rows, "build_seconds": round(time.perf_counter() - started)}
    marker.write_text(json.dumps(built))
    return built


def self_peak_rss_mib() -> float:
    """Peak RSS of this process (``VmHWM``: ``ru_maxrss`` would count the parent's, kept across exec)."""
    return proc_peak_rss_mib(os.getpid())


def run_stage(stage: str, day: date, root: Path) -> dict[str, object]:
    """Materialize one silver or gold partition in this process and measure it (``--stage``)."""
    import dagster as dg

    assets = server_assets()
    asset = assets.silver if stage == "silver" else assets.gold
    with dg.instance_for_test() as instance:
        rss_before = self_peak_rss_mib()
        own_cpu, delta_cpu = self_cpu_seconds(), thread_cpu_seconds("tokio-rt-worker")
        started = time.perf_counter()
        result = dg.materialize(
            [asset], resources=resources(root), instance=instance, partition_key=f"{day}|{SHARD}"
        )
        wall = time.perf_counter() - started
        assert result.success
        own_cpu = self_cpu_seconds() - own_cpu
        delta_cpu = thread_cpu_seconds("tokio-rt-worker") - delta_cpu
        metadata = result.get_asset_materialization_events()[0].materialization.metadata
    values = int(metadata["bronze_values" if stage == "silver" else "silver_values"].value)
    return {
        "stage": stage,
        "day": day.isoformat(),
        "values": values,
        "rows_written": int(metadata["dagster/row_count"].value),
        "wall_seconds": round(wall, 2),
        "core_seconds": metadata["duration_seconds"].value,
        "values_per_second": round(values / wall),
        "cpu_us_per_value": round(own_cpu / max(values, 1) * 1e6, 3),
        "delta_rs_cpu_us_per_value": round(delta_cpu / max(values, 1) * 1e6, 3),
        "peak_rss_mib": round(self_peak_rss_mib()),
        "peak_rss_mib_before": round(rss_before),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def compare_writers(root: Path, rows: int) -> dict[str, object]:
    """delta-rs's Parquet writer against ``replace_partition``'s on ``rows`` silver rows of the day."""
    import pyarrow as pa
    from deltalake import ColumnProperties, WriterProperties, write_deltalake

    from osipi_dagster.ingest.silver import SILVER_DICTIONARIES
    from osipi_dagster.lake import Lakehouse
    from osipi_dagster.lake.partitions import (
        PARTITION_COLUMNS,
        WRITER_COLUMNS,
        parquet_layout,
        replace_partition,
        scan_partition,
    )
    from osipi_dagster.lake.schemas import SILVER_TIMESERIES, UTC_US
    from osipi_dagster.lake.tables import without_columns

    source = Lakehouse(str(root)).table(SILVER_TIMESERIES.name)
    names = without_columns(SILVER_TIMESERIES.schema, WRITER_COLUMNS).names
    batches: list[pa.RecordBatch] = []
    for batch in scan_partition(source, DAY, SHARD, names, dictionary_columns=SILVER_DICTIONARIES):
        batches.append(batch.slice(0, rows - sum(b.num_rows for b in batches)))
        if sum(b.num_rows for b in batches) >= rows:
            break
    read = sum(b.num_rows for b in batches)
    if not read:
        raise SystemExit(f"No silver rows of {DAY} in {root}: run the silver stage first.")
    layout = parquet_layout(SILVER_TIMESERIES.name)
    properties = WriterProperties(
        max_row_group_size=layout.row_group_rows,
        column_properties={
            name: ColumnProperties(
                dictionary_enabled=name not in layout.plain | layout.delta_encoded,
                statistics_enabled="NONE" if name in layout.unfiltered else None,
                encoding="DELTA_BINARY_PACKED" if name in layout.delta_encoded else None,
            )
            for name in SILVER_TIMESERIES.schema.names
        },
    )
    constants = {
        "partition_date": pa.scalar(DAY, pa.date32()),
        "tag_shard": pa.scalar(SHARD),
        "ingested_at": pa.scalar(datetime.now(UTC), UTC_US),
    }

    def with_writer_columns(batch: pa.RecordBatch) -> pa.RecordBatch:
        extra = {name: pa.repeat(value, batch.num_rows) for name, value in constants.items()}
        return pa.RecordBatch.from_arrays([*batch.columns, *extra.values()], [*batch.schema.names, *extra])

    def delta_rs(folder: Path) -> None:
        full = with_writer_columns(batches[0]).schema
        write_deltalake(
            str(folder),
            pa.RecordBatchReader.from_batches(full, (with_writer_columns(b) for b in batches)),
            mode="overwrite",
            partition_by=list(PARTITION_COLUMNS),
            writer_properties=properties,
            target_file_size=layout.target_file_size,
        )

    def arrow(folder: Path) -> None:
        table = Lakehouse(str(folder)).table(SILVER_TIMESERIES.name)
        replace_partition(
            table, iter(batches), partition_date=DAY, tag_shard=SHARD, dictionary_columns=SILVER_DICTIONARIES
        )

    found: dict[str, object] = {"rows": read}
    for name, write in (("delta_rs", delta_rs), ("arrow", arrow)):
        with tempfile.TemporaryDirectory(prefix=f"bench_writer_{name}_") as folder:
            cpu, started = self_cpu_seconds(), time.perf_counter()
            write(Path(folder))
            wall, cpu = time.perf_counter() - started, self_cpu_seconds() - cpu
            size = sum(path.stat().st_size for path in Path(folder).rglob("*.parquet"))
        found[name] = {
            "cpu_us_per_row": round(cpu / read * 1e6, 3),
            "wall_seconds": round(wall, 2),
            "bytes_per_row": round(size / read, 1),
        }
    found["load_average"] = [round(x, 2) for x in os.getloadavg()]
    return found


def stage_in_subprocess(stage: str, day: date, root: Path) -> dict[str, object]:
    """``run_stage`` in a fresh Python process (its own peak RSS); the environment is passed on, so
    ``PYTHONPATH`` can point at another copy of ``osipi_dagster`` to compare versions."""
    command = [sys.executable, __file__, "--stage", stage, "--day", day.isoformat(), "--root", str(root)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"{stage} {day} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=50)
    parser.add_argument("--next-day-hours", type=float, default=1.0, help="hours of the open day after")
    parser.add_argument("--root", type=Path, default=None, help="the lake (kept; default: a temporary one)")
    parser.add_argument("--stages", default="bronze,setup,silver,gold", help="which stages to run, in order")
    parser.add_argument(
        "--compare-writers",
        type=int,
        metavar="ROWS",
        help="write ROWS silver rows with delta-rs's writer and with replace_partition's (Arrow's)",
    )
    parser.add_argument("--stage", choices=("silver", "gold"), help=argparse.SUPPRESS)
    parser.add_argument("--day", type=date.fromisoformat, default=DAY, help=argparse.SUPPRESS)
    args = parser.parse_args()
    root = args.root or Path(tempfile.mkdtemp(prefix="bench_silver_gold_"))
    if args.stage:
        print(json.dumps(run_stage(args.stage, args.day, root)))
        return
    stages = args.stages.split(",")
    figures: dict[str, object] = {"points": args.points}
    try:
        if "bronze" in stages:
            figures["bronze"] = build_bronze(root, args.points, args.next_day_hours)
        if "setup" in stages:
            figures["setup"] = [stage_in_subprocess("silver", day, root) for day in days() if day != DAY]
        for stage in ("silver", "gold"):
            if stage not in stages:
                continue
            measured = figures[stage] = stage_in_subprocess(stage, DAY, root)
            print(
                f"{stage} {DAY}: {measured['values']:,} values in {measured['wall_seconds']} s = "
                f"{measured['values_per_second']:,} values/s; CPU {measured['cpu_us_per_value']} µs/value "
                f"(delta-rs {measured['delta_rs_cpu_us_per_value']}); peak RSS {measured['peak_rss_mib']:,} "
                f"MiB ({measured['peak_rss_mib_before']:,} before); load {measured['load_average']}"
            )
        if args.compare_writers:
            writers = figures["writers"] = compare_writers(root, args.compare_writers)
            print(
                f"writers, {writers['rows']:,} silver rows: "
                + "; ".join(
                    f"{name} {found['cpu_us_per_row']} µs/row CPU, {found['wall_seconds']} s, "
                    f"{found['bytes_per_row']} bytes/row"
                    for name, found in ((n, writers[n]) for n in ("delta_rs", "arrow"))
                )
                + f"; load {writers['load_average']}"
            )
    finally:
        if args.root is None:
            shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
