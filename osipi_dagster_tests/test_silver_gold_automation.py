"""Silver and gold follow bronze on their own: the automation conditions of ``pi_timeseries_clean`` and
``pi_timeseries_hourly`` (``defs/pi_server/derived.py``, ``follows_upstream``) evaluated tick by tick with
``dg.evaluate_automation_conditions`` on a real instance (``dg.instance_for_test``), after real
materializations of ``pi_timeseries`` against the mock over HTTP into real Delta tables. What a tick requests
is then materialized as the automation sensor's runs would, one partition a run.

Bronze carries a blocking check defined here, partitioned like it, whose verdict per partition comes from the
run config; it logs one ``AssetCheckEvaluation`` per partition aimed at the partition's latest
materialization, as the project's checks do (``defs/pi_server/checks.py``).
"""

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,
)

from osipi_dagster.defs.pi_server import server_assets
from osipi_dagster.defs.pi_server.partitions import server_partitions
from osipi_dagster.defs.resources import DeltaLakehouseResource
from osipi_dagster.settings import PIServerSettings
from osipi_dagster_tests.timeseries_helpers import resources

pytestmark = pytest.mark.slow
SETTINGS = PIServerSettings(tag_shards=2, start_date=date(2025, 1, 4))
ASSETS = server_assets(SETTINGS)
PARTITIONS = server_partitions(SETTINGS).timeseries
BRONZE, SILVER, GOLD = ASSETS.timeseries.key, ASSETS.silver.key, ASSETS.gold.key
# The mock's clock is 2025-01-06T12:00Z (conftest.TEST_NOW): the 4th and 5th are closed, the 6th is open.
FIRST_TICK = datetime(2025, 1, 6, 12, 1, tzinfo=UTC)
CHECK = "test_verdict"


@dg.multi_asset_check(
    specs=[dg.AssetCheckSpec(CHECK, asset=BRONZE, partitions_def=PARTITIONS, blocking=True)],
    can_subset=True,
    config_schema={"failing": dg.Field([str], default_value=[])},
)
def bronze_verdict(context: dg.AssetCheckExecutionContext) -> Iterable[dg.AssetCheckResult]:
    """A blocking check of every bronze partition of the run: failed for those in the config's ``failing``."""
    failing = set(context.op_execution_context.op_config["failing"])
    for key in context.partition_keys:
        (record,) = context.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=BRONZE, asset_partitions=[key]), limit=1
        ).records
        context.op_execution_context.log_event(
            dg.AssetCheckEvaluation(
                asset_key=BRONZE,
                check_name=CHECK,
                passed=key not in failing,
                severity=dg.AssetCheckSeverity.ERROR,
                blocking=True,
                partition=key,
                target_materialization_data=AssetCheckEvaluationTargetMaterializationData(
                    storage_id=record.storage_id, run_id=record.run_id, timestamp=record.timestamp
                ),
            )
        )
    yield from ()


def definitions(assets, resources: dict[str, object], checks: list | None = None) -> dg.Definitions:
    """The catalog, bronze, silver and gold of ``assets`` (the resources only satisfy the definitions:
    evaluating conditions runs nothing)."""
    return dg.Definitions(
        assets=[assets.af, assets.points, assets.timeseries, assets.silver, assets.gold],
        asset_checks=checks,
        resources=resources,
    )


@dataclass
class Automation:
    """The automation sensor's ticks over one instance, one minute apart, and the runs they ask for."""

    instance: dg.DagsterInstance
    resources: dict[str, object]
    cursor: object = None
    ticks: int = 0
    requested: dict[dg.AssetKey, set[str]] = field(default_factory=dict)

    def tick(self) -> dict[str, set[str]]:
        """Evaluate the conditions once; what silver and gold are requested for, by partition key."""
        result = dg.evaluate_automation_conditions(
            defs=definitions(ASSETS, self.resources, [bronze_verdict]),
            instance=self.instance,
            evaluation_time=FIRST_TICK + timedelta(minutes=self.ticks),
            cursor=self.cursor,
        )
        self.ticks += 1
        self.cursor = result.cursor
        self.requested = {
            key: {str(p) for p in result.get_requested_partitions(key)} for key in (SILVER, GOLD)
        }
        return {"silver": self.requested[SILVER], "gold": self.requested[GOLD]}

    def run_requested(self) -> None:
        """Materialize what the last tick requested: silver before gold, one partition a run."""
        for asset in (ASSETS.silver, ASSETS.gold):
            for key in sorted(self.requested[asset.key]):
                self.materialize([asset], key)

    def bronze(self, *keys: str, failing: tuple[str, ...] = (), checked: bool = True) -> None:
        """``pi_timeseries`` of ``keys`` from the mock, with the blocking check (failed for ``failing``)
        unless ``checked`` is false."""
        for key in keys:
            config = {"ops": {"bronze_verdict": {"config": {"failing": list(failing)}}}} if checked else None
            self.materialize([ASSETS.timeseries, *([bronze_verdict] if checked else [])], key, config)

    def catalog(self) -> None:
        assert dg.materialize(
            [ASSETS.af, ASSETS.points], resources=self.resources, instance=self.instance
        ).success

    def materialize(self, assets: list, key: str, run_config: dict | None = None) -> None:
        result = dg.materialize(
            assets, partition_key=key, resources=self.resources, instance=self.instance, run_config=run_config
        )
        assert result.success, key


NOTHING = {"silver": set(), "gold": set()}


def test_silver_then_gold_follow_new_and_corrected_bronze_unless_a_blocking_check_failed(
    make_mock, tmp_path: Path
) -> None:
    mock = make_mock(tags=12)
    with dg.instance_for_test() as instance:
        automation = Automation(instance, resources(mock.api, tmp_path / "lake"))
        automation.catalog()
        assert automation.tick() == NOTHING, "the first evaluation only starts the cursor"

        # (a) new bronze partitions; (d) a failed blocking check, and one never checked, hold theirs back.
        automation.bronze("2025-01-04|s00", "2025-01-05|s00", "2025-01-06|s00", "2025-01-06|s01")
        automation.bronze("2025-01-05|s01", failing=("2025-01-05|s01",))
        automation.bronze("2025-01-04|s01", checked=False)
        assert automation.tick() == {
            "silver": {"2025-01-04|s00", "2025-01-05|s00", "2025-01-06|s00", "2025-01-06|s01"},
            "gold": set(),
        }
        automation.run_requested()
        # Gold needs silver of the day before and after (none after the newest day): s01 lacks the 4th, 5th.
        assert automation.tick() == {
            "silver": set(),
            "gold": {"2025-01-04|s00", "2025-01-05|s00", "2025-01-06|s00"},
        }
        automation.run_requested()
        assert automation.tick() == NOTHING

        # (c) a catalog refresh alone requests nothing.
        automation.catalog()
        assert automation.tick() == NOTHING

        # (b) a late correction of a closed, older day: silver of that day, then gold of it and the day after.
        automation.bronze("2025-01-04|s00")
        assert automation.tick() == {"silver": {"2025-01-04|s00"}, "gold": set()}
        automation.run_requested()
        assert automation.tick() == {"silver": set(), "gold": {"2025-01-04|s00", "2025-01-05|s00"}}
        automation.run_requested()
        assert automation.tick() == NOTHING

        # (d) once the failed check passes, the partition flows through; the unchecked one still waits.
        automation.bronze("2025-01-05|s01")
        assert automation.tick() == {"silver": {"2025-01-05|s01"}, "gold": set()}
        automation.run_requested()
        assert automation.tick() == {"silver": set(), "gold": {"2025-01-06|s01"}}


# A silver run held in progress: its step waits in the lakehouse resource until the test releases it.
_ENTERED, _RELEASE = threading.Event(), threading.Event()


class HeldLakehouse(DeltaLakehouseResource):
    """The lakehouse; a step that opens it waits for ``_RELEASE`` (after setting ``_ENTERED``)."""

    def lakehouse(self, table_prefix: str = ""):
        _ENTERED.set()
        assert _RELEASE.wait(120), "the test never released the held run"
        return super().lakehouse(table_prefix)


def test_a_partition_in_progress_is_not_requested_again_and_an_update_during_its_run_is_not_lost(
    make_mock, tmp_path: Path
) -> None:
    mock = make_mock(tags=12)
    key = "2025-01-05|s00"
    with dg.instance_for_test() as instance:
        automation = Automation(instance, resources(mock.api, tmp_path / "lake"))
        automation.catalog()
        automation.tick()
        automation.bronze(key)
        assert automation.tick()["silver"] == {key}
        held = {**automation.resources, "lakehouse": HeldLakehouse(root=str(tmp_path / "lake"))}
        run = threading.Thread(
            target=lambda: dg.materialize(
                [ASSETS.silver], partition_key=key, resources=held, instance=instance
            )
        )
        run.start()
        try:
            assert _ENTERED.wait(120)
            assert automation.tick() == NOTHING, "requested once, in progress"
            automation.bronze(key)  # bronze changes while silver's run is in progress
            assert automation.tick() == NOTHING, "still in progress"
        finally:
            _RELEASE.set()
            run.join(120)
        assert automation.tick()["silver"] == {key}, "the update during the run gets its own run"
        automation.run_requested()
        assert automation.tick()["silver"] == set()


def test_the_first_evaluation_with_a_long_history_requests_nothing(tmp_path: Path) -> None:
    """Three months of bronze partitions already materialized (reported to the instance) and no silver yet:
    the first ticks request nothing (history is a backfill's job), and the next new partition only itself."""
    settings = PIServerSettings(tag_shards=2, start_date=date(2024, 10, 1))
    assets = server_assets(settings)
    defs = definitions(assets, resources("http://127.0.0.1:9/piwebapi", tmp_path))
    keys = server_partitions(settings).timeseries.get_partition_keys(
        current_time=datetime(2025, 1, 6, 12, tzinfo=UTC)
    )
    history = [key for key in keys if not key.startswith("2025-01-06")]
    assert len(history) == 2 * 97  # 2024-10-01 .. 2025-01-05, two shards
    with dg.instance_for_test() as instance:
        for key in ("pi_af_hierarchy", "pi_af_attributes", "pi_points"):
            instance.report_runless_asset_event(dg.AssetMaterialization(key))
        for key in history:
            instance.report_runless_asset_event(dg.AssetMaterialization(BRONZE, partition=key))
        cursor = None
        for minutes in (1, 2):
            result = dg.evaluate_automation_conditions(
                defs=defs,
                instance=instance,
                evaluation_time=FIRST_TICK + timedelta(minutes=minutes),
                cursor=cursor,
            )
            assert result.total_requested == 0
            cursor = result.cursor
        instance.report_runless_asset_event(dg.AssetMaterialization(BRONZE, partition="2025-01-06|s00"))
        result = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, evaluation_time=FIRST_TICK + timedelta(minutes=3), cursor=cursor
        )
        assert {str(p) for p in result.get_requested_partitions(SILVER)} == {"2025-01-06|s00"}
        assert result.total_requested == 1
