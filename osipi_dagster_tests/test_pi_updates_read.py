"""``PIWebAPIClient.read_updates``: events as typed Arrow rows of the stream they belong to, the new marker
per stream, and every stream PI stops serving reported as lost, never as "no events"; against a real HTTP
server that plays PI Web API's Stream Updates (pi_updates_fake)."""

from __future__ import annotations

import json
import logging
import pickle
import time
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pytest

from osipi_dagster.pi import (
    UPDATE_EVENTS_SCHEMA,
    PIAuthenticationError,
    PIResponseError,
    PIWebAPIClient,
    PIWebAPIError,
    UpdatesLostError,
)
from osipi_dagster_tests.pi_updates_fake import ROUTE, FakePoint, FakeUpdatesPI, event, web_id
from osipi_dagster_tests.untrusted_server import Answer, Exchange, Proxy

SIGNUP_UPDATED = "The signup was updated and any cached data could be invalid."
SIGNUP_REMOVED = "The signup was removed because it is no longer valid."


@pytest.fixture
def fake() -> Iterator[FakeUpdatesPI]:
    server = FakeUpdatesPI([FakePoint(web_id(n), f"TAG-{n:05d}.PV") for n in range(40)])
    yield server
    server.close()


def _client(fake: FakeUpdatesPI, **options) -> PIWebAPIClient:
    return PIWebAPIClient(fake.api, max_retries=0, **options)


def _registered(client: PIWebAPIClient, ids: list[str]) -> dict[str, str]:
    registration = client.register_updates(ids)
    assert not registration.failures
    return dict(registration.markers)


def _ns(stamp: str) -> int:
    return int(np.datetime64(stamp.rstrip("Z"), "ns").astype(np.int64))


def _rows(table: pa.Table) -> list[tuple]:
    columns = [
        table.column(name).cast(pa.int64()) if name == "timestamp" else table.column(name)
        for name in table.column_names
    ]
    return list(zip(*(column.to_pylist() for column in columns), strict=True))


def test_events_are_typed_rows_of_their_stream_in_pis_order(fake):
    flow, text, pump = list(fake.points)[:3]
    with _client(fake) as client:
        markers = _registered(client, [flow, text, pump])
        fake.add(
            flow,
            event("Add", "2024-05-01T12:00:05Z", 41.7, units="m3/h"),
            event("Insert", "2024-05-01T11:58:00.1234567Z", 40, previous="None", units="m3/h"),
            event("Update", "2024-05-01T12:00:05Z", 41.9, units="m3/h", substituted=True),
            event("Delete", "2024-05-01T11:50:00Z", 39.9, previous="PreviousEventDiscarded", units="m3/h"),
            event("Refresh", "2024-05-01T11:00:00Z", 38.0, previous=None, units="m3/h"),
        )
        fake.add(
            text,
            event("Add", "2024-05-01T12:00:00Z", "batch 42 started", good="true", annotated="true"),
        )
        fake.add(
            pump,
            event("Add", "2024-05-01T12:00:00Z", {"Name": "Running", "Value": 1, "IsSystem": False}),
            event(
                "Add",
                "2024-05-01T12:01:00Z",
                {"Name": "I/O Timeout", "Value": 246, "IsSystem": True},
                good=False,
                questionable=True,
            ),
            event("Add", "2024-05-01T12:02:00Z", True),
        )
        read = client.read_updates(markers)

    assert read.events.schema == UPDATE_EVENTS_SCHEMA
    assert not read.failures and not read.needs_registration
    f = (False, False, False)
    assert _rows(read.events) == [
        (flow, _ns("2024-05-01T12:00:05Z"), 41.7, None, None, None, False, True, *f, "m3/h", "Add",
         "PreviousEventArchived"),
        (flow, _ns("2024-05-01T11:58:00.1234567Z"), 40.0, None, None, None, False, True, *f, "m3/h", "Insert",
         "None"),
        (flow, _ns("2024-05-01T12:00:05Z"), 41.9, None, None, None, False, True, False, True, False, "m3/h",
         "Update", "PreviousEventArchived"),
        (flow, _ns("2024-05-01T11:50:00Z"), 39.9, None, None, None, False, True, *f, "m3/h", "Delete",
         "PreviousEventDiscarded"),
        (flow, _ns("2024-05-01T11:00:00Z"), 38.0, None, None, None, False, True, *f, "m3/h", "Refresh", None),
        (text, _ns("2024-05-01T12:00:00Z"), None, "batch 42 started", None, None, False, True, False, False,
         True, None, "Add", "PreviousEventArchived"),
        (pump, _ns("2024-05-01T12:00:00Z"), None, None, 1, "Running", False, True, *f, None, "Add",
         "PreviousEventArchived"),
        (pump, _ns("2024-05-01T12:01:00Z"), None, None, 246, "I/O Timeout", True, False, True, False, False,
         None, "Add", "PreviousEventArchived"),
        (pump, _ns("2024-05-01T12:02:00Z"), 1.0, None, None, None, False, True, *f, None, "Add",
         "PreviousEventArchived"),
    ]  # fmt: skip
    assert set(read.markers) == {flow, text, pump}
    assert all(fake.markers[read.markers[w]] == (w, len(fake.points[w].events)) for w in read.markers)


def test_the_new_markers_read_only_what_came_after_and_the_old_ones_read_again(fake):
    ids = list(fake.points)[:3]
    with _client(fake) as client:
        markers = _registered(client, ids)
        fake.add(ids[0], event("Add", "2024-05-01T12:00:00Z", 1.0))
        first = client.read_updates(markers)
        fake.add(ids[0], event("Add", "2024-05-01T12:00:01Z", 2.0))
        second = client.read_updates(first.markers)
        again = client.read_updates(markers)  # a caller that did not store the new markers

    assert first.events.column("value").to_pylist() == [1.0]
    assert second.events.column("value").to_pylist() == [2.0]
    assert again.events.column("value").to_pylist() == [1.0, 2.0]
    assert set(second.markers) == set(ids)


def test_answers_are_matched_by_identity_not_position_and_strays_are_ignored_and_logged(fake, caplog):
    ids = list(fake.points)[:4]
    with _client(fake) as client:
        markers = _registered(client, ids)
        for n, stream in enumerate(ids):
            fake.add(stream, event("Add", "2024-05-01T12:00:00Z", float(n)))
        fake.reverse = True
        fake.spelling[ids[1]] = "F1DPcanonicalSpellingOfTheSamePoint"  # the marker still names it
        stray = {
            "Source": "F1DPnotrequested",
            "RequestedMarker": "elsewhere_1",
            "LatestMarker": "elsewhere_2",
            "Events": [event("Add", "2024-05-01T12:00:00Z", 99.0)],
        }
        fake.strays = [stray]
        with caplog.at_level(logging.WARNING, "osipi_dagster.pi"):
            read = client.read_updates(markers)

    events = read.events
    values = dict(zip(events.column("web_id").to_pylist(), events.column("value").to_pylist(), strict=True))
    assert values == {stream: float(n) for n, stream in enumerate(ids)}
    assert set(read.markers) == set(ids) and not read.failures
    assert "F1DPnotrequested" in caplog.text and "not requested" in caplog.text


def test_an_item_whose_source_names_another_requested_stream_is_not_trusted(fake, caplog):
    ids = list(fake.points)[:2]
    with _client(fake) as client:
        markers = _registered(client, ids)
        fake.spelling[ids[0]] = ids[1]  # the marker says ids[0], the Source says ids[1]
        read = client.read_updates(markers)

    assert set(read.markers) == {ids[1]}
    assert "no item for this stream" in str(read.failures[ids[0]])


def test_an_exception_on_one_item_makes_that_stream_lost_and_the_others_go_on(fake):
    ids = list(fake.points)[:5]
    with _client(fake) as client:
        markers = _registered(client, ids)
        for stream in ids:
            fake.add(stream, event("Add", "2024-05-01T12:00:00Z", 1.0))
        fake.signup_changed[ids[1]] = SIGNUP_UPDATED
        fake.signup_changed[ids[3]] = SIGNUP_REMOVED
        read = client.read_updates(markers)

    assert set(read.needs_registration) == {ids[1], ids[3]}
    assert set(read.markers) == {ids[0], ids[2], ids[4]} and not read.failures
    assert set(read.events.column("web_id").to_pylist()) == {ids[0], ids[2], ids[4]}
    lost = read.needs_registration[ids[1]]
    assert isinstance(lost, UpdatesLostError) and lost.errors == [SIGNUP_UPDATED]
    assert "register it again" in str(lost) and "recorded values" in str(lost)
    assert read.needs_registration[ids[3]].errors == [SIGNUP_REMOVED]


def test_an_empty_exception_is_not_an_error(fake):
    ids = list(fake.points)[:2]
    with _client(fake) as client:
        markers = _registered(client, ids)
        fake.item_hook = lambda stream, item: item.update(Exception={"Errors": []})
        read = client.read_updates(markers)

    assert set(read.markers) == set(ids) and not read.needs_registration


def test_a_lost_cache_makes_every_stream_of_the_request_lost_without_splitting(fake):
    ids = list(fake.points)
    with _client(fake) as client:
        markers = _registered(client, ids)
        fake.drop_cache()
        before = len(fake.exchanges)
        read = client.read_updates(markers, max_url_length=1500)
        gets = len(fake.exchanges) - before

        assert set(read.needs_registration) == set(ids)
        assert not read.markers and not read.failures and read.events.num_rows == 0
        assert gets == read.requests > 1, "the requests were split (or not cut)"
        lost = read.needs_registration[ids[0]]
        assert isinstance(lost, UpdatesLostError) and lost.status == 404
        assert lost.errors == ["Cache not found"]
        copy = pickle.loads(pickle.dumps(lost))  # crosses process boundaries intact
        assert type(copy) is UpdatesLostError and (copy.status, copy.errors) == (404, lost.errors)

        again = _registered(client, list(read.needs_registration))
        fake.add(ids[0], event("Add", "2024-05-01T12:00:00Z", 1.0))
        assert client.read_updates(again).events.num_rows == 1


def test_an_invalid_marker_is_split_off_and_only_its_stream_is_lost(fake):
    ids = list(fake.points)[:12]
    with _client(fake) as client:
        markers = _registered(client, ids)
        markers[ids[5]] = f"{fake.cache}_999999"
        for stream in ids:
            fake.add(stream, event("Add", "2024-05-01T12:00:00Z", 1.0))
        read = client.read_updates(markers)

    assert set(read.needs_registration) == {ids[5]}
    lost = read.needs_registration[ids[5]]
    assert lost.status == 409 and lost.errors == ["Invalid marker supplied"]
    assert set(read.markers) == set(ids) - {ids[5]}
    assert read.events.num_rows == 11


def test_a_stream_missing_from_the_answer_keeps_its_old_marker(fake):
    ids = list(fake.points)[:3]
    with _client(fake) as client:
        markers = _registered(client, ids)
        fake.add(ids[2], event("Add", "2024-05-01T12:00:00Z", 1.0))
        fake.omit = {ids[2]}
        read = client.read_updates(markers)
        fake.omit = set()
        later = client.read_updates({ids[2]: markers[ids[2]]})

    assert set(read.markers) == set(ids[:2])
    missing = read.failures[ids[2]]
    assert isinstance(missing, PIResponseError) and "read it again next time" in str(missing)
    assert later.events.column("value").to_pylist() == [1.0]


def test_a_server_error_fails_the_streams_of_the_request_for_the_next_poll(fake):
    ids = list(fake.points)[:4]
    with _client(fake) as client:
        markers = _registered(client, ids)
        fake.whole = lambda exchange: Answer(500, b'{"Errors": ["The AF SDK cache is busy."]}')
        read = client.read_updates(markers)

    assert set(read.failures) == set(ids) and not read.markers and not read.needs_registration
    assert all(type(e) is PIWebAPIError and e.status == 500 for e in read.failures.values())


def test_events_pi_could_not_read_fail_only_their_stream(fake):
    errors, no_action, bad_time, good = list(fake.points)[:4]
    with _client(fake) as client:
        markers = _registered(client, [errors, no_action, bad_time, good])
        fake.add(
            errors,
            event("Add", "2024-05-01T12:00:00Z", 1.0),
            event("Add", "2024-05-01T12:01:00Z", None, Errors=[{"FieldName": "Value", "Message": ["boom"]}]),
        )
        fake.add(no_action, {"Timestamp": "2024-05-01T12:00:00Z", "Value": 1.0, "Good": True})
        fake.add(bad_time, event("Add", "yesterday at noon", 1.0))
        fake.add(good, event("Add", "2024-05-01T12:00:00Z", 7.0))
        read = client.read_updates(markers)

    assert set(read.markers) == {good}
    assert read.events.column("value").to_pylist() == [7.0]
    assert "carries Errors (Value: boom)" in str(read.failures[errors])
    assert "has no Action" in str(read.failures[no_action])
    assert "cannot be read" in str(read.failures[bad_time])
    assert not read.needs_registration


def test_a_malformed_item_fails_only_its_stream(fake):
    ids = list(fake.points)[:3]

    def break_one(stream: str, item: dict) -> None:
        if stream == ids[1]:
            item["Events"] = "not a list"

    with _client(fake) as client:
        markers = _registered(client, ids)
        fake.item_hook = break_one
        read = client.read_updates(markers)

    assert set(read.markers) == {ids[0], ids[2]}
    assert "malformed" in str(read.failures[ids[1]])


def test_two_answers_for_one_stream_fail_it(fake):
    ids = list(fake.points)[:2]
    with _client(fake) as client:
        markers = _registered(client, ids)
        item = {"Source": ids[0], "RequestedMarker": markers[ids[0]], "LatestMarker": "x", "Events": []}
        fake.strays = [item]
        read = client.read_updates(markers)

    assert set(read.markers) == {ids[1]}
    assert "answered 2 times" in str(read.failures[ids[0]])


def test_units_are_kept_per_event(fake):
    stream = next(iter(fake.points))
    with _client(fake) as client:
        markers = _registered(client, [stream])
        fake.add(
            stream,
            event("Add", "2024-05-01T12:00:00Z", 1.0, units="m"),
            event("Add", "2024-05-01T12:01:00Z", 2.0, units="m"),
            event("Add", "2024-05-01T12:02:00Z", 3.0, units="ft"),
        )
        read = client.read_updates(markers)

    assert read.events.column("units").to_pylist() == ["m", "m", "ft"]


def test_many_markers_are_read_through_short_urls_several_at_once():
    fake = FakeUpdatesPI([FakePoint(web_id(n), f"TAG-{n:05d}.PV") for n in range(2000)])
    try:
        ids = list(fake.points)
        with _client(fake) as client:
            markers = _registered(client, ids)
            for stream in ids[::100]:
                fake.add(stream, event("Add", "2024-05-01T12:00:00Z", 1.0))
            fake.delay_s = 0.02
            before = len(fake.exchanges)
            read = client.read_updates(markers, max_url_length=2000, concurrency=3)
        gets = fake.exchanges[before:]

        assert set(read.markers) == set(ids) and read.events.num_rows == 20
        assert len(gets) == read.requests > 10
        assert all(get.method == "GET" and len(fake.proxy.url + get.path) <= 2000 for get in gets)
        sent = sorted(v for get in gets for k, v in get.query if k == "marker")
        assert sent == sorted(markers.values())
        assert 2 <= fake.max_inflight <= 3
    finally:
        fake.close()


def test_a_server_whose_url_limit_is_lower_is_read_through_halved_requests(fake):
    ids = list(fake.points)
    fake.whole = lambda exchange: (
        Answer(414, b'{"Errors": ["URI Too Long"]}') if len(exchange.path) > 600 else None
    )
    with _client(fake) as client:
        markers = _registered(client, ids)
        read = client.read_updates(markers)

    assert set(read.markers) == set(ids) and not read.failures and not read.needs_registration


def test_streams_that_share_a_marker_are_told_apart_by_source(fake):
    first, second = list(fake.points)[:2]

    def shared(exchange: Exchange) -> Answer | None:
        if exchange.method != "GET":
            return None
        items = [
            {
                "Source": source,
                "RequestedMarker": "shared_1",
                "LatestMarker": f"shared_{n}",
                "Events": [event("Add", "2024-05-01T12:00:00Z", float(n))],
            }
            for n, source in ((3, second), (2, first))
        ]
        return Answer(200, json.dumps({"Items": items, "Links": {}}).encode())

    fake.whole = shared
    with _client(fake) as client:
        read = client.read_updates({first: "shared_1", second: "shared_1"})

    assert read.markers == {first: "shared_2", second: "shared_3"}
    rows = zip(read.events.column("web_id").to_pylist(), read.events.column("value").to_pylist(), strict=True)
    assert sorted(rows) == sorted([(first, 2.0), (second, 3.0)])


def test_a_refused_authentication_raises(fake):
    ids = list(fake.points)[:2]
    with _client(fake) as client:
        markers = _registered(client, ids)
        fake.whole = lambda exchange: Answer(401, b'{"Message": "Authorization has been denied."}')
        with pytest.raises(PIAuthenticationError):
            client.read_updates(markers)


def test_markers_are_checked_before_any_request(fake):
    with _client(fake) as client:
        with pytest.raises(TypeError, match="map each WebId to its marker"):
            client.read_updates(["marker-1"])  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="marker of F1DPx"):
            client.read_updates({"F1DPx": ""})
        empty = client.read_updates({})
    assert empty.events.num_rows == 0 and empty.events.schema == UPDATE_EVENTS_SCHEMA
    assert empty.requests == 0 and not fake.exchanges


def test_the_requests_go_to_the_documented_route(fake):
    ids = list(fake.points)[:2]
    with _client(fake) as client:
        client.read_updates(_registered(client, ids))
    get = fake.exchanges[-1]
    assert get.method == "GET" and get.route == ROUTE and get.body == b""
    assert [name for name, _ in get.query] == ["marker", "marker"]


def test_ten_thousand_markers_without_events_are_read_cheaply():
    """The usual poll: 10,000 streams, no events. Measured at about 0.3 s end to end here (about 30 ms of it
    decoding, matching and classifying the answers); the bound only catches a per-stream cost gone wrong."""
    ids = [web_id(n) for n in range(10_000)]
    markers = {stream: f"5f0c2d8e9a7b4c1d8e2f3a4b5c6d7e8f_{n}" for n, stream in enumerate(ids)}
    owner = {marker: stream for stream, marker in markers.items()}
    rendered = {
        marker: json.dumps(
            {
                "Source": owner[marker],
                "SourceName": "TAG.PV",
                "SourcePath": "\\\\PISRV01\\TAG.PV",
                "RequestedMarker": marker,
                "LatestMarker": marker + "x",
                "Status": "Updated",
                "Events": [],
                "Links": {},
            }
        )
        for marker in markers.values()
    }

    def answer(exchange: Exchange) -> Answer:
        items = ",".join(rendered[value] for name, value in exchange.query if name == "marker")
        return Answer(200, f'{{"Items":[{items}],"Links":{{}}}}'.encode())

    server = Proxy(answer=answer)
    try:
        with PIWebAPIClient(server.api, compress=False) as client:
            started = time.perf_counter()
            read = client.read_updates(markers)
            elapsed = time.perf_counter() - started
    finally:
        server.close()

    assert len(read.markers) == 10_000 and read.events.num_rows == 0
    assert read.markers[ids[0]] == markers[ids[0]] + "x"
    assert read.requests < 100
    assert elapsed < 10, f"{elapsed:.1f} s"
