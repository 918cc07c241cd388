"""``pi_lake_maintenance_job`` through Dagster on a real lakehouse shared by two servers: each server's job
vacuums its own tables only, reports what it deleted in the step's metadata, and leaves every table's
current rows as they were. Removals are aged in the log (``test_lake_maintenance.age_removals``: an hour
cannot pass in a test)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from osipi_dagster.definitions import build_definitions
from osipi_dagster.lake import Lakehouse, overwrite_table, read_table
from osipi_dagster.lake.schemas import AF_HIERARCHY
from osipi_dagster.settings import LakeSettings, PIServerSettings
from osipi_dagster_tests.test_lake_maintenance import age_removals, hierarchy_rows, parquet_files


def test_each_servers_job_vacuums_its_own_tables(tmp_path: Path) -> None:
    servers = [
        PIServerSettings(base_url="http://127.0.0.1:9/piwebapi"),
        PIServerSettings(name="site_b", base_url="http://127.0.0.1:9/piwebapi", vacuum_retention_hours=24),
    ]
    defs = build_definitions(LakeSettings(root=str(tmp_path)), servers)
    tables = [Lakehouse(str(tmp_path), table_prefix=s.table_prefix).table(AF_HIERARCHY.name) for s in servers]
    for table in tables:
        for names in (["A"], ["A", "B"], ["A", "B", "C"]):
            overwrite_table(table, hierarchy_rows(names))
        age_removals(table, hours=200)
    rows = [read_table(table) for table in tables]

    with dg.instance_for_test() as instance:
        result = defs.get_job_def("site_b__pi_lake_maintenance_job").execute_in_process(instance=instance)

    assert result.success
    metadata = {
        key: value.value
        for event in result.all_events
        if event.is_successful_output
        for key, value in event.step_output_data.metadata.items()
    }
    assert metadata["files_deleted"] == 2 and metadata["tables_vacuumed"] == 1
    assert metadata["retention_hours"] == 24
    assert metadata["files_deleted_per_table"] == {"bronze.site_b__pi_af_hierarchy": 2}
    assert [len(parquet_files(table)) for table in tables] == [3, 1]  # the default server's untouched
    assert [read_table(table) for table in tables] == rows
    schedule = defs.get_schedule_def("site_b__pi_lake_maintenance_daily")
    assert (
        schedule.cron_schedule == "30 5 * * *" and schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    )
