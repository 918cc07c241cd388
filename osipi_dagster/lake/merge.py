"""Upserts (Delta MERGE) by a key, for tables whose rows change after they are first written."""

from __future__ import annotations

import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
from deltalake.exceptions import CommitFailedError

from osipi_dagster.lake.errors import ConcurrentWriteError, InvalidRowsError
from osipi_dagster.lake.tables import LakeTable, conform, ensure_table, spec_of, sql_literal

# Concurrent MERGEs into the same files conflict; the loser re-reads the table and runs again.
MERGE_ATTEMPTS = 8
_BACKOFF_SECONDS = 0.2


@dataclass(frozen=True)
class MergeResult:
    """What one committed MERGE did, for logs and Dagster metadata."""

    table: str
    version: int
    rows_inserted: int
    rows_updated: int
    attempts: int
    duration_seconds: float


def merge_rows(
    table: LakeTable,
    rows: pa.Table | pa.RecordBatch,
    *,
    key: Sequence[str] | None = None,
    target_partition: Mapping[str, str] | None = None,
    update_condition: str | None = None,
) -> MergeResult:
    """Upsert ``rows`` into ``table`` by ``key`` in one atomic commit: update matches, insert the rest.

    Args:
        rows: every column of the table's spec (cast to its types).
        key: the columns identifying a row; defaults to the spec's key. Must be unique in ``rows``.
        target_partition: partition values every row shares (e.g. ``{"tag_shard": "s03"}``); added to the
            MERGE predicate so only that partition is read and rewritten, and MERGEs of other partitions
            never conflict with this one.
        update_condition: an SQL condition on ``s`` (the new row) and ``t`` (the stored row); a matched
            row is updated only when it holds (e.g. ``"s.read_until >= t.read_until"``).

    A commit conflict with a concurrent writer is retried on the new table version, up to
    ``MERGE_ATTEMPTS`` times, then raises :class:`ConcurrentWriteError`.
    """
    started = time.perf_counter()
    spec = spec_of(table)
    delta_table = ensure_table(table)
    key_columns = list(key or spec.key)
    if not key_columns:
        raise ValueError(
            f"Table {table.name} has no key: pass key=[...] naming the columns that identify a row."
        )
    source = conform(
        pa.table(rows) if isinstance(rows, pa.RecordBatch) else rows, spec.schema, what=f"Rows for {table}"
    )
    _check_unique(source, key_columns, table)
    for column, value in (target_partition or {}).items():
        if pc.any(pc.not_equal(source.column(column), value)).as_py():
            raise InvalidRowsError(
                f"Rows for {table} must all have {column} = {value!r} (target_partition), but some do not."
            )
    predicate = " AND ".join(
        [f"t.{column} = {sql_literal(value)}" for column, value in (target_partition or {}).items()]
        + [f"t.{column} = s.{column}" for column in key_columns]
    )
    attempt = 0
    while source.num_rows:
        attempt += 1
        try:
            metrics = (
                delta_table.merge(source, predicate=predicate, source_alias="s", target_alias="t")
                .when_matched_update_all(predicate=update_condition)
                .when_not_matched_insert_all()
                .execute()
            )
        except CommitFailedError as exc:
            if attempt >= MERGE_ATTEMPTS:
                raise ConcurrentWriteError(
                    f"MERGE into {table} conflicted with concurrent writers {attempt} times in a row "
                    f"({exc}). Reduce the number of runs writing this table at once, then re-run."
                ) from exc
            time.sleep(_BACKOFF_SECONDS * attempt * random.uniform(0.5, 1.5))
            delta_table = table.load()
            continue
        return MergeResult(
            table=table.name,
            version=delta_table.version(),
            rows_inserted=int(metrics["num_target_rows_inserted"]),
            rows_updated=int(metrics["num_target_rows_updated"]),
            attempts=attempt,
            duration_seconds=time.perf_counter() - started,
        )
    # Nothing to merge: no commit, so an empty run does not add a version.
    return MergeResult(table.name, delta_table.version(), 0, 0, 0, time.perf_counter() - started)


def _check_unique(rows: pa.Table, key: list[str], table: LakeTable) -> None:
    counts = rows.group_by(key).aggregate([([], "count_all")])
    duplicated = counts.filter(pc.greater(counts.column("count_all"), 1))
    if duplicated.num_rows:
        example = {column: duplicated.column(column)[0].as_py() for column in key}
        raise InvalidRowsError(
            f"{duplicated.num_rows} key(s) appear more than once in the rows for {table} (key {key}), e.g. "
            f"{example}. A MERGE needs one row per key: deduplicate first (keep the latest version)."
        )
