"""A misbehaving PI Web API for the ``test_pi_untrusted_*`` tests: a real HTTP server on 127.0.0.1.

:class:`Proxy` stands in front of the mock (or of nothing) and plays what the mock will not: a server or a
proxy that echoes the request in its error pages, ignores ``startIndex``, answers 500 now and then. Each
request is first offered to ``answer``, which may answer it itself; otherwise it is forwarded upstream
(every header but ``Host``) and ``rewrite`` may change the upstream's answer.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import requests


@dataclass
class Exchange:
    """One request the proxy received."""

    method: str
    path: str  # with the query
    headers: dict[str, str]
    body: bytes

    @property
    def route(self) -> str:
        return urlsplit(self.path).path

    @property
    def query(self) -> list[tuple[str, str]]:
        return parse_qsl(urlsplit(self.path).query, keep_blank_values=True)


@dataclass
class Answer:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})


Answerer = Callable[[Exchange], Answer | None]
Rewriter = Callable[[Exchange, Answer], Answer]


def empty_listing(route_suffix: str) -> Answerer:
    """Answer every request whose route ends with ``route_suffix`` with an empty listing (``Items: []``), as
    a PI Web API that lost a permission or a proxy answering an empty page does; forward the others."""

    def answer(exchange: Exchange) -> Answer | None:
        if exchange.route.endswith(route_suffix):
            return Answer(200, json.dumps({"Links": {}, "Items": []}).encode())
        return None

    return answer


class Proxy:
    """The server; ``exchanges`` lists every request it received, in order."""

    def __init__(self, upstream: str = "", answer: Answerer | None = None, rewrite: Rewriter | None = None):
        self.upstream = upstream
        self.exchanges: list[Exchange] = []
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                exchange = Exchange(
                    self.command,
                    self.path,
                    {k: v for k, v in self.headers.items() if k.lower() != "host"},
                    self.rfile.read(length) if length else b"",
                )
                with owner._lock:
                    owner.exchanges.append(exchange)
                reply = answer(exchange) if answer is not None else None
                if reply is None:
                    reply = owner.forward(exchange)
                    if rewrite is not None:
                        reply = rewrite(exchange, reply)
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            do_GET = do_POST = _serve

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def api(self) -> str:
        return self.url + "/piwebapi"

    def forward(self, exchange: Exchange) -> Answer:
        """``exchange`` sent upstream, and the upstream's answer."""
        headers = {**exchange.headers, "Accept-Encoding": "identity"}
        headers.pop("Content-Length", None)
        upstream = requests.request(
            exchange.method,
            self.upstream + exchange.path,
            data=exchange.body or None,
            headers=headers,
            timeout=30,
            allow_redirects=False,
        )
        kept = {
            k: v for k, v in upstream.headers.items() if k.lower() in ("content-type", "www-authenticate")
        }
        return Answer(upstream.status_code, upstream.content, kept)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
