"""Review of the Dagster layer: regressions for the bugs a review found."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pydantic
import pytest
from dagster_deltalake import S3Config

from osipi_dagster.assets.timeseries import TimeseriesConfig
from osipi_dagster.ingest.timeseries import ingest_partition
from osipi_dagster.lake import Lakehouse, Watermark, read_watermarks, write_watermarks
from osipi_dagster.resources import DeltaLakehouseResource

SECRET = "s3cr3t-never-shown"
OPEN_DAY = date(2025, 1, 6)
NOON = datetime(2025, 1, 6, 12, tzinfo=UTC)
WATERMARK = datetime(2025, 1, 6, 10, tzinfo=UTC)


class _RecordingClient:
    """Stands in for the PI client: records what it is asked to read and returns no value."""

    def __init__(self) -> None:
        self.starts: list[datetime] = []

    def read_recorded(self, web_ids, start, end, **_):
        self.starts.append(start)
        return _EmptyRead()


class _EmptyRead:
    failures: list = []
    requests = 0

    def __iter__(self):
        return iter(())


def test_a_negative_overlap_is_refused_instead_of_skipping_values_after_the_watermark(tmp_path: Path) -> None:
    """A negative overlap would start the open day's read *after* the watermark, skip the values between
    them and then move the watermark past them: a silent gap. It must be refused before anything is read."""
    lake = Lakehouse(str(tmp_path))
    marks = lake.table("checkpoints.pi_watermarks")
    write_watermarks(marks, "s00", [Watermark("A", read_until=WATERMARK)])
    client = _RecordingClient()

    with pytest.raises(ValueError, match="overlap"):
        ingest_partition(
            client,  # type: ignore[arg-type]
            timeseries=lake.table("bronze.pi_timeseries"),
            watermarks=marks,
            web_ids=["A"],
            day=OPEN_DAY,
            shard="s00",
            now=NOON,
            overlap=timedelta(minutes=-30),
        )

    assert client.starts == []
    assert read_watermarks(marks, "s00")["A"].read_until == WATERMARK


def test_the_run_config_refuses_a_negative_overlap() -> None:
    """The launchpad's ``overlap_minutes`` is checked like ``OSIPI_OVERLAP_MINUTES``: a whole number >= 0."""
    with pytest.raises(pydantic.ValidationError):
        TimeseriesConfig(overlap_minutes=-30)
    assert TimeseriesConfig(overlap_minutes=0).overlap_minutes == 0


def test_lakehouse_reprs_never_show_object_store_secrets() -> None:
    """The lakehouse resource and the tables it addresses carry object-store credentials: neither repr (what
    a traceback, a debugger or a log line prints) shows them."""
    resource = DeltaLakehouseResource(
        root="s3://bucket/lake", storage=S3Config(access_key_id="AKIA-ID", secret_access_key=SECRET)
    )
    table = resource.table("bronze.pi_timeseries")

    assert table.storage_options["secret_access_key"] == SECRET  # still passed to delta-rs
    assert SECRET not in repr(resource) and SECRET not in str(resource)
    assert SECRET not in repr(table) and SECRET not in repr(resource.lakehouse())
