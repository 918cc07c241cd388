"""Retries match the documentation: 500 is retried like 502/503/504, batch POSTs too, each retry counted.

A proxy in front of the mock fails chosen requests (a 500 from a busy AF SDK cache, a 503 on a batch POST,
a ``Retry-After`` the server garbled) and forwards the rest. Every request the client sends, urllib3's
retries included, must be counted in ``requests_sent`` and in the read's ``requests``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from email.utils import formatdate

import pytest

from osipi_dagster.pi import PIWebAPIClient
from osipi_dagster_tests.pi_helpers import raw_recorded, rows_of
from osipi_dagster_tests.untrusted_server import Answer, Exchange, Proxy

START = datetime(2025, 1, 6, tzinfo=UTC)
END = START + timedelta(minutes=10)


class FailFirst:
    """Answers the first ``count`` requests whose path holds ``route`` with ``status``; forwards the rest."""

    def __init__(self, count: int, status: int, route: str, headers: dict[str, str] | None = None):
        self.count, self.status, self.route = count, status, route
        self.headers = {"Content-Type": "application/json", **(headers or {})}
        self.failed = 0
        self._lock = threading.Lock()

    def __call__(self, exchange: Exchange) -> Answer | None:
        if self.route not in exchange.route:
            return None
        with self._lock:
            if self.failed >= self.count:
                return None
            self.failed += 1
        body = {"Errors": [f"the test proxy failed this request with {self.status}"]}
        return Answer(self.status, json.dumps(body).encode(), self.headers)


@pytest.fixture(scope="module")
def web_ids(mock_pi) -> list[str]:
    with PIWebAPIClient(mock_pi.api) as client:
        (server,) = client.data_servers()
        return [point.web_id for point in client.points(server.web_id)][::25]


@pytest.fixture(scope="module")
def reference(mock_pi, web_ids) -> Counter:
    start, end = START.isoformat(), END.isoformat()
    return Counter(row for web_id in web_ids for row in raw_recorded(mock_pi.api, web_id, start, end))


def _client(proxy: Proxy, **options) -> PIWebAPIClient:
    return PIWebAPIClient(proxy.api, backoff_base_s=0.01, backoff_max_s=0.05, **options)


def _sent(proxy: Proxy, route: str) -> int:
    return sum(route in exchange.route for exchange in proxy.exchanges)


def test_a_500_in_a_streamset_request_is_retried_not_reported(mock_pi, web_ids, reference, caplog):
    """PI Web API answers 500 for a busy AF SDK cache or an IIS recycle: one 500 must not fail every
    stream of the request."""
    caplog.set_level(logging.WARNING, logger="osipi_dagster.pi")
    busy = FailFirst(1, 500, "/streamsets/")
    proxy = Proxy(mock_pi.url, answer=busy)
    try:
        with _client(proxy) as client:
            read = client.read_recorded(web_ids, START, END, page_size=2000)
            rows = rows_of(read)
            sent = client.requests_sent
    finally:
        proxy.close()
    assert busy.failed == 1
    assert not read.failures and Counter(rows) == reference
    assert read.requests == _sent(proxy, "/streamsets/") and sent == len(proxy.exchanges)  # the 500 counted
    assert any("HTTP 500" in r.getMessage() and "retry 1 of 3" in r.getMessage() for r in caplog.records)


def test_a_500_that_persists_fails_after_the_retries(mock_pi, web_ids):
    down = FailFirst(10**6, 500, "/streamsets/")
    proxy = Proxy(mock_pi.url, answer=down)
    try:
        with _client(proxy, max_retries=2) as client:
            read = client.read_recorded(web_ids, START, END)
            assert rows_of(read) == []
            sent = client.requests_sent
    finally:
        proxy.close()
    assert sorted(failure.web_id for failure in read.failures) == sorted(web_ids)
    assert all(failure.status == 500 for failure in read.failures)
    assert "the test proxy failed this request with 500" in read.failures[0].message
    assert read.requests == sent == down.failed == 3  # one request and its two retries


def test_a_batch_post_is_retried_on_503(mock_pi, web_ids, reference):
    """The batch controller's POST only reads: it is retried like a GET (urllib3 does not by default)."""
    busy = FailFirst(1, 503, "/batch")
    proxy = Proxy(mock_pi.url, answer=busy)
    try:
        with _client(proxy) as client:
            read = client.read_recorded(web_ids, START, END, mode="batch", page_size=2000)
            rows = rows_of(read)
    finally:
        proxy.close()
    assert busy.failed == 1
    assert not read.failures and Counter(rows) == reference
    assert read.requests == _sent(proxy, "/batch")


@pytest.mark.parametrize(
    ("retry_after", "least", "most"),
    [("soon", 0.0, 2.0), ("2", 2.0, 5.0), (None, 1.0, 5.0)],
    ids=["garbled: the backoff", "seconds", "an HTTP date"],
)
def test_retry_after_is_waited_and_a_garbled_one_is_not_an_error(mock_pi, retry_after, least, most):
    """A 429 waits what ``Retry-After`` asks (seconds or an HTTP date); one that cannot be read is
    ignored for the backoff, never raised."""
    header = retry_after if retry_after is not None else formatdate(time.time() + 2.5, usegmt=True)
    throttled = FailFirst(1, 429, "/dataservers", {"Retry-After": header})
    proxy = Proxy(mock_pi.url, answer=throttled)
    try:
        with _client(proxy) as client:
            started = time.monotonic()
            assert client.data_servers()
            elapsed = time.monotonic() - started
            assert client.requests_sent == 2
    finally:
        proxy.close()
    assert least <= elapsed < most
