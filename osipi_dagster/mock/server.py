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
    """Uvicorn settings for ``config``: httptools, no access log (it would print every request)."""
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
    """A TCP port that is free on ``host`` right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class _AnnouncingServer(uvicorn.Server):
    """A uvicorn server that prints one line once it listens (scripts and tests wait for that line)."""

    def __init__(self, config: uvicorn.Config, announcement: str) -> None:
        super().__init__(config)
        self.announcement = announcement

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            print(self.announcement, flush=True)


def serve_forever(config: MockConfig) -> int:
    """Serve ``config`` in the foreground until interrupted; the exit status."""
    if config.port == 0:
        config = replace(config, port=free_port(config.host))
    faults = "on" if config.faults.any_enabled() else "off"
    announcement = (
        f"osipi-mock: mock PI Web API listening on http://{config.host}:{config.port}/piwebapi "
        f"({config.tags} points, auth {config.auth}, faults {faults}; admin API at /admin)"
    )
    server = _AnnouncingServer(uvicorn_config(config), announcement)
    server.run()
    return 0 if server.started else 1


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
