"""Partitions of the PI time series: one UTC day x one tag shard.

* ``date``: daily, UTC, from ``OSIPI_START_DATE`` (default ``2024-01-01``) up to and including today
  (``end_offset=1``), so the open day can be materialized incrementally. The start is a fixed date, not
  "30 days ago": a moving start would change the partition set every day and orphan old materializations.
  Keep days x shards under Dagster's recommended 100,000 partitions per asset (16 shards from 2024-01-01
  is about 17,000 partitions by the end of 2026).
* ``shard``: static keys ``s00``, ``s01``, ... from ``OSIPI_TAG_SHARDS`` (default 16). A point belongs to
  the shard :func:`shard_of` computes from its stable identity, so adding or removing points never moves
  the others.

Changing the shard count re-assigns almost every point (``hash mod N`` changes with ``N``). Existing
Delta slices keep the rows written under the old assignment: re-materialize every day you care about
after the change (each run replaces its whole slice, so the old shard's rows of a re-materialized day are
replaced, and rows under old shard keys beyond the new count must be deleted by hand), and expect the
open day to be read again from the start of the day (watermarks are per shard). Pick the count once.

Multi-partition keys join the dimension values in alphabetical order of the dimension names:
``2025-01-06|s03`` (date, then shard).
"""

from __future__ import annotations

import hashlib
import os
from datetime import date

import dagster as dg

DEFAULT_START_DATE = "2024-01-01"
DEFAULT_TAG_SHARDS = 16
# Shard keys have two digits (s00..s99); more shards than that would also overflow Dagster's partition
# budget for any useful history.
MAX_TAG_SHARDS = 100


def start_date_from_env() -> str:
    """``OSIPI_START_DATE`` (``YYYY-MM-DD``), the first day of the time-series partitions."""
    value = os.environ.get("OSIPI_START_DATE", DEFAULT_START_DATE).strip()
    try:
        date.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(
            f"OSIPI_START_DATE={value!r} is not a date: set it as YYYY-MM-DD, e.g. 2024-01-01."
        ) from exc
    return value


def shard_count_from_env() -> int:
    """``OSIPI_TAG_SHARDS``, the number of tag shards (1 to ``MAX_TAG_SHARDS``)."""
    value = os.environ.get("OSIPI_TAG_SHARDS", str(DEFAULT_TAG_SHARDS)).strip()
    if not value.isdigit() or not 1 <= int(value) <= MAX_TAG_SHARDS:
        raise ValueError(f"OSIPI_TAG_SHARDS={value!r} must be a whole number from 1 to {MAX_TAG_SHARDS}.")
    return int(value)


def shard_keys(shard_count: int) -> list[str]:
    """The shard partition keys: ``s00`` .. ``s{shard_count - 1:02d}``."""
    _check_shard_count(shard_count)
    return [f"s{index:02d}" for index in range(shard_count)]


def shard_of(point_identity: str, shard_count: int) -> str:
    """The shard key of a point: a stable hash of its identity modulo ``shard_count``.

    ``point_identity`` must not change over the point's life: use the data server's id and the PI point
    id (e.g. ``"<server guid>:<point id>"``) or another id that survives renames, not the point's name or
    path (a rename would move it to another shard). The hash is BLAKE2b, identical in every process and
    Python version (Python's ``hash()`` of a string is randomized per process).
    """
    _check_shard_count(shard_count)
    digest = hashlib.blake2b(point_identity.encode("utf-8"), digest_size=8).digest()
    return f"s{int.from_bytes(digest, 'big') % shard_count:02d}"


def _check_shard_count(shard_count: int) -> None:
    if not 1 <= shard_count <= MAX_TAG_SHARDS:
        raise ValueError(f"The shard count must be from 1 to {MAX_TAG_SHARDS}, got {shard_count}.")


def split_partition_key(key: str | dg.MultiPartitionKey) -> tuple[str, str]:
    """``(date, shard)`` of a time-series partition key.

    Works for the ``MultiPartitionKey`` of a real run and for the plain ``"2025-01-06|s03"`` string that
    ``build_asset_context(partition_key=...)`` gives in unit tests.
    """
    dimensions = TIMESERIES_PARTITIONS.get_partition_key_from_str(str(key)).keys_by_dimension
    return dimensions["date"], dimensions["shard"]


DATE_PARTITIONS = dg.DailyPartitionsDefinition(start_date=start_date_from_env(), timezone="UTC", end_offset=1)
SHARD_PARTITIONS = dg.StaticPartitionsDefinition(shard_keys(shard_count_from_env()))
TIMESERIES_PARTITIONS = dg.MultiPartitionsDefinition({"date": DATE_PARTITIONS, "shard": SHARD_PARTITIONS})
