"""The alert core without Dagster: the cursor's round trip, messages, and webhook errors that never name the
URL (a closed port on 127.0.0.1 and a real receiver that echoes the URL back)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from osipi_dagster.ingest.alarms_alerts import AlertCursor, WebhookError, alarm_message, post_message

TOKEN = "xoxb-secret-token-1234"


@pytest.fixture
def echoing() -> Iterator[str]:
    """A webhook that answers 403 with the path and query it was sent."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(403)
            self.end_headers()
            self.wfile.write(f"no access for {self.path}".encode())

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks/{TOKEN}?token={TOKEN}x"
    server.shutdown()


def test_the_cursor_round_trips_and_a_foreign_one_is_named() -> None:
    cursor = AlertCursor(datetime(2025, 1, 6, tzinfo=UTC), {"b", "a"}, 7, {9, 8})
    assert AlertCursor.from_json(cursor.to_json()) == cursor
    with pytest.raises(ValueError, match="reset the sensor's cursor"):
        AlertCursor.from_json('{"floor": 3}')


def test_an_alarm_message_is_slack_compatible() -> None:
    alarm = {
        "name": "Unit02 High Temperature",
        "rule_name": "Critical Process Alarms",
        "element_path": "\\\\AF\\DB\\Unit02",
        "severity": "Critical",
        "start_time": datetime(2025, 1, 6, 9, 30, tzinfo=UTC),
        "end_time": None,
        "is_acknowledged": True,
        "acknowledged_by": "MOCK\\j.smith",
    }
    message = alarm_message(alarm, "default")
    assert message["blocks"] == [{"type": "section", "text": {"type": "mrkdwn", "text": message["text"]}}]
    for part in (
        "Critical",
        "Unit02 High Temperature",
        "Critical Process Alarms",
        "2025-01-06 09:30:00",
        "active",
    ):
        assert part in message["text"]
    assert "MOCK\\j.smith" in message["text"]


def test_an_answer_echoing_the_url_is_reported_without_it(echoing: str) -> None:
    with pytest.raises(WebhookError, match="HTTP 403") as raised:
        post_message(requests.Session(), echoing, {"text": "x"})
    assert TOKEN not in str(raised.value) and "no access for /hooks/***" in str(raised.value)


def test_an_unreachable_webhook_is_reported_without_its_url() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(WebhookError, match="could not be reached") as raised:
        post_message(requests.Session(), f"http://127.0.0.1:{port}/hooks/{TOKEN}", {"text": "x"}, timeout=2)
    assert TOKEN not in str(raised.value) and raised.value.__cause__ is None
