"""Stream Updates never leak a secret: a server that echoes the request's credentials in a refused
registration, a Failed registration's Exception, a 404 or 500 body, an item's Exception or a stray item's
Source leaves no password or token in any error, URL or log line."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from urllib.parse import quote

import pytest

from osipi_dagster.pi import BasicAuth, BearerAuth, PIAuth, PIWebAPIClient, PIWebAPIError
from osipi_dagster_tests.pi_updates_fake import FakePoint, FakeUpdatesPI, web_id
from osipi_dagster_tests.untrusted_server import Answer, Exchange

USER, PASSWORD = "piuser", "S3cr3t/pa+ss&wörd=%"
TOKEN = "static-t0ken/with+chars="


def _echo(exchange: Exchange) -> str:
    """The request's credentials as a careless server shows them back."""
    header = exchange.headers.get("Authorization", "")
    scheme, _, credential = header.partition(" ")
    shown = [header, credential, quote(credential, safe="")]
    if scheme == "Basic":
        shown.append(base64.b64decode(credential).decode())
    return f"Request {exchange.method} {exchange.path} with Authorization: {' | '.join(shown)}"


def _forms(*secrets: str) -> set[str]:
    forms = set()
    for secret in secrets:
        forms |= {secret, quote(secret, safe=""), base64.b64encode(secret.encode()).decode()}
    return forms


AUTHS = {
    "basic": (lambda: BasicAuth(USER, PASSWORD), _forms(PASSWORD, f"{USER}:{PASSWORD}")),
    "bearer": (lambda: BearerAuth(TOKEN), _forms(TOKEN)),
}


@pytest.fixture(params=list(AUTHS))
def setup(request) -> Iterator[tuple[FakeUpdatesPI, PIAuth, set[str]]]:
    make_auth, secrets = AUTHS[request.param]
    fake = FakeUpdatesPI([FakePoint(web_id(n), f"TAG-{n}.PV") for n in range(8)])
    yield fake, make_auth(), secrets
    fake.close()


def _texts(errors: dict[str, PIWebAPIError]) -> list[str]:
    return [text for e in errors.values() for text in (str(e), repr(e), e.url, *e.errors)]


def _assert_clean(secrets: set[str], texts: list[str]) -> None:
    for text in texts:
        leaked = [secret for secret in secrets if secret in text]
        assert not leaked, f"{leaked} in {text[:300]!r}"


def test_registration_failures_that_echo_the_request_leak_nothing(setup, caplog):
    fake, auth, secrets = setup
    ids = list(fake.points)

    def echoing(exchange: Exchange) -> Answer:
        echo = _echo(exchange)
        sent = [v for k, v in exchange.query if k == "webId"]
        if ids[0] in sent:  # refused as a whole, then alone
            return Answer(400, json.dumps({"Errors": [echo]}).encode())
        items = [
            {"Source": w, "Status": "Failed", "Exception": {"Errors": [echo]}}
            if w == ids[1]
            else {"Source": w, "Status": "Succeeded", "LatestMarker": f"m-{w}"}
            for w in sent
        ]
        items.append({"Source": echo, "Status": "Succeeded", "LatestMarker": "m"})  # a stray: logged
        return Answer(200, json.dumps({"Items": items, "Links": {}}).encode())

    fake.whole = echoing
    with caplog.at_level(logging.DEBUG, "osipi_dagster.pi"), PIWebAPIClient(fake.api, auth=auth) as client:
        registration = client.register_updates(ids)

    assert set(registration.failures) == {ids[0], ids[1]} and registration.failures[ids[0]].status == 400
    texts = [*_texts(registration.failures), caplog.text]
    assert all("Authorization" in t for t in registration.failures[ids[1]].errors), "the echo did not arrive"
    _assert_clean(secrets, texts)


def test_retrieval_failures_that_echo_the_request_leak_nothing(setup, caplog):
    fake, auth, secrets = setup
    ids = list(fake.points)
    with caplog.at_level(logging.DEBUG, "osipi_dagster.pi"), PIWebAPIClient(fake.api, auth=auth) as client:
        markers = dict(client.register_updates(ids).markers)
        echo = _echo(fake.exchanges[-1])
        fake.signup_changed[ids[0]] = echo
        fake.strays = [{"Source": echo, "RequestedMarker": "other", "LatestMarker": "x", "Events": []}]
        per_item = client.read_updates(markers)

        fake.whole = lambda exchange: Answer(404, json.dumps({"Errors": [_echo(exchange)]}).encode())
        lost = client.read_updates(markers)
        fake.whole = lambda exchange: Answer(500, json.dumps({"Errors": [_echo(exchange)]}).encode())
        with PIWebAPIClient(fake.api, auth=auth, max_retries=0) as impatient:
            failed = impatient.read_updates(markers)

    assert ids[0] in per_item.needs_registration and set(lost.needs_registration) == set(ids)
    assert set(failed.failures) == set(ids)
    texts = (
        _texts(per_item.needs_registration)
        + _texts(lost.needs_registration)
        + _texts(failed.failures)
        + [caplog.text]
    )
    assert any("Authorization" in t for t in texts), "the echo did not arrive"
    _assert_clean(secrets, texts)
