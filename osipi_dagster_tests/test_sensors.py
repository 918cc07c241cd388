"""``pi_timeseries_sensor`` evaluated with ``dg.build_sensor_context`` against the mock over real HTTP, on a
real instance and real Delta tables: markers, PI's edits and deletes, day rollover, run keys, caps, lost
markers. Each requested run is executed the way the daemon would (the job, the request's tags and config),
and the lake is compared with the mock's truth at the end.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
import requests
from dagster._core.definitions.sensor_definition import SensorExecutionData

from osipi_dagster.definitions import build_definitions
from osipi_dagster.defs.pi_server.runs import RANGE_END, RANGE_START
from osipi_dagster.lake import Lakehouse, read_table
from osipi_dagster.mock.server import RunningMock
from osipi_dagster.settings import LakeSettings, PIServerSettings
from osipi_dagster_tests.timeseries_helpers import (
    SECOND_NS,
    assert_same_rows,
    day_start_ns,
    lake_rows,
    shard_web_ids,
    truth,
)

TODAY = date(2025, 1, 6)
YESTERDAY = TODAY - timedelta(days=1)
SHARDS = 4


class Site:
    """One PI server's definitions on a private mock, and a test instance to run them on."""

    def __init__(self, mock: RunningMock, root: Path, instance: dg.DagsterInstance, **settings) -> None:
        self.mock, self.instance = mock, instance
        self.server = PIServerSettings(base_url=mock.api, compress=False, tag_shards=SHARDS, **settings)
        self.defs = build_definitions(LakeSettings(root=str(root)), [self.server])
        self.lake = Lakehouse(str(root))
        self.sensor = self.defs.resolve_sensor_def("pi_timeseries_sensor")
        self.cursor: str | None = None

    def materialize(self, job: str, **options) -> None:
        result = self.defs.resolve_job_def(job).execute_in_process(instance=self.instance, **options)
        assert result.success

    def day(self, day: date) -> None:
        """Every shard of ``day``, as one run (a backfill run)."""
        self.materialize(
            "pi_timeseries_job",
            tags={RANGE_START: f"{day.isoformat()}|s00", RANGE_END: f"{day.isoformat()}|s{SHARDS - 1:02d}"},
        )

    def tick(self) -> SensorExecutionData:
        """One evaluation, as the daemon makes it (``evaluate_tick``), the cursor carried to the next."""
        with dg.build_sensor_context(
            instance=self.instance,
            cursor=self.cursor,
            resources={"pi": self.defs.resources["pi"], "lakehouse": self.defs.resources["lakehouse"]},
        ) as context:
            result = self.sensor.evaluate_tick(context)
        self.cursor = result.cursor
        return result

    def run(self, request: dg.RunRequest) -> None:
        """What the daemon does with a request: a run of the sensor's job with its tags and config."""
        self.materialize("pi_timeseries_job", tags=dict(request.tags), run_config=request.run_config)

    def clock(self, moment: str) -> None:
        answer = requests.post(f"{self.mock.url}/admin/clock", json={"now": moment}, timeout=30)
        answer.raise_for_status()

    def numeric_point(self, shard: str) -> str:
        """A point of ``shard`` that stores numbers (an edit gives it a number)."""
        rows = read_table(self.lake.table("bronze.pi_points")).to_pylist()
        return min(
            r["web_id"] for r in rows if r["tag_shard"] == shard and r["point_type"].startswith("Float")
        )

    def values(self, web_id: str, start: str, count: int) -> list[str]:
        """The timestamps of the point's first ``count`` values from ``start``."""
        answer = requests.get(
            f"{self.mock.api}/streams/{web_id}/recorded",
            params={"startTime": start, "endTime": "*", "maxCount": count},
            timeout=30,
        )
        answer.raise_for_status()
        return [item["Timestamp"] for item in answer.json()["Items"]]

    def edit(self, *edits: dict) -> list[dict]:
        answer = requests.post(f"{self.mock.url}/admin/edits", json={"Edits": list(edits)}, timeout=30)
        answer.raise_for_status()
        return answer.json()["Edits"]


@pytest.fixture
def site(make_mock, tmp_path: Path) -> Iterator[Site]:
    with dg.instance_for_test() as instance:
        site = Site(make_mock(tags=40, edit_share=0.0), tmp_path / "lake", instance)
        site.materialize("pi_catalog_job")
        site.day(YESTERDAY)
        site.day(TODAY)
        yield site


def owed(result: SensorExecutionData) -> set[tuple[str, str, str]]:
    """The (day, first shard, last shard) each request covers."""
    covered = set()
    for request in result.run_requests or []:
        first, last = request.tags[RANGE_START].split("|"), request.tags[RANGE_END].split("|")
        assert first[0] == last[0], "a run covers one day"
        covered.add((first[0], first[1], last[1]))
    return covered


def markers(site: Site) -> dict[str, dict]:
    rows = read_table(site.lake.table("checkpoints.pi_update_markers"))
    return {row["web_id"]: row for row in (rows.to_pylist() if rows is not None else [])}


def test_the_first_tick_registers_every_point_and_reads_today_again(site: Site) -> None:
    """Registration starts at now: what happened since each point's watermark is read again (today), and a
    tick evaluated twice requests the same runs (same run keys: the daemon launches them once)."""
    first = site.tick()

    assert len(markers(site)) == 40 and all(row["marker"] for row in markers(site).values())
    assert owed(first) == {(TODAY.isoformat(), "s00", f"s{SHARDS - 1:02d}")}
    (request,) = first.run_requests
    config = request.run_config["ops"]["pi_timeseries"]["config"]
    assert datetime.fromisoformat(config["reread_from"]) <= datetime.fromisoformat(
        "2025-01-06T12:00:00+00:00"
    )
    assert json.loads(first.cursor) == {"closed_through": YESTERDAY.isoformat(), "closing": {}}
    again = site.tick()
    assert {r.run_key for r in again.run_requests} == {r.run_key for r in first.run_requests}


def test_edits_and_deletes_of_a_closed_day_request_that_day_and_flow_to_the_lake(site: Site) -> None:
    site.run(site.tick().run_requests[0])  # settle the registration's work
    assert not site.tick().run_requests
    shard = "s01"
    web_id = site.numeric_point(shard)
    first, second = site.values(web_id, "2025-01-05T06:00:00Z", 2)
    made = site.edit(
        {"WebId": web_id, "Timestamp": first, "Value": 12345.5},
        {"WebId": web_id, "Timestamp": second, "Delete": True},
    )
    assert [edit["Action"] for edit in made] == ["Update", "Delete"]  # PI's actions for them

    result = site.tick()

    assert (YESTERDAY.isoformat(), shard, shard) in owed(result)
    for request in result.run_requests:
        site.run(request)
    start = day_start_ns(YESTERDAY)
    web_ids = shard_web_ids(site.lake, shard)
    assert_same_rows(
        lake_rows(site.lake.table("bronze.pi_timeseries"), YESTERDAY, shard),
        truth(site.mock.api, web_ids, start, start + 86_400 * SECOND_NS),
    )
    assert not site.tick().run_requests, "the work is done: nothing is requested again"


def test_a_lost_cache_registers_again_and_reads_from_the_watermark(site: Site) -> None:
    site.run(site.tick().run_requests[0])
    requests.post(f"{site.mock.url}/admin/updates/expire", timeout=30).raise_for_status()

    result = site.tick()

    assert owed(result) == {(TODAY.isoformat(), "s00", f"s{SHARDS - 1:02d}")}
    assert all(row["marker"] for row in markers(site).values())


def test_midnight_closes_yesterday_for_every_shard_until_it_is_read_whole(site: Site) -> None:
    site.run(site.tick().run_requests[0])
    site.clock("2025-01-07T00:05:00Z")

    result = site.tick()

    assert (TODAY.isoformat(), "s00", f"s{SHARDS - 1:02d}") in owed(result)
    assert list(json.loads(site.cursor)["closing"]) == [TODAY.isoformat()]
    closing = next(r for r in result.run_requests if r.tags[RANGE_START].startswith(TODAY.isoformat()))
    assert not closing.run_config, "a closed day is read whole: no reread_from"
    site.run(closing)
    assert json.loads(site.tick().cursor)["closing"] == {}


def test_a_cap_and_busy_partitions_hold_runs_for_later_ticks(make_mock, tmp_path: Path) -> None:
    with dg.instance_for_test() as instance:
        site = Site(
            make_mock(tags=40, edit_share=0.0), tmp_path / "lake", instance, sensor_max_runs_per_tick=1
        )
        site.materialize("pi_catalog_job")
        site.day(YESTERDAY)
        site.day(TODAY)
        site.tick()
        web_ids = {shard: site.numeric_point(shard) for shard in ("s00", "s02")}
        for web_id in web_ids.values():
            (stamp,) = site.values(web_id, "2025-01-05T06:00:00Z", 1)
            site.edit({"WebId": web_id, "Timestamp": stamp, "Value": 1.0})
        first = site.tick()
        assert len(first.run_requests) == 1  # the cap
        busy = site.instance.create_run_for_job(
            site.defs.resolve_job_def("pi_timeseries_job"),
            tags=dict(first.run_requests[0].tags),
            status=dg.DagsterRunStatus.STARTED,
        )
        second = site.tick()
        assert first.run_requests[0].tags[RANGE_START] not in {
            r.tags[RANGE_START] for r in second.run_requests
        }
        assert busy.run_id


def test_a_run_requested_before_an_edit_of_this_morning_does_not_clear_it(site: Site) -> None:
    """A run requested for today's new values waits in the queue while the next tick sees an edit of this
    morning, then starts: it reads today only from its own window's start (after the edit's time), so the
    edit is still owed, and the next tick requests a run that reads from the edit's time."""
    site.run(site.tick().run_requests[0])  # settle the registration's work
    shard = "s02"
    web_id = site.numeric_point(shard)
    site.clock("2025-01-06T12:10:00Z")
    queued = [r for r in site.tick().run_requests if r.tags[RANGE_START].startswith(TODAY.isoformat())]
    assert queued, "new values of today are owed"
    (morning,) = site.values(web_id, "2025-01-06T06:00:00Z", 1)
    site.edit({"WebId": web_id, "Timestamp": morning, "Value": 4242.5})
    site.tick()  # sees the edit: a run for it is owed, but the queued one has not started yet

    for request in queued:  # the queued runs start after the edit was seen, with their own windows
        site.run(request)
    again = site.tick()

    assert any(first <= shard <= last for day, first, last in owed(again) if day == TODAY.isoformat()), (
        "the edit of this morning is still owed"
    )
    for request in again.run_requests:
        config = request.run_config["ops"]["pi_timeseries"]["config"]
        assert datetime.fromisoformat(config["reread_from"]) <= datetime.fromisoformat(morning)
        site.run(request)
    rows = read_table(site.lake.table("bronze.pi_timeseries")).to_pylist()
    (stored,) = [
        row["value"]
        for row in rows
        if row["web_id"] == web_id and row["timestamp"] == datetime.fromisoformat(morning)
    ]
    assert stored == 4242.5
    assert not site.tick().run_requests, "the work is done: nothing is requested again"
