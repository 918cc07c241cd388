"""Every read terminates, and a timestamp that is not a time fails only its stream.

A proxy in front of the mock ignores ``startTime`` (every page starts again at the window's start), serves
a stream's first page again and again, or ignores ``endTime``; or it puts a timestamp that is not a time
(``garbage``, year 9999, year 1500: outside what a nanosecond timestamp holds) into one stream's answer.
The reads must end in bounded time with the affected streams reported, never yielding a row twice.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pyarrow as pa
import pytest

from osipi_dagster.contract import format_ns, to_ns
from osipi_dagster.pi import PIWebAPIClient, StreamRead
from osipi_dagster.pi.paging import Cursor, advances, page_problem
from osipi_dagster_tests.answer_proxy import Exchange, answer_proxy, change_stream
from osipi_dagster_tests.pi_helpers import raw_recorded, rows_of

START = datetime(2025, 1, 6, 0, 0, tzinfo=UTC)
END = START + timedelta(minutes=10)
MODES = ("streamsets", "batch", "streams")
PAGE = 100


@pytest.fixture(scope="module")
def web_ids(mock_pi) -> list[str]:
    """Two 1 Hz tags (several pages each in the window) and a tag with less than a page."""
    start, end = START.isoformat(), END.isoformat()
    with PIWebAPIClient(mock_pi.api) as client:
        (server,) = client.data_servers()
        points = [p.web_id for p in client.points(server.web_id)]
    counts = {w: len(raw_recorded(mock_pi.api, w, start, end)) for w in points[:60]}
    dense = [w for w, n in counts.items() if n > 5 * PAGE][:2]
    sparse = [w for w, n in counts.items() if 0 < n < PAGE][:1]
    assert len(dense) == 2 and sparse
    return dense + sparse


@pytest.fixture(scope="module")
def reference(mock_pi, web_ids) -> dict[str, list]:
    return {w: raw_recorded(mock_pi.api, w, START.isoformat(), END.isoformat()) for w in web_ids}


def _client(api: str) -> PIWebAPIClient:
    return PIWebAPIClient(api, backoff_base_s=0.01, backoff_max_s=0.02, max_retries=2)


def _consume(read: StreamRead, cap: int) -> list:
    """The rows of ``read``; fails as soon as it yields more than ``cap`` rows (a read that loops)."""
    rows: list = []
    for batch in read:
        rows += rows_of(pa.Table.from_batches([batch]))
        assert len(rows) <= cap, "the read yields more rows than the window holds: it loops"
    return rows


def _set_query(name: str, value: Callable[[str], str]) -> Callable[[Exchange], None]:
    """A ``change_request`` that sets the query parameter ``name`` of every recorded read to
    ``value(current)``, in every mode (streamset and stream URLs, batch sub-requests)."""

    def change(exchange: Exchange) -> None:
        if exchange.path.endswith("/recorded"):
            exchange.query = [(k, value(v) if k == name else v) for k, v in exchange.query]
        elif exchange.path.endswith("/batch"):
            for sub in exchange.body.values():
                parts = urlsplit(sub["Resource"])
                query = [(k, value(v) if k == name else v) for k, v in parse_qsl(parts.query)]
                sub["Resource"] = urlunsplit(parts._replace(query=urlencode(query)))

    return change


@pytest.mark.parametrize("mode", MODES)
def test_a_server_ignoring_start_time_fails_the_paged_streams(mock_pi, web_ids, reference, mode):
    ignore_start = _set_query("startTime", lambda _: format_ns(to_ns(START)))
    with (
        answer_proxy(mock_pi.url, change_request=ignore_start) as proxy,
        _client(proxy.api) as client,
    ):
        read = client.read_recorded(web_ids, START, END, mode=mode, page_size=PAGE)
        rows = _consume(read, cap=sum(map(len, reference.values())))
    dense, sparse = web_ids[:2], web_ids[2]
    assert sorted(f.web_id for f in read.failures) == sorted(dense)
    assert read.completed == [sparse]
    for failure in read.failures:
        assert "did not honour startTime" in failure.message
        assert "/recorded" in failure.message
    got = Counter(rows)
    assert max(got.values()) == 1, "a row was yielded twice"
    for web_id in dense:  # its first page, nothing more
        assert [r for r in rows if r[0] == web_id] == reference[web_id][:PAGE]
    assert Counter(r for r in rows if r[0] == sparse) == Counter(reference[sparse])
    assert read.requests <= 3 * (client.retry.max_retries + 2) * len(web_ids)


def test_a_cache_serving_the_first_page_again_fails_the_stream(mock_pi, web_ids, reference):
    """A caching proxy that ignores the query answers every page of a stream with its first page."""
    first: dict[str, Any] = {}

    def serve_first_page(exchange: Exchange) -> Any:
        return first.setdefault(exchange.path, exchange.answer)

    with answer_proxy(mock_pi.url, serve_first_page) as proxy, _client(proxy.api) as client:
        read = client.read_recorded(web_ids, START, END, mode="streams", page_size=PAGE)
        rows = _consume(read, cap=sum(map(len, reference.values())))
    assert sorted(f.web_id for f in read.failures) == sorted(web_ids[:2])
    assert all("before the stream's cursor" in f.message for f in read.failures)
    assert max(Counter(rows).values()) == 1


@pytest.mark.parametrize("mode", MODES)
def test_a_server_ignoring_end_time_fails_the_stream(mock_pi, web_ids, mode):
    ignore_end = _set_query("endTime", lambda end: format_ns(to_ns(end) + 3_600_000_000_000))
    with answer_proxy(mock_pi.url, change_request=ignore_end) as proxy, _client(proxy.api) as client:
        read = client.read_recorded(web_ids[:2], START, END, mode=mode, page_size=5000)
        rows = rows_of(read)
    assert sorted(f.web_id for f in read.failures) == sorted(web_ids[:2])
    assert all("after endTime" in f.message for f in read.failures)
    assert rows == []


def test_page_checks():
    """The cheap checks on a page: its first and last timestamps against the cursor and the end."""
    t = to_ns("2025-01-06T00:00:10Z")
    assert page_problem(t, t + 5, t, t + 10) is None
    assert "did not honour startTime" in page_problem(t - 1, t + 5, t, t + 10)
    assert "before its first value" in page_problem(t + 5, t + 1, t, t + 10)
    assert "after endTime" in page_problem(t, t + 11, t, t + 10)
    cursor = Cursor("2025-01-06T00:00:10Z", 3)
    assert advances(cursor, t, Cursor("2025-01-06T00:00:10Z", 4), t)
    assert advances(cursor, t, Cursor("2025-01-06T00:00:11Z", 1), t + 1)
    assert not advances(cursor, t, Cursor("2025-01-06T00:00:10.0000000Z", 3), t)
    assert not advances(cursor, t, Cursor("2025-01-06T00:00:10.0000000Z", 1), t)


# -- timestamps that are not times ---------------------------------------------------------------------

BAD_STAMPS = ("garbage", "9999-12-31T23:59:59Z", "1500-01-01T00:00:00Z")


def _stamp(position: str, raw: str) -> Callable[[Any], Any]:
    """Put ``raw`` as the timestamp of the first, middle or last value of a stream's answer."""

    def change(answer: Any) -> Any:
        if "Value" in answer and "Items" not in answer:
            target = answer if "Timestamp" in answer else answer["Value"]
        else:
            items = answer["Items"]
            target = items[{"first": 0, "middle": len(items) // 2, "last": -1}[position]]
            target = target["Value"] if "Type" in target else target
        target["Timestamp"] = raw
        return answer

    return change


@pytest.mark.parametrize("raw", BAD_STAMPS)
@pytest.mark.parametrize("position", ["first", "middle", "last"])
@pytest.mark.parametrize("mode", MODES)
def test_an_unreadable_timestamp_fails_its_stream_alone(mock_pi, web_ids, reference, mode, position, raw):
    victim = web_ids[1]
    change = change_stream(victim, "recorded", _stamp(position, raw))
    with answer_proxy(mock_pi.url, change) as proxy, _client(proxy.api) as client:
        read = client.read_recorded(web_ids, START, END, mode=mode, page_size=PAGE)
        rows = rows_of(read)
    (failure,) = read.failures
    assert failure.web_id == victim and failure.resume_from_ns == to_ns(START)
    assert repr(raw) in failure.message
    assert ("/piwebapi/streamsets/recorded" if mode == "streamsets" else "/piwebapi/") in failure.message
    assert sorted(read.completed) == sorted(w for w in web_ids if w != victim)
    assert Counter(rows) == Counter(r for w in web_ids if w != victim for r in reference[w])


@pytest.mark.parametrize("raw", BAD_STAMPS)
@pytest.mark.parametrize(
    ("action", "mode"), [("value", "streamsets"), ("interpolated", "batch"), ("summary", "streams")]
)
def test_unreadable_timestamps_in_other_reads(mock_pi, web_ids, action, mode, raw):
    victim = web_ids[0]
    change = change_stream(victim, action, _stamp("middle", raw))
    with answer_proxy(mock_pi.url, change) as proxy, _client(proxy.api) as client:
        reads = {
            "value": lambda: client.read_value(web_ids, END, mode=mode),
            "interpolated": lambda: client.read_interpolated(web_ids, START, END, "1m", mode=mode),
            "summary": lambda: client.read_summary(web_ids, START, END, ("Average", "Maximum"), mode=mode),
        }
        read = reads[action]()
        rows = rows_of(read)
    (failure,) = read.failures
    assert failure.web_id == victim and repr(raw) in failure.message and f"/{action}" in failure.message
    assert {r[0] for r in rows} == set(web_ids) - {victim}
