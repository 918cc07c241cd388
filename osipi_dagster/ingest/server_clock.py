"""The PI server's "now": every window is measured against it, never against the local clock.

A PI Web API host whose clock differs from ours (or a mock with a fixed clock) must not be asked for the
future, and "today" is the server's today.
"""

from __future__ import annotations

from datetime import datetime

from osipi_dagster.contract import from_ns, to_ns
from osipi_dagster.pi import DataServer, PIWebAPIClient


def find_data_server(client: PIWebAPIClient, name: str | None = None) -> DataServer:
    """The data server called ``name``, or the first one the PI Web API knows."""
    if name:
        return client.data_server(name)
    servers = client.data_servers()
    if not servers:
        raise LookupError(
            f"The PI Web API at {client.base_url} knows no data server: check its configuration."
        )
    return servers[0]


def server_now(client: PIWebAPIClient, data_server: str | None = None) -> datetime:
    """The Data Archive's clock (its ``ServerTime``), timezone-aware UTC."""
    server = find_data_server(client, data_server)
    if not server.server_time:
        raise LookupError(f"Data server {server.name} did not report its ServerTime; cannot place 'now'.")
    return from_ns(to_ns(server.server_time))
