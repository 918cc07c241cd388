"""``pi_points``: the tag catalog, the list of points every other asset reads."""

import dagster as dg

from osipi_dagster.assets.metadata import GROUP, KINDS, POOL, definition_metadata, write_metadata
from osipi_dagster.ingest.catalog import PointFilter, refresh_point_catalog
from osipi_dagster.ingest.server_clock import server_now
from osipi_dagster.lake import TABLE_SPECS
from osipi_dagster.partitions import SHARD_PARTITIONS
from osipi_dagster.resources import DeltaLakehouseResource, PIWebAPIResource
from osipi_dagster.settings import env_list

SPEC = TABLE_SPECS["bronze.pi_points"]


class PointCatalogConfig(dg.Config):
    """Which points to read. Patterns use PI wildcards (``*``, ``?``) and ignore case."""

    include: list[str] = env_list("OSIPI_POINT_INCLUDE", "*")
    exclude: list[str] = env_list("OSIPI_POINT_EXCLUDE")
    af_templates: list[str] = env_list("OSIPI_AF_TEMPLATES")
    af_attribute_names: list[str] = env_list("OSIPI_AF_ATTRIBUTE_NAMES")


@dg.asset(
    name="pi_points",
    deps=["pi_af_attributes"],
    group_name=GROUP,
    kinds=KINDS,
    pool=POOL,
    metadata=definition_metadata(SPEC),
)
def pi_points(
    config: PointCatalogConfig, pi: PIWebAPIResource, lakehouse: DeltaLakehouseResource
) -> dg.MaterializeResult:
    """The tag catalog (``bronze.pi_points``): every point of the Data Archive that the filters keep, with
    the AF attributes that reference it, its tag shard, ``first_seen``/``last_seen``, and a deleted flag.
    Points deleted, renamed or filtered out keep their row (``is_deleted``), so nothing is silently lost."""
    result = refresh_point_catalog(
        pi.client,
        lakehouse.table(SPEC.name),
        af_attributes_table=lakehouse.table("bronze.pi_af_attributes"),
        hierarchy_table=lakehouse.table("bronze.pi_asset_hierarchy"),
        shard_count=len(SHARD_PARTITIONS.get_partition_keys()),
        point_filter=PointFilter(
            config.include, config.exclude, config.af_templates, config.af_attribute_names
        ),
        now=server_now(pi.client, pi.data_server),
        data_server=pi.data_server,
    )
    return dg.MaterializeResult(
        metadata={
            **write_metadata(result.write, lakehouse.table(SPEC.name)),
            "points_active": result.active,
            "points_added": result.added,
            "points_deleted": result.deleted,
            "points_renamed": result.renamed,
            "points_excluded_by_filters": result.excluded,
            "points_per_shard": dg.MetadataValue.json(result.shard_counts),
            "duration_seconds": round(result.duration_seconds, 3),
        }
    )
