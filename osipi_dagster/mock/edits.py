"""Edits and deletes of stored values: generated ones (deterministic from the seed) and those posted to
``POST /admin/edits``.

An edit happens at a moment of the mock's clock (``happened``) and acts on every value a point stores at one
timestamp: it replaces them by one value (an update, or a new value where there was none) or removes them
(a delete). A read at clock ``now`` sees the stored values with every edit that happened at or before
``now`` applied, the last edit of a timestamp winning; at one instant generated edits come first, then admin
edits in the order they were posted (``Edit.order``). An edit acts on the timestamp whatever arrives there
later: a late value that reaches an edited timestamp after its edit stays hidden by it.

**Generated edits.** Per point and hour of the clock, with probability ``edit_share``, one edit happens at a
hashed second of that hour. It acts on the last value stored at or before ``happened - lag`` that is visible
at ``happened`` and at most a day older (none if there is no such value): the lag is log-uniform from 1
minute to about 68 hours, so about a quarter of the edits fall on a closed day. 30 % are deletes; the others
replace the value by a nearby one (numbers move by 1 to 5 % of the span, a digital point takes another
state, a string gets ``-R``), Good and Substituted, as a person correcting a value leaves it.

**Cost.** The hours holding an edit are found from a table per (point, 30-day epoch), built on first use
(about ``edit_share`` x 720 entries); each edit's target is looked up once and kept. A read of a window no
edit touches pays a few dictionary lookups per chunk of values and nothing per value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from osipi_dagster.mock.errors import PIError
from osipi_dagster.mock.hashing import hash64, key, uniform
from osipi_dagster.mock.model import SUBSTITUTED, Point
from osipi_dagster.mock.timeparse import NS

if TYPE_CHECKING:
    from osipi_dagster.mock.values import Block, DataSource

HOUR_NS = 3600 * NS
EPOCH_HOURS = 720  # hours per table of generated edits
SEARCH_NS = 86_400 * NS  # a generated edit acts on a value at most this much older than it aims at
MAX_LAG_NS = (60 * 2**12) * NS  # the longest lag of a generated edit (about 68 h)
DELETE_SHARE = 0.3
EDITED_SLOT = -2  # an event slot at or below this names an edited value: EDITED_SLOT - value id
_S_EDIT = 14  # hash salts (values.py uses 1-13 and 101-113)


@dataclass(frozen=True, slots=True)
class EditValue:
    """The value an edit stores: as a ``Block`` holds it (code of a digital state), its state and flags."""

    value: object
    state: int
    flags: int


@dataclass(frozen=True, slots=True)
class Edit:
    """At ``happened`` the values of point ``point_id`` at ``ts`` were replaced by the value in ``slot`` (an
    event slot, see ``EDITED_SLOT``), or removed when ``slot`` is None."""

    point_id: int
    ts: int
    happened: int
    order: int  # 0 for a generated edit, the posting number (1, 2, ...) of an admin edit
    slot: int | None

    @property
    def rank(self) -> tuple[int, int]:
        """The order edits happen in."""
        return self.happened, self.order


@dataclass(frozen=True, slots=True)
class _Planned:
    """A generated edit before its target is looked up: when it happens, where it aims, what it does."""

    happened: int
    aim: int
    deletes: bool
    bits: int  # hash bits that pick the new value


class EditStore:
    """Every edit of the archive's values; ``DataSource`` applies them to reads."""

    def __init__(self, data: DataSource, share: float) -> None:
        self.data = data
        self.share = share
        self.posted = 0  # admin edits posted so far (the order of the last one)
        self._admin: dict[int, list[Edit]] = {}
        self._values: list[EditValue] = []
        self._plans: dict[tuple[int, int], tuple[_Planned, ...]] = {}
        self._targets: dict[tuple[int, int], Edit | None] = {}

    # -- what reads apply ----------------------------------------------------------------------------

    def latest(self, point: Point, lo: int, hi: int, now: int) -> list[Edit]:
        """The last edit of each timestamp in [lo, hi] among those that happened at or before ``now``."""
        if not self.share and not self._admin:
            return []
        edits = self.between(point, lo, hi, now)
        return [e for i, e in enumerate(edits) if i + 1 == len(edits) or edits[i + 1].ts != e.ts]

    def between(self, point: Point, lo: int, hi: int, now: int) -> list[Edit]:
        """Every edit of a timestamp in [lo, hi] that happened at or before ``now``, by (ts, happened,
        order)."""
        found = [e for e in self._admin.get(point.id, ()) if lo <= e.ts <= hi and e.happened <= now]
        if self.share:
            for plan in self._plans_between(point, lo, min(now, hi + SEARCH_NS + MAX_LAG_NS)):
                if plan.aim >= lo and plan.aim - SEARCH_NS <= hi:
                    edit = self._target(point, plan)
                    if edit is not None and lo <= edit.ts <= hi:
                        found.append(edit)
        return sorted(found, key=lambda e: (e.ts, e.happened, e.order))

    def happened(
        self, point: Point, after: int, until: int, posted_after: int, posted_until: int
    ) -> list[Edit]:
        """Generated edits that happened in (after, until] and admin edits posted in (posted_after,
        posted_until], in the order they happened."""
        found = [e for e in self._admin.get(point.id, ()) if posted_after < e.order <= posted_until]
        if self.share and after < until:
            for plan in self._plans_between(point, after + 1, until):
                edit = self._target(point, plan)
                if edit is not None:
                    found.append(edit)
        return sorted(found, key=lambda e: e.rank)

    def value(self, slot: int) -> EditValue:
        """The value an edited event slot names."""
        return self._values[EDITED_SLOT - slot]

    # -- admin edits ---------------------------------------------------------------------------------

    def post(self, point: Point, ts: int, value: EditValue | None, now: int) -> Edit:
        """Record an edit made now (``value`` None: a delete)."""
        self.posted += 1
        edit = Edit(point.id, ts, now, self.posted, None if value is None else self._keep(value))
        self._admin.setdefault(point.id, []).append(edit)
        return edit

    def withdraw(self, posted: int) -> None:
        """Forget the admin edits posted after the ``posted``-th (a request that failed half-way)."""
        for point_id in list(self._admin):
            kept = [e for e in self._admin[point_id] if e.order <= posted]
            if kept:
                self._admin[point_id] = kept
            else:
                del self._admin[point_id]
        self.posted = posted

    def admin_value(self, point: Point, raw: object) -> EditValue:
        """The value a person writes to ``point`` (a number, a digital state's code or name, a string),
        Good and Substituted; 400 when it does not fit the point's type."""
        kind = point.point_type
        if kind == "Digital":
            states = self.data.archive.enumeration_set(point.digital_set).states
            codes = {code for code, _ in states}
            names = {name.lower(): code for code, name in states}
            if isinstance(raw, str) and raw.lower() in names:
                return EditValue(names[raw.lower()], 0, SUBSTITUTED)
            if isinstance(raw, int) and not isinstance(raw, bool) and raw in codes:
                return EditValue(raw, 0, SUBSTITUTED)
            choices = ", ".join(f"{code} ({name})" for code, name in states)
            raise PIError(400, f"{raw!r} is not a state of {point.digital_set}: use one of {choices}.")
        if kind == "String":
            if not isinstance(raw, str):
                raise PIError(400, f"{raw!r} is not a string, and {point.name} is a String point.")
            return EditValue(raw, 0, SUBSTITUTED)
        number = raw if isinstance(raw, int | float) and not isinstance(raw, bool) else None
        if number is None or not math.isfinite(number):
            raise PIError(400, f"{raw!r} is not a finite number, and {point.name} is a {kind} point.")
        if kind == "Int32":
            if number != int(number) or not -(2**31) <= number < 2**31:
                raise PIError(400, f"{raw!r} is not an Int32, and {point.name} is an Int32 point.")
            return EditValue(int(number), 0, SUBSTITUTED)
        return EditValue(float(number), 0, SUBSTITUTED)

    # -- generated edits -----------------------------------------------------------------------------

    def _plans_between(self, point: Point, first: int, last: int) -> list[_Planned]:
        """Generated edits of ``point`` that happen in [first, last], in time order."""
        if first > last:
            return []
        epoch_ns = EPOCH_HOURS * HOUR_NS
        return [
            plan
            for epoch in range(first // epoch_ns, last // epoch_ns + 1)
            for plan in self._plans_of(point, epoch)
            if first <= plan.happened <= last
        ]

    def _plans_of(self, point: Point, epoch: int) -> tuple[_Planned, ...]:
        found = self._plans.get((point.id, epoch))
        if found is None:
            found = self._plans[(point.id, epoch)] = self._plan(point, epoch)
        return found

    def _plan(self, point: Point, epoch: int) -> tuple[_Planned, ...]:
        seed = self.data.archive.seed
        hours = np.arange(epoch * EPOCH_HOURS, (epoch + 1) * EPOCH_HOURS, dtype=np.int64)
        hours = hours[uniform(hours, key(seed, point.id, _S_EDIT)) < self.share]
        plans = []
        for hour, h in zip(
            hours.tolist(), hash64(hours, key(seed, point.id, _S_EDIT + 100)).tolist(), strict=True
        ):
            happened = hour * HOUR_NS + (h % 3600) * NS
            lag = round(60 * 2 ** (12 * ((h >> 12) & 0xFFFFF) / (1 << 20))) * NS
            if happened > self.data.start_ns:
                plans.append(
                    _Planned(happened, happened - lag, (h >> 32) % 1000 < DELETE_SHARE * 1000, h >> 44)
                )
        return tuple(plans)

    def _target(self, point: Point, plan: _Planned) -> Edit | None:
        """The edit ``plan`` makes: on the last stored value it can reach, None if there is none."""
        cache_key = (point.id, plan.happened)
        if cache_key not in self._targets:
            found = self.data.last_stored(point, plan.aim, plan.aim - SEARCH_NS, plan.happened)
            edit = None
            if len(found) and found.ts[0] > self.data.start_ns:
                slot = None if plan.deletes else self._keep(self._nearby(point, found, plan.bits))
                edit = Edit(point.id, int(found.ts[0]), plan.happened, 0, slot)
            self._targets[cache_key] = edit
        return self._targets[cache_key]

    def _nearby(self, point: Point, found: Block, bits: int) -> EditValue:
        """A corrected value close to the first of ``found``."""
        old = found.values[0]
        u = (bits & 0xFFFF) / 65536.0
        if found.kind == "digital":
            count = len(self.data.archive.enumeration_set(point.digital_set).states)
            return EditValue((int(old) + 1 + int(u * (count - 1))) % count, 0, SUBSTITUTED)
        if found.kind == "string":
            return EditValue(f"{old}-R", 0, SUBSTITUTED)
        step = (point.span or 1.0) * (0.01 + 0.04 * u) * (1 if bits >> 16 & 1 else -1)
        if found.kind == "int":
            return EditValue(int(old) + (round(step) or 1), 0, SUBSTITUTED)
        return EditValue(float(old) + step, 0, SUBSTITUTED)

    def _keep(self, value: EditValue) -> int:
        self._values.append(value)
        return EDITED_SLOT - (len(self._values) - 1)
