"""Run the mock: in the foreground (the CLI), or in a background thread (tests, demo, benchmarks)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

import uvicorn

from osipi_dagster.mock.app import create_app
from osipi_dagster.mock.config import MockConfig
from osipi_dagster.mock.state import MockState


def uvicorn_config(config: MockConfig) -> uvicorn.Config:
    return uvicorn.Config(
        create_app(config),
        host=config.host,
        port=config.port,
        http="httptools",
        log_level="warning",
        access_log=False,
        timeout_keep_alive=30,
    )


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class RunningMock:
    """A mock server listening on loopback."""

    url: str  # http://127.0.0.1:PORT
    state: MockState  # the server's own state: the oracle tests compare against

    @property
    def api(self) -> str:
        return self.url + "/piwebapi"


@contextmanager
def serve_in_thread(config: MockConfig, timeout_s: float = 30.0) -> Iterator[RunningMock]:
    """Serve ``config`` (on a free port when ``config.port`` is 0) until the block exits."""
    if config.port == 0:
        config = replace(config, port=free_port(config.host))
    server = uvicorn.Server(uvicorn_config(config))
    thread = threading.Thread(target=server.run, name=f"mock-pi-{config.port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the mock PI Web API did not start on {config.host}:{config.port}")
        time.sleep(0.01)
    try:
        yield RunningMock(f"http://{config.host}:{config.port}", server.config.app.state.mock)
    finally:
        server.should_exit = True
        thread.join(timeout_s)
