"""Shared fixtures: the mock PI Web API served over real HTTP on loopback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import replace

import pytest

from osipi_dagster.mock.config import MockConfig
from osipi_dagster.mock.server import RunningMock, serve_in_thread

# A fixed clock makes every test reproducible; a small archive keeps start-up fast.
TEST_NOW = "2025-01-06T12:00:00Z"
TEST_CONFIG = MockConfig(port=0, tags=200, now=TEST_NOW, archive_days=30)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Slow tests first: xdist hands tests to its workers in this order, so the long ones start at once and
    the quick ones fill the gaps, instead of a few long ones running alone at the end."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


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
