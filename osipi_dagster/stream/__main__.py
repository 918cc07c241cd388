"""``python -m osipi_dagster.stream`` (console script ``osipi-stream``, ``make stream``): follow the PI
server's points over channels and commit them to ``bronze.pi_timeseries_live`` in micro-batches.

The server, its points (``OSIPI_POINT_INCLUDE`` / ``OSIPI_POINT_EXCLUDE``), the lake and the stream's own
settings (``OSIPI_STREAM_*``) come from the environment (docs/CONFIGURATION.md). One JSON line per commit
goes to standard output. SIGINT or SIGTERM commits the buffer and exits 0; a process killed harder loses
only its buffer, which the next start reads again from PI. Exit status 2 for bad settings, 1 for a failure
that restarting will not mend by itself (credentials refused, streams refused, the lake not writable).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import signal
import sys

from osipi_dagster.ingest.catalog import PointFilter
from osipi_dagster.ingest.stream import CommitReport, LiveStream, StreamOptions
from osipi_dagster.lake import Lakehouse
from osipi_dagster.lake.errors import LakeError
from osipi_dagster.lake.schemas import LIVE_TIMESERIES
from osipi_dagster.pi import PIWebAPIClient
from osipi_dagster.pi.channels import ChannelOptions
from osipi_dagster.pi.errors import PIWebAPIError
from osipi_dagster.pi.options import DEFAULT_CLIENT, DEFAULT_READ
from osipi_dagster.pipes.client import open_client
from osipi_dagster.pipes.request import ClientOptions
from osipi_dagster.settings import (
    PIServerSettings,
    SettingsError,
    StreamSettings,
    lake_from_env,
    pi_server_from_env,
    stream_from_env,
)

log = logging.getLogger("osipi_dagster.stream")


def main() -> None:
    """Run the stream until SIGINT or SIGTERM."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        server, lake, settings = pi_server_from_env(), lake_from_env(), stream_from_env()
    except SettingsError as exc:
        print(f"osipi-stream: {exc}", file=sys.stderr)
        sys.exit(2)
    try:
        asyncio.run(_run(server, Lakehouse(lake.root, table_prefix=server.table_prefix), settings))
    except (PIWebAPIError, LakeError, ValueError) as exc:
        print(f"osipi-stream: {exc}", file=sys.stderr)
        sys.exit(1)


def stream_options(settings: StreamSettings) -> StreamOptions:
    """The stream's options from its settings."""
    return StreamOptions(
        app_id=settings.app_id,
        commit_seconds=settings.commit_seconds,
        commit_values=settings.commit_values,
        lookback_s=settings.lookback_seconds,
        compact_every=settings.compact_every,
        max_buffered_values=settings.max_buffered_values,
        channel=ChannelOptions(
            max_url_length=settings.max_url_length,
            heartbeat_rate=settings.heartbeat_rate,
            idle_timeout_s=settings.idle_timeout_seconds,
        ),
    )


def select_points(client: PIWebAPIClient, server: PIServerSettings) -> list[str]:
    """The WebIds of the data server's points that ``point_include`` / ``point_exclude`` select."""
    if server.af_templates or server.af_attribute_names:
        raise ValueError(
            "osipi-stream selects points by name only: unset OSIPI_AF_TEMPLATES and OSIPI_AF_ATTRIBUTE_NAMES "
            "and use OSIPI_POINT_INCLUDE / OSIPI_POINT_EXCLUDE."
        )
    data_server = client.data_server(server.data_server) if server.data_server else client.data_servers()[0]
    selection = PointFilter(include=server.point_include, exclude=server.point_exclude)
    web_ids = [p.web_id for p in client.points(data_server.web_id) if selection.keeps(p, [], set())]
    if not web_ids:
        raise ValueError(
            f"No point of {data_server.name} matches OSIPI_POINT_INCLUDE={','.join(server.point_include)} "
            f"minus OSIPI_POINT_EXCLUDE={','.join(server.point_exclude)}: nothing to stream."
        )
    return web_ids


async def _run(server: PIServerSettings, lake: Lakehouse, settings: StreamSettings) -> None:
    client = open_client(_client_options(server), server)
    with client:
        web_ids = await asyncio.to_thread(select_points, client, server)
        table = lake.table(LIVE_TIMESERIES.name)
        log.info("streaming %d points of %s into %s", len(web_ids), server.base_url, table)
        stream = LiveStream(client, table, web_ids, stream_options(settings), on_commit=_print)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stream.stop)
        await stream.run()


def _client_options(server: PIServerSettings) -> ClientOptions:
    return ClientOptions(
        base_url=server.base_url,
        auth=server.auth,
        username=server.username,
        client_id=server.client_id,
        verify_tls=server.verify_tls,
        ca_bundle=server.ca_bundle,
        timeout_s=DEFAULT_CLIENT.timeout,
        post_timeout_s=DEFAULT_CLIENT.post_timeout,
        max_retries=DEFAULT_CLIENT.max_retries,
        backoff_base_s=DEFAULT_CLIENT.backoff_base_s,
        backoff_max_s=DEFAULT_CLIENT.backoff_max_s,
        max_count_limit=DEFAULT_CLIENT.max_count_limit,
        pool_size=DEFAULT_CLIENT.pool_size,
        compress=server.compress,
        data_server=server.data_server,
        read=DEFAULT_READ,
    )


def _print(report: CommitReport) -> None:
    print(json.dumps(dataclasses.asdict(report)), flush=True)


if __name__ == "__main__":
    main()
