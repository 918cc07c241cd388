"""The Dagster code location: assembles assets, resources and schedules into ``defs``."""

import dagster as dg

from osipi_dagster.assets.af import pi_af
from osipi_dagster.assets.event_frames import pi_event_frames
from osipi_dagster.assets.points import pi_points
from osipi_dagster.assets.timeseries import pi_timeseries
from osipi_dagster.resources import resources_from_env
from osipi_dagster.schedules import SCHEDULES

defs = dg.Definitions(
    assets=[pi_af, pi_points, pi_timeseries, pi_event_frames],
    resources=resources_from_env(),
    schedules=SCHEDULES,
)
