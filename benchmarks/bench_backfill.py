"""A backfill of ``pi_timeseries`` on the production deployment: PostgreSQL, code server, daemon, webserver.

Starts a throwaway PostgreSQL cluster, the mock PI Web API (``--sampling 1s``: every point 1 Hz, clock fixed
after the last day) and deploy/'s three Dagster processes, exactly as ``test_postgres_deployment.py`` does
(``osipi_dagster_tests/services.py``), builds the catalog (not timed), then launches through GraphQL, at
once, ``--runs`` runs of ``pi_timeseries`` that together cover ``--days`` closed days x ``--shards`` tag
shards, each over every day of a block of the shards, and lets the queued run coordinator run them.

Why runs, and not one backfill: Dagster's backfill daemon makes each run of a date x shard backfill over one
day's shards or over one shard's days, never over several days *and* several shards (docs/DEPLOYMENT.md,
"Sizing the pools"), so one backfill of 3 days x 16 shards is 3 runs of 16 partitions, never 4 at once.
A run launched with the partition range tags spans the rectangle from its first to its last key (3 days x 4
shards: 12 partitions), launched here with GraphQL's ``launchRun`` (as a user's script does with
``DagsterGraphQLClient.submit_job_execution(tags=...)``, docs/DEPLOYMENT.md): 4 such runs are 4 at once,
each carrying a quarter of the values against one run's fixed cost. ``--backfills N`` launches N backfills
instead, each over a block of the shards, and lets the daemon split them (``--backfills 1``: 3 runs of 16
partitions; ``--backfills 4``: 12 runs of 4, 4 at a time, the layout measured before).

Measured, from the instance (PostgreSQL) once it is done:

* values and values/s: the values the materializations report over the wall time from the GraphQL launch
  to the end of the last run (the daemon's tick before the first run included), and over the runs' span;
* the share of run time outside ``ingest``: each run from the coordinator launching it (``RUN_STARTING``) to
  its end, against the ``duration_seconds`` its partitions report (the read from PI and the Delta commit);
  the rest is the run worker's start-up, orchestration, event log writes, and the asset checks' step that
  Dagster adds to every run of ``pi_timeseries`` (also reported apart);
* peak RSS per run: ``VmHWM`` of its run worker, where its steps run (defs/executor.py), and of its steps'
  processes if an executor starts them, sampled from ``/proc`` every 0.5 s;
* CPU time, from ``/proc`` too (robust when the machine is busy, unlike the wall times): per value, by
  process (steps' processes, if any: ingest and checks; the run workers; the Dagster services during the
  backfill: code server, daemon, webserver; the mock); and per run: all its processes, the part outside its
  partitions' ingest (their CPU read at the start and end of each partition's reported ingest, interpolated
  between samples), the run worker's before the asset's step starts, and the checks'.

    .venv/bin/python benchmarks/bench_backfill.py                       # 3 days x 16 shards x 200 points
    .venv/bin/python benchmarks/bench_backfill.py --backfills 4         # the same as 4 backfills (12 runs)
    .venv/bin/python benchmarks/bench_backfill.py --days 1 --shards 4 --tags 40      # a quick check

A run that fails stops the bench unless the daemon retried it (deploy/dagster.yaml's ``run_retries``): either
way its event log, read from the instance, is written to the work folder, which is then kept with the
processes' logs, and the JSON line counts the retried runs with their failure reasons (``runs_failed`` is
the runs that failed for good: none, or the bench stops).

Prints a table per run, the totals, then one JSON line.
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the deployment helpers live with the tests

from osipi_dagster_tests.dagster_ui import DagsterUI  # noqa: E402
from osipi_dagster_tests.processes import mock_pi  # noqa: E402
from osipi_dagster_tests.services import (  # noqa: E402
    dagster_deployment,
    most_at_once,
    postgres_server,
)

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
        self.cpu_samples: dict[int, list[tuple[float, float]]] = defaultdict(list)  # pid -> (time, CPU s)
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
            self.cpu_samples[pid].append((time.time(), cpu))
            peak = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
            self.peaks[pid] = max(self.peaks[pid], peak / 1024)

    def cpu_seconds(self, pids: set[int] | None = None, role: str | None = None) -> float:
        """CPU seconds spent while sampled by ``pids`` or by the processes of ``role``."""
        chosen = [p for p in self.cpu if (pids is not None and p in pids) or self.roles.get(p) == role]
        return sum(self.cpu[p] - (self.first_cpu[p] if self.roles[p] != "spawned" else 0.0) for p in chosen)

    def cpu_during(self, pid: int, start: float, end: float) -> float:
        """CPU seconds ``pid`` spent from ``start`` to ``end`` (epoch seconds), interpolated from samples."""
        return self.cpu_at(pid, end) - self.cpu_at(pid, start)

    def cpu_at(self, pid: int, when: float) -> float:
        """The CPU seconds ``pid`` had spent at ``when`` (epoch seconds), interpolated from samples."""
        samples = self.cpu_samples.get(pid, [])
        if not samples:
            return 0.0
        times = [t for t, _ in samples]
        after = bisect.bisect_left(times, when)
        if after == 0:
            return samples[0][1]
        if after == len(samples):
            return samples[-1][1]
        (t0, c0), (t1, c1) = samples[after - 1], samples[after]
        return c0 + (c1 - c0) * (when - t0) / (t1 - t0)


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
    parser.add_argument(
        "--runs",
        type=int,
        default=4,
        help="runs launched at once, each over every day x a block of the shards (the partition range tags)",
    )
    parser.add_argument(
        "--backfills",
        type=int,
        help="launch this many backfills instead, each over a block of the shards, split into runs by the "
        "daemon (1: one backfill, a run per day of 16 shards)",
    )
    parser.add_argument("--identity", action="store_true", help="no gzip between the mock and the client")
    args = parser.parse_args()
    if not 1 <= (args.backfills or args.runs) <= args.shards:
        parser.error("--runs and --backfills must be between 1 and --shards")
    print(json.dumps(run(args)))


def run(args: argparse.Namespace) -> dict[str, object]:
    days = [LAST_DAY - timedelta(days=offset) for offset in reversed(range(args.days))]
    shards = [f"s{index:02d}" for index in range(args.shards)]
    launched_at_once = args.backfills or args.runs
    blocks = [
        shards[index * args.shards // launched_at_once : (index + 1) * args.shards // launched_at_once]
        for index in range(launched_at_once)
    ]
    launches = [[f"{day.isoformat()}|{shard}" for day in days for shard in block] for block in blocks]
    now = f"{(LAST_DAY + timedelta(days=1)).isoformat()}T00:00:00Z"
    mock_options = ["--tags", str(args.tags), "--now", now, "--sampling", "1s"]
    mock_options += ["--archive-days", str(args.days + 1)]
    processes = Processes()
    load_before = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="bench_backfill_"))
    settings = {
        "OSIPI_LAKE_ROOT": str(work / "lake"),
        "OSIPI_TAG_SHARDS": str(args.shards),
        "OSIPI_PI_COMPRESS": "false" if args.identity else "true",
    }
    with (
        postgres_server() as postgres,
        mock_pi(work, *mock_options) as pi_api,
        dagster_deployment(
            work / "dagster_home", postgres.environment() | settings | {"OSIPI_PI_BASE_URL": pi_api}, work
        ) as ui,
    ):
        location = ui.location()
        ui.wait_run(ui.materialize(location, ["pi_af_hierarchy", "pi_af_attributes", "pi_points"]), 900)
        processes.sample()  # CPU times of the services before the backfill
        processes.start()
        launched = time.time()
        if args.backfills:
            backfill_ids = [
                ui.launch_backfill("pi_timeseries", partitions, {"osipi/bench": "backfill"})
                for partitions in launches
            ]
            backfills = [ui.wait_backfill(backfill_id, timeout_s=7200) for backfill_id in backfill_ids]
            every_run = [run for backfill in backfills for run in backfill["runs"]]
            done = {backfill["status"] for backfill in backfills} == {"COMPLETED_SUCCESS"}
        else:
            run_ids = [
                ui.materialize(location, ["pi_timeseries"], _range_tags(partitions) | {"osipi/bench": "runs"})
                for partitions in launches
            ]
            every_run = _wait_runs(ui, run_ids, timeout_s=7200)
            done = True  # each launched run, or its retry, is checked below
        processes.stop()
        failed = {
            run["runId"]: {"tags": _tags(run), "errors": ui.run_errors(run["runId"])}
            for run in every_run
            if run["status"] != "SUCCESS"
        }
        for run_id in failed:  # the work folder keeps them, with the processes' logs
            _save_event_log(postgres.environment(), work / "dagster_home", run_id, work)
        # A run that failed outside the code is re-executed by the daemon (deploy/dagster.yaml, run_retries).
        retried = {
            run_id: {"reason": run["tags"].get("dagster/failure_reason", "?"), "errors": run["errors"]}
            for run_id, run in failed.items()
            if run["tags"].get("dagster/will_retry") == "true"
        }
        lost = {run_id: run["errors"] for run_id, run in failed.items() if run_id not in retried}
        if lost or not done:
            raise SystemExit(
                f"runs failed (logs in {work}): {lost}; backfills done: {done}; retried {retried}"
            )
        timings = [
            _run_timings(postgres.environment(), work / "dagster_home", run["runId"])
            for run in every_run
            if run["status"] == "SUCCESS"
        ]
        runs = [run for run in timings if run is not None]
    if not retried:
        shutil.rmtree(work)
    load_after = os.getloadavg()
    partitions = sum(len(partitions) for partitions in launches)
    result = _report(args, partitions, runs, processes, launched, load_before, load_after)
    if retried:
        print(f"runs that failed and were retried (event logs in {work}): {retried}")
    return result | {"runs_failed_then_retried": retried, "runs_failed": len(lost)}


def _range_tags(partitions: list[str]) -> dict[str, str]:
    """The tags of a run over the rectangle from the first to the last of ``partitions`` (every day x a
    block of shards, listed day by day)."""
    return {
        "dagster/asset_partition_range_start": partitions[0],
        "dagster/asset_partition_range_end": partitions[-1],
    }


def _wait_runs(ui: DagsterUI, run_ids: list[str], timeout_s: float) -> list[dict]:
    """Every run of ``run_ids`` once ended, and the daemon's retries of those that failed outside the code
    (deploy/dagster.yaml's ``run_retries``), followed until one of each chain ended without a retry."""
    deadline = time.monotonic() + timeout_s
    waiting, ended = list(run_ids), []
    while waiting:
        if time.monotonic() > deadline:
            raise SystemExit(f"runs still not done after {timeout_s:.0f} s: {waiting}")
        time.sleep(2)
        runs = {run["runId"]: run for run in ui.runs()}
        for run_id in list(waiting):
            run = runs.get(run_id)
            if run is None or run["status"] not in {"SUCCESS", "FAILURE", "CANCELED"}:
                continue
            if _tags(run).get("dagster/will_retry") == "true":
                retry = [r["runId"] for r in runs.values() if _tags(r).get("dagster/parent_run_id") == run_id]
                if not retry:
                    continue  # the daemon has not launched it yet
                waiting += retry
            waiting.remove(run_id)
            ended.append(run)
    return ended


def _tags(run: dict[str, object]) -> dict[str, str]:
    return {tag["key"]: tag["value"] for tag in run["tags"]}


def _save_event_log(environment: dict[str, str], home: Path, run_id: str, folder: Path) -> None:
    """Write a run's whole event log, read from the instance, with every error's stack, to
    ``folder/run_<id>.log`` (the PostgreSQL cluster is removed on exit)."""
    import dagster as dg

    os.environ.update(environment | {"DAGSTER_HOME": str(home)})
    lines = []
    with dg.DagsterInstance.get() as instance:
        for entry in instance.all_logs(run_id):
            event = entry.dagster_event
            when = datetime.fromtimestamp(entry.timestamp, UTC).strftime("%H:%M:%S.%f")[:-3]
            kind = event.event_type.name if event else "LOG"
            pid = event.pid if event else "-"
            lines.append(f"{when} {kind} {entry.step_key or '-'} pid={pid} {entry.user_message}")
            error = getattr(event.event_specific_data, "error", None) if event else None
            if error is not None:
                lines.append(error.to_string())
    (folder / f"run_{run_id}.log").write_text("\n".join(lines) + "\n")


def _run_timings(environment: dict[str, str], home: Path, run_id: str) -> dict[str, object] | None:
    """One run's event times (the run's, and per step), its processes, and its partitions' reported values
    and ingest seconds, from the instance. The asset's step is the one that materializes; the other steps
    are the asset checks Dagster adds to every run of ``pi_timeseries``."""
    import dagster as dg

    os.environ.update(environment | {"DAGSTER_HOME": str(home)})
    with dg.DagsterInstance.get() as instance:
        times: dict[str, float] = {}
        step_times: dict[str, dict[str, float]] = defaultdict(dict)  # step key -> event name -> time
        step_pids: dict[str, int] = {}
        worker_pid = -1
        asset_step = ""
        values = 0
        durations: dict[str, float] = {}  # partition -> the ingest seconds it reports
        logged: list[tuple[float, str]] = []  # (when, partition) the step logged each partition done
        for entry in instance.all_logs(run_id):
            event = entry.dagster_event
            if event is None:
                if " values of " in entry.user_message:
                    logged.append((entry.timestamp, entry.user_message.split(":", 1)[0]))
                continue
            name = event.event_type.name
            times.setdefault(name, entry.timestamp)
            if entry.step_key:
                step_times[entry.step_key].setdefault(name, entry.timestamp)
            if event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION:
                asset_step = entry.step_key or ""
                metadata = event.event_specific_data.materialization.metadata
                values += int(metadata["dagster/row_count"].value)
                durations[event.event_specific_data.materialization.partition] = float(
                    metadata["duration_seconds"].value
                )
            pid = getattr(event.event_specific_data, "metadata", {}).get("pid")
            if pid is not None:
                if event.event_type == dg.DagsterEventType.STEP_WORKER_STARTED and entry.step_key:
                    step_pids[entry.step_key] = int(pid.value)
                else:
                    worker_pid = int(pid.value)
    if not asset_step:  # a retry that re-ran only the checks' step: its ingest is in the failed run
        return None
    asset = step_times[asset_step]
    checks = {key: step for key, step in step_times.items() if key != asset_step}
    # Between two partitions' log lines: the next one's catalog lookup, its ingest, its latency record.
    starts = [asset["STEP_START"], *(when for when, _ in logged[:-1])]
    gaps = [done - begun - durations[key] for begun, (done, key) in zip(starts, logged, strict=True)]
    return {
        "run_id": run_id,
        "times": times,
        "asset_step": asset,
        "check_seconds": sum(step["STEP_SUCCESS"] - step["STEP_START"] for step in checks.values()),
        "check_windows": [(step["STEP_START"], step["STEP_SUCCESS"]) for step in checks.values()],
        "worker_pid": worker_pid,
        "step_pid": step_pids.get(asset_step, -1),
        "check_pids": {step_pids[key] for key in checks if key in step_pids},
        "values": values,
        "ingest_seconds": sum(durations.values()),
        "largest_gap_outside_ingest_seconds": max(gaps, default=0.0),
        # When each partition's ingest ran: it reports its seconds and logs right after.
        "ingest_windows": [(done - durations[key], done) for done, key in logged],
    }


def _report(args, partitions, runs, processes: Processes, launched: float, load_before, load_after) -> dict:
    starting = [run["times"]["RUN_STARTING"] for run in runs]
    ended = [run["times"]["RUN_SUCCESS"] for run in runs]
    values = sum(run["values"] for run in runs)
    run_seconds = sum(end - start for start, end in zip(starting, ended, strict=True))
    ingest_seconds = sum(run["ingest_seconds"] for run in runs)
    check_seconds = sum(run["check_seconds"] for run in runs)
    wall = max(ended) - launched
    print(
        f"{'run':8} {'values':>11} {'launch->end s':>13} {'start-up s':>10} {'ingest s':>9} "
        f"{'step rest s':>11} {'max gap s':>9} {'checks s':>8} {'wind-down s':>11} {'outside':>8} "
        f"{'worker MiB':>10} {'step MiB':>9} {'checks MiB':>10}"
    )
    peaks: dict[str, list[float]] = {"worker": [], "step": [], "checks": []}
    for run in runs:
        times, asset = run["times"], run["asset_step"]
        peaks["worker"].append(processes.peaks.get(run["worker_pid"], 0.0))
        peaks["step"].append(processes.peaks.get(run["step_pid"], 0.0))
        peaks["checks"].append(max((processes.peaks.get(pid, 0.0) for pid in run["check_pids"]), default=0.0))
        span = times["RUN_SUCCESS"] - times["RUN_STARTING"]
        startup = asset["STEP_START"] - times["RUN_STARTING"]  # run worker and step process start-up
        step_rest = asset["STEP_SUCCESS"] - asset["STEP_START"] - run["ingest_seconds"]
        wind_down = times["RUN_SUCCESS"] - asset["STEP_SUCCESS"] - run["check_seconds"]
        print(
            f"{run['run_id'][:8]} {run['values']:>11,} {span:>13.1f} {startup:>10.1f} "
            f"{run['ingest_seconds']:>9.1f} {step_rest:>11.1f} "
            f"{run['largest_gap_outside_ingest_seconds']:>9.1f} {run['check_seconds']:>8.1f} "
            f"{wind_down:>11.1f} {1 - run['ingest_seconds'] / span:>8.1%} {peaks['worker'][-1]:>10.0f} "
            f"{peaks['step'][-1]:>9.0f} {peaks['checks'][-1]:>10.0f}"
        )
    cpu_parts = [_cpu_parts(run, processes) for run in runs]
    cpu_us = {  # CPU microseconds per value by part: independent of how busy the machine is
        "ingest_steps": processes.cpu_seconds({run["step_pid"] for run in runs}),
        "check_steps": processes.cpu_seconds(set().union(*(run["check_pids"] for run in runs))),
        "run_workers": processes.cpu_seconds({run["worker_pid"] for run in runs}),
        "dagster_services": processes.cpu_seconds(role="dagster services"),
        "mock": processes.cpu_seconds(role="mock"),
    }
    cpu_us = {part: seconds / values * 1e6 for part, seconds in cpu_us.items()}
    result = {
        "days": args.days,
        "shards": args.shards,
        "tags": args.tags,
        "accept_encoding": "identity" if args.identity else "gzip, deflate",
        "partitions": partitions,
        "launched": f"{args.backfills} backfills" if args.backfills else f"{args.runs} runs",
        "runs": len(runs),
        "most_runs_at_once": most_at_once(list(zip(starting, ended, strict=True))),
        "values": values,
        "wall_seconds": round(wall, 1),
        "values_per_second": round(values / wall),
        "runs_span_seconds": round(max(ended) - min(starting), 1),
        "values_per_second_over_runs_span": round(values / (max(ended) - min(starting))),
        "first_run_launched_after_seconds": round(min(starting) - launched, 1),
        "run_seconds": round(run_seconds, 1),
        "ingest_seconds": round(ingest_seconds, 1),
        "check_seconds": round(check_seconds, 1),
        "share_outside_ingest": round(1 - ingest_seconds / run_seconds, 3),
        "share_outside_ingest_and_checks": round(1 - (ingest_seconds + check_seconds) / run_seconds, 3),
        "cpu_us_per_value": {part: round(us, 3) for part, us in cpu_us.items()},
        **{
            f"cpu_seconds_{part}_per_run": round(sum(parts[part] for parts in cpu_parts) / len(runs), 2)
            for part in cpu_parts[0]
        },
        "cpu_seconds_outside_ingest_per_run_max": round(
            max(parts["outside_ingest"] for parts in cpu_parts), 2
        ),
        "peak_rss_mib_run_worker": round(max(peaks["worker"])),
        "peak_rss_mib_step": round(max(peaks["step"])),
        "peak_rss_mib_checks": round(max(peaks["checks"])),
        "load_average_before_after": [round(load_before[0], 1), round(load_after[0], 1)],
    }
    print(
        f"{values:,} values in {wall:.0f} s from launch: {values / wall:,.0f} values/s; "
        f"{result['most_runs_at_once']} runs at once; "
        f"{1 - ingest_seconds / run_seconds:.1%} of run time outside ingest "
        f"({1 - (ingest_seconds + check_seconds) / run_seconds:.1%} without the checks); peak RSS per run "
        f"{result['peak_rss_mib_run_worker']} MiB (run worker) + {result['peak_rss_mib_step']} MiB (step) + "
        f"{result['peak_rss_mib_checks']} MiB (checks); "
        "CPU µs/value: "
        + ", ".join(f"{part} {us:.3f}" for part, us in cpu_us.items())
        + f"; CPU s per run {result['cpu_seconds_total_per_run']}, outside ingest "
        f"{result['cpu_seconds_outside_ingest_per_run']} "
        f"(max {result['cpu_seconds_outside_ingest_per_run_max']}; the run worker before the asset's step "
        f"{result['cpu_seconds_worker_before_step_per_run']}, "
        f"the checks {result['cpu_seconds_checks_per_run']})"
    )
    return result


def _cpu_parts(run: dict, processes: Processes) -> dict[str, float]:
    """A run's CPU seconds (its run worker and its steps' processes), those spent outside its partitions'
    ingest (the Dagster overhead per run, robust when the machine is busy), the run worker's before the
    asset's step starts (its start-up), and the checks' (their step's process, start-up included, with the
    multiprocess executor; the run worker during their step with the in-process one)."""
    worker, step = run["worker_pid"], run["step_pid"]
    total = processes.cpu_seconds({worker, step, *run["check_pids"]} - {-1})
    ingest_pid = step if step != -1 else worker
    ingest = sum(processes.cpu_during(ingest_pid, start, end) for start, end in run["ingest_windows"])
    checks = (
        processes.cpu_seconds(run["check_pids"])
        if run["check_pids"]
        else sum(processes.cpu_during(worker, start, end) for start, end in run["check_windows"])
    )
    return {
        "total": total,
        "outside_ingest": total - ingest,
        "worker_before_step": processes.cpu_at(worker, run["asset_step"]["STEP_START"]),
        "checks": checks,
    }


if __name__ == "__main__":
    main()
