"""The mock's clock: the real clock by default, fixed, or running at a speed of its own; tests move it
through the admin endpoint."""

from __future__ import annotations

import threading
import time

from osipi_dagster.mock.timeparse import TICK_NS


class MockClock:
    """Now, in ns since the epoch (UTC), quantised to PI's 100 ns ticks.

    A fixed clock stands still until it is set or advanced; a real clock follows ``time.time_ns`` plus
    whatever the admin endpoint added. With a ``speed`` (> 0) the clock runs instead, ``speed`` seconds per
    real second, from ``fixed_ns`` (or the real time when None); setting it moves it without stopping it.
    """

    def __init__(self, fixed_ns: int | None = None, speed: float = 0.0) -> None:
        self._lock = threading.Lock()
        self._speed = speed
        self._fixed_ns = None if speed else fixed_ns
        self._offset_ns = 0
        self._real_start_ns = time.time_ns()
        self._start_ns = self._real_start_ns if fixed_ns is None else fixed_ns

    def now_ns(self) -> int:
        with self._lock:
            if self._fixed_ns is not None:
                now = self._fixed_ns
            elif self._speed:
                now = self._start_ns + round((time.time_ns() - self._real_start_ns) * self._speed)
            else:
                now = time.time_ns()
            now += self._offset_ns
        return now - now % TICK_NS

    def set(self, now_ns: int) -> None:
        """Fix the clock at ``now_ns`` (a running clock runs on from there)."""
        with self._lock:
            if self._speed:
                self._start_ns, self._real_start_ns, self._offset_ns = now_ns, time.time_ns(), 0
            else:
                self._fixed_ns = now_ns

    def advance(self, delta_ns: int) -> None:
        """Move the clock forward (or back, with a negative delta)."""
        with self._lock:
            if self._fixed_ns is not None:
                self._fixed_ns += delta_ns
            else:
                self._offset_ns += delta_ns
