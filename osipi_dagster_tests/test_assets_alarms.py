"""The alarm assets materialized through Dagster against the mock and Delta, and ``pi_alarm_alerts_sensor``
posting to a local HTTP receiver: each new alarm and each failed ERROR check exactly once, the webhook URL
nowhere in what it posts, logs or keeps."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dagster as dg
import pytest
import requests
from dagster._core.definitions.sensor_definition import SensorExecutionData

from osipi_dagster.defs.pi_server import server_assets
from osipi_dagster.defs.pi_server.alarms_sensor import AlertWebhookResource, alarm_webhook_resource
from osipi_dagster.defs.pi_server.component import server_definitions
from osipi_dagster.defs.pi_server.wiring import ServerWiring
from osipi_dagster.defs.resources import DeltaLakehouseResource, PIWebAPIResource
from osipi_dagster.ingest.alarms_alerts import AlertCursor
from osipi_dagster.lake import Lakehouse, read_table
from osipi_dagster.mock.server import RunningMock
from osipi_dagster.settings import PIServerSettings

TODAY = "2025-01-06"  # the mock's clock: 2025-01-06T12:00:00Z
SECRET = "not-a-real-token"
HOOK_VARIABLE = "OSIPI_TEST_ALARM_WEBHOOK"
SETTINGS = PIServerSettings(alarm_webhook_url_env_var=HOOK_VARIABLE, alarm_alert_min_severity="Major")
ASSETS = server_assets(SETTINGS)


class Receiver:
    """A webhook on 127.0.0.1 that keeps what it is sent; ``fail_from`` makes it answer 500 from the n-th
    message on (1-based) until reset."""

    def __init__(self) -> None:
        self.messages: list[dict] = []
        self.fail_from: int | None = None
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                failing = receiver.fail_from is not None and len(receiver.messages) + 1 >= receiver.fail_from
                if failing:
                    self.send_response(500)
                else:
                    receiver.messages.append(body)
                    self.send_response(200)
                self.end_headers()
                # A failing webhook echoing what it was sent, token included, as some do.
                self.wfile.write(f"invalid_token for {self.path}".encode() if failing else b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/services/T0000/B0000/{SECRET}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def take(self) -> list[dict]:
        taken, self.messages = self.messages, []
        return taken


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    yield running
    running.server.shutdown()


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as test_instance:
        yield test_instance


def materialize_today(
    api: str, root: Path, instance: dg.DagsterInstance, *, catalog: bool
) -> dict[str, dict]:
    """Materialize (the catalog and rules, then) today's event frames, alarms and alarm summary; return each
    asset's metadata by asset name."""
    resources = {"pi": PIWebAPIResource(base_url=api), "lakehouse": DeltaLakehouseResource(root=str(root))}
    events = []
    if catalog:
        result = dg.materialize(
            [ASSETS.af, ASSETS.notification_rules], resources=resources, instance=instance
        )
        events += result.get_asset_materialization_events()
    result = dg.materialize(
        [ASSETS.event_frames, ASSETS.alarms, ASSETS.alarm_summary],
        partition_key=TODAY,
        resources=resources,
        instance=instance,
    )
    assert result.success
    events += result.get_asset_materialization_events()
    return {
        event.asset_key.path[-1]: {k: v.value for k, v in event.materialization.metadata.items()}
        for event in events
    }


def tick(
    root: Path, receiver: Receiver, instance: dg.DagsterInstance, cursor: str | None
) -> SensorExecutionData:
    """One tick of the sensor as the daemon runs it."""
    (sensor,) = [s for s in server_definitions(SETTINGS).sensors if s.name == "pi_alarm_alerts_sensor"]
    with dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={
            "lakehouse": DeltaLakehouseResource(root=str(root)),
            "alarm_webhook": AlertWebhookResource(url=receiver.url),
        },
    ) as context:
        return sensor.evaluate_tick(context)


def major_alarms(root: Path) -> set[str]:
    rows = read_table(Lakehouse(str(root)).table("silver.pi_alarms")).to_pylist()
    return {row["web_id"] for row in rows if row["severity_level"] >= 4}


def posted_names(messages: list[dict]) -> list[str]:
    return [message["text"] for message in messages]


def test_the_assets_carry_kinds_groups_and_docstrings() -> None:
    for asset in (ASSETS.notification_rules, ASSETS.alarms, ASSETS.alarm_summary):
        (spec,) = asset.specs
        assert spec.description and spec.kinds and spec.group_name
    assert ASSETS.alarms.specs_by_key[dg.AssetKey("pi_alarms")].group_name == "pi_silver"
    assert ASSETS.alarm_summary.specs_by_key[dg.AssetKey("pi_alarm_summary")].group_name == "pi_gold"
    assert not [s for s in server_definitions(PIServerSettings()).sensors if "alarm" in s.name]


def test_the_webhook_url_is_an_env_var_and_never_shown() -> None:
    (resource,) = alarm_webhook_resource(ServerWiring(SETTINGS)).values()
    assert resource.url == dg.EnvVar(HOOK_VARIABLE)
    assert SECRET not in repr(AlertWebhookResource(url=f"https://hooks.example/{SECRET}"))


def test_alarms_through_dagster_and_each_new_alarm_posted_once(
    make_mock, tmp_path: Path, receiver: Receiver, instance: dg.DagsterInstance
) -> None:
    running: RunningMock = make_mock()
    metadata = materialize_today(running.api, tmp_path, instance, catalog=True)
    assert metadata["pi_notification_rules"]["dagster/row_count"] == len(running.state.notifications.rules)
    assert metadata["pi_alarms"]["rows_inserted"] == metadata["pi_alarms"]["alarms"] > 0
    lake = Lakehouse(str(tmp_path))
    started_today = [
        row
        for row in read_table(lake.table("silver.pi_alarms")).to_pylist()
        if str(row["partition_date"]) == TODAY
    ]
    summary = read_table(lake.table("gold.pi_alarm_summary")).to_pylist()
    assert (
        metadata["pi_alarm_summary"]["alarms"]
        == sum(row["alarms"] for row in summary)
        == len(started_today)
        > 0
    )
    ranked = sorted((r for r in summary if r["bad_actor_rank"]), key=lambda r: r["bad_actor_rank"])
    assert [r["bad_actor_rank"] for r in ranked] == list(
        range(1, min(10, sum(r["alarms"] > 0 for r in summary)) + 1)
    )
    assert [r["alarms"] for r in ranked] == sorted((r["alarms"] for r in summary), reverse=True)[
        : len(ranked)
    ]

    # Turned on: the alarms already in the lake are not posted.
    first = tick(tmp_path, receiver, instance, None)
    assert receiver.take() == [] and first.cursor

    # From midnight: every Major or Critical alarm once, oldest first.
    midnight = AlertCursor(datetime(2025, 1, 6, tzinfo=UTC)).to_json()
    posted = tick(tmp_path, receiver, instance, midnight)
    messages = receiver.take()
    assert len(messages) == len(major_alarms(tmp_path)) > 0
    assert all(set(m) == {"text", "blocks"} and m["blocks"][0]["text"]["text"] == m["text"] for m in messages)
    assert tick(tmp_path, receiver, instance, posted.cursor).cursor and receiver.take() == []

    # An acknowledgement and a later hour: only the alarms that are new are posted.
    before = major_alarms(tmp_path)
    acknowledged = next(iter(before))
    # 409 when it is acknowledged already, 400 when it cannot be: either way PI's truth is settled.
    answer = requests.post(
        f"{running.url}/admin/eventframes/acknowledge", json={"WebId": acknowledged}, timeout=10
    )
    assert answer.status_code in (200, 400, 409)
    requests.post(f"{running.url}/admin/clock", json={"advance": "6h"}, timeout=10).raise_for_status()
    materialize_today(running.api, tmp_path, instance, catalog=False)
    new = major_alarms(tmp_path) - before
    assert new, "six more hours of the mock brought no Major alarm"
    later = tick(tmp_path, receiver, instance, posted.cursor)
    assert len(receiver.take()) == len(new)
    assert tick(tmp_path, receiver, instance, later.cursor) and receiver.take() == []

    for text in (json.dumps(messages), posted.cursor, later.cursor):
        assert SECRET not in text


def test_a_failing_webhook_posts_the_rest_on_the_next_tick_once(
    make_mock, tmp_path: Path, receiver: Receiver, instance: dg.DagsterInstance
) -> None:
    running: RunningMock = make_mock()
    materialize_today(running.api, tmp_path, instance, catalog=True)
    expected = len(major_alarms(tmp_path))
    assert expected >= 3
    receiver.fail_from = 3
    failed = tick(tmp_path, receiver, instance, AlertCursor(datetime(2025, 1, 6, tzinfo=UTC)).to_json())
    assert len(receiver.take()) == 2
    assert "HTTP 500" in failed.skip_message and SECRET not in failed.skip_message
    receiver.fail_from = None
    tick(tmp_path, receiver, instance, failed.cursor)
    assert len(receiver.take()) == expected - 2


def test_failed_error_checks_of_the_server_are_posted_once(
    tmp_path: Path, receiver: Receiver, instance: dg.DagsterInstance
) -> None:
    first = tick(tmp_path, receiver, instance, None)
    for key, severity, passed in (
        (["pi_timeseries"], dg.AssetCheckSeverity.ERROR, False),
        (["pi_timeseries"], dg.AssetCheckSeverity.WARN, False),
        (["pi_timeseries"], dg.AssetCheckSeverity.ERROR, True),
        (["site_b", "pi_timeseries"], dg.AssetCheckSeverity.ERROR, False),
    ):
        instance.report_runless_asset_event(
            dg.AssetCheckEvaluation(
                asset_key=dg.AssetKey(key),
                check_name="duplicates",
                passed=passed,
                severity=severity,
                description="3 duplicated rows",
            )
        )
    second = tick(tmp_path, receiver, instance, first.cursor)
    (message,) = receiver.take()
    assert "duplicates" in message["text"] and "pi_timeseries" in message["text"]
    tick(tmp_path, receiver, instance, second.cursor)
    assert receiver.take() == []
