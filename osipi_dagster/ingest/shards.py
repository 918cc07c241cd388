"""Tag shards: a point's shard is a stable hash of its identity, so adding or removing points moves no other.

Shard keys are ``s00``, ``s01``, ... (two digits: plain ASCII, usable as a Dagster partition key and a Delta
partition folder name). Changing the shard count re-assigns almost every point (``hash mod N`` changes with
``N``): pick it once (docs/CONFIGURATION.md says what a change means for existing tables).
"""

from __future__ import annotations

import hashlib

# Two-digit keys (s00..s99); more shards than that would also overflow Dagster's partition budget for any
# useful history.
MAX_TAG_SHARDS = 100


def shard_keys(shard_count: int) -> list[str]:
    """The shard keys: ``s00`` .. ``s{shard_count - 1:02d}``."""
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
