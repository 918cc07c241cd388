"""Shared fixtures: the mock PI Web API served over real HTTP on loopback."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import replace

import pytest

from osipi_dagster.mock.config import MockConfig
from osipi_dagster.mock.server import RunningMock, serve_in_thread

# A fixed clock makes every test reproducible; a small archive keeps start-up fast.
TEST_NOW = "2025-01-06T12:00:00Z"
TEST_CONFIG = MockConfig(port=0, tags=200, now=TEST_NOW, archive_days=30)


def _expected_minutes(item: pytest.Item) -> float:
    """A slow test's expected duration: ``@pytest.mark.slow(minutes=...)`` on the longest, else 0.5."""
    marker = item.get_closest_marker("slow")
    return 0.0 if marker is None else float(marker.kwargs.get("minutes", 0.5))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Deal the slow tests out to the xdist workers, each worker's at the front of its share.

    `make test` runs xdist's ``worksteal`` scheduler: it gives each worker a contiguous, equal share of this
    order, and an idle worker takes the back half of a busy one's queue. With every slow test at the front
    of one share, one worker would run them one after the other while the others stole only quick tests
    from behind them. Dealt longest first to the worker with the least expected time, every worker starts
    on its own slow tests at once and the quick ones fill the gaps. Every worker computes the same order,
    as xdist requires.
    """
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    slow = sorted((item for item in items if _expected_minutes(item)), key=_expected_minutes, reverse=True)
    quick = [item for item in items if not _expected_minutes(item)]
    dealt: list[list[pytest.Item]] = [[] for _ in range(workers)]
    for item in slow:
        min(dealt, key=lambda own: sum(map(_expected_minutes, own))).append(item)
    ordered: list[pytest.Item] = []
    for worker, own in enumerate(dealt):
        share = (len(items) - len(ordered)) // (workers - worker)  # as the scheduler splits the queue
        fill = max(0, share - len(own))
        ordered += own + quick[:fill]
        del quick[:fill]
    items[:] = ordered + quick


@pytest.fixture(scope="session")
def mock_pi() -> Iterator[RunningMock]:
    """One shared mock for tests that only read; never move its clock or change its faults."""
    with serve_in_thread(TEST_CONFIG) as running:
        yield running


@pytest.fixture
def make_mock() -> Iterator[Callable[..., RunningMock]]:
    """Start a private mock with options over TEST_CONFIG, e.g. ``make_mock(auth="basic")``."""
    with ExitStack() as stack:

        def start(**overrides) -> RunningMock:
            return stack.enter_context(serve_in_thread(replace(TEST_CONFIG, **overrides)))

        yield start
