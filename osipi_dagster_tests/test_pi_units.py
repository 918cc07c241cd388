"""Pure unit tests of the PI client: time strings, paging arithmetic, decoding to Arrow, errors, auth objects.

Everything that talks HTTP is tested against the mock in the other test_pi_* files.
"""

from __future__ import annotations

import gzip
import os
import pickle
import tracemalloc
from datetime import UTC, datetime, timedelta, timezone

import msgspec
import pyarrow as pa
import pytest
import urllib3
from hypothesis import given, settings
from hypothesis import strategies as st

from osipi_dagster.contract import format_ns, to_ns, to_pi_time
from osipi_dagster.pi import RECORDED_SCHEMA, SUMMARY_SCHEMA
from osipi_dagster.pi.auth import BasicAuth, BearerAuth, KerberosAuth, OIDCClientCredentials
from osipi_dagster.pi.decode import (
    Segment,
    TimedValue,
    TimedValues,
    build_batch,
    decoder,
    first_error,
    odd_values,
)
from osipi_dagster.pi.discovery import point_path_from_config
from osipi_dagster.pi.errors import MissingExtraError, PIWebAPIError, error_messages, redact_url
from osipi_dagster.pi.paging import Cursor, plan_page, request_count
from osipi_dagster.pi.transport import RetryPolicy, _gunzip, _gunzip_one_member


class TestTimes:
    def test_iso_strings_keep_seven_digits(self):
        assert to_pi_time("2025-01-06T12:00:00.1234567Z") == "2025-01-06T12:00:00.1234567Z"
        assert to_pi_time("2025-01-06T13:00:00+01:00") == "2025-01-06T12:00:00.0000000Z"
        assert to_pi_time("2025-01-06 12:00Z") == "2025-01-06T12:00:00.0000000Z"

    def test_datetimes(self):
        moment = datetime(2025, 1, 6, 14, 0, 0, 500, tzinfo=timezone(timedelta(hours=2)))
        assert to_pi_time(moment) == "2025-01-06T12:00:00.0005000Z"
        assert to_ns(datetime(1970, 1, 1, tzinfo=UTC)) == 0

    @pytest.mark.parametrize("bad", ["*-1d", "2025-01-06T12:00:00", "yesterday", datetime(2025, 1, 6)])
    def test_zone_less_and_relative_times_are_refused(self, bad):
        with pytest.raises(ValueError):
            to_ns(bad)

    @given(st.integers(min_value=0, max_value=2**62 // 100 * 100).map(lambda n: n - n % 100))
    def test_round_trip(self, ns):
        assert to_ns(format_ns(ns)) == ns


class TestPaging:
    def test_request_count_always_asks_for_new_values(self):
        assert request_count(0, 10, 150_000) == 10
        assert request_count(7, 10, 150_000) == 17
        assert request_count(7, 10, 12) == 12
        assert request_count(12, 10, 12) == 0  # cannot progress: reported, never looped

    def test_page_of_one_timestamp_advances(self):
        step = plan_page(["t1"] * 5, Cursor("t0"), 5)
        assert (step.begin, step.end, step.next) == (0, 5, Cursor("t1", 5))
        step = plan_page(["t1"] * 7 + ["t2"], Cursor("t1", 5), 8)
        assert (step.begin, step.end, step.next) == (5, 8, Cursor("t2", 1))

    def test_short_page_completes(self):
        assert plan_page(["a", "b"], Cursor("a"), 3).next is None
        assert plan_page([], Cursor("a"), 3).next is None

    def test_error_stops_right_before_the_bad_value(self):
        step = plan_page(["a", "b", "b", "c"], Cursor("a"), 4, error_index=2)
        assert (step.begin, step.end, step.next) == (0, 2, Cursor("b", 1))
        step = plan_page(["a", "b"], Cursor("a", 1), 4, error_index=0)
        assert (step.begin, step.end, step.next) == (1, 1, Cursor("a", 1))

    @settings(max_examples=300, deadline=None)
    @given(
        runs=st.lists(st.integers(min_value=1, max_value=6), min_size=0, max_size=40),
        page_size=st.integers(min_value=1, max_value=12),
        limit=st.integers(min_value=7, max_value=50),
    )
    def test_paging_yields_every_value_once(self, runs, page_size, limit):
        """A PI-like source (inclusive start, truncation at maxCount) paged from any cursor gives each value
        exactly once, within a bounded number of pages."""
        values = [(f"t{i:03d}", k) for i, run in enumerate(runs) for k in range(run)]

        def source(start: str, max_count: int) -> list[tuple[str, int]]:
            return [v for v in values if v[0] >= start][:max_count]

        cursor: Cursor | None = Cursor("t000")
        seen: list[tuple[str, int]] = []
        pages = 0
        while cursor is not None:
            count = request_count(cursor.taken, page_size, limit)
            if count == 0:
                assert max(runs) >= limit  # only when one timestamp holds more than the limit
                return
            page = source(cursor.start, count)
            step = plan_page([v[0] for v in page], cursor, count)
            seen.extend(page[step.begin : step.end])
            cursor = step.next
            pages += 1
            assert pages <= len(values) + 1
        assert seen == values


def _values(*items: dict) -> list[TimedValue]:
    return msgspec.json.decode(msgspec.json.encode(list(items)), type=list[TimedValue])


class TestDecode:
    def test_every_kind_of_value(self):
        items = _values(
            {
                "Timestamp": "2025-01-06T12:00:00.1234567Z",
                "Value": 1.5,
                "Good": True,
                "Questionable": False,
                "Substituted": False,
                "Annotated": False,
            },
            {
                "Timestamp": "2025-01-06T12:00:01Z",
                "Value": 7,
                "Good": "true",
                "Questionable": "false",
                "Substituted": "true",
                "Annotated": False,
            },
            {"Timestamp": "2025-01-06T12:00:02Z", "Value": "batch-17", "Good": True},
            {
                "Timestamp": "2025-01-06T12:00:03Z",
                "Value": {"Name": "Running", "Value": 1, "IsSystem": False},
                "Good": True,
            },
            {
                "Timestamp": "2025-01-06T12:00:04Z",
                "Value": {"Name": "I/O Timeout", "Value": 246, "IsSystem": True},
                "Good": False,
            },
            {
                "Timestamp": "2025-01-06T12:00:05Z",
                "Value": {"Name": "Shutdown", "Value": 254, "IsSystem": True},
            },
            {"Timestamp": "2025-01-06T12:00:06Z", "Value": True, "Good": True, "Annotated": True},
        )
        batch = build_batch([Segment("W1", "degC", items[:3]), Segment("W2", "", items[3:])])
        assert batch.schema == RECORDED_SCHEMA
        rows = batch.to_pylist()
        assert [r["web_id"] for r in rows] == ["W1"] * 3 + ["W2"] * 4
        assert [r["units"] for r in rows] == ["degC"] * 3 + [None] * 4
        assert [r["value"] for r in rows] == [1.5, 7.0, None, None, None, None, 1.0]
        assert [r["string_value"] for r in rows] == [None, None, "batch-17", None, None, None, None]
        assert [r["state_code"] for r in rows] == [None, None, None, 1, 246, 254, None]
        assert [r["state_name"] for r in rows] == [
            None,
            None,
            None,
            "Running",
            "I/O Timeout",
            "Shutdown",
            None,
        ]
        assert [r["is_system"] for r in rows] == [False, False, False, False, True, True, False]
        # A missing Good flag means good unless the value is a system state.
        assert [r["good"] for r in rows] == [True, True, True, True, False, False, True]
        assert [r["substituted"] for r in rows] == [False, True, False, False, False, False, False]
        assert [r["annotated"] for r in rows] == [False] * 6 + [True]
        stamps = batch.column("timestamp").cast(pa.int64()).to_pylist()
        assert stamps[0] == to_ns("2025-01-06T12:00:00.1234567Z")  # 100 ns ticks kept

    def test_all_numbers_fast_path(self):
        items = _values(
            *({"Timestamp": f"2025-01-06T12:00:0{i}Z", "Value": float(i), "Good": True} for i in range(5))
        )
        batch = build_batch([Segment("W", None, items)])
        assert batch.column("value").to_pylist() == [0.0, 1.0, 2.0, 3.0, 4.0]
        assert batch.column("is_system").null_count == 0
        assert not any(batch.column("is_system").to_pylist())

    def test_summary_schema(self):
        items = _values({"Timestamp": "2025-01-06T00:00:00Z", "Value": 3.0, "Good": True})
        batch = build_batch([Segment("W", "m", items, "Average")], summary=True)
        assert batch.schema == SUMMARY_SCHEMA
        assert batch.to_pylist()[0]["summary_type"] == "Average"

    def test_per_value_errors_are_found(self):
        items = _values(
            {"Timestamp": "2025-01-06T12:00:00Z", "Value": 1.0},
            {"Timestamp": "2025-01-06T12:00:01Z", "Value": {"Errors": ["boom"]}, "Good": False},
        )
        assert first_error(items) == (1, "boom")
        items = _values(
            {
                "Timestamp": "2025-01-06T12:00:00Z",
                "Value": 1.0,
                "Errors": [{"FieldName": "Value", "Message": ["bad", "worse"]}],
            }
        )
        assert first_error(items) == (0, "Value: bad; worse")
        assert first_error(_values({"Timestamp": "2025-01-06T12:00:00Z", "Value": 1.0})) is None

    def test_a_batch_is_the_same_whether_the_read_found_its_odd_values_or_not(self):
        items = _values(
            {"Timestamp": "2025-01-06T12:00:00Z", "Value": 1.5, "Good": True},
            {
                "Timestamp": "2025-01-06T12:00:01Z",
                "Value": {"Name": "I/O Timeout", "Value": 246, "IsSystem": True},
                "Good": False,
            },
            {"Timestamp": "2025-01-06T12:00:02Z", "Value": "text", "Good": True},
            {"Timestamp": "2025-01-06T12:00:03Z", "Value": 2.5, "Questionable": True, "Good": True},
            {"Timestamp": "2025-01-06T12:00:04Z", "Value": None, "Good": True},
            {"Timestamp": "2025-01-06T12:00:05Z", "Value": True, "Good": True},
            {"Timestamp": "2025-01-06T12:00:06Z", "Value": 3.5, "Good": True},
        )
        assert odd_values(items) == [1, 2, 3, 4, 5]
        known = build_batch(
            [
                Segment("W1", "m", items[:2], odd=odd_values(items[:2])),
                Segment("W2", None, items[2:], odd=odd_values(items[2:])),
            ]
        )
        assert known.equals(build_batch([Segment("W1", "m", items[:2]), Segment("W2", None, items[2:])]))
        assert known.column("value").to_pylist()[4:] == [None, 1.0, 3.5]

    def test_page_decoder_reads_units(self):
        page = decoder(TimedValues).decode(b'{"Items":[],"UnitsAbbreviation":"m3/h"}')
        assert page.UnitsAbbreviation == "m3/h"


def test_gzip_bodies_are_inflated_whole_or_refused():
    body = b'{"Items":[]}' * 100
    assert _gunzip(gzip.compress(body)) == body
    assert _gunzip(gzip.compress(body[:7]) + gzip.compress(body[7:])) == body  # several members
    assert _gunzip(b"") == b""
    lying_size = gzip.compress(body)[:-4] + (len(body) + 1).to_bytes(4, "little")
    for broken in (gzip.compress(body)[:-9], b'{"Items":[]}', gzip.compress(body) + b"junk", lying_size):
        with pytest.raises(urllib3.exceptions.DecodeError):
            _gunzip(broken)


def test_one_member_bodies_inflate_into_one_buffer_and_nothing_after_a_member_is_dropped():
    body = b'{"Items":[' + b'{"Value":1.5},' * 5000 + b"{}]}"
    assert _gunzip_one_member(gzip.compress(body)) == body
    # The fast path reads only the first member: a second one must send the body down the exact path,
    # even when the last trailer's size is the first member's (the size alone cannot tell them apart).
    half = len(body) // 2
    two_equal_members = gzip.compress(body[:half]) + gzip.compress(body[half : 2 * half])
    assert _gunzip_one_member(two_equal_members) is None
    assert _gunzip(two_equal_members) == body[: 2 * half]
    # The gzip magic inside the deflate data (stored here verbatim) only costs the fast path.
    with_magic = gzip.compress(b'{"Value":"\x1f\x8b\x08"}' * 100, compresslevel=0)
    assert _gunzip_one_member(with_magic) is None
    assert _gunzip(with_magic) == b'{"Value":"\x1f\x8b\x08"}' * 100
    # A trailer claiming more than deflate can inflate to reserves nothing up front.
    assert _gunzip_one_member(gzip.compress(body)[:-4] + b"\xff\xff\xff\x3f") is None


def test_a_one_member_body_takes_memory_for_its_size_once():
    # A buffer of exactly the body's size would be full before the inflate sees the end of the stream,
    # and zlib-ng would double it (twice the memory, mapped and page-faulted afresh on every answer).
    body = os.urandom(50_000).hex().encode() * 40
    data = gzip.compress(body, compresslevel=1)
    tracemalloc.start()
    try:
        assert _gunzip_one_member(data) == body
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1.1 * len(body)


@settings(max_examples=200, deadline=None)
@given(
    members=st.lists(st.binary(max_size=3000), min_size=1, max_size=4),
    level=st.sampled_from([0, 1, 6, 9]),
)
def test_gzip_bodies_of_any_members_inflate_to_their_concatenation(members: list[bytes], level: int):
    data = b"".join(gzip.compress(member, compresslevel=level) for member in members)
    assert _gunzip(data) == b"".join(members)


class TestErrorsAndSecrets:
    def test_redaction(self):
        url = "https://user:hunter2@pi.example.com:8443/piwebapi/x?token=abc&webId=W1&client_secret=s"
        clean = redact_url(url)
        assert "hunter2" not in clean and "abc" not in clean and "user" not in clean
        assert "webId=W1" in clean and "pi.example.com:8443" in clean

    def test_error_shape(self):
        error = PIWebAPIError("Not Found", status=404, url="http://u:p@h/piwebapi/x", errors=["nope"])
        assert (error.status, error.url, error.errors) == (404, "http://h/piwebapi/x", ["nope"])
        assert "p@" not in str(error) and "nope" in str(error)
        again = pickle.loads(pickle.dumps(error))
        assert (again.status, again.url, again.errors, str(again)) == (404, error.url, ["nope"], str(error))

    def test_error_bodies(self):
        assert error_messages({"Errors": ["a", "b"]}) == ["a", "b"]
        assert error_messages({"Message": "Authorization has been denied for this request."}) == [
            "Authorization has been denied for this request."
        ]
        assert error_messages("text") == []

    def test_auth_reprs_hide_secrets(self):
        for auth in (
            BasicAuth("DOMAIN\\me", "hunter2"),
            BearerAuth("hunter2"),
            OIDCClientCredentials("client", "hunter2"),
        ):
            assert "hunter2" not in repr(auth)
            assert "hunter2" not in str(vars(auth).get("username", ""))

    def test_kerberos_without_the_extra_names_it(self):
        try:
            import requests_kerberos  # noqa: F401
        except ImportError:
            with pytest.raises(MissingExtraError, match=r"pip install osipi-dagster\[kerberos\]"):
                KerberosAuth()
        else:
            pytest.skip("requests-kerberos is installed")


class TestRetryPolicy:
    def test_retry_after_is_capped_and_a_garbled_one_falls_back_to_the_backoff(self):
        retry = RetryPolicy(retry_after_max_s=60).urllib3_retry()
        assert retry.get_retry_after(urllib3.HTTPResponse(headers={"Retry-After": "3"})) == 3
        assert retry.get_retry_after(urllib3.HTTPResponse(headers={"Retry-After": "86400"})) == 60
        assert retry.get_retry_after(urllib3.HTTPResponse(headers={"Retry-After": "soon"})) is None
        assert retry.get_retry_after(urllib3.HTTPResponse()) is None
        past = urllib3.HTTPResponse(headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})
        assert retry.get_retry_after(past) == 0  # in the past: no wait

    def test_backoff_is_urllib3s_first_retry_at_once_then_doubling_with_jitter(self):
        policy = RetryPolicy(backoff_base_s=1.0, backoff_max_s=5.0)
        assert policy.delay(0) == 0
        for attempt, least in ((1, 2.0), (2, 4.0)):
            for _ in range(20):
                assert least <= policy.delay(attempt) <= min(5.0, least + 1.0)
        assert policy.delay(5) == 5.0


def test_point_path_from_config_strings():
    assert point_path_from_config("\\\\PIMOCK\\Plant1.TI101;ReadOnly=False") == "\\\\PIMOCK\\Plant1.TI101"
    assert point_path_from_config("\\\\PIMOCK?8e1d\\sinusoid?12;UOM=degC") == "\\\\PIMOCK\\sinusoid"
    assert point_path_from_config("") is None
    assert point_path_from_config("=5*2") is None
