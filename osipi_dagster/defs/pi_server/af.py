"""``pi_af_hierarchy`` and ``pi_af_attributes``: the Asset Framework, refreshed whole on every run."""

import dagster as dg
from pydantic import Field

from osipi_dagster.defs.pi_server.metadata import (
    KINDS,
    POOL,
    definition_metadata,
    table_metadata,
    write_metadata,
)
from osipi_dagster.defs.pi_server.wiring import ServerWiring
from osipi_dagster.ingest.af import refresh_af
from osipi_dagster.lake import LakeTable, RowDiff, WriteResult
from osipi_dagster.lake.schemas import AF_ATTRIBUTES, AF_HIERARCHY


class AFRefreshConfig(dg.Config):
    """Confirms, for this run, a refresh that removes more AF objects than the server's
    `catalog_max_removed_share` allows (a refused run's error gives the exact counts)."""

    confirm_removed_elements: int | None = Field(
        default=None,
        ge=0,
        description="Confirm a refresh that removes this many AF elements, above the server's "
        "catalog_max_removed_share: the exact count the refused run's error gave.",
    )
    confirm_removed_attributes: int | None = Field(
        default=None,
        ge=0,
        description="Confirm a refresh that removes this many AF attributes, above the server's "
        "catalog_max_removed_share: the exact count the refused run's error gave.",
    )


def af_assets(server: ServerWiring) -> dg.AssetsDefinition:
    """The server's AF hierarchy and attributes: one multi-asset, since one read of AF feeds both."""

    @dg.multi_asset(
        name=server.settings.qualified("pi_af"),
        specs=[
            dg.AssetSpec(
                server.key("pi_af_hierarchy"),
                description=f"The AF element tree ({server.table_name(AF_HIERARCHY.name)}): every element of "
                "every asset database with its WebId, parent WebId, name, path, depth, template, categories "
                "and description.",
                group_name=server.group,
                kinds=KINDS,
                tags=server.tags("bronze"),
                metadata=definition_metadata(AF_HIERARCHY, server.table_name(AF_HIERARCHY.name)),
            ),
            dg.AssetSpec(
                server.key("pi_af_attributes"),
                description=f"AF attributes of every element ({server.table_name(AF_ATTRIBUTES.name)}), each "
                "with the PI point its data reference names.",
                deps=[server.key("pi_af_hierarchy")],
                group_name=server.group,
                kinds=KINDS,
                tags=server.tags("bronze"),
                metadata=definition_metadata(AF_ATTRIBUTES, server.table_name(AF_ATTRIBUTES.name)),
            ),
        ],
        pool=POOL,
        required_resource_keys=server.resource_keys,
    )
    def pi_af(context: dg.AssetExecutionContext, config: AFRefreshConfig):
        """Read the whole AF hierarchy and its attributes; replace both tables (a full refresh), each only
        when something in it changed. A refresh that would remove all the elements or attributes the lake
        holds, or more than the server's `catalog_max_removed_share` of them, fails and writes nothing
        unless the run config confirms the counts (`confirm_removed_elements`,
        `confirm_removed_attributes`)."""
        lake = server.lake(context)
        hierarchy, attributes = lake.table(AF_HIERARCHY.name), lake.table(AF_ATTRIBUTES.name)
        result = refresh_af(
            server.pi(context).client,
            hierarchy,
            attributes,
            max_removed_share=server.settings.catalog_max_removed_share,
            confirm_removed_elements=config.confirm_removed_elements,
            confirm_removed_attributes=config.confirm_removed_attributes,
        )
        yield dg.MaterializeResult(
            asset_key=server.key("pi_af_hierarchy"),
            metadata={
                **_write(result.hierarchy, hierarchy, result.element_count),
                **_diff("elements", result.element_diff),
                "databases": result.databases,
                "duration_seconds": round(result.duration_seconds, 3),
            },
        )
        yield dg.MaterializeResult(
            asset_key=server.key("pi_af_attributes"),
            metadata={
                **_write(result.attributes, attributes, result.attribute_count),
                **_diff("attributes", result.attribute_diff),
            },
        )

    return pi_af


def _write(write: WriteResult | None, table: LakeTable, rows: int) -> dict[str, object]:
    """What the commit did, or, when nothing changed and nothing was committed, the table as it stays."""
    if write is not None:
        return write_metadata(write, table)
    return {**table_metadata(table), "dagster/row_count": dg.MetadataValue.int(rows), "unchanged": True}


def _diff(what: str, diff: RowDiff) -> dict[str, int]:
    return {f"{what}_added": diff.added, f"{what}_removed": diff.removed, f"{what}_changed": diff.changed}
