"""Helpers for the PI client tests: an independent oracle for recorded values and completeness checks."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import requests

from osipi_dagster.pi import StreamRead

Row = tuple


def rows_of(table: pa.Table | StreamRead) -> list[Row]:
    """Rows as hashable tuples (timestamps as int nanoseconds) in the schema's column order."""
    if isinstance(table, StreamRead):
        table = table.read_all()
    columns = []
    for name in table.column_names:
        column = table.column(name)
        if name == "timestamp":
            column = column.cast(pa.int64())
        columns.append(column.to_pylist())
    return list(zip(*columns, strict=True))


def raw_recorded(api: str, web_id: str, start: str, end: str, max_count: int = 150_000) -> list[Row]:
    """One stream's recorded values read with plain ``requests`` + ``json`` and mapped to the schema by
    hand: an oracle that shares no code with the client."""
    answer = requests.get(
        f"{api}/streams/{web_id}/recorded",
        params={"startTime": start, "endTime": end, "maxCount": max_count},
        timeout=60,
    )
    answer.raise_for_status()
    body = answer.json()
    assert len(body["Items"]) < max_count, "the oracle read must not be truncated"
    units = body.get("UnitsAbbreviation") or None
    rows = []
    for item in body["Items"]:
        stamp = int(np.datetime64(item["Timestamp"].rstrip("Z"), "ns").astype(np.int64))
        value = item["Value"]
        number = string = code = name = None
        system = False
        if isinstance(value, dict):
            code, name, system = value["Value"], value["Name"], value["IsSystem"]
        elif isinstance(value, str):
            string = value
        elif isinstance(value, bool) or value is not None:
            number = float(value)
        units_here = units or item.get("UnitsAbbreviation") or None
        flags = tuple(item[k] for k in ("Good", "Questionable", "Substituted", "Annotated"))
        rows.append((web_id, stamp, number, string, code, name, system, *flags, units_here))
    return rows


def assert_complete_or_reported(
    read: StreamRead, rows: Sequence[Row], reference: Sequence[Row], web_ids
) -> None:
    """Every stream is either complete (exactly its reference rows) or reported failed, with exactly its
    reference rows before ``resume_from`` yielded and never a duplicate or an invented row."""
    failed = {f.web_id: f for f in read.failures}
    assert len(failed) == len(read.failures), "a stream was reported twice"
    assert set(read.completed) | set(failed) == set(web_ids)
    assert not set(read.completed) & set(failed)
    got = Counter(rows)
    want = Counter(reference)
    assert not got - want, f"rows that are not in the archive (or duplicates): {list(got - want)[:3]}"
    for web_id in web_ids:
        mine = Counter(r for r in rows if r[0] == web_id)
        theirs = Counter(r for r in reference if r[0] == web_id)
        if web_id in failed:
            resume = failed[web_id].resume_from_ns
            before = Counter(r for r in theirs.elements() if r[1] < resume)
            assert Counter(r for r in mine.elements() if r[1] < resume) == before
        else:
            assert mine == theirs, f"{web_id}: {sum((theirs - mine).values())} rows missing"
