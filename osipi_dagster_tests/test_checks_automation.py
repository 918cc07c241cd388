"""A failed ERROR check of a ``pi_timeseries`` partition blocks that partition's downstream through
Declarative Automation (``AutomationCondition.all_deps_blocking_checks_passed()``, what the silver and
gold assets use), evaluated by Dagster on a real instance; a failed WARN check does not, nor does a failure
of another partition; re-materializing the partition (which replaces the bad slice) unblocks it.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import dagster as dg
import deltalake
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from osipi_dagster.definitions import build_definitions
from osipi_dagster.defs.pi_server.wiring import ServerWiring
from osipi_dagster.lake import Lakehouse
from osipi_dagster.mock.server import RunningMock
from osipi_dagster.settings import LakeSettings, PIServerSettings

DAY = date(2025, 1, 5)
FIRST, SECOND = f"{DAY}|s00", f"{DAY}|s01"


def test_an_error_check_blocks_its_partitions_downstream_and_a_warning_does_not(
    mock_pi: RunningMock, tmp_path: Path
) -> None:
    """Two partitions materialized and checked clean: automation requests the downstream of both. Then
    rows written by hand: copies of every row of the second (duplicates, an ERROR check) and null values in
    the first (null_or_bad_values, a WARN check), both checked again: only the first partition's downstream
    is requested. The second partition materialized again (its slice replaced, its checks passing): both
    are requested again."""
    server = PIServerSettings(
        base_url=mock_pi.api, compress=False, tag_shards=16, start_date=date(2024, 12, 1)
    )
    wiring = ServerWiring(server)

    @dg.asset(
        key="downstream",
        partitions_def=wiring.partitions.timeseries,
        deps=[wiring.key("pi_timeseries")],
        automation_condition=dg.AutomationCondition.missing()
        & ~dg.AutomationCondition.any_deps_missing()
        & dg.AutomationCondition.all_deps_blocking_checks_passed(),
    )
    def downstream() -> None:
        """Stands for silver: what must not read a partition whose blocking checks failed."""

    checks_only = dg.define_asset_job(
        "checks_only",
        selection=dg.AssetSelection.checks_for_assets(wiring.key("pi_timeseries")),
        partitions_def=wiring.partitions.timeseries,
    )
    defs = dg.Definitions.merge(
        build_definitions(LakeSettings(root=str(tmp_path)), [server]),
        dg.Definitions(assets=[downstream], jobs=[checks_only]),
    )
    table = Lakehouse(str(tmp_path)).table("bronze.pi_timeseries")

    with dg.instance_for_test() as instance:

        def requested() -> set[str]:
            result = dg.evaluate_automation_conditions(defs=defs, instance=instance)
            return {str(key) for key in result.get_requested_partitions(dg.AssetKey("downstream"))}

        def run(job: str, **tags: str) -> dg.ExecuteInProcessResult:
            result = defs.resolve_job_def(job).execute_in_process(instance=instance, tags=tags)
            assert result.success
            return result

        run("pi_catalog_job")
        first = run(
            "pi_timeseries_job",
            **{"dagster/asset_partition_range_start": FIRST, "dagster/asset_partition_range_end": SECOND},
        )
        assert all(evaluation.passed for evaluation in first.get_asset_check_evaluations())
        assert requested() == {FIRST, SECOND}

        _append(table, _slice(table, "s01"))
        _append(table, _nulls(_slice(table, "s00"), 20_000))
        failed = {
            (e.partition, e.check_name): e
            for partition in (FIRST, SECOND)
            for e in run("checks_only", **{"dagster/partition": partition}).get_asset_check_evaluations()
            if not e.passed
        }
        assert set(failed) == {(SECOND, "duplicates"), (FIRST, "null_or_bad_values")}
        assert failed[(SECOND, "duplicates")].severity == dg.AssetCheckSeverity.ERROR
        assert failed[(FIRST, "null_or_bad_values")].severity == dg.AssetCheckSeverity.WARN

        assert requested() == {FIRST}

        again = run("pi_timeseries_job", **{"dagster/partition": SECOND})
        assert all(evaluation.passed for evaluation in again.get_asset_check_evaluations())

        assert requested() == {FIRST, SECOND}


def _slice(table, shard: str) -> pa.Table:
    return table.load().to_pyarrow_table(
        filters=(ds.field("partition_date") == pa.scalar(DAY, pa.date32())) & (ds.field("tag_shard") == shard)
    )


def _nulls(rows: pa.Table, count: int) -> pa.Table:
    """``count`` copies of the first row with no value at all, each at its own time."""
    copies = rows.slice(0, 1).take(pa.array([0] * count))
    stamps = pc.add(copies["timestamp_ns"], pa.array(range(count), pa.int64()))
    for name, column in {
        "timestamp_ns": stamps,
        "value": pa.nulls(count, pa.float64()),
        "string_value": pa.nulls(count, pa.string()),
        "state_code": pa.nulls(count, pa.int32()),
        "state_name": pa.nulls(count, pa.string()),
        "is_system": pa.repeat(False, count),
    }.items():
        copies = copies.set_column(copies.schema.get_field_index(name), name, column)
    return copies.cast(rows.schema)


def _append(table, rows: pa.Table) -> None:
    deltalake.write_deltalake(table.uri, rows, mode="append")
