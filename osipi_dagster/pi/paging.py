"""Per-stream paging of recorded values: the cursor and what one page does to it.

PI truncates a recorded read to ``maxCount`` values without saying so, and can hold several values at one
timestamp. A stream's cursor is therefore ``(start, taken)``: the next read starts *at* ``start`` (PI's own
timestamp string of the last value yielded, so no precision is lost), and its first ``taken`` values at
that timestamp were already yielded and are skipped. Asking for ``taken + page_size`` values makes every
full page yield at least ``page_size`` new values, so even a page made of one timestamp advances.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where a stream's next page starts: at PI time ``start``, skipping ``taken`` values stamped so."""

    start: str
    taken: int = 0


@dataclass(frozen=True, slots=True)
class PageStep:
    """Apply a page: yield ``page[begin:end]``; continue at ``next`` (None: the stream is complete)."""

    begin: int
    end: int
    next: Cursor | None


def request_count(taken: int, page_size: int, limit: int) -> int:
    """The ``maxCount`` for a stream at a cursor with ``taken`` skipped values; 0 when the server's
    ``limit`` cannot return one new value (more values at one timestamp than it returns per call)."""
    wanted = min(taken + page_size, limit)
    return wanted if wanted > taken else 0


def plan_page(
    timestamps: Sequence[str], cursor: Cursor, max_count: int, error_index: int | None = None
) -> PageStep:
    """What a page of ``timestamps``, read from ``cursor`` with ``max_count``, yields and where it leaves
    the stream.

    ``error_index`` is the first value carrying PI ``Errors``: the values before it are yielded and the
    cursor stops right before it, so a retry starts exactly at the failed value.
    """
    n = len(timestamps)
    skip = 0
    while skip < cursor.taken and skip < n and timestamps[skip] == cursor.start:
        skip += 1
    if error_index is not None:
        if error_index < skip:
            return PageStep(skip, skip, cursor)
        return PageStep(skip, error_index, _cursor_before(timestamps, error_index))
    if n < max_count:
        return PageStep(skip, n, None)
    return PageStep(skip, n, _cursor_before(timestamps, n))


def _cursor_before(timestamps: Sequence[str], index: int) -> Cursor:
    """The cursor just before ``timestamps[index]`` (or after the last value when ``index == len``)."""
    last = timestamps[index] if index < len(timestamps) else timestamps[index - 1]
    run = 0
    position = index - 1
    while position >= 0 and timestamps[position] == last:
        run += 1
        position -= 1
    return Cursor(last, run)
