"""A read can be cancelled from another thread: iterating raises ``ReadCancelledError`` within about a
second, even while slow requests are in flight, and nothing more is sent.

The ingest layer consumes a read in a thread (delta-rs pulls the batches) while the main thread turns
SIGTERM into ``cancel.set()``; these tests do the same against a proxy that holds every answer back.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from osipi_dagster.pi import PIWebAPIClient, StreamRead
from osipi_dagster.pi.recorded import ReadCancelledError
from osipi_dagster_tests.answer_proxy import Exchange, answer_proxy
from osipi_dagster_tests.pi_helpers import rows_of

START = datetime(2025, 1, 6, 0, 0, tzinfo=UTC)
END = START + timedelta(minutes=30)
MODES = ("streamsets", "batch", "streams")
DELAY_S = 3.0


@pytest.fixture(scope="module")
def web_ids(mock_pi) -> list[str]:
    with PIWebAPIClient(mock_pi.api) as client:
        (server,) = client.data_servers()
        return [p.web_id for p in client.points(server.web_id)][:6]


def _consume_in_thread(read: StreamRead) -> tuple[threading.Thread, dict[str, Any]]:
    """Iterate ``read`` in another thread, as delta-rs does; the outcome lands in the returned dict."""
    outcome: dict[str, Any] = {"rows": 0}

    def consume() -> None:
        try:
            for batch in read:
                outcome["rows"] += batch.num_rows
        except ReadCancelledError as error:
            outcome["cancelled_at"] = time.monotonic()
            outcome["error"] = error

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    return thread, outcome


@pytest.mark.parametrize("mode", MODES)
def test_cancel_while_requests_are_in_flight(mock_pi, web_ids, mode):
    cancel = threading.Event()
    with answer_proxy(mock_pi.url, delay_s=DELAY_S) as proxy, PIWebAPIClient(proxy.api) as client:
        read = client.read_recorded(web_ids, START, END, mode=mode, page_size=200, cancel=cancel)
        thread, outcome = _consume_in_thread(read)
        time.sleep(0.5)  # the first requests are held by the proxy
        sent = proxy.count()
        assert sent >= 1
        set_at = time.monotonic()
        cancel.set()
        thread.join(timeout=5)
        assert not thread.is_alive()
        assert isinstance(outcome.get("error"), ReadCancelledError)
        assert outcome["cancelled_at"] - set_at < 1.0
        assert outcome["rows"] == 0
        time.sleep(DELAY_S + 0.5)  # the requests in flight are answered; nothing follows them
        assert proxy.count() == sent
        with pytest.raises(ReadCancelledError):
            next(read)


def test_cancel_while_a_failed_stream_waits_for_its_retry(mock_pi, web_ids):
    """PI fails the stream inside its answer (``Errors``): the read waits to read it again; cancelled
    meanwhile, it ends at once and the retry is never sent."""

    def busy(exchange: Exchange) -> Any:
        for entry in exchange.answer["Items"]:
            entry["Errors"] = ["The server is busy."]
        return exchange.answer

    cancel = threading.Event()
    with (
        answer_proxy(mock_pi.url, busy) as proxy,
        PIWebAPIClient(proxy.api, backoff_base_s=2.0, backoff_max_s=2.0, max_retries=5) as client,
    ):
        read = client.read_recorded(web_ids[:1], START, END, cancel=cancel)
        timer = threading.Timer(1.0, cancel.set)
        timer.start()
        started = time.monotonic()
        with pytest.raises(ReadCancelledError):
            rows_of(read)
        assert 0.9 < time.monotonic() - started < 2.0
        sent = proxy.count()
        assert sent == 2  # the first read and its immediate retry; the next waits 2 s or more
        time.sleep(3.0)
        assert proxy.count() == sent


def test_cancel_during_a_transport_retry_wait_sends_no_retry(mock_pi, web_ids):
    """The server is busy (503): urllib3 waits to send the request again; cancelled meanwhile, the read
    ends at once and the retry is not sent."""

    def busy(exchange: Exchange) -> Any:
        exchange.status = 503
        return {"Errors": ["The server is busy."]}

    cancel = threading.Event()
    with (
        answer_proxy(mock_pi.url, busy) as proxy,
        PIWebAPIClient(proxy.api, backoff_base_s=2.0, backoff_max_s=2.0, max_retries=5) as client,
    ):
        read = client.read_recorded(web_ids[:1], START, END, cancel=cancel)
        threading.Timer(0.5, cancel.set).start()
        started = time.monotonic()
        with pytest.raises(ReadCancelledError):
            rows_of(read)
        assert time.monotonic() - started < 1.5
        sent = proxy.count()  # the first request and urllib3's immediate retry
        time.sleep(3.0)
        assert proxy.count() == sent


def test_a_cancelled_read_sends_nothing(mock_pi, web_ids):
    cancel = threading.Event()
    cancel.set()
    with answer_proxy(mock_pi.url) as proxy, PIWebAPIClient(proxy.api) as client:
        reads = [
            client.read_recorded(web_ids, START, END, cancel=cancel),
            client.read_value(web_ids, cancel=cancel),
            client.read_end(web_ids, mode="batch", cancel=cancel),
            client.read_interpolated(web_ids, START, END, "1m", cancel=cancel),
            client.read_plot(web_ids, START, END, cancel=cancel),
            client.read_summary(web_ids[0], START, END, cancel=cancel),
        ]
        for read in reads:
            with pytest.raises(ReadCancelledError):
                next(read)
        assert proxy.count() == 0


def test_an_event_that_is_never_set_changes_nothing(mock_pi, web_ids):
    with PIWebAPIClient(mock_pi.api) as client:
        plain = client.read_recorded(web_ids, START, END, page_size=500)
        watched = client.read_recorded(web_ids, START, END, page_size=500, cancel=threading.Event())
        assert Counter(rows_of(watched)) == Counter(rows_of(plain))
        assert not watched.failures and sorted(watched.completed) == sorted(web_ids)
