"""Builders of recorded-value batches (the PI client's schema) for the lake tests."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime

import pyarrow as pa

from osipi_dagster.contract import RECORDED_SCHEMA
from osipi_dagster.lake import LakeTable, read_slice

DAY = date(2025, 1, 6)
NEXT_DAY = date(2025, 1, 7)
SECOND = 1_000_000_000


def at(day: date, seconds: float = 0, nanos: int = 0) -> int:
    """Nanoseconds since the epoch of ``day`` 00:00 UTC plus ``seconds`` and ``nanos``."""
    midnight = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())
    return (midnight + int(seconds)) * SECOND + round((seconds % 1) * SECOND) + nanos


def recorded(rows: Sequence[tuple[str, int, float]]) -> pa.RecordBatch:
    """A batch of good numeric values from ``(web_id, timestamp_ns, value)`` rows."""
    count = len(rows)
    falses = [False] * count
    return pa.RecordBatch.from_pydict(
        {
            "web_id": [web_id for web_id, _, _ in rows],
            "timestamp": pa.array([ns for _, ns, _ in rows], pa.int64()).cast(pa.timestamp("ns", tz="UTC")),
            "value": [value for _, _, value in rows],
            "string_value": [None] * count,
            "state_code": pa.nulls(count, pa.int32()),
            "state_name": [None] * count,
            "is_system": falses,
            "good": [True] * count,
            "questionable": falses,
            "substituted": falses,
            "annotated": falses,
            "units": ["degC"] * count,
        },
        schema=RECORDED_SCHEMA,
    )


def hourly(web_ids: Sequence[str], day: date = DAY, value: float = 1.0) -> pa.RecordBatch:
    """One value an hour for each point over ``day``."""
    return recorded(
        [(web_id, at(day, hour * 3600), value + hour) for web_id in web_ids for hour in range(24)]
    )


def contents(table: LakeTable, day: date, shard: str) -> list[dict]:
    """The slice's rows as dicts without ``ingested_at``, in a canonical order."""
    rows = read_slice(table, day, shard).drop_columns(["ingested_at"]).to_pylist()
    return sorted(rows, key=lambda row: (row["web_id"], row["timestamp"], row["value"] or 0.0))


def dense(web_id: str, count: int, day: date = DAY) -> pa.RecordBatch:
    """``count`` values of one point spread evenly over ``day`` (for large, fast-to-build batches)."""
    step = 86_400 * SECOND // count
    timestamps = pa.array(range(at(day), at(day) + step * count, step), pa.int64())
    false = pa.repeat(pa.scalar(False), count)
    return pa.RecordBatch.from_pydict(
        {
            "web_id": pa.repeat(pa.scalar(web_id), count),
            "timestamp": timestamps.cast(pa.timestamp("ns", tz="UTC")),
            "value": pa.array(range(count), pa.float64()),
            "string_value": pa.nulls(count, pa.string()),
            "state_code": pa.nulls(count, pa.int32()),
            "state_name": pa.nulls(count, pa.string()),
            "is_system": false,
            "good": pa.repeat(pa.scalar(True), count),
            "questionable": false,
            "substituted": false,
            "annotated": false,
            "units": pa.repeat(pa.scalar("degC"), count),
        },
        schema=RECORDED_SCHEMA,
    )
