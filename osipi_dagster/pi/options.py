"""The client's tunables, each stated once: how it talks to a PI Web API and how it reads many streams."""

from __future__ import annotations

from enum import StrEnum


class ReadMode(StrEnum):
    """How a multi-stream read travels to PI Web API (see :mod:`osipi_dagster.pi.recorded`)."""

    STREAMSETS = "streamsets"  # GET /streamsets/{action}?webId=..&webId=..: the cheapest per value
    BATCH = "batch"  # POST /batch, one sub-request per stream: each stream with its own cursor
    STREAMS = "streams"  # one GET /streams/{webId}/{action} per stream
