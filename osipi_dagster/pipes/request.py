"""What the Dagster side sends the Pipes entry point, and what comes back: one schema for both sides.

The request travels in the Pipes context's extras (a file on DBFS for Databricks): it holds settings and
the names of the environment variables that hold secrets, never a secret's value.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, TypeAdapter

from osipi_dagster.ingest.event_frames import EventFrameResult
from osipi_dagster.ingest.timeseries import PartitionResult
from osipi_dagster.pi.options import ReadOptions
from osipi_dagster.settings import AuthMode, PIServerSettings

EXTRAS_KEY = "osipi"  # the Pipes extra that holds the request


class RemoteJob(StrEnum):
    """Which asset's ingestion the entry point runs."""

    TIMESERIES = "timeseries"
    EVENT_FRAMES = "event_frames"


class ClientOptions(BaseModel):
    """The PI Web API client's settings, named as the ``pi`` resource's fields, and how it reads; its
    secrets are not here (the server's settings name the variables that hold them)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    base_url: str
    auth: AuthMode
    username: str | None
    client_id: str | None
    verify_tls: bool
    ca_bundle: str | None
    timeout_s: float
    post_timeout_s: float
    max_retries: int
    backoff_base_s: float
    backoff_max_s: float
    max_count_limit: int
    pool_size: int
    compress: bool
    data_server: str | None
    read: ReadOptions  # the resource's read_options(), as the in-process asset reads


class Partition(BaseModel):
    """One partition of the run: its Dagster key and what it stands for."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str
    day: date
    shard: str | None = None  # time series only


class RemoteRequest(BaseModel):
    """Everything the entry point needs to run one Dagster step's ingestion."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    job: RemoteJob
    partitions: list[Partition]
    server: PIServerSettings
    client: ClientOptions
    lake_root: str
    run_id: str
    config: dict[str, Any] = {}


_RESULTS: dict[RemoteJob, TypeAdapter[Any]] = {
    RemoteJob.TIMESERIES: TypeAdapter(PartitionResult),
    RemoteJob.EVENT_FRAMES: TypeAdapter(EventFrameResult),
}


def partition_message(job: RemoteJob, key: str, result: PartitionResult | EventFrameResult) -> dict[str, Any]:
    """The custom Pipes message that reports one partition's result (Pipes' own materialization report
    carries no partition key, and a run covers several partitions)."""
    return {"partition": key, "result": _RESULTS[job].dump_python(result, mode="json")}


def error_message(error: BaseException, partitions_written: int) -> dict[str, Any]:
    """The custom Pipes message that reports why the run failed, sent before the failure itself."""
    failures = getattr(error, "failures", None) or []
    return {
        "error": {
            "type": type(error).__name__,
            "message": str(error),
            "failed_points": [
                {"web_id": f.web_id, "status": f.status, "message": f.message, "resume_from": f.resume_from}
                for f in failures
            ],
            "partitions_written": partitions_written,
        }
    }


def result_of(job: RemoteJob, message: dict[str, Any]) -> PartitionResult | EventFrameResult:
    """The result a :func:`partition_message` carries."""
    return _RESULTS[job].validate_python(message["result"])
