"""The ``pi_timeseries`` asset materialized through Dagster (``dg.materialize`` on a test instance) against
the mock PI Web API over real HTTP, into real Delta tables.

The upstream assets (``pi_af``, then ``pi_points``) are materialized first, as a user would; the Delta
slice is then compared with an independent read of the mock (``timeseries_helpers.truth``) as multisets of
rows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import deltalake
import pyarrow as pa
import pyarrow.compute as pc
import pydantic
import pytest

from osipi_dagster.defs.pi_server.timeseries import PARTITIONS_PER_RUN, TimeseriesConfig
from osipi_dagster.lake import Lakehouse, read_table, read_watermarks, replace_slice
from osipi_dagster.mock import webids
from osipi_dagster.mock.server import RunningMock
from osipi_dagster_tests.conftest import TEST_NOW
from osipi_dagster_tests.definitions_helpers import pi_af, pi_points, pi_timeseries
from osipi_dagster_tests.lake_helpers import hourly
from osipi_dagster_tests.pi_helpers import Row
from osipi_dagster_tests.timeseries_helpers import (
    SECOND_NS,
    assert_same_rows,
    build_catalog,
    catchable_late_value,
    day_start_ns,
    kinds_of,
    lake_rows,
    moment_of,
    resources,
    set_clock,
    shard_web_ids,
    sorted_slice,
    truth,
)

NOW = datetime.fromisoformat(TEST_NOW.replace("Z", "+00:00"))
CLOSED_DAY = date(2025, 1, 5)
OPEN_DAY = date(2025, 1, 6)
SHARD = "s02"  # see test_ingest_timeseries: every hard case, and a small day
DAY_NS = 86_400 * SECOND_NS


@pytest.fixture(scope="module")
def instance() -> Iterator[dg.DagsterInstance]:
    """One test instance for the module (each test has its own lake root, so runs never share tables)."""
    with dg.instance_for_test() as instance:
        yield instance


@pytest.fixture(scope="module")
def closed_truth(mock_pi: RunningMock, tmp_path_factory: pytest.TempPathFactory) -> Counter[Row]:
    """The shared mock's values of SHARD's points over CLOSED_DAY, read once for the module."""
    lake = Lakehouse(str(tmp_path_factory.mktemp("catalog")))
    build_catalog(mock_pi.api, lake, NOW)
    start = day_start_ns(CLOSED_DAY)
    return truth(mock_pi.api, shard_web_ids(lake, SHARD), start, start + DAY_NS)


def materialize_catalog(res: dict, instance: dg.DagsterInstance) -> None:
    """``pi_af`` then ``pi_points``, as a user materializes them before the time series."""
    assert dg.materialize([pi_af, pi_points], resources=res, instance=instance).success


def materialize_timeseries(
    key: str, res: dict, instance: dg.DagsterInstance, overlap_minutes: int | None = None
) -> dg.ExecuteInProcessResult:
    run_config = None
    if overlap_minutes is not None:
        run_config = dg.RunConfig({"pi_timeseries": TimeseriesConfig(overlap_minutes=overlap_minutes)})
    return dg.materialize(
        [pi_af, pi_points, pi_timeseries],
        selection=[pi_timeseries],
        partition_key=key,
        resources=res,
        instance=instance,
        run_config=run_config,
        raise_on_error=False,
    )


def metadata_of(result: dg.ExecuteInProcessResult) -> dict[str, object]:
    (event,) = result.get_asset_materialization_events()
    return {name: getattr(value, "value", value) for name, value in event.materialization.metadata.items()}


def test_a_closed_partition_materialized_through_dagster_equals_the_mock(
    mock_pi: RunningMock, tmp_path: Path, instance: dg.DagsterInstance, closed_truth: Counter[Row]
) -> None:
    """``pi_timeseries`` for ``2025-01-05|s02`` writes exactly the mock's values of the shard's points over
    that UTC day (several values at one timestamp, system states, digital and string values, 100 ns
    timestamps), reports it in its metadata, and a second materialization leaves identical contents."""
    res = resources(mock_pi.api, tmp_path / "lake")
    lake = Lakehouse(str(tmp_path / "lake"))
    materialize_catalog(res, instance)
    table = lake.table("bronze.pi_timeseries")

    result = materialize_timeseries(f"{CLOSED_DAY}|{SHARD}", res, instance)

    assert result.success
    got = lake_rows(table, CLOSED_DAY, SHARD)
    assert_same_rows(got, closed_truth)
    needed = {"multi", "system", "digital", "string", "subsecond", "subsecond-7-digits"}
    assert needed <= kinds_of(got)
    metadata = metadata_of(result)
    assert metadata["dagster/row_count"] == sum(closed_truth.values())
    assert metadata["points_read"] == len(shard_web_ids(lake, SHARD))
    assert metadata["incremental"] is False
    assert 0 <= metadata["pi_full_requests"] <= metadata["pi_requests"] and metadata["pi_requests"] >= 1
    assert metadata["delta_table_version"] == table.version()
    assert (metadata["window_start"], metadata["window_end"]) == (
        datetime(2025, 1, 5, tzinfo=UTC).timestamp(),
        datetime(2025, 1, 6, tzinfo=UTC).timestamp(),
    )
    once = sorted_slice(table, CLOSED_DAY, SHARD)

    again = materialize_timeseries(f"{CLOSED_DAY}|{SHARD}", res, instance)

    assert again.success
    assert sorted_slice(table, CLOSED_DAY, SHARD) == once
    assert metadata_of(again)["delta_table_version"] == metadata["delta_table_version"] + 1


def test_the_open_day_through_dagster_re_reads_the_configured_overlap(
    make_mock, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    """Two materializations of today's partition, the mock's clock moved between them, the second with
    ``overlap_minutes`` set in the run config: the second reads from the watermark minus that overlap, picks
    up a value that reached PI late inside it, and leaves exactly the mock's values over [day start, now)
    with no duplicate; the watermarks are the second run's window end, stamped with its run id."""
    overlap = timedelta(minutes=45)
    mock = make_mock()
    res = resources(mock.api, tmp_path / "lake")
    lake = Lakehouse(str(tmp_path / "lake"))
    materialize_catalog(res, instance)
    day_start = day_start_ns(OPEN_DAY)
    shard, plan = catchable_late_value(mock, lake, OPEN_DAY, overlap)
    web_ids = shard_web_ids(lake, shard)
    table = lake.table("bronze.pi_timeseries")

    set_clock(mock, plan.first)
    first = materialize_timeseries(f"{OPEN_DAY}|{shard}", res, instance)
    assert first.success and metadata_of(first)["incremental"] is True
    assert_same_rows(lake_rows(table, OPEN_DAY, shard), truth(mock.api, web_ids, day_start, plan.first))

    set_clock(mock, plan.second)
    second = materialize_timeseries(f"{OPEN_DAY}|{shard}", res, instance, overlap_minutes=45)

    assert second.success
    window_start = moment_of(plan.first) - overlap
    assert (metadata_of(second)["window_start"], metadata_of(second)["window_end"]) == (
        window_start.timestamp(),
        moment_of(plan.second).timestamp(),
    )
    got = lake_rows(table, OPEN_DAY, shard)
    assert_same_rows(got, truth(mock.api, web_ids, day_start, plan.second))
    assert all(any(r[0] == v.web_id and r[1] == v.stamp for r in got) for v in plan.caught)
    marks = read_watermarks(lake.table("checkpoints.pi_watermarks"), shard).values()
    assert {(m.read_until, m.window_start, m.run_id) for m in marks} == {
        (moment_of(plan.second), window_start, second.run_id)
    }


def test_an_unknown_point_fails_the_run_lists_it_and_commits_nothing(
    mock_pi: RunningMock, tmp_path: Path, instance: dg.DagsterInstance, closed_truth: Counter[Row]
) -> None:
    """A catalog point PI does not know (a well-formed WebId that names nothing: 404) makes the run
    fail with the point, its status and where to resume in the failure metadata; nothing of the partition
    is committed (same table version, no rows, no watermark). Refreshing ``pi_points`` marks the point
    deleted, and the re-run then fills the partition exactly."""
    res = resources(mock_pi.api, tmp_path / "lake")
    lake = Lakehouse(str(tmp_path / "lake"))
    materialize_catalog(res, instance)
    table = lake.table("bronze.pi_timeseries")
    # Another slice, so the table exists with a version that must not move.
    replace_slice(table, [hourly(["X"], day=CLOSED_DAY)], partition_date=CLOSED_DAY, tag_shard="s00")
    version = table.version()
    ghost = _add_unknown_point(mock_pi, lake, SHARD)

    failed = materialize_timeseries(f"{CLOSED_DAY}|{SHARD}", res, instance)

    assert not failed.success
    (failure,) = [event for event in failed.all_events if event.is_step_failure]
    data = failure.step_failure_data.user_failure_data
    assert data is not None, failure.step_failure_data.error
    listed = data.metadata["failed_points"].value
    assert ghost in listed and "404" in listed and "read again from" in listed
    assert data.metadata["partitions_written_before_failure"].value == 0
    assert all(web_id not in listed for web_id in shard_web_ids(lake, SHARD) if web_id != ghost)
    assert "1 point(s)" in data.description and "Nothing was written" in data.description
    assert table.version() == version
    assert lake_rows(table, CLOSED_DAY, SHARD) == Counter()
    assert read_watermarks(lake.table("checkpoints.pi_watermarks"), SHARD) == {}

    assert dg.materialize([pi_af, pi_points], selection=[pi_points], resources=res, instance=instance).success
    assert ghost not in shard_web_ids(lake, SHARD)
    again = materialize_timeseries(f"{CLOSED_DAY}|{SHARD}", res, instance)

    assert again.success
    assert_same_rows(lake_rows(table, CLOSED_DAY, SHARD), closed_truth)


def _add_unknown_point(mock: RunningMock, lake: Lakehouse, shard: str) -> str:
    """Append a catalog row for a point id the mock does not have, in ``shard``; its WebId."""
    archive = mock.state.archive
    point_id = len(archive.points) + 1000
    web_id = webids.encode(
        "DP", (archive.server_guid,), f"{archive.server_name}\\Ghost.PV", point_id=point_id
    )
    points = lake.table("bronze.pi_points")
    catalog = read_table(points)
    template = catalog.filter(pc.equal(catalog.column("tag_shard"), shard))
    row = {**template.slice(0, 1).to_pylist()[0], "web_id": web_id, "point_id": point_id, "name": "Ghost.PV"}
    deltalake.write_deltalake(points.uri, pa.Table.from_pylist([row], schema=template.schema), mode="append")
    assert web_id in shard_web_ids(lake, shard)
    return web_id


def test_the_definitions_load() -> None:
    """``osipi_dagster.definitions.defs`` is loadable (what ``dagster definitions validate`` checks), with
    ``pi_timeseries`` partitioned by date x shard and backfilled in batches of partitions per run."""
    from osipi_dagster.definitions import defs as load

    defs = load()
    dg.Definitions.validate_loadable(defs)
    asset = defs.get_assets_def("pi_timeseries")
    assert asset.partitions_def is not None
    assert set(asset.partitions_def.partition_dimension_names) == {"date", "shard"}
    assert asset.backfill_policy == dg.BackfillPolicy.multi_run(PARTITIONS_PER_RUN)
    assert {"pi", "lakehouse"} <= set(asset.required_resource_keys)
    assert datetime.now(UTC).date().isoformat() in asset.partitions_def.get_partition_keys()[-1]


def test_every_run_executes_its_steps_in_its_run_worker() -> None:
    """Every job of the code location, the implicit asset job a UI backfill runs included, takes the
    in-process executor: one Python start-up per run, not one per step (defs/executor.py)."""
    from osipi_dagster.definitions import defs as load

    jobs = load().get_repository_def().get_all_jobs()
    assert "__ASSET_JOB" in {job.name for job in jobs}
    assert {job.name: job.executor_def.name for job in jobs} == {job.name: "in_process" for job in jobs}


def test_the_run_config_refuses_a_negative_overlap() -> None:
    """The launchpad's ``overlap_minutes`` is checked like ``OSIPI_OVERLAP_MINUTES``: a whole number >= 0."""
    with pytest.raises(pydantic.ValidationError):
        TimeseriesConfig(overlap_minutes=-30)
    assert TimeseriesConfig(overlap_minutes=0).overlap_minutes == 0
