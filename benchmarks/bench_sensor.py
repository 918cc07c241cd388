"""One tick of ``pi_timeseries_sensor`` over many points: what following PI costs when nothing changed, and
whether a tick after changes requests exactly the partitions they touched.

Starts the mock in its own process (every point 1 Hz, the clock fixed at 2025-01-06 00:02 UTC so nothing
changes unless edited), builds the definitions for it with ``OSIPI_TAG_SHARDS`` shards, materializes the
catalog and today's partitions (one run over every shard), reports yesterday's partitions as materialized
(runless events: the sensor only asks the instance whether they exist), then evaluates the sensor the way
the daemon does (``evaluate_tick`` on a real instance):

1. ``registration`` (warm-up): the first tick registers every point for stream updates (PI's side is the
   expensive part: a real server, like the mock, builds a cache per point);
2. ``no changes``: a tick that reads every marker and finds nothing: the figure the issue bounds (<= 2 s,
   <= 100 MiB more than before the tick);
3. ``1 % changed``: after one admin edit on each of 1 % of the points (half on yesterday, half on today), a
   tick must request exactly the (day, shard) partitions of those points, no more, no fewer.

Prints wall time, CPU seconds of this process and of the mock, and the growth of this process's peak RSS
during the tick (the peak is reset before each tick through ``/proc/self/clear_refs``), then one JSON line.

    .venv/bin/python benchmarks/bench_sensor.py                        # 10,000 points, 64 shards
    .venv/bin/python benchmarks/bench_sensor.py --points 2000 --shards 16
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import requests
from bench_ingest import proc_cpu_seconds, self_cpu_seconds, self_rss_mib, start_mock
from dagster._core.definitions.sensor_definition import SensorExecutionData

from osipi_dagster.definitions import build_definitions
from osipi_dagster.defs.pi_server.runs import RANGE_END, RANGE_START
from osipi_dagster.ingest.shards import shard_keys
from osipi_dagster.lake import Lakehouse, read_table
from osipi_dagster.settings import LakeSettings, PIServerSettings

NOW = datetime(2025, 1, 6, 0, 2, tzinfo=UTC)
TODAY = NOW.date()
YESTERDAY = TODAY - timedelta(days=1)
SENSOR = "pi_timeseries_sensor"


def peak_rss_mib() -> float:
    """This process's peak RSS since the last :func:`reset_peak_rss` (``VmHWM``), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak_rss() -> None:
    """Reset ``VmHWM`` to the current RSS (Linux: writing 5 to ``clear_refs``)."""
    Path("/proc/self/clear_refs").write_text("5")


def requested(result: SensorExecutionData, shard_keys: list[str]) -> set[tuple[str, str]]:
    """Every (day, shard) partition the tick's run requests cover."""
    covered = set()
    for request in result.run_requests or []:
        (day, first), (_, last) = request.tags[RANGE_START].split("|"), request.tags[RANGE_END].split("|")
        covered |= {
            (day, shard) for shard in shard_keys[shard_keys.index(first) : shard_keys.index(last) + 1]
        }
    return covered


def measure(name: str, tick: Callable[[], SensorExecutionData], mock_pid: int) -> SensorExecutionData:
    """Evaluate one tick and print its costs."""
    reset_peak_rss()
    before_rss, cpu, mock_cpu, wall = (
        self_rss_mib(),
        self_cpu_seconds(),
        proc_cpu_seconds(mock_pid),
        time.perf_counter(),
    )
    result = tick()
    wall = time.perf_counter() - wall
    figures = {
        "tick": name,
        "wall_s": round(wall, 2),
        "cpu_s": round(self_cpu_seconds() - cpu, 2),
        "mock_cpu_s": round(proc_cpu_seconds(mock_pid) - mock_cpu, 2),
        "rss_growth_mib": round(peak_rss_mib() - before_rss, 1),
        "runs_requested": len(result.run_requests or []),
    }
    print(
        f"{name:>13}: {figures['wall_s']:6.2f} s wall, {figures['cpu_s']:6.2f} s CPU here, "
        f"{figures['mock_cpu_s']:6.2f} s CPU in the mock, peak RSS +{figures['rss_growth_mib']:.0f} MiB, "
        f"{figures['runs_requested']} runs requested"
    )
    print(json.dumps(figures))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--points", type=int, default=10_000)
    parser.add_argument("--shards", type=int, default=64)
    parser.add_argument("--changed-share", type=float, default=0.01)
    args = parser.parse_args()

    mock, api = start_mock(args.points, NOW)
    admin = api.removesuffix("/piwebapi") + "/admin"
    try:
        with tempfile.TemporaryDirectory() as root, dg.instance_for_test() as instance:
            # No cap on runs per tick: the figure is whether one tick finds exactly the touched partitions
            # (with the default cap of 20 runs, the rest would wait for the next tick).
            server = PIServerSettings(
                base_url=api,
                compress=False,
                tag_shards=args.shards,
                start_date=YESTERDAY,
                sensor_max_runs_per_tick=2 * args.shards,
            )
            defs = build_definitions(LakeSettings(root=root), [server])
            keys = shard_keys(args.shards)
            started = time.perf_counter()
            assert defs.resolve_job_def("pi_catalog_job").execute_in_process(instance=instance).success
            today_run = defs.resolve_job_def("pi_timeseries_job").execute_in_process(
                instance=instance,
                tags={RANGE_START: f"{TODAY}|{keys[0]}", RANGE_END: f"{TODAY}|{keys[-1]}"},
            )
            assert today_run.success
            for shard in keys:
                instance.report_runless_asset_event(
                    dg.AssetMaterialization(asset_key="pi_timeseries", partition=f"{YESTERDAY}|{shard}")
                )
            print(
                f"set-up (catalog and today's {len(keys)} partitions): {time.perf_counter() - started:.0f} s"
            )

            sensor = defs.resolve_sensor_def(SENSOR)
            resources = {"pi": defs.resources["pi"], "lakehouse": defs.resources["lakehouse"]}
            cursor: list[str | None] = [None]

            def tick() -> SensorExecutionData:
                with dg.build_sensor_context(
                    instance=instance, cursor=cursor[0], resources=resources
                ) as context:
                    result = sensor.evaluate_tick(context)
                cursor[0] = result.cursor
                return result

            measure("registration", tick, mock.pid)
            # The registration owed today to every shard; a run that starts after it clears that.
            assert (
                defs.resolve_job_def("pi_timeseries_job")
                .execute_in_process(
                    instance=instance,
                    tags={RANGE_START: f"{TODAY}|{keys[0]}", RANGE_END: f"{TODAY}|{keys[-1]}"},
                )
                .success
            )
            quiet = measure("no changes", tick, mock.pid)
            assert not quiet.run_requests, (
                f"nothing changed, yet {len(quiet.run_requests)} runs were requested"
            )

            points = read_table(Lakehouse(root).table("bronze.pi_points")).to_pylist()
            numeric = [p for p in points if p["point_type"].startswith("Float") and not p["is_deleted"]]
            changed = random.Random(7).sample(numeric, max(1, round(args.points * args.changed_share)))
            edits, expected = [], set()
            for i, point in enumerate(changed):
                day = YESTERDAY if i % 2 else TODAY
                # Within the first two minutes of the day: today's edits must stay before the mock's clock.
                offset = timedelta(seconds=30 + (i // 2) % 60)
                moment = datetime.combine(day, datetime.min.time(), UTC) + offset
                edits.append({"WebId": point["web_id"], "Timestamp": moment.isoformat(), "Value": 1234.5})
                expected.add((day.isoformat(), point["tag_shard"]))
            requests.post(f"{admin}/edits", json={"Edits": edits}, timeout=120).raise_for_status()
            after = measure(f"{args.changed_share:.0%} changed", tick, mock.pid)
            got = requested(after, keys)
            print(
                f"{len(changed)} points edited in {len(expected)} (day, shard) partitions; "
                f"the tick requested {len(got)} partitions in {len(after.run_requests or [])} runs: "
                f"{'exactly those' if got == expected else 'NOT those'}"
            )
            assert got == expected, (sorted(expected - got)[:5], sorted(got - expected)[:5])
    finally:
        mock.terminate()
        mock.wait()


if __name__ == "__main__":
    main()
