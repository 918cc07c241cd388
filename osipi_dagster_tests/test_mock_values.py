"""Deterministic value generation (``values.DataSource``) and its JSON serialization, in process."""

from __future__ import annotations

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from osipi_dagster.mock.archive import Archive
from osipi_dagster.mock.config import MockConfig
from osipi_dagster.mock.model import Point
from osipi_dagster.mock.responses import parse_selected_fields
from osipi_dagster.mock.serialize import timed_values, timestamps, vectorised_timestamps
from osipi_dagster.mock.timeparse import NS, format_time
from osipi_dagster.mock.values import DAY_NS, HOUR_NS, NO_DATA, PT_CREATED, Block, DataSource

CONFIG = MockConfig(tags=200, now="2025-01-06T12:00:00Z", archive_days=30)
NOW = CONFIG.fixed_now_ns() or 0


@pytest.fixture(scope="module")
def archive() -> Archive:
    return Archive(CONFIG, NOW)


@pytest.fixture(scope="module")
def data(archive: Archive) -> DataSource:
    return archive.data


def _pick(archive: Archive, test) -> Point:
    return next(p for p in archive.points if test(p))


def _rows(block: Block) -> list[tuple]:
    return list(
        zip(
            block.ts.tolist(), block.values.tolist(), block.states.tolist(), block.flags.tolist(), strict=True
        )
    )


SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@SETTINGS
@given(
    point_index=st.integers(0, 199),
    a=st.integers(0, DAY_NS // NS),
    b=st.integers(0, DAY_NS // NS),
    c=st.integers(0, DAY_NS // NS),
)
def test_overlapping_windows_agree(
    data: DataSource, archive: Archive, point_index: int, a: int, b: int, c: int
) -> None:
    """Whatever the window, a timestamp holds the same values: [a, c] = [a, b] + (b, c]."""
    point = archive.points[point_index]
    a, b, c = sorted((NOW - a * NS, NOW - b * NS, NOW - c * NS))
    whole = data.recorded(point, a, c, NOW, 150_000)
    left = data.recorded(point, a, b, NOW, 150_000)
    right = _rows(data.recorded(point, b + 1, c, NOW, 150_000)) if c > b else []
    assert _rows(whole) == _rows(left) + right


@SETTINGS
@given(point_index=st.integers(0, 199), count=st.integers(1, 3000), hours=st.integers(1, 12))
def test_max_count_is_the_first_values_in_each_direction(
    data: DataSource, archive: Archive, point_index: int, count: int, hours: int
) -> None:
    point = archive.points[point_index]
    start = NOW - hours * HOUR_NS
    full = _rows(data.recorded(point, start, NOW, NOW, 150_000))
    assert _rows(data.recorded(point, start, NOW, NOW, count)) == full[:count]
    assert _rows(data.recorded(point, NOW, start, NOW, count)) == full[::-1][:count]


def test_several_values_at_one_timestamp(data: DataSource, archive: Archive) -> None:
    point = _pick(archive, lambda p: p.multi and p.sampling == "1s")
    ts = data.recorded(point, NOW - HOUR_NS, NOW, NOW, 150_000).ts
    _, counts = np.unique(ts, return_counts=True)
    assert counts.max() >= 2
    single = _pick(archive, lambda p: not p.multi and p.sampling == "1s" and not p.late)
    assert (
        np.unique(data.recorded(single, NOW - HOUR_NS, NOW, NOW, 150_000).ts, return_counts=True)[1].max()
        == 1
    )


def test_sub_second_timestamps(data: DataSource, archive: Archive) -> None:
    fractions = set()
    for point in archive.points:
        ts = data.recorded(point, NOW - HOUR_NS, NOW, NOW, 100).ts
        fractions |= {int(t) % NS for t in ts}
    assert any(f % 1_000_000 for f in fractions)  # finer than a millisecond
    assert all(f % 100 == 0 for f in fractions)  # PI's 100 ns ticks


def test_first_value_is_pt_created_at_the_archive_start(data: DataSource, archive: Archive) -> None:
    point = archive.points[0]
    block = data.recorded(point, 0, NOW, NOW, 3)
    assert int(block.ts[0]) == archive.start_ns
    assert int(block.states[0]) == PT_CREATED
    assert len(data.recorded(point, 0, archive.start_ns - 1, NOW, 10)) == 0


def test_outages_are_system_states(data: DataSource, archive: Archive) -> None:
    states = set()
    for point in archive.points[:30]:
        block = data.recorded(point, NOW - 10 * DAY_NS, NOW, NOW, 150_000)
        states |= set(block.states[block.states > 0].tolist())
    assert {246, 254} & states  # I/O Timeout, Shutdown
    assert states <= {246, 254, 255, 238, 215, 252, 251}


def test_flags_occur(data: DataSource, archive: Archive) -> None:
    block = data.recorded(archive.points[0], NOW - 2 * DAY_NS, NOW, NOW, 150_000)
    assert {1, 2, 4} <= set(np.unique(block.flags).tolist()) | {0} or block.flags.any()
    assert not (block.flags[block.states > 0]).any()  # only good values carry flags


def test_no_data_beyond_now_except_future_points(data: DataSource, archive: Archive) -> None:
    for point in archive.points:
        block = data.recorded(point, NOW - HOUR_NS, NOW + 3 * DAY_NS, NOW, 150_000)
        beyond = (block.ts > NOW).any()
        assert beyond == point.future, point.name
    future = _pick(archive, lambda p: p.future)
    assert int(data.end(future, NOW).ts[0]) > NOW + 6 * DAY_NS
    assert int(data.snapshot(future, NOW).ts[0]) <= NOW


def test_late_values_appear_as_time_passes(archive: Archive) -> None:
    late_archive = Archive(
        MockConfig(tags=200, now="2025-01-06T12:00:00Z", archive_days=30, late_share=1.0), NOW
    )
    data = late_archive.data
    point = next(p for p in late_archive.points if p.sampling == "60s")
    grew = 0
    for k in range(96):  # read the last 6 hours as of their end, every 15 minutes of a day
        end = NOW - DAY_NS - k * 15 * 60 * NS
        earlier = data.recorded(point, end - 6 * HOUR_NS, end, end, 150_000)
        later = data.recorded(point, end - 6 * HOUR_NS, end, NOW, 150_000)
        assert set(earlier.ts.tolist()) <= set(later.ts.tolist())
        grew += len(later) > len(earlier)
    assert 3 <= grew < 96


def test_interpolated_and_plot_and_summary(data: DataSource, archive: Archive) -> None:
    point = archive.points[0]
    start = NOW - DAY_NS
    interpolated = data.interpolated(point, start, NOW, HOUR_NS, NOW, 150_000)
    assert interpolated.ts.tolist() == [start + i * HOUR_NS for i in range(25)]
    assert (interpolated.states == 0).sum() >= 20
    before = data.interpolated_at(point, np.array([archive.start_ns - NS]), NOW)
    assert int(before.states[0]) == NO_DATA
    plot = data.plot(point, start, NOW, 24, NOW)
    assert 24 * 2 <= len(plot) <= 24 * 5 and (np.diff(plot.ts) >= 0).all()
    recorded = data.recorded(point, start, NOW, NOW, 150_000)
    summary = dict(data.summary(point, start, NOW, ["Count", "Minimum", "Maximum", "Average"], NOW))
    assert int(summary["Count"].values[0]) == int((recorded.states == 0).sum())
    good = recorded.values[recorded.states == 0]
    assert float(summary["Minimum"].values[0]) == pytest.approx(float(good.min()))
    assert float(summary["Maximum"].values[0]) == pytest.approx(float(good.max()))
    assert float(summary["Minimum"].values[0]) <= float(summary["Average"].values[0]) <= float(good.max())


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(-(10**18), 4 * 10**18).map(lambda n: n - n % 100), min_size=1, max_size=50))
def test_vectorised_timestamps_match_format_time(ns: list[int]) -> None:
    expected = [f'"{format_time(n)}"'.encode() for n in ns]
    assert vectorised_timestamps(np.array(ns, np.int64)) == expected
    assert timestamps(np.array(ns, np.int64)) == expected


def test_serialized_values(data: DataSource, archive: Archive) -> None:
    point = _pick(archive, lambda p: p.point_type == "Digital")
    states = archive.enumeration_set(point.digital_set).states
    block = data.recorded(point, NOW - DAY_NS, NOW, NOW, 50)
    items = orjson.loads(timed_values(block, "", None, states))
    assert len(items) == len(block)
    first = items[0]
    assert list(first) == [
        "Timestamp",
        "Value",
        "UnitsAbbreviation",
        "Good",
        "Questionable",
        "Substituted",
        "Annotated",
    ]
    assert set(first["Value"]) == {"Name", "Value", "IsSystem"} and first["Value"]["IsSystem"] is False
    selected = orjson.loads(timed_values(block, "", parse_selected_fields("Good;Timestamp"), states))
    assert all(list(item) == ["Timestamp", "Good"] for item in selected)


def test_system_state_json(data: DataSource, archive: Archive) -> None:
    point = archive.points[0]
    block = data.recorded(point, 0, NOW, NOW, 1)
    item = orjson.loads(timed_values(block, point.units, None))[0]
    assert item["Value"] == {"Name": "Pt Created", "Value": 253, "IsSystem": True}
    assert item["Good"] is False
