"""Conformance of the PI client to its issue (#3) and to the client checklist (piwebapi.md §11.2).

Each test proves one requirement that the other ``test_pi_*`` files prove only implicitly or not at all.
Everything runs over real HTTP: against the mock, through a small key-reordering proxy in front of it, or
against a local TLS server. What the client sends is observed with a ``requests`` response hook on its
own session (the requests really go out; nothing is patched).
"""

from __future__ import annotations

import ast
import json
import logging
import shutil
import ssl
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pyarrow as pa
import pytest
import requests

import osipi_dagster.pi as pi_package
from osipi_dagster.contract import format_ns, to_ns
from osipi_dagster.pi import (
    OIDCClientCredentials,
    PIConfigurationError,
    PIConnectionError,
    PIWebAPIClient,
    PIWebAPIError,
)
from osipi_dagster_tests.pi_helpers import raw_recorded, rows_of

START = datetime(2025, 1, 6, 0, 0, tzinfo=UTC)
MODES = ("streamsets", "batch", "streams")


@pytest.fixture(scope="module")
def client(mock_pi):
    with PIWebAPIClient(mock_pi.api, backoff_base_s=0.01, backoff_max_s=0.05) as client:
        yield client


@pytest.fixture(scope="module")
def points(client):
    (server,) = client.data_servers()
    return list(client.points(server.web_id))


@pytest.fixture(scope="module")
def tags(mock_pi, points) -> dict[str, str]:
    """A 1 Hz tag, a slow tag, and a tag holding three values at one timestamp (``stacked_at``)."""
    window = (START.isoformat(), (START + timedelta(hours=2)).isoformat())
    found: dict[str, str] = {}
    for point in points:
        rows = raw_recorded(mock_pi.api, point.web_id, *window)
        if len(rows) >= 7000 and "dense" not in found:
            found["dense"] = point.web_id
        if 1 <= len(rows) <= 30 and "sparse" not in found:
            found["sparse"] = point.web_id
        if "stacked" not in found:
            stacked = [stamp for stamp, n in Counter(r[1] for r in rows).items() if n >= 3]
            if stacked:
                found["stacked"], found["stacked_at"] = point.web_id, format_ns(stacked[0])
        if len(found) == 4:
            return found
    pytest.fail(f"the mock lacks a kind of tag: only {sorted(found)}")


class Recorder:
    """Every request a client's session sent (method, URL, headers, body), seen in a response hook."""

    def __init__(self, client: PIWebAPIClient):
        self.sent: list[requests.PreparedRequest] = []
        self.responses: list[requests.Response] = []
        client._transport.session.hooks["response"].append(self._hook)

    def _hook(self, response: requests.Response, *args, **kwargs) -> None:
        self.sent.append(response.request)
        self.responses.append(response)

    def recorded_queries(self) -> list[dict[str, list[str]]]:
        """The query of every recorded read: GET URLs and the Resource of every batch sub-request."""
        urls = []
        for request in self.sent:
            if request.method == "POST" and request.url.endswith("/batch"):
                urls += [sub["Resource"] for sub in json.loads(request.body).values()]
            else:
                urls.append(request.url)
        return [parse_qs(urlsplit(u).query) for u in urls if urlsplit(u).path.endswith("/recorded")]


def _expected(api: str, web_ids: list[str], start: str, end: str) -> Counter:
    return Counter(row for w in web_ids for row in raw_recorded(api, w, start, end))


# -- transport ------------------------------------------------------------------------------------------


def test_defaults_timeouts_pooled_session_and_tls_verification(mock_pi):
    with PIWebAPIClient(mock_pi.api) as client:
        transport = client._transport
        assert (transport.timeout, transport.post_timeout) == (30.0, 60.0)
        assert transport.verify is True
        assert client.retry.max_retries == 3
        adapter = transport.session.get_adapter(mock_pi.api)
        assert adapter._pool_maxsize == 20
        assert client.data_servers()


def test_post_uses_its_own_timeout(make_mock, points):
    """GET gives up after ``timeout``; a POST (batch) waits ``post_timeout``."""
    mock = make_mock()
    web_ids = [p.web_id for p in points[:3]]
    requests.put(f"{mock.url}/admin/faults", json={"latency_ms": 700}, timeout=10).raise_for_status()
    end = START + timedelta(seconds=30)
    with PIWebAPIClient(mock.api, timeout=0.25, post_timeout=10, max_retries=0) as client:
        by_get = client.read_recorded(web_ids, START, end, mode="streamsets")
        assert rows_of(by_get) == []
        assert sorted(f.web_id for f in by_get.failures) == sorted(web_ids)
        assert all(f.status is None and "timed out" in f.message for f in by_get.failures)
        by_post = client.read_recorded(web_ids, START, end, mode="batch")
        assert rows_of(by_post) and not by_post.failures


def test_x_requested_with_on_every_non_get(make_mock, points):
    """Batch POSTs and the OIDC token POST carry X-Requested-With (the mock's CSRF check is on)."""
    mock = make_mock(auth="bearer")
    auth = OIDCClientCredentials("osipi-client", "osipi-secret")
    with PIWebAPIClient(mock.api, auth=auth) as client:
        recorder = Recorder(client)
        web_ids = [p.web_id for p in points[:4]]
        read = client.read_recorded(web_ids, START, START + timedelta(minutes=2), mode="batch")
        assert rows_of(read) and not read.failures
    posts = [r for r in recorder.sent if r.method != "GET"]
    assert {urlsplit(r.url).path.rsplit("/", 1)[-1] for r in posts} == {"token", "batch"}
    assert all(r.headers.get("X-Requested-With") for r in posts)
    assert not any("X-Requested-With" in r.headers for r in recorder.sent if r.method == "GET")


def test_gzip_is_asked_for_and_decoded(mock_pi, client, tags):
    recorder = Recorder(client)
    start, end = START.isoformat(), (START + timedelta(minutes=30)).isoformat()
    read = client.read_recorded([tags["dense"]], start, end)
    assert Counter(rows_of(read)) == _expected(mock_pi.api, [tags["dense"]], start, end)
    assert all("gzip" in r.headers["Accept-Encoding"] for r in recorder.sent)
    assert any(r.headers.get("Content-Encoding") == "gzip" for r in recorder.responses)
    client._transport.session.hooks["response"].clear()


def test_compression_can_be_turned_off(mock_pi, tags):
    """``compress=False`` (for loopback or a fast LAN) asks for identity: the same rows, no gzip."""
    start, end = START.isoformat(), (START + timedelta(minutes=30)).isoformat()
    with PIWebAPIClient(mock_pi.api, compress=False) as plain:
        recorder = Recorder(plain)
        read = plain.read_recorded([tags["dense"]], start, end)
        assert Counter(rows_of(read)) == _expected(mock_pi.api, [tags["dense"]], start, end)
    assert all(r.headers["Accept-Encoding"] == "identity" for r in recorder.sent)
    assert all("Content-Encoding" not in r.headers for r in recorder.responses)


@pytest.mark.parametrize("kind", ["malformed", "unknown"])
def test_other_4xx_are_not_retried(mock_pi, client, points, kind):
    """400 and 404 fail at once: one request, no retry, reported for that stream alone."""
    good = points[0].web_id
    web_id = "not-a-webid" if kind == "malformed" else good[:26] + "AAD__w" + good[32:]
    before = client.requests_sent
    read = client.read_recorded(web_id, START, START + timedelta(minutes=1))
    assert rows_of(read) == []
    (failure,) = read.failures
    assert failure.status == (400 if kind == "malformed" else 404)
    assert read.requests == 1 and client.requests_sent == before + 1


def test_409_is_not_retried(client):
    """A summary of a static AF attribute is a 409 on the mock: one request, reported, not retried."""
    (asset_server,) = client.asset_servers()
    (database,) = client.asset_databases(asset_server.web_id)
    element = next(e for e in client.elements(database.web_id) if e.depth == 4)
    static = next(a for a in client.attributes(element.web_id) if not a.data_reference_plug_in)
    before = client.requests_sent
    read = client.read_summary(static.web_id, START, START + timedelta(hours=1))
    assert rows_of(read) == []
    assert [f.status for f in read.failures] == [409]
    assert client.requests_sent == before + 1


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


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An HTTPS server with a self-signed certificate for 127.0.0.1, and the certificate's path."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"),
            *("-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Landing)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}/piwebapi", cert
    server.shutdown()
    server.server_close()


def test_tls_is_verified_by_default(tls_server):
    url, cert = tls_server
    with PIWebAPIClient(url, max_retries=0) as client, pytest.raises(PIConnectionError):
        client.data_servers()
    with PIWebAPIClient(url, verify=str(cert)) as client:
        assert [s.name for s in client.data_servers()] == ["PITLS"]


# -- secrets ----------------------------------------------------------------------------------------------


def test_issued_token_and_url_credentials_never_shown(make_mock, caplog):
    caplog.set_level(logging.DEBUG)
    mock = make_mock(auth="bearer")
    auth = OIDCClientCredentials("osipi-client", "osipi-secret")
    with PIWebAPIClient(mock.api, auth=auth) as client:
        client.data_servers()
        token = auth._token
        assert token
        with pytest.raises(PIWebAPIError) as missing:
            client.point("\\\\PIMOCK\\no-such-tag")
        texts = [repr(client), repr(auth), str(missing.value), repr(missing.value), caplog.text]
    assert not [t for t in texts if token in t or "osipi-secret" in t]

    api = mock.api.replace("http://", "http://someone:hunter2@")
    with pytest.raises(PIConfigurationError, match="carries credentials") as refused:
        PIWebAPIClient(api, max_retries=0)  # refused when made: credentials belong in the auth settings
    for text in (str(refused.value), repr(refused.value), caplog.text):
        assert "hunter2" not in text


# -- paging -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_max_count_is_always_explicit(client, points, tags, mode):
    recorder = Recorder(client)
    try:
        web_ids = [tags["dense"], tags["sparse"], tags["stacked"]]
        read = client.read_recorded(web_ids, START, START + timedelta(minutes=5), mode=mode, page_size=40)
        assert rows_of(read) and not read.failures
        (server,) = client.data_servers()
        list(client.points(server.web_id, page_size=150))
    finally:
        client._transport.session.hooks["response"].clear()
    queries = recorder.recorded_queries()
    assert len(queries) > 3
    assert all(int(q["maxCount"][0]) >= 1 for q in queries)
    listings = [r for r in recorder.sent if urlsplit(r.url).path.endswith("/points")]
    assert listings and all("maxCount=150" in urlsplit(r.url).query for r in listings)


@pytest.mark.parametrize("mode", MODES)
def test_page_of_one_timestamp_advances(mock_pi, client, tags, mode):
    """Three values at one timestamp, read one new value per page: every page is one timestamp."""
    at = tags["stacked_at"]
    read = client.read_recorded([tags["stacked"]], at, at, mode=mode, page_size=1)
    rows = rows_of(read)
    assert len(rows) >= 3 and not read.failures
    assert Counter(rows) == _expected(mock_pi.api, [tags["stacked"]], at, at)
    assert read.requests == len(rows) + 1  # one per new value, and the short page that ends it


def test_more_values_at_one_timestamp_than_the_limit_is_reported_not_looped(mock_pi, tags):
    """When the server cannot return every value of one timestamp in one call, the stream is reported
    with the time to resume from; the other stream of the read is complete."""
    at = tags["stacked_at"]
    end = format_ns(to_ns(at) + 60_000_000_000)
    with PIWebAPIClient(mock_pi.api, max_count_limit=2) as client:
        read = client.read_recorded([tags["stacked"], tags["dense"]], at, end, page_size=1)
        rows = rows_of(read)
    (failure,) = read.failures
    assert failure.web_id == tags["stacked"] and failure.resume_from_ns == to_ns(at)
    assert "cannot be paged further" in failure.message
    assert read.completed == [tags["dense"]]
    assert Counter(r for r in rows if r[0] == tags["dense"]) == _expected(
        mock_pi.api, [tags["dense"]], at, end
    )
    assert read.requests < 200


@pytest.mark.parametrize("mode", ["streamsets", "batch"])
def test_streams_that_are_done_leave_the_next_request(mock_pi, client, tags, mode):
    recorder = Recorder(client)
    web_ids = [tags["dense"], tags["sparse"]]
    start, end = START.isoformat(), (START + timedelta(minutes=30)).isoformat()
    try:
        read = client.read_recorded(web_ids, start, end, mode=mode, page_size=100)
        assert Counter(rows_of(read)) == _expected(mock_pi.api, web_ids, start, end)
    finally:
        client._transport.session.hooks["response"].clear()
    carried: list[list[str]] = []
    for request in recorder.sent:
        if request.method == "POST":
            resources = [sub["Resource"] for sub in json.loads(request.body).values()]
            carried.append([urlsplit(r).path.split("/")[-2] for r in resources])
        elif "/streamsets/recorded" in request.url:
            carried.append(parse_qs(urlsplit(request.url).query)["webId"])
    assert len(carried) >= 18  # about 1,800 dense values in pages of 100
    assert sum(tags["sparse"] in ids for ids in carried) == 1
    assert sum(tags["dense"] in ids for ids in carried) == len(carried)


def test_batches_are_yielded_as_pages_arrive(mock_pi, client, tags):
    """Memory stays bounded: each answer becomes a batch at once, nothing is gathered per stream."""
    start, end = START.isoformat(), (START + timedelta(hours=1)).isoformat()
    read = client.read_recorded([tags["dense"]], start, end, mode="streams", page_size=200, concurrency=1)
    rows = []
    for index, batch in enumerate(read, start=1):
        assert batch.num_rows <= 200
        assert read.requests <= index + 1  # never more than one page ahead of the consumer
        rows += rows_of(pa.Table.from_batches([batch]))
    assert index >= 18
    assert Counter(rows) == _expected(mock_pi.api, [tags["dense"]], start, end)


def test_streamset_urls_never_exceed_the_bound(client, points):
    """Every streamset URL fits ``max_url_length``, whatever maxCount ends up in it: bounds a few characters
    apart put the last WebId that fits right at the limit for some of them."""
    recorder = Recorder(client)
    web_ids = [p.web_id for p in points[:60]]
    try:
        for max_url_length in range(1540, 1600, 2):
            recorder.sent.clear()
            read = client.read_recorded(
                web_ids, START, START + timedelta(seconds=5), max_url_length=max_url_length, page_size=1000
            )
            assert rows_of(read) and not read.failures
            lengths = [len(r.url) for r in recorder.sent]
            assert len(lengths) > 1 and max(lengths) <= max_url_length, max_url_length
    finally:
        client._transport.session.hooks["response"].clear()


@pytest.mark.parametrize("boundary_type", ["Outside", "Interpolated"])
def test_boundary_types_that_cannot_be_paged_are_refused(client, tags, boundary_type):
    """Outside and Interpolated add boundary values to every page: paging them would duplicate values and,
    with Outside, read past the end and never stop. They are refused before any request."""
    before = client.requests_sent
    with pytest.raises(ValueError, match="boundary"):
        client.read_recorded(
            [tags["dense"]], START, START + timedelta(minutes=1), boundary_type=boundary_type
        )
    assert client.requests_sent == before
    read = client.read_recorded([tags["dense"]], START, START + timedelta(minutes=1), boundary_type="inside")
    assert rows_of(read) and not read.failures


# -- batch answers mapped by key ------------------------------------------------------------------------


def _reordering_proxy(upstream: str, orders: list[list[str]]) -> tuple[ThreadingHTTPServer, str]:
    """A proxy that forwards to ``upstream`` and answers every ``/batch`` with its keys in reverse order
    (each answer's key order is appended to ``orders``)."""

    class Proxy(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:
            pass

        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            headers = {
                k: v for k, v in self.headers.items() if k.lower() in ("x-requested-with", "content-type")
            }
            answer = requests.request(
                self.command, upstream + self.path, data=body, headers=headers, timeout=30
            )
            content = answer.content
            if self.command == "POST" and self.path.endswith("/batch"):
                reordered = dict(reversed(list(answer.json().items())))
                orders.append(list(reordered))
                content = json.dumps(reordered).encode()
            self.send_response(answer.status_code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        do_GET = do_POST = _forward

    server = ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def test_batch_answers_are_mapped_by_key(mock_pi, points):
    orders: list[list[str]] = []
    server, proxy = _reordering_proxy(mock_pi.url, orders)
    try:
        web_ids = [p.web_id for p in points[:12]]
        start, end = START.isoformat(), (START + timedelta(minutes=10)).isoformat()
        with PIWebAPIClient(proxy + "/piwebapi") as client:
            read = client.read_recorded(web_ids, start, end, mode="batch", page_size=97)
            rows = rows_of(read)
        assert not read.failures
        assert Counter(rows) == _expected(mock_pi.api, web_ids, start, end)
        assert orders and orders[0] == [str(i) for i in reversed(range(len(web_ids)))]
    finally:
        server.shutdown()
        server.server_close()


# -- the package ------------------------------------------------------------------------------------------


def test_client_shares_no_code_with_the_mock_and_imports_no_dagster():
    package = Path(pi_package.__file__).parent
    for source in package.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            for name in names:
                assert not name.startswith(("osipi_dagster.mock", "dagster")), (source.name, name)
                # Besides itself, the client may import only the contract it shares with the lake.
                assert name.split(".")[0] != "osipi_dagster" or name.startswith(
                    ("osipi_dagster.pi", "osipi_dagster.contract")
                ), name
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, osipi_dagster.pi; print(' '.join(sys.modules))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    assert not [m for m in loaded if m.startswith(("osipi_dagster.mock", "dagster", "fastapi", "uvicorn"))]
