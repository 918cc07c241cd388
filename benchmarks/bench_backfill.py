"""A backfill of ``pi_timeseries`` on the production deployment: PostgreSQL, code server, daemon, webserver.

Starts a throwaway PostgreSQL cluster, the mock PI Web API (``--sampling 1s``: every point 1 Hz, clock fixed
after the last day) and deploy/'s three Dagster processes, exactly as ``test_postgres_deployment.py`` does
(``osipi_dagster_tests/services.py``), builds the catalog (not timed), then launches one backfill of
``--days`` closed days x ``--shards`` tag shards through GraphQL and lets the daemon run it, at most 4 runs at
once (deploy/dagster.yaml). Measured, from the instance (PostgreSQL) once it is done:

* values and values/s: the values the materializations report over the wall time from the GraphQL launch
  to the end of the last run (the daemon's tick before the first run included), and over the runs' span;
* the share of run time outside ``ingest``: each run from the coordinator launching it (``RUN_STARTING``) to
  its end, against the ``duration_seconds`` its partitions report (the read from PI and the Delta commit);
  the rest is Dagster: run worker start-up, the step's process, orchestration, event log writes;
* peak RSS per run: ``VmHWM`` of its run worker and of its step process (the ingest), sampled from
  ``/proc`` every 0.5 s;
* CPU time per value, from ``/proc`` too (it does not depend on how busy the machine is): the step
  processes (reading PI, writing Delta, and Dagster's step bookkeeping), the run workers (Dagster only),
  the Dagster services during the backfill (code server, daemon, webserver) and the mock.

    .venv/bin/python benchmarks/bench_backfill.py                       # 3 days x 16 shards x 200 points
    .venv/bin/python benchmarks/bench_backfill.py --days 1 --shards 4 --tags 40      # a quick check

Prints a table per run, the totals, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from collections import defaultdict
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the deployment helpers live with the tests

from osipi_dagster_tests.processes import mock_pi  # noqa: E402
from osipi_dagster_tests.services import dagster_deployment, postgres_server  # noqa: E402

LAST_DAY = date(2025, 1, 5)
PROCESS_SCAN_SECONDS = 0.5


class Processes(threading.Thread):
    """Samples, every ``PROCESS_SCAN_SECONDS`` until stopped, the peak RSS (``VmHWM``) and the CPU time of
    this venv's processes: the mock, the code server, the daemon, the webserver, and the run workers and
    step processes the code server spawns (the runs' events name their pids: ``Started process for run
    (pid: N)``, ``Executing step ... in subprocess``)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peaks: dict[int, float] = defaultdict(float)  # pid -> peak MiB
        self.first_cpu: dict[int, float] = {}  # pid -> CPU seconds when first seen
        self.cpu: dict[int, float] = {}  # pid -> CPU seconds when last seen
        self.roles: dict[int, str] = {}
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(PROCESS_SCAN_SECONDS):
            self.sample()

    def stop(self) -> None:
        self._done.set()
        self.join()

    def sample(self) -> None:
        ticks = os.sysconf("SC_CLK_TCK")
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                if not command.startswith(sys.executable + " "):
                    continue
                status = (entry / "status").read_text()
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, UnicodeDecodeError):  # ended meanwhile, or not ours
                continue
            pid = int(entry.name)
            self.roles.setdefault(pid, _role(command))
            cpu = (int(fields[11]) + int(fields[12])) / ticks
            self.first_cpu.setdefault(pid, cpu)
            self.cpu[pid] = cpu
            peak = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
            self.peaks[pid] = max(self.peaks[pid], peak / 1024)

    def cpu_seconds(self, pids: set[int] | None = None, role: str | None = None) -> float:
        """CPU seconds spent while sampled by ``pids`` or by the processes of ``role``."""
        chosen = [p for p in self.cpu if (pids is not None and p in pids) or self.roles.get(p) == role]
        return sum(self.cpu[p] - (self.first_cpu[p] if self.roles[p] != "spawned" else 0.0) for p in chosen)


def _role(command: str) -> str:
    for marker, role in (
        ("osipi_dagster.mock", "mock"),
        ("spawn_main", "spawned"),  # run workers and their step processes (spawned: all their CPU counts)
        ("dagster-daemon", "dagster services"),
        ("dagster-webserver", "dagster services"),
        ("dagster", "dagster services"),  # the code server: its proxy and its gRPC server
    ):
        if marker in command:
            return role
    return "other"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--days", type=int, default=3, help="closed days backfilled, ending 2025-01-05")
    parser.add_argument("--shards", type=int, default=16, help="tag shards (OSIPI_TAG_SHARDS)")
    parser.add_argument("--tags", type=int, default=200, help="1 Hz points of the mock")
    parser.add_argument("--identity", action="store_true", help="no gzip between the mock and the client")
    args = parser.parse_args()
    print(json.dumps(run(args)))


def run(args: argparse.Namespace) -> dict[str, object]:
    days = [LAST_DAY - timedelta(days=offset) for offset in reversed(range(args.days))]
    shards = [f"s{index:02d}" for index in range(args.shards)]
    partitions = [f"{day.isoformat()}|{shard}" for day in days for shard in shards]
    now = f"{(LAST_DAY + timedelta(days=1)).isoformat()}T00:00:00Z"
    work = Path(tempfile.mkdtemp(prefix="bench_backfill_"))
    settings = {
        "OSIPI_LAKE_ROOT": str(work / "lake"),
        "OSIPI_TAG_SHARDS": str(args.shards),
        "OSIPI_PI_COMPRESS": "false" if args.identity else "true",
    }
    mock_options = [
        "--tags",
        str(args.tags),
        "--now",
        now,
        "--sampling",
        "1s",
        "--archive-days",
        str(args.days + 1),
    ]
    processes = Processes()
    load_before = os.getloadavg()
    with (
        postgres_server() as postgres,
        mock_pi(work, *mock_options) as pi_api,
        dagster_deployment(
            work / "dagster_home", postgres.environment() | settings | {"OSIPI_PI_BASE_URL": pi_api}, work
        ) as ui,
    ):
        location = ui.location()
        ui.wait_run(ui.materialize(location, ["pi_af_hierarchy", "pi_af_attributes", "pi_points"]), 600)
        processes.sample()  # CPU times of the services before the backfill
        processes.start()
        launched = time.time()
        backfill_id = ui.launch_backfill("pi_timeseries", partitions, {"osipi/bench": "backfill"})
        backfill = ui.wait_backfill(backfill_id, timeout_s=7200)
        processes.stop()
        if backfill["status"] != "COMPLETED_SUCCESS":
            raise SystemExit(f"backfill ended {backfill['status']}: {backfill}")
        runs = [
            _run_timings(postgres.environment(), work / "dagster_home", run["runId"])
            for run in backfill["runs"]
        ]
    load_after = os.getloadavg()
    return _report(args, partitions, runs, processes, launched, load_before, load_after)


def _run_timings(environment: dict[str, str], home: Path, run_id: str) -> dict[str, object]:
    """One run's event times and its partitions' reported values and ingest seconds, from the instance."""
    import dagster as dg

    os.environ.update(environment | {"DAGSTER_HOME": str(home)})
    with dg.DagsterInstance.get() as instance:
        times: dict[str, float] = {}
        pids: dict[str, int] = {}  # "worker" / "step" -> pid
        values = 0
        durations: dict[str, float] = {}  # partition -> the ingest seconds it reports
        logged: list[tuple[float, str]] = []  # (when, partition) the step logged each partition done
        for entry in instance.all_logs(run_id):
            event = entry.dagster_event
            if event is None:
                if " values of " in entry.user_message:
                    logged.append((entry.timestamp, entry.user_message.split(":", 1)[0]))
                continue
            times.setdefault(event.event_type.name, entry.timestamp)
            if event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION:
                metadata = event.event_specific_data.materialization.metadata
                values += int(metadata["dagster/row_count"].value)
                durations[event.event_specific_data.materialization.partition] = float(
                    metadata["duration_seconds"].value
                )
            pid = getattr(event.event_specific_data, "metadata", {}).get("pid")
            if pid is not None:
                role = "step" if event.event_type == dg.DagsterEventType.STEP_WORKER_STARTED else "worker"
                pids[role] = int(pid.value)
    # Between two partitions' log lines: the next one's catalog lookup, its ingest, its latency record.
    starts = [times["STEP_START"], *(when for when, _ in logged[:-1])]
    gaps = [done - begun - durations[key] for begun, (done, key) in zip(starts, logged, strict=True)]
    return {
        "run_id": run_id,
        "times": times,
        "pids": pids,
        "values": values,
        "ingest_seconds": sum(durations.values()),
        "largest_gap_outside_ingest_seconds": max(gaps, default=0.0),
    }


def _report(args, partitions, runs, processes: Processes, launched: float, load_before, load_after) -> dict:
    starting = [run["times"]["RUN_STARTING"] for run in runs]
    ended = [run["times"]["RUN_SUCCESS"] for run in runs]
    values = sum(run["values"] for run in runs)
    run_seconds = sum(end - start for start, end in zip(starting, ended, strict=True))
    ingest_seconds = sum(run["ingest_seconds"] for run in runs)
    wall = max(ended) - launched
    print(
        f"{'run':8} {'values':>11} {'launch->end s':>13} {'start-up s':>10} {'ingest s':>9} "
        f"{'step rest s':>11} {'max gap s':>9} {'wind-down s':>11} {'outside':>8} {'worker MiB':>10} "
        f"{'step MiB':>9}"
    )
    worker_peaks, step_peaks = [], []
    for run in runs:
        times = run["times"]
        worker_peaks.append(processes.peaks.get(run["pids"].get("worker", -1), 0.0))
        step_peaks.append(processes.peaks.get(run["pids"].get("step", -1), 0.0))
        span = times["RUN_SUCCESS"] - times["RUN_STARTING"]
        startup = times["STEP_START"] - times["RUN_STARTING"]  # run worker and step process start-up
        step_rest = times["STEP_SUCCESS"] - times["STEP_START"] - run["ingest_seconds"]
        wind_down = times["RUN_SUCCESS"] - times["STEP_SUCCESS"]
        print(
            f"{run['run_id'][:8]} {run['values']:>11,} {span:>13.1f} {startup:>10.1f} "
            f"{run['ingest_seconds']:>9.1f} {step_rest:>11.1f} "
            f"{run['largest_gap_outside_ingest_seconds']:>9.1f} {wind_down:>11.1f} "
            f"{1 - run['ingest_seconds'] / span:>8.1%} {worker_peaks[-1]:>10.0f} {step_peaks[-1]:>9.0f}"
        )
    workers = {run["pids"]["worker"] for run in runs}
    steps = {run["pids"]["step"] for run in runs}
    cpu_us = {  # CPU microseconds per value by part: independent of how busy the machine is
        "steps": processes.cpu_seconds(steps) / values * 1e6,
        "run_workers": processes.cpu_seconds(workers) / values * 1e6,
        "dagster_services": processes.cpu_seconds(role="dagster services") / values * 1e6,
        "mock": processes.cpu_seconds(role="mock") / values * 1e6,
    }
    result = {
        "days": args.days,
        "shards": args.shards,
        "tags": args.tags,
        "accept_encoding": "identity" if args.identity else "gzip, deflate",
        "partitions": len(partitions),
        "runs": len(runs),
        "values": values,
        "wall_seconds": round(wall, 1),
        "values_per_second": round(values / wall),
        "runs_span_seconds": round(max(ended) - min(starting), 1),
        "values_per_second_over_runs_span": round(values / (max(ended) - min(starting))),
        "first_run_launched_after_seconds": round(min(starting) - launched, 1),
        "run_seconds": round(run_seconds, 1),
        "ingest_seconds": round(ingest_seconds, 1),
        "share_outside_ingest": round(1 - ingest_seconds / run_seconds, 3),
        "cpu_us_per_value": {part: round(us, 3) for part, us in cpu_us.items()},
        "peak_rss_mib_run_worker": round(max(worker_peaks)),
        "peak_rss_mib_step": round(max(step_peaks)),
        "load_average_before_after": [round(load_before[0], 1), round(load_after[0], 1)],
    }
    print(
        f"{values:,} values in {wall:.0f} s from launch: {values / wall:,.0f} values/s; "
        f"{1 - ingest_seconds / run_seconds:.1%} of run time outside ingest; peak RSS per run "
        f"{result['peak_rss_mib_run_worker']} MiB (run worker) + {result['peak_rss_mib_step']} MiB (step); "
        "CPU µs/value: " + ", ".join(f"{part} {us:.3f}" for part, us in cpu_us.items())
    )
    return result


if __name__ == "__main__":
    main()
