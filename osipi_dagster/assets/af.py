"""``pi_af_hierarchy`` and ``pi_af_attributes``: the Asset Framework, refreshed whole on every run."""

import dagster as dg

from osipi_dagster.assets.metadata import GROUP, KINDS, POOL, definition_metadata, write_metadata
from osipi_dagster.ingest.af import refresh_af
from osipi_dagster.lake import TABLE_SPECS, RowDiff
from osipi_dagster.resources import DeltaLakehouseResource, PIWebAPIResource

HIERARCHY = TABLE_SPECS["bronze.pi_asset_hierarchy"]
ATTRIBUTES = TABLE_SPECS["bronze.pi_af_attributes"]


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            "pi_af_hierarchy",
            description="The AF element tree (bronze.pi_asset_hierarchy): every element of every asset "
            "database with its WebId, parent WebId, name, path, depth, template, categories and description.",
            group_name=GROUP,
            kinds=KINDS,
            metadata=definition_metadata(HIERARCHY),
        ),
        dg.AssetSpec(
            "pi_af_attributes",
            description="AF attributes of every element (bronze.pi_af_attributes), each with the PI point "
            "its data reference names.",
            deps=["pi_af_hierarchy"],
            group_name=GROUP,
            kinds=KINDS,
            metadata=definition_metadata(ATTRIBUTES),
        ),
    ],
    pool=POOL,
)
def pi_af(pi: PIWebAPIResource, lakehouse: DeltaLakehouseResource):
    """Read the whole AF hierarchy and its attributes; replace both tables (a full refresh)."""
    result = refresh_af(pi.client, lakehouse.table(HIERARCHY.name), lakehouse.table(ATTRIBUTES.name))
    yield dg.MaterializeResult(
        asset_key="pi_af_hierarchy",
        metadata={
            **write_metadata(result.hierarchy, lakehouse.table(HIERARCHY.name)),
            **_diff("elements", result.element_diff),
            "databases": result.databases,
            "duration_seconds": round(result.duration_seconds, 3),
        },
    )
    yield dg.MaterializeResult(
        asset_key="pi_af_attributes",
        metadata={
            **write_metadata(result.attributes, lakehouse.table(ATTRIBUTES.name)),
            **_diff("attributes", result.attribute_diff),
        },
    )


def _diff(what: str, diff: RowDiff) -> dict[str, int]:
    return {f"{what}_added": diff.added, f"{what}_removed": diff.removed, f"{what}_changed": diff.changed}
