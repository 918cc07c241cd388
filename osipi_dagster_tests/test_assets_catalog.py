"""``pi_af`` (``pi_af_hierarchy``, ``pi_af_attributes``) and ``pi_points`` materialized through Dagster
against the mock and Delta tables in ``tmp_path``, with a run-config point filter, and pi_af's run config
confirming a removal its safety limit refused."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from osipi_dagster.defs.pi_server.af import AFRefreshConfig
from osipi_dagster.defs.pi_server.points import PointCatalogConfig
from osipi_dagster.defs.resources import DeltaLakehouseResource, PIWebAPIResource
from osipi_dagster.ingest.catalog import PointFilter
from osipi_dagster.lake import Lakehouse
from osipi_dagster.mock.server import RunningMock
from osipi_dagster_tests.definitions_helpers import DEFAULT_PARTITIONS, pi_af, pi_points
from osipi_dagster_tests.test_ingest_af import RawAF, raw_af
from osipi_dagster_tests.test_ingest_catalog import RawCatalog, raw_catalog
from osipi_dagster_tests.untrusted_server import Proxy, empty_listing

POINTS_KEYS = {
    "points_active",
    "points_added",
    "points_deleted",
    "points_renamed",
    "points_excluded_by_filters",
    "points_per_shard",
    "dagster/row_count",
    "delta_table_version",
}
SHARD_COUNT = len(DEFAULT_PARTITIONS.shard_keys)


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as test_instance:
        yield test_instance


@pytest.fixture(scope="module")
def mock_raw(mock_pi: RunningMock) -> tuple[RawAF, RawCatalog]:
    af = raw_af(mock_pi.api)
    return af, raw_catalog(mock_pi.api, af)


def materialize(
    api: str, root: Path, instance: dg.DagsterInstance, config: PointCatalogConfig
) -> dict[str, dict[str, object]]:
    """Materialize pi_af and pi_points in one run; the metadata of each asset as plain values."""
    result = dg.materialize(
        [pi_af, pi_points],
        resources={"pi": PIWebAPIResource(base_url=api), "lakehouse": DeltaLakehouseResource(root=str(root))},
        instance=instance,
        run_config=dg.RunConfig({"pi_points": config}),
    )
    assert result.success
    return {
        event.asset_key.to_user_string(): {
            key: value.value for key, value in event.materialization.metadata.items()
        }
        for event in result.get_asset_materialization_events()
    }


def test_af_and_points_report_their_counts_in_metadata(
    mock_pi: RunningMock, mock_raw: tuple[RawAF, RawCatalog], tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    """One run materializes the AF tables and a filtered catalog: pi_points' metadata gives the active,
    added, deleted, renamed and excluded counts and the per-shard counts an independent evaluation of the
    filter expects, with the row count and Delta version of the table; pi_af_hierarchy and
    pi_af_attributes report every element and attribute added, with the database count."""
    af, catalog = mock_raw
    config = PointCatalogConfig(
        include=["Plant1*", "Plant2*"], exclude=["*.MODE"], af_templates=["*Controller", "*Pump"]
    )
    expected = catalog.expected(PointFilter(config.include, config.exclude, config.af_templates))
    assert 0 < len(expected) < len(catalog.points)

    metadata = materialize(mock_pi.api, tmp_path, instance, config)

    assert set(metadata) == {"pi_af_hierarchy", "pi_af_attributes", "pi_points"}
    points = metadata["pi_points"]
    assert points.keys() >= POINTS_KEYS
    shards = Counter(catalog.shard(p, SHARD_COUNT) for p in catalog.points if p["WebId"] in expected)
    assert points["points_per_shard"] == dict(sorted(shards.items()))
    table = Lakehouse(str(tmp_path)).table("bronze.pi_points")
    assert {key: points[key] for key in POINTS_KEYS - {"points_per_shard"}} == {
        "points_active": len(expected),
        "points_added": len(expected),
        "points_deleted": 0,
        "points_renamed": 0,
        "points_excluded_by_filters": len(catalog.points) - len(expected),
        "dagster/row_count": len(expected),
        "delta_table_version": table.version(),
    }

    hierarchy, attributes = metadata["pi_af_hierarchy"], metadata["pi_af_attributes"]
    assert (hierarchy["elements_added"], hierarchy["elements_removed"], hierarchy["elements_changed"]) == (
        len(af.elements),
        0,
        0,
    )
    assert hierarchy["databases"] == len(af.databases) == 1
    assert hierarchy["dagster/row_count"] == len(af.elements)
    attribute_count = sum(len(items) for items in af.attributes.values())
    assert (attributes["attributes_added"], attributes["dagster/row_count"]) == (
        attribute_count,
        attribute_count,
    )
    assert (
        hierarchy["delta_table_version"] == Lakehouse(str(tmp_path)).table("bronze.pi_af_hierarchy").version()
    )


def test_a_narrower_filter_on_the_next_run_reports_deleted_points(
    mock_pi: RunningMock, mock_raw: tuple[RawAF, RawCatalog], tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    """A second run with a narrower filter reports the points that fell out as deleted (kept in the table:
    dagster/row_count still counts them), none added, the AF unchanged (0 added, removed, changed), and a
    new Delta version of each table."""
    af, catalog = mock_raw
    wide = PointCatalogConfig(af_attribute_names=["Feed*"])
    wide_points = catalog.expected(PointFilter(af_attribute_names=wide.af_attribute_names))
    narrow_points = catalog.expected(PointFilter(exclude=["Plant1.*"], af_attribute_names=["Feed*"]))
    assert narrow_points < wide_points
    # Narrowing the filter on purpose removes more than the catalog's safety share: the run confirms it.
    narrow = PointCatalogConfig(
        af_attribute_names=["Feed*"],
        exclude=["Plant1.*"],
        confirm_removed_points=len(wide_points - narrow_points),
    )

    first = materialize(mock_pi.api, tmp_path, instance, wide)
    second = materialize(mock_pi.api, tmp_path, instance, narrow)

    points = second["pi_points"]
    assert (
        points["points_active"],
        points["points_added"],
        points["points_deleted"],
        points["points_renamed"],
    ) == (
        len(narrow_points),
        0,
        len(wide_points - narrow_points),
        0,
    )
    assert points["points_excluded_by_filters"] == len(catalog.points) - len(narrow_points)
    assert points["dagster/row_count"] == len(wide_points)
    assert sum(points["points_per_shard"].values()) == len(narrow_points)
    assert points["delta_table_version"] == first["pi_points"]["delta_table_version"] + 1
    hierarchy = second["pi_af_hierarchy"]
    assert (hierarchy["elements_added"], hierarchy["elements_removed"], hierarchy["elements_changed"]) == (
        0,
        0,
        0,
    )
    assert hierarchy["databases"] == len(af.databases)
    # Nothing in AF changed: the AF tables are not committed again and say so.
    assert hierarchy["unchanged"] is True and "delta_table_version" not in hierarchy
    assert hierarchy["dagster/row_count"] == first["pi_af_hierarchy"]["dagster/row_count"]
    attributes = second["pi_af_attributes"]
    assert attributes["unchanged"] is True
    assert (
        attributes["attributes_added"],
        attributes["attributes_removed"],
        attributes["attributes_changed"],
    ) == (
        0,
        0,
        0,
    )


def test_an_af_refresh_that_loses_every_database_fails_until_confirmed_in_the_run_config(
    mock_pi: RunningMock, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    """pi_af behind a proxy that lists no asset database: the run fails with the counts to confirm and
    pi_points does not run; the same run with AFRefreshConfig confirming both counts succeeds and reports
    every element and attribute removed."""
    resources = {
        "pi": PIWebAPIResource(base_url=mock_pi.api),
        "lakehouse": DeltaLakehouseResource(root=str(tmp_path)),
    }
    first = dg.materialize([pi_af], resources=resources, instance=instance)
    counts = {
        event.asset_key.path[-1]: event.materialization.metadata["dagster/row_count"].value
        for event in first.get_asset_materialization_events()
    }
    elements, attributes = counts["pi_af_hierarchy"], counts["pi_af_attributes"]

    proxy = Proxy(mock_pi.url, answer=empty_listing("/assetdatabases"))
    try:
        resources["pi"] = PIWebAPIResource(base_url=proxy.api)
        refused = dg.materialize(
            [pi_af, pi_points], resources=resources, instance=instance, raise_on_error=False
        )
        confirm = AFRefreshConfig(confirm_removed_elements=elements, confirm_removed_attributes=attributes)
        confirmed = dg.materialize(
            [pi_af], resources=resources, instance=instance, run_config=dg.RunConfig({"pi_af": confirm})
        )
    finally:
        proxy.close()

    assert not refused.success
    failure = next(event for event in refused.all_events if event.is_step_failure)
    message = failure.step_failure_data.error.cause.message
    assert "AFShrinkError" in failure.step_failure_data.error.cause.cls_name
    assert f"`confirm_removed_elements: {elements}` and `confirm_removed_attributes: {attributes}`" in message
    assert not refused.get_asset_materialization_events()
    metadata = {
        event.asset_key.path[-1]: event.materialization.metadata
        for event in confirmed.get_asset_materialization_events()
    }
    assert metadata["pi_af_hierarchy"]["elements_removed"].value == elements
    assert metadata["pi_af_attributes"]["attributes_removed"].value == attributes
