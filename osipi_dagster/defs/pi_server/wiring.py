"""How one PI server's definitions are named and find their resources.

Every PI server gets its own assets, partitions, schedules and ``pi`` resource, and its own tables in the
shared lakehouse. The server named ``default`` (the embedded default, configured by ``OSIPI_*`` variables)
keeps the plain names (``pi_timeseries``, ``bronze.pi_timeseries``, resource ``pi``); any other server
prefixes them with its name (``site_b/pi_timeseries``, ``bronze.site_b__pi_timeseries``, resource
``site_b__pi``), so two servers never collide.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property

import dagster as dg

from osipi_dagster.defs.pi_server.partitions import ServerPartitions, server_partitions
from osipi_dagster.defs.resources import DeltaLakehouseResource, PIWebAPIResource
from osipi_dagster.lake import Lakehouse, stored_table_name
from osipi_dagster.settings import ComputeTarget, PIServerSettings
from osipi_dagster.unity_catalog import uc_table_name

LAKEHOUSE = "lakehouse"  # the resource key of the lakehouse every server shares

# The contexts that carry resources: an asset's, a check's, a sensor's.
WithResources = dg.AssetExecutionContext | dg.AssetCheckExecutionContext | dg.SensorEvaluationContext


@dataclass(frozen=True)
class ServerWiring:
    """Names and resources of one PI server's definitions."""

    settings: PIServerSettings

    @cached_property
    def partitions(self) -> ServerPartitions:
        return server_partitions(self.settings)

    @property
    def pi_resource_key(self) -> str:
        return self.settings.qualified("pi")

    @property
    def compute_resource_key(self) -> str:
        """Where the server's ingestion runs, when not in the Dagster step (defs/compute.py)."""
        return self.settings.qualified("compute")

    @property
    def runs_in_process(self) -> bool:
        return self.settings.compute == ComputeTarget.IN_PROCESS

    @property
    def resource_keys(self) -> set[str]:
        """What an asset of this server that reads PI and writes the lake requires."""
        keys = {self.pi_resource_key, LAKEHOUSE}
        return keys if self.runs_in_process else keys | {self.compute_resource_key}

    @property
    def group(self) -> str:
        """The asset group of the server's bronze assets."""
        return self.settings.qualified("pi_bronze")

    def tags(self, layer: str) -> dict[str, str]:
        """Asset tags to filter the catalog by: the PI server and the lake layer (bronze, silver, gold)."""
        return {"pi_server": self.settings.name, "layer": layer}

    def owned(self, spec: dg.AssetSpec) -> dg.AssetSpec:
        """``spec`` with the server's asset owners (`OSIPI_ASSET_OWNERS`), shown on the asset's page and
        used to filter the catalog; unchanged when none are configured."""
        owners = self.settings.asset_owners
        return (
            spec.replace_attributes(owners=list(dict.fromkeys([*spec.owners, *owners]))) if owners else spec
        )

    @property
    def open_day_freshness(self) -> dg.FreshnessPolicy:
        """Today's data is read at least hourly (the open-day schedule or the stream-updates sensor): warn
        when no partition was materialized for 2 hours, fail after 6."""
        return dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=6), warn_window=timedelta(hours=2))

    def key(self, name: str) -> dg.AssetKey:
        """The asset key of the server's asset ``name``."""
        return dg.AssetKey([*self.settings.key_prefix, name])

    def table_name(self, name: str) -> str:
        """The name the table ``<schema>.<table>`` takes for this server in the lakehouse; on Databricks, its
        Unity Catalog name ``<catalog>.<schema>.<table>``."""
        stored = stored_table_name(name, self.settings.table_prefix)
        if self.settings.compute == ComputeTarget.DATABRICKS:
            return uc_table_name(self.settings.databricks_catalog, stored)
        return stored

    def pi(self, context: WithResources) -> PIWebAPIResource:
        """The server's PI Web API resource, opened for the running step (or sensor tick)."""
        return getattr(context.resources, self.pi_resource_key)

    def lake(self, context: WithResources) -> Lakehouse:
        """The server's tables in the shared lakehouse."""
        lakehouse: DeltaLakehouseResource = getattr(context.resources, LAKEHOUSE)
        return lakehouse.lakehouse(self.settings.table_prefix)
