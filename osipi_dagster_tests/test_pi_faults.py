"""Injected faults end in complete data or in a reported failure for exactly the affected streams.

Each test runs a private mock, takes the fault-free oracle first, then switches the fault on through the
mock's admin API and reads again in every mode.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta

import pytest
import requests

from osipi_dagster.pi import PIWebAPIClient
from osipi_dagster_tests.pi_helpers import assert_complete_or_reported, raw_recorded, rows_of

START = datetime(2025, 1, 6, 0, 0, tzinfo=UTC)
END = START + timedelta(minutes=20)
MODES = ("streamsets", "batch", "streams")


@pytest.fixture
def faulty(make_mock):
    """A private mock, the WebIds of a mix of its tags, and the fault-free oracle of their values."""
    mock = make_mock()
    server = requests.get(f"{mock.api}/dataservers", timeout=10).json()["Items"][0]["WebId"]
    points = requests.get(f"{mock.api}/dataservers/{server}/points", params={"maxCount": 1000}, timeout=10)
    web_ids = [p["WebId"] for p in points.json()["Items"]][::17]  # a dozen tags of every kind
    reference = [
        row for w in web_ids for row in raw_recorded(mock.api, w, START.isoformat(), END.isoformat())
    ]
    assert len(reference) > 4000

    def set_faults(**faults) -> None:
        requests.put(f"{mock.url}/admin/faults", json={"seed": 7, **faults}, timeout=10).raise_for_status()

    return mock, web_ids, reference, set_faults


def _client(mock, **options) -> PIWebAPIClient:
    return PIWebAPIClient(mock.api, backoff_base_s=0.01, backoff_max_s=0.05, **options)


FAULTS = {
    "5xx": {"error_rate": 0.25},
    "429": {"throttle_rate": 0.3, "retry_after_s": 0},
    "dropped connections": {"drop_rate": 0.25},
    "truncated JSON": {"truncate_rate": 0.3},
    "malformed bodies": {"malformed_rate": 0.3},
    "WebException": {"web_exception_rate": 0.3},
    "failed sub-requests": {"batch_fail_rate": 0.3},
    "per-value Errors": {"value_error_rate": 0.0005},
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_fault_ends_complete_or_reported(faulty, fault):
    mock, web_ids, reference, set_faults = faulty
    with _client(mock) as client:
        clean = {m: client.read_recorded(web_ids, START, END, mode=m, page_size=500) for m in MODES}
        baseline = {m: (len(rows_of(read)), read.requests) for m, read in clean.items()}
    set_faults(**FAULTS[fault])
    extra = 0
    for mode in MODES:
        with _client(mock) as client:
            read = client.read_recorded(web_ids, START, END, mode=mode, page_size=500)
            rows = rows_of(read)
            assert_complete_or_reported(read, rows, reference, web_ids)
            assert rows, mode
            extra += read.requests - baseline[mode][1] + len(read.failures)
    assert extra > 0, "the fault never fired: the test would prove nothing"


def test_timeouts_are_retried(faulty):
    mock, web_ids, reference, set_faults = faulty
    set_faults(timeout_rate=0.2, timeout_s=1.5)
    with _client(mock, timeout=0.5) as client:
        read = client.read_recorded(web_ids, START, END, page_size=2000, concurrency=4)
        rows = rows_of(read)
    assert_complete_or_reported(read, rows, reference, web_ids)


def test_server_down_reports_every_stream(faulty):
    mock, web_ids, _, set_faults = faulty
    set_faults(error_rate=1.0)
    for mode in MODES:
        with _client(mock) as client:
            read = client.read_recorded(web_ids, START, END, mode=mode)
            assert rows_of(read) == []
            assert sorted(f.web_id for f in read.failures) == sorted(web_ids)
            assert all(f.status in (500, 502, 503, 504) for f in read.failures)


def test_per_value_errors_that_persist_are_reported(faulty):
    """Nearly every value fails: streams retry from right before the failed value, then are reported."""
    mock, web_ids, reference, set_faults = faulty
    set_faults(value_error_rate=0.9)
    with _client(mock) as client:
        read = client.read_recorded(web_ids, START, END)
        rows = rows_of(read)
    assert_complete_or_reported(read, rows, reference, web_ids)
    assert read.failures
    for failure in read.failures:
        assert failure.status is None and "value at" in failure.message


def test_retry_after_is_honoured(faulty, caplog):
    mock, web_ids, reference, set_faults = faulty
    set_faults(throttle_rate=0.5, retry_after_s=1)
    caplog.set_level(logging.WARNING, logger="osipi_dagster.pi")
    with _client(mock) as client:
        started = time.monotonic()
        window_end = START + timedelta(minutes=1)
        read = client.read_recorded(
            web_ids[:2], START, window_end, mode="streams", concurrency=1, page_size=10
        )
        rows = rows_of(read)
        elapsed = time.monotonic() - started
    throttled = sum("HTTP 429" in r.getMessage() for r in caplog.records)
    assert throttled, "the schedule throttles at least once"
    assert elapsed >= throttled * 1.0  # each 429 waited the server's Retry-After, not the 10 ms backoff
    assert_complete_or_reported(
        read,
        rows,
        [r for r in reference if r[0] in web_ids[:2] and r[1] <= 1736121660_000_000_000],
        web_ids[:2],
    )
