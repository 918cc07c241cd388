"""``python -m osipi_dagster.pipes`` (console script ``osipi-pipes``): run one Dagster step's ingestion
where a compute target started it, and report back through Dagster Pipes.

A failure is reported twice: first as a message naming the error (and the failed points), which the
Dagster side raises as the step's failure, then by the process's exit status, which fails the
subprocess or the Databricks job run.
"""

from __future__ import annotations

from typing import Any

from dagster_pipes import PipesContext, open_dagster_pipes

from osipi_dagster.pipes.client import open_client
from osipi_dagster.pipes.dbfs import DbfsContextLoader, DbfsMessageWriter
from osipi_dagster.pipes.jobs import JOBS
from osipi_dagster.pipes.request import EXTRAS_KEY, RemoteRequest, error_message, partition_message
from osipi_dagster.settings import PipesTransport, RemoteSettings, remote_from_env


def main() -> None:
    """Run the step the Pipes context describes."""
    settings = remote_from_env()
    with open_dagster_pipes(**_transport(settings)) as pipes:
        run(pipes)


def run(pipes: PipesContext) -> None:
    """Run the request in ``pipes``' extras, reporting each partition as it is committed."""
    written = 0
    try:
        request = RemoteRequest.model_validate(pipes.get_extra(EXTRAS_KEY))
        client = open_client(request.client, request.server)
        try:

            def report(key: str, result: Any, line: str) -> None:
                nonlocal written
                pipes.log.info(line)
                pipes.report_custom_message(partition_message(request.job, key, result))
                written += 1

            JOBS[request.job](request, client, report)
        finally:
            client.close()
    except Exception as error:
        pipes.report_custom_message(error_message(error, written))
        raise


def _transport(settings: RemoteSettings) -> dict[str, Any]:
    if settings.transport == PipesTransport.DBFS:
        return {
            "context_loader": DbfsContextLoader(settings.dbfs_mount),
            "message_writer": DbfsMessageWriter(settings.dbfs_mount),
        }
    return {}  # Dagster's defaults: what PipesSubprocessClient sets up


if __name__ == "__main__":
    main()
