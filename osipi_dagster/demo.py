"""`make demo`: the main job end to end on the embedded default, for two PI servers side by side.

Starts two mock PI Web APIs (different ports and seeds, clocks fixed at :func:`demo_now`, noon UTC of today,
so the demo's days are the newest partitions the UI shows, and every demo of a day reads the same data: the
mock's values are a pure function of seed, point and time): the default server (``OSIPI_DEMO_POINTS`` points,
2,000 by default; every other ``OSIPI_*`` setting applies to it as to the code location) and a second site,
``site_b``, with a quarter of the points. For each server it materializes through Dagster, as runs recorded in
``DAGSTER_HOME`` (the UI of ``make ui`` shows them): the AF hierarchy and attributes, the tag catalog, the
time series of yesterday and today (the mock's) over every shard (one run per day, covering all its shards,
with the asset checks), the event frames and the ingestion report of both days. Both servers land in one
lakehouse, each in its own tables. It prints rows per table, values/s, the duration, where the tables are, the
checks' outcomes and the reports' paths. Running it again the same day replaces the same slices: the row
counts stay the same.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

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


def demo_now() -> str:
    """The mocks' fixed clock: noon UTC of today. Following the real date keeps the demo's partitions the
    newest ones in the UI; a fixed time of day keeps a day's demo reproducible."""
    return f"{datetime.now(UTC).date().isoformat()}T12:00:00Z"


def demo_days() -> list[date]:
    """The days the demo materializes: yesterday and today (the mock's)."""
    today = date.fromisoformat(demo_now()[:10])
    return [today - timedelta(days=1), today]


def demo_mock(points: int | None = None, port: int = 0) -> MockConfig:
    """The default server's mock, as ``make demo`` and ``make ui`` serve it (on 127.0.0.1)."""
    return MockConfig(host="127.0.0.1", port=port, tags=points or demo_from_env().points, now=demo_now())


@dataclass
class DemoTally:
    """What the demo's runs did: time-series values and seconds, check outcomes, report paths."""

    values: int = 0
    seconds: float = 0.0
    checks: Counter[tuple[str, bool]] = field(default_factory=Counter)
    failed: list[str] = field(default_factory=list)
    reports: list[str] = field(default_factory=list)


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
            now=demo_now(),
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
        tally = DemoTally()
        for server in servers:
            print(f"\n{server.name}: mock PI Web API on {server.base_url}, clock fixed at {demo_now()}")
            main_job(defs, instance, server, tally)
        _follow_pi(defs, instance, default, running["default"].url)
    _summary(lake.root, servers, tally, time.perf_counter() - started, instance)
    return 0


def main_job(
    defs: dg.Definitions, instance: dg.DagsterInstance, server: PIServerSettings, tally: DemoTally
) -> None:
    """AF, catalog, the time series of yesterday and today (with their checks), their event frames and
    ingestion reports, for one server, added to ``tally``."""
    key = ServerWiring(server).key
    shards = server_partitions(server).shard_keys
    _run(defs, instance, [key("pi_af_hierarchy"), key("pi_af_attributes")], tally)
    _run(defs, instance, [key("pi_points")], tally)
    for day in demo_days():
        _run(
            defs,
            instance,
            [key("pi_timeseries")],
            tally,
            partition_range=(f"{day.isoformat()}|{shards[0]}", f"{day.isoformat()}|{shards[-1]}"),
        )
        _run(defs, instance, [key("pi_event_frames")], tally, partition_key=day.isoformat())
        _run(defs, instance, [key("pi_ingestion_report")], tally, partition_key=day.isoformat())


def _follow_pi(
    defs: dg.Definitions, instance: dg.DagsterInstance, server: PIServerSettings, mock: str
) -> None:
    """One tick of ``pi_timeseries_sensor`` after PI changed (its clock moved 10 minutes: new and late
    values; a value of yesterday edited), the runs it requests, and the reconciliation of yesterday."""
    wiring = ServerWiring(server)
    yesterday, today = demo_days()
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
    _run(defs, instance, [wiring.key("pi_reconciliation")], DemoTally(), partition_key=yesterday.isoformat())


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
    tally: DemoTally,
    *,
    partition_key: str | None = None,
    partition_range: tuple[str, str] | None = None,
) -> None:
    """One Dagster run of ``assets`` and their checks (a partition range becomes one run, as a backfill
    batches it), added to ``tally``."""
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
    for event in result.get_asset_materialization_events():
        metadata = event.materialization.metadata
        if "points_matched" in metadata:
            print(
                f"    {event.partition}: {metadata['points_matched'].value} points match PI, "
                f"{metadata['points_differ'].value} differ"
            )
        if "report_path" in metadata:
            tally.reports.append(metadata["report_path"].value)
            print(f"    report: {metadata['report_path'].value}")
        if event.asset_key.path[-1] == "pi_timeseries":
            tally.values += metadata["dagster/row_count"].value
    if any(a.path[-1] == "pi_timeseries" for a in assets):
        tally.seconds += seconds
    for evaluation in result.get_asset_check_evaluations():
        name = f"{evaluation.asset_check_key.asset_key.to_user_string()}.{evaluation.check_name}"
        tally.checks[(name, evaluation.passed)] += 1
        if not evaluation.passed:
            tally.failed.append(f"{name} {evaluation.partition or ''} ({evaluation.severity.value})".strip())


def _summary(
    root: str, servers: list[PIServerSettings], tally: DemoTally, seconds: float, instance: dg.DagsterInstance
) -> None:
    print("\nTables (Delta Lake):")
    for server in servers:
        lake = Lakehouse(root, table_prefix=server.table_prefix)
        for name in MAIN_JOB_TABLES:
            table = lake.table(name)
            print(f"  {table.name:<36} {row_count(table) if table.exists() else 0:>12,} rows   {table.uri}")
    rate = tally.values / tally.seconds if tally.seconds else 0
    print(
        f"\nTime series: {tally.values:,} values read and written in {tally.seconds:.1f} s ({rate:,.0f} "
        "values/s, Dagster runs included; a second demo reads yesterday whole again and today from its "
        "watermarks minus the overlap window)"
    )
    print("\nAsset checks (evaluations passed / failed):")
    for name in sorted({name for name, _ in tally.checks}):
        print(f"  {name:<52} {tally.checks[(name, True)]:>4} passed {tally.checks[(name, False)]:>4} failed")
    for failure in tally.failed:
        print(f"  failed: {failure}")
    print("\nIngestion reports (open in a browser; also in gold.pi_ingestion_report):")
    for path in tally.reports:
        print(f"  {path}")
    print(f"\nDemo finished in {seconds:.1f} s. Dagster runs are recorded in {instance.root_directory}.")
    print("Open the Dagster UI on these runs and assets with `make ui` (http://127.0.0.1:3000).")


if __name__ == "__main__":
    sys.exit(main())
