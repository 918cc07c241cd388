"""ingest_event_frames against the mock over real HTTP and a real Delta table.

The oracle reads the mock with plain ``requests``: the database search (paged with a small ``maxCount``)
and each frame's attribute values through ``/streamsets/{frame}/value``, a route the connector does not
use, so the two share no code.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import requests

from osipi_dagster.ingest.event_frames import EventFrameReadError, day_window, ingest_event_frames
from osipi_dagster.ingest.server_clock import server_now
from osipi_dagster.lake import Lakehouse, LakeTable, read_table
from osipi_dagster.mock.config import FaultConfig
from osipi_dagster.mock.server import RunningMock
from osipi_dagster.pi import PIWebAPIClient

PAST_DAY = date(2025, 1, 5)  # a whole day before the test clock (2025-01-06T12:00:00Z)
TODAY = date(2025, 1, 6)
PI_OPEN = "9999"  # AF's "no end time" is 9999-12-31T23:59:59Z
ORACLE_PAGE = 100  # small pages, so the oracle pages too


@pytest.fixture
def table(tmp_path: Path) -> LakeTable:
    return Lakehouse(str(tmp_path)).table("bronze.pi_event_frames")


@pytest.fixture
def client(mock_pi: RunningMock) -> Iterator[PIWebAPIClient]:
    with PIWebAPIClient(mock_pi.api) as pi:
        yield pi


# -- the oracle -------------------------------------------------------------------------------------------


def _get(url: str, **params: object) -> dict:
    answer = requests.get(url, params=params, timeout=60)
    answer.raise_for_status()
    return answer.json()


def _utc(text: str | None) -> datetime | None:
    if not text or text.startswith(PI_OPEN):
        return None
    micros = int(np.datetime64(text.rstrip("Z"), "us").astype(np.int64))
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)


def _text(value: object) -> str | None:
    """A JSON attribute value as the table holds it."""
    if isinstance(value, dict):
        return value["Name"]
    if value is None or isinstance(value, str):
        return value
    return repr(value) if isinstance(value, float) else str(value)


def raw_event_frames(api: str, day: date, now: datetime) -> dict[str, dict]:
    """The rows ``bronze.pi_event_frames`` must hold for ``day`` (as of ``now``), by WebId, read with plain
    requests: every frame of every AF database active between midnight and min(next midnight, now)."""
    end = min(datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1), now)
    last_tick = (end - timedelta(microseconds=1)).strftime("%Y-%m-%dT%H:%M:%S.%f") + "9Z"
    frames = raw_search(api, f"{day.isoformat()}T00:00:00Z", last_tick)
    return {frame["WebId"]: _expected_row(api, frame) for frame in frames}


def raw_search(api: str, start: str, end: str) -> list[dict]:
    """The EventFrame JSON of every frame of every AF database active in ``[start, end]``, paged."""
    found = []
    for server in _get(f"{api}/assetservers")["Items"]:
        for database in _get(server["Links"]["Databases"])["Items"]:
            start_index = 0
            while True:
                page = _get(
                    f"{api}/assetdatabases/{database['WebId']}/eventframes",
                    searchMode="Overlapped",
                    startTime=start,
                    endTime=end,
                    searchFullHierarchy="true",
                    startIndex=start_index,
                    maxCount=ORACLE_PAGE,
                )["Items"]
                found += page
                if len(page) < ORACLE_PAGE:
                    break
                start_index += ORACLE_PAGE
    return found


def _expected_row(api: str, frame: dict) -> dict:
    start, end = _utc(frame["StartTime"]), _utc(frame["EndTime"])
    primary = frame["Links"].get("PrimaryReferencedElement")
    values = _get(f"{api}/streamsets/{frame['WebId']}/value")["Items"]
    return {
        "web_id": frame["WebId"],
        "name": frame["Name"],
        "description": frame["Description"] or None,
        "path": frame["Path"],
        "template_name": frame["TemplateName"] or None,
        "category_names": frame["CategoryNames"],
        "severity": frame["Severity"],
        "start_time": start,
        "end_time": end,
        "duration_seconds": None if end is None else (end - start).total_seconds(),
        "primary_element_web_id": primary.rsplit("/", 1)[-1] if primary else None,
        "referenced_element_web_ids": frame["RefElementWebIds"],
        "parent_web_id": frame["Links"]["Parent"].rsplit("/", 1)[-1] if "Parent" in frame["Links"] else None,
        "can_be_acknowledged": frame["CanBeAcknowledged"],
        "is_acknowledged": frame["IsAcknowledged"],
        "acknowledged_by": frame.get("AcknowledgedBy") or None,
        "acknowledged_date": _utc(frame.get("AcknowledgedDate")),
        "attributes": sorted((item["Name"], _text(item["Value"]["Value"])) for item in values),
        "partition_date": start.date(),
    }


def stored_rows(table: LakeTable) -> dict[str, dict]:
    """The table's rows by WebId, attributes sorted, without ``ingested_at`` (it changes on every write)."""
    rows = read_table(table).to_pylist()
    assert len({row["web_id"] for row in rows}) == len(rows), "a frame is stored more than once"
    return {
        row["web_id"]: {
            **{k: v for k, v in row.items() if k != "ingested_at"},
            "attributes": sorted(row["attributes"]),
        }
        for row in rows
    }


def now_of(running: RunningMock) -> datetime:
    return datetime.fromisoformat(_get(f"{running.url}/admin/clock")["Now"].replace("Z", "+00:00"))


# -- tests ------------------------------------------------------------------------------------------------


def test_a_past_day_holds_exactly_the_frames_the_mock_reports(
    mock_pi: RunningMock, client: PIWebAPIClient, table: LakeTable
) -> None:
    now = server_now(client)
    result = ingest_event_frames(client, table, day=PAST_DAY, now=now)

    expected = raw_event_frames(mock_pi.api, PAST_DAY, now)
    assert stored_rows(table) == expected
    templates = {row["template_name"] for row in expected.values()}
    assert {"Batch", "Batch Phase", "Process Alarm"} <= templates, "child frames and alarms must be read"
    phases = [row for row in expected.values() if row["template_name"] == "Batch Phase"]
    assert all(row["parent_web_id"] in expected for row in phases), "a phase keeps its batch as parent"
    assert any(row["start_time"].date() < PAST_DAY for row in expected.values()), "frames from the day before"
    assert (result.frames_read, result.rows_inserted, result.rows_updated) == (
        len(expected),
        len(expected),
        0,
    )
    assert result.frames_open == sum(row["end_time"] is None for row in expected.values())
    assert result.attribute_values == sum(len(row["attributes"]) for row in expected.values())
    assert result.table_version == table.version() == 1
    assert (result.window_start, result.window_end) == (
        datetime(2025, 1, 5, tzinfo=UTC),
        datetime(2025, 1, 6, tzinfo=UTC),
    )


def test_today_stops_at_the_server_now_and_stores_open_frames_without_an_end(
    mock_pi: RunningMock, client: PIWebAPIClient, table: LakeTable
) -> None:
    now = server_now(client)
    result = ingest_event_frames(client, table, day=TODAY, now=now)

    rows = stored_rows(table)
    assert rows == raw_event_frames(mock_pi.api, TODAY, now)
    open_rows = [row for row in rows.values() if row["end_time"] is None]
    assert open_rows and all(row["duration_seconds"] is None for row in open_rows)
    assert result.frames_open == len(open_rows)
    assert result.frames_closed == len(rows) - len(open_rows)
    assert result.window_end == now == datetime(2025, 1, 6, 12, tzinfo=UTC)


def test_materializing_a_day_twice_gives_identical_contents(client: PIWebAPIClient, table: LakeTable) -> None:
    now = server_now(client)
    first = ingest_event_frames(client, table, day=PAST_DAY, now=now)
    before = stored_rows(table)
    second = ingest_event_frames(client, table, day=PAST_DAY, now=now)

    assert stored_rows(table) == before
    assert (second.rows_inserted, second.rows_updated) == (0, first.frames_read)
    assert second.table_version == first.table_version + 1


def test_an_open_frame_closes_and_is_acknowledged_in_place(
    mock_pi: RunningMock, make_mock, table: LakeTable
) -> None:
    # A frame that starts before a midnight and is acknowledged and closes after it: seen at that midnight,
    # it is open and unacknowledged; a day later, closed and acknowledged. No frame of its day can start
    # after midnight, so the day's row count must not change.
    frame = next(
        _expected_row(mock_pi.api, raw)
        for raw in raw_search(mock_pi.api, "2024-12-26T00:00:00Z", "2025-01-05T00:00:00Z")
        if PI_OPEN > raw["EndTime"][:10] > raw["StartTime"][:10] < raw.get("AcknowledgedDate", "")[:10]
    )
    day = frame["start_time"].date()
    running = make_mock()
    midnight = f"{day + timedelta(days=1)}T00:00:00Z"
    requests.post(f"{running.url}/admin/clock", json={"now": midnight}, timeout=10).raise_for_status()

    with PIWebAPIClient(running.api) as pi:
        opened = ingest_event_frames(pi, table, day=day, now=server_now(pi))
        seen_open = stored_rows(table)[frame["web_id"]]
        requests.post(f"{running.url}/admin/clock", json={"advance": "1d"}, timeout=10).raise_for_status()
        closed = ingest_event_frames(pi, table, day=day, now=server_now(pi))

    assert (seen_open["end_time"], seen_open["is_acknowledged"], seen_open["acknowledged_by"]) == (
        None,
        False,
        None,
    )
    rows = stored_rows(table)
    assert rows == raw_event_frames(running.api, day, now_of(running))
    assert rows[frame["web_id"]] == frame
    assert (closed.frames_read, closed.rows_inserted, closed.rows_updated) == (len(rows), 0, len(rows))
    assert opened.frames_read == len(rows) and opened.frames_open > closed.frames_open == 0


@pytest.mark.parametrize(
    "day", [date(2024, 11, 1), date(2025, 1, 9)], ids=["before-the-history", "after-the-server-now"]
)
def test_a_day_without_frames_writes_no_row(client: PIWebAPIClient, table: LakeTable, day: date) -> None:
    result = ingest_event_frames(client, table, day=day, now=server_now(client))

    assert (result.frames_read, result.rows_inserted, result.rows_updated, result.attribute_values) == (
        0,
        0,
        0,
        0,
    )
    assert read_table(table).num_rows == 0


@pytest.mark.parametrize(
    "faults",
    [FaultConfig(value_error_rate=1.0), FaultConfig(error_rate=1.0)],
    ids=["attribute-values-fail", "every-request-fails"],
)
def test_a_failed_read_raises_and_commits_nothing(
    client: PIWebAPIClient, make_mock, table: LakeTable, faults: FaultConfig
) -> None:
    now = server_now(client)
    ingest_event_frames(client, table, day=PAST_DAY, now=now)
    version, before = table.version(), stored_rows(table)
    failing = make_mock(faults=faults)

    with PIWebAPIClient(failing.api, max_retries=0) as pi, pytest.raises(EventFrameReadError) as error:
        ingest_event_frames(pi, table, day=PAST_DAY, now=now)

    assert "Nothing was written" in str(error.value)
    assert table.version() == version and stored_rows(table) == before


def test_one_af_database_can_be_chosen_by_name(
    mock_pi: RunningMock, client: PIWebAPIClient, table: LakeTable
) -> None:
    now = server_now(client)
    result = ingest_event_frames(
        client, table, day=PAST_DAY, now=now, asset_server="afmock", database="OPERATIONS"
    )

    assert result.databases == ("\\\\AFMOCK\\Operations",)
    assert result.frames_read == len(raw_event_frames(mock_pi.api, PAST_DAY, now))
    with pytest.raises(LookupError, match="No AF database named 'Nowhere'"):
        ingest_event_frames(client, table, day=PAST_DAY, now=now, database="Nowhere")


def test_the_window_is_the_utc_day_clipped_to_now() -> None:
    noon = datetime(2025, 1, 6, 12, tzinfo=UTC)
    midnight = datetime(2025, 1, 6, tzinfo=UTC)
    assert day_window(date(2025, 1, 5), noon) == (midnight - timedelta(days=1), midnight)
    assert day_window(TODAY, noon) == (midnight, noon)
    assert day_window(date(2025, 1, 7), noon) == (midnight + timedelta(days=1),) * 2
    with pytest.raises(ValueError, match="timezone-aware"):
        day_window(TODAY, datetime(2025, 1, 6, 12))
