"""``pi_points``: the tag catalog, the list of points every other asset reads."""

import dagster as dg
from pydantic import Field

from osipi_dagster.defs.pi_server.metadata import KINDS, POOL, definition_metadata, write_metadata
from osipi_dagster.defs.pi_server.wiring import ServerWiring
from osipi_dagster.ingest.catalog import PointFilter, refresh_point_catalog
from osipi_dagster.ingest.server_clock import server_now
from osipi_dagster.lake.schemas import AF_ATTRIBUTES, AF_HIERARCHY, POINTS


class PointCatalogConfig(dg.Config):
    """Which points to read, for this run. Patterns use PI wildcards (`*`, `?`) and ignore case; a field
    left unset takes the server's setting (`OSIPI_POINT_INCLUDE` ... for the default server)."""

    include: list[str] | None = Field(default=None, description="Point-name patterns to read.")
    exclude: list[str] | None = Field(default=None, description="Point-name patterns to skip.")
    af_templates: list[str] | None = Field(
        default=None, description="Only points referenced from elements of these AF templates (or derived)."
    )
    af_attribute_names: list[str] | None = Field(
        default=None, description="Only points referenced by AF attributes with these names."
    )
    confirm_removed_points: int | None = Field(
        default=None,
        ge=0,
        description="Confirm a refresh that marks this many points deleted, above the server's "
        "catalog_max_removed_share: the exact count the refused run's error gave.",
    )


def points_asset(server: ServerWiring) -> dg.AssetsDefinition:
    """The server's tag catalog."""
    settings = server.settings

    @dg.asset(
        key=server.key("pi_points"),
        deps=[server.key("pi_af_attributes")],
        group_name=server.group,
        kinds=KINDS,
        tags=server.tags("bronze"),
        pool=POOL,
        metadata=definition_metadata(POINTS, server.table_name(POINTS.name)),
        required_resource_keys=server.resource_keys,
    )
    def pi_points(context: dg.AssetExecutionContext, config: PointCatalogConfig) -> dg.MaterializeResult:
        """The tag catalog: every point of the Data Archive that the filters keep, with the AF attributes
        that reference it, its tag shard, `first_seen`/`last_seen`, and a deleted flag. Points deleted,
        renamed or filtered out keep their row (`is_deleted`), so nothing is silently lost. A refresh that
        would mark all active points deleted, or more than the server's `catalog_max_removed_share` of them,
        fails and writes nothing unless the run config confirms the count (`confirm_removed_points`)."""
        pi, lake = server.pi(context), server.lake(context)
        points = lake.table(POINTS.name)
        result = refresh_point_catalog(
            pi.client,
            points,
            af_attributes_table=lake.table(AF_ATTRIBUTES.name),
            hierarchy_table=lake.table(AF_HIERARCHY.name),
            shard_count=settings.tag_shards,
            point_filter=PointFilter(
                _or(config.include, settings.point_include),
                _or(config.exclude, settings.point_exclude),
                _or(config.af_templates, settings.af_templates),
                _or(config.af_attribute_names, settings.af_attribute_names),
            ),
            now=server_now(pi.client, pi.data_server),
            data_server=pi.data_server,
            max_removed_share=settings.catalog_max_removed_share,
            confirm_removed=config.confirm_removed_points,
        )
        return dg.MaterializeResult(
            metadata={
                **write_metadata(result.write, points),
                "points_active": result.active,
                "points_added": result.added,
                "points_deleted": result.deleted,
                "points_renamed": result.renamed,
                "points_excluded_by_filters": result.excluded,
                "points_per_shard": dg.MetadataValue.json(result.shard_counts),
                "duration_seconds": round(result.duration_seconds, 3),
            }
        )

    return pi_points


def _or(given: list[str] | None, setting: tuple[str, ...]) -> tuple[str, ...]:
    return setting if given is None else tuple(given)
