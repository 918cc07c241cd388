"""``PIWebAPIClient.register_updates``: one marker per WebId, requests that keep URLs short, and WebIds PI
refuses isolated, against a real HTTP server that plays PI Web API's Stream Updates (pi_updates_fake)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from osipi_dagster.pi import (
    PIAuthenticationError,
    PIResponseError,
    PIWebAPIClient,
    PIWebAPIError,
    RegistrationRefusedError,
)
from osipi_dagster_tests.pi_updates_fake import ROUTE, FakePoint, FakeUpdatesPI, web_id
from osipi_dagster_tests.untrusted_server import Answer, Exchange


@pytest.fixture
def fake() -> Iterator[FakeUpdatesPI]:
    server = FakeUpdatesPI([FakePoint(web_id(n), f"TAG-{n:05d}.PV") for n in range(300)])
    yield server
    server.close()


def _client(fake: FakeUpdatesPI, **options) -> PIWebAPIClient:
    return PIWebAPIClient(fake.api, max_retries=0, **options)


def test_every_stream_gets_its_own_marker_through_short_urls_several_at_once(fake):
    ids = list(fake.points)
    fake.delay_s = 0.02
    with _client(fake) as client:
        registration = client.register_updates(ids, max_url_length=1000, concurrency=3)

    assert set(registration.markers) == set(ids)
    assert not registration.failures and not registration.already_registered
    assert all(fake.markers[registration.markers[w]] == (w, 0) for w in ids), "a marker of another stream"
    posts = fake.exchanges
    assert len(posts) == registration.requests > 10
    assert all(len(fake.proxy.url + post.path) <= 1000 for post in posts)
    assert sorted(v for post in posts for k, v in post.query if k == "webId") == sorted(ids)
    assert fake.max_inflight >= 2, "requests were not sent concurrently"


def test_the_post_carries_no_body_and_the_csrf_header(fake):
    with _client(fake) as client:
        client.register_updates(list(fake.points)[:3])

    (post,) = fake.exchanges
    assert post.method == "POST" and post.route == ROUTE
    assert post.body == b""
    assert post.headers.get("X-Requested-With")


def test_one_unknown_webid_is_split_off_and_refused_alone(fake):
    ids = list(fake.points)[:20]
    ids.insert(7, "not-a-webid")
    with _client(fake) as client:
        registration = client.register_updates(ids)

    assert set(registration.markers) == set(ids) - {"not-a-webid"}
    (refused,) = registration.failures.values()
    assert isinstance(refused, RegistrationRefusedError) and refused.status == 400
    assert "Unknown or invalid WebID format" in " ".join(refused.errors)
    assert "not-a-webid" in str(refused)
    alone = [e for e in fake.exchanges if [v for k, v in e.query if k == "webId"] == ["not-a-webid"]]
    assert len(alone) == 1 and len(fake.exchanges) <= 2 * 5 + 1  # halves: about log2(21) levels


def test_a_static_attribute_is_refused_with_409_and_the_others_are_registered(fake):
    ids = list(fake.points)[:8]
    fake.points[ids[3]].static = True
    with _client(fake) as client:
        registration = client.register_updates(ids)

    assert set(registration.markers) == set(ids) - {ids[3]}
    refused = registration.failures[ids[3]]
    assert isinstance(refused, RegistrationRefusedError) and refused.status == 409
    assert "static attribute" in " ".join(refused.errors)


def test_a_failed_registration_reports_pis_exception_and_the_others_are_registered(fake):
    ids = list(fake.points)[:5]
    fake.failed[ids[1]] = "The point is not a valid data source for updates."
    with _client(fake) as client:
        registration = client.register_updates(ids)

    assert set(registration.markers) == set(ids) - {ids[1]}
    refused = registration.failures[ids[1]]
    assert isinstance(refused, RegistrationRefusedError) and refused.status is None
    assert refused.errors == ["The point is not a valid data source for updates."]
    assert "Status Failed" in str(refused)


def test_registering_again_is_reported_as_already_registered(fake):
    ids = list(fake.points)[:4]
    with _client(fake) as client:
        client.register_updates(ids[:2])
        registration = client.register_updates(ids)

    assert registration.already_registered == frozenset(ids[:2])
    assert set(registration.markers) == set(ids)


def test_statuses_are_read_as_pi_spells_them_and_unknown_ones_are_not_taken_for_success(fake):
    ids = list(fake.points)[:5]

    def answer(exchange: Exchange) -> Answer:
        items = [
            # "Succeded": the spelling of PI's topic page
            {"Source": ids[0], "Status": "Succeded", "LatestMarker": "m0", "Exception": None},
            {"Source": ids[1], "Status": "SUCCEEDED", "LatestMarker": "m1"},
            {"Source": ids[2], "LatestMarker": "m2"},  # no Status: registered when it has a marker
            {"Source": ids[3], "Status": "Pending", "LatestMarker": "m3"},
            {"Source": ids[4], "Status": "Succeeded", "LatestMarker": None, "Exception": {"Errors": []}},
        ]
        return Answer(200, json.dumps({"Items": items, "Links": {}}).encode())

    fake.whole = answer
    with _client(fake) as client:
        registration = client.register_updates(ids)

    assert registration.markers == {ids[0]: "m0", ids[1]: "m1", ids[2]: "m2"}
    assert isinstance(registration.failures[ids[3]], PIResponseError)
    assert "'Pending'" in str(registration.failures[ids[3]])
    assert "without a LatestMarker" in str(registration.failures[ids[4]])


def test_items_are_matched_by_source_and_strays_are_ignored_and_logged(fake, caplog):
    ids = list(fake.points)[:6]
    fake.reverse = True
    fake.strays = [{"Source": "F1DPsomeoneelse", "Status": "Succeeded", "LatestMarker": "x_1"}]
    fake.spelling[ids[2]] = ids[2] + "-CANONICAL"  # PI answers with a WebId nobody asked for
    with caplog.at_level(logging.WARNING, "osipi_dagster.pi"), _client(fake) as client:
        registration = client.register_updates(ids)

    assert all(fake.markers[registration.markers[w]][0] == w for w in registration.markers)
    assert set(registration.markers) == set(ids) - {ids[2]}
    missing = registration.failures[ids[2]]
    assert isinstance(missing, PIResponseError) and "no item for this stream" in str(missing)
    assert "F1DPsomeoneelse" in caplog.text and "not requested" in caplog.text


def test_a_server_error_fails_the_streams_of_its_request_as_worth_retrying(fake):
    ids = list(fake.points)[:40]
    fake.whole = lambda exchange: Answer(503, json.dumps({"Errors": ["busy"]}).encode())
    with _client(fake) as client:
        registration = client.register_updates(ids, max_url_length=1000)

    assert not registration.markers and set(registration.failures) == set(ids)
    errors = set(map(id, registration.failures.values()))
    assert len(errors) == len(fake.exchanges) == registration.requests  # one error per request, shared
    for error in registration.failures.values():
        assert type(error) is PIWebAPIError and error.status == 503


def test_a_refused_authentication_raises(fake):
    fake.whole = lambda exchange: Answer(401, b'{"Message": "Authorization has been denied."}')
    with _client(fake) as client, pytest.raises(PIAuthenticationError):
        client.register_updates(list(fake.points)[:3])


def test_webids_are_checked_and_a_single_one_or_repeats_are_registered_once(fake):
    first = next(iter(fake.points))
    with _client(fake) as client:
        assert set(client.register_updates(first).markers) == {first}
        assert len(client.register_updates([first, first]).markers) == 1
        assert client.register_updates([]).requests == 0
        with pytest.raises(ValueError, match="non-empty string"):
            client.register_updates([first, ""])
        with pytest.raises(ValueError, match="max_url_length"):
            client.register_updates([first], max_url_length=0)
    assert len(fake.exchanges) == 2
