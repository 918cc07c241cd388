"""A real HTTP proxy in front of the mock that changes PI's answers, for the ``test_pi_answers_*`` tests.

The mock answers as PI does; these tests need a PI (or a proxy on the way) that answers wrongly: entries
without ``Items``, streams out of order or twice, ``startTime`` ignored, timestamps that are not times,
answers that take seconds. The proxy forwards every request to the mock over HTTP (``change_request`` may
rewrite its path and query first), parses the JSON answer and hands it to ``change_answer``, whose return
value is sent instead. Nothing in the client is patched: it talks HTTP to the proxy.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import requests


@dataclass
class Exchange:
    """One request through the proxy: what the client asked (after ``change_request``) and what the mock
    answered (``status``, ``answer`` = the parsed JSON)."""

    method: str
    path: str  # without the query, e.g. /piwebapi/streamsets/recorded
    query: list[tuple[str, str]]
    body: Any  # the parsed JSON body of a POST, else None
    headers: dict[str, str] = field(default_factory=dict)  # the client's request headers
    raw_query: str = ""  # the query as the client sent it, escapes and all
    status: int = 0
    answer: Any = None

    def web_ids(self) -> list[str]:
        return [v for k, v in self.query if k == "webId"]


@dataclass
class Proxy:
    """A running proxy: ``api`` is its PI Web API base URL; ``exchanges`` every request it forwarded."""

    api: str
    exchanges: list[Exchange] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self) -> int:
        with self.lock:
            return len(self.exchanges)


ChangeRequest = Callable[[Exchange], None]
ChangeAnswer = Callable[[Exchange], Any]


@contextmanager
def answer_proxy(
    upstream: str,
    change_answer: ChangeAnswer = lambda exchange: exchange.answer,
    *,
    change_request: ChangeRequest = lambda exchange: None,
    delay_s: float = 0.0,
) -> Iterator[Proxy]:
    """Serve a proxy to ``upstream`` (the mock's root URL) on 127.0.0.1 while the block runs.

    ``change_request`` may edit an exchange's ``path``/``query``/``body`` before it is forwarded;
    ``change_answer`` returns the JSON to send back (it may also set ``exchange.status``). Each answer is
    held back ``delay_s`` seconds.
    """
    proxy = Proxy("")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _forward(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            exchange = Exchange(
                self.command,
                parts.path,
                parse_qsl(parts.query),
                json.loads(raw) if raw else None,
                dict(self.headers.items()),
                raw_query=parts.query,
            )
            with proxy.lock:
                proxy.exchanges.append(exchange)
            change_request(exchange)
            headers = {
                k: v for k, v in self.headers.items() if k.lower() in ("x-requested-with", "content-type")
            }
            upstream_answer = requests.request(
                self.command,
                f"{upstream}{exchange.path}?{urlencode(exchange.query)}",
                data=json.dumps(exchange.body) if exchange.body is not None else None,
                headers=headers,
                timeout=60,
            )
            exchange.status = upstream_answer.status_code
            exchange.answer = upstream_answer.json()
            content = json.dumps(change_answer(exchange)).encode()
            time.sleep(delay_s)
            self.send_response(exchange.status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        do_GET = do_POST = _forward

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    proxy.api = f"http://127.0.0.1:{server.server_address[1]}/piwebapi"
    try:
        yield proxy
    finally:
        server.shutdown()
        server.server_close()


def sub_requests(exchange: Exchange) -> dict[str, tuple[str, list[tuple[str, str]]]]:
    """The sub-requests of a ``/batch`` exchange: request id -> (path, query) of its Resource."""
    result = {}
    for key, sub in exchange.body.items():
        parts = urlsplit(sub["Resource"])
        result[key] = (parts.path, parse_qsl(parts.query))
    return result


def stream_of(path: str) -> str:
    """The WebId of a ``/streams/{webId}/{action}`` path."""
    return path.rstrip("/").split("/")[-2]


def change_stream(victim: str, action: str, change: Callable[[Any], Any]) -> ChangeAnswer:
    """A ``change_answer`` that replaces the victim's answer to ``action`` by ``change(answer)`` in whichever
    mode it travels: a streamset entry, the content of a batch sub-response, or a ``/streams`` answer."""

    def change_answer(exchange: Exchange) -> Any:
        answer = exchange.answer
        if exchange.path.endswith(f"/streamsets/{action}"):
            answer["Items"] = [
                change(entry) if entry.get("WebId") == victim else entry for entry in answer["Items"]
            ]
        elif exchange.path.endswith("/batch"):
            for key, (path, _) in sub_requests(exchange).items():
                if stream_of(path) == victim and path.endswith(f"/{action}"):
                    answer[key]["Content"] = change(answer[key]["Content"])
        elif exchange.path.endswith(f"/streams/{victim}/{action}"):
            return change(answer)
        return answer

    return change_answer
