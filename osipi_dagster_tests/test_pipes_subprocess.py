"""The ``subprocess`` compute target: ``python -m osipi_dagster.pipes`` in a separate process, through
Dagster Pipes, writes the same Delta slices and reports the same metadata as the in-process asset."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from osipi_dagster.settings import ComputeTarget, PIServerSettings
from osipi_dagster_tests.conftest import TEST_NOW
from osipi_dagster_tests.pipes_helpers import (
    DAY,
    SHARDS,
    Materializer,
    assert_day_matches_mock,
    assert_event_frames_match_mock,
    failure_of,
    mock_now,
    partition_metadata,
)
from osipi_dagster_tests.timeseries_helpers import sorted_slice


def test_a_subprocess_writes_and_reports_what_the_step_itself_does(make_mock, tmp_path: Path) -> None:
    mock = make_mock(tags=12)
    metadata, lakes = {}, {}
    with dg.instance_for_test() as instance:
        for target in (ComputeTarget.IN_PROCESS, ComputeTarget.SUBPROCESS):
            server = PIServerSettings(base_url=mock.api, compress=False, tag_shards=2, compute=target)
            run = Materializer(server, tmp_path / target.value, instance)
            run.catalog()
            timeseries, event_frames = run.timeseries_day(), run.event_frames_day()
            assert timeseries.success and event_frames.success
            metadata[target] = {**partition_metadata(timeseries), **partition_metadata(event_frames)}
            lakes[target] = run.lake

    assert_day_matches_mock(lakes[ComputeTarget.SUBPROCESS], mock)
    assert_event_frames_match_mock(lakes[ComputeTarget.SUBPROCESS], mock, mock_now(TEST_NOW))
    for shard in SHARDS:
        assert sorted_slice(lakes[ComputeTarget.SUBPROCESS].table("bronze.pi_timeseries"), DAY, shard) == (
            sorted_slice(lakes[ComputeTarget.IN_PROCESS].table("bronze.pi_timeseries"), DAY, shard)
        )

    in_process, subprocess = metadata[ComputeTarget.IN_PROCESS], metadata[ComputeTarget.SUBPROCESS]
    assert sorted(subprocess) == sorted(
        [f"{DAY.isoformat()}|{shard}" for shard in SHARDS] + [DAY.isoformat()]
    )
    for partition, expected in in_process.items():
        # Where the table lives is the one difference: each target wrote to its own lakehouse here.
        got = {
            **subprocess[partition],
            "delta_table_uri": subprocess[partition]["delta_table_uri"].replace(
                str(tmp_path / "subprocess"), str(tmp_path / "in_process")
            ),
        }
        assert got == expected, partition


def test_a_failing_subprocess_fails_the_run_with_its_error(make_mock, tmp_path: Path) -> None:
    """No catalog yet: the remote side cannot find the shard's points, and the Dagster run fails with that
    error, nothing written."""
    mock = make_mock(tags=10)
    server = PIServerSettings(base_url=mock.api, compress=False, tag_shards=2, compute="subprocess")
    with dg.instance_for_test() as instance:
        run = Materializer(server, tmp_path, instance)
        description, metadata = failure_of(run.timeseries_day())
    assert "LookupError" in description
    assert "materialize the pi_points asset first" in description
    assert metadata["partitions_written_before_failure"] == 0
    assert not run.lake.table("bronze.pi_timeseries").exists()
