"""A lake with three closed days of bronze, silver and gold for a small mock, and independent reads of the
mock (plain ``requests`` + ``json``, no client code) to check silver and gold against.

The mock has 45 points (three units): 1 s, 5 s, 60 s and irregular points, step and interpolated, Float32,
Float64, Int32, digital and string, with system states and several values at one timestamp (multi points).
One tag shard holds them all. Its clock is fixed two days after the test day, so the day after it is
closed too and every late value has arrived.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import requests

from osipi_dagster.ingest.af import refresh_af
from osipi_dagster.ingest.catalog import PointFilter, refresh_point_catalog, shard_points
from osipi_dagster.ingest.gold import aggregate_partition
from osipi_dagster.ingest.silver import clean_partition
from osipi_dagster.ingest.timeseries import ingest_partition
from osipi_dagster.lake import Lakehouse
from osipi_dagster.mock.server import RunningMock, serve_in_thread
from osipi_dagster.pi import PIWebAPIClient
from osipi_dagster_tests.conftest import TEST_CONFIG
from osipi_dagster_tests.timeseries_helpers import day_start_ns, pi_time

DAY = date(2025, 1, 5)
DAYS = (DAY - timedelta(days=1), DAY, DAY + timedelta(days=1))
SHARD = "s00"
HOUR_NS = 3_600_000_000_000
MOCK_NOW = "2025-01-07T12:00:00Z"
CONFIG = replace(TEST_CONFIG, tags=45, now=MOCK_NOW)
NOW = datetime(2025, 1, 7, 12, tzinfo=UTC)


@dataclass(frozen=True)
class DayLake:
    """The mock and a lake holding bronze, silver and gold of ``DAYS`` (gold of ``DAY`` only)."""

    mock: RunningMock
    lake: Lakehouse

    def table(self, name: str):
        return self.lake.table(name)


def serve_mock() -> Iterator[RunningMock]:
    with serve_in_thread(CONFIG) as running:
        yield running


def build_bronze(api: str, lake: Lakehouse, days: tuple[date, ...] = DAYS) -> list[str]:
    """AF, the catalog (one shard) and bronze of ``days``; returns the shard's WebIds."""
    with PIWebAPIClient(api) as client:
        refresh_af(client, lake.table("bronze.pi_af_hierarchy"), lake.table("bronze.pi_af_attributes"))
        refresh_point_catalog(
            client,
            lake.table("bronze.pi_points"),
            af_attributes_table=lake.table("bronze.pi_af_attributes"),
            hierarchy_table=lake.table("bronze.pi_af_hierarchy"),
            shard_count=1,
            point_filter=PointFilter(),
            now=NOW,
        )
        web_ids = shard_points(lake.table("bronze.pi_points"), SHARD).read
        for day in days:
            ingest_partition(
                client,
                timeseries=lake.table("bronze.pi_timeseries"),
                watermarks=lake.table("checkpoints.pi_watermarks"),
                web_ids=web_ids,
                day=day,
                shard=SHARD,
                now=NOW,
            )
    return web_ids


def run_silver(lake: Lakehouse, day: date):
    return clean_partition(
        bronze=lake.table("bronze.pi_timeseries"),
        silver=lake.table("silver.pi_timeseries_clean"),
        edges=lake.table("silver.pi_timeseries_edges"),
        points=lake.table("bronze.pi_points"),
        af_hierarchy=lake.table("bronze.pi_af_hierarchy"),
        af_attributes=lake.table("bronze.pi_af_attributes"),
        day=day,
        shard=SHARD,
    )


def run_gold(lake: Lakehouse, day: date = DAY):
    return aggregate_partition(
        silver=lake.table("silver.pi_timeseries_clean"),
        edges=lake.table("silver.pi_timeseries_edges"),
        gold=lake.table("gold.pi_timeseries_hourly"),
        day=day,
        shard=SHARD,
    )


def build_day_lake(mock: RunningMock, root: Path) -> DayLake:
    lake = Lakehouse(str(root))
    build_bronze(mock.api, lake)
    for day in DAYS:
        run_silver(lake, day)
    run_gold(lake)
    return DayLake(mock, lake)


def summaries(api: str, web_ids: list[str], start_ns: int, end_ns: int, types: str, **params: str) -> dict:
    """``/streamsets/summary`` of ``web_ids`` over PI's inclusive ``[start, end]``: per WebId, per summary
    type, the list of values (``TimedValue`` dicts) in interval order."""
    answer = requests.get(
        f"{api}/streamsets/summary",
        params=[("webId", w) for w in web_ids]
        + [("startTime", pi_time(start_ns)), ("endTime", pi_time(end_ns)), ("summaryType", types)]
        + list(params.items()),
        timeout=120,
    )
    answer.raise_for_status()
    found: dict[str, dict[str, list[dict]]] = {}
    for stream in answer.json()["Items"]:
        per_type = found.setdefault(stream["WebId"], {})
        for item in stream["Items"]:
            per_type.setdefault(item["Type"], []).append(item["Value"])
    return found


def day_start() -> int:
    return day_start_ns(DAY)


def get_json(api: str, path: str, **params: str) -> dict:
    answer = requests.get(f"{api}/{path}", params=params, timeout=60)
    answer.raise_for_status()
    return answer.json()
