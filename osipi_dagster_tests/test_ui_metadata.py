"""What the Dagster UI shows a user: per-partition typed metadata (no run totals repeated on each
partition) and the table's total row count observed apart, column descriptions, the configured owners,
named jobs behind every schedule, Markdown descriptions, the instance and workspace settings of a first
visit, and a partition whose day has not begun on the PI server failing rather than turning green."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import yaml

from osipi_dagster.definitions import build_definitions
from osipi_dagster.lake import read_table
from osipi_dagster.settings import LakeSettings, PIServerSettings, SettingsError, pi_server_from_env
from osipi_dagster_tests.pipes_helpers import DAY, SHARDS, Materializer
from osipi_dagster_tests.processes import REPO

JOBS = {
    "pi_catalog_job",
    "pi_timeseries_job",
    "pi_event_frames_job",
    "pi_reconciliation_job",
    "pi_ingestion_report_job",
    "pi_lake_maintenance_job",
}


def test_each_partition_carries_its_own_typed_figures(make_mock, tmp_path: Path) -> None:
    """One run of both shards of a day: each partition's event has its own row count, window and rate, as
    typed metadata the UI plots, and none of the run's totals; the row counts add up to the table's, which
    one observation of no partition reports (`table_rows`)."""
    mock = make_mock(tags=20)
    server = PIServerSettings(base_url=mock.api, compress=False, tag_shards=len(SHARDS))
    with dg.instance_for_test() as instance:
        run = Materializer(server, tmp_path, instance)
        run.catalog()
        result = run.timeseries_day()
    assert result.success
    events = result.get_asset_materialization_events()
    assert sorted(event.partition for event in events) == [f"{DAY.isoformat()}|{s}" for s in SHARDS]
    for event in events:
        metadata = event.materialization.metadata
        assert not [name for name in metadata if name.startswith("run_")], metadata
        assert isinstance(metadata["dagster/row_count"], dg.IntMetadataValue)
        assert isinstance(metadata["window_start"], dg.TimestampMetadataValue)
        assert isinstance(metadata["window_end"], dg.TimestampMetadataValue)
        assert isinstance(metadata["values_per_second"], dg.FloatMetadataValue)
        assert isinstance(metadata["late_values"], dg.IntMetadataValue)
    rows = read_table(run.lake.table("bronze.pi_timeseries"))
    day_rows = pc.sum(pc.equal(rows["partition_date"], pa.scalar(DAY, pa.date32())).cast(pa.int64())).as_py()
    assert sum(event.materialization.metadata["dagster/row_count"].value for event in events) == day_rows
    (observation,) = [
        event.asset_observation_data.asset_observation
        for event in result.all_events
        if event.event_type == dg.DagsterEventType.ASSET_OBSERVATION
    ]
    assert observation.partition is None
    assert observation.metadata["table_rows"] == dg.IntMetadataValue(rows.num_rows)
    assert observation.metadata["delta_table_version"] == dg.IntMetadataValue(
        run.lake.table("bronze.pi_timeseries").version()
    )


def test_a_day_not_begun_on_the_pi_server_fails_and_writes_nothing(make_mock, tmp_path: Path) -> None:
    """The mock's clock reads 2025-01-06T12:00Z; Dagster offers 2025-01-07 (this host's clock is later).
    Its time-series and event-frame runs fail, naming the day and the PI server's time, with no
    materialization and no row written."""
    mock = make_mock(tags=20)
    server = PIServerSettings(base_url=mock.api, compress=False, tag_shards=len(SHARDS))
    with dg.instance_for_test() as instance:
        run = Materializer(server, tmp_path, instance)
        run.catalog()
        outcomes = [
            run.run(["pi_timeseries"], partition="2025-01-07|s00"),
            run.run(["pi_event_frames"], partition="2025-01-07"),
        ]
        for result in outcomes:
            assert not result.success
            (failure,) = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
            message = failure.step_failure_data.user_failure_data.description
            assert "2025-01-07 have not begun on the PI server" in message
            assert "2025-01-06T12:00:00+00:00" in message
            assert not result.get_asset_materialization_events()
        assert not instance.get_materialized_partitions(dg.AssetKey(["pi_timeseries"]))
    for table in ("bronze.pi_timeseries", "bronze.pi_event_frames"):
        assert not run.lake.table(table).exists()


def test_the_definitions_show_what_a_user_looks_for() -> None:
    defs = build_definitions(LakeSettings(root="/tmp/unused-lake"), [PIServerSettings()])
    graph = defs.resolve_asset_graph()
    timeseries = graph.get(dg.AssetKey(["pi_timeseries"]))
    columns = timeseries.metadata["dagster/column_schema"].columns
    assert all(column.description for column in columns)
    assert "2025-01-06|s03" in timeseries.metadata["dagster_partition"]
    assert "2025-01-06|s03" in (timeseries.description or "")
    assert graph.get(dg.AssetKey(["pi_event_frames"])).metadata["dagster_partition"].startswith("one UTC day")
    assert {"pi_server": "default", "layer": "bronze"}.items() <= timeseries.tags.items()
    assert timeseries.freshness_policy is not None

    checks = {spec.name: spec.description for c in defs.asset_checks for spec in c.check_specs}
    assert "at most `check_null_or_bad_max_share` (5 %)" in checks["null_or_bad_values"]
    assert "no older than `check_freshness_minutes` (60 min)" in checks["freshness"]

    assert {job.name for job in defs.jobs} >= JOBS
    for schedule in defs.schedules:
        assert defs.resolve_schedule_def(schedule.name).job_name in JOBS, schedule.name
    described = [
        *(node.description or "" for node in graph.asset_nodes),
        *(spec.description or "" for checks in defs.asset_checks for spec in checks.check_specs),
        *(job.description or "" for job in defs.jobs),
        *(schedule.description or "" for schedule in defs.schedules),
        *(sensor.description or "" for sensor in defs.sensors),
    ]
    assert not [text for text in described if "``" in text], "the UI renders Markdown, not reStructuredText"


def test_every_asset_has_the_configured_owners_and_none_by_default() -> None:
    owned = pi_server_from_env({"OSIPI_ASSET_OWNERS": "plant-data@example.com, team:process-engineering"})
    for server, owners in [
        (owned, ("plant-data@example.com", "team:process-engineering")),
        (PIServerSettings(), ()),
    ]:
        nodes = build_definitions(LakeSettings(root="/tmp/unused-lake"), [server]).resolve_asset_graph()
        assert len(nodes.asset_nodes) > 10
        assert {
            node.key.to_user_string(): node.owners
            for node in nodes.asset_nodes
            if tuple(node.owners) != owners
        } == {}


def test_an_owner_that_is_neither_an_email_nor_a_team_is_refused_naming_the_variable() -> None:
    with pytest.raises(SettingsError, match=r"OSIPI_ASSET_OWNERS=.*team:.*not 'Bob'"):
        pi_server_from_env({"OSIPI_ASSET_OWNERS": "plant-data@example.com, Bob"})


def test_a_first_visit_has_no_modal_and_a_named_code_location() -> None:
    instance = yaml.safe_load((REPO / "dagster.yaml").read_text())  # top level: the design card's layout
    assert instance["nux"] == {"enabled": False}
    workspace = yaml.safe_load((REPO / "workspace.yaml").read_text())
    assert workspace["load_from"][0]["python_module"]["location_name"] == "osipi_dagster"
