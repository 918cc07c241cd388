"""The default PI server's definitions, built from explicit settings (no environment), as tests use them."""

from __future__ import annotations

from osipi_dagster.defs.pi_server import server_assets
from osipi_dagster.defs.pi_server.partitions import server_partitions
from osipi_dagster.settings import PIServerSettings

DEFAULT_SERVER = PIServerSettings()
DEFAULT_ASSETS = server_assets(DEFAULT_SERVER)
DEFAULT_PARTITIONS = server_partitions(DEFAULT_SERVER)

pi_af = DEFAULT_ASSETS.af
pi_points = DEFAULT_ASSETS.points
pi_timeseries = DEFAULT_ASSETS.timeseries
pi_event_frames = DEFAULT_ASSETS.event_frames
