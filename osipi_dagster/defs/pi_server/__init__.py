"""One PI server's Dagster definitions: its assets, partitions, schedules and ``pi`` resource.

:class:`PIServer` is the Dagster component a project instantiates once per PI server
(``defs/<site>/defs.yaml``); :func:`server_definitions` builds the same definitions from settings given in
Python (tests, the demo).
"""

from osipi_dagster.defs.pi_server.component import PIServer, ServerAssets, server_assets, server_definitions

__all__ = ["PIServer", "ServerAssets", "server_assets", "server_definitions"]
