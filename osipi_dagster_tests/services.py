"""Real services the object-store and deployment tests start on loopback, and the production deployment.

* :func:`s3_server`: moto's server mode (``moto_server``, from the dev extra ``moto[server]``), a real HTTP
  S3 endpoint holding its buckets in memory. delta-rs talks to it as to AWS S3: signed path-style requests
  and conditional writes (``If-None-Match: *``), which moto honours.
* :func:`postgres_server`: a throwaway PostgreSQL cluster from Debian's ``postgresql`` package (``make test``
  installs it when missing): ``initdb`` into a fresh folder and ``pg_ctl`` on a free loopback port.
  PostgreSQL refuses to run as root, so as root (CI) both run as the ``postgres`` user, in a folder outside
  pytest's root-only temporary tree.
* :func:`dagster_deployment`: ``deploy/``'s three processes on one instance: the code server, the daemon
  and the webserver, as docs/DEPLOYMENT.md runs them.

Processes are started and stopped by ``processes.py``'s helpers (own process group, SIGINT then SIGKILL);
the mock PI Web API runs as a process by its ``mock_pi``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2
import pytest
import requests

from osipi_dagster.mock.server import free_port
from osipi_dagster_tests.dagster_ui import DagsterUI
from osipi_dagster_tests.processes import REPO, subprocess_group, wait_for

BIN = Path(sys.executable).parent  # the venv's console scripts, next to its python
LOCATION = "osipi_dagster"  # deploy/workspace.yaml's location name
# docs/DEPLOYMENT.md: a launch's gRPC call lasts as long as the run worker's start-up (60 s by default).
GRPC_TIMEOUT_SECONDS = "300"
_S3_NAMESPACE = "{http://s3.amazonaws.com/doc/2006-03-01/}"


@dataclass(frozen=True)
class S3Server:
    """A running S3-compatible server at ``endpoint`` and the dummy credentials it accepts."""

    endpoint: str
    region: str = "us-east-1"
    access_key_id: str = "osipi-test"
    secret_access_key: str = "osipi-test-secret"

    def create_bucket(self, name: str) -> str:
        """Create bucket ``name``; its name."""
        requests.put(f"{self.endpoint}/{name}", timeout=30).raise_for_status()
        return name

    def keys(self, bucket: str, prefix: str) -> list[str]:
        """The object keys under ``prefix`` in ``bucket`` (one ListObjectsV2 page: tests keep them few)."""
        answer = requests.get(
            f"{self.endpoint}/{bucket}", params={"list-type": "2", "prefix": prefix}, timeout=30
        )
        answer.raise_for_status()
        root = ElementTree.fromstring(answer.content)
        return [element.text or "" for element in root.iter(f"{_S3_NAMESPACE}Key")]

    def environment(self) -> dict[str, str]:
        """delta-rs's own variables pointing it at this server (how a deployment configures S3)."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ALLOW_HTTP": "true",
            "AWS_REGION": self.region,
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
        }


@contextmanager
def s3_server(log_dir: Path) -> Iterator[S3Server]:
    """``moto_server`` on a free loopback port, as a subprocess; stopped on exit."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    log = log_dir / "moto_server.log"
    args = [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)]
    with subprocess_group(args, dict(os.environ), log) as process:

        def serving() -> bool:
            with suppress(requests.ConnectionError):
                return requests.get(f"{endpoint}/moto-api/", timeout=5).ok
            return False

        wait_for(serving, "moto_server", process, log, timeout_s=180)
        yield S3Server(endpoint)


@dataclass(frozen=True)
class PostgresServer:
    """A running PostgreSQL cluster: ``user`` is its superuser (trust authentication, loopback only)."""

    port: int
    host: str = "127.0.0.1"
    user: str = "dagster"
    database: str = "dagster"

    def environment(self) -> dict[str, str]:
        """The variables deploy/dagster.yaml reads (the password is ignored by trust authentication)."""
        return {
            "DAGSTER_PG_HOST": self.host,
            "DAGSTER_PG_PORT": str(self.port),
            "DAGSTER_PG_DB": self.database,
            "DAGSTER_PG_USERNAME": self.user,
            "DAGSTER_PG_PASSWORD": "unused-with-trust-auth",
        }

    def query(self, sql: str, parameters: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """The rows of one SQL query."""
        with (
            psycopg2.connect(
                host=self.host, port=self.port, user=self.user, dbname=self.database
            ) as connection,
            connection.cursor() as cursor,
        ):
            cursor.execute(sql, parameters)
            rows = cursor.fetchall()
        connection.close()
        return rows


def postgres_bindir() -> Path:
    """The newest installed PostgreSQL's binaries (Debian: /usr/lib/postgresql/<version>/bin)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda path: int(path.parts[-3]))
    if not found:
        pytest.fail(
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): run `make test`, which "
            "installs Debian's postgresql package as root, or `apt-get install postgresql`."
        )
    return found[-1].parent


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """A fresh PostgreSQL cluster with database ``dagster`` on a free loopback port; removed on exit."""
    bindir = postgres_bindir()
    folder = Path(tempfile.mkdtemp(prefix="osipi-pg-"))
    as_owner: list[str] = []
    if os.geteuid() == 0:  # initdb and postgres refuse root
        shutil.chown(folder, "postgres", "postgres")
        as_owner = ["runuser", "-u", "postgres", "--"]
    data = folder / "data"
    server = PostgresServer(port=free_port())

    def run(*args: str) -> None:
        done = subprocess.run([*as_owner, *args], capture_output=True, text=True, timeout=120)
        if done.returncode:
            log = folder / "postgres.log"
            tail = log.read_text()[-3000:] if log.exists() else ""
            pytest.fail(f"{' '.join(args)} failed ({done.returncode}): {done.stdout}{done.stderr}{tail}")

    try:
        run(str(bindir / "initdb"), "-D", str(data), "-U", server.user, "--auth=trust", "-E", "UTF8")
        options = (
            f"-c listen_addresses={server.host} -p {server.port} -k {folder} "
            # A throwaway cluster: durability is not worth the fsyncs on a shared test machine.
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        log = str(folder / "postgres.log")
        run(str(bindir / "pg_ctl"), "-D", str(data), "-l", log, "-w", "-t", "60", "-o", options, "start")
        try:
            run(
                str(bindir / "createdb"),
                "-h",
                server.host,
                "-p",
                str(server.port),
                "-U",
                server.user,
                "dagster",
            )
            yield server
        finally:
            run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def dagster_deployment(home: Path, environment: dict[str, str], log_dir: Path) -> Iterator[DagsterUI]:
    """deploy/'s instance in ``home`` served by three processes: ``dagster code-server start`` (loads the
    code, runs the runs), ``dagster-daemon run`` and ``dagster-webserver``; the webserver's client.

    ``environment`` holds what the processes need besides ``DAGSTER_HOME`` and the code server's address:
    the DAGSTER_PG_* variables and, for the code server, the OSIPI_* settings."""
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "deploy" / "dagster.yaml", home / "dagster.yaml")
    code_port, web_port = free_port(), free_port()
    base = {key: value for key, value in os.environ.items() if not key.startswith(("OSIPI_", "DAGSTER_"))}
    env = (
        base
        | environment
        | {
            "DAGSTER_HOME": str(home),
            "DAGSTER_CODE_SERVER_HOST": "127.0.0.1",
            "DAGSTER_CODE_SERVER_PORT": str(code_port),
            "DAGSTER_GRPC_TIMEOUT_SECONDS": GRPC_TIMEOUT_SECONDS,
        }
    )
    workspace = str(REPO / "deploy" / "workspace.yaml")
    code_server = [str(BIN / "dagster"), "code-server", "start", "-h", "127.0.0.1", "-p", str(code_port)]
    code_server += ["-m", "osipi_dagster.definitions", "--location-name", LOCATION]
    webserver = [str(BIN / "dagster-webserver"), "-w", workspace, "-h", "127.0.0.1", "-p", str(web_port)]
    url = f"http://127.0.0.1:{web_port}"
    with ExitStack() as stack:
        # Exits in reverse: the webserver and the daemon stop before the code server their runs came from.
        stack.enter_context(subprocess_group(code_server, env, log_dir / "code_server.log"))
        stack.enter_context(
            subprocess_group(
                [str(BIN / "dagster-daemon"), "run", "-w", workspace], env, log_dir / "daemon.log"
            )
        )
        web = stack.enter_context(subprocess_group(webserver, env, log_dir / "webserver.log"))
        ui = DagsterUI(url)

        def loaded() -> bool:
            # The webserver answers before the code server has loaded the code: wait for the location.
            with suppress(requests.ConnectionError, RuntimeError):
                return bool(ui.location())
            return False

        wait_for(
            loaded, "the webserver with the code location", web, log_dir / "webserver.log", timeout_s=600
        )
        yield ui


def most_at_once(spans: list[tuple[float, float]]) -> int:
    """The largest number of (start, end) spans in progress at one moment."""
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    running = most = 0
    for _, change in events:
        running += change
        most = max(most, running)
    return most
