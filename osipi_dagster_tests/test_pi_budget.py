"""A PI server is finite: the request budget holds under concurrent reads, pages adapt to an overloaded
server, and density-aware planning fills requests.

A proxy in front of the mock counts the requests it is answering at once (each answer held back a little,
so that requests overlap) and when each arrived. Several clients of the same server read at once from
threads, as the steps of concurrent runs do in one process; the budget they share must hold at the proxy.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from urllib.parse import unquote, urlsplit

import pyarrow as pa
import pytest

from osipi_dagster.pi import PIWebAPIClient
from osipi_dagster.pi.errors import PIConfigurationError
from osipi_dagster.pi.transport import request_budget
from osipi_dagster_tests.answer_proxy import Exchange, answer_proxy
from osipi_dagster_tests.pi_helpers import raw_recorded, rows_of

START = datetime(2025, 1, 6, 0, 0, tzinfo=UTC)
END = START + timedelta(minutes=30)


class InFlight:
    """Requests being answered at once, and the most seen."""

    def __init__(self, hold_s: float):
        self.hold_s = hold_s
        self.now = self.most = 0
        self.arrivals: list[float] = []
        self.lock = threading.Lock()

    def arrive(self, exchange: Exchange) -> None:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
            self.arrivals.append(time.monotonic())

    def leave(self, exchange: Exchange) -> object:
        time.sleep(self.hold_s)
        with self.lock:
            self.now -= 1
        return exchange.answer


@pytest.fixture(scope="module")
def web_ids(mock_pi) -> list[str]:
    with PIWebAPIClient(mock_pi.api) as client:
        (server,) = client.data_servers()
        return [p.web_id for p in client.points(server.web_id)][:12]


@pytest.fixture(scope="module")
def reference(mock_pi, web_ids) -> Counter:
    return Counter(_rows(mock_pi.api, web_ids))


def _read_concurrently(api: str, web_ids: list[str], runs: int, **client_options: object) -> list[list]:
    """``runs`` clients of ``api``, each reading ``web_ids`` in its own thread with 4 requests at once."""
    results: list[list] = [[] for _ in range(runs)]
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            with PIWebAPIClient(api, **client_options) as client:
                read = client.read_recorded(web_ids, START, END, mode="streams", page_size=300, concurrency=4)
                results[index] = rows_of(read)
                assert not read.failures
        except BaseException as exc:  # re-raised in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(runs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    if errors:
        raise errors[0]
    return results


def test_requests_in_flight_stay_within_the_budget_under_concurrent_runs(mock_pi, web_ids, reference):
    """Three runs, each reading with 4 requests at once, share a budget of 3 in flight."""
    counter = InFlight(hold_s=0.05)
    with answer_proxy(mock_pi.url, counter.leave, change_request=counter.arrive) as proxy:
        results = _read_concurrently(proxy.api, web_ids, 3, max_in_flight=3)
    assert counter.most == 3  # the runs did overlap, and never beyond the budget
    for rows in results:
        assert Counter(rows) == reference  # exact: waiting for a slot loses nothing


def test_without_a_shared_budget_the_runs_would_overload(mock_pi, web_ids):
    """The same runs with a budget each (different limits) put more requests in flight: the bound of the
    test above is the budget's doing."""
    counter = InFlight(hold_s=0.05)
    with answer_proxy(mock_pi.url, counter.leave, change_request=counter.arrive) as proxy:
        _read_concurrently(proxy.api, web_ids, 3, max_in_flight=50)
    assert counter.most > 3


def test_requests_per_second_are_paced(mock_pi, web_ids):
    counter = InFlight(hold_s=0.0)
    with answer_proxy(mock_pi.url, counter.leave, change_request=counter.arrive) as proxy:
        _read_concurrently(proxy.api, web_ids[:4], 2, max_requests_per_second=20)
    arrivals = sorted(counter.arrivals)
    assert len(arrivals) >= 10
    # 20 a second: n requests take at least (n - 1) / 20 s, a little less for the clock's granularity.
    assert arrivals[-1] - arrivals[0] >= 0.9 * (len(arrivals) - 1) / 20


def test_clients_of_one_server_and_budget_share_it(mock_pi):
    one, two = PIWebAPIClient(mock_pi.api, max_in_flight=2), PIWebAPIClient(mock_pi.api, max_in_flight=2)
    with one, two:
        assert one._transport.budget is two._transport.budget
        assert one._transport.budget is request_budget(one.base_url, 2)
    with PIWebAPIClient(mock_pi.api, max_in_flight=5) as other:
        assert other._transport.budget is not one._transport.budget


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"max_in_flight": 0}, "max_in_flight"),
        ({"max_requests_per_second": -1}, "max_requests_per_second"),
        ({"max_requests_per_second": float("inf")}, "max_requests_per_second"),
    ],
)
def test_a_nonsensical_budget_is_refused(mock_pi, options, named):
    with pytest.raises(PIConfigurationError, match=named):
        PIWebAPIClient(mock_pi.api, **options)


def test_an_overloaded_server_gets_smaller_requests(mock_pi, web_ids, reference):
    """A 503 that outlasts the transport's retries halves the values asked per request; the streams are
    read again, and the read is complete."""
    refused = {"left": 2}
    lock = threading.Lock()

    def busy(exchange: Exchange) -> object:
        with lock:
            if refused["left"] and exchange.path.endswith("/streamsets/recorded"):
                refused["left"] -= 1
                exchange.status = 503
                return {"Errors": ["The server is busy."]}
        return exchange.answer

    with (
        answer_proxy(mock_pi.url, busy) as proxy,
        PIWebAPIClient(proxy.api, max_retries=1, backoff_base_s=0.01, backoff_max_s=0.02) as client,
    ):
        read = client.read_recorded(web_ids, START, END, values_per_request=4000)
        rows = rows_of(read)
        asked = [
            sum(int(v) for k, v in e.query if k == "maxCount") * len(e.web_ids())
            for e in proxy.exchanges
            if e.path.endswith("/streamsets/recorded")
        ]
    assert not read.failures and Counter(rows) == reference
    assert refused["left"] == 0
    assert asked[-1] <= asked[0] // 2  # after the 503s, the first pages asked for half or less


def test_planned_requests_are_full(mock_pi, web_ids):
    """Without a page size, the pages after the first are planned from each stream's density: nearly
    every request carries most of values_per_request, and the read is exact."""
    expected = Counter(_rows(mock_pi.api, web_ids))
    budget = sum(expected.values()) // 12  # about a dozen requests
    with PIWebAPIClient(mock_pi.api) as client:
        read = client.read_recorded(web_ids, START, END, values_per_request=budget)
        rows = rows_of(read)
    assert Counter(rows) == expected and not read.failures
    assert read.requests <= len(rows) / (0.8 * budget) + 3  # the last, partial requests aside
    assert read.full_requests >= 0.7 * read.requests


def test_expected_counts_size_the_first_pages(mock_pi, web_ids):
    """With each stream's expected count known, most streams end in their first page."""
    counts = Counter(row[0] for row in _rows(mock_pi.api, web_ids))
    with PIWebAPIClient(mock_pi.api) as client:
        read = client.read_recorded(web_ids, START, END, values_per_request=5000, expected_counts=counts)
        rows = rows_of(read)
    assert Counter(row[0] for row in rows) == counts and not read.failures
    assert read.requests <= sum(counts.values()) / 5000 + 3


def _rows(api: str, web_ids: list[str]) -> list[tuple]:
    return [row for w in web_ids for row in raw_recorded(api, w, START.isoformat(), END.isoformat())]


def test_the_next_request_is_sent_before_the_caller_takes_a_batch(mock_pi, web_ids, reference):
    """While the caller writes a batch, the server already prepares the next one: with one request at a
    time, the second request arrives while the caller still holds the first batch (before, the server idled
    during every write). The read stays exact."""
    counter = InFlight(hold_s=0.0)
    with (
        answer_proxy(mock_pi.url, counter.leave, change_request=counter.arrive) as proxy,
        PIWebAPIClient(proxy.api) as client,
    ):
        read = client.read_recorded(web_ids, START, END, mode="streams", page_size=300, concurrency=1)
        first = next(read)
        deadline = time.monotonic() + 10
        while len(counter.arrivals) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        sent_while_held = len(counter.arrivals)
        rows = rows_of(pa.Table.from_batches([first, *read]))
    assert sent_while_held == 2
    assert Counter(rows) == reference and not read.failures


def test_streams_not_read_yet_are_planned_from_the_density_of_those_read(make_mock):
    """Many 1 Hz tags, a short window, no expected counts: once the first request shows the density, each
    stream not in it is read in one page (before, every stream took a blind first page of
    values_per_request / streams_per_request values, then a second for the rest). The read stays exact."""
    mock = make_mock(tags=120, sampling="1s")
    with PIWebAPIClient(mock.api) as client:
        server = client.data_servers()[0]
        web_ids = [p.web_id for p in client.points(server.web_id)]
    start, end = START, START + timedelta(minutes=10)
    expected = Counter(
        row for w in web_ids for row in raw_recorded(mock.api, w, start.isoformat(), end.isoformat())
    )
    with (
        answer_proxy(mock.url) as proxy,
        PIWebAPIClient(proxy.api) as client,
    ):
        read = client.read_recorded(
            web_ids, start, end, values_per_request=6000, streams_per_request=40, concurrency=1
        )
        rows = rows_of(read)
        pages: Counter[str] = Counter()  # per stream, the requests (or batch sub-requests) that read it
        for exchange in proxy.exchanges:
            if exchange.path.endswith("/streamsets/recorded"):
                pages.update(exchange.web_ids())
            elif exchange.path.endswith("/batch"):
                pages.update(_stream_of(sub["Resource"]) for sub in exchange.body.values())
            else:
                pages[_stream_of(exchange.path)] += 1
        first = proxy.exchanges[0].web_ids()
    assert Counter(rows) == expected and not read.failures
    assert len(first) == 40
    assert {w: pages[w] for w in web_ids if w not in first} == {w: 1 for w in web_ids if w not in first}


def _stream_of(url: str) -> str:
    """The WebId of a ``.../streams/{webId}/recorded`` URL."""
    return unquote(urlsplit(url).path.split("/")[-2])
