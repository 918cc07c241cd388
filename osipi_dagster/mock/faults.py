"""Injected faults: a deterministic schedule of latency, errors, throttling, dropped connections, bad bodies.

Every ``/piwebapi`` request that reaches the server (batch sub-requests excepted) takes the next number n of a
per-server counter, and its faults are drawn from ``blake2b(seed, n)``: the same seed and the same request
order give the same faults, so a failing test can be replayed. Each fault has its own draw, so changing one
rate does not move the others. Batch sub-requests draw from a second counter (``batch_fail_rate`` only).
Replacing the fault configuration (admin endpoint) starts both counters again from 0.
"""

from __future__ import annotations

import hashlib
import itertools
import random
import struct
from dataclasses import dataclass
from typing import Any

import orjson

from osipi_dagster.mock.config import FaultConfig
from osipi_dagster.mock.serialize import value_errors

ERROR_STATUSES = (500, 502, 503, 504)
MARK = "[injected fault]"  # every injected message says so, to tell injected failures from real bugs
MALFORMED_BODY = (
    b"<!DOCTYPE html><html><head><title>PI Web API</title></head>"
    b"<body><h1>Error</h1><p>[injected fault] this body is not JSON</p></body></html>"
)


@dataclass(frozen=True)
class FaultPlan:
    """The faults one request suffers; ``FaultPlan()`` is a request without faults."""

    index: int = -1  # the request's number in the schedule
    drop: bool = False  # close the connection without an answer
    delay_s: float = 0.0  # latency (with jitter) plus a held answer (timeout fault)
    status: int | None = None  # answer 429 or a 5xx instead of running the route
    keep_fraction: float | None = None  # truncate the body to this share of its bytes
    malformed: bool = False
    web_exception: bool = False
    value_errors: bool = False  # spoil a share of the stream values

    @property
    def rewrites_body(self) -> bool:
        return self.keep_fraction is not None or self.malformed or self.web_exception or self.value_errors


NO_FAULTS = FaultPlan()


def _draws(seed: int, stream: str, index: int) -> tuple[float, ...]:
    """Eight uniform numbers in [0, 1) that depend only on (seed, stream, index)."""
    digest = hashlib.blake2b(f"{seed}:{stream}:{index}".encode(), digest_size=64).digest()
    return tuple(word / 2**64 for word in struct.unpack("<8Q", digest))


def channel_draws(seed: int, channel: int, index: int) -> tuple[float, float, float]:
    """The draws of poll ``index`` of channel number ``channel`` (drop, stall, repeat), each uniform in
    [0, 1)."""
    drop, stall, repeat = _draws(seed, f"c{channel}", index)[:3]
    return drop, stall, repeat


class FaultInjector:
    """The fault schedule of one server, built from a ``FaultConfig``."""

    def __init__(self, config: FaultConfig) -> None:
        self.config = config
        self.enabled = config.any_enabled()
        # itertools.count is atomic under the GIL, so concurrent requests never share a number.
        self._requests = itertools.count()
        self._subrequests = itertools.count()

    def next_plan(self) -> FaultPlan:
        """The faults of the next request (and count it)."""
        if not self.enabled:
            return NO_FAULTS
        return self.plan(next(self._requests))

    def plan(self, index: int) -> FaultPlan:
        """The faults of request number ``index``: a pure function of the configuration and ``index``."""
        c = self.config
        drop, timeout, error, throttle, truncate, malformed, web_exc, jitter = _draws(c.seed, "r", index)
        if drop < c.drop_rate:
            return FaultPlan(index=index, drop=True)
        delay_ms = c.latency_ms + jitter * c.latency_jitter_ms
        delay_s = delay_ms / 1000 + (c.timeout_s if timeout < c.timeout_rate else 0.0)
        status = None
        if error < c.error_rate:
            # The draw is uniform below the rate, so rescaling it picks each status equally often.
            status = ERROR_STATUSES[int(error / c.error_rate * len(ERROR_STATUSES))]
        elif throttle < c.throttle_rate:
            status = 429
        return FaultPlan(
            index=index,
            delay_s=delay_s,
            status=status,
            keep_fraction=truncate / c.truncate_rate if truncate < c.truncate_rate else None,
            malformed=malformed < c.malformed_rate,
            web_exception=web_exc < c.web_exception_rate,
            value_errors=c.value_error_rate > 0,
        )

    def fail_subrequests(self, count: int) -> list[bool]:
        """Which of the next ``count`` batch sub-requests fail (in the batch's execution order)."""
        rate = self.config.batch_fail_rate
        if rate <= 0:
            return [False] * count
        return [_draws(self.config.seed, "b", next(self._subrequests))[0] < rate for _ in range(count)]

    def error_body(self, status: int) -> dict:
        """The body of an injected 429 or 5xx answer."""
        if status == 429:
            return {"Errors": [f"Rate limit was reached {MARK}"]}
        return {"Errors": [f"The server answered {status} {MARK}."]}

    def rewrite(self, plan: FaultPlan, body: bytes) -> bytes:
        """``body`` (a 2xx JSON answer) with the plan's body faults applied."""
        if plan.value_errors:
            rng = random.Random(f"{self.config.seed}:{plan.index}")
            body = spoil_values(body, self.config.value_error_rate, rng)
        if plan.web_exception:
            body = add_web_exception(body)
        if plan.malformed:
            return MALFORMED_BODY
        if plan.keep_fraction is not None:
            return truncate(body, plan.keep_fraction)
        return body


def truncate(body: bytes, keep_fraction: float) -> bytes:
    """The first ``keep_fraction`` of ``body``, always at least one byte short of it."""
    return body[: min(int(len(body) * keep_fraction), len(body) - 1)] if body else body


def add_web_exception(body: bytes) -> bytes:
    """Splice a top-level ``WebException`` into a JSON object body (other bodies are returned as they are)."""
    text = body.rstrip()
    if not (text.startswith(b"{") and text.endswith(b"}")):
        return body
    head = text[:-1].rstrip()
    exception = orjson.dumps(
        {"Errors": [f"An unhandled error occurred while streaming the response {MARK}."], "StatusCode": 500}
    )
    return head + (b"" if head.endswith(b"{") else b",") + b'"WebException":' + exception + b"}"


def spoil_values(body: bytes, rate: float, rng: random.Random) -> bytes:
    """Give a share ``rate`` of the TimedValues in ``body`` a per-value ``Errors`` property (PI's shape)."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body
    _spoil([document], rate, rng)  # wrapped, so that a single TimedValue (/value, /end) can be spoiled too
    return orjson.dumps(document)


def _spoil(node: Any, rate: float, rng: random.Random) -> None:
    """Walk the document in order; a TimedValue is any object with a ``Timestamp``."""
    children = node.values() if isinstance(node, dict) else node
    for child in children:
        if isinstance(child, dict) and "Timestamp" in child and rng.random() < rate:
            if "Value" in child:
                child["Value"] = None
            if "Good" in child:
                child["Good"] = False
            child["Errors"] = value_errors(f"The value could not be read {MARK}.")
        elif isinstance(child, dict | list):
            _spoil(child, rate, rng)
