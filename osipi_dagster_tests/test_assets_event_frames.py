"""The ``pi_event_frames`` asset, materialized through Dagster against the mock and a Delta table."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import pytest
import requests

from osipi_dagster.defs.pi_server.metadata import KINDS, POOL
from osipi_dagster.defs.resources import DeltaLakehouseResource, PIWebAPIResource
from osipi_dagster.lake import Lakehouse, LakeTable
from osipi_dagster.mock.server import RunningMock
from osipi_dagster_tests.definitions_helpers import DEFAULT_PARTITIONS, pi_event_frames
from osipi_dagster_tests.test_ingest_event_frames import now_of, raw_event_frames, stored_rows

PAST_DAY = "2025-01-05"
TODAY = "2025-01-06"


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as test_instance:
        yield test_instance


def materialize(api: str, root: Path, partition: str, instance: dg.DagsterInstance) -> dict[str, object]:
    """Materialize one partition; return the metadata of its materialization as plain values."""
    result = dg.materialize(
        [pi_event_frames],
        partition_key=partition,
        resources={"pi": PIWebAPIResource(base_url=api), "lakehouse": DeltaLakehouseResource(root=str(root))},
        instance=instance,
    )
    assert result.success
    (event,) = result.get_asset_materialization_events()
    assert event.partition == partition
    return {key: value.value for key, value in event.materialization.metadata.items()}


def event_frames_table(root: Path) -> LakeTable:
    return Lakehouse(str(root)).table("bronze.pi_event_frames")


def test_a_partition_holds_the_days_frames_and_reports_them(
    mock_pi: RunningMock, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    metadata = materialize(mock_pi.api, tmp_path, PAST_DAY, instance)

    expected = raw_event_frames(mock_pi.api, date.fromisoformat(PAST_DAY), now_of(mock_pi))
    table = event_frames_table(tmp_path)
    assert stored_rows(table) == expected
    assert (
        metadata["dagster/row_count"] == metadata["rows_inserted"] == metadata["frames_read"] == len(expected)
    )
    assert metadata["rows_updated"] == 0
    assert metadata["frames_open"] + metadata["frames_closed"] == len(expected)
    assert metadata["attribute_values"] == sum(len(row["attributes"]) for row in expected.values())
    assert metadata["delta_table_version"] == table.version()
    assert metadata["delta_table_uri"] == table.uri
    assert metadata["window_start"] == datetime(2025, 1, 5, tzinfo=UTC).timestamp()
    assert metadata["window_end"] == datetime(2025, 1, 6, tzinfo=UTC).timestamp()
    assert metadata["af_databases"] == ["\\\\AFMOCK\\Operations"]
    assert metadata["pi_requests"] > len(expected)
    assert metadata["duration_seconds"] > 0


def test_materializing_a_partition_twice_changes_no_row(
    mock_pi: RunningMock, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    first = materialize(mock_pi.api, tmp_path, PAST_DAY, instance)
    before = stored_rows(event_frames_table(tmp_path))
    second = materialize(mock_pi.api, tmp_path, PAST_DAY, instance)

    assert stored_rows(event_frames_table(tmp_path)) == before
    assert (second["rows_inserted"], second["rows_updated"]) == (0, first["frames_read"])
    assert second["delta_table_version"] == first["delta_table_version"] + 1


def test_todays_partition_follows_frames_as_they_close(
    make_mock, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    running = make_mock()
    opened = materialize(running.api, tmp_path, TODAY, instance)
    at_noon = stored_rows(event_frames_table(tmp_path))
    requests.post(f"{running.url}/admin/clock", json={"advance": "3h"}, timeout=10).raise_for_status()
    later = materialize(running.api, tmp_path, TODAY, instance)

    rows = stored_rows(event_frames_table(tmp_path))
    assert rows == raw_event_frames(running.api, date.fromisoformat(TODAY), now_of(running))
    open_at_noon = {web_id for web_id, row in at_noon.items() if row["end_time"] is None}
    assert any(rows[web_id]["end_time"] is not None for web_id in open_at_noon), "no frame closed"
    # Every frame seen at noon is updated in place; the others started in the three hours since.
    assert at_noon.keys() <= rows.keys()
    assert (later["rows_updated"], later["rows_inserted"]) == (len(at_noon), len(rows) - len(at_noon))
    assert opened["window_end"] == datetime(2025, 1, 6, 12, tzinfo=UTC).timestamp()
    assert later["window_end"] == datetime(2025, 1, 6, 15, tzinfo=UTC).timestamp()


def test_the_asset_is_defined_for_the_ui() -> None:
    spec = pi_event_frames.specs_by_key[dg.AssetKey("pi_event_frames")]

    assert pi_event_frames.partitions_def == DEFAULT_PARTITIONS.dates
    assert spec.group_name == "pi_bronze"
    assert set(spec.kinds) == KINDS
    assert pi_event_frames.op.pool == POOL
    assert spec.description and "MERGE" in spec.description
    assert spec.metadata["dagster/table_name"] == "bronze.pi_event_frames"
    assert {"pi", "lakehouse"} <= pi_event_frames.required_resource_keys


def test_a_backfill_run_covers_several_days_with_metadata_per_day(
    mock_pi: RunningMock, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    """One run over a range of days (how the backfill policy batches them) writes every day's frames and
    reports each day's own counts on its own partition."""
    result = dg.materialize(
        [pi_event_frames],
        resources={
            "pi": PIWebAPIResource(base_url=mock_pi.api),
            "lakehouse": DeltaLakehouseResource(root=str(tmp_path)),
        },
        instance=instance,
        tags={
            "dagster/asset_partition_range_start": "2025-01-04",
            "dagster/asset_partition_range_end": PAST_DAY,
        },
    )
    assert result.success
    events = {e.partition: e.materialization.metadata for e in result.get_asset_materialization_events()}
    assert set(events) == {"2025-01-04", PAST_DAY}
    expected = {}
    for day in events:
        frames = raw_event_frames(mock_pi.api, date.fromisoformat(day), now_of(mock_pi))
        assert events[day]["frames_read"].value == len(frames)
        expected |= frames
    assert stored_rows(event_frames_table(tmp_path)) == expected
