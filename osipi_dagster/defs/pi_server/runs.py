"""Turning owed (day, shard) partitions into run requests: few runs, each piece of work requested once.

* One run per day and contiguous range of shards (the run's partition range), so a tick that owes today's 16
  shards launches one run, not 16.
* A partition with a queued or running run is left for a later tick (nothing is requested twice at once).
* Run keys come from the work they cover (day, shards and the time the work was seen), so a tick evaluated
  twice requests nothing twice. A run that failed is requested again with the next attempt's key, after a
  backoff, so a failing partition neither stalls nor floods the instance.
* At most ``cap`` runs per tick; the rest are owed to the next tick.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import dagster as dg

from osipi_dagster.ingest.updates import Partition, Work

WORK_TAG = "osipi/work"  # the same on every attempt at one piece of work
RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"
IN_PROGRESS = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]
FIRST_RETRY_AFTER = timedelta(minutes=2)
LONGEST_RETRY_AFTER = timedelta(hours=1)


@dataclass(frozen=True)
class PlannedRun:
    """One run to request: a day, a contiguous range of its shards, and the work it covers."""

    day: date
    shards: tuple[str, ...]
    work: Work

    @property
    def work_key(self) -> str:
        return f"{self.day.isoformat()}|{self.shards[0]}..{self.shards[-1]}@{self.work.since.isoformat()}"


def plan_runs(
    owed: Mapping[Partition, Work], shard_keys: list[str], busy: set[Partition], cap: int
) -> list[PlannedRun]:
    """The runs for ``owed`` partitions not ``busy``: per day, one run per contiguous range of shards (in
    ``shard_keys`` order), oldest day first, at most ``cap``."""
    order = {shard: index for index, shard in enumerate(shard_keys)}
    by_day: dict[date, list[str]] = {}
    for day, shard in owed:
        if (day, shard) not in busy and shard in order:
            by_day.setdefault(day, []).append(shard)
    planned: list[PlannedRun] = []
    for day in sorted(by_day):
        for shards in _contiguous(sorted(by_day[day], key=order.__getitem__), order):
            work = owed[(day, shards[0])]
            for shard in shards[1:]:
                work = work.merge(owed[(day, shard)])
            planned.append(PlannedRun(day, tuple(shards), work))
    return planned[:cap]


def _contiguous(shards: list[str], order: Mapping[str, int]) -> Iterable[list[str]]:
    run: list[str] = []
    for shard in shards:
        if run and order[shard] != order[run[-1]] + 1:
            yield run
            run = []
        run.append(shard)
    if run:
        yield run


def busy_runs(instance: dg.DagsterInstance, job_name: str) -> bool:
    """Whether a run of ``job_name`` is queued or running."""
    return bool(instance.get_runs(dg.RunsFilter(job_name=job_name, statuses=IN_PROGRESS), limit=1))


def busy_partitions(instance: dg.DagsterInstance, asset_key: dg.AssetKey, job_name: str) -> set[Partition]:
    """The (day, shard) partitions of ``asset_key`` that a queued or running run covers: a run of the
    asset's job, or any run selecting the asset (a backfill from the UI)."""
    runs = instance.get_runs(dg.RunsFilter(statuses=IN_PROGRESS))
    busy: set[Partition] = set()
    for run in runs:
        if run.job_name != job_name and asset_key not in (run.asset_selection or set()):
            continue
        tags = run.tags
        first, last = tags.get(RANGE_START), tags.get(RANGE_END)
        if first is None and "dagster/partition" in tags:
            first = last = tags["dagster/partition"]
        if first is None or last is None:
            continue
        start_day, start_shard = first.split("|")
        end_day, end_shard = last.split("|")
        day = date.fromisoformat(start_day)
        while day <= date.fromisoformat(end_day):
            for index in range(int(start_shard[1:]), int(end_shard[1:]) + 1):
                busy.add((day, f"s{index:02d}"))
            day += timedelta(days=1)
    return busy


def run_request(
    planned: PlannedRun, instance: dg.DagsterInstance, now: datetime, run_config: dict | None = None
) -> dg.RunRequest | None:
    """The request for ``planned``; None while an earlier failed attempt at the same work waits for its
    backoff. Each attempt has its own run key: the first ``<work>``, then ``<work>#2``, ..."""
    attempts = instance.get_runs(dg.RunsFilter(tags={WORK_TAG: planned.work_key}))
    failed = [
        run for run in attempts if run.status in (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)
    ]
    if failed:
        last = max(instance.get_run_record_by_id(run.run_id).end_time or 0.0 for run in failed)
        wait = min(LONGEST_RETRY_AFTER, FIRST_RETRY_AFTER * 2 ** (len(failed) - 1))
        if now.timestamp() < last + wait.total_seconds():
            return None
    key = planned.work_key if not attempts else f"{planned.work_key}#{len(attempts) + 1}"
    first = f"{planned.day.isoformat()}|{planned.shards[0]}"
    last_key = f"{planned.day.isoformat()}|{planned.shards[-1]}"
    tags = {WORK_TAG: planned.work_key, RANGE_START: first, RANGE_END: last_key}
    return dg.RunRequest(run_key=key, tags=tags, run_config=run_config or {})
