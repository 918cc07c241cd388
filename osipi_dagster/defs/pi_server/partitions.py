"""Partitions of one PI server's time series: one UTC day x one tag shard.

* ``date``: daily, UTC, from the server's ``start_date`` up to and including today (``end_offset=1``), so
  the open day can be materialized incrementally. The start is a fixed date, not "30 days ago": a moving
  start would change the partition set every day and orphan old materializations. Keep days x shards under
  Dagster's recommended 100,000 partitions per asset (16 shards from 2024-01-01 is about 17,000 partitions
  by the end of 2026).
* ``shard``: static keys ``s00``, ``s01``, ... (``tag_shards`` of them). A point belongs to the shard
  :func:`~osipi_dagster.ingest.shards.shard_of` computes from its stable identity, so adding or removing
  points never moves the others.

Changing the shard count re-assigns almost every point (``hash mod N`` changes with ``N``). Existing
Delta slices keep the rows written under the old assignment: re-materialize every day you care about
after the change (each run replaces its whole slice, so the old shard's rows of a re-materialized day are
replaced, and rows under old shard keys beyond the new count must be deleted by hand), and expect the
open day to be read again from the start of the day (watermarks are per shard). Pick the count once.

Multi-partition keys join the dimension values in alphabetical order of the dimension names:
``2025-01-06|s03`` (date, then shard).
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

from osipi_dagster.ingest.shards import shard_keys
from osipi_dagster.settings import PIServerSettings


@dataclass(frozen=True)
class ServerPartitions:
    """The partitions definitions of one PI server's assets."""

    dates: dg.DailyPartitionsDefinition
    shards: dg.StaticPartitionsDefinition
    timeseries: dg.MultiPartitionsDefinition

    @property
    def shard_keys(self) -> list[str]:
        return self.shards.get_partition_keys()


def server_partitions(server: PIServerSettings) -> ServerPartitions:
    """The date, shard and (date x shard) partitions of ``server``."""
    dates = dg.DailyPartitionsDefinition(
        start_date=server.start_date.isoformat(), timezone="UTC", end_offset=1
    )
    shards = dg.StaticPartitionsDefinition(shard_keys(server.tag_shards))
    return ServerPartitions(dates, shards, dg.MultiPartitionsDefinition({"date": dates, "shard": shards}))


def split_partition_key(key: str | dg.MultiPartitionKey) -> tuple[str, str]:
    """``(date, shard)`` of a time-series partition key.

    Works for the ``MultiPartitionKey`` of a real run and for the plain ``"2025-01-06|s03"`` string that
    ``build_asset_context(partition_key=...)`` gives in unit tests.
    """
    if isinstance(key, dg.MultiPartitionKey):
        dimensions = key.keys_by_dimension
        return dimensions["date"], dimensions["shard"]
    day, separator, shard = str(key).partition("|")
    if not separator or not day or not shard:
        raise ValueError(f"{key!r} is not a time-series partition key such as '2025-01-06|s03'.")
    return day, shard
