"""Every authentication flow of the PI client against the mock over HTTP, and secrets kept out of logs."""

from __future__ import annotations

import logging
import sys
import threading
import time
import types
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from osipi_dagster.pi import (
    BasicAuth,
    BearerAuth,
    KerberosAuth,
    OIDCClientCredentials,
    PIAuthenticationError,
    PIWebAPIClient,
)

SECRETS = ("pipassword", "wrong-password", "mock-static-token", "osipi-secret", "not-the-secret")


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Capture every logger at DEBUG (requests and urllib3 included) to prove no secret is ever logged."""
    caplog.set_level(logging.DEBUG)
    return caplog


def _no_secret_in(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text


def test_basic(make_mock, debug_logs):
    mock = make_mock(auth="basic")
    with PIWebAPIClient(mock.api, auth=BasicAuth("piuser", "pipassword")) as client:
        assert client.data_servers()
        assert "pipassword" not in repr(client)
    client = PIWebAPIClient(mock.api, auth=BasicAuth("piuser", "wrong-password"))
    with client, pytest.raises(PIAuthenticationError) as refused:
        client.data_servers()
    assert refused.value.status == 401
    assert refused.value.errors == ["Authorization has been denied for this request."]
    _no_secret_in(str(refused.value), repr(refused.value), debug_logs.text)


def test_anonymous_client_meets_401(make_mock):
    mock = make_mock(auth="basic")
    with PIWebAPIClient(mock.api) as client, pytest.raises(PIAuthenticationError):
        client.data_servers()


def test_static_bearer(make_mock, debug_logs):
    mock = make_mock(auth="bearer")
    with PIWebAPIClient(mock.api, auth=BearerAuth("mock-static-token")) as client:
        assert client.data_servers()
    client = PIWebAPIClient(mock.api, auth=BearerAuth("not-the-secret"))
    with client, pytest.raises(PIAuthenticationError) as refused:
        client.data_servers()
    assert refused.value.status == 401
    _no_secret_in(str(refused.value), debug_logs.text)


def test_oidc_discovery_refresh_before_expiry(make_mock, debug_logs):
    mock = make_mock(auth="bearer", token_ttl_s=2)
    auth = OIDCClientCredentials("osipi-client", "osipi-secret")
    with PIWebAPIClient(mock.api, auth=auth) as client:
        client.data_servers()
        client.data_servers()
        assert auth.tokens_fetched == 1
        assert auth.token_endpoint is not None and auth.token_endpoint.startswith(mock.url)
        time.sleep(1.1)  # past half of the 2 s lifetime: renewed before the server would refuse it
        before = client.requests_sent
        client.data_servers()
        assert auth.tokens_fetched == 2
        assert client.requests_sent == before + 1  # no 401 was needed
    _no_secret_in(repr(auth), debug_logs.text)


def test_oidc_401_renews_once_and_retries(make_mock, debug_logs):
    mock = make_mock(auth="bearer", token_ttl_s=1)
    # A negative margin plays a client whose clock runs late: it keeps the token after the server dropped it.
    auth = OIDCClientCredentials("osipi-client", "osipi-secret", refresh_margin_s=-30)
    with PIWebAPIClient(mock.api, auth=auth) as client:
        client.data_servers()
        time.sleep(1.5)
        before = client.requests_sent
        assert client.data_servers()
        assert auth.tokens_fetched == 2
        assert client.requests_sent == before + 2  # the refused request and its one retry
    _no_secret_in(debug_logs.text)


def test_oidc_wrong_secret(make_mock, debug_logs):
    mock = make_mock(auth="bearer")
    auth = OIDCClientCredentials("osipi-client", "not-the-secret")
    with PIWebAPIClient(mock.api, auth=auth) as client, pytest.raises(PIAuthenticationError) as refused:
        client.data_servers()
    assert refused.value.status in (400, 401)
    _no_secret_in(str(refused.value), repr(refused.value), debug_logs.text)


# -- Kerberos: requests-kerberos is an optional extra, absent here; its Negotiate flow runs with a fake ----


class _NegotiateHandler(BaseHTTPRequestHandler):
    """A server that, like PI Web API with Kerberos, answers 401 Negotiate until it gets a ticket."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        if self.headers.get("Authorization") == "Negotiate dGlja2V0":
            body, status = b'{"Links":{},"Items":[{"WebId":"DS1","Name":"PIKERB"}]}', 200
        else:
            body, status = b'{"Message":"Authorization has been denied for this request."}', 401
        self.send_response(status)
        if status == 401:
            self.send_header("WWW-Authenticate", "Negotiate")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def negotiate_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NegotiateHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/piwebapi"
    server.shutdown()
    server.server_close()


@pytest.fixture
def fake_requests_kerberos(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """A stand-in for requests_kerberos that answers the Negotiate challenge the way the real one does:
    a response hook that re-sends the request with a ``Negotiate`` token after a 401."""
    module = types.ModuleType("requests_kerberos")
    module.OPTIONAL = 2
    module.created = []

    class HTTPKerberosAuth(requests.auth.AuthBase):
        def __init__(self, **options):
            self.options = options
            module.created.append(self)

        def __call__(self, request):
            request.register_hook("response", self.handle_response)
            return request

        def handle_response(self, response, **kwargs):
            if response.status_code != 401 or "Negotiate" not in response.headers.get("WWW-Authenticate", ""):
                return response
            response.content  # noqa: B018 - drain the body so the connection can be reused
            retry = response.request.copy()
            retry.headers["Authorization"] = "Negotiate dGlja2V0"
            again = response.connection.send(retry, **kwargs)
            again.history.append(response)
            return again

    module.HTTPKerberosAuth = HTTPKerberosAuth
    monkeypatch.setitem(sys.modules, "requests_kerberos", module)
    return module


def test_kerberos_negotiate_flow(negotiate_server, fake_requests_kerberos):
    auth = KerberosAuth(principal="svc@EXAMPLE.COM")
    (inner,) = fake_requests_kerberos.created
    assert inner.options == {"principal": "svc@EXAMPLE.COM", "mutual_authentication": 2}
    with PIWebAPIClient(negotiate_server, auth=auth) as client:
        (server,) = client.data_servers()
    assert server.name == "PIKERB"


def test_kerberos_without_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "requests_kerberos", None)  # import fails as when not installed
    with pytest.raises(ImportError, match=r"pip install osipi-dagster\[kerberos\]"):
        KerberosAuth()
