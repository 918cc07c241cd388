"""The Dagster code location: every definition under ``osipi_dagster/defs/``, loaded by Dagster's folder
loading (``workspace.yaml``, ``dagster dev``, ``dg dev`` and ``dg check defs`` all start here)."""

from collections.abc import Sequence
from pathlib import Path

import dagster as dg

from osipi_dagster.defs.executor import executor_definitions
from osipi_dagster.defs.lakehouse import lakehouse_definitions
from osipi_dagster.defs.pi_server import server_definitions
from osipi_dagster.settings import LakeSettings, PIServerSettings

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dg.definitions
def defs() -> dg.Definitions:
    """The project's definitions: the PI servers of ``defs/`` and the lakehouse they share."""
    return dg.load_from_defs_folder(project_root=PROJECT_ROOT)


def build_definitions(lake: LakeSettings, servers: Sequence[PIServerSettings]) -> dg.Definitions:
    """The same definitions from explicit settings (tests, the demo): the executor, the lakehouse and each
    server's."""
    return dg.Definitions.merge(
        executor_definitions(), lakehouse_definitions(lake), *(server_definitions(s) for s in servers)
    )
