"""bronze.pi_event_frames: MERGE by WebId, open frames stored with a null end."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa
import pytest

from osipi_dagster.lake import (
    EVENT_FRAME_INPUT_SCHEMA,
    InvalidRowsError,
    Lakehouse,
    LakeTable,
    merge_event_frames,
    read_table,
)

START = datetime(2025, 1, 6, 22, 0, tzinfo=UTC)
AF_OPEN = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)


@pytest.fixture
def table(tmp_path: Path) -> LakeTable:
    return Lakehouse(str(tmp_path)).table("bronze.pi_event_frames")


def frame(web_id: str, end: datetime | None, **changes: object) -> dict:
    return {
        "web_id": web_id,
        "name": f"EF {web_id}",
        "description": None,
        "path": f"\\\\AF\\DB\\EventFrames[{web_id}]",
        "template_name": "Downtime",
        "category_names": ["Process"],
        "severity": "Major",
        "start_time": START,
        "end_time": end,
        "primary_element_web_id": "E1",
        "referenced_element_web_ids": ["E1", "E2"],
        "can_be_acknowledged": True,
        "is_acknowledged": False,
        "acknowledged_by": None,
        "acknowledged_date": None,
        "attributes": [("Reason", "Pump trip")],
        **changes,
    }


def frames(*rows: dict) -> pa.Table:
    return pa.Table.from_pylist(list(rows), schema=EVENT_FRAME_INPUT_SCHEMA)


def test_an_open_frame_that_closes_is_updated_not_duplicated(table: LakeTable) -> None:
    opened = merge_event_frames(table, frames(frame("F1", AF_OPEN), frame("F2", None)))
    end = datetime(2025, 1, 7, 1, 30, tzinfo=UTC)
    closed = merge_event_frames(
        table,
        frames(
            frame(
                "F1",
                end,
                is_acknowledged=True,
                acknowledged_by="DOMAIN\\op",
                attributes=[("Reason", "Fixed")],
            )
        ),
    )

    rows = {row["web_id"]: row for row in read_table(table).to_pylist()}
    assert (opened.rows_inserted, closed.rows_inserted, closed.rows_updated) == (2, 0, 1)
    assert len(rows) == 2
    assert rows["F1"]["end_time"] == end and rows["F1"]["duration_seconds"] == 3.5 * 3600
    assert rows["F1"]["is_acknowledged"] and rows["F1"]["attributes"] == [("Reason", "Fixed")]
    assert rows["F2"]["end_time"] is None and rows["F2"]["duration_seconds"] is None
    assert rows["F1"]["partition_date"] == rows["F2"]["partition_date"] == date(2025, 1, 6)


def test_af_max_time_is_stored_as_an_open_frame(table: LakeTable) -> None:
    merge_event_frames(table, frames(frame("F1", AF_OPEN)))

    (row,) = read_table(table).to_pylist()
    assert row["end_time"] is None and row["duration_seconds"] is None


def test_a_frame_twice_in_one_merge_is_rejected(table: LakeTable) -> None:
    with pytest.raises(InvalidRowsError, match="more than once"):
        merge_event_frames(table, frames(frame("F1", None), frame("F1", AF_OPEN)))


def test_missing_columns_are_named(table: LakeTable) -> None:
    with pytest.raises(InvalidRowsError, match=r"missing \['severity'\]"):
        merge_event_frames(table, frames(frame("F1", None)).drop_columns(["severity"]))
