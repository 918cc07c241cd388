"""`make ui` (``python -m osipi_dagster.ui``): the Dagster UI on the embedded default, with the mock running.

Serves the mock PI Web API exactly as ``make demo`` serves its default server (2,000 points, clock fixed at
noon UTC of today) on 127.0.0.1:8010. If the instance in ``DAGSTER_HOME`` (the Makefile sets
./.dagster_home) holds no materialization of today's time series yet, it first runs the demo's main job for
that server (AF, catalog, yesterday and today with their checks, event frames, ingestion reports), so the
asset graph, partitions, checks and plots are not empty. Then it prints what to look at and runs ``dg dev``
(``dagster dev`` on this project: code location ``osipi_dagster``) on 127.0.0.1:3000 with the code location
pointed at the mock (``OSIPI_PI_BASE_URL``). Ctrl-C (or SIGTERM) stops dg dev; the mock stops once it has
exited.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path

import dagster as dg

from osipi_dagster.definitions import PROJECT_ROOT, build_definitions
from osipi_dagster.demo import DemoTally, demo_days, demo_mock, main_job
from osipi_dagster.mock.server import serve_in_thread
from osipi_dagster.settings import dagster_home, environment_with, lake_from_env, pi_server_from_env


def main(argv: list[str] | None = None) -> int:
    """Serve the mock, run ``dg dev`` in the foreground until it exits; its exit status."""
    parser = argparse.ArgumentParser(prog="python -m osipi_dagster.ui", description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=3000, help="the Dagster UI's port (default 3000)")
    parser.add_argument("--mock-port", type=int, default=8010, help="the mock's port (default 8010)")
    args = parser.parse_args(argv)
    home = dagster_home()
    if not home:
        parser.error("DAGSTER_HOME is not set: run `make ui`, which uses ./.dagster_home")
    mock_config = demo_mock(port=args.mock_port)
    with ExitStack() as stack:
        try:
            mock = stack.enter_context(serve_in_thread(mock_config))
        except RuntimeError:
            print(f"The mock cannot listen on port {args.mock_port}: is `make mock` running? Stop it first.")
            return 1
        print(f"Mock PI Web API on {mock.api}: {mock_config.tags} points, clock fixed at {mock_config.now}")
        _materialize_demo_days(mock.api)
        print(what_to_click(f"http://127.0.0.1:{args.port}"))
        print(f"Dagster UI: http://127.0.0.1:{args.port} on {home}; Ctrl-C stops")
        # VIRTUAL_ENV: dg warns when the active environment is not the project's, which this one is.
        env = environment_with({"OSIPI_PI_BASE_URL": mock.api, "VIRTUAL_ENV": sys.prefix})
        return _dagster_dev(args.port, env)


def _materialize_demo_days(api: str) -> None:
    """The demo's main job on the embedded default server, unless today's time series is there already."""
    server = pi_server_from_env(base_url=api, compress=False)
    with dg.DagsterInstance.get() as instance:
        done = instance.get_materialized_partitions(dg.AssetKey(["pi_timeseries"]))
        today = demo_days()[-1].isoformat()
        if any(key.startswith(f"{today}|") for key in done):
            print(f"The demo's days are materialized in this instance already (today: {today}).")
            return
        print("Materializing the demo's days first (as `make demo` does; once per day):")
        main_job(build_definitions(lake_from_env(), [server]), instance, server, DemoTally())


def what_to_click(url: str) -> str:
    """A first tour of the UI on the demo's data."""
    yesterday, today = (day.isoformat() for day in demo_days())
    return f"""
What to look at in {url}:
  * Assets > Lineage (asset graph): bronze PI assets, silver/gold, the ingestion report.
  * Assets > pi_timeseries > Partitions: {yesterday} and {today} are materialized (newest first); keys are
    `date|shard`, e.g. `{today}|s03`.
  * pi_timeseries > Checks: seven checks per partition (null/bad share, freshness, volume, good quality,
    duplicates, schema, clock skew), each with its figure and worst points.
  * pi_timeseries > Overview > Metadata > Plots: dagster/row_count, values_per_second, late_values per
    partition (Dagster draws the latest 120 partitions: days x shards), or over time (Events), where
    table_rows is the whole table's row count (the Overview's "Row count" is the latest partition's).
  * pi_ingestion_report > a partition's materialization: `summary` (the figures) and `report_path` (the
    HTML dashboard); the same numbers in the table gold.pi_ingestion_report. Its Overview > Metadata >
    Plots draws them per day (values, good_share, late_values, failing_checks), not per tag shard.
  * pi_timeseries > Materialize...: pick dates (e.g. `{yesterday}`) and shards to launch a backfill.
  * Jobs > pi_timeseries_job: the partition matrix. Automation: schedules and sensors (stopped; start them
    there).
"""


def _dagster_dev(port: int, env: dict[str, str]) -> int:
    """Run ``dg dev`` until it exits. Ctrl-C reaches it through the terminal; SIGTERM is forwarded as
    SIGINT, the signal it shuts its webserver, daemon and code servers down on."""
    dg_cli = Path(sys.executable).with_name("dg")  # the CLI of this environment
    # A shell starts background jobs with SIGINT ignored, and dg dev would inherit that and ignore
    # SIGINT and SIGTERM: with a handler here, the child starts with the default disposition instead.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    process = subprocess.Popen(
        [str(dg_cli), "dev", "-h", "127.0.0.1", "-p", str(port)], env=env, cwd=PROJECT_ROOT
    )
    signal.signal(signal.SIGTERM, lambda *_: process.send_signal(signal.SIGINT))
    while True:
        try:
            return process.wait()
        except KeyboardInterrupt:  # dg dev got the same Ctrl-C: wait for its clean shutdown
            continue


if __name__ == "__main__":
    sys.exit(main())
