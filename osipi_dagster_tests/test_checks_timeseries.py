"""The checks of ``pi_timeseries``, run by Dagster in the runs of the real jobs against the mock PI Web API
over HTTP, on real Delta tables.

Clean data passes, and its figures equal an independent read of the mock (plain HTTP, no client code);
each check is then made to fail on purpose: rows written into the Delta slice by hand (nulls, bad values,
copies, questionable values, a column), a history written by hand, the mock's clock moved through its
admin API (later: points are late; earlier: stored values are in the future), a clock-skew count written
into ``gold.pi_data_latency``. A check run alone (a run of the checks only, as from the UI) evaluates the
partition's stored slice and targets its latest materialization.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

import dagster as dg
import deltalake
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pytest
import requests

from osipi_dagster.contract import RECORDED_SCHEMA
from osipi_dagster.definitions import build_definitions
from osipi_dagster.defs.pi_server.wiring import ServerWiring
from osipi_dagster.lake import Lakehouse, LakeTable, merge_rows, replace_slice
from osipi_dagster.lake.schemas import DATA_LATENCY
from osipi_dagster.mock.server import RunningMock
from osipi_dagster.settings import LakeSettings, PIServerSettings
from osipi_dagster_tests.conftest import TEST_NOW
from osipi_dagster_tests.pi_helpers import Row
from osipi_dagster_tests.timeseries_helpers import SECOND_NS, day_start_ns, shard_web_ids, truth

NOW = datetime.fromisoformat(TEST_NOW.replace("Z", "+00:00"))
CLOSED_DAY, OPEN_DAY = date(2025, 1, 5), date(2025, 1, 6)
SHARD = "s02"  # every hard case of the mock (see test_ingest_timeseries), and no late point at TEST_NOW
CLOSED, OPEN = f"{CLOSED_DAY}|{SHARD}", f"{OPEN_DAY}|{SHARD}"
DAY_NS = 86_400 * SECOND_NS
CHECKS = {"null_or_bad_values", "freshness", "volume", "good_quality", "duplicates", "schema", "clock_skew"}
Evaluations = dict[tuple[str | None, str], dg.AssetCheckEvaluation]


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    """Each test its own instance (and lake): the partitions' latest materializations are the test's."""
    with dg.instance_for_test() as instance:
        yield instance


def definitions(api: str, root: Path, **settings: object) -> dg.Definitions:
    """The code location of one PI server (the mock at ``api``) and a job that runs its time-series checks
    alone (what the UI's "execute" of a check does)."""
    server = PIServerSettings(base_url=api, compress=False, **settings)
    checks_only = dg.define_asset_job(
        "checks_only",
        selection=dg.AssetSelection.checks_for_assets(ServerWiring(server).key("pi_timeseries")),
        partitions_def=ServerWiring(server).partitions.timeseries,
    )
    return dg.Definitions.merge(
        build_definitions(LakeSettings(root=str(root)), [server]), dg.Definitions(jobs=[checks_only])
    )


def materialize(defs: dg.Definitions, instance: dg.DagsterInstance, first: str, last: str | None = None):
    """The catalog job, then ``pi_timeseries_job`` over the partitions ``first`` .. ``last`` in one run (a
    backfill's range)."""
    if instance.get_latest_materialization_event(dg.AssetKey("pi_points")) is None:
        assert defs.resolve_job_def("pi_catalog_job").execute_in_process(instance=instance).success
    tags = {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last or first}
    result = defs.resolve_job_def("pi_timeseries_job").execute_in_process(instance=instance, tags=tags)
    assert result.success
    return result


def check_alone(defs: dg.Definitions, instance: dg.DagsterInstance, partition: str) -> Evaluations:
    # A check-only run cannot be given partition_key= (no asset in it to take a partitions definition
    # from); the partition tag is what a launched run carries.
    result = defs.resolve_job_def("checks_only").execute_in_process(
        instance=instance, tags={"dagster/partition": partition}
    )
    assert result.success
    return evaluations(result)


def evaluations(result: dg.ExecuteInProcessResult) -> Evaluations:
    return {(e.partition, e.check_name): e for e in result.get_asset_check_evaluations()}


def figures(evaluation: dg.AssetCheckEvaluation) -> dict[str, object]:
    return {name: value.value for name, value in evaluation.metadata.items()}


def slice_table(lake: Lakehouse, day: date) -> tuple[LakeTable, pa.Table]:
    table = lake.table("bronze.pi_timeseries")
    rows = table.load().to_pyarrow_table(
        filters=(ds.field("partition_date") == pa.scalar(day, pa.date32())) & (ds.field("tag_shard") == SHARD)
    )
    return table, rows


def test_a_range_run_checks_each_clean_partition_with_figures_equal_to_the_mock(
    mock_pi: RunningMock, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    """One run of ``pi_timeseries_job`` over yesterday and today (a backfill's range) runs the checks after
    the asset's step and logs one evaluation per check and partition, each targeting that partition's own
    materialization. On the mock's clean data every check passes, and the closed day's figures equal an
    independent read of the mock: its values, its system states, its values flagged Good and not
    Questionable, and its identical repeated values (a step point stores a level twice at one time)."""
    defs = definitions(mock_pi.api, tmp_path)
    lake = Lakehouse(str(tmp_path))

    result = materialize(defs, instance, CLOSED, OPEN)

    found = evaluations(result)
    assert set(found) == {(partition, name) for partition in (CLOSED, OPEN) for name in CHECKS}
    assert all(evaluation.passed for evaluation in found.values()), {
        key: e.description for key, e in found.items() if not e.passed
    }
    kinds = [event.event_type_value for event in result.all_events]
    assert kinds.index("ASSET_CHECK_EVALUATION") > kinds.index("ASSET_MATERIALIZATION")
    for partition in (CLOSED, OPEN):
        (record,) = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("pi_timeseries"), asset_partitions=[partition]),
            limit=1,
        ).records
        targets = {found[(partition, name)].target_materialization_data for name in CHECKS}
        assert {(t.storage_id, t.run_id) for t in targets} == {(record.storage_id, result.run_id)}

    start = day_start_ns(CLOSED_DAY)
    rows = truth(mock_pi.api, shard_web_ids(lake, SHARD), start, start + DAY_NS)
    values = sum(rows.values())
    bad = _count(rows, lambda row: row[6])
    null_or_bad = figures(found[(CLOSED, "null_or_bad_values")])
    assert "I/O Timeout" not in null_or_bad.pop("worst")  # names, WebIds and figures, not values
    assert null_or_bad == {
        "values": values,
        "null_values": 0,
        "bad_values": bad,
        "null_share": 0.0,
        # Shares are shown in six significant digits; the counts above are exact.
        "bad_share": pytest.approx(bad / values, rel=1e-5),
        "null_or_bad_share": pytest.approx(bad / values, rel=1e-5),
    }
    good = _count(rows, lambda row: row[7] and not row[8])
    assert figures(found[(CLOSED, "good_quality")])["good_quality_values"] == good
    repeated = sum(count - 1 for count in rows.values())
    assert repeated > 0, "the mock repeats identical values at one timestamp: the check must count them"
    assert figures(found[(CLOSED, "duplicates")])["duplicate_rows"] == repeated
    assert found[(CLOSED, "freshness")].description.startswith("Not today")
    assert figures(found[(OPEN, "freshness")])["points_judged"] > 0
    assert figures(found[(OPEN, "freshness")])["points_late"] == 0
    assert "Not enough history" in found[(CLOSED, "volume")].description
    assert found[(CLOSED, "duplicates")].severity == dg.AssetCheckSeverity.ERROR
    assert found[(CLOSED, "good_quality")].severity == dg.AssetCheckSeverity.WARN


def _count(rows: Counter[Row], keep) -> int:
    return sum(count for row, count in rows.items() if keep(row))


def test_rows_written_by_hand_fail_their_checks_and_name_the_points(
    mock_pi: RunningMock, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    """Null values, system states, copies of a point's rows and questionable values written into the
    closed day's slice by hand: the checks run alone fail (null_or_bad_values and good_quality as
    warnings, duplicates as an error), with figures that add up exactly and the guilty points named first
    (by their catalog name); the checks about other things still pass."""
    defs = definitions(mock_pi.api, tmp_path)
    lake = Lakehouse(str(tmp_path))
    clean = evaluations(materialize(defs, instance, CLOSED))
    table, rows = slice_table(lake, CLOSED_DAY)
    per_point = Counter(rows["web_id"].to_pylist())
    (nulls_at, _), (copied, copies), (questioned, _) = per_point.most_common(3)
    names = _names(lake)
    count = rows.num_rows
    null_rows = _rows_like(rows, nulls_at, 6_000, value=None, good=True)
    questionable_rows = _rows_like(rows, questioned, 15_000, value=1.5, good=True, questionable=True)
    copied_rows = rows.filter(pc.equal(rows["web_id"], copied))
    deltalake.write_deltalake(
        table.uri, pa.concat_tables([null_rows, questionable_rows, copied_rows]), mode="append"
    )
    total = count + 6_000 + 15_000 + copies

    found = check_alone(defs, instance, CLOSED)

    bad = (
        figures(clean[(CLOSED, "null_or_bad_values")])["bad_values"]
        + pc.sum(copied_rows["is_system"]).as_py()
    )
    null_or_bad = found[(CLOSED, "null_or_bad_values")]
    assert not null_or_bad.passed and null_or_bad.severity == dg.AssetCheckSeverity.WARN
    assert figures(null_or_bad)["null_values"] == 6_000 and figures(null_or_bad)["bad_values"] == bad
    assert figures(null_or_bad)["values"] == total
    assert _first_offender(null_or_bad) == names[nulls_at]
    duplicates = found[(CLOSED, "duplicates")]
    assert not duplicates.passed and duplicates.severity == dg.AssetCheckSeverity.ERROR
    assert (
        figures(duplicates)["duplicate_rows"]
        == figures(clean[(CLOSED, "duplicates")])["duplicate_rows"] + copies
    )
    assert _first_offender(duplicates) == names[copied]
    quality = found[(CLOSED, "good_quality")]
    assert not quality.passed and figures(quality)["good_quality_share"] < 0.9
    assert _first_offender(quality) == names[questioned]
    assert all(found[(CLOSED, name)].passed for name in ("freshness", "volume", "schema", "clock_skew"))
    (record,) = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("pi_timeseries"), asset_partitions=[CLOSED]), limit=1
    ).records
    assert duplicates.target_materialization_data.storage_id == record.storage_id


def _names(lake: Lakehouse) -> dict[str, str]:
    points = lake.table("bronze.pi_points").load().to_pyarrow_table(columns=["web_id", "name"])
    return dict(zip(points["web_id"].to_pylist(), points["name"].to_pylist(), strict=True))


def _first_offender(evaluation: dg.AssetCheckEvaluation) -> str:
    return figures(evaluation)["worst"].splitlines()[2].split(" | ")[0].removeprefix("| ")


def _rows_like(
    rows: pa.Table, web_id: str, count: int, *, value: float | None, good: bool, questionable: bool = False
) -> pa.Table:
    """``count`` rows of ``web_id`` (numeric, or with no value at all) at new whole microseconds of the
    slice's day, in the table's layout."""
    template = rows.filter(pc.equal(rows["web_id"], web_id)).slice(0, 1)
    first = template["timestamp_ns"][0].as_py() // DAY_NS * DAY_NS
    stamps = first + np.arange(count, dtype=np.int64) * 7_001_000 + 3_000  # off the mock's whole seconds
    repeated = template.take(np.zeros(count, np.int64))
    columns = {
        "timestamp": pa.array(stamps // 1000, pa.timestamp("us", tz="UTC")),
        "timestamp_ns": pa.array(stamps),
        "value": pa.array([value] * count, pa.float64()),
        "string_value": pa.nulls(count, pa.string()),
        "state_code": pa.nulls(count, pa.int32()),
        "state_name": pa.nulls(count, pa.string()),
        "is_system": pa.repeat(False, count),
        "good": pa.repeat(good, count),
        "questionable": pa.repeat(questionable, count),
    }
    for name, column in columns.items():
        repeated = repeated.set_column(repeated.schema.get_field_index(name), name, column)
    return repeated.cast(rows.schema)


def test_the_open_day_late_points_and_a_clock_gone_back(
    make_mock, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    """Today's partition right after its run: fresh, no clock skew. Three hours later on the PI server's
    clock (moved through the mock's admin API) the same stored slice is late for exactly the points whose
    newest value is older than an hour and than three of their typical intervals (points that report every
    few hours are not late). With the clock moved back half an hour, the values stored after its now plus
    five minutes are clock skew, per point; a count of values in PI's future that the materialization's run
    recorded in ``gold.pi_data_latency`` fails the check too."""
    mock = make_mock()
    defs = definitions(mock.api, tmp_path)
    lake = Lakehouse(str(tmp_path))
    result = materialize(defs, instance, OPEN)
    right_after = evaluations(result)
    assert right_after[(OPEN, "freshness")].passed and right_after[(OPEN, "clock_skew")].passed
    _, rows = slice_table(lake, OPEN_DAY)

    _move_clock(mock, {"advance": "3h"})
    later = check_alone(defs, instance, OPEN)

    freshness = later[(OPEN, "freshness")]
    assert not freshness.passed and freshness.severity == dg.AssetCheckSeverity.WARN
    now_ns = day_start_ns(OPEN_DAY) + 15 * 3600 * SECOND_NS
    expected_late = _late_points(rows, now_ns)
    assert 0 < len(expected_late) < len(set(rows["web_id"].to_pylist()))
    assert figures(freshness)["points_late"] == len(expected_late)
    assert _first_offender(freshness) in {_names(lake)[web_id] for web_id in expected_late}

    _move_clock(mock, {"now": "2025-01-06T11:30:00Z"})
    earlier = check_alone(defs, instance, OPEN)

    skew = earlier[(OPEN, "clock_skew")]
    after_ns = day_start_ns(OPEN_DAY) + (11 * 3600 + 35 * 60) * SECOND_NS
    stored_late = pc.sum(pc.greater(rows["timestamp_ns"], after_ns)).as_py()
    assert not skew.passed and stored_late > 0
    assert figures(skew)["future_values_stored"] == stored_late
    assert earlier[(OPEN, "freshness")].passed

    _move_clock(mock, {"now": TEST_NOW})
    merge_rows(lake.table(DATA_LATENCY.name), _latency_row(result.run_id, future_values=7))
    found_in_pi = check_alone(defs, instance, OPEN)[(OPEN, "clock_skew")]
    assert not found_in_pi.passed
    assert (figures(found_in_pi)["future_values_in_pi"], figures(found_in_pi)["future_values_stored"]) == (
        7,
        0,
    )


def _move_clock(mock: RunningMock, body: dict[str, str]) -> None:
    requests.post(f"{mock.url}/admin/clock", json=body, timeout=10).raise_for_status()


def _late_points(rows: pa.Table, now_ns: int) -> set[str]:
    """The points whose newest value is older than an hour and than three of their mean intervals."""
    late = set()
    for web_id in set(rows["web_id"].to_pylist()):
        stamps = np.sort(rows.filter(pc.equal(rows["web_id"], web_id))["timestamp_ns"].to_numpy())
        if stamps.size < 2:
            continue
        interval = (stamps[-1] - stamps[0]) / (stamps.size - 1)
        if now_ns - stamps[-1] > max(3600 * SECOND_NS, 3 * interval):
            late.add(web_id)
    return late


def _latency_row(run_id: str, future_values: int) -> pa.Table:
    moment = datetime.fromisoformat("2025-01-06T12:00:00+00:00")
    row = {
        "partition_date": OPEN_DAY,
        "tag_shard": SHARD,
        "run_id": run_id,
        "read_at": moment,
        "window_start": None,
        "window_end": None,
        "late_values": 0,
        "removed_values": 0,
        "lateness_exact": True,
        "lateness_p50_s": None,
        "lateness_p95_s": None,
        "lateness_p99_s": None,
        "lateness_max_s": None,
        "future_values": future_values,
        "future_points": 1,
        "ingested_at": moment,
    }
    return pa.Table.from_pylist([row], schema=DATA_LATENCY.schema)


def test_volume_is_compared_with_the_shards_history_from_delta_statistics(
    mock_pi: RunningMock, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    """Eight previous days of the shard written by hand with about the closed day's row count: the volume
    check passes (|z| small); the same history at twice the count: it fails, z far below -3. The counts
    are Delta's per-file statistics."""
    defs = definitions(mock_pi.api, tmp_path)
    lake = Lakehouse(str(tmp_path))
    materialize(defs, instance, CLOSED)
    table, rows = slice_table(lake, CLOSED_DAY)
    count = rows.num_rows

    _write_history(
        table, [count - 40, count + 30, count, count - 10, count + 20, count, count + 5, count - 5]
    )
    steady = check_alone(defs, instance, CLOSED)[(CLOSED, "volume")]

    assert steady.passed, steady.description
    assert figures(steady)["row_count"] == count and figures(steady)["history_days"] == 8
    assert abs(figures(steady)["z_score"]) < 1

    _write_history(table, [2 * count] * 8)
    doubled = check_alone(defs, instance, CLOSED)[(CLOSED, "volume")]

    assert not doubled.passed and figures(doubled)["z_score"] < -3
    assert figures(doubled)["expected_rows"] == 2 * count


def _write_history(table: LakeTable, counts: list[int]) -> None:
    for back, count in enumerate(counts, start=1):
        day = CLOSED_DAY - timedelta(days=back)
        start = day_start_ns(day)
        stamps = start + np.arange(count, dtype=np.int64) * (DAY_NS // count)
        batch = pa.RecordBatch.from_pydict(
            {
                "web_id": ["X"] * count,
                "timestamp": pa.array(stamps).cast(pa.timestamp("ns", tz="UTC")),
                "value": np.ones(count),
                "string_value": pa.nulls(count, pa.string()),
                "state_code": pa.nulls(count, pa.int32()),
                "state_name": pa.nulls(count, pa.string()),
                "is_system": pa.repeat(False, count),
                "good": pa.repeat(True, count),
                "questionable": pa.repeat(False, count),
                "substituted": pa.repeat(False, count),
                "annotated": pa.repeat(False, count),
                "units": pa.nulls(count, pa.string()),
            },
            schema=RECORDED_SCHEMA,
        )
        replace_slice(table, [batch], partition_date=day, tag_shard=SHARD)


def test_a_column_added_by_another_writer_is_schema_drift(
    mock_pi: RunningMock, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    """Another engine adds a column to ``bronze.pi_timeseries`` (schema evolution on append): the schema
    check fails as an error naming the column, while the data checks still pass."""
    defs = definitions(mock_pi.api, tmp_path)
    lake = Lakehouse(str(tmp_path))
    materialize(defs, instance, CLOSED)
    table, rows = slice_table(lake, CLOSED_DAY)
    extra = rows.slice(0, 1).append_column("site", pa.array(["north"], pa.string()))
    deltalake.write_deltalake(table.uri, extra, mode="append", schema_mode="merge")

    found = check_alone(defs, instance, CLOSED)

    schema = found[(CLOSED, "schema")]
    assert not schema.passed and schema.severity == dg.AssetCheckSeverity.ERROR
    assert "unexpected column site (string)" in schema.description
    assert found[(CLOSED, "duplicates")].passed and found[(CLOSED, "null_or_bad_values")].passed


def test_thresholds_and_severities_are_the_servers_settings(
    mock_pi: RunningMock, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    """With stricter thresholds the mock's clean day fails (it holds a few system states and questionable
    values), each check with the severity its setting gives; an ``error`` check is blocking, a ``warn``
    one is not."""
    defs = definitions(
        mock_pi.api,
        tmp_path,
        check_null_or_bad_max_share=0.0,
        check_good_quality_min_share=0.999,
        check_good_quality_severity="error",
        check_duplicates_severity="warn",
    )
    checks = defs.resolve_asset_graph()
    blocking = {key.name: checks.get(key).blocking for key in checks.asset_check_keys if key.name in CHECKS}
    assert blocking == {
        "null_or_bad_values": False,
        "freshness": False,
        "volume": False,
        "good_quality": True,
        "duplicates": False,
        "schema": True,
        "clock_skew": False,
    }

    found = evaluations(materialize(defs, instance, CLOSED))

    assert not found[(CLOSED, "null_or_bad_values")].passed
    assert found[(CLOSED, "null_or_bad_values")].severity == dg.AssetCheckSeverity.WARN
    assert not found[(CLOSED, "good_quality")].passed
    assert found[(CLOSED, "good_quality")].severity == dg.AssetCheckSeverity.ERROR
    assert found[(CLOSED, "duplicates")].severity == dg.AssetCheckSeverity.WARN
