"""Time-series reads of the PI client against the mock over real HTTP.

The oracle for recorded values is a plain ``requests`` + ``json`` read of each stream mapped to the schema
by hand (``pi_helpers.raw_recorded``), so the client's paging and decoding are checked against code they do
not share.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from osipi_dagster.contract import dictionary_encoded, format_ns, to_ns
from osipi_dagster.pi import RECORDED_SCHEMA, SUMMARY_SCHEMA, PIWebAPIClient
from osipi_dagster_tests.answer_proxy import answer_proxy
from osipi_dagster_tests.pi_helpers import raw_recorded, rows_of

WINDOW_START = datetime(2025, 1, 6, 0, 0, tzinfo=UTC)
WINDOW_END = datetime(2025, 1, 6, 2, 0, tzinfo=UTC)
MODES = ("streamsets", "batch", "streams")


@pytest.fixture(scope="module")
def client(mock_pi):
    with PIWebAPIClient(mock_pi.api, backoff_base_s=0.01) as client:
        yield client


@pytest.fixture(scope="module")
def points(client):
    (server,) = client.data_servers()
    return list(client.points(server.web_id))


@pytest.fixture(scope="module")
def profile(mock_pi, points) -> dict[str, list[str]]:
    """Tags of the shared mock grouped by what their values over the two-hour window look like."""
    start, end = WINDOW_START.isoformat(), WINDOW_END.isoformat()
    groups: dict[str, list[str]] = {
        k: [] for k in ("dense", "duplicates", "subsecond", "sparse", "empty", "system", "digital", "string")
    }
    for point in points:
        rows = raw_recorded(mock_pi.api, point.web_id, start, end)
        stamps = [r[1] for r in rows]
        if not rows:
            groups["empty"].append(point.web_id)
        elif len(rows) >= 3600:
            groups["dense"].append(point.web_id)
        elif len(rows) <= 60:
            groups["sparse"].append(point.web_id)
        if len(set(stamps)) < len(stamps):
            groups["duplicates"].append(point.web_id)
        if any(s % 1_000_000_000 for s in stamps):
            groups["subsecond"].append(point.web_id)
        if any(r[6] for r in rows):
            groups["system"].append(point.web_id)
        if any(r[4] is not None and not r[6] for r in rows):
            groups["digital"].append(point.web_id)
        if any(r[3] is not None for r in rows):
            groups["string"].append(point.web_id)
    return groups


def test_the_mock_offers_every_kind_of_stream(profile):
    """Guards the property test below: it must meet duplicates, sub-second values and slow tags."""
    for kind in ("dense", "duplicates", "subsecond", "sparse", "system", "digital", "string"):
        assert profile[kind], f"no {kind} tag in the window"


def test_values_decode_exactly(mock_pi, client, profile):
    """Digital, string and system-state values, flags, units and 100 ns timestamps match the raw JSON."""
    web_ids = sorted({profile[k][0] for k in ("system", "digital", "string", "subsecond", "duplicates")})
    start, end = WINDOW_START.isoformat(), WINDOW_END.isoformat()
    read = client.read_recorded(web_ids, start, end)
    table = read.read_all()
    assert table.schema == RECORDED_SCHEMA
    assert not read.failures and sorted(read.completed) == web_ids
    expected = [row for w in web_ids for row in raw_recorded(mock_pi.api, w, start, end)]
    assert Counter(rows_of(table)) == Counter(expected)
    assert any(r[1] % 1_000_000_000 % 1000 for r in expected), "some stamps use the 7th fractional digit"


def test_dictionary_columns_hold_the_same_values(mock_pi, client, profile):
    """``dictionary=True``: ``web_id`` and ``units`` are dictionary columns, each batch's dictionary holds
    its distinct strings once (a stream without units stays null), and the rows are the raw JSON's."""
    kinds = ("system", "digital", "string", "subsecond", "duplicates", "dense", "empty")
    web_ids = sorted({profile[k][0] for k in kinds})
    start, end = WINDOW_START.isoformat(), WINDOW_END.isoformat()
    read = client.read_recorded(web_ids, start, end, page_size=700, dictionary=True)
    batches = list(read)
    assert not read.failures and sorted(read.completed) == web_ids
    assert read.schema == dictionary_encoded(RECORDED_SCHEMA)
    for batch in batches:
        assert batch.schema == read.schema
        for name in ("web_id", "units"):
            dictionary = batch.column(name).dictionary.to_pylist()
            assert len(set(dictionary)) == len(dictionary) and None not in dictionary, name
    table = pa.Table.from_batches(batches, schema=read.schema)
    expected = [row for w in web_ids for row in raw_recorded(mock_pi.api, w, start, end)]
    assert Counter(rows_of(table)) == Counter(expected)
    assert any(row[-1] is None for row in expected) and any(row[-1] for row in expected)  # units both ways
    assert len(batches) > 1


@st.composite
def _reads(draw, profile):
    kinds = ("dense", "duplicates", "subsecond", "sparse", "empty", "digital", "system")
    chosen = draw(st.lists(st.sampled_from(kinds), min_size=1, max_size=5))
    web_ids = sorted({draw(st.sampled_from(profile[k])) for k in chosen if profile[k]})
    offset = draw(st.integers(min_value=0, max_value=7000))
    # Start on and just around the mock's sub-second stamps, to hit inclusive bounds exactly.
    fraction = draw(st.sampled_from([0, 1_600_074, 1_600_075, 1_600_076, 5_000_000])) * 100
    length = draw(st.integers(min_value=0, max_value=150))
    start = to_ns(WINDOW_START) + offset * 1_000_000_000 + fraction
    end = start + length * 1_000_000_000 + draw(st.integers(min_value=0, max_value=9_999_999)) * 100
    page_size = draw(st.integers(min_value=1, max_value=40))
    mode = draw(st.sampled_from(MODES))
    return web_ids, format_ns(start), format_ns(end), page_size, mode


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_paged_read_equals_unpaged_read(mock_pi, client, profile, data):
    """Property: for random tag mixes, windows, page sizes and modes, the paged read yields exactly the
    rows of an unpaged read (no duplicate, no gap), and the number of requests stays bounded."""
    web_ids, start, end, page_size, mode = data.draw(_reads(profile))
    expected = [row for w in web_ids for row in raw_recorded(mock_pi.api, w, start, end)]
    read = client.read_recorded(web_ids, start, end, mode=mode, page_size=page_size, streams_per_request=3)
    rows = rows_of(read)
    assert not read.failures
    assert Counter(rows) == Counter(expected)
    per_stream = Counter(r[0] for r in expected)
    # Each request moves every stream it carries by a full page, or completes it.
    assert read.requests <= sum(per_stream[w] // page_size + 1 for w in web_ids)


def test_modes_agree_on_many_tags(client, points):
    web_ids = [p.web_id for p in points]
    start, end = WINDOW_START.isoformat(), (WINDOW_START + timedelta(minutes=10)).isoformat()
    reads = {
        "default": client.read_recorded(web_ids, start, end),
        "streamsets-small-pages": client.read_recorded(
            web_ids, start, end, page_size=97, streams_per_request=37
        ),
        "batch": client.read_recorded(web_ids, start, end, mode="batch", page_size=211),
        "streams": client.read_recorded(web_ids, start, end, mode="streams", concurrency=4),
    }
    results = {name: Counter(rows_of(read)) for name, read in reads.items()}
    for name, read in reads.items():
        assert not read.failures, name
        assert sorted(read.completed) == sorted(web_ids), name
        assert read.values_read == Counter(row[0] for row in results[name].elements()), name
    first = results.pop("default")
    assert sum(first.values()) > 10_000
    for name, result in results.items():
        assert result == first, name


def test_streamset_urls_stay_short(client, points):
    """Hundreds of WebIds never make one URL longer than max_url_length; the read is split instead."""
    web_ids = [p.web_id for p in points]
    start, end = WINDOW_START.isoformat(), (WINDOW_START + timedelta(seconds=30)).isoformat()
    read = client.read_recorded(web_ids, start, end, max_url_length=2000, streams_per_request=1000)
    assert len(rows_of(read)) > 0 and not read.failures
    assert read.requests >= len(web_ids) * 90 // 1900


@pytest.mark.parametrize("mode", MODES)
def test_read_urls_carry_times_and_fields_unescaped(mock_pi, points, mode):
    """Times (``:``) and selectedFields (``;``) go as RFC 3986 allows them in a query: a URL without any
    percent-escape is one urllib3 does not re-check byte by byte in Python (recorded.py, _QUERY_SAFE)."""
    web_ids = [p.web_id for p in points[:3]]
    start, end = WINDOW_START.isoformat(), (WINDOW_START + timedelta(minutes=5)).isoformat()
    with answer_proxy(mock_pi.url) as proxy, PIWebAPIClient(proxy.api) as client:
        read = client.read_recorded(web_ids, start, end, mode=mode)
        assert len(rows_of(read)) > 0 and not read.failures
    queries = [e.raw_query for e in proxy.exchanges if e.method == "GET"]
    queries += [urlsplit(r["Resource"]).query for e in proxy.exchanges if e.body for r in e.body.values()]
    assert queries and all("%" not in q and "startTime=2025-01-06T00:00:00" in q for q in queries), queries
    assert all("selectedFields=Items." in q or "selectedFields=Timestamp" in q for q in queries), queries


def test_single_stream_read(mock_pi, client, profile):
    web_id = profile["duplicates"][0]
    start, end = WINDOW_START.isoformat(), WINDOW_END.isoformat()
    read = client.read_recorded(web_id, start, end, page_size=7)
    assert Counter(rows_of(read)) == Counter(raw_recorded(mock_pi.api, web_id, start, end))


def test_lowers_max_count_when_the_server_refuses_it(mock_pi, make_mock, profile):
    mock = make_mock(max_returned_items=50)
    web_ids = profile["dense"][:2] + profile["duplicates"][:1]
    start, end = WINDOW_START.isoformat(), (WINDOW_START + timedelta(minutes=5)).isoformat()
    expected = [row for w in web_ids for row in raw_recorded(mock_pi.api, w, start, end)]
    for mode in MODES:
        with PIWebAPIClient(mock.api) as client:
            read = client.read_recorded(web_ids, start, end, mode=mode)
            assert Counter(rows_of(read)) == Counter(expected), mode
            assert not read.failures
            assert client.max_count_limit == 50


def test_bad_web_ids_fail_alone(mock_pi, client, profile):
    """A malformed WebId (400) and an unknown point (404) fail alone, in every mode; the others are whole."""
    good = profile["dense"][:2] + profile["sparse"][:2]
    unknown = good[0][:26] + "AAD__w" + good[0][32:]  # the point id 0xFFFF0000 does not exist
    garbage = "not-a-webid"
    start, end = WINDOW_START.isoformat(), (WINDOW_START + timedelta(minutes=10)).isoformat()
    expected = Counter(row for w in good for row in raw_recorded(mock_pi.api, w, start, end))
    for mode in MODES:
        read = client.read_recorded([good[0], garbage, good[1], unknown, *good[2:]], start, end, mode=mode)
        assert Counter(rows_of(read)) == expected, mode
        assert sorted(read.completed) == sorted(good), mode
        failures = {f.web_id: f for f in read.failures}
        assert set(failures) == {garbage, unknown}, mode
        assert (failures[garbage].status, failures[unknown].status) == (400, 404)
        assert "Unknown or invalid WebID format" in failures[garbage].message
        assert all(f.resume_from == format_ns(to_ns(start)) for f in failures.values())


def test_web_id_aliases_keep_the_callers_id(mock_pi, client, profile):
    """PI answers with its canonical WebId; rows still carry the WebId the caller asked for."""
    canonical = profile["dense"][0]
    alias = canonical[:-4] + ("AAAA" if not canonical.endswith("AAAA") else "BBBB")  # same point id
    start, end = WINDOW_START.isoformat(), (WINDOW_START + timedelta(minutes=1)).isoformat()
    expected = raw_recorded(mock_pi.api, canonical, start, end)
    for mode in MODES:
        read = client.read_recorded([canonical, alias], start, end, mode=mode)
        rows = rows_of(read)
        assert not read.failures, mode
        assert Counter(r[1:] for r in rows if r[0] == alias) == Counter(r[1:] for r in expected), mode
        assert Counter(r for r in rows if r[0] == canonical) == Counter(expected), mode


# -- the other reads ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def numeric(points):
    return [p.web_id for p in points if p.point_type.startswith("Float")][:6]


def _by_stream(table: pa.Table) -> dict[str, list[dict]]:
    result: dict[str, list[dict]] = {}
    for row in table.to_pylist():
        result.setdefault(row["web_id"], []).append(row)
    return result


def test_interpolated(client, numeric):
    start, end = WINDOW_START, WINDOW_START + timedelta(hours=1)
    for mode in MODES:
        read = client.read_interpolated(numeric, start, end, "10m", mode=mode)
        table = read.read_all()
        assert not read.failures and table.schema == RECORDED_SCHEMA
        for web_id, rows in _by_stream(table).items():
            assert [r["timestamp"].to_pydatetime() for r in rows] == [
                start + timedelta(minutes=10 * k) for k in range(7)
            ], web_id
        assert set(_by_stream(table)) == set(numeric)
    single = client.read_interpolated(numeric[0], start, end, "10m").read_all()
    assert rows_of(single) == [r for r in rows_of(table) if r[0] == numeric[0]]


def test_plot(client, numeric):
    start, end = WINDOW_START, WINDOW_START + timedelta(hours=2)
    read = client.read_plot(numeric, start, end, intervals=12)
    table = read.read_all()
    assert not read.failures
    for rows in _by_stream(table).values():
        assert 0 < len(rows) <= 5 * 12 + 2
        assert all(to_ns(start) <= r["timestamp"].value <= to_ns(end) for r in rows)
    single = client.read_plot(numeric[1], start, end, intervals=12).read_all()
    assert rows_of(single) == [r for r in rows_of(table) if r[0] == numeric[1]]


def test_summary(client, numeric):
    start, end = WINDOW_START, WINDOW_START + timedelta(hours=1)
    types = ("Average", "Minimum", "Maximum", "Count")
    for mode in MODES:
        read = client.read_summary(numeric, start, end, types, duration="30m", mode=mode)
        table = read.read_all()
        assert not read.failures and table.schema == SUMMARY_SCHEMA
        assert table.num_rows == len(numeric) * len(types) * 2
        for web_id in numeric:
            values = {
                (r["summary_type"], i): r["value"]
                for i, r in enumerate(r for r in table.to_pylist() if r["web_id"] == web_id)
            }
            by_type = {t: [v for (k, _), v in values.items() if k == t] for t in types}
            for low, mean, high in zip(
                by_type["Minimum"], by_type["Average"], by_type["Maximum"], strict=True
            ):
                assert low <= mean <= high
    single = client.read_summary(numeric[0], start, end, types, duration="30m").read_all()
    assert single.num_rows == len(types) * 2


def test_value_and_end(client, points, numeric):
    web_ids = [p.web_id for p in points[:25]]
    for mode in MODES:
        for read in (client.read_value(web_ids, mode=mode), client.read_end(web_ids, mode=mode)):
            table = read.read_all()
            assert not read.failures, read.failures[:1]
            assert sorted(table.column("web_id").to_pylist()) == sorted(web_ids)
    moment = WINDOW_START + timedelta(minutes=7, seconds=30)
    table = client.read_value(numeric, moment).read_all()
    assert table.num_rows == len(numeric)
    single = client.read_end(numeric[0]).read_all()
    assert single.num_rows == 1 and single.column("web_id")[0].as_py() == numeric[0]
