"""The Dagster code location: assembles assets, resources, checks and sensors into ``defs``."""

import dagster as dg

defs = dg.Definitions()
