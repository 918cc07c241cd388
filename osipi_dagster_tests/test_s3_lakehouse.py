"""The lakehouse on S3, against a real S3-compatible HTTP server (moto's server mode on loopback).

The main job runs through Dagster into ``s3://`` tables configured the way a deployment does it (delta-rs's
own ``AWS_*`` variables, ``OSIPI_LAKE_ROOT``-style settings), and every slice is compared with the mock. Then
writers in separate processes commit to the same tables at once, through dagster-deltalake's ``S3Config``:
two replacing different time-series slices, two MERGEing watermarks (each its own shard, and both one shared
shard). Every commit must be in the table's log, one version each, and the contents must be the last
write of each writer: S3 commits are conditional writes, so a writer that loses the race for a version
retries at the next one instead of overwriting the winner.
"""

from __future__ import annotations

import multiprocessing
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, date, datetime, timedelta
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from dagster_deltalake import S3Config

from osipi_dagster.definitions import build_definitions
from osipi_dagster.defs.pi_server.wiring import ServerWiring
from osipi_dagster.lake import (
    Lakehouse,
    Watermark,
    read_slice,
    read_watermarks,
    replace_slice,
    write_watermarks,
)
from osipi_dagster.lake.partitions import WRITER_COLUMNS, read_partition, replace_partition
from osipi_dagster.lake.schemas import SILVER_EDGES, TIMESERIES, WATERMARKS
from osipi_dagster.lake.tables import without_columns
from osipi_dagster.settings import LakeSettings, PIServerSettings
from osipi_dagster_tests.lake_helpers import hourly
from osipi_dagster_tests.services import S3Server, s3_server
from osipi_dagster_tests.test_ingest_event_frames import now_of, raw_event_frames, stored_rows
from osipi_dagster_tests.timeseries_helpers import (
    SECOND_NS,
    assert_same_rows,
    day_start_ns,
    lake_rows,
    shard_web_ids,
    sorted_slice,
    truth,
)

DAY = date(2025, 1, 5)
SHARD = "s01"
TAGS = 40
ROUNDS = 4  # commits per writer and table in the concurrency tests
SHARED_SHARD = "s09"  # the watermark partition both MERGE writers upsert
# Minutes on a quiet machine; generous, since a loaded 2-core CI machine can take several times as long.
SLOW_TEST_TIMEOUT_S = 1200


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with s3_server(tmp_path_factory.mktemp("moto")) as server:
        yield server


@pytest.fixture
def bucket(s3: S3Server) -> str:
    return s3.create_bucket(f"lake-{uuid.uuid4().hex[:12]}")


@pytest.mark.slow
@pytest.mark.timeout(SLOW_TEST_TIMEOUT_S)
def test_the_main_job_on_s3_equals_the_mock_and_a_rerun_changes_nothing(
    make_mock, s3: S3Server, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """AF, the catalog, a closed day's time-series partition and its event frames, materialized through
    Dagster into S3; then the partitions again: the same rows, one more commit each."""
    for name, value in s3.environment().items():
        monkeypatch.setenv(name, value)  # delta-rs reads them itself, as in a deployment
    mock = make_mock(tags=TAGS)
    server = PIServerSettings(base_url=mock.api, compress=False, tag_shards=2)
    root = f"s3://{bucket}/lake"
    defs = build_definitions(LakeSettings(root=root), [server])
    key = ServerWiring(server).key
    catalog = [key("pi_af_hierarchy"), key("pi_af_attributes"), key("pi_points")]
    partitions = [
        ([key("pi_timeseries")], f"{DAY.isoformat()}|{SHARD}"),
        ([key("pi_event_frames")], str(DAY)),
    ]
    lake = Lakehouse(root)
    timeseries, event_frames = lake.table("bronze.pi_timeseries"), lake.table("bronze.pi_event_frames")

    with dg.instance_for_test() as instance:
        for assets, partition in [(catalog, None), *partitions]:
            _materialize(defs, instance, assets, partition)
        start = day_start_ns(DAY)
        web_ids = shard_web_ids(lake, SHARD)
        assert web_ids
        assert len(web_ids) + len(shard_web_ids(lake, "s00")) == TAGS
        assert_same_rows(
            lake_rows(timeseries, DAY, SHARD), truth(mock.api, web_ids, start, start + 86_400 * SECOND_NS)
        )
        frames = raw_event_frames(mock.api, DAY, now_of(mock))
        assert frames and stored_rows(event_frames) == frames
        assert s3.keys(bucket, "lake/bronze/pi_timeseries/_delta_log/"), "the table lives in the bucket"

        before = sorted_slice(timeseries, DAY, SHARD), timeseries.version(), event_frames.version()
        for assets, partition in partitions:
            _materialize(defs, instance, assets, partition)
    assert sorted_slice(timeseries, DAY, SHARD) == before[0]
    assert stored_rows(event_frames) == frames
    assert (timeseries.version(), event_frames.version()) == (before[1] + 1, before[2] + 1)


@pytest.mark.slow
@pytest.mark.timeout(SLOW_TEST_TIMEOUT_S)
def test_two_processes_replacing_different_slices_lose_no_commit(
    s3: S3Server, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, options = _lake_config(s3, bucket, monkeypatch)
    commits = _run_together(_replace_slices, [(root, options, shard) for shard in ("s00", "s01")])

    table = Lakehouse(root, options).table(TIMESERIES.name)
    _assert_overlapping(commits)
    _assert_every_commit_kept(table.load().history(), commits)
    for shard in ("s00", "s01"):
        stored = read_slice(table, DAY, shard).select(["web_id", "timestamp", "value"])
        expected = _slice_batch(shard, ROUNDS - 1).select(["web_id", "timestamp", "value"])
        assert sorted(stored.to_pylist(), key=str) == sorted(expected.to_pylist(), key=str)


@pytest.mark.slow
@pytest.mark.timeout(SLOW_TEST_TIMEOUT_S)
def test_two_processes_merging_watermarks_lose_no_commit(
    s3: S3Server, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, options = _lake_config(s3, bucket, monkeypatch)
    commits = _run_together(_merge_watermarks, [(root, options, shard) for shard in ("s00", "s01")])

    table = Lakehouse(root, options).table(WATERMARKS.name)
    _assert_overlapping(commits)
    _assert_every_commit_kept(table.load().history(), commits)
    last = _read_until(ROUNDS - 1)
    for shard in ("s00", "s01"):
        assert {web_id: mark.read_until for web_id, mark in read_watermarks(table, shard).items()} == {
            web_id: last for web_id in _points(shard)
        }
    shared = read_watermarks(table, SHARED_SHARD)
    assert {web_id: mark.read_until for web_id, mark in shared.items()} == {
        web_id: last for shard in ("s00", "s01") for web_id in _points(shard)
    }


def test_a_derived_partition_replaced_on_s3_is_read_back_whole(
    s3: S3Server, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Silver and gold write their own Parquet files and commit them (``replace_partition``): on S3 too, a
    re-run replaces the partition whole and leaves the others alone."""
    root, options = _lake_config(s3, bucket, monkeypatch)
    table = Lakehouse(root, options).table(SILVER_EDGES.name)
    for shard, values in (("s00", [1.0, 2.0]), ("s01", [3.0]), ("s00", [4.0])):
        replace_partition(table, [_edges_batch(values)], partition_date=DAY, tag_shard=shard)

    for shard, values in (("s00", [4.0]), ("s01", [3.0])):
        stored = read_partition(table, DAY, shard, ["web_id", "value"])
        assert stored is not None and stored.column("value").to_pylist() == values
    assert [h["operation"] for h in table.load().history()][:3] == ["WRITE", "WRITE", "WRITE"]


def test_an_open_day_range_replaced_on_s3_keeps_the_rest_of_its_file(
    s3: S3Server, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A time range of one point replaced in a slice written whole: the file is read back from S3 and its
    other rows written again beside the new ones (lake/streaming.py, a partial replace)."""
    root, options = _lake_config(s3, bucket, monkeypatch)
    table = Lakehouse(root, options).table(TIMESERIES.name)
    replace_slice(table, [hourly(["A", "B"], DAY)], partition_date=DAY, tag_shard="s00")
    midnight = datetime(DAY.year, DAY.month, DAY.day, tzinfo=UTC)
    start, end = midnight + timedelta(hours=10), midnight + timedelta(hours=12)

    result = replace_slice(
        table,
        [hourly(["A"], DAY, value=-100.0).slice(10, 2)],
        partition_date=DAY,
        tag_shard="s00",
        time_range=(start, end),
        web_ids=["A"],
    )

    stored = read_slice(table, DAY, "s00")
    values = {w: stored.filter(pc.equal(stored["web_id"], w))["value"].to_pylist() for w in "AB"}
    assert values["B"] == [1.0 + hour for hour in range(24)]
    assert values["A"] == [1.0 + h if not 10 <= h < 12 else -100.0 + h for h in range(24)]
    assert (result.files_removed, result.files_added) == (1, 1)


# -- helpers -----------------------------------------------------------------------------------------------

Commit = tuple[int, float, float]  # (table version, started, ended) of one write, wall-clock seconds


def _edges_batch(values: list[float]) -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist(
        [
            {"web_id": f"P{i}", "point_name": f"point {i}", "point_type": "Float64", "step": False}
            | {"edge": "last", "timestamp_ns": i, "sequence": 0, "value": value, "is_good": True}
            for i, value in enumerate(values)
        ],
        schema=without_columns(SILVER_EDGES.schema, WRITER_COLUMNS),
    )


def _materialize(
    defs: dg.Definitions, instance: dg.DagsterInstance, assets: list, partition: str | None
) -> None:
    job = defs.resolve_implicit_job_def_def_for_assets(assets)
    result = job.execute_in_process(instance=instance, asset_selection=assets, partition_key=partition)
    assert result.success


def _lake_config(s3: S3Server, bucket: str, monkeypatch: pytest.MonkeyPatch) -> tuple[str, dict[str, str]]:
    """A root in ``bucket`` and its storage options from dagster-deltalake's ``S3Config``."""
    # S3Config has no setting for plain HTTP: delta-rs reads it from the environment (the writers inherit it).
    monkeypatch.setenv("AWS_ALLOW_HTTP", "true")
    config = S3Config(
        endpoint=s3.endpoint,
        region=s3.region,
        access_key_id=s3.access_key_id,
        secret_access_key=s3.secret_access_key,
    )
    return f"s3://{bucket}/lake", config.str_dict()


def _run_together(worker, arguments: list[tuple[Any, ...]]) -> list[list[Commit]]:
    """Run ``worker(*args, barrier)`` for each ``args`` in its own spawned process, all released together."""
    context = multiprocessing.get_context("spawn")  # delta-rs's runtime does not survive a fork
    with context.Manager() as manager, ProcessPoolExecutor(len(arguments), mp_context=context) as pool:
        barrier = manager.Barrier(len(arguments))
        futures = [pool.submit(worker, *args, barrier) for args in arguments]
        return [future.result(timeout=900) for future in futures]


def _assert_overlapping(commits: list[list[Commit]]) -> None:
    """The writers really ran at the same time (each one's writes overlap the other's)."""
    (first, second) = commits
    assert first[0][1] < second[-1][2] and second[0][1] < first[-1][2], commits


def _assert_every_commit_kept(history: list[dict[str, Any]], commits: list[list[Commit]]) -> None:
    """One version per write, none missing: version 0 created the table, every later one is a write."""
    versions = sorted(version for writer in commits for version, _, _ in writer)
    assert versions == list(range(1, len(versions) + 1)), versions
    assert len(history) == len(versions) + 1


def _points(shard: str) -> list[str]:
    return [f"{shard}-point-{index}" for index in range(3)]


def _slice_batch(shard: str, round_: int):
    return hourly(_points(shard), DAY, value=100.0 * round_)


def _read_until(round_: int) -> datetime:
    return datetime(2025, 1, 6, tzinfo=UTC) + timedelta(minutes=round_ + 1)


def _replace_slices(root: str, options: dict[str, str], shard: str, barrier) -> list[Commit]:
    """``ROUNDS`` replacements of the slice (DAY, ``shard``), each with new values."""
    table = Lakehouse(root, options).table(TIMESERIES.name)
    barrier.wait(timeout=300)
    commits = []
    for round_ in range(ROUNDS):
        started = time.time()
        result = replace_slice(table, [_slice_batch(shard, round_)], partition_date=DAY, tag_shard=shard)
        commits.append((result.version, started, time.time()))
    return commits


def _merge_watermarks(root: str, options: dict[str, str], shard: str, barrier) -> list[Commit]:
    """``ROUNDS`` times: move the watermarks of ``shard``'s points forward, in ``shard`` and in the shard
    both writers share (two MERGEs into one partition conflict; the loser re-reads and retries)."""
    table = Lakehouse(root, options).table(WATERMARKS.name)
    barrier.wait(timeout=300)
    commits = []
    for round_ in range(ROUNDS):
        marks = [
            Watermark(web_id, read_until=_read_until(round_), values_read=round_) for web_id in _points(shard)
        ]
        for target in (shard, SHARED_SHARD):
            started = time.time()
            result = write_watermarks(table, target, marks)
            commits.append((result.version, started, time.time()))
    return commits
