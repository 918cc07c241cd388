"""The checks of the AF tables, the tag catalog and the event frames, run by Dagster in the runs of the
real jobs against the mock: clean data passes; each check fails on purpose, from rows changed in Delta by
hand (an orphan, a cycle, a duplicated point or frame, a frame that ends before it starts) or from the
server's settings (a point filter, a changed shard count)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import dagster as dg
import deltalake
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from osipi_dagster.definitions import build_definitions
from osipi_dagster.lake import Lakehouse, read_table
from osipi_dagster.lake.maintenance import vacuum_table
from osipi_dagster.mock.server import RunningMock
from osipi_dagster.settings import LakeSettings, PIServerSettings
from osipi_dagster_tests.test_lake_maintenance import age_removals

Evaluations = dict[tuple[str, str], dg.AssetCheckEvaluation]
CATALOG_KEYS = [dg.AssetKey("pi_af_hierarchy"), dg.AssetKey("pi_af_attributes"), dg.AssetKey("pi_points")]


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as instance:
        yield instance


def definitions(api: str, root: Path, **settings: object) -> dg.Definitions:
    """One PI server, and a job that runs the checks of the catalog and event frames alone."""
    checks_only = dg.define_asset_job(
        "checks_only",
        selection=dg.AssetSelection.checks_for_assets(*CATALOG_KEYS, dg.AssetKey("pi_event_frames")),
    )
    server = PIServerSettings(base_url=api, compress=False, **settings)
    return dg.Definitions.merge(
        build_definitions(LakeSettings(root=str(root)), [server]), dg.Definitions(jobs=[checks_only])
    )


def run(defs: dg.Definitions, job: str, instance: dg.DagsterInstance, **kwargs: object) -> Evaluations:
    result = defs.resolve_job_def(job).execute_in_process(instance=instance, **kwargs)
    assert result.success
    return {(e.asset_key.to_user_string(), e.check_name): e for e in result.get_asset_check_evaluations()}


def figures(evaluation: dg.AssetCheckEvaluation) -> dict[str, object]:
    return {name: value.value for name, value in evaluation.metadata.items()}


def overwrite(table, rows: pa.Table) -> None:
    deltalake.write_deltalake(table.uri, rows, mode="overwrite")


def test_the_af_checks_pass_on_the_mock_and_find_an_orphan_and_a_cycle_written_by_hand(
    mock_pi: RunningMock, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    """The catalog job runs the AF and catalog checks after its assets and all pass. An element whose parent
    is gone and two elements that are each other's parent, written into ``bronze.pi_af_hierarchy`` by hand:
    ``no_orphans`` and ``no_cycles`` fail as errors, naming those elements by path."""
    defs = definitions(mock_pi.api, tmp_path)
    clean = run(defs, "pi_catalog_job", instance)
    assert set(clean) == {
        ("pi_af_hierarchy", "no_orphans"),
        ("pi_af_hierarchy", "no_cycles"),
        ("pi_af_attributes", "points_resolve"),
        ("pi_points", "unique_web_ids"),
        ("pi_points", "stable_shards"),
    }
    assert all(evaluation.passed for evaluation in clean.values())
    for (asset, _), evaluation in clean.items():
        latest = instance.get_latest_materialization_event(dg.AssetKey(asset))
        assert evaluation.target_materialization_data.run_id == latest.run_id
    hierarchy = Lakehouse(str(tmp_path)).table("bronze.pi_af_hierarchy")
    rows = read_table(hierarchy).sort_by("path")
    deep = rows.filter(pc.greater_equal(rows["depth"], 2))
    orphan, first, second = (deep["web_id"][index].as_py() for index in (0, 1, 2))
    paths = dict(zip(rows["web_id"].to_pylist(), rows["path"].to_pylist(), strict=True))
    parents = {orphan: "F1EmGONE", first: second, second: first}
    new_parents = [
        parents.get(web_id, parent)
        for web_id, parent in zip(rows["web_id"].to_pylist(), rows["parent_web_id"].to_pylist(), strict=True)
    ]
    overwrite(
        hierarchy,
        rows.set_column(
            rows.schema.get_field_index("parent_web_id"),
            rows.schema.field("parent_web_id"),
            pa.array(new_parents, pa.string()),
        ),
    )

    found = run(defs, "checks_only", instance)

    orphans, cycles = found[("pi_af_hierarchy", "no_orphans")], found[("pi_af_hierarchy", "no_cycles")]
    assert not orphans.passed and orphans.severity == dg.AssetCheckSeverity.ERROR
    assert paths[orphan] in figures(orphans)["worst"] and "F1EmGONE" in figures(orphans)["worst"]
    assert not cycles.passed and cycles.severity == dg.AssetCheckSeverity.ERROR
    assert figures(cycles)["elements_on_cycles"] == 2
    assert paths[first] in figures(cycles)["worst"] and paths[second] in figures(cycles)["worst"]
    assert found[("pi_af_attributes", "points_resolve")].passed


def test_attributes_that_name_points_the_catalog_filters_out_are_a_warning(
    mock_pi: RunningMock, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    """With the catalog limited to ``Plant1*``, every PI Point attribute of another plant names no point of
    the catalog: ``points_resolve`` fails as a warning and counts exactly those attributes."""
    defs = definitions(mock_pi.api, tmp_path, point_include=("Plant1*",))

    found = run(defs, "pi_catalog_job", instance)

    attributes = read_table(Lakehouse(str(tmp_path)).table("bronze.pi_af_attributes"))
    references = attributes.filter(pc.equal(attributes["data_reference"], "PI Point"))["config_string"]
    elsewhere = [text for text in references.to_pylist() if not text.split("\\")[-1].startswith("Plant1")]
    resolve = found[("pi_af_attributes", "points_resolve")]
    assert 0 < len(elsewhere) < len(references)
    assert not resolve.passed and resolve.severity == dg.AssetCheckSeverity.WARN
    assert figures(resolve)["unresolved"] == len(elsewhere)
    assert figures(resolve)["pi_point_attributes"] == len(references)


def test_a_duplicated_point_and_a_changed_shard_count_fail_the_catalog_checks(
    mock_pi: RunningMock, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    """A catalog row appended by hand a second time: ``unique_web_ids`` fails as an error naming the point.
    The catalog refreshed with 8 shards instead of 16: ``stable_shards`` fails as an error, counting exactly
    the points whose shard changed between the two versions of the table, also once a vacuum committed
    after the refresh."""
    run(definitions(mock_pi.api, tmp_path), "pi_catalog_job", instance)
    points = Lakehouse(str(tmp_path)).table("bronze.pi_points")
    before = read_table(points)
    deltalake.write_deltalake(points.uri, before.slice(3, 1), mode="append")

    duplicated = run(definitions(mock_pi.api, tmp_path), "checks_only", instance)[
        ("pi_points", "unique_web_ids")
    ]

    assert not duplicated.passed and duplicated.severity == dg.AssetCheckSeverity.ERROR
    assert before["name"][3].as_py() in figures(duplicated)["worst"]
    overwrite(points, before)

    found = run(definitions(mock_pi.api, tmp_path, tag_shards=8), "pi_catalog_job", instance)

    after = read_table(points)
    shard_before = dict(zip(before["web_id"].to_pylist(), before["tag_shard"].to_pylist(), strict=True))
    moved = sum(
        shard_before[web_id] != shard
        for web_id, shard in zip(after["web_id"].to_pylist(), after["tag_shard"].to_pylist(), strict=True)
    )
    stable = found[("pi_points", "stable_shards")]
    assert moved > 0
    assert not stable.passed and stable.severity == dg.AssetCheckSeverity.ERROR
    assert (figures(stable)["points_moved"], figures(stable)["points_compared"]) == (moved, after.num_rows)
    assert found[("pi_points", "unique_web_ids")].passed

    # The versions before the last two are vacuumed: two commits of the same rows after the refresh.
    age_removals(points, hours=200, before_version=points.version())
    assert vacuum_table(points, retention_hours=1).files_deleted > 0
    again = run(definitions(mock_pi.api, tmp_path, tag_shards=8), "checks_only", instance)
    assert figures(again[("pi_points", "stable_shards")])["points_moved"] == moved

    # Now the previous version's files too (delta-rs' own vacuum, below the job's floor of an hour).
    points.load().vacuum(retention_hours=0, dry_run=False, enforce_retention_duration=False)
    vacuumed = run(definitions(mock_pi.api, tmp_path, tag_shards=8), "checks_only", instance)
    assert vacuumed[("pi_points", "stable_shards")].passed
    assert "were vacuumed" in vacuumed[("pi_points", "stable_shards")].description


def test_the_event_frame_checks_count_open_frames_and_find_a_duplicate_and_a_frame_ending_too_early(
    mock_pi: RunningMock, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    """A day of event frames passes both checks and counts its open frames. A frame row appended twice by
    hand, and another frame made to end before it starts: ``unique_frames`` fails as an error and
    ``end_after_start`` as a warning, each naming its frame."""
    defs = definitions(mock_pi.api, tmp_path)
    clean = run(defs, "pi_event_frames_job", instance, partition_key="2025-01-05")
    frames_table = Lakehouse(str(tmp_path)).table("bronze.pi_event_frames")
    frames = read_table(frames_table)
    assert all(evaluation.passed for evaluation in clean.values())
    open_frames = frames["end_time"].null_count
    assert figures(clean[("pi_event_frames", "end_after_start")])["open_frames"] == open_frames

    closed = frames.filter(pc.is_valid(frames["end_time"])).sort_by("web_id")
    early, copied = closed["web_id"][0].as_py(), closed["web_id"][1].as_py()
    ends = [
        start - timedelta(minutes=1) if web_id == early else end
        for web_id, start, end in zip(
            frames["web_id"].to_pylist(),
            frames["start_time"].to_pylist(),
            frames["end_time"].to_pylist(),
            strict=True,
        )
    ]
    changed = frames.set_column(
        frames.schema.get_field_index("end_time"),
        frames.schema.field("end_time"),
        pa.array(ends, frames["end_time"].type),
    )
    overwrite(frames_table, pa.concat_tables([changed, changed.filter(pc.equal(changed["web_id"], copied))]))

    found = run(defs, "checks_only", instance)

    unique, ordered = (
        found[("pi_event_frames", "unique_frames")],
        found[("pi_event_frames", "end_after_start")],
    )
    names = dict(zip(frames["web_id"].to_pylist(), frames["name"].to_pylist(), strict=True))
    assert not unique.passed and unique.severity == dg.AssetCheckSeverity.ERROR
    assert figures(unique)["duplicated_web_ids"] == 1 and names[copied] in figures(unique)["worst"]
    assert not ordered.passed and ordered.severity == dg.AssetCheckSeverity.WARN
    assert figures(ordered)["frames_ending_before_start"] == 1 and names[early] in figures(ordered)["worst"]
    assert figures(ordered)["open_frames"] == open_frames
