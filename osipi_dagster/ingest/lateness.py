"""Late values, measured: present on this read, absent from the previous read of the same time range.

A read of a window ``[start, end)`` covers, for each point, a part it had read before:
``[start, read_until)`` (its watermark). Every value there that the lake did not hold arrived late (a
buffered interface, a manual back-fill); every stored value PI no longer returns was deleted in PI. The
comparison is exact, as a multiset of (point, exact timestamp): the stored keys of that part are loaded before
the write replaces them, and the read's keys are collected as its batches stream past. Its memory is
bounded: when the already-read part holds more than ``max_keys`` values (a closed 1 Hz day read whole
again), only the per-point counts are compared (late = how many more, removed = how many fewer) and no
lateness percentiles are given.

Lateness is the time of this read (the PI server's now) minus the value's timestamp: a late value arrived
some time between the previous read and this one, so this is an upper bound of the real delay.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from osipi_dagster.contract import to_ns
from osipi_dagster.lake import LakeTable

DEFAULT_MAX_KEYS = 5_000_000  # about 80 MB of keys per side


@dataclass(frozen=True)
class Lateness:
    """Late and removed values of one read, and the lateness percentiles (seconds) when exact."""

    late_values: int = 0
    removed_values: int = 0
    exact: bool = True
    p50_s: float | None = None
    p95_s: float | None = None
    p99_s: float | None = None
    max_s: float | None = None


class LatenessProbe:
    """Compare one read with what the lake held for the part of its window each point had read before."""

    def __init__(
        self,
        table: LakeTable,
        day: date,
        shard: str,
        read_until: Mapping[str, datetime],
        start: datetime,
        max_keys: int = DEFAULT_MAX_KEYS,
    ) -> None:
        start_ns = to_ns(start)
        until = {web_id: to_ns(moment) for web_id, moment in read_until.items() if to_ns(moment) > start_ns}
        self._until = pa.table({"web_id": list(until), "until_ns": list(until.values())}, schema=_LIMITS)
        self._start_ns = start_ns
        self._new: list[pa.Table] = []
        self._old = _stored(table, day, shard, start_ns, self._until) if until else _EMPTY_KEYS
        self.exact = self._old.num_rows <= max_keys
        if not self.exact:
            self._old = _count(self._old)

    def add(self, batch: pa.RecordBatch) -> None:
        """Keep the keys of ``batch``'s values in the already-read part of the window."""
        if not self._until.num_rows or not batch.num_rows:
            return
        keys = _in_read_part(
            pa.table({"web_id": batch["web_id"], "timestamp_ns": batch["timestamp"].cast(pa.int64())}),
            self._start_ns,
            self._until,
        ).cast(_EMPTY_KEYS.schema)  # plain WebIds: each batch's dictionary differs, and they are grouped
        self._new.append(keys if self.exact else _count(keys))

    def result(self, read_at: datetime) -> Lateness:
        new = (
            pa.concat_tables(self._new) if self._new else (_EMPTY_KEYS if self.exact else _count(_EMPTY_KEYS))
        )
        if not self.exact:
            new = (
                new.group_by("web_id").aggregate([("values", "sum")]).rename_columns({"values_sum": "values"})
            )
            both = new.join(
                self._old, "web_id", join_type="full outer", left_suffix="_new", right_suffix="_old"
            )
            gained = pc.subtract(pc.fill_null(both["values_new"], 0), pc.fill_null(both["values_old"], 0))
            late = pc.sum(pc.max_element_wise(gained, 0)).as_py() or 0
            removed = pc.sum(pc.max_element_wise(pc.negate(gained), 0)).as_py() or 0
            return Lateness(late_values=late, removed_values=removed, exact=False)
        late, removed = _multiset_difference(new, self._old), _multiset_difference(self._old, new)
        if not len(late):
            return Lateness(removed_values=len(removed))
        seconds = (to_ns(read_at) - late) / 1e9
        p50, p95, p99 = np.percentile(seconds, [50, 95, 99])
        return Lateness(
            late_values=len(late),
            removed_values=len(removed),
            p50_s=float(p50),
            p95_s=float(p95),
            p99_s=float(p99),
            max_s=float(seconds.max()),
        )


_LIMITS = pa.schema([pa.field("web_id", pa.string()), pa.field("until_ns", pa.int64())])
_EMPTY_KEYS = pa.table({"web_id": pa.array([], pa.string()), "timestamp_ns": pa.array([], pa.int64())})


def _stored(table: LakeTable, day: date, shard: str, start_ns: int, until: pa.Table) -> pa.Table:
    if not table.exists():
        return _EMPTY_KEYS
    last_ns = pc.max(until["until_ns"]).as_py()
    keys = table.partition_dataset({"partition_date": day, "tag_shard": shard}).to_table(
        columns=["web_id", "timestamp_ns"],
        filter=(ds.field("partition_date") == pa.scalar(day, pa.date32()))
        & (ds.field("tag_shard") == shard)
        & (ds.field("timestamp_ns") >= start_ns)
        & (ds.field("timestamp_ns") < last_ns),
    )
    return _in_read_part(keys.cast(_EMPTY_KEYS.schema), start_ns, until)


def _in_read_part(keys: pa.Table, start_ns: int, until: pa.Table) -> pa.Table:
    """The keys in ``[start, the point's read_until)``."""
    limit = pc.take(until["until_ns"], pc.index_in(keys["web_id"], until["web_id"]))
    inside = pc.and_(
        pc.greater_equal(keys["timestamp_ns"], start_ns),
        pc.less(keys["timestamp_ns"], pc.fill_null(limit, 0)),
    )
    return keys.filter(inside)


def _count(keys: pa.Table) -> pa.Table:
    return (
        keys.group_by("web_id")
        .aggregate([("timestamp_ns", "count")])
        .rename_columns({"timestamp_ns_count": "values"})
    )


def _multiset_difference(left: pa.Table, right: pa.Table) -> np.ndarray:
    """The timestamps of ``left``'s keys beyond their count in ``right`` (several values may share one)."""
    a, b = _counted(left), _counted(right)
    joined = a.join(
        b, ["web_id", "timestamp_ns"], join_type="left outer", left_suffix="_a", right_suffix="_b"
    )
    extra = pc.subtract(joined["n_a"], pc.fill_null(joined["n_b"], 0))
    positive = pc.greater(extra, 0)
    stamps = joined["timestamp_ns"].filter(positive).to_numpy()
    return np.repeat(stamps, extra.filter(positive).to_numpy())


def _counted(keys: pa.Table) -> pa.Table:
    return (
        keys.group_by(["web_id", "timestamp_ns"])
        .aggregate([([], "count_all")])
        .rename_columns({"count_all": "n"})
    )
