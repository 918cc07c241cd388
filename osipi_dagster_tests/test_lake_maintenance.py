"""Vacuum (``lake/maintenance.py``) on real Delta tables: it deletes the files older versions used once their
removal is older than the retention, never a file of the current version, and nothing younger.

An hour cannot pass in a test: :func:`age_removals` rewrites the ``deletionTimestamp`` of the table's
``remove`` actions in its log (the one field VACUUM reads to date a removal), as if they had been committed
``hours`` earlier. Everything else is delta-rs on a real table.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from osipi_dagster.lake import Lakehouse, LakeTable, overwrite_table, read_table, replace_slice
from osipi_dagster.lake.maintenance import InvalidRetentionError, vacuum_table
from osipi_dagster.lake.schemas import AF_HIERARCHY
from osipi_dagster.lake.streaming import claim_id
from osipi_dagster.lake.tables import CLAIM_RETENTION
from osipi_dagster_tests.lake_helpers import DAY, NEXT_DAY, hourly


def hierarchy_rows(names: list[str]) -> pa.Table:
    return pa.Table.from_pylist(
        [
            {
                "web_id": f"E{name}",
                "parent_web_id": None,
                "name": name,
                "path": f"\\\\AF\\DB\\{name}",
                "depth": 0,
                "template_name": "",
                "category_names": [],
                "description": "",
                "database_web_id": "D1",
            }
            for name in names
        ],
        schema=pa.schema([field for field in AF_HIERARCHY.schema if field.name != "ingested_at"]),
    )


def age_removals(table: LakeTable, hours: float, before_version: int | None = None) -> int:
    """Date every ``remove`` action of ``table``'s log (of the commits before ``before_version``) ``hours``
    earlier; the number of actions aged."""
    aged = 0
    for log in sorted(Path(table.uri, "_delta_log").glob("*.json")):
        if before_version is not None and int(log.stem) >= before_version:
            continue
        lines = []
        for line in log.read_text().splitlines():
            action = json.loads(line)
            if "remove" in action:
                action["remove"]["deletionTimestamp"] -= int(hours * 3_600_000)
                aged += 1
            lines.append(json.dumps(action))
        log.write_text("\n".join(lines) + "\n")
    return aged


def parquet_files(table: LakeTable) -> set[str]:
    """The table's data files on disk (the log's checkpoints are Parquet files too)."""
    return {path.name for path in Path(table.uri).rglob("*.parquet") if "_delta_log" not in path.parts}


def refreshed_three_times(root: Path) -> LakeTable:
    table = Lakehouse(str(root)).table(AF_HIERARCHY.name)
    for names in (["A"], ["A", "B"], ["A", "B", "C"]):
        overwrite_table(table, hierarchy_rows(names))
    return table


def test_files_removed_longer_ago_than_the_retention_are_deleted_and_the_table_is_unchanged(
    tmp_path: Path,
) -> None:
    table = refreshed_three_times(tmp_path)
    rows = read_table(table)
    current = {Path(path).name for path in table.load().file_uris()}
    assert len(parquet_files(table)) == 3 and len(current) == 1
    assert age_removals(table, hours=200) == 2  # older than the table's tombstone retention (a week)

    result = vacuum_table(table, retention_hours=1)

    assert result is not None and result.files_deleted == 2 and result.table == table.name
    assert parquet_files(table) == current
    assert read_table(table) == rows
    assert (
        vacuum_table(table, retention_hours=1).files_deleted == 0
    )  # counted once: the checkpoint forgot them


def test_files_removed_within_the_retention_are_kept(tmp_path: Path) -> None:
    table = refreshed_three_times(tmp_path)
    age_removals(table, hours=2)

    result = vacuum_table(table, retention_hours=3)

    assert result is not None and result.files_deleted == 0
    assert len(parquet_files(table)) == 3
    first = table.load()
    first.load_as_version(1)  # time travel within the retention still reads the first write's rows
    assert first.to_pyarrow_table(columns=["name"]).column("name").to_pylist() == ["A"]


def test_partition_claims_older_than_a_week_leave_the_log_at_the_maintenance_checkpoint(
    tmp_path: Path,
) -> None:
    """Each write of a partition claims it (a Delta application transaction: lake/streaming.py); a claim
    older than ``CLAIM_RETENTION`` is dropped at the checkpoint the maintenance writes, the others stay."""
    table = Lakehouse(str(tmp_path)).table("bronze.pi_timeseries")
    for day in (DAY, NEXT_DAY):
        replace_slice(table, [hourly(["A"], day=day)], partition_date=day, tag_shard="s00")
    old, recent = (
        claim_id(table, {"partition_date": day.isoformat(), "tag_shard": "s00"}) for day in (DAY, NEXT_DAY)
    )
    assert None not in (table.load().transaction_version(old), table.load().transaction_version(recent))
    age_claim(table, old, hours=8 * 24)

    vacuum_table(table, retention_hours=1)

    assert table.load().transaction_version(old) is None
    assert table.load().transaction_version(recent) is not None


def test_the_maintenance_gives_a_table_from_before_the_claims_their_retention(tmp_path: Path) -> None:
    table = Lakehouse(str(tmp_path)).table(AF_HIERARCHY.name)
    DeltaTable.create(table.uri, AF_HIERARCHY.schema)  # as ensure_table created tables before the claims
    assert CLAIM_RETENTION.items() - table.load().metadata().configuration.items()

    vacuum_table(table, retention_hours=1)

    assert CLAIM_RETENTION.items() <= table.load().metadata().configuration.items()


def age_claim(table: LakeTable, claim: str, hours: float) -> None:
    """Date ``claim``'s application transactions in ``table``'s log ``hours`` earlier."""
    for log in sorted(Path(table.uri, "_delta_log").glob("*.json")):
        actions = [json.loads(line) for line in log.read_text().splitlines()]
        for action in actions:
            if action.get("txn", {}).get("appId") == claim:
                action["txn"]["lastUpdated"] -= int(hours * 3_600_000)
        log.write_text("\n".join(map(json.dumps, actions)) + "\n")


def test_a_retention_under_an_hour_is_refused_and_a_missing_table_is_skipped(tmp_path: Path) -> None:
    table = refreshed_three_times(tmp_path)
    age_removals(table, hours=2)
    started = time.time()
    with pytest.raises(InvalidRetentionError, match="use at least 1 hour"):
        vacuum_table(table, retention_hours=0)
    assert len(parquet_files(table)) == 3
    assert time.time() - started < 5
    assert vacuum_table(Lakehouse(str(tmp_path)).table("bronze.pi_points"), retention_hours=1) is None
