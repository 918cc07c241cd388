"""Every object listing terminates: a server or proxy that ignores ``startIndex`` is refused in two pages.

Listings page with ``startIndex``/``maxCount`` until a short page. A proxy in front of the mock that drops
``startIndex`` (so every page is the first one) once made each listing loop for ever; a small canned server
plays a server that cycles through its pages, sends more than ``maxCount`` objects, or changes between two
pages. To keep a regression from hanging the suite, the proxies refuse to serve more than a few dozen pages.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlencode

import pytest

from osipi_dagster.pi import PIPagingError, PIWebAPIClient
from osipi_dagster_tests.untrusted_server import Answer, Exchange, Proxy

WIDE = ("2000-01-01T00:00:00Z", "2100-01-01T00:00:00Z")
ENOUGH = 30  # pages a proxy serves before it gives up: a client that loops fails instead of hanging


def _enough_already() -> Answer:
    return Answer(400, json.dumps({"Errors": ["the test proxy stopped an endless listing"]}).encode())


@dataclass(frozen=True)
class Ids:
    server: str
    database: str
    element: str


@pytest.fixture(scope="module")
def ids(mock_pi) -> Ids:
    """WebIds on the shared mock whose listings take several pages at the page sizes of LISTINGS."""
    with PIWebAPIClient(mock_pi.api) as client:
        (server,) = client.data_servers()
        (asset_server,) = client.asset_servers()
        (database,) = client.asset_databases(asset_server.web_id)
        element = next(e for e in client.elements(database.web_id) if len(client.attributes(e.web_id)) > 4)
        assert len(list(client.event_frames(database.web_id, *WIDE))) > 8
    return Ids(server.web_id, database.web_id, element.web_id)


LISTINGS: dict[str, tuple[str, Callable[[PIWebAPIClient, Ids], Iterable[object]]]] = {
    "points": ("/points", lambda client, ids: client.points(ids.server, page_size=50)),
    "point search": (
        "/points/search",
        lambda client, ids: client.search_points(ids.server, "name:=*", page_size=50),
    ),
    "elements": ("/elements", lambda client, ids: client.elements(ids.database, page_size=7)),
    "attributes": ("/attributes", lambda client, ids: client.attributes(ids.element, page_size=2)),
    "event frames": (
        "/eventframes",
        lambda client, ids: client.event_frames(ids.database, *WIDE, page_size=4),
    ),
}


@pytest.mark.parametrize("listing", list(LISTINGS))
def test_a_server_that_ignores_start_index_is_refused_after_two_pages(mock_pi, ids, listing):
    collection, read = LISTINGS[listing]
    paged: list[Exchange] = []

    def first_page_always(exchange: Exchange) -> Answer | None:
        query = exchange.query
        if not any(name == "startIndex" for name, _ in query):
            return None
        paged.append(exchange)
        if len(paged) > ENOUGH:
            return _enough_already()
        kept = [(name, value) for name, value in query if name != "startIndex"]
        return proxy.forward(Exchange("GET", f"{exchange.route}?{urlencode(kept)}", exchange.headers, b""))

    proxy = Proxy(mock_pi.url, answer=first_page_always)
    try:
        with PIWebAPIClient(proxy.api) as client, pytest.raises(PIPagingError) as refused:
            list(read(client, ids))
    finally:
        proxy.close()
    assert len(paged) == 2
    error = refused.value
    assert "ignores startIndex" in str(error)
    assert collection in error.url and "startIndex=" in error.url  # names the collection and the page


# -- a canned server ------------------------------------------------------------------------------------


def _point(i: int, path: str | None = None) -> dict:
    return {"WebId": f"P{i:04d}", "Name": f"tag{i}", "Path": path or f"\\\\PI\\tag{i}"}


Pages = Callable[[int, int, int], list[dict]]


@contextmanager
def _serving(pages: Pages) -> Iterator[Proxy]:
    """A canned server answering ``/dataservers/DS/points`` with ``pages(call, startIndex, maxCount)``."""
    calls: list[int] = []

    def answer(exchange: Exchange) -> Answer:
        query = dict(exchange.query)
        calls.append(1)
        if len(calls) > ENOUGH:
            return _enough_already()
        items = pages(len(calls), int(query.get("startIndex", 0)), int(query["maxCount"]))
        return Answer(200, json.dumps({"Links": {}, "Items": items}).encode())

    proxy = Proxy(answer=answer)
    try:
        yield proxy
    finally:
        proxy.close()


def _names(pages: Pages, page_size: int) -> tuple[list[str], PIPagingError | None]:
    """The names the client lists from a canned server, and the paging error that stopped it if any."""
    names: list[str] = []
    with _serving(pages) as proxy, PIWebAPIClient(proxy.api) as client:
        try:
            for point in client.points("DS", page_size=page_size):
                names.append(point.name)
        except PIPagingError as error:
            return names, error
    return names, None


def test_a_server_that_cycles_through_its_pages_is_refused():
    listing = [_point(i) for i in range(9)]

    def pages(call: int, start: int, count: int) -> list[dict]:
        return listing[((call - 1) % 2) * 3 :][:3]  # A, B, A, B, ...: startIndex is ignored

    names, error = _names(pages, page_size=3)
    assert error is not None and "startIndex=6" in error.url
    assert names == [f"tag{i}" for i in range(6)]


def test_a_server_that_sends_more_than_max_count_still_lists_each_object_once():
    listing = [_point(i) for i in range(25)]
    names, error = _names(lambda call, start, count: listing[start : start + 2 * count], page_size=5)
    assert error is None
    assert names == [f"tag{i}" for i in range(25)]


def test_an_object_added_between_two_pages_does_not_list_another_twice():
    """A point created while the listing runs shifts the later pages by one: the object at the page
    boundary comes twice from the server, once from the client."""
    before = [_point(i) for i in range(10)]
    after = [_point(99), *before]
    names, error = _names(
        lambda call, start, count: (before if call == 1 else after)[start : start + count], page_size=4
    )
    assert error is None
    assert names == [f"tag{i}" for i in range(10)]


def test_one_webid_at_two_paths_is_listed_at_both():
    """An AF element referenced under two parents has one WebId and two paths: both are listed."""
    listing = [_point(1, "\\\\AF\\DB\\A\\Pump"), _point(1, "\\\\AF\\DB\\B\\Pump"), _point(2)]
    names, error = _names(lambda call, start, count: listing[start : start + count], page_size=1)
    assert error is None
    assert names == ["tag1", "tag1", "tag2"]
