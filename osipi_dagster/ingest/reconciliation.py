"""Is the lake equal to PI? Per point and closed day, the lake's values against PI's own figures.

What PI is asked, and why:

* ``/streamsets/summary`` with ``Count`` and ``Average`` (``calculationBasis=EventWeighted``) over the day:
  PI counts the *good* values and averages them. The lake's good values are counted and averaged the same
  way, so a missing, extra or duplicated good value changes the count, and an edited value the mean (an edit
  that keeps the count is invisible to a count alone). Non-numeric points are asked ``Count`` only (PI
  refuses an average of digital states and strings).
* ``/streamsets/plot`` with one interval over the day: its values include the day's first and last recorded
  values, whatever their quality, so the first and last timestamps are compared without reading the day.

A bad value (a system state) is not in PI's count: a bad value missing from the lake shows only in the
first or last timestamp. That is the trade-off of asking summaries (two small requests per 200 points)
instead of reading every value again; a day that differs is read whole again anyway by its repair.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from osipi_dagster.contract import TICK_NS, day_bounds, from_ns, to_ns
from osipi_dagster.lake import LakeTable, WriteResult, replace_day
from osipi_dagster.lake.schemas import RECONCILIATION
from osipi_dagster.lake.tables import without_columns
from osipi_dagster.pi import PIWebAPIClient

_INPUT = without_columns(RECONCILIATION.schema, ["ingested_at"])
_NUMERIC_TYPES = frozenset(
    {"float16", "float32", "float64", "int16", "int32", "int64", "byte", "single", "double"}
)
MEAN_TOLERANCE = 1e-9  # relative: both sides average the same float64 values, possibly in another order
# A single-precision point's JSON value is the shortest decimal that rounds to its float32, which the lake
# parses as float64, while PI averages the float32 values themselves: each value may differ by half a
# float32 unit in the last place (6e-8 relative), so their means can too.
SINGLE_PRECISION_MEAN_TOLERANCE = 1e-6
_SINGLE_PRECISION_TYPES = frozenset({"float16", "float32", "single"})


@dataclass(frozen=True)
class CatalogPoint:
    """What reconciliation needs of a catalog row."""

    name: str
    tag_shard: str
    point_type: str

    @property
    def numeric(self) -> bool:
        return self.point_type.lower() in _NUMERIC_TYPES

    @property
    def mean_tolerance(self) -> float:
        """The relative difference allowed between the lake's mean and PI's for this point."""
        if self.point_type.lower() in _SINGLE_PRECISION_TYPES:
            return SINGLE_PRECISION_MEAN_TOLERANCE
        return MEAN_TOLERANCE


@dataclass(frozen=True)
class ReconciliationResult:
    """One day's reconciliation: how many points matched, differed, were repaired or could not be read."""

    day: date
    matches: int
    differs: int
    repaired: int
    unread: int
    differing_shards: tuple[str, ...]
    write: WriteResult
    duration_seconds: float


def reconcile_day(
    client: PIWebAPIClient,
    *,
    timeseries: LakeTable,
    reconciliation: LakeTable,
    points: Mapping[str, CatalogPoint],
    day: date,
    now: datetime,
    repaired_by: Mapping[str, str] | None = None,
) -> ReconciliationResult:
    """Compare every point of ``points`` over the closed ``day`` with PI and replace the day's rows of
    ``gold.pi_reconciliation``.

    Args:
        points: the active points, WebId -> catalog facts.
        repaired_by: tag shard -> the run that last materialized the (day, shard) partition: named on the
            rows of points that differed on the previous reconciliation and match now.
    """
    started = time.perf_counter()
    start, end = day_bounds(day)
    if end > now:
        raise ValueError(f"{day.isoformat()} has not closed on the PI server (its now is {now.isoformat()}).")
    last_tick = to_ns(end) - TICK_NS
    lake = _lake_figures(timeseries, day)
    numeric = [web_id for web_id, point in points.items() if point.numeric]
    other = [web_id for web_id, point in points.items() if not point.numeric]
    pi: dict[str, dict] = {web_id: {} for web_id in points}
    unread: dict[str, str] = {}
    for web_ids, types in ((numeric, ("Count", "Average")), (other, ("Count",))):
        if not web_ids:
            continue
        read = client.read_summary(web_ids, start, last_tick, types, calculation_basis="EventWeighted")
        summaries = read.read_all()
        unread |= {failure.web_id: failure.message for failure in read.failures}
        for row in summaries.select(["web_id", "summary_type", "value", "good"]).to_pylist():
            pi[row["web_id"]][row["summary_type"]] = row["value"] if row["good"] else None
    plot = client.read_plot(list(points), start, last_tick, intervals=1)
    stamps = plot.read_all()
    unread |= {failure.web_id: failure.message for failure in plot.failures}
    if stamps.num_rows:
        bounds = stamps.group_by("web_id").aggregate([("timestamp", "min"), ("timestamp", "max")])
        for row in bounds.to_pylist():
            pi[row["web_id"]]["first"], pi[row["web_id"]]["last"] = row["timestamp_min"], row["timestamp_max"]
    previous = _previous_status(reconciliation, day)
    rows = []
    for web_id, point in sorted(points.items()):
        mine, theirs = lake.get(web_id, _EMPTY), pi[web_id]
        row = _compare(web_id, point, mine, theirs, web_id in unread, unread.get(web_id))
        if row["status"] == "matches" and previous.get(web_id) in ("differs", "repaired"):
            row["status"], row["repaired_by_run"] = "repaired", (repaired_by or {}).get(point.tag_shard)
        rows.append({**row, "checked_at": now, "partition_date": day})
    write = replace_day(reconciliation, pa.Table.from_pylist(rows, schema=_INPUT), day)
    status = [row["status"] for row in rows]
    return ReconciliationResult(
        day=day,
        matches=status.count("matches"),
        differs=status.count("differs"),
        repaired=status.count("repaired"),
        unread=status.count("unread"),
        differing_shards=tuple(sorted({row["tag_shard"] for row in rows if row["status"] == "differs"})),
        write=write,
        duration_seconds=time.perf_counter() - started,
    )


def differing_partitions(reconciliation: LakeTable) -> dict[tuple[date, str], datetime]:
    """Every (day, shard) the last reconciliation of its day found different, with when it was checked."""
    if not reconciliation.exists():
        return {}
    # Read by every sensor tick, while the table grows by a row per point and day: three columns of the
    # rows that differ, not the table.
    differs = (
        reconciliation.load()
        .to_pyarrow_dataset()
        .to_table(
            columns=["partition_date", "tag_shard", "checked_at"], filter=ds.field("status") == "differs"
        )
    )
    found: dict[tuple[date, str], datetime] = {}
    for row in differs.to_pylist():
        key = (row["partition_date"], row["tag_shard"])
        found[key] = max(found.get(key, row["checked_at"]), row["checked_at"])
    return found


_EMPTY: dict = {"good": 0, "first": None, "last": None, "mean": None}


def _compare(
    web_id: str, point: CatalogPoint, mine: dict, theirs: dict, unread: bool, reason: str | None
) -> dict[str, object]:
    pi_count = theirs.get("Count")
    row: dict[str, object] = {
        "web_id": web_id,
        "name": point.name,
        "tag_shard": point.tag_shard,
        "lake_good_values": mine["good"],
        "pi_good_values": None if pi_count is None else round(pi_count),
        "difference": None if pi_count is None else mine["good"] - round(pi_count),
        "lake_first": _us(mine["first"]),
        "pi_first": _us(theirs.get("first")),
        "lake_last": _us(mine["last"]),
        "pi_last": _us(theirs.get("last")),
        "lake_mean": mine["mean"],
        "pi_mean": theirs.get("Average"),
        "repaired_by_run": None,
    }
    if unread:
        return {**row, "status": "unread", "detail": (reason or "")[:300]}
    problems = []
    if row["difference"] not in (0, None) or (pi_count is None and mine["good"]):
        problems.append(f"{row['lake_good_values']} good values in the lake, {row['pi_good_values']} in PI")
    if row["lake_first"] != row["pi_first"] or row["lake_last"] != row["pi_last"]:
        problems.append("first or last value at another time")
    if point.numeric and not _close(mine["mean"], theirs.get("Average"), point.mean_tolerance):
        problems.append(f"mean {mine['mean']} in the lake, {theirs.get('Average')} in PI")
    if problems:
        return {**row, "status": "differs", "detail": "; ".join(problems)}
    return {**row, "status": "matches", "detail": None}


def _close(mine: float | None, theirs: float | None, rel_tol: float) -> bool:
    if mine is None or theirs is None:
        return mine is None and theirs is None
    return math.isclose(mine, theirs, rel_tol=rel_tol, abs_tol=1e-12)


def _us(value: object) -> datetime | None:
    # Both sides compared at the microsecond: the lake's ``timestamp`` column and PI's times floored alike.
    if value is None:
        return None
    return from_ns(to_ns(value)) if not isinstance(value, int) else from_ns(value)


def _lake_figures(timeseries: LakeTable, day: date) -> dict[str, dict]:
    """Per point, the day's good values (count and mean) and first and last times, streamed batch by batch
    (a 1 Hz day of 1,000 points is 86 M rows: never loaded whole)."""
    if not timeseries.exists():
        return {}
    scanner = (
        timeseries.load()
        .to_pyarrow_dataset()
        .scanner(
            columns=["web_id", "timestamp_ns", "value", "good"],
            filter=ds.field("partition_date") == pa.scalar(day, pa.date32()),
        )
    )
    partials = []
    for batch in scanner.to_batches():
        if not batch.num_rows:
            continue
        # Digital states and strings are good values without a number: counted, not averaged.
        numeric = pc.and_(batch["good"], pc.is_valid(batch["value"]))
        table = pa.table(
            {
                "web_id": batch["web_id"],
                "timestamp_ns": batch["timestamp_ns"],
                "good": pc.cast(batch["good"], pa.int64()),
                "numeric": pc.cast(numeric, pa.int64()),
                "good_value": pc.if_else(numeric, batch["value"], pa.scalar(0.0)),
            }
        )
        partials.append(
            table.group_by("web_id").aggregate(
                [
                    ("good", "sum"),
                    ("numeric", "sum"),
                    ("good_value", "sum"),
                    ("timestamp_ns", "min"),
                    ("timestamp_ns", "max"),
                ]
            )
        )
    if not partials:
        return {}
    combined = (
        pa.concat_tables(partials)
        .group_by("web_id")
        .aggregate(
            [
                ("good_sum", "sum"),
                ("good_value_sum", "sum"),
                ("timestamp_ns_min", "min"),
                ("timestamp_ns_max", "max"),
            ]
        )
    )
    figures = {}
    for row in combined.to_pylist():
        count = row["good_sum_sum"]
        figures[row["web_id"]] = {
            "good": count,
            "mean": row["good_value_sum_sum"] / count if count else None,
            "first": row["timestamp_ns_min_min"],
            "last": row["timestamp_ns_max_max"],
        }
    return figures


def _previous_status(reconciliation: LakeTable, day: date) -> dict[str, str]:
    if not reconciliation.exists():
        return {}
    rows = reconciliation.load().to_pyarrow_table(
        columns=["web_id", "status"], filters=ds.field("partition_date") == pa.scalar(day, pa.date32())
    )
    return dict(zip(rows["web_id"].to_pylist(), rows["status"].to_pylist(), strict=True))
