"""`make ui` (``python -m osipi_dagster.ui``): the Dagster UI on the embedded default, with the mock running.

Serves the mock PI Web API exactly as ``make demo`` serves its default server (2,000 points,
clock fixed at 2025-01-06T12:00:00Z) on 127.0.0.1:8010, then runs ``dagster dev -w workspace.yaml`` on
127.0.0.1:3000 with the code location pointed at that mock (``OSIPI_PI_BASE_URL``) and the instance in
``DAGSTER_HOME`` (the Makefile sets ./.dagster_home), so the UI shows the demo's runs and assets and can
launch more partitions. Ctrl-C (or SIGTERM) stops dagster dev; the mock stops once it has exited.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path

from osipi_dagster.demo import demo_mock
from osipi_dagster.mock.server import serve_in_thread
from osipi_dagster.settings import dagster_home, environment_with


def main(argv: list[str] | None = None) -> int:
    """Serve the mock, run ``dagster dev`` in the foreground until it exits; its exit status."""
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
        print(f"Dagster UI: http://127.0.0.1:{args.port} on {home}; Ctrl-C stops")
        return _dagster_dev(args.port, environment_with({"OSIPI_PI_BASE_URL": mock.api}))


def _dagster_dev(port: int, env: dict[str, str]) -> int:
    """Run ``dagster dev`` until it exits. Ctrl-C reaches it through the terminal; SIGTERM is forwarded
    as SIGINT, the signal dagster dev shuts its webserver, daemon and code servers down on."""
    dagster = Path(sys.executable).with_name("dagster")  # the CLI of this environment
    # A shell starts background jobs with SIGINT ignored, and dagster dev would inherit that and ignore
    # SIGINT and SIGTERM: with a handler here, the child starts with the default disposition instead.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    process = subprocess.Popen(
        [str(dagster), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)], env=env
    )
    signal.signal(signal.SIGTERM, lambda *_: process.send_signal(signal.SIGINT))
    while True:
        try:
            return process.wait()
        except KeyboardInterrupt:  # dagster dev got the same Ctrl-C: wait for its clean shutdown
            continue


if __name__ == "__main__":
    sys.exit(main())
