"""The rule every full refresh of a catalog table applies before it writes (docs/OPERATIONS.md, "When PI
answers less"): PI's answer replaces the table, so an answer that lost rows by mistake (a permission change,
a proxy, an asset database taken offline, a filter typo) would remove them in a run that succeeds. A refresh
that would remove every row the lake holds, or more than a share of them, is refused and writes nothing,
unless the run confirms the exact count it would remove (a count cannot approve a different removal).
"""

from __future__ import annotations


def removal_refused(
    removed: int, previous: int, remaining: int, *, max_removed_share: float, confirm_removed: int | None
) -> bool:
    """Whether a refresh that removes ``removed`` of the table's ``previous`` rows and leaves ``remaining``
    must be refused: it removes all of them or more than ``max_removed_share``, and ``confirm_removed`` is
    not exactly ``removed``."""
    if not removed or confirm_removed == removed:
        return False
    return remaining == 0 or removed > max_removed_share * previous
