"""Errors name the cause: wrong settings are refused when the client is made, TLS failures say what to do.

A malformed base URL, credentials in it, a missing CA bundle or a nonsensical number is a
``PIConfigurationError`` (a ``ValueError``) from ``PIWebAPIClient(...)``, before any request, instead of a
"connection failed" retried on the first read. A certificate that fails verification fails at once (it
will not get better) with a message that points at the CA bundle and verification settings.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from osipi_dagster.pi import BasicAuth, PIConfigurationError, PIConnectionError, PIWebAPIClient


@pytest.mark.parametrize(
    ("base_url", "says"),
    [
        ("htp://pi.example.com/piwebapi", "scheme 'htp'"),
        ("ftp://pi.example.com/piwebapi", "scheme 'ftp'"),
        ("http//pi.example.com/piwebapi", "not an absolute URL"),
        ("pi.example.com/piwebapi", "not an absolute URL"),
        ("pi.example.com:443/piwebapi", "not an absolute URL"),
        ("https:///piwebapi", "no host"),
        ("https://:443/piwebapi", "no host"),
        ("", "empty"),
        ("   ", "empty"),
        ("https://pi example.com/piwebapi", "malformed"),
        ("https://pi.example.com:99999/piwebapi", "malformed"),
        ("https://pi.example.com:https/piwebapi", "malformed"),
        ("https://[::1/piwebapi", "malformed"),
        ("https://pi.example.com/piwebapi?webIdType=IDOnly", "query"),
    ],
)
def test_a_malformed_base_url_is_refused_when_the_client_is_made(base_url, says):
    with pytest.raises(PIConfigurationError, match=says) as refused:
        PIWebAPIClient(base_url)
    assert isinstance(refused.value, ValueError)
    if base_url.strip():
        assert repr(base_url.strip()) in str(refused.value)  # the URL is named


@pytest.mark.parametrize(
    "base_url",
    [
        "https://someone:hunter2@pi.example.com/piwebapi",
        "https://someone%3Ahunter2@pi.example.com/piwebapi",
        "someone:hunter2@pi.example.com/piwebapi",
        "htp://someone:hunter2@pi.example.com/piwebapi",
    ],
)
def test_credentials_in_the_base_url_are_refused_without_showing_them(base_url):
    with pytest.raises(PIConfigurationError) as refused:
        PIWebAPIClient(base_url, auth=BasicAuth("someone", "hunter2"))
    text = str(refused.value)
    assert "hunter2" not in text and "hunter2" not in repr(refused.value)
    assert "***@pi.example.com" in text
    if base_url.startswith("https://"):
        assert "carries credentials" in text and "auth" in text


def test_a_missing_or_unreadable_ca_bundle_is_named(tmp_path: Path):
    missing = tmp_path / "no-such-ca.pem"
    with pytest.raises(PIConfigurationError, match="does not exist") as refused:
        PIWebAPIClient("https://pi.example.com/piwebapi", verify=str(missing))
    assert str(missing) in str(refused.value) and "OSIPI_PI_CA_BUNDLE" in str(refused.value)
    garbage = tmp_path / "ca.pem"
    garbage.write_text("this is not a certificate\n")
    with pytest.raises(PIConfigurationError, match="no certificate") as unreadable:
        PIWebAPIClient("https://pi.example.com/piwebapi", verify=str(garbage))
    assert str(garbage) in str(unreadable.value)


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("max_retries", -1),
        ("max_retries", 1.5),
        ("timeout", 0),
        ("timeout", -5.0),
        ("timeout", float("inf")),
        ("timeout", float("nan")),
        ("post_timeout", 0),
        ("pool_size", 0),
        ("backoff_base_s", -0.5),
        ("backoff_max_s", float("nan")),
        ("max_count_limit", 0),
    ],
)
def test_nonsensical_numbers_are_refused(setting, value):
    with pytest.raises(PIConfigurationError, match=setting):
        PIWebAPIClient("https://pi.example.com/piwebapi", **{setting: value})


def test_good_settings_are_kept():
    with PIWebAPIClient(" https://PI.example.com:8443/piwebapi/ ", max_retries=0, backoff_base_s=0) as client:
        assert client.base_url == "https://PI.example.com:8443/piwebapi"
        assert client.retry.max_retries == 0


# -- TLS --------------------------------------------------------------------------------------------------


class _Landing(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        body = b'{"Links":{},"Items":[{"WebId":"DS1","Name":"PITLS"}]}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _CountingTLSServer(ThreadingHTTPServer):
    """Counts the TLS handshakes it is offered, failed ones included."""

    def __init__(self, context: ssl.SSLContext):
        super().__init__(("127.0.0.1", 0), _Landing)
        self.context = context
        self.handshakes = 0

    def handle_error(self, request, client_address) -> None:
        pass  # the client refusing the certificate is what the tests want

    def get_request(self) -> tuple[socket.socket, object]:
        sock, address = self.socket.accept()
        self.handshakes += 1
        return self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), address


def _self_signed(folder: Path, name: str) -> tuple[Path, Path]:
    cert, key = folder / f"{name}.pem", folder / f"{name}.key"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"),
            *("-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[_CountingTLSServer, str, Path]]:
    """An HTTPS server with a self-signed certificate for 127.0.0.1, its URL and the certificate."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = _self_signed(tmp_path, "server")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = _CountingTLSServer(context)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server, f"https://127.0.0.1:{server.server_address[1]}/piwebapi", cert
    server.shutdown()
    server.server_close()


def test_a_certificate_that_fails_verification_is_named_and_not_retried(tls_server, tmp_path):
    server, url, cert = tls_server
    other_ca, _ = _self_signed(tmp_path, "other")
    for verify in (True, str(other_ca)):
        before = server.handshakes
        with PIWebAPIClient(url, verify=verify, max_retries=3) as client:
            with pytest.raises(PIConnectionError) as refused:
                client.data_servers()
            assert client.requests_sent == 1
        assert server.handshakes - before == 1  # a bad certificate does not get better: no retry
        message = str(refused.value)
        assert "certificate verify failed" in message
        assert "OSIPI_PI_CA_BUNDLE" in message and "OSIPI_PI_VERIFY_TLS" in message
    with PIWebAPIClient(url, verify=str(cert)) as client:
        assert [s.name for s in client.data_servers()] == ["PITLS"]
