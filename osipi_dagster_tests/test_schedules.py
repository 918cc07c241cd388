"""The schedules: the open day every hour, yesterday again after midnight, every shard, valid partitions."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg
import pytest

from osipi_dagster.definitions import build_definitions
from osipi_dagster.settings import LakeSettings, PIServerSettings
from osipi_dagster_tests.definitions_helpers import DEFAULT_PARTITIONS

# A PI Web API without stream updates: the schedules keep its lake current (otherwise they skip).
defs = build_definitions(LakeSettings(), [PIServerSettings(stream_updates=False)])

TICK = datetime(2025, 1, 6, 3, 15, tzinfo=UTC)


def _evaluate(name: str, tick: datetime = TICK, definitions: dg.Definitions = defs):
    schedule = definitions.resolve_schedule_def(name)
    with (
        dg.instance_for_test() as instance,
        dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=tick,
            repository_def=definitions.get_repository_def(),
            resources={"pi": definitions.resources["pi"]},
        ) as context,
    ):
        return schedule.evaluate_tick(context)


def _requests(name: str, tick: datetime = TICK) -> list[dg.RunRequest]:
    result = _evaluate(name, tick)
    assert result.skip_message is None
    return list(result.run_requests or [])


@pytest.mark.parametrize(("cadence", "day"), [("open_day", "2025-01-06"), ("close_day", "2025-01-05")])
def test_timeseries_schedules_request_every_shard_of_their_day(cadence: str, day: str) -> None:
    """Each tick asks for one partition per shard of its day (today, or yesterday read whole again)."""
    requests = _requests(f"pi_timeseries_{cadence}")
    keys = {str(r.partition_key) for r in requests}
    assert keys == {f"{day}|{shard}" for shard in DEFAULT_PARTITIONS.shard_keys}
    assert all(DEFAULT_PARTITIONS.timeseries.has_partition_key(key) for key in keys)
    assert len({r.run_key for r in requests}) == len(requests)  # a re-evaluated tick launches nothing twice


@pytest.mark.parametrize(("cadence", "day"), [("open_day", "2025-01-06"), ("close_day", "2025-01-05")])
def test_event_frame_schedules_request_their_day(cadence: str, day: str) -> None:
    (request,) = _requests(f"pi_event_frames_{cadence}")
    assert request.partition_key == day and DEFAULT_PARTITIONS.dates.has_partition_key(day)


def test_schedules_start_stopped_and_run_when_expected() -> None:
    """Nothing runs until an operator turns the schedules on; the close-day run comes after midnight UTC."""
    for schedule in defs.schedules:
        assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
        assert schedule.execution_timezone == "UTC"
        assert schedule.description
    assert defs.resolve_schedule_def("pi_timeseries_open_day").cron_schedule == "5 * * * *"
    assert defs.resolve_schedule_def("pi_timeseries_close_day").cron_schedule == "15 3 * * *"


def test_each_tick_has_its_own_run_keys() -> None:
    """Two ticks of the open-day schedule (an hour apart) launch new runs: run keys differ."""
    first = {r.run_key for r in _requests("pi_timeseries_open_day")}
    later = {r.run_key for r in _requests("pi_timeseries_open_day", TICK.replace(hour=4))}
    assert first.isdisjoint(later)


def test_the_time_series_schedules_skip_where_the_sensor_follows_stream_updates() -> None:
    """With stream updates (the default), pi_timeseries_sensor does the schedules' work: they skip, saying
    why, so turning both on does not read everything twice."""
    followed = build_definitions(LakeSettings(), [PIServerSettings()])
    for cadence in ("open_day", "close_day"):
        result = _evaluate(f"pi_timeseries_{cadence}", definitions=followed)
        assert not result.run_requests
        assert "pi_timeseries_sensor follows this PI server" in (result.skip_message or "")
