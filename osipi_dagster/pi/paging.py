"""Per-stream paging of recorded values: the cursor and what one page does to it.

PI truncates a recorded read to ``maxCount`` values without saying so, and can hold several values at one
timestamp. A stream's cursor is therefore ``(start, taken)``: the next read starts *at* ``start`` (PI's own
timestamp string of the last value yielded, so no precision is lost), and its first ``taken`` values at
that timestamp were already yielded and are skipped. Asking for ``taken + page_size`` values makes every
full page yield at least ``page_size`` new values, so even a page made of one timestamp advances.

A server (or a proxy) that ignores ``startTime`` must not make a read loop or yield a value twice: a page
is checked by its first and last timestamps only (:func:`page_problem`), and a full page must move the
cursor forward (:func:`advances`); either failing fails the stream.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from osipi_dagster.contract import format_ns


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


def page_problem(first_ns: int, last_ns: int, cursor_ns: int, end_ns: int) -> str | None:
    """Why a page whose values run from ``first_ns`` to ``last_ns``, read from a cursor at ``cursor_ns``
    up to ``end_ns``, cannot be the answer to that read; None when it can."""
    if first_ns < cursor_ns:
        return (
            f"the page starts at {format_ns(first_ns)}, before the stream's cursor {format_ns(cursor_ns)} "
            "(the server did not honour startTime)"
        )
    if last_ns < first_ns:
        return f"the page ends at {format_ns(last_ns)}, before its first value at {format_ns(first_ns)}"
    if last_ns > end_ns:
        return f"the page holds values up to {format_ns(last_ns)}, after endTime {format_ns(end_ns)}"
    return None


def advances(cursor: Cursor, cursor_ns: int, following: Cursor, following_ns: int) -> bool:
    """Whether ``following`` (at ``following_ns``) lies after ``cursor`` (at ``cursor_ns``)."""
    return following_ns > cursor_ns or (following_ns == cursor_ns and following.taken > cursor.taken)
