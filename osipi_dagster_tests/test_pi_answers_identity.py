"""Streams of a streamset answer are matched to the request by the identity of their WebIds, never by
position.

Over HTTP, a proxy in front of the mock reorders, doubles, drops or adds streams, or asks the mock for its
IDOnly WebIds (``webIdType=IDOnly``) or rewrites the name payload (a renamed point). The WebID decoding of
the client is checked against the mock's own encoder, which it does not share.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from osipi_dagster.mock import webids as mock_webids
from osipi_dagster.pi import PIWebAPIClient
from osipi_dagster.pi.webids import identity, pair_streams
from osipi_dagster_tests.answer_proxy import Exchange, answer_proxy
from osipi_dagster_tests.pi_helpers import raw_recorded, rows_of

START = datetime(2025, 1, 6, 0, 0, tzinfo=UTC)
END = START + timedelta(minutes=5)


@pytest.fixture(scope="module")
def web_ids(mock_pi) -> list[str]:
    with PIWebAPIClient(mock_pi.api) as client:
        (server,) = client.data_servers()
        points = [p for p in client.points(server.web_id) if p.point_type.startswith("Float")]
    return [p.web_id for p in points[:5]]


@pytest.fixture(scope="module")
def reference(mock_pi, web_ids) -> dict[str, Counter]:
    return {w: Counter(raw_recorded(mock_pi.api, w, START.isoformat(), END.isoformat())) for w in web_ids}


def _client(api: str) -> PIWebAPIClient:
    return PIWebAPIClient(api, backoff_base_s=0.01, backoff_max_s=0.02, max_retries=1)


def _streamset(change_items: Any) -> Any:
    """A ``change_answer`` that applies ``change_items(items, exchange)`` to streamset answers."""

    def change(exchange: Exchange) -> Any:
        if "/streamsets/" in exchange.path:
            exchange.answer["Items"] = change_items(exchange.answer["Items"], exchange)
        return exchange.answer

    return change


def _renamed(web_id: str) -> str:
    """The Full WebId of the same point under another name (another name payload)."""
    decoded = mock_webids.decode(web_id)
    return mock_webids.encode(
        "DP", decoded.guids, decoded.path + "_RENAMED", point_id=decoded.point_id, webid_type="Full"
    )


def _by_stream(rows: list) -> dict[str, Counter]:
    result: dict[str, Counter] = {}
    for row in rows:
        result.setdefault(row[0], Counter())[row] += 1
    return result


def test_reordered_idonly_answers_go_to_their_streams(mock_pi, web_ids, reference):
    """PI answers with IDOnly WebIds (another type than asked) in another order: each stream's values are
    its own, never its neighbour's."""

    def ask_for_idonly(exchange: Exchange) -> None:
        if "/streamsets/" in exchange.path:
            exchange.query.append(("webIdType", "IDOnly"))

    change = _streamset(lambda items, _: list(reversed(items)))
    with (
        answer_proxy(mock_pi.url, change, change_request=ask_for_idonly) as proxy,
        _client(proxy.api) as client,
    ):
        read = client.read_recorded(web_ids, START, END, page_size=97)
        rows = rows_of(read)
        answered = [e["WebId"] for e in proxy.exchanges[0].answer["Items"]]
    assert all(w.startswith("I1DP") for w in answered)
    assert not read.failures and sorted(read.completed) == sorted(web_ids)
    assert _by_stream(rows) == reference


def test_renamed_points_in_another_order_go_to_their_streams(mock_pi, web_ids, reference):
    """The name payload of the answer's WebIds is the point's new name: matched by the point's ids."""

    def rename_and_rotate(items: list, _: Exchange) -> list:
        renamed = [{**item, "WebId": _renamed(item["WebId"])} for item in items]
        return renamed[1:] + renamed[:1]

    with answer_proxy(mock_pi.url, _streamset(rename_and_rotate)) as proxy, _client(proxy.api) as client:
        read = client.read_recorded(web_ids, START, END, page_size=113)
        rows = rows_of(read)
    assert not read.failures
    assert _by_stream(rows) == reference


def test_a_stream_answered_twice_fails_and_is_never_stored_twice(mock_pi, web_ids, reference):
    """The answer holds the first stream twice and lacks the second (as many entries as asked, when both
    are asked): the first is ambiguous, the second missing; both fail, the others are whole."""
    doubled, dropped = web_ids[0], web_ids[1]

    def double_first(items: list, exchange: Exchange) -> list:
        twice = [item for item in items if item["WebId"] == doubled] * 2
        return [item for item in items if item["WebId"] not in (doubled, dropped)] + twice

    with answer_proxy(mock_pi.url, _streamset(double_first)) as proxy, _client(proxy.api) as client:
        read = client.read_recorded(web_ids, START, END)
        rows = rows_of(read)
    failures = {f.web_id: f.message for f in read.failures}
    assert set(failures) == {doubled, dropped}
    assert "ambiguous" in failures[doubled] and "missing" in failures[dropped]
    assert all("/piwebapi/streamsets/recorded" in m for m in failures.values())
    assert sorted(read.completed) == sorted(web_ids[2:])
    assert _by_stream(rows) == {w: reference[w] for w in web_ids[2:]}


def test_a_missing_stream_fails_and_an_unrequested_one_is_ignored(mock_pi, web_ids, reference, caplog):
    """One stream is replaced by a stream nobody asked for: the stranger is ignored (and logged), never
    stored under the missing stream's WebId. Read again in stream sets (a fixed page size), the missing
    stream fails; with planned pages, it is read again alone, in a plain stream request, and gets exactly
    its own values."""
    missing = web_ids[2]
    stranger_point = mock_webids.encode(
        "DP", (uuid.UUID(int=7),), "PIMOCK\\STRANGER", point_id=424242, webid_type="Full"
    )

    def replace_one(items: list, _: Exchange) -> list:
        return [{**item, "WebId": stranger_point} if item["WebId"] == missing else item for item in items]

    caplog.set_level(logging.WARNING, logger="osipi_dagster.pi")
    with answer_proxy(mock_pi.url, _streamset(replace_one)) as proxy, _client(proxy.api) as client:
        in_streamsets = client.read_recorded(web_ids, START, END, page_size=10_000)
        rows = rows_of(in_streamsets)
        planned = client.read_recorded(web_ids, START, END)
        planned_rows = rows_of(planned)
    ((failed, message),) = [(f.web_id, f.message) for f in in_streamsets.failures]
    assert failed == missing and "missing" in message
    assert _by_stream(rows) == {w: reference[w] for w in web_ids if w != missing}
    assert not planned.failures and _by_stream(planned_rows) == {w: reference[w] for w in web_ids}
    assert any(stranger_point in r.getMessage() and "not requested" in r.getMessage() for r in caplog.records)


def test_aliases_of_one_point_in_one_request_each_get_the_values(mock_pi, web_ids, reference):
    """Two WebIds of one point (Full and IDOnly) in one streamset: PI answers both with one canonical
    WebId; each alias gets the values once, under the WebId the caller passed."""
    canonical = web_ids[0]
    decoded = mock_webids.decode(canonical)
    idonly = mock_webids.encode("DP", decoded.guids, "", point_id=decoded.point_id, webid_type="IDOnly")
    with PIWebAPIClient(mock_pi.api) as client:
        read = client.read_recorded([canonical, idonly, web_ids[1]], START, END)
        rows = rows_of(read)
    assert not read.failures
    by_stream = _by_stream(rows)
    assert by_stream[canonical] == reference[canonical]
    assert Counter({r[1:]: n for r, n in by_stream[idonly].items()}) == Counter(
        {r[1:]: n for r, n in reference[canonical].items()}
    )


# -- the WebID decoding, against the mock's encoder ----------------------------------------------------------

GUIDS = (uuid.UUID("96f9a00e-4d80-471f-ab2a-89e4caf3c0a2"), uuid.UUID(int=11), uuid.UUID(int=12))
OBJECTS = [
    ("DS", GUIDS[:1], None, ""),
    ("DP", GUIDS[:1], 17552, ""),
    ("RS", GUIDS[:1], None, ""),
    ("RD", GUIDS[:2], None, ""),
    ("Em", GUIDS[:2], None, ""),
    ("Fm", GUIDS[:2], None, ""),
    ("Ab", GUIDS, None, "E"),
    ("Ab", GUIDS, None, "F"),
    ("MS", GUIDS[:2], None, "R"),
]


@pytest.mark.parametrize(("marker", "guids", "point_id", "owner"), OBJECTS)
def test_full_and_idonly_ids_of_one_object_share_an_identity(marker, guids, point_id, owner):
    def encode(path: str, kind: str) -> str:
        return mock_webids.encode(marker, guids, path, point_id=point_id, owner=owner, webid_type=kind)

    full = identity(encode("SERVER\\THING", "Full"))
    assert full is not None
    assert identity(encode("SERVER\\THING", "IDOnly")) == full
    assert identity(encode("SERVER\\RENAMED THING", "Full")) == full
    assert identity(encode("SERVER\\THING", "PathOnly")) is None  # no id: matched by its string only
    local = identity(encode("SERVER\\THING", "LocalIDOnly"))
    assert local == identity(encode("SERVER\\THING", "DefaultIDOnly"))
    # The server is implied in a LocalIDOnly ID: it names the same object only where the object's own id
    # is all a Full ID carries.
    assert (local == full) == (len(guids) == 1)
    other = mock_webids.encode(
        marker, (*guids[:-1], uuid.UUID(int=99)), "SERVER\\THING", point_id=point_id, owner=owner
    )
    assert identity(other) != full


def test_other_point_ids_and_garbage():
    a = mock_webids.encode("DP", GUIDS[:1], "S\\T", point_id=1)
    b = mock_webids.encode("DP", GUIDS[:1], "S\\T", point_id=2)
    assert identity(a) != identity(b)
    truncated, padded = a[:10], a[:4] + "!" + a[5:]
    for garbage in (
        "not-a-webid",
        "",
        "F1",
        "F1DP",
        truncated,
        padded,
        "P0abc",
        "F2DP" + a[4:],
        "F1ZZ" + a[4:],
    ):
        assert identity(garbage) is None, garbage
    assert identity("I1DP" + a[4:32]) is not None
    assert identity("I1DP" + a[4:32] + "AAAA") is None  # an IDOnly ID carries no name
    assert identity(a[:32]) is None  # a Full ID always does


def test_pairing_rules():
    a, b = (mock_webids.encode("DP", GUIDS[:1], "S\\T", point_id=n) for n in (1, 2))
    a_idonly = mock_webids.encode("DP", GUIDS[:1], "", point_id=1, webid_type="IDOnly")
    pairing = pair_streams([a, b], [b, a_idonly])
    assert sorted(pairing.pairs) == [(0, 1), (1, 0)] and not pairing.unanswered and not pairing.ignored
    pairing = pair_streams([a, "opaque"], ["opaque", a])  # an undecodable id: by its exact string
    assert sorted(pairing.pairs) == [(0, 1), (1, 0)]
    pairing = pair_streams(["opaque"], ["OPAQUE"])
    assert pairing.pairs == [] and pairing.ignored == [0] and "missing" in pairing.unanswered[0]
    pairing = pair_streams([a, b], [a, a])
    assert not pairing.pairs and set(pairing.unanswered) == {0, 1} and "ambiguous" in pairing.unanswered[0]
    pairing = pair_streams([a, a_idonly], [a_idonly, a])  # aliases: exact strings first
    assert sorted(pairing.pairs) == [(0, 1), (1, 0)]
    pairing = pair_streams([a, a_idonly], [a])
    assert pairing.pairs == [(0, 0)] and "missing" in pairing.unanswered[1]
