"""The client's tunables, each stated once: how it talks to a PI Web API and how it reads many streams.

Everything that builds a client (the Dagster resource, the benchmarks, the tests) takes its defaults from
:data:`DEFAULT_CLIENT` and :data:`DEFAULT_READ`, so a default changes in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ReadMode(StrEnum):
    """How a multi-stream read travels to PI Web API (see :mod:`osipi_dagster.pi.recorded`)."""

    STREAMSETS = "streamsets"  # GET /streamsets/{action}?webId=..&webId=..: the cheapest per value
    BATCH = "batch"  # POST /batch, one sub-request per stream: each stream with its own cursor
    STREAMS = "streams"  # one GET /streams/{webId}/{action} per stream


@dataclass(frozen=True)
class ClientSettings:
    """How the client talks to one PI Web API (see :class:`~osipi_dagster.pi.client.PIWebAPIClient`)."""

    timeout: float = 30.0  # seconds, GET requests
    post_timeout: float = 60.0  # seconds, POST (batch) requests
    max_retries: int = 3  # of transient failures: connection errors, timeouts, 429, 500, 502-504
    backoff_base_s: float = 0.5  # the retries' backoff factor (waits double, jittered)
    backoff_max_s: float = 30.0  # the longest wait between two retries
    pool_size: int = 20  # HTTP connections kept open
    max_count_limit: int = 150_000  # PI Web API's MaxReturnedItemsPerCall (lowered when PI says less)
    user_agent: str = "osipi-dagster"
    compress: bool = True  # ask for gzip; off on loopback or a fast LAN, where it only costs CPU


@dataclass(frozen=True)
class ReadOptions:
    """How a multi-stream read is cut into requests (see :meth:`PIWebAPIClient.read_recorded`)."""

    mode: ReadMode = ReadMode.STREAMSETS
    page_size: int | None = None  # new values per stream and page; None: values_per_request / streams
    values_per_request: int = 100_000
    streams_per_request: int = 200
    max_url_length: int = 8000
    concurrency: int = 2  # requests in flight at once

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "mode", ReadMode(self.mode))
        except ValueError:
            raise ValueError(
                f"mode must be one of {', '.join(m.value for m in ReadMode)} (got {self.mode!r})"
            ) from None
        for name in ("values_per_request", "streams_per_request", "concurrency", "max_url_length"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.page_size is not None and self.page_size < 1:
            raise ValueError("page_size must be at least 1")


DEFAULT_CLIENT = ClientSettings()
DEFAULT_READ = ReadOptions()
