"""Real processes for the end-to-end tests: the mock PI Web API and ``dagster dev``, each in its own process
group on a free loopback port, stopped (and their children) when the test ends."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TypeVar

import pytest
import requests

from osipi_dagster.mock.server import free_port
from osipi_dagster_tests.dagster_ui import DagsterUI

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[1]
DAGSTER = str(Path(sys.executable).with_name("dagster"))  # the venv's CLI, next to its python


@contextmanager
def mock_pi(tmp_path: Path, *options: str) -> Iterator[str]:
    """The mock PI Web API as a subprocess on a free loopback port, with command-line ``options``; its API
    root URL."""
    log = tmp_path / "mock.log"
    args = [sys.executable, "-m", "osipi_dagster.mock", "--host", "127.0.0.1", "--port", "0", *options]
    with subprocess_group(args, dict(os.environ), log) as process:

        def announced() -> str | None:
            found = re.search(r"listening on (http://\S+/piwebapi)", log.read_text())
            return found.group(1) if found else None

        yield wait_for(announced, "the mock PI Web API", process, log, timeout_s=180)


@contextmanager
def dagster_dev(
    tmp_path: Path, settings: Mapping[str, str], start_timeout_s: float = 120
) -> Iterator[DagsterUI]:
    """``dagster dev -w workspace.yaml`` on a free loopback port with a fresh instance, the code location
    configured by the ``OSIPI_*`` ``settings`` only; its client once it serves (within
    ``start_timeout_s``)."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    env = {key: value for key, value in os.environ.items() if not key.startswith(("OSIPI_", "DAGSTER_"))}
    env |= {"DAGSTER_HOME": str(home), **settings}
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "dagster_dev.log"
    args = [DAGSTER, "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)]
    with subprocess_group(args, env, log) as process:

        def serving() -> bool:
            with suppress(requests.ConnectionError):
                return requests.get(f"{url}/server_info", timeout=5).ok
            return False

        wait_for(serving, "dagster dev", process, log, timeout_s=start_timeout_s)
        yield DagsterUI(url)


@contextmanager
def subprocess_group(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    """Run ``args`` from the repository root in its own process group, output to ``log``; on exit, stop
    the whole group: SIGINT (``dagster dev`` then shuts its children down), then SIGKILL stragglers.

    If pytest itself ignores SIGINT (a shell's background job), the child would inherit that and ignore
    SIGINT and SIGTERM; a handler held while it starts gives it the default disposition instead."""
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with log.open("wb") as out:
            process = subprocess.Popen(
                args, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
    finally:
        signal.signal(signal.SIGINT, inherited)
    try:
        yield process
    finally:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGINT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and _group_alive(process):
            time.sleep(0.2)
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _group_alive(process: subprocess.Popen) -> bool:
    """Whether any process of ``process``'s group is still alive (the leader is reaped once it exits)."""
    process.poll()
    try:
        os.killpg(process.pid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_for(
    check: Callable[[], T | None], what: str, process: subprocess.Popen, log: Path, timeout_s: float
) -> T:
    """The first truthy ``check()``; fails with the log's tail if ``process`` exits or time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{what} exited with status {process.returncode}:\n{log.read_text()[-5000:]}")
        result = check()
        if result:
            return result
        time.sleep(0.25)
    pytest.fail(f"{what} was not ready after {timeout_s:.0f} s:\n{log.read_text()[-5000:]}")
