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

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime

import dagster as dg

from osipi_dagster.ingest.shards import shard_keys
from osipi_dagster.settings import PIServerSettings

TIMESERIES_PARTITION = "one UTC day x one tag shard; key `date|shard`, e.g. `2025-01-06|s03`"
DATE_PARTITION = "one UTC day; key `YYYY-MM-DD`, e.g. `2025-01-06`"


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


def not_begun(keys: Iterable[str | dg.MultiPartitionKey], now: datetime) -> None:
    """Fail, writing nothing, if a partition's UTC day has not begun at ``now`` (the PI server's time).

    Dagster offers today's partition by this host's clock; a PI server behind it (clock skew, a mock with a
    fixed clock) has no data for it yet, and a run that read nothing would show the partition as
    materialized."""
    days = sorted({_day_of(key) for key in keys})
    early = [day for day in days if datetime.combine(day, datetime.min.time(), UTC) >= now]
    if early:
        raise dg.Failure(
            description=f"The partition day(s) {', '.join(d.isoformat() for d in early)} have not begun on "
            f"the PI server, whose clock reads {now.isoformat()}: nothing was read or written. Materialize "
            "them once the PI server's clock has reached them (check the PI server's time if this host's "
            "clock is right)."
        )


def _day_of(key: str | dg.MultiPartitionKey) -> date:
    text = str(key)
    return date.fromisoformat(split_partition_key(key)[0] if "|" in text else text)
