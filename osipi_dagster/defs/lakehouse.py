"""The lakehouse every PI server of the project writes to (``OSIPI_LAKE_ROOT``)."""

import dagster as dg

from osipi_dagster.defs.pi_server.wiring import LAKEHOUSE
from osipi_dagster.defs.resources import DeltaLakehouseResource
from osipi_dagster.settings import LakeSettings, lake_from_env


def lakehouse_definitions(settings: LakeSettings) -> dg.Definitions:
    """The shared `lakehouse` resource for ``settings``."""
    return dg.Definitions(resources={LAKEHOUSE: DeltaLakehouseResource(root=settings.root)})


@dg.definitions
def lakehouse() -> dg.Definitions:
    """The shared `lakehouse` resource, from the environment."""
    return lakehouse_definitions(lake_from_env())
