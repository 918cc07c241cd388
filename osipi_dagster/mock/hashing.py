"""The mock's hashes: splitmix64, on Python ints (keys) and vectorised on numpy arrays.

Every generated thing (values, late arrivals, outages, edits) draws from ``hash64`` of an integer (a slot, a
block, an hour) under a key of (seed, point id, salt), so it is a pure function of those and of nothing else.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

_M64 = 0xFFFFFFFFFFFFFFFF
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix(x: int) -> int:
    """splitmix64 finalizer on a Python int."""
    x &= _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


@lru_cache(maxsize=1 << 18)  # the same (seed, point, salt) keys come back for every read of a point
def key(*parts: int) -> int:
    """A 64-bit hash key of integers (seed, point id, salt...)."""
    h = 0
    for part in parts:
        h = _mix(h ^ ((part * 0x9E3779B97F4A7C15) & _M64))
    return h


def hash64(values: np.ndarray, salt_key: int) -> np.ndarray:
    """splitmix64 of ``values`` (any integer dtype) under ``salt_key``: uint64."""
    x = values.astype(np.uint64) * _GOLDEN
    x ^= np.uint64(salt_key)
    x ^= x >> np.uint64(30)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    return x


def uniform(values: np.ndarray, salt_key: int) -> np.ndarray:
    """Uniform float64 in [0, 1) per value."""
    return (hash64(values, salt_key) >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))
