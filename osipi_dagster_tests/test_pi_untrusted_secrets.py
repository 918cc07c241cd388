"""Server text is untrusted: a server or proxy that echoes the request cannot leak a secret.

A proxy in front of the mock answers some requests with the request echoed back, headers and body, in
every form a careless error page could use: the header block, a JSON dump, the bare credential, the decoded
Basic credentials, the password URL-encoded. The echo arrives in a 500 body, in a 400 HTML page, in the
per-stream ``Errors`` of a 200 answer (streamsets, single streams) and in failed batch sub-requests. No
exception, stream failure or log line may show a secret.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, quote_plus

import pytest

from osipi_dagster.pi import (
    BasicAuth,
    BearerAuth,
    OIDCClientCredentials,
    PIAuth,
    PIAuthenticationError,
    PIWebAPIClient,
    PIWebAPIError,
)
from osipi_dagster.pi.errors import LOGGER_NAME, MESSAGE_LIMIT, MESSAGES_KEPT
from osipi_dagster_tests.untrusted_server import Answer, Exchange, Proxy

START = datetime(2025, 1, 6, tzinfo=UTC)
END = START + timedelta(minutes=5)

USER, PASSWORD = "piuser", "S3cr3t/pa+ss&wörd=%"
TOKEN = "static-t0ken/with+chars="
CLIENT_ID, CLIENT_SECRET = "osipi-client", "oidc/s3cret+&=%"
# Credentials of nobody the client knows (a proxy's, another user's): only their shape gives them away.
FOREIGN = (
    "someone:hunter2@proxy.example",
    "hunter2",
    "access_token=proxysecret1",
    "proxysecret1",
    "password=hunter3",
    "hunter3",
)


def _echo(exchange: Exchange) -> str:
    """The request as a careless server would show it back."""
    scheme, _, credential = exchange.headers.get("Authorization", "").partition(" ")
    bare = [credential, quote(credential, safe="")]
    if scheme == "Basic":
        user_password = base64.b64decode(credential).decode()
        password = user_password.partition(":")[2]
        bare += [user_password, password, quote(password, safe=""), quote_plus(password)]
    block = "\r\n".join(f"{name}: {value}" for name, value in exchange.headers.items())
    return (
        f"Request: {exchange.method} {exchange.path}\r\n{block}\r\n\r\n{exchange.body.decode()}\r\n"
        f"credential: {' '.join(bare)}\r\nheaders: {json.dumps(exchange.headers, ensure_ascii=False)}\r\n"
        "upstream: https://someone:hunter2@proxy.example/piwebapi?access_token=proxysecret1&password=hunter3"
    )


class Echoes:
    """Echoes the request: a 500 for /dataservers, a 400 HTML page for /assetservers, per-stream Errors in
    200 streamset and stream answers, and failed sub-requests in batch answers."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def _remember(self, exchange: Exchange) -> str:
        text = _echo(exchange)
        self.sent.append(text)
        return text

    def answer(self, exchange: Exchange) -> Answer | None:
        if exchange.route.endswith("/dataservers"):
            return Answer(500, json.dumps({"Errors": [self._remember(exchange)]}).encode())
        if exchange.route.endswith("/assetservers"):
            page = f"<html><body><h1>Bad Request</h1><pre>{self._remember(exchange)}</pre></body></html>"
            return Answer(400, page.encode(), {"Content-Type": "text/html"})
        return None

    def rewrite(self, exchange: Exchange, answer: Answer) -> Answer:
        if answer.status >= 300:
            return answer
        body = json.loads(answer.body)
        if "/streamsets/" in exchange.route:
            for item in body["Items"]:
                item["Errors"] = [self._remember(exchange)]
        elif "/streams/" in exchange.route:
            body["Errors"] = [self._remember(exchange)]
        elif exchange.route.endswith("/batch"):
            echo = json.dumps({"Errors": [self._remember(exchange)]})
            body = {key: {"Status": 502, "Headers": {}, "Content": json.loads(echo)} for key in body}
        else:
            return answer
        return Answer(answer.status, json.dumps(body).encode(), answer.headers)


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    return caplog


def _forms(secret: str) -> set[str]:
    raw = secret.encode()
    return {secret, quote(secret, safe=""), quote_plus(secret), base64.b64encode(raw).decode()}


def _secrets(auth: PIAuth) -> set[str]:
    """Every form of every secret ``auth`` holds."""
    if isinstance(auth, BasicAuth):
        return _forms(PASSWORD) | _forms(f"{USER}:{PASSWORD}")
    if isinstance(auth, BearerAuth):
        return _forms(TOKEN)
    assert isinstance(auth, OIDCClientCredentials) and auth._token
    return _forms(CLIENT_SECRET) | _forms(f"{CLIENT_ID}:{CLIENT_SECRET}") | _forms(auth._token)


def _assert_clean(secrets: set[str], *texts: str) -> None:
    for text in texts:
        leaked = [secret for secret in (*secrets, *FOREIGN) if secret in text]
        assert not leaked, f"{leaked} in {text[:300]!r}"


AUTHS = {
    "basic": (dict(auth="basic", users=f"{USER}:{PASSWORD}"), lambda: BasicAuth(USER, PASSWORD)),
    "bearer": (dict(auth="bearer", token=TOKEN), lambda: BearerAuth(TOKEN)),
    "oidc": (
        dict(auth="bearer", client_id=CLIENT_ID, client_secret=CLIENT_SECRET),
        lambda: OIDCClientCredentials(CLIENT_ID, CLIENT_SECRET),
    ),
}


@pytest.fixture(params=list(AUTHS))
def echoing(request, make_mock) -> Iterator[tuple[Proxy, Echoes, PIAuth, list[str]]]:
    """A mock with one kind of auth behind an echoing proxy, the auth, and a few WebIds."""
    options, make_auth = AUTHS[request.param]
    mock = make_mock(**options)
    echoes = Echoes()
    proxy = Proxy(mock.url, answer=echoes.answer, rewrite=echoes.rewrite)
    auth = make_auth()
    with PIWebAPIClient(mock.api, auth=auth) as direct:
        (server,) = direct.data_servers()
        web_ids = [point.web_id for point in direct.points(server.web_id)][:6:2]
    yield proxy, echoes, auth, web_ids
    proxy.close()


def _client(proxy: Proxy, auth: PIAuth) -> PIWebAPIClient:
    return PIWebAPIClient(proxy.api, auth=auth, max_retries=1, backoff_base_s=0.01, backoff_max_s=0.02)


def test_error_bodies_that_echo_the_request_leak_nothing(echoing, debug_logs):
    proxy, echoes, auth, _ = echoing
    with _client(proxy, auth) as client:
        with pytest.raises(PIWebAPIError) as in_json:
            client.data_servers()
        with pytest.raises(PIWebAPIError) as in_html:
            client.asset_servers()
    assert (in_json.value.status, in_html.value.status) == (500, 400)
    assert len(echoes.sent) == 3  # the 500 was retried once
    secrets = _secrets(auth)
    assert all(any(secret in echo for secret in secrets) for echo in echoes.sent), "the echo must hold them"
    for error in (in_json.value, in_html.value):
        assert error.errors and "Request: GET" in error.errors[0]  # the server's text is kept, scrubbed
        _assert_clean(secrets, str(error), repr(error), error.message, error.url, *error.errors)
    _assert_clean(secrets, debug_logs.text)


@pytest.mark.parametrize("mode", ["streamsets", "batch", "streams"])
def test_stream_errors_that_echo_the_request_leak_nothing(echoing, debug_logs, mode):
    proxy, echoes, auth, web_ids = echoing
    with _client(proxy, auth) as client:
        ids = web_ids if mode != "streams" else web_ids[0]
        read = client.read_recorded(ids, START, END, mode=mode)
        assert read.read_all().num_rows == 0
    expected = web_ids if mode != "streams" else web_ids[:1]
    assert sorted(failure.web_id for failure in read.failures) == sorted(expected)
    secrets = _secrets(auth)
    assert echoes.sent and all(any(secret in echo for secret in secrets) for echo in echoes.sent)
    for failure in read.failures:
        assert "Request: GET" in failure.message or "Request: POST" in failure.message
        _assert_clean(secrets, failure.message, repr(failure))
    _assert_clean(secrets, debug_logs.text)


def test_token_endpoint_that_echoes_the_client_secret_leaks_nothing(make_mock, debug_logs):
    """The identity provider's refusal echoes the token request: Basic client credentials and the form."""
    mock = make_mock(auth="bearer", client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    echoes = Echoes()

    def answer(exchange: Exchange) -> Answer | None:
        if exchange.route.endswith("/token-echo"):
            refusal = {"error": "invalid_client", "error_description": echoes._remember(exchange)}
            return Answer(400, json.dumps(refusal).encode())
        return None

    def rewrite(exchange: Exchange, answer: Answer) -> Answer:
        if exchange.route.endswith("/openid-configuration"):
            discovery = {**json.loads(answer.body), "token_endpoint": proxy.url + "/token-echo"}
            return Answer(200, json.dumps(discovery).encode(), answer.headers)
        return answer

    proxy = Proxy(mock.url, answer=answer, rewrite=rewrite)
    try:
        auth = OIDCClientCredentials(CLIENT_ID, CLIENT_SECRET)
        with PIWebAPIClient(proxy.api, auth=auth) as client, pytest.raises(PIAuthenticationError) as refused:
            client.data_servers()
    finally:
        proxy.close()
    secrets = _forms(CLIENT_SECRET) | _forms(f"{CLIENT_ID}:{CLIENT_SECRET}")
    assert any(secret in echo for echo in echoes.sent for secret in secrets)
    assert "invalid_client" in str(refused.value)
    _assert_clean(secrets, str(refused.value), repr(refused.value), *refused.value.errors, debug_logs.text)


def test_server_messages_are_cut(make_mock):
    """A server that answers with megabytes of messages gives a short exception."""
    mock = make_mock()
    flood = {"Errors": [f"message {i}: " + "x" * 50_000 for i in range(40)]}
    proxy = Proxy(mock.url, answer=lambda exchange: Answer(400, json.dumps(flood).encode()))
    try:
        with PIWebAPIClient(proxy.api) as client, pytest.raises(PIWebAPIError) as refused:
            client.data_servers()
    finally:
        proxy.close()
    errors = refused.value.errors
    assert len(errors) == MESSAGES_KEPT + 1 and errors[-1] == f"... and {40 - MESSAGES_KEPT} more messages"
    assert all(len(message) <= MESSAGE_LIMIT for message in errors)
    assert errors[0].startswith("message 0: xxx")
    assert len(str(refused.value)) < (MESSAGES_KEPT + 2) * MESSAGE_LIMIT


def test_every_line_of_the_client_logger_is_scrubbed(caplog):
    """Whatever a future log line quotes, the logger itself masks registered secrets and credentials."""
    caplog.set_level(logging.DEBUG, logger=LOGGER_NAME)
    auth = BasicAuth(USER, PASSWORD)
    logging.getLogger(LOGGER_NAME).warning(
        "echo %s / %s / %s",
        PASSWORD,
        quote(PASSWORD, safe=""),
        "Authorization: Negotiate YIIGhgYGKwYBBQUCoIIGejCCBnag",
    )
    assert "***" in caplog.text
    _assert_clean(_secrets(auth), caplog.text)
    assert "YIIGhgYGKwYBBQUC" not in caplog.text
