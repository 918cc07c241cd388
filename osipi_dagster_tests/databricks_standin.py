"""A stand-in Databricks workspace for the tests: a real HTTP server on 127.0.0.1.

It implements the REST endpoints the Databricks compute target uses, with Databricks' request and error
shapes, and records every request so a test can check what went over the wire:

* Jobs 2.2: ``runs/submit``, ``runs/get``, ``runs/cancel`` (``PipesDatabricksClient``). A submitted
  ``python_wheel_task`` really runs, as a local process: this machine's Python, where the connector is
  installed, stands for the job cluster. Its environment is only the task's ``spark_env_vars``, with each
  ``{{secrets/scope/key}}`` reference filled from the stand-in's secret store as Databricks does (nothing
  of the test's own environment leaks in), and the DBFS mount.
* DBFS 2.0: ``mkdirs``, ``put``, ``read``, ``delete``, ``get-status``, ``list`` (the Pipes context injector
  and message reader), over a local folder. The task sees that folder as its DBFS mount: Databricks mounts
  DBFS at ``/dbfs``, which cannot exist here, so the stand-in names it in ``OSIPI_PIPES_DBFS_MOUNT``.
* Unity Catalog 2.1: get and create schemas and tables (the registration of external Delta tables).

Every request must carry ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

SECRET_REFERENCE = re.compile(r"^\{\{secrets/([^/{}]+)/([^/{}]+)\}\}$")
FAILED_MESSAGE = "Workload failed, see run output for details"


class ApiError(Exception):
    """An error answer, in Databricks' shape ``{"error_code": ..., "message": ...}``."""

    def __init__(self, status: HTTPStatus, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class Request:
    """One request the stand-in answered."""

    method: str
    path: str
    query: dict[str, str]
    body: dict[str, Any]
    raw: str


@dataclass
class Run:
    """A submitted one-time run and the local process that plays its task."""

    run_id: int
    payload: dict[str, Any]
    process: subprocess.Popen[bytes] | None = None
    setup_error: str | None = None  # the cluster could not start (e.g. a missing secret)
    cancelled: bool = False
    log: Path | None = None

    def state(self) -> dict[str, str]:
        if self.setup_error is not None:
            return {"life_cycle_state": "INTERNAL_ERROR", "state_message": self.setup_error}
        assert self.process is not None
        code = self.process.poll()
        if code is None:
            return {"life_cycle_state": "RUNNING", "state_message": ""}
        if self.cancelled:
            return {"life_cycle_state": "TERMINATED", "result_state": "CANCELED", "state_message": "Canceled"}
        if code == 0:
            return {"life_cycle_state": "TERMINATED", "result_state": "SUCCESS", "state_message": ""}
        return {"life_cycle_state": "TERMINATED", "result_state": "FAILED", "state_message": FAILED_MESSAGE}


@dataclass
class DatabricksStandin:
    """The workspace's state; :func:`serve_standin` serves it."""

    root: Path
    token: str
    secrets: dict[tuple[str, str], str] = field(default_factory=dict)
    catalogs: tuple[str, ...] = ("main",)
    host: str = ""
    requests: list[Request] = field(default_factory=list)
    runs: dict[int, Run] = field(default_factory=dict)
    schemas: dict[str, dict[str, Any]] = field(default_factory=dict)
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def dbfs_root(self) -> Path:
        return self.root / "dbfs"

    @property
    def submitted(self) -> list[dict[str, Any]]:
        """The payloads of ``runs/submit``, in order."""
        return [run.payload for run in self.runs.values()]

    def wait_for_runs(self, timeout: float = 60) -> None:
        """Wait until no task process is running (the client may return while its run is terminating)."""
        deadline = time.monotonic() + timeout
        for run in list(self.runs.values()):
            if run.process is not None:
                run.process.wait(max(0.0, deadline - time.monotonic()))

    # --- dispatch ------------------------------------------------------------------------------------

    def answer(self, method: str, path: str, query: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        for pattern, handler in self._routes(method):
            match = re.fullmatch(pattern, path)
            if match:
                return handler(query, body, *match.groups())
        raise ApiError(HTTPStatus.NOT_FOUND, "ENDPOINT_NOT_FOUND", f"No API found for '{method} {path}'")

    def _routes(self, method: str) -> list[tuple[str, Any]]:
        routes = {
            "GET": [
                (r"/api/2\.[12]/jobs/runs/get", self._get_run),
                (r"/api/2\.0/dbfs/read", self._dbfs_read),
                (r"/api/2\.0/dbfs/get-status", self._dbfs_status),
                (r"/api/2\.0/dbfs/list", self._dbfs_list),
                (r"/api/2\.1/unity-catalog/schemas/([^/]+)", self._get_schema),
                (r"/api/2\.1/unity-catalog/tables/([^/]+)", self._get_table),
            ],
            "POST": [
                (r"/api/2\.[12]/jobs/runs/submit", self._submit),
                (r"/api/2\.[12]/jobs/runs/cancel", self._cancel),
                (r"/api/2\.0/dbfs/mkdirs", self._dbfs_mkdirs),
                (r"/api/2\.0/dbfs/put", self._dbfs_put),
                (r"/api/2\.0/dbfs/delete", self._dbfs_delete),
                (r"/api/2\.1/unity-catalog/schemas", self._create_schema),
                (r"/api/2\.1/unity-catalog/tables", self._create_table),
            ],
        }
        return routes.get(method, [])

    # --- jobs ----------------------------------------------------------------------------------------

    def _submit(self, _query: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        tasks = body.get("tasks") or []
        if len(tasks) != 1:
            raise ApiError(HTTPStatus.BAD_REQUEST, "INVALID_PARAMETER_VALUE", "The stand-in runs one task.")
        task = tasks[0]
        cluster = task.get("new_cluster") or {}
        for name in ("spark_version", "node_type_id", "num_workers"):
            if name not in cluster:
                raise ApiError(
                    HTTPStatus.BAD_REQUEST, "INVALID_PARAMETER_VALUE", f"new_cluster.{name} is required"
                )
        if "python_wheel_task" not in task:
            raise ApiError(
                HTTPStatus.BAD_REQUEST, "INVALID_PARAMETER_VALUE", "The stand-in runs python_wheel_task."
            )
        with self._lock:
            run = Run(run_id=len(self.runs) + 1, payload=body)
            self.runs[run.run_id] = run
        try:
            environment = self._cluster_environment(cluster.get("spark_env_vars") or {})
        except KeyError as missing:
            run.setup_error = str(missing.args[0])
            return {"run_id": run.run_id}
        run.log = self.root / f"run-{run.run_id}.log"
        with run.log.open("wb") as log:
            run.process = subprocess.Popen(
                _wheel_command(task["python_wheel_task"]),
                env=environment,
                cwd=self.root,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return {"run_id": run.run_id}

    def _cluster_environment(self, spark_env_vars: dict[str, str]) -> dict[str, str]:
        environment = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.root),
            "LANG": "C.UTF-8",
            "OSIPI_PIPES_DBFS_MOUNT": str(self.dbfs_root),
        }
        for name, value in spark_env_vars.items():
            reference = SECRET_REFERENCE.match(value)
            if reference:
                if reference.groups() not in self.secrets:
                    scope, key = reference.groups()
                    raise KeyError(f"Secret does not exist with scope: {scope} and key: {key}")
                value = self.secrets[reference.groups()]
            environment[name] = value
        return environment

    def _get_run(self, query: dict[str, str], _body: dict[str, Any]) -> dict[str, Any]:
        run = self._run(query.get("run_id"))
        task = run.payload["tasks"][0]
        return {
            "run_id": run.run_id,
            "run_name": run.payload.get("run_name"),
            "run_page_url": f"{self.host}/#job/runs/{run.run_id}",
            "state": run.state(),
            "tasks": [{"task_key": task.get("task_key"), "run_id": run.run_id * 100, "state": run.state()}],
        }

    def _cancel(self, _query: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        run = self._run(body.get("run_id"))
        if run.process is not None and run.process.poll() is None:
            run.cancelled = True
            run.process.terminate()
        return {}

    def _run(self, run_id: object) -> Run:
        try:
            return self.runs[int(str(run_id))]
        except (KeyError, ValueError):
            raise ApiError(
                HTTPStatus.BAD_REQUEST, "INVALID_PARAMETER_VALUE", f"Run {run_id} does not exist."
            ) from None

    # --- DBFS ----------------------------------------------------------------------------------------

    def _local(self, dbfs_path: object) -> Path:
        text = str(dbfs_path or "").removeprefix("dbfs:")
        if not text.startswith("/") or ".." in Path(text).parts:
            raise ApiError(
                HTTPStatus.BAD_REQUEST, "INVALID_PARAMETER_VALUE", f"Path must be absolute: {text}"
            )
        return self.dbfs_root / text.lstrip("/")

    def _existing(self, dbfs_path: object) -> Path:
        path = self._local(dbfs_path)
        if not path.exists():
            raise ApiError(
                HTTPStatus.NOT_FOUND,
                "RESOURCE_DOES_NOT_EXIST",
                f"No file or directory exists on path {dbfs_path}.",
            )
        return path

    def _dbfs_mkdirs(self, _query: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        self._local(body.get("path")).mkdir(parents=True, exist_ok=True)
        return {}

    def _dbfs_put(self, _query: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        path = self._local(body.get("path"))
        if path.exists() and not body.get("overwrite"):
            raise ApiError(
                HTTPStatus.BAD_REQUEST,
                "RESOURCE_ALREADY_EXISTS",
                f"A file or directory already exists at {body.get('path')}.",
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(body.get("contents") or ""))
        return {}

    def _dbfs_read(self, query: dict[str, str], _body: dict[str, Any]) -> dict[str, Any]:
        path = self._existing(query.get("path"))
        if path.is_dir():
            raise ApiError(
                HTTPStatus.BAD_REQUEST, "INVALID_PARAMETER_VALUE", f"{query.get('path')} is a directory."
            )
        offset = int(query.get("offset", 0))
        data = path.read_bytes()[offset : offset + int(query.get("length", 1 << 20))]
        return {"bytes_read": len(data), "data": base64.b64encode(data).decode()}

    def _dbfs_delete(self, _query: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        path = self._local(body.get("path"))
        if path.is_dir():
            if any(path.iterdir()) and not body.get("recursive"):
                raise ApiError(HTTPStatus.BAD_REQUEST, "IO_ERROR", f"{body.get('path')} is not empty.")
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
        return {}

    def _dbfs_status(self, query: dict[str, str], _body: dict[str, Any]) -> dict[str, Any]:
        return _file_info(query["path"], self._existing(query.get("path")))

    def _dbfs_list(self, query: dict[str, str], _body: dict[str, Any]) -> dict[str, Any]:
        path = self._existing(query.get("path"))
        base = query["path"].rstrip("/")
        return {"files": [_file_info(f"{base}/{child.name}", child) for child in sorted(path.iterdir())]}

    # --- Unity Catalog ---------------------------------------------------------------------------------

    def _get_schema(self, _query: dict[str, str], _body: dict[str, Any], full_name: str) -> dict[str, Any]:
        name = unquote(full_name)
        if name not in self.schemas:
            raise ApiError(HTTPStatus.NOT_FOUND, "SCHEMA_DOES_NOT_EXIST", f"Schema '{name}' does not exist.")
        return self.schemas[name]

    def _create_schema(self, _query: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        catalog, name = body.get("catalog_name"), body.get("name")
        if catalog not in self.catalogs:
            raise ApiError(
                HTTPStatus.NOT_FOUND, "CATALOG_DOES_NOT_EXIST", f"Catalog '{catalog}' does not exist."
            )
        full_name = f"{catalog}.{name}"
        if full_name in self.schemas:
            raise ApiError(
                HTTPStatus.CONFLICT, "SCHEMA_ALREADY_EXISTS", f"Schema '{full_name}' already exists"
            )
        self.schemas[full_name] = {**body, "full_name": full_name}
        return self.schemas[full_name]

    def _get_table(self, _query: dict[str, str], _body: dict[str, Any], full_name: str) -> dict[str, Any]:
        name = unquote(full_name)
        if name not in self.tables:
            raise ApiError(HTTPStatus.NOT_FOUND, "TABLE_DOES_NOT_EXIST", f"Table '{name}' does not exist.")
        return self.tables[name]

    def _create_table(self, _query: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        schema = f"{body.get('catalog_name')}.{body.get('schema_name')}"
        if schema not in self.schemas:
            raise ApiError(
                HTTPStatus.NOT_FOUND, "SCHEMA_DOES_NOT_EXIST", f"Schema '{schema}' does not exist."
            )
        # This API creates external Delta tables only, and does not check the columns against the data.
        if body.get("table_type") != "EXTERNAL" or body.get("data_source_format") != "DELTA":
            raise ApiError(
                HTTPStatus.BAD_REQUEST,
                "INVALID_PARAMETER_VALUE",
                "Only EXTERNAL DELTA tables can be created.",
            )
        if not body.get("storage_location") or not body.get("columns"):
            raise ApiError(
                HTTPStatus.BAD_REQUEST,
                "INVALID_PARAMETER_VALUE",
                "storage_location and columns are required.",
            )
        for column in body["columns"]:
            missing = {"name", "type_name", "type_text", "type_json", "position"} - set(column)
            if missing:
                raise ApiError(
                    HTTPStatus.BAD_REQUEST, "INVALID_PARAMETER_VALUE", f"Column lacks {sorted(missing)}."
                )
        full_name = f"{schema}.{body.get('name')}"
        if full_name in self.tables:
            raise ApiError(HTTPStatus.CONFLICT, "TABLE_ALREADY_EXISTS", f"Table '{full_name}' already exists")
        self.tables[full_name] = {**body, "full_name": full_name}
        return self.tables[full_name]


def _file_info(dbfs_path: str, path: Path) -> dict[str, Any]:
    stat = path.stat()
    return {
        "path": dbfs_path,
        "is_dir": path.is_dir(),
        "file_size": 0 if path.is_dir() else stat.st_size,
        "modification_time": int(stat.st_mtime * 1000),
    }


def _wheel_command(task: dict[str, Any]) -> list[str]:
    """The command a python_wheel_task runs: the package's named entry point, else ``package.entry_point()``
    (Databricks' rule), with the task's parameters as arguments."""
    package, name = task["package_name"], task["entry_point"]
    for entry in entry_points(group="console_scripts", name=name):
        if entry.dist is not None and _canonical(entry.dist.name) == _canonical(package):
            module, _, function = entry.value.partition(":")
            code = f"import sys; from {module} import {function}; sys.exit({function}())"
            break
    else:
        code = f"import sys, {package}; sys.exit({package}.{name}())"
    return [sys.executable, "-c", code, *task.get("parameters", [])]


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _handler(standin: DatabricksStandin) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._answer("GET")

        def do_POST(self) -> None:
            self._answer("POST")

        def _answer(self, method: str) -> None:
            url = urlsplit(self.path)
            query = {key: values[-1] for key, values in parse_qs(url.query).items()}
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
            try:
                body = json.loads(raw) if raw else {}
                standin.requests.append(Request(method, url.path, query, body, raw))
                if self.headers.get("Authorization") != f"Bearer {standin.token}":
                    raise ApiError(HTTPStatus.UNAUTHORIZED, "UNAUTHENTICATED", "Invalid access token.")
                status, answer = HTTPStatus.OK, standin.answer(method, url.path, query, body)
            except ApiError as error:
                status, answer = error.status, {"error_code": error.code, "message": error.message}
            payload = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the requests are recorded in standin.requests

    return Handler


@contextmanager
def serve_standin(
    root: Path, token: str, secrets: dict[tuple[str, str], str] | None = None
) -> Iterator[DatabricksStandin]:
    """Serve a stand-in workspace on 127.0.0.1 (a free port) until the block ends; its runs' processes are
    stopped then."""
    standin = DatabricksStandin(root=root, token=token, secrets=dict(secrets or {}))
    standin.dbfs_root.mkdir(parents=True, exist_ok=True)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(standin))
    standin.host = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, name="databricks-standin", daemon=True)
    thread.start()
    try:
        yield standin
    finally:
        for run in standin.runs.values():
            if run.process is not None and run.process.poll() is None:
                run.process.kill()
                run.process.wait()
        server.shutdown()
        server.server_close()
