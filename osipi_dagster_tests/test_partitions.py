"""Partitions: key format, configuration, and a stable, balanced shard assignment."""

from __future__ import annotations

import collections
import subprocess
import sys

import dagster as dg
import pytest

from osipi_dagster.defs.pi_server.partitions import server_partitions, split_partition_key
from osipi_dagster.ingest.shards import MAX_TAG_SHARDS, shard_keys, shard_of
from osipi_dagster.settings import PIServerSettings

PARTITIONS = server_partitions(PIServerSettings())


def test_keys_are_date_then_shard_and_today_is_included() -> None:
    keys = PARTITIONS.timeseries.get_partition_keys()
    today = dg.DailyPartitionsDefinition(start_date="2024-01-01", timezone="UTC", end_offset=1)
    assert keys[0] == "2024-01-01|s00" and keys[15] == "2024-01-01|s15"
    assert PARTITIONS.dates.get_last_partition_key() == today.get_last_partition_key()
    assert split_partition_key("2025-01-06|s03") == ("2025-01-06", "s03")
    assert split_partition_key(dg.MultiPartitionKey({"date": "2025-01-06", "shard": "s03"})) == (
        "2025-01-06",
        "s03",
    )


def test_shard_assignment_is_stable_across_processes() -> None:
    identities = [f"server-guid:{point_id}" for point_id in range(20)]
    here = [shard_of(identity, 16) for identity in identities]
    code = (
        f"from osipi_dagster.ingest.shards import shard_of; print([shard_of(i, 16) for i in {identities!r}])"
    )

    there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout

    assert repr(here) == there.strip()
    assert shard_of("server-guid:1", 16) == shard_of("server-guid:1", 16)


def test_shards_are_balanced_and_adding_points_moves_none() -> None:
    existing = {f"guid:{point_id}": shard_of(f"guid:{point_id}", 16) for point_id in range(16_000)}
    counts = collections.Counter(existing.values())

    assert set(counts) == set(shard_keys(16))
    assert max(counts.values()) < 1.1 * 1000 and min(counts.values()) > 0.9 * 1000
    # New points are assigned on their own identity: every existing point keeps its shard.
    assert all(shard_of(identity, 16) == shard for identity, shard in existing.items())


def test_partitions_follow_the_server_settings() -> None:
    partitions = server_partitions(PIServerSettings(tag_shards=4, start_date="2023-06-01"))
    assert partitions.shard_keys == ["s00", "s01", "s02", "s03"] == shard_keys(4)
    assert partitions.dates.get_first_partition_key() == "2023-06-01"
    with pytest.raises(ValueError, match="from 1 to 100"):
        shard_of("x", MAX_TAG_SHARDS + 1)
    with pytest.raises(ValueError, match="not a time-series partition key"):
        split_partition_key("2025-01-06")
