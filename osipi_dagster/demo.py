"""`make demo`: the main job end to end on the embedded default.

Starts the mock PI Web API (2,000 points, clock fixed at ``DEMO_NOW`` so every demo reads the same data),
then materializes through Dagster, as runs recorded in ``DAGSTER_HOME`` (the UI of ``make ui`` shows
them): the AF hierarchy and attributes, the tag catalog, the time series of yesterday and today (the
mock's) over every shard (one run per day, covering all its shards), and the event frames of both days.
It prints rows per table, values/s, the duration and where the tables are. Running it again replaces the
same slices: the row counts stay the same.
"""

from __future__ import annotations

import os
import sys
import time
from datetime import date, timedelta

import dagster as dg

from osipi_dagster.lake import row_count
from osipi_dagster.mock.config import MockConfig
from osipi_dagster.mock.server import serve_in_thread
from osipi_dagster.partitions import SHARD_PARTITIONS

DEMO_NOW = "2025-01-06T12:00:00Z"
# OSIPI_DEMO_POINTS lets a test run the same demo on a smaller mock.
DEMO_CONFIG = MockConfig(port=0, tags=int(os.environ.get("OSIPI_DEMO_POINTS", "2000")), now=DEMO_NOW)
TABLES = (
    "bronze.pi_asset_hierarchy",
    "bronze.pi_af_attributes",
    "bronze.pi_points",
    "bronze.pi_timeseries",
    "bronze.pi_event_frames",
    "checkpoints.pi_watermarks",
)


def main() -> int:
    started = time.perf_counter()
    instance = dg.DagsterInstance.get()  # DAGSTER_HOME: the Makefile points it at ./.dagster_home
    with serve_in_thread(DEMO_CONFIG) as mock:
        # The code location reads its resources from the environment, as `make ui` and deployments do.
        os.environ["OSIPI_PI_BASE_URL"] = mock.api
        os.environ.setdefault("OSIPI_PI_COMPRESS", "false")  # the mock is on loopback: gzip only costs CPU
        from osipi_dagster.definitions import defs  # imported once the environment names the mock

        print(f"Mock PI Web API on {mock.api}: {DEMO_CONFIG.tags} points, clock fixed at {DEMO_NOW}")
        today = date.fromisoformat(DEMO_NOW[:10])
        _run(defs, instance, ["pi_af_hierarchy", "pi_af_attributes"])
        _run(defs, instance, ["pi_points"])
        values = seconds = 0.0
        for day in (today - timedelta(days=1), today):
            run_values, run_seconds = _run(
                defs, instance, ["pi_timeseries"], partition_range=_all_shards(day)
            )
            values, seconds = values + run_values, seconds + run_seconds
            _run(defs, instance, ["pi_event_frames"], partition_key=day.isoformat())
    _summary(defs, int(values), seconds, time.perf_counter() - started, instance)
    return 0


def _all_shards(day: date) -> tuple[str, str]:
    shards = SHARD_PARTITIONS.get_partition_keys()
    return f"{day.isoformat()}|{shards[0]}", f"{day.isoformat()}|{shards[-1]}"


def _run(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    assets: list[str],
    *,
    partition_key: str | None = None,
    partition_range: tuple[str, str] | None = None,
) -> tuple[int, float]:
    """One Dagster run of ``assets`` (a partition range becomes one run, as a backfill batches it); the
    time-series values it read and its duration."""
    tags = {"dagster/from": "make demo"}
    if partition_range:
        tags |= {
            "dagster/asset_partition_range_start": partition_range[0],
            "dagster/asset_partition_range_end": partition_range[1],
        }
    label = partition_key or (partition_range and " .. ".join(partition_range)) or "unpartitioned"
    step_started = time.perf_counter()
    job = defs.resolve_implicit_job_def_def_for_assets([dg.AssetKey(a) for a in assets])
    result = job.execute_in_process(
        instance=instance,
        asset_selection=[dg.AssetKey(a) for a in assets],
        partition_key=partition_key,
        tags=tags,
        raise_on_error=True,
    )
    seconds = time.perf_counter() - step_started
    print(f"  {', '.join(assets):<40} {label:<33} run {result.run_id[:8]} {seconds:6.1f} s")
    events = result.get_asset_materialization_events()
    values = events[0].materialization.metadata.get("run_values") if events else None
    return (values.value if values else 0), seconds


def _summary(
    defs: dg.Definitions, values: int, values_seconds: float, seconds: float, instance: dg.DagsterInstance
) -> None:
    lakehouse = defs.resources["lakehouse"]
    print("\nTables (Delta Lake):")
    for name in TABLES:
        table = lakehouse.table(name)
        print(f"  {name:<28} {row_count(table) if table.exists() else 0:>12,} rows   {table.uri}")
    rate = values / values_seconds if values_seconds else 0
    print(
        f"\nTime series: {values:,} values read and written in {values_seconds:.1f} s ({rate:,.0f} values/s, "
        "Dagster runs included; a second demo reads yesterday whole again and today from its watermarks "
        "minus the overlap window)"
    )
    print(f"Demo finished in {seconds:.1f} s. Dagster runs are recorded in {instance.root_directory}.")
    print("Open the Dagster UI on these runs and assets with `make ui` (http://127.0.0.1:3000).")


if __name__ == "__main__":
    sys.exit(main())
