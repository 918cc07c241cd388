"""Values as PI means them: ``"NaN"``, ``"Infinity"`` and ``"-Infinity"`` are the doubles PI Web API writes
that way, not text.

Over HTTP, a proxy in front of the mock writes a numeric stream's values as those strings, as PI Web API
does for non-finite doubles; the decoding rules are also checked on hand-made values.
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from osipi_dagster.pi import PIWebAPIClient
from osipi_dagster.pi.decode import Segment, TimedValues, build_batch, decoder
from osipi_dagster_tests.answer_proxy import answer_proxy, change_stream

START = datetime(2025, 1, 6, 0, 0, tzinfo=UTC)
END = START + timedelta(minutes=2)
MODES = ("streamsets", "batch", "streams")
NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


@pytest.fixture(scope="module")
def web_ids(mock_pi) -> list[str]:
    """Float tags with a value every second in the window."""
    with PIWebAPIClient(mock_pi.api) as client:
        (server,) = client.data_servers()
        floats = [p.web_id for p in client.points(server.web_id) if p.point_type.startswith("Float")]
        read = client.read_recorded(floats[:40], START, END)
        counts = Counter(read.read_all().column("web_id").to_pylist())
    dense = [w for w in floats[:40] if counts[w] > 100]
    assert len(dense) >= 3
    return dense[:3]


def _text_of(timestamp: str) -> str | None:
    """The non-finite value written at ``timestamp`` (every even second), or None to keep the number."""
    second = int(timestamp[17:19])
    return None if second % 2 else list(NON_FINITE)[second // 2 % 3]


def _write_non_finite(answer: Any) -> Any:
    """Every even second's value becomes NaN, +inf or -inf, written as PI Web API writes them."""
    for item in answer["Items"]:
        item["Value"] = _text_of(item["Timestamp"]) or item["Value"]
    return answer


def _same(a: float | None, b: float) -> bool:
    return a is not None and (a == b or (math.isnan(a) and math.isnan(b)))


@pytest.mark.parametrize("mode", MODES)
def test_non_finite_doubles_are_floats(mock_pi, web_ids, mode):
    victim = web_ids[1]
    with (
        answer_proxy(mock_pi.url, change_stream(victim, "recorded", _write_non_finite)) as proxy,
        PIWebAPIClient(proxy.api) as client,
    ):
        read = client.read_recorded(web_ids, START, END, mode=mode, page_size=40)
        table = read.read_all()
    assert not read.failures
    rows = [r for r in table.to_pylist() if r["web_id"] == victim]
    assert len(rows) > 100
    assert table.column("string_value").null_count == table.num_rows
    changed = 0
    for row in rows:
        text = _text_of(row["timestamp"].strftime("%Y-%m-%dT%H:%M:%S"))
        if text is not None:
            changed += 1
            assert _same(row["value"], NON_FINITE[text]), row
        else:
            assert row["value"] is not None and math.isfinite(row["value"])
    assert changed > 50


def _decode_values(values: list[Any]) -> list[dict]:
    body = msgspec.json.encode(
        {
            "Items": [
                {"Timestamp": f"2025-01-06T00:00:0{i}Z", "Value": v, "Good": True}
                for i, v in enumerate(values)
            ]
        }
    )
    page = decoder(TimedValues).decode(body)
    return build_batch([Segment("W", None, page.Items)]).to_pylist()


def test_non_finite_strings_beside_numbers_states_and_text():
    rows = _decode_values(
        [1.5, "NaN", "Infinity", "-Infinity", {"Name": "Shutdown", "Value": 254, "IsSystem": True}]
    )
    assert _same(rows[0]["value"], 1.5) and math.isnan(rows[1]["value"])
    assert (rows[2]["value"], rows[3]["value"]) == (math.inf, -math.inf)
    assert [r["string_value"] for r in rows] == [None] * 5
    assert rows[4]["state_name"] == "Shutdown" and rows[4]["value"] is None


def test_other_text_stays_text_and_the_three_strings_are_always_floats():
    """The documented choice (decode.py): whatever the other values, exactly these three strings are
    floats, so one value lands in the same column however the read is paged. A String point whose value is
    literally "NaN" therefore reads as a float NaN."""
    rows = _decode_values(["open", "NaN", "nan", "Infinity ", "-inf"])
    assert [r["string_value"] for r in rows] == ["open", None, "nan", "Infinity ", "-inf"]
    assert math.isnan(rows[1]["value"]) and [r["value"] for r in rows[2:]] == [None] * 3
    (alone,) = _decode_values(["NaN"])
    assert math.isnan(alone["value"]) and alone["string_value"] is None
