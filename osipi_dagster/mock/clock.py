"""The mock's clock: the real clock by default, or fixed; tests move it through the admin endpoint."""

from __future__ import annotations

import threading
import time

from osipi_dagster.mock.timeparse import TICK_NS


class MockClock:
    """Now, in ns since the epoch (UTC), quantised to PI's 100 ns ticks.

    A fixed clock stands still until it is set or advanced; a real clock follows ``time.time_ns`` plus
    whatever the admin endpoint added.
    """

    def __init__(self, fixed_ns: int | None = None) -> None:
        self._lock = threading.Lock()
        self._fixed_ns = fixed_ns
        self._offset_ns = 0

    def now_ns(self) -> int:
        with self._lock:
            now = self._fixed_ns if self._fixed_ns is not None else time.time_ns() + self._offset_ns
        return now - now % TICK_NS

    def set(self, now_ns: int) -> None:
        """Fix the clock at ``now_ns``."""
        with self._lock:
            self._fixed_ns = now_ns

    def advance(self, delta_ns: int) -> None:
        """Move the clock forward (or back, with a negative delta)."""
        with self._lock:
            if self._fixed_ns is not None:
                self._fixed_ns += delta_ns
            else:
                self._offset_ns += delta_ns
