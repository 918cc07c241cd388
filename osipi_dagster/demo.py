"""`make demo`: the main job end to end on the embedded default, for two PI servers side by side.

Starts two mock PI Web APIs (different ports and seeds, clocks fixed at ``DEMO_NOW`` so every demo reads the
same data): the default server (``OSIPI_DEMO_POINTS`` points, 2,000 by default; every other ``OSIPI_*``
setting applies to it as to the code location) and a second site, ``site_b``, with a quarter of the points.
For each server it materializes through Dagster, as runs recorded in ``DAGSTER_HOME`` (the UI of ``make ui``
shows them): the AF hierarchy and attributes, the tag catalog, the time series of yesterday and today (the
mock's) over every shard (one run per day, covering all its shards), and the event frames of both days. Both
servers land in one lakehouse, each in its own tables. It prints rows per table, values/s, the duration and
where the tables are. Running it again replaces the same slices: the row counts stay the same.
"""

from __future__ import annotations

import sys
import time
from contextlib import ExitStack
from datetime import date, datetime, timedelta

import dagster as dg
import requests

from osipi_dagster.definitions import build_definitions
from osipi_dagster.defs.pi_server.partitions import server_partitions
from osipi_dagster.defs.pi_server.runs import RANGE_END, RANGE_START
from osipi_dagster.defs.pi_server.wiring import ServerWiring
from osipi_dagster.lake import Lakehouse, read_table, row_count
from osipi_dagster.lake.schemas import (
    AF_ATTRIBUTES,
    AF_HIERARCHY,
    EVENT_FRAMES,
    POINTS,
    TIMESERIES,
    WATERMARKS,
)
from osipi_dagster.mock.config import MockConfig
from osipi_dagster.mock.server import serve_in_thread
from osipi_dagster.settings import PIServerSettings, demo_from_env, lake_from_env, pi_server_from_env

DEMO_NOW = "2025-01-06T12:00:00Z"
SECOND_SITE = "site_b"
# The tables the main job replaces (a second demo leaves their row counts unchanged).
MAIN_JOB_TABLES = (
    AF_HIERARCHY.name,
    AF_ATTRIBUTES.name,
    POINTS.name,
    TIMESERIES.name,
    EVENT_FRAMES.name,
    WATERMARKS.name,
)


def demo_mock(points: int | None = None, port: int = 0) -> MockConfig:
    """The default server's mock, as ``make demo`` and ``make ui`` serve it (on 127.0.0.1)."""
    return MockConfig(host="127.0.0.1", port=port, tags=points or demo_from_env().points, now=DEMO_NOW)


def main() -> int:
    started = time.perf_counter()
    instance = dg.DagsterInstance.get()  # DAGSTER_HOME: the Makefile points it at ./.dagster_home
    lake = lake_from_env()
    points = demo_from_env().points
    mocks = {
        "default": demo_mock(points),
        SECOND_SITE: MockConfig(
            port=0,
            tags=max(1, points // 4),
            now=DEMO_NOW,
            seed=2,
            server_name="PISITEB",
            af_server_name="AFSITEB",
        ),
    }
    with ExitStack() as stack:
        running = {name: stack.enter_context(serve_in_thread(config)) for name, config in mocks.items()}
        apis = {name: mock.api for name, mock in running.items()}
        # The mock is on loopback: gzip would only cost CPU.
        default = pi_server_from_env(base_url=apis["default"], compress=False)
        servers = [
            default,
            PIServerSettings(
                name=SECOND_SITE, base_url=apis[SECOND_SITE], compress=False, tag_shards=default.tag_shards
            ),
        ]
        defs = build_definitions(lake, servers)
        values = seconds = 0.0
        for server in servers:
            print(f"\n{server.name}: mock PI Web API on {server.base_url}, clock fixed at {DEMO_NOW}")
            run_values, run_seconds = _main_job(defs, instance, server)
            values, seconds = values + run_values, seconds + run_seconds
        _follow_pi(defs, instance, default, running["default"].url)
    _summary(lake.root, servers, int(values), seconds, time.perf_counter() - started, instance)
    return 0


def _main_job(
    defs: dg.Definitions, instance: dg.DagsterInstance, server: PIServerSettings
) -> tuple[float, float]:
    """AF, catalog, the time series of yesterday and today and their event frames, for one server; the
    time-series values read and the seconds it took."""
    key = ServerWiring(server).key
    today = date.fromisoformat(DEMO_NOW[:10])
    shards = server_partitions(server).shard_keys
    _run(defs, instance, [key("pi_af_hierarchy"), key("pi_af_attributes")])
    _run(defs, instance, [key("pi_points")])
    values = seconds = 0.0
    for day in (today - timedelta(days=1), today):
        run_values, run_seconds = _run(
            defs,
            instance,
            [key("pi_timeseries")],
            partition_range=(f"{day.isoformat()}|{shards[0]}", f"{day.isoformat()}|{shards[-1]}"),
        )
        values, seconds = values + run_values, seconds + run_seconds
        _run(defs, instance, [key("pi_event_frames")], partition_key=day.isoformat())
    return values, seconds


def _follow_pi(
    defs: dg.Definitions, instance: dg.DagsterInstance, server: PIServerSettings, mock: str
) -> None:
    """One tick of ``pi_timeseries_sensor`` after PI changed (its clock moved 10 minutes: new and late
    values; a value of yesterday edited), the runs it requests, and the reconciliation of yesterday."""
    wiring = ServerWiring(server)
    today = date.fromisoformat(DEMO_NOW[:10])
    yesterday = today - timedelta(days=1)
    print(f"\n{server.name}: following PI by its stream updates ({server.qualified('pi_timeseries_sensor')})")
    cursor = _sensor_tick(defs, instance, wiring, None)  # registers every point
    points = read_table(Lakehouse(lake_from_env().root, table_prefix=server.table_prefix).table(POINTS.name))
    web_id = min(row["web_id"] for row in points.to_pylist() if row["point_type"].startswith("Float"))
    stamp = requests.get(
        f"{server.base_url}/streams/{web_id}/recorded",
        params={"startTime": f"{yesterday.isoformat()}T08:00:00Z", "endTime": "*", "maxCount": 1},
        timeout=30,
    ).json()["Items"][0]["Timestamp"]
    # A value of this morning that reaches PI only now (a buffered interface): half a second off every
    # sampling grid of the mock, so it is a new value, not an edit.
    late_stamp = f"{today.isoformat()}T09:30:00.5Z"
    requests.post(f"{mock}/admin/clock", json={"advance": "10m"}, timeout=30).raise_for_status()
    requests.post(
        f"{mock}/admin/edits",
        json={
            "Edits": [
                {"WebId": web_id, "Timestamp": stamp, "Value": 4242.5},
                {"WebId": web_id, "Timestamp": late_stamp, "Value": 17.25},
            ]
        },
        timeout=30,
    ).raise_for_status()
    print(
        f"  PI: clock +10 min; {web_id[:16]}... edited at {stamp} (to 4242.5) and a late value arrived "
        f"for {late_stamp}"
    )
    _sensor_tick(defs, instance, wiring, cursor)
    print(f"  the lake holds {_stored_value(server, web_id, stamp)} at {stamp} (PI's edit followed)")
    print("  reconciliation of yesterday:")
    _run(defs, instance, [wiring.key("pi_reconciliation")], partition_key=yesterday.isoformat())


def _stored_value(server: PIServerSettings, web_id: str, stamp: str) -> object:
    """The value the lake holds for ``web_id`` at ``stamp`` (an ISO time)."""
    timeseries = Lakehouse(lake_from_env().root, table_prefix=server.table_prefix).table(TIMESERIES.name)
    moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    rows = timeseries.load().to_pyarrow_table(
        filters=[("partition_date", "=", moment.date()), ("web_id", "=", web_id), ("timestamp", "=", moment)],
        columns=["value"],
    )
    return rows.column("value").to_pylist()[0] if rows.num_rows else "no value"


def _sensor_tick(
    defs: dg.Definitions, instance: dg.DagsterInstance, wiring: ServerWiring, cursor: str | None
) -> str | None:
    """One evaluation of the sensor as the daemon makes it, and the runs it requests, run here."""
    sensor = defs.resolve_sensor_def(wiring.settings.qualified("pi_timeseries_sensor"))
    resources = {key: defs.resources[key] for key in wiring.resource_keys}
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources) as context:
        tick = sensor.evaluate_tick(context)
    job = defs.resolve_job_def(wiring.settings.qualified("pi_timeseries_job"))
    for request in tick.run_requests or []:
        covers = f"{request.tags[RANGE_START]} .. {request.tags[RANGE_END].split('|')[1]}"
        result = job.execute_in_process(
            instance=instance,
            tags={**request.tags, "dagster/from": "make demo"},
            run_config=request.run_config,
        )
        figures = {
            name: sum(
                getattr(event.materialization.metadata.get(name), "value", 0)
                for event in result.get_asset_materialization_events()
            )
            for name in ("dagster/row_count", "late_values", "removed_values")
        }
        print(
            f"  sensor run {result.run_id[:8]} for {covers}: {figures['dagster/row_count']:,} values "
            f"written, {figures['late_values']} late, {figures['removed_values']} removed in PI"
        )
    return tick.cursor


def _run(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    assets: list[dg.AssetKey],
    *,
    partition_key: str | None = None,
    partition_range: tuple[str, str] | None = None,
) -> tuple[int, float]:
    """One Dagster run of ``assets`` (a partition range becomes one run, as a backfill batches it); the
    time-series values it read and its duration."""
    tags = {"dagster/from": "make demo"}
    if partition_range:
        tags |= {
            "dagster/asset_partition_range_start": partition_range[0],
            "dagster/asset_partition_range_end": partition_range[1],
        }
    label = partition_key or (partition_range and " .. ".join(partition_range)) or "unpartitioned"
    step_started = time.perf_counter()
    job = defs.resolve_implicit_job_def_def_for_assets(assets)
    result = job.execute_in_process(
        instance=instance, asset_selection=assets, partition_key=partition_key, tags=tags, raise_on_error=True
    )
    seconds = time.perf_counter() - step_started
    names = ", ".join(a.to_user_string() for a in assets)
    print(f"  {names:<40} {label:<33} run {result.run_id[:8]} {seconds:6.1f} s")
    events = result.get_asset_materialization_events()
    for event in events:
        metadata = event.materialization.metadata
        if "points_matched" in metadata:
            print(
                f"    {event.partition}: {metadata['points_matched'].value} points match PI, "
                f"{metadata['points_differ'].value} differ"
            )
    values = events[0].materialization.metadata.get("run_values") if events else None
    return (values.value if values else 0), seconds


def _summary(
    root: str,
    servers: list[PIServerSettings],
    values: int,
    values_seconds: float,
    seconds: float,
    instance: dg.DagsterInstance,
) -> None:
    print("\nTables (Delta Lake):")
    for server in servers:
        lake = Lakehouse(root, table_prefix=server.table_prefix)
        for name in MAIN_JOB_TABLES:
            table = lake.table(name)
            print(f"  {table.name:<36} {row_count(table) if table.exists() else 0:>12,} rows   {table.uri}")
    rate = values / values_seconds if values_seconds else 0
    print(
        f"\nTime series: {values:,} values read and written in {values_seconds:.1f} s ({rate:,.0f} values/s, "
        "Dagster runs included; a second demo reads yesterday whole again and today from its watermarks "
        "minus the overlap window)"
    )
    print(f"Demo finished in {seconds:.1f} s. Dagster runs are recorded in {instance.root_directory}.")
    print("Open the Dagster UI on these runs and assets with `make ui` (http://127.0.0.1:3000).")


if __name__ == "__main__":
    sys.exit(main())
