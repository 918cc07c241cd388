"""A malformed stream answer fails that stream: it never counts as "no values", never sinks the others.

A proxy in front of the mock (``answer_proxy``) breaks the answer of one stream (the victim) in every mode:
a streamset entry or a batch sub-response or a ``/streams`` answer without ``Items``, with ``Items`` not a
list, or that is not a stream's answer at all (``{}``, ``{"Foo": 1}``, a JSON list). The victim must be
reported with a message naming the request and what was wrong; every other stream must be complete.
"""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from osipi_dagster.pi import BasicAuth, PIWebAPIClient, StreamRead
from osipi_dagster.pi import decode as dec
from osipi_dagster_tests.answer_proxy import Exchange, answer_proxy, change_stream
from osipi_dagster_tests.pi_helpers import raw_recorded, rows_of

START = datetime(2025, 1, 6, 0, 0, tzinfo=UTC)
END = START + timedelta(minutes=10)
MODES = ("streamsets", "batch", "streams")

Breaker = Callable[[Any], Any]
BROKEN: dict[str, Breaker] = {
    "no Items": lambda answer: {k: v for k, v in answer.items() if k != "Items"},
    "Items not a list": lambda answer: {**answer, "Items": {"Timestamp": "2025-01-06T00:00:00Z"}},
    "Items null": lambda answer: {**answer, "Items": None},
    "an empty object": lambda answer: {},
    "another object": lambda answer: {"Foo": 1},
    "a JSON list": lambda answer: [1, 2],
}


@pytest.fixture(scope="module")
def web_ids(mock_pi) -> list[str]:
    """Float tags: three with a value a second (several pages in the window) and a slower one."""
    with PIWebAPIClient(mock_pi.api) as client:
        (server,) = client.data_servers()
        floats = [p.web_id for p in client.points(server.web_id) if p.point_type.startswith("Float")]
    counts = {w: len(raw_recorded(mock_pi.api, w, START.isoformat(), END.isoformat())) for w in floats[:40]}
    dense = [w for w, n in counts.items() if n > 300]
    slow = [w for w, n in counts.items() if 0 < n <= 300]
    assert len(dense) >= 3 and slow
    return [*dense[:3], slow[0]]


def _client(api: str) -> PIWebAPIClient:
    return PIWebAPIClient(api, backoff_base_s=0.01, backoff_max_s=0.02, max_retries=1)


def _request_named(mode: str, victim: str, action: str) -> str:
    return (
        f"/piwebapi/streamsets/{action}" if mode == "streamsets" else f"/piwebapi/streams/{victim}/{action}"
    )


def _assert_only_victim_failed(read: StreamRead, rows: list, web_ids: list[str], victim: str) -> None:
    (failure,) = read.failures
    assert failure.web_id == victim
    assert victim not in read.completed
    assert sorted(read.completed) == sorted(w for w in web_ids if w != victim)
    assert not [r for r in rows if r[0] == victim]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("broken", list(BROKEN))
def test_a_malformed_recorded_answer_fails_its_stream_alone(mock_pi, web_ids, mode, broken):
    victim = web_ids[1]
    change = change_stream(victim, "recorded", BROKEN[broken])
    with answer_proxy(mock_pi.url, change) as proxy, _client(proxy.api) as client:
        read = client.read_recorded(web_ids, START, END, mode=mode, page_size=250)
        rows = rows_of(read)
    _assert_only_victim_failed(read, rows, web_ids, victim)
    assert _request_named(mode, victim, "recorded") in read.failures[0].message
    if mode == "batch":
        assert "/piwebapi/batch" in read.failures[0].message
    if broken == "no Items":
        assert "Items" in read.failures[0].message
    expected = Counter(
        row
        for w in web_ids
        if w != victim
        for row in raw_recorded(mock_pi.api, w, START.isoformat(), END.isoformat())
    )
    assert Counter(rows) == expected


def test_a_later_malformed_page_keeps_the_earlier_pages_and_the_other_streams(mock_pi, web_ids):
    """The victim's entry is broken from its second page on, in a request it shares with the other
    streams: its first page is kept and it is reported from there; the others are whole."""
    victim = web_ids[0]
    carried: list[int] = []  # how many streams each request of the victim carried

    def change(exchange: Exchange) -> Any:
        if victim in exchange.web_ids():
            carried.append(len(exchange.web_ids()))
            if len(carried) >= 2:
                return change_stream(victim, "recorded", BROKEN["Items not a list"])(exchange)
        return exchange.answer

    with answer_proxy(mock_pi.url, change) as proxy, _client(proxy.api) as client:
        read = client.read_recorded(web_ids, START, END, page_size=3)
        rows = rows_of(read)
    assert carried[1] > 1, "the broken page must be shared with other streams"
    (failure,) = read.failures
    assert failure.web_id == victim and "Expected `array`" in failure.message
    kept = [r for r in rows if r[0] == victim]
    assert len(kept) == 3 and all(r[1] <= failure.resume_from_ns for r in kept)
    assert sorted(read.completed) == sorted(web_ids[1:])
    expected = Counter(
        row for w in web_ids[1:] for row in raw_recorded(mock_pi.api, w, START.isoformat(), END.isoformat())
    )
    assert Counter(r for r in rows if r[0] != victim) == expected


def test_a_server_echoing_credentials_in_an_entry_never_shows_them(mock_pi, web_ids):
    """The victim's entry carries only PI's ``Errors``, which echo the request's credentials: the failure
    names the request and PI's words, never the secret."""
    victim = web_ids[2]

    def echo(exchange: Exchange) -> Any:
        problem = [f"Access denied for {exchange.headers.get('Authorization')} (someone:hunter2)"]
        return change_stream(victim, "recorded", lambda _: {"WebId": victim, "Errors": problem})(exchange)

    with (
        answer_proxy(mock_pi.url, echo) as proxy,
        PIWebAPIClient(proxy.api, auth=BasicAuth("someone", "hunter2"), max_retries=0) as client,
    ):
        read = client.read_recorded(web_ids, START, END)
        rows_of(read)
    (failure,) = read.failures
    assert failure.web_id == victim and "Access denied" in failure.message
    assert "/piwebapi/streamsets/recorded" in failure.message
    secret = base64.b64encode(b"someone:hunter2").decode()
    assert "hunter2" not in failure.message and secret not in failure.message


def _value_breaker(action: str) -> Breaker:
    """What breaks one stream's answer to ``action``: no ``Value`` in a streamset entry of value/end, and
    anything that is not a stream's answer elsewhere."""

    def breaker(answer: Any) -> Any:
        if "WebId" in answer:
            return {
                k: v for k, v in answer.items() if k != ("Value" if action in ("value", "end") else "Items")
            }
        return {"Foo": 1}

    return breaker


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("action", ["value", "end", "summary", "interpolated"])
def test_other_reads_fail_the_malformed_stream_alone(mock_pi, web_ids, mode, action):
    victim = web_ids[3]
    change = change_stream(victim, action, _value_breaker(action))
    with answer_proxy(mock_pi.url, change) as proxy, _client(proxy.api) as client:
        reads = {
            "value": lambda: client.read_value(web_ids, END, mode=mode),
            "end": lambda: client.read_end(web_ids, mode=mode),
            "summary": lambda: client.read_summary(web_ids, START, END, ("Average", "Count"), mode=mode),
            "interpolated": lambda: client.read_interpolated(web_ids, START, END, "1m", mode=mode),
        }
        read = reads[action]()
        rows = rows_of(read)
    _assert_only_victim_failed(read, rows, web_ids, victim)
    assert _request_named(mode, victim, action) in read.failures[0].message
    assert {r[0] for r in rows} == set(web_ids) - {victim}


def test_a_stream_pi_could_not_read_fails_with_pis_own_message():
    """An entry holding only PI's ``Errors`` (no ``Items``) fails its stream with PI's words; a malformed
    entry next to it fails alone; the good entry is kept as decoded by the fast path."""
    body = msgspec.json.encode(
        {
            "Items": [
                {"WebId": "A", "Items": [{"Timestamp": "2025-01-06T00:00:00Z", "Value": 1.0}]},
                {"WebId": "B", "Errors": ["Point not found."]},
                {"WebId": "C", "Items": 7},
            ]
        }
    )
    good, unread, broken = dec.decode_streamset(body, dec.StreamValuesPage, dec.StreamValues)
    assert isinstance(good, dec.StreamValues) and good.Items[0].Value == 1.0
    assert unread == dec.BadEntry("B", "Point not found.")
    assert broken.WebId == "C" and "Expected `array`" in broken.problem


def test_a_batch_sub_response_that_is_not_one_fails_alone():
    body = b'{"0": {"Status": 200, "Content": {"Items": []}}, "1": 5, "2": {"Content": {}}}'
    answers = dec.decode_batch(body)
    assert isinstance(answers["0"], dec.SubResponse) and answers["0"].Status == 200
    assert "malformed" in answers["1"] and "Status" in answers["2"]
