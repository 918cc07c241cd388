"""Everything one mock server holds: its configuration, clock, data models (notification rules included),
stream-updates caches, running channels and fault schedule."""

from __future__ import annotations

from osipi_dagster.mock.af import AssetModel
from osipi_dagster.mock.archive import Archive
from osipi_dagster.mock.channels import ChannelRegistry
from osipi_dagster.mock.clock import MockClock
from osipi_dagster.mock.config import MockConfig
from osipi_dagster.mock.eventframes import EventFrameModel
from osipi_dagster.mock.faults import FaultInjector
from osipi_dagster.mock.notifications import NotificationModel
from osipi_dagster.mock.updates import UpdatesRegistry


class MockState:
    """Built once per server; deterministic given the configuration (and the clock)."""

    def __init__(self, config: MockConfig) -> None:
        self.config = config
        self.clock = MockClock(config.fixed_now_ns(), config.clock_speed)
        self.started_ns = self.clock.now_ns()
        self.archive = Archive(config, self.started_ns)
        self.af = AssetModel(config, self.archive)
        self.event_frames = EventFrameModel(config, self.af, self.started_ns, self.clock)
        self.notifications = NotificationModel(config.seed, self.af)
        self.faults = FaultInjector(config.faults)
        self.updates = UpdatesRegistry(
            config.seed, self.clock, self.archive.data, config.updates_cache_minutes
        )
        self.channels = ChannelRegistry()
