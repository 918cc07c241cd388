"""``pi_timeseries_sensor``: the lake follows PI by itself, within about a minute.

Each tick reads PI's stream updates for every active point of the server (:mod:`osipi_dagster.ingest.updates`:
one marker per point in ``checkpoints.pi_update_markers``), and requests runs only where there is something
to do: today's partitions where new values arrived; an older partition where PI inserted, edited or deleted a
value of a day already in the lake; and, on the first ticks after midnight (the PI server's), the final read
of yesterday for every shard, which replaces the close-day schedules as the way a day closes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime, timedelta

import dagster as dg

from osipi_dagster.contract import day_bounds
from osipi_dagster.defs.pi_server.runs import busy_partitions, plan_runs, run_request
from osipi_dagster.defs.pi_server.timeseries import TimeseriesConfig
from osipi_dagster.defs.pi_server.wiring import ServerWiring
from osipi_dagster.ingest.catalog import active_points
from osipi_dagster.ingest.reconciliation import differing_partitions
from osipi_dagster.ingest.server_clock import server_now
from osipi_dagster.ingest.updates import Completion, Partition, Work, poll_updates
from osipi_dagster.lake.schemas import POINTS, RECONCILIATION, UPDATE_MARKERS, WATERMARKS

# Partition keys per query of the instance (SQLite binds at most 32,766 variables per statement).
_PARTITIONS_PER_QUERY = 500


class _CompletedRuns:
    """Per partition, its latest materialization: when its run started and where its window began (from
    the materialization's `window_start`); asked for many partitions at once (three queries of the
    instance, whatever their number), each partition queried once per tick."""

    def __init__(self, instance: dg.DagsterInstance, asset_key: dg.AssetKey) -> None:
        self._instance, self._asset_key = instance, asset_key
        self._known: dict[Partition, Completion | None] = {}

    def __call__(self, partitions: Iterable[Partition]) -> dict[Partition, Completion]:
        """The latest materialization of each of ``partitions``; a partition never materialized by a run
        (or only by a runless event) is left out."""
        wanted = set(partitions)
        missing = sorted(wanted - self._known.keys())
        for first in range(0, len(missing), _PARTITIONS_PER_QUERY):
            block = missing[first : first + _PARTITIONS_PER_QUERY]
            self._known |= dict.fromkeys(block)
            self._known |= self._started(block)
        return {partition: started for partition in wanted if (started := self._known[partition]) is not None}

    def _started(self, partitions: list[Partition]) -> dict[Partition, Completion]:
        keys = {f"{day.isoformat()}|{shard}": (day, shard) for day, shard in partitions}
        latest = self._instance.event_log_storage.get_latest_storage_id_by_partition(
            self._asset_key, dg.DagsterEventType.ASSET_MATERIALIZATION, partitions=set(keys)
        )
        if not latest:
            return {}
        records = self._instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=self._asset_key, storage_ids=list(latest.values())),
            limit=len(latest),
        ).records
        run_of = {record.storage_id: record.event_log_entry.run_id for record in records}
        read_from = {record.storage_id: _window_start(record) for record in records}
        run_ids = {run_id for run_id in run_of.values() if run_id}
        runs = self._instance.get_run_records(dg.RunsFilter(run_ids=list(run_ids))) if run_ids else []
        started = {
            run.dagster_run.run_id: datetime.fromtimestamp(run.start_time, UTC)
            for run in runs
            if run.start_time
        }
        return {
            keys[key]: Completion(started[run_of[storage_id]], read_from[storage_id])
            for key, storage_id in latest.items()
            if run_of.get(storage_id) in started
        }


def _window_start(record: dg.EventLogRecord) -> datetime | None:
    """Where a materialization's read began (its `window_start`); ``None`` when it read nothing."""
    materialization = record.asset_materialization
    value = materialization.metadata.get("window_start") if materialization else None
    return datetime.fromtimestamp(value.value, UTC) if isinstance(value, dg.TimestampMetadataValue) else None


class _MaterializedPartitions:
    """Whether a partition was ever materialized: the instance is asked on the first question only (a tick
    without events of older days asks none)."""

    def __init__(self, instance: dg.DagsterInstance, asset_key: dg.AssetKey) -> None:
        self._instance, self._asset_key = instance, asset_key
        self._known: set[Partition] | None = None

    def __call__(self, partition: Partition) -> bool:
        if self._known is None:
            self._known = {
                (date.fromisoformat(key.split("|")[0]), key.split("|")[1])
                for key in self._instance.get_materialized_partitions(self._asset_key)
            }
        return partition in self._known


def timeseries_sensor(server: ServerWiring, job: dg.UnresolvedAssetJobDefinition) -> dg.SensorDefinition:
    """The server's ``pi_timeseries_sensor`` (stopped until turned on in the UI)."""
    settings = server.settings
    asset_key = server.key("pi_timeseries")
    op_name = asset_key.to_python_identifier()

    @dg.sensor(
        name=settings.qualified("pi_timeseries_sensor"),
        minimum_interval_seconds=settings.sensor_interval_seconds,
        default_status=dg.DefaultSensorStatus.STOPPED,
        job=job,
        required_resource_keys=server.resource_keys,
    )
    def pi_timeseries_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        """Follows PI by its stream updates: requests today's partitions where new values arrived, older
        partitions where PI inserted, edited or deleted values of a day already in the lake, and the final
        read of yesterday after midnight UTC, and the partitions `pi_reconciliation` found different from PI.
        One marker per point is kept in `checkpoints.pi_update_markers`; a lost marker (PI's cache expired)
        is registered again and the point re-read from its watermark."""
        pi, lake = server.pi(context), server.lake(context)
        if not pi.stream_updates:
            return dg.SkipReason(
                "This PI server is followed by the open-day and close-day schedules (stream_updates is off)."
            )
        points = active_points(lake.table(POINTS.name))
        if not points:
            return dg.SkipReason("The catalog (pi_points) lists no active point yet: materialize it first.")
        now = server_now(pi.client, pi.data_server)
        completed = _CompletedRuns(context.instance, asset_key)
        tick = poll_updates(
            pi.client,
            markers=lake.table(UPDATE_MARKERS.name),
            watermarks=lake.table(WATERMARKS.name),
            points=points,
            now=now,
            in_lake=_MaterializedPartitions(context.instance, asset_key),
            completed=completed,
            skew_tolerance=timedelta(minutes=settings.clock_skew_tolerance_minutes),
        )
        closing, cursor = _closing_days(
            json.loads(context.cursor) if context.cursor else {}, now, server.partitions.shard_keys, completed
        )
        owed = dict(tick.pending)
        differing = differing_partitions(lake.table(RECONCILIATION.name))
        repaired = completed(differing)
        repairs = {
            partition: work
            for partition, checked in differing.items()
            if not (work := Work(since=checked, reread_from=day_bounds(partition[0])[0])).done_by(
                repaired.get(partition)
            )
        }
        for partition, work in [*closing.items(), *repairs.items()]:
            owed[partition] = work if partition not in owed else owed[partition].merge(work)
        busy = busy_partitions(context.instance, asset_key, job.name)
        requests = []
        for planned in plan_runs(owed, server.partitions.shard_keys, busy, settings.sensor_max_runs_per_tick):
            run_config = {}
            if planned.day == now.date():
                config = TimeseriesConfig(reread_from=planned.work.reread_from.isoformat())
                run_config = dg.RunConfig(ops={op_name: config}).to_config_dict()
            request = run_request(planned, context.instance, now, run_config)
            if request is not None:
                requests.append(request)
        context.log.info(
            f"{tick.points} points, {sum(tick.events.values())} events {dict(tick.events)}, "
            f"{tick.registered} registered, {tick.re_registered} registered again, "
            f"{len(tick.failed)} not read, {tick.future_values} values in the future (clock skew); "
            f"{len(owed)} partitions owed, {len(busy & owed.keys())} busy, {len(requests)} runs requested; "
            f"{tick.duration_seconds:.2f} s"
        )
        return dg.SensorResult(run_requests=requests, cursor=json.dumps(cursor))

    return pi_timeseries_sensor


def _closing_days(
    cursor: dict,
    now: datetime,
    shards: list[str],
    completed: Callable[[Iterable[Partition]], Mapping[Partition, Completion]],
) -> tuple[dict[Partition, Work], dict]:
    """The final reads owed for days that closed (at the PI server's midnight), and the next cursor.

    A day stays in the cursor's ``closing`` map (day -> when this sensor saw it closed, this host's clock)
    until every shard has a successful run that started after that (such a run read the day whole), so a
    busy or failed partition is owed again on the next tick, under the same run key. The first tick of a
    sensor closes nothing: it starts counting from yesterday.
    """
    yesterday = now.date() - timedelta(days=1)
    seen = datetime.now(UTC).isoformat()
    closing = dict(cursor.get("closing", {}))
    day = date.fromisoformat(cursor.get("closed_through", yesterday.isoformat())) + timedelta(days=1)
    while day <= yesterday:
        closing.setdefault(day.isoformat(), seen)
        day += timedelta(days=1)
    started = completed((date.fromisoformat(text), shard) for text in closing for shard in shards)
    owed: dict[Partition, Work] = {}
    for text, noticed in closing.items():
        day, since = date.fromisoformat(text), datetime.fromisoformat(noticed)
        for shard in shards:
            work = Work(since=since, reread_from=day_bounds(day)[0])
            if not work.done_by(started.get((day, shard))):
                owed[(day, shard)] = work
    still = {day.isoformat(): closing[day.isoformat()] for day in sorted({day for day, _ in owed})}
    return owed, {"closed_through": yesterday.isoformat(), "closing": still}
