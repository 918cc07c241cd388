"""``bronze.pi_timeseries_live``: streamed values appended exactly once, and the query surface that puts
them together with the batch table (docs/STREAMING.md).

**Exactly once.** A streaming writer numbers its micro-batches and commits each with a Delta transaction
identifier (``txn``: its ``app_id`` and the batch number as ``version``) in the same commit as the rows. The
table's ``txn`` version for an ``app_id`` is therefore the last batch that writer committed: before each
attempt :func:`append_batch` reads it and does not commit a batch it already holds, so a retry after an
ambiguous failure (the commit landed, its answer was lost) writes nothing twice, and a restarted writer
continues from the next number. A commit that loses to a concurrent writer (``CommitFailedError``) is
attempted again on the new version of the table, up to ``COMMIT_ATTEMPTS`` times; then
:class:`~osipi_dagster.lake.errors.ConcurrentWriteError` is raised and nothing is lost (the caller keeps the
rows).

**Each value once.** A value is identified by :data:`IDENTITY` (the point, its exact timestamp and the
value with its flags: PI may hold several values at one timestamp). The writer drops rows whose identity
it committed before (:func:`identities` reads them back after a restart), so overlapping reads (a gap
filled by a recorded read while the channel already sends) are committed once.

**Query surface.** :func:`read_values` answers a time range from the batch table
(``bronze.pi_timeseries``) for each closed day it holds, and from the live table for the other days (today,
and closed days no batch run wrote yet): after the closed-day run, each value is read once, from the batch.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from deltalake.exceptions import CommitFailedError

from osipi_dagster.contract import RECORDED_SCHEMA
from osipi_dagster.lake.errors import ConcurrentWriteError
from osipi_dagster.lake.schemas import LIVE_TIMESERIES, UTC_NS, UTC_US
from osipi_dagster.lake.tables import LakeTable, ensure_table, utc_now
from osipi_dagster.lake.timeseries import restore_exact_timestamps

COMMIT_ATTEMPTS = 20
STREAM_KEY, BATCH_KEY = "osipi.stream", "osipi.batch_version"  # in the commit info of every micro-batch
_BACKOFF_S = 0.05
IDENTITY = ("web_id", "timestamp_ns", "value_key")
IDENTITY_SCHEMA = pa.schema(
    [("web_id", pa.string()), ("timestamp_ns", pa.int64()), ("value_key", pa.string())]
)
_FLAGS = ("good", "questionable", "substituted", "annotated")
#: What a streaming writer gives :func:`append_batch`: recorded values and when each was received.
STREAM_ROWS_SCHEMA = pa.schema([*RECORDED_SCHEMA, pa.field("received_at", UTC_NS, nullable=False)])
#: What :func:`read_values` answers: recorded values and where each was read from (``batch`` or ``live``).
QUERY_SCHEMA = pa.schema([*RECORDED_SCHEMA, pa.field("source", pa.string(), nullable=False)])


def committed_version(table: LakeTable, app_id: str) -> int | None:
    """The last micro-batch number ``app_id`` committed to ``table``; None if it never did."""
    if not table.exists():
        return None
    return table.load().transaction_version(app_id)


def value_keys(rows: pa.Table) -> pa.Array:
    """Per row, the value and its flags as one string (with ``web_id`` and ``timestamp_ns``, a value's
    identity)."""
    parts = [
        pc.cast(rows.column("value"), pa.string()),
        rows.column("string_value"),
        pc.cast(rows.column("state_code"), pa.string()),
    ]
    flags = [pc.cast(pc.cast(rows.column(name), pa.int8()), pa.string()) for name in _FLAGS]
    texts = [pc.fill_null(part, "") for part in parts] + flags
    return pc.binary_join_element_wise(*texts, "|")


def with_identity(rows: pa.Table) -> pa.Table:
    """``rows`` (with ``timestamp_ns``) plus their ``value_key``."""
    return rows.append_column("value_key", value_keys(rows))


def unseen(rows: pa.Table, seen: pa.Table) -> pa.Table:
    """The rows of ``rows`` (with :data:`IDENTITY` columns) whose identity is in neither ``seen`` nor an
    earlier row of ``rows``."""
    numbered = rows.append_column("_row", pa.array(np.arange(rows.num_rows), pa.int64()))
    first = numbered.group_by(list(IDENTITY), use_threads=False).aggregate([("_row", "min")])
    kept = numbered.take(pc.take(first.column("_row_min"), pc.array_sort_indices(first.column("_row_min"))))
    if seen.num_rows and kept.num_rows:
        # Only identities from the batch's first timestamp on can match: the hash table stays small.
        first_ns = pc.min(kept.column("timestamp_ns"))
        candidates = seen.filter(pc.greater_equal(seen.column("timestamp_ns"), first_ns))
        kept = kept.join(identity_of(candidates), list(IDENTITY), join_type="left anti", use_threads=False)
    return kept.drop_columns(["_row"])


def identities(table: LakeTable, since_ns: int, web_ids: Collection[str] | None = None) -> pa.Table:
    """The :data:`IDENTITY` of every row of ``table`` stamped at or after ``since_ns`` (of ``web_ids``)."""
    if not table.exists():
        return IDENTITY_SCHEMA.empty_table()
    return identity_of(with_identity(_scan(table, since_ns, web_ids)))


def identity_of(rows: pa.Table) -> pa.Table:
    """The :data:`IDENTITY` columns of ``rows`` (with ``value_key``), as ``IDENTITY_SCHEMA``."""
    return rows.select(list(IDENTITY)).cast(IDENTITY_SCHEMA)


def last_timestamps(table: LakeTable, since_ns: int) -> dict[str, int]:
    """Per point, the latest ``timestamp_ns`` in ``table`` at or after ``since_ns``."""
    if not table.exists():
        return {}
    rows = _scan(table, since_ns).select(["web_id", "timestamp_ns"])
    latest = rows.group_by("web_id").aggregate([("timestamp_ns", "max")])
    return dict(zip(latest["web_id"].to_pylist(), latest["timestamp_ns_max"].to_pylist(), strict=True))


def _scan(table: LakeTable, since_ns: int, web_ids: Collection[str] | None = None) -> pa.Table:
    first_day = datetime.fromtimestamp(since_ns // 1_000_000_000, UTC).date()
    dataset = table.load().to_pyarrow_dataset()
    expression = (ds.field("partition_date") >= pa.scalar(first_day, pa.date32())) & (
        ds.field("timestamp_ns") >= since_ns
    )
    if web_ids is not None:
        expression &= ds.field("web_id").isin(sorted(web_ids))
    return dataset.to_table(filter=expression)


def lake_rows(rows: pa.Table, version: int) -> pa.Table:
    """Stream rows (``STREAM_ROWS_SCHEMA``) as rows of the live table, committed by batch ``version``."""
    exact_ns = rows.column("timestamp").cast(pa.int64())
    columns = {name: rows.column(name) for name in RECORDED_SCHEMA.names}
    columns["timestamp"] = pa.array(np.floor_divide(exact_ns.to_numpy(), 1000), UTC_US)
    columns["timestamp_ns"] = exact_ns
    received_ns = rows.column("received_at").cast(pa.int64()).to_numpy()
    columns["received_at"] = pa.array(np.floor_divide(received_ns, 1000), UTC_US)
    columns["batch_version"] = pa.repeat(pa.scalar(version, pa.int64()), rows.num_rows)
    days = pc.cast(pc.cast(rows.column("timestamp"), UTC_NS), pa.date32())
    columns["partition_date"] = days
    columns["ingested_at"] = pa.repeat(pa.scalar(utc_now(), UTC_US), rows.num_rows)
    schema = LIVE_TIMESERIES.schema
    return pa.Table.from_arrays([columns[name] for name in schema.names], schema=schema)


def append_batch(
    table: LakeTable,
    rows: pa.Table,
    app_id: str,
    version: int,
    metadata: Mapping[str, str] | None = None,
    delta_table: DeltaTable | None = None,
) -> bool:
    """Commit ``rows`` (live-table rows) as micro-batch ``version`` of ``app_id``, exactly once: False when
    the table already holds that batch (nothing written). ``metadata`` goes into the commit's info (read
    back by :func:`stream_commits`). A writer that commits often passes the ``delta_table`` it opened
    (``ensure_table``): it is brought up to date from the log's new entries instead of read again. Raises
    ConcurrentWriteError after ``COMMIT_ATTEMPTS`` commits lost to concurrent writers."""
    for attempt in range(COMMIT_ATTEMPTS):
        if delta_table is None:
            delta_table = ensure_table(table)
        else:
            delta_table.update_incremental()
        done = delta_table.transaction_version(app_id)
        if done is not None and done >= version:
            return False
        properties = CommitProperties(
            app_transactions=[Transaction(app_id, version)],
            custom_metadata={**(metadata or {}), STREAM_KEY: app_id, BATCH_KEY: str(version)},
            max_commit_retries=0,  # a lost commit is retried here, after checking the txn version again
        )
        try:
            write_deltalake(delta_table, rows, mode="append", commit_properties=properties)
            return True
        except CommitFailedError:
            time.sleep(_BACKOFF_S * (attempt + 1))
    raise ConcurrentWriteError(
        f"Micro-batch {version} of {app_id} lost {COMMIT_ATTEMPTS} commits of {table} to concurrent writers; "
        "nothing of it was committed and the stream keeps its rows to try again."
    )


def compact_days(table: LakeTable, days: Collection[date]) -> dict[str, int]:
    """Bin-pack the small files of ``days`` of ``table`` into larger ones (Delta OPTIMIZE, no data change:
    the same rows, the streams' transaction versions kept) and return delta-rs' metrics.

    A stream commits a file per micro-batch, and delta-rs spends time proportional to the table's files on
    every commit: compaction keeps that cost flat. It commits against concurrent micro-batches (appends
    never conflict with it); the files it replaces stay on storage for readers of older versions until a
    ``VACUUM`` (never run by the stream, docs/STREAMING.md)."""
    metrics = {"numFilesAdded": 0, "numFilesRemoved": 0}
    delta_table = table.load()
    for day in sorted(days):
        done = delta_table.optimize.compact(
            partition_filters=[("partition_date", "=", day.isoformat())],
            commit_properties=CommitProperties(max_commit_retries=COMMIT_ATTEMPTS),
        )
        for name in metrics:
            metrics[name] += int(done[name])
    return metrics


def stream_commits(table: LakeTable, after_version: int | None, limit: int = 1000) -> list[dict]:
    """The micro-batch commits of ``table`` after Delta version ``after_version`` (all when None), oldest
    first, at most the last ``limit``: Delta's commit info (``version``, ``timestamp`` in ms,
    ``operationMetrics``) with the stream's metadata."""
    if not table.exists():
        return []
    history = table.load().history(limit)
    commits = [
        commit
        for commit in history
        if STREAM_KEY in commit and (after_version is None or commit["version"] > after_version)
    ]
    return sorted(commits, key=lambda commit: commit["version"])


def read_values(
    batch_table: LakeTable,
    live_table: LakeTable,
    start_ns: int,
    end_ns: int,
    *,
    today: date | None = None,
    web_ids: Collection[str] | None = None,
) -> pa.Table:
    """Every value with ``start_ns <= timestamp < end_ns`` (``QUERY_SCHEMA``): from the batch table for the
    closed days (before ``today``, UTC) it holds rows of, from the live table for the other days."""
    today = today or utc_now().date()
    first = datetime.fromtimestamp(start_ns // 1_000_000_000, UTC).date()
    last = datetime.fromtimestamp((end_ns - 1) // 1_000_000_000, UTC).date()
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    batch_days = _days_held(batch_table, days) if batch_table.exists() else set()
    from_batch = sorted(day for day in batch_days if day < today)
    from_live = [day for day in days if day not in set(from_batch)]
    parts = [
        _read(batch_table, from_batch, start_ns, end_ns, web_ids, "batch"),
        _read(live_table, from_live, start_ns, end_ns, web_ids, "live"),
    ]
    rows = pa.concat_tables([part for part in parts if part is not None] or [QUERY_SCHEMA.empty_table()])
    return rows.sort_by([("web_id", "ascending"), ("timestamp", "ascending")])


def _days_held(table: LakeTable, days: list[date]) -> set[date]:
    dataset = table.load().to_pyarrow_dataset()
    held = set()
    for day in days:
        if dataset.count_rows(filter=ds.field("partition_date") == pa.scalar(day, pa.date32())):
            held.add(day)
    return held


def _read(
    table: LakeTable,
    days: list[date],
    start_ns: int,
    end_ns: int,
    web_ids: Collection[str] | None,
    source: str,
) -> pa.Table | None:
    if not days or not table.exists():
        return None
    expression = (
        ds.field("partition_date").isin(pa.array(days, pa.date32()))
        & (ds.field("timestamp_ns") >= start_ns)
        & (ds.field("timestamp_ns") < end_ns)
    )
    if web_ids is not None:
        expression &= ds.field("web_id").isin(sorted(web_ids))
    rows = table.load().to_pyarrow_dataset().to_table(filter=expression)
    columns = ["web_id", "timestamp", "timestamp_ns", *RECORDED_SCHEMA.names[2:]]
    rows = restore_exact_timestamps(rows.select(columns))
    return rows.append_column("source", pa.repeat(pa.scalar(source), rows.num_rows)).cast(QUERY_SCHEMA)
