"""Deterministic stream data: a stored value, and whether a timestamp holds one, is a pure function of
(seed, point, timestamp), never of the query window, so overlapping windows agree byte for byte. What a read
sees also depends on the clock (late arrivals) and on the edits that happened by then (``edits.py``).

Generation is vectorised numpy (splitmix64 hashes on uint64, then only + * floor on float64, which are
exact IEEE operations and give the same bits whatever the array length or alignment).

**Time line of a point.** Data exist from the archive start (``config.archive_days`` before start-up, on a
whole second) to the clock's now; Future points hold values up to now + ``FUTURE_HORIZON_NS``. The first
value of every point is the system state ``Pt Created`` (253) at the archive start.

**Sampling.** ``1s``/``5s``/``60s`` points sit on a grid of that period; about 15 % of the 1 s and 5 s points
have a sub-second phase with up to 7 fractional digits. ``irregular`` points keep a hashed subset of slots
(analog: 35 % of 30 s slots, digital: 10 % of 300 s slots, string: 25 % of 1 h slots) at a hashed offset in
the slot, in whole seconds or (half of them) in 100 ns ticks. A ``multi`` point stores 2 or 3 values at
8 % of its timestamps.

**Values.** Analog points follow a smooth wander (value noise between hashed knots, a daily shape and a
little white noise) inside Zero..Zero+Span; step points (setpoints) hold hashed levels for 1-4 h; Int32 run
hours count up; daily totals ramp from midnight UTC; digital points pick states of their set with a
dominant state; strings are batch ids. Float32 values are float32.

**Bad values and flags.** Per point, 1 % of 2 h blocks hold an outage: one system-state event (I/O Timeout,
Shutdown, Bad Input, Scan Off or Equip Fail) at its start and no values until it ends (2-40 min).
0.05 % of single values are ``Bad Input``/``Over Range``/``Under Range`` instead. Good values are
Questionable (0.3 %), Substituted (0.1 %) or Annotated (0.05 %).

**Late arrivals.** On a ``late`` point, 35 % of 6 h blocks hold a buffering outage of 5 min to 2 h; values
stamped inside it become visible together, 1 to 30 min after the outage ends (lags of minutes to hours).
``arrivals`` lists what becomes visible as the clock moves (stream updates read it).

**Edits.** Every read goes through ``_chunks``, which applies the edits of each chunk's timestamps
(``EditStore.latest``): the values at an edited timestamp give way to one event whose slot (at or below
``EDITED_SLOT``) names the edit's value, which ``_materialize`` puts in place; a delete leaves nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from osipi_dagster.mock.edits import EDITED_SLOT, EditStore
from osipi_dagster.mock.errors import PIError
from osipi_dagster.mock.hashing import hash64, key, uniform
from osipi_dagster.mock.model import ANNOTATED, QUESTIONABLE, SUBSTITUTED, Point
from osipi_dagster.mock.timeparse import NS, TICK_NS

if TYPE_CHECKING:
    from osipi_dagster.mock.archive import Archive

MINUTE_NS = 60 * NS
HOUR_NS = 3600 * NS
DAY_NS = 86_400 * NS
FUTURE_HORIZON_NS = 7 * DAY_NS
INTERPOLATION_GROUP = 500_000  # values an interpolation materialises at most at once
VALUES_PER_LOOKUP = 1_000  # looking up one time's neighbours costs about as much as materialising this many

PT_CREATED, NO_DATA, CALC_FAILED = 253, 248, 249
OUTAGE_STATES = (246, 246, 246, 254, 255, 238, 215)  # I/O Timeout most often
SPIKE_STATES = (255, 252, 251)
OUTAGE_BLOCK_NS, OUTAGE_SHARE = 2 * HOUR_NS, 0.01
LATE_BLOCK_NS, LATE_SHARE = 6 * HOUR_NS, 0.35
SPIKE_SHARE, QUESTIONABLE_SHARE, SUBSTITUTED_SHARE, ANNOTATED_SHARE = 0.0005, 0.003, 0.001, 0.0005
MULTI_SLOT_SHARE = 0.08

# Salts: one independent hash stream per purpose.
_S_KEEP, _S_JITTER, _S_MULTI, _S_KNOT, _S_FAST, _S_WHITE, _S_STATE = range(1, 8)
_S_OUTAGE, _S_LATE, _S_SPIKE, _S_FLAGS, _S_PHASE, _S_SHAPE = range(8, 14)

# The dominant state of each user digital set (the others share what is left).
_DOMINANT = {"Modes": (1, 0.8), "OnOff": (1, 0.85), "AlarmStates": (0, 0.9), "ValveState": (1, 0.7)}


@dataclass(frozen=True, slots=True)
class Block:
    """Values of one stream, in the order they are served.

    ``states`` holds a system state code (the value then is that state, Good false) or 0; ``values`` is
    float32/float64/int64 for numeric points, int64 state codes for digital points, object for strings.
    """

    ts: np.ndarray
    values: np.ndarray
    states: np.ndarray
    flags: np.ndarray
    kind: str  # float32 | float64 | int | digital | string
    digital_set: str = ""

    def __len__(self) -> int:
        return len(self.ts)

    def take(self, index: np.ndarray | slice) -> Block:
        return Block(
            self.ts[index], self.values[index], self.states[index], self.flags[index], self.kind,
            self.digital_set,
        )  # fmt: skip


def concat(blocks: list[Block]) -> Block:
    first = blocks[0]
    return Block(
        np.concatenate([b.ts for b in blocks]),
        np.concatenate([b.values for b in blocks]),
        np.concatenate([b.states for b in blocks]),
        np.concatenate([b.flags for b in blocks]),
        first.kind,
        first.digital_set,
    )


@dataclass(frozen=True, slots=True)
class _Events:
    """Stored events before their values are computed: ``slot`` -1 marks a synthetic state event."""

    ts: np.ndarray
    slot: np.ndarray
    dup: np.ndarray
    state: np.ndarray

    def __len__(self) -> int:
        return len(self.ts)

    def take(self, index: np.ndarray | slice) -> _Events:
        return _Events(self.ts[index], self.slot[index], self.dup[index], self.state[index])


def _concat_events(parts: list[_Events]) -> _Events:
    if not parts:
        return _EMPTY
    if len(parts) == 1:
        return parts[0]
    return _Events(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("ts", "slot", "dup", "state")))


_EMPTY_I64 = np.zeros(0, np.int64)
_EMPTY = _Events(_EMPTY_I64, _EMPTY_I64, np.zeros(0, np.int8), np.zeros(0, np.int16))


@dataclass(frozen=True, slots=True)
class Schedule:
    """How one point's data are laid out in time, and its hash keys."""

    point: Point
    period: int  # ns per slot
    keep: float  # share of slots holding a value (1 for grids)
    phase: int  # grid offset in ns, or -1 for a hashed offset per slot (irregular)
    jitter_unit: int  # granularity of the hashed offset: TICK_NS or NS
    shape: str  # analog | hold | counter | total | digital | string
    kind: str  # float32 | float64 | int | digital | string
    seed: int
    shape_u: float  # the point's own uniform draw for its shape (knot spacing, hold time)

    def k(self, salt: int) -> int:
        return key(self.seed, self.point.id, salt)

    @property
    def density(self) -> float:
        """Expected events per ns."""
        return self.keep * (1 + 1.1 * MULTI_SLOT_SHARE * self.point.multi) / self.period


def _shape(point: Point) -> str:
    if point.point_type in ("Digital", "String"):
        return point.point_type.lower()
    if point.point_type == "Int32" and point.step:
        return "counter"
    if point.units == "m3":
        return "total"
    return "hold" if point.step else "analog"


def make_schedule(seed: int, point: Point) -> Schedule:
    """The schedule of ``point`` (see the module docstring)."""
    kind = {"Float32": "float32", "Float64": "float64", "Int32": "int"}.get(point.point_type, "")
    kind = kind or point.point_type.lower()
    shape = _shape(point)
    u = uniform(np.array([point.id]), key(seed, _S_PHASE))[0]
    shape_u = float(uniform(np.array([point.id]), key(seed, point.id, _S_SHAPE))[0])
    if point.sampling == "irregular":
        period, keep = {"digital": (300, 0.1), "string": (3600, 0.25)}.get(shape, (30, 0.35))
        return Schedule(point, period * NS, keep, -1, TICK_NS if u < 0.5 else NS, shape, kind, seed, shape_u)
    period = {"1s": 1, "5s": 5, "60s": 60}[point.sampling] * NS
    phase = 0
    if period <= 5 * NS and u < 0.15:  # a sub-second phase with 7 significant fractional digits
        phase = (int(u / 0.15 * (period // TICK_NS - 1)) + 1) * TICK_NS
    return Schedule(point, period, 1.0, phase, TICK_NS, shape, kind, seed, shape_u)


class DataSource:
    """Reads of the archive's streams; every method takes the clock's now explicitly."""

    def __init__(self, archive: Archive) -> None:
        self.archive = archive
        self.start_ns = archive.start_ns
        self._schedules: dict[int, Schedule] = {}
        self.edits = EditStore(self, archive.config.edit_share)

    def schedule(self, point: Point) -> Schedule:
        found = self._schedules.get(point.id)
        if found is None:
            found = self._schedules[point.id] = make_schedule(self.archive.seed, point)
        return found

    def horizon(self, point: Point, now: int) -> int:
        """The last instant that can hold a visible value."""
        return now + FUTURE_HORIZON_NS if point.future else now

    # -- events -------------------------------------------------------------------------------------

    def _events(self, s: Schedule, a: int, b: int) -> _Events:
        """Every stored event with ``a <= ts <= b`` (visible or not), in time order."""
        a, b = max(a, self.start_ns), b
        if a > b:
            return _EMPTY
        k0, k1 = a // s.period, b // s.period
        slots = np.arange(k0, k1 + 1, dtype=np.int64)
        if s.phase >= 0:
            offsets = s.phase
        else:
            units = s.period // s.jitter_unit
            slots = slots[uniform(slots, s.k(_S_KEEP)) < s.keep]
            offsets = (hash64(slots, s.k(_S_JITTER)) % np.uint64(units)).astype(np.int64) * s.jitter_unit
        ts = slots * s.period + offsets
        inside = (ts >= a) & (ts <= b) & (ts > self.start_ns)
        slots, ts = slots[inside], ts[inside]
        outages = self._outages(s, np.arange(a // OUTAGE_BLOCK_NS, b // OUTAGE_BLOCK_NS + 1, dtype=np.int64))
        ts, slots = _drop_outages(outages, ts, slots)
        dup = np.zeros(len(ts), np.int8)
        if s.point.multi:
            u = uniform(slots, s.k(_S_MULTI))
            count = 1 + (u < MULTI_SLOT_SHARE) + (u < MULTI_SLOT_SHARE / 4)
            ts, slots = np.repeat(ts, count), np.repeat(slots, count)
            dup = (np.arange(len(ts)) - np.repeat(np.cumsum(count) - count, count)).astype(np.int8)
        events = _Events(ts, slots, dup, np.zeros(len(ts), np.int16))
        synthetic = self._state_events(outages, a, b)
        if not len(synthetic):
            return events
        merged = _concat_events([synthetic, events])
        return merged.take(np.argsort(merged.ts, kind="stable"))

    def _outages(self, s: Schedule, blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Outage (start, end, state) for the blocks that have one."""
        blocks = blocks[uniform(blocks, s.k(_S_OUTAGE)) < OUTAGE_SHARE]
        h = hash64(blocks, s.k(_S_OUTAGE + 100))
        start = blocks * OUTAGE_BLOCK_NS + (h % np.uint64(3600)).astype(np.int64) * NS
        length = (2 + (h >> np.uint64(16)) % np.uint64(39)).astype(np.int64) * MINUTE_NS
        states = np.array(OUTAGE_STATES, np.int16)[((h >> np.uint64(40)) % np.uint64(len(OUTAGE_STATES)))]
        return start, start + length, states

    def _state_events(self, outages: tuple[np.ndarray, ...], a: int, b: int) -> _Events:
        """Pt Created at the archive start and one system-state event per outage, within [a, b]."""
        start, _, states = outages
        keep = (start >= a) & (start <= b) & (start > self.start_ns)
        ts, states = start[keep], states[keep]
        if a <= self.start_ns <= b:
            ts = np.concatenate([[self.start_ns], ts])
            states = np.concatenate([np.array([PT_CREATED], np.int16), states])
        n = len(ts)
        return _Events(ts.astype(np.int64), np.full(n, -1, np.int64), np.zeros(n, np.int8), states)

    def _visible(self, s: Schedule, ev: _Events, now: int) -> np.ndarray:
        """Which events a reader sees at ``now`` (late values only after their lag)."""
        mask = ev.ts <= self.horizon(s.point, now)
        if s.point.late and len(ev):
            arrival = self._arrival(s, ev.ts)
            mask &= arrival <= now
        return mask

    def _arrival(self, s: Schedule, ts: np.ndarray) -> np.ndarray:
        """When each value reaches the archive: its timestamp, or the end of a buffering outage + flush."""
        late, start, end, arrival = self._late_windows(s, ts // LATE_BLOCK_NS)
        return np.where(late & (ts >= start) & (ts < end), arrival, ts)

    def _late_windows(self, s: Schedule, blocks: np.ndarray) -> tuple[np.ndarray, ...]:
        """Per 6 h block: whether it holds a buffering outage, the outage's start and end, and when the
        values stamped inside it arrive."""
        u = uniform(blocks, s.k(_S_LATE))
        h = hash64(blocks, s.k(_S_LATE + 100))
        start = blocks * LATE_BLOCK_NS + (h % np.uint64(180)).astype(np.int64) * MINUTE_NS
        end = start + (5 + (h >> np.uint64(16)) % np.uint64(116)).astype(np.int64) * MINUTE_NS
        flush = (1 + (h >> np.uint64(32)) % np.uint64(30)).astype(np.int64) * MINUTE_NS
        return u < LATE_SHARE, start, end, end + flush

    def _chunks(
        self,
        s: Schedule,
        a: int,
        b: int,
        now: int,
        descending: bool = False,
        want: int = 1 << 20,
        edited: bool = True,
    ) -> Iterator[_Events]:
        """Visible events in [a, b] chunk by chunk, each chunk sized for about ``want`` events, with the
        edits that happened by ``now`` applied (the stored events alone when not ``edited``)."""
        a, b = max(a, self.start_ns), min(b, self.horizon(s.point, now))
        span = max(int(want / s.density * 1.2), 64 * s.period)
        while a <= b:
            lo, hi = (max(a, b - span + 1), b) if descending else (a, min(b, a + span - 1))
            ev = self._events(s, lo, hi)
            ev = ev.take(self._visible(s, ev, now))
            if edited:
                ev = self._edited(s, ev, lo, hi, now)
            yield ev.take(slice(None, None, -1)) if descending else ev
            if descending:
                b = lo - 1
            else:
                a = hi + 1
            span = min(span * 2, max(span, int((1 << 21) / s.density)))

    def _scan(
        self, s: Schedule, a: int, b: int, now: int, need: int, descending: bool = False, edited: bool = True
    ) -> _Events:
        """The first ``need`` visible events of [a, b] in the requested direction."""
        parts, got = [], 0
        for ev in self._chunks(s, a, b, now, descending, want=need, edited=edited):
            parts.append(ev)
            got += len(ev)
            if got >= need:
                break
        return _concat_events(parts).take(slice(0, need)) if parts else _EMPTY

    def _edited(self, s: Schedule, ev: _Events, lo: int, hi: int, now: int) -> _Events:
        """Visible events of [lo, hi] with the edits of their timestamps applied: the values at an edited
        timestamp give way to the edit's value (one event whose slot names it), or to nothing."""
        edits = self.edits.latest(s.point, lo, hi, now)
        if not edits:
            return ev
        kept = ev.take(~np.isin(ev.ts, np.array([e.ts for e in edits], np.int64)))
        written = [e for e in edits if e.slot is not None]
        n = len(written)
        ts = np.array([e.ts for e in written], np.int64)
        slots = np.array([e.slot for e in written], np.int64)
        merged = _concat_events([kept, _Events(ts, slots, np.zeros(n, np.int8), np.zeros(n, np.int16))])
        return merged.take(np.argsort(merged.ts, kind="stable"))

    # -- values -------------------------------------------------------------------------------------

    def _materialize(self, s: Schedule, ev: _Events) -> Block:
        """Compute the values, bad states and flags of stored events."""
        n = len(ev)
        if not n:  # about a hundred numpy operations saved, for nothing
            return self.no_data(s.point, ev.ts)
        hk = ev.slot * 4 + ev.dup  # one hash input per stored value
        values = self._shape_values(s, ev.ts, hk)
        states = ev.state.copy()
        real = ev.slot >= 0
        spikes = real & (uniform(hk, s.k(_S_SPIKE)) < SPIKE_SHARE)
        if spikes.any():
            pick = hash64(hk[spikes], s.k(_S_SPIKE + 100)) % np.uint64(len(SPIKE_STATES))
            states[spikes] = np.array(SPIKE_STATES, np.int16)[pick]
        flags = np.zeros(n, np.uint8)
        f = uniform(hk, s.k(_S_FLAGS))
        good = real & (states == 0)
        flags[good & (f < QUESTIONABLE_SHARE)] |= QUESTIONABLE
        flags[good & (f >= 0.5) & (f < 0.5 + SUBSTITUTED_SHARE)] |= SUBSTITUTED
        flags[good & (f >= 0.9) & (f < 0.9 + ANNOTATED_SHARE)] |= ANNOTATED
        for i in np.flatnonzero(ev.slot <= EDITED_SLOT).tolist():
            edit = self.edits.value(int(ev.slot[i]))
            values[i], states[i], flags[i] = edit.value, edit.state, edit.flags
        return Block(ev.ts, values, states, flags, s.kind, s.point.digital_set)

    def _shape_values(self, s: Schedule, ts: np.ndarray, hk: np.ndarray) -> np.ndarray:
        p = s.point
        sec = (ts // NS).astype(np.float64) + (ts % NS).astype(np.float64) * 1e-9
        if s.shape == "digital":
            return self._digital(s, hk)
        if s.shape == "string":
            return np.array([f"B{(k // 4) % 100_000_000:08d}" for k in hk.tolist()], dtype=object)
        if s.shape == "counter":  # run hours: 80 % duty since 2020
            return np.floor(np.maximum(sec - 1_577_836_800.0, 0.0) / 3600.0 * 0.8).astype(np.int64)
        if s.shape == "total":  # a daily total: a ramp from midnight UTC
            norm = np.mod(sec, 86_400.0) / 86_400.0 * (0.6 + 0.2 * self._noise(s, sec, 3600.0, _S_KNOT))
        elif s.shape == "hold":  # a setpoint held for 1-4 h
            hold = 3600.0 * (1 + int(s.shape_u * 4))
            level = uniform(np.floor(sec / hold).astype(np.int64), s.k(_S_KNOT))
            norm = 0.2 + 0.6 * np.floor(level * 20.0) / 20.0
        else:
            norm = self._analog(s, sec, hk)
        value = p.zero + p.span * norm
        if s.kind == "float32":
            return value.astype(np.float32)
        if s.kind == "int":
            return np.floor(value + 0.5).astype(np.int64)
        return value

    def _analog(self, s: Schedule, sec: np.ndarray, hk: np.ndarray) -> np.ndarray:
        knot = 600.0 + 3000.0 * s.shape_u
        slow = self._noise(s, sec, knot, _S_KNOT)
        fast = self._noise(s, sec, 60.0, _S_FAST)
        day = np.mod(sec, 86_400.0) / 86_400.0
        daily = 16.0 * day * day * (1.0 - day) * (1.0 - day)  # a smooth bump peaking at noon UTC
        white = uniform(hk, s.k(_S_WHITE))
        return 0.25 + 0.4 * slow + 0.1 * fast + 0.15 * daily + 0.02 * white

    def _noise(self, s: Schedule, sec: np.ndarray, spacing: float, salt: int) -> np.ndarray:
        """Smooth value noise in [0, 1): smoothstep between hashed knots ``spacing`` seconds apart."""
        pos = sec / spacing
        index = np.floor(pos)
        frac = pos - index
        knots = index.astype(np.int64)
        left, right = uniform(knots, s.k(salt)), uniform(knots + 1, s.k(salt))
        smooth = frac * frac * (3.0 - 2.0 * frac)
        return left + (right - left) * smooth

    def _digital(self, s: Schedule, hk: np.ndarray) -> np.ndarray:
        enum_set = self.archive.enumeration_set(s.point.digital_set)
        n_states = len(enum_set.states)
        u = uniform(hk, s.k(_S_STATE))
        dominant, share = _DOMINANT.get(enum_set.name, (0, 1.0 / n_states))
        others = (np.floor((u - share) / (1.0 - share) * (n_states - 1))).astype(np.int64)
        others = np.minimum(np.maximum(others, 0), n_states - 2)
        others += others >= dominant
        return np.where(u < share, dominant, others).astype(np.int64)

    # -- what changes -------------------------------------------------------------------------------

    def arrivals(self, point: Point, after: int, until: int) -> tuple[Block, np.ndarray]:
        """Every stored value (before edits) that becomes visible as the clock moves from ``after`` to
        ``until``, and the moment each does, by (moment, timestamp): a value arrives at its timestamp, a
        Future point's value ``FUTURE_HORIZON_NS`` before it, a late value when its buffering outage
        flushes."""
        s = self.schedule(point)
        lead = FUTURE_HORIZON_NS if point.future else 0
        ev = self._events(s, after + lead + 1, until + lead)
        moment = ev.ts - lead
        if point.late:
            on_time = self._arrival(s, ev.ts) == ev.ts
            parts, moments = [ev.take(on_time)], [moment[on_time]]
            blocks = np.arange(after // LATE_BLOCK_NS - 1, until // LATE_BLOCK_NS + 1, dtype=np.int64)
            late, start, end, arrival = self._late_windows(s, blocks)
            pick = late & (arrival > after) & (arrival <= until)
            for lo, hi, at in zip(
                start[pick].tolist(), end[pick].tolist(), arrival[pick].tolist(), strict=True
            ):
                inside = self._events(s, lo, hi - 1)
                parts.append(inside)
                moments.append(np.full(len(inside), at, np.int64))
            ev, moment = _concat_events(parts), np.concatenate(moments)
            order = np.lexsort((ev.ts, moment))
            ev, moment = ev.take(order), moment[order]
        return self._materialize(s, ev), moment

    def stored_at(self, point: Point, t: int, now: int) -> Block:
        """The values stored at ``t`` (before edits) that are visible at ``now``."""
        s = self.schedule(point)
        ev = self._events(s, t, t)
        return self._materialize(s, ev.take(self._visible(s, ev, now)))

    def last_stored(self, point: Point, at: int, since: int, now: int) -> Block:
        """The last value stored in [since, at] (before edits) that is visible at ``now``; empty if none."""
        s = self.schedule(point)
        return self._materialize(s, self._scan(s, since, at, now, 1, descending=True, edited=False))

    def edited_value(self, point: Point, ts: int, slot: int) -> Block:
        """The value an edit stored at ``ts`` (its event ``slot``), as a one-value block."""
        one = _Events(
            np.array([ts], np.int64), np.array([slot], np.int64), np.zeros(1, np.int8), np.zeros(1, np.int16)
        )
        return self._materialize(self.schedule(point), one)

    # -- reads --------------------------------------------------------------------------------------

    def recorded(
        self, point: Point, start: int, end: int, now: int, max_count: int, boundary: str = "Inside"
    ) -> Block:
        """Recorded values between ``start`` and ``end`` (descending when ``end < start``), silently
        truncated to the first ``max_count`` in that direction. ``boundary`` is Inside, Outside (add the
        value before and after the range) or Interpolated (add interpolated values at both ends)."""
        s = self.schedule(point)
        descending = end < start
        lo, hi = (end, start) if descending else (start, end)
        ev = self._scan(s, lo, hi, now, max_count, descending)
        if boundary == "Inside":
            return self._materialize(s, ev)
        if boundary == "Outside":
            before = self._scan(s, self.start_ns, lo - 1, now, 1, descending=True)
            after = self._scan(s, hi + 1, self.horizon(point, now), now, 1)
            ends = (after, before) if descending else (before, after)
            ev = _concat_events([ends[0], ev, ends[1]]).take(slice(0, max_count))
            return self._materialize(s, ev)
        inner = self._materialize(s, ev)
        first, last = (hi, lo) if descending else (lo, hi)
        edges = self.interpolated_at(point, np.array([first, last], np.int64), now)
        return concat([edges.take(slice(0, 1)), inner, edges.take(slice(1, 2))]).take(slice(0, max_count))

    def _around(self, s: Schedule, t: int, now: int, before: bool) -> _Events:
        """The last visible event at or before ``t`` (``before``), or the first after it."""
        if before:
            return self._scan(s, self.start_ns, t, now, 1, descending=True)
        return self._scan(s, t + 1, self.horizon(s.point, now), now, 1)

    def snapshot(self, point: Point, now: int) -> Block:
        """The current value: the last visible value at or before now."""
        return self.recorded_at(point, now, now, "AtOrBefore")

    def end(self, point: Point, now: int) -> Block:
        """The last value of the stream (beyond now for Future points)."""
        return self.recorded_at(point, self.horizon(point, now), now, "AtOrBefore")

    def recorded_at(self, point: Point, t: int, now: int, mode: str = "Auto") -> Block:
        """One recorded value found from ``t`` by ``mode`` (Auto = AtOrBefore, Before, AtOrAfter, After,
        Exact); ``No Data`` stamped ``t`` when there is none."""
        s = self.schedule(point)
        if mode in ("Auto", "AtOrBefore", "Exact"):
            ev = self._around(s, t, now, before=True)
            if mode == "Exact" and len(ev) and ev.ts[0] != t:
                ev = _EMPTY
        elif mode == "Before":
            ev = self._around(s, t - 1, now, before=True)
        else:
            ev = self._around(s, t - 1 if mode == "AtOrAfter" else t, now, before=False)
        if not len(ev):
            return self.no_data(point, np.array([t], np.int64))
        return self._materialize(s, ev)

    def no_data(self, point: Point, ts: np.ndarray, state: int = NO_DATA) -> Block:
        """``state`` (No Data by default) at each of ``ts``."""
        s = self.schedule(point)
        n = len(ts)
        values = np.zeros(
            n, {"string": object, "float32": np.float32, "float64": np.float64}.get(s.kind, np.int64)
        )
        return Block(
            ts, values, np.full(n, state, np.int16), np.zeros(n, np.uint8), s.kind, point.digital_set
        )

    def interpolated_at(self, point: Point, times: np.ndarray, now: int) -> Block:
        """Values interpolated at ``times`` (sorted ascending): linear between good neighbours of analog
        points, the previous value for step, integer-counter, digital and string points and after a bad
        value; No Data before the first value and beyond the horizon.

        The times are taken in groups whose span holds about ``INTERPOLATION_GROUP`` values, so memory stays
        bounded; a group's values are materialised when that is cheaper than looking up the neighbours of
        each of its times on its own (dense times over dense data), else each time is looked up alone."""
        s = self.schedule(point)
        if not len(times):
            return self.no_data(point, times)
        width = max(int(INTERPOLATION_GROUP / s.density), 1)
        cuts = np.flatnonzero(np.diff((times - times[0]) // width)) + 1
        blocks = [self._interpolated_group(s, group, now) for group in np.split(times, cuts)]
        return blocks[0] if len(blocks) == 1 else concat(blocks)

    def _interpolated_group(self, s: Schedule, times: np.ndarray, now: int) -> Block:
        lo, hi = int(times[0]), int(times[-1])
        if lo > self.horizon(s.point, now) or hi < self.start_ns:
            # No Data at every time (see _interpolate): no neighbour to look up. A run's check for values
            # stamped after now asks this of every point, and the lookups cost a few ms a point.
            return self.no_data(s.point, times)
        if (hi - lo) * s.density <= VALUES_PER_LOOKUP * len(times):
            inner = _concat_events(list(self._chunks(s, lo, hi, now)))
            before, after = self._around(s, lo - 1, now, True), self._around(s, hi, now, False)
            ev = _concat_events([before, inner, after])
        else:  # sparse times over dense data: look up each neighbour pair on its own
            pairs = [(self._around(s, t, now, True), self._around(s, t, now, False)) for t in times.tolist()]
            ev = _concat_events([e for pair in pairs for e in pair])
            ev = ev.take(np.unique(ev.ts, return_index=True)[1]) if len(ev) else ev
        return self._interpolate(s, self._materialize(s, ev) if len(ev) else None, times, now)

    def _interpolate(self, s: Schedule, known: Block | None, times: np.ndarray, now: int) -> Block:
        out = self.no_data(s.point, times)
        if known is None:
            return out
        prev = np.searchsorted(known.ts, times, side="right") - 1
        has = (prev >= 0) & (times <= self.horizon(s.point, now)) & (times >= self.start_ns)
        p = np.maximum(prev, 0)
        nxt = np.minimum(prev + 1, len(known) - 1)
        values = known.values[p].copy()
        linear = s.shape == "analog" or s.shape == "total"
        if linear:
            t0, t1 = known.ts[p], known.ts[nxt]
            span = (t1 - t0).astype(np.float64)
            w = np.where(span > 0, (times - t0).astype(np.float64) / np.where(span > 0, span, 1.0), 0.0)
            ok = (nxt > prev) & (known.states[p] == 0) & (known.states[nxt] == 0)
            v0 = known.values[p].astype(np.float64)
            v1 = known.values[nxt].astype(np.float64)
            mixed = np.where(ok, v0 + (v1 - v0) * w, v0)
            values = mixed.astype(known.values.dtype)
        states = np.where(has, known.states[p], NO_DATA).astype(np.int16)
        flags = np.where(has, known.flags[p] & QUESTIONABLE, 0).astype(np.uint8)
        if known.kind == "string":
            values = np.where(has, values, "")
        return Block(times, values, states, flags, known.kind, known.digital_set)

    def interpolated(self, point: Point, start: int, end: int, interval: int, now: int, limit: int) -> Block:
        """Interpolated values every ``interval`` ns from ``start`` to ``end`` (both included)."""
        if interval <= 0:
            raise PIError(400, "The interval must be a positive time span.")
        count = (end - start) // interval + 1 if end >= start else 0
        if count > limit:
            raise PIError(
                400,
                f"The number of values requested ({count}) is greater than the maximum allowed ({limit}).",
            )
        times = start + np.arange(max(count, 0), dtype=np.int64) * interval
        return self.interpolated_at(point, times, now)

    def plot(self, point: Point, start: int, end: int, intervals: int, now: int) -> Block:
        """Plot values: per interval the first, last, minimum, maximum and first bad value."""
        if intervals <= 0:
            raise PIError(400, "The number of intervals must be positive.")
        s = self.schedule(point)
        lo, hi = min(start, end), max(start, end)
        width = max((hi - lo) // intervals, 1)
        picked = []
        for ev in self._chunks(s, lo, hi, now):
            if len(ev):
                block = self._materialize(s, ev)
                picked.append(block.take(_plot_pick(block, lo, width)))
        if not picked:
            return self.no_data(point, np.zeros(0, np.int64))
        merged = concat(picked)
        result = merged.take(_plot_pick(merged, lo, width))
        return result.take(slice(None, None, -1)) if end < start else result

    def summary(
        self, point: Point, start: int, end: int, types: list[str], now: int, basis: str = "TimeWeighted"
    ) -> list[tuple[str, Block | SummaryError]]:
        """Summaries of [start, end] (see ``Summary``). A non-numeric point has only Count and PercentGood;
        each other type it is asked for is a ``SummaryError``, which PI answers as that summary's value
        carrying ``Errors`` while the other types and streams keep their results."""
        lo, hi = min(start, end), max(start, end)
        return self.summaries(point, np.array([lo, hi], np.int64), types, now, basis)[0]

    def summaries(
        self, point: Point, edges: np.ndarray, types: list[str], now: int, basis: str = "TimeWeighted"
    ) -> list[list[tuple[str, Block | SummaryError]]]:
        """The summaries of each interval ``[edges[i], edges[i + 1]]`` (ascending edges), as :meth:`summary`
        gives them one at a time: the values of the whole span are read once, and the interpolated values at
        every edge in one call, so an interval costs a slice of them, not a read of its own."""
        s = self.schedule(point)
        numeric = s.kind in ("float32", "float64", "int")
        unsupported = {t for t in types if t not in NON_NUMERIC_SUMMARIES} if not numeric else set()
        if len(unsupported) == len(types):  # nothing to compute: no need to read the values
            return [[(t, SummaryError(int(lo), t)) for t in types] for lo in edges[:-1].tolist()]
        first, last = int(edges[0]), int(edges[-1])
        events = [ev for ev in self._chunks(s, first, last, now) if len(ev)]
        block = self._materialize(s, _concat_events(events)) if events else None
        at_edges = self.interpolated_at(point, edges, now) if numeric else None
        result = []
        for i, (lo, hi) in enumerate(zip(edges[:-1].tolist(), edges[1:].tolist(), strict=True)):
            acc = Summary(
                lo, hi, step=s.shape not in ("analog", "total"), time_weighted=basis == "TimeWeighted"
            )
            if at_edges is not None:
                acc.add(at_edges.take(slice(i, i + 1)), boundary=True)
            if block is not None:
                inside = slice(
                    int(np.searchsorted(block.ts, lo, "left")), int(np.searchsorted(block.ts, hi, "right"))
                )
                acc.add(block.take(inside))
            if at_edges is not None:
                acc.add(at_edges.take(slice(i + 1, i + 2)), boundary=True)
            result.append([(t, SummaryError(lo, t) if t in unsupported else acc.result(t)) for t in types])
        return result


@dataclass(frozen=True, slots=True)
class SummaryError:
    """A summary type that a stream cannot compute (Average of a digital point): the interval's start and
    the type."""

    ts: int
    kind: str

    @property
    def message(self) -> str:
        return (
            f"The summary type '{self.kind}' is not supported on a non-numeric stream: only "
            f"{' and '.join(NON_NUMERIC_SUMMARIES)} are."
        )


def _drop_outages(
    outages: tuple[np.ndarray, ...], ts: np.ndarray, slots: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The events outside every outage (an outage never reaches into the next block)."""
    start, end, _ = outages
    if not len(ts) or not len(start):
        return ts, slots
    i = np.searchsorted(start, ts, side="right") - 1
    inside = (i >= 0) & (ts < end[np.maximum(i, 0)])
    return ts[~inside], slots[~inside]


def _plot_pick(block: Block, lo: int, width: int) -> np.ndarray:
    """Indices of the first, last, minimum, maximum and first bad value of each interval."""
    bucket = (block.ts - lo) // width
    first = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
    chosen = [first, np.r_[first[1:], len(bucket)] - 1]
    good = block.states == 0
    index = np.flatnonzero(good)
    if block.kind != "string" and len(index):
        values, buckets = block.values[index].astype(np.float64), bucket[index]
        for sort_key in (values, -values):
            order = np.lexsort((sort_key, buckets))  # stable: the earliest of equal extremes wins
            heads = np.r_[True, buckets[order][1:] != buckets[order][:-1]]
            chosen.append(index[order[heads]])
    bad = np.flatnonzero(~good)
    if len(bad):
        chosen.append(bad[np.r_[True, bucket[bad][1:] != bucket[bad][:-1]]])
    return np.unique(np.concatenate(chosen))


class Summary:
    """Streaming summary statistics over [lo, hi] (time- or event-weighted)."""

    def __init__(self, lo: int, hi: int, step: bool, time_weighted: bool) -> None:
        self.lo, self.hi, self.step, self.time_weighted = lo, hi, step, time_weighted
        self.count = self.total_events = 0
        self.sum = self.sumsq = 0.0
        self.integral = self.integral_sq = self.good_ns = 0.0
        self.min: tuple[float, int] | None = None
        self.max: tuple[float, int] | None = None
        self.last: tuple[int, float, bool] | None = None  # (ts, value, good) of the previous event

    def add(self, block: Block, boundary: bool = False) -> None:
        """Fold in the next events (in time order); ``boundary`` values weigh time but are not counted."""
        if not len(block):
            return
        good = block.states == 0
        v = block.values.astype(np.float64) if block.kind != "string" else np.zeros(len(block))
        if not boundary:
            self.total_events += len(block)
            self.count += int(good.sum())
            self.sum += float(v[good].sum())
            self.sumsq += float((v[good] ** 2).sum())
        if good.any():
            gv, gt = v[good], block.ts[good]
            i, j = int(np.argmin(gv)), int(np.argmax(gv))
            if self.min is None or gv[i] < self.min[0]:
                self.min = (float(gv[i]), int(gt[i]))
            if self.max is None or gv[j] > self.max[0]:
                self.max = (float(gv[j]), int(gt[j]))
        ts = block.ts
        if self.last is not None:
            ts = np.r_[self.last[0], ts]
            v = np.r_[self.last[1], v]
            good = np.r_[self.last[2], good]
        if len(ts) > 1:
            d = np.diff(ts).astype(np.float64)
            left, right = v[:-1], v[1:]
            seg = left if self.step else np.where(good[1:], (left + right) / 2, left)
            use = good[:-1]
            self.integral += float((seg * d)[use].sum())
            self.integral_sq += float((left * left * d)[use].sum())
            self.good_ns += float(d[use].sum())
        self.last = (int(ts[-1]), float(v[-1]), bool(good[-1]))

    def result(self, kind: str) -> Block:
        """The summary ``kind`` as a one-value block (No Data when nothing good was found)."""
        value, stamp = self._value(kind)
        ts = np.array([stamp], np.int64)
        state = np.array([0 if value is not None else NO_DATA], np.int16)
        if kind == "Count":
            return Block(ts, np.array([self.count], np.int64), state, np.zeros(1, np.uint8), "int")
        return Block(ts, np.array([value or 0.0], np.float64), state, np.zeros(1, np.uint8), "float64")

    def _value(self, kind: str) -> tuple[float | None, int]:
        duration = float(self.hi - self.lo)
        if kind == "Count":
            return float(self.count), self.lo
        if kind == "PercentGood":
            if self.time_weighted:
                return (100.0 * self.good_ns / duration if duration else 100.0 * (self.count > 0)), self.lo
            return (100.0 * self.count / self.total_events if self.total_events else 0.0), self.lo
        if kind in ("Minimum", "Maximum"):
            found = self.min if kind == "Minimum" else self.max
            return (found[0], found[1]) if found else (None, self.lo)
        if kind == "Range":
            return (self.max[0] - self.min[0], self.lo) if self.min and self.max else (None, self.lo)
        mean, var = self._moments()
        if mean is None:
            return None, self.lo
        if kind == "Average":
            return mean, self.lo
        if kind == "Total":
            return (mean * duration / DAY_NS if self.time_weighted else self.sum), self.lo
        if kind in ("StdDev", "PopulationStdDev"):
            n = self.count
            if not self.time_weighted and kind == "StdDev" and n > 1:
                var = var * n / (n - 1)
            return float(np.sqrt(max(var, 0.0))), self.lo
        raise PIError(400, f"The summary type '{kind}' is not supported.")

    def _moments(self) -> tuple[float | None, float]:
        if self.time_weighted and self.good_ns > 0:
            mean = self.integral / self.good_ns
            return mean, self.integral_sq / self.good_ns - (self.integral / self.good_ns) ** 2
        if not self.time_weighted and self.count:
            mean = self.sum / self.count
            return mean, self.sumsq / self.count - mean * mean
        return None, 0.0


NON_NUMERIC_SUMMARIES = ("Count", "PercentGood")  # what AllForNonNumeric asks for
SUMMARY_TYPES = ("Total", "Average", "Minimum", "Maximum", "Range", "StdDev", "PopulationStdDev", "Count",
                 "PercentGood")  # fmt: skip
