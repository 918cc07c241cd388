"""``pi_ingestion_report`` on a day materialized from the mock through Dagster: its figures equal what the
lake holds, a failing check is listed, the HTML dashboard is written where the metadata says, and the gold
table holds the same numbers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from osipi_dagster.ingest.report import (
    ALARMS,
    CHECKS,
    QUALITY,
    RATE,
    ReportTables,
    build_report,
    render_html,
    write_report,
)
from osipi_dagster.lake import Lakehouse, read_table
from osipi_dagster.settings import PIServerSettings
from osipi_dagster_tests.pipes_helpers import DAY, SHARDS, Materializer

REPORT_INPUTS = (
    "bronze.pi_timeseries",
    "bronze.pi_points",
    "bronze.pi_af_hierarchy",
    "bronze.pi_af_attributes",
    "gold.pi_data_latency",
    "bronze.pi_event_frames",
)


def test_the_report_of_a_day_equals_the_lake_and_lists_the_failing_checks(make_mock, tmp_path: Path) -> None:
    mock = make_mock(tags=30)
    # Every value good is more than the mock's data offers: the good-quality check fails on both shards.
    server = PIServerSettings(
        base_url=mock.api, compress=False, tag_shards=len(SHARDS), check_good_quality_min_share=1.0
    )
    with dg.instance_for_test() as instance:
        run = Materializer(server, tmp_path / "lake", instance)
        run.catalog()
        assert run.timeseries_day().success
        assert run.event_frames_day().success
        result = run.run(["pi_ingestion_report"], partition=DAY.isoformat())
        assert result.success
        (event,) = result.get_asset_materialization_events()
        metadata = {name: value.value for name, value in event.materialization.metadata.items()}
        page = Path(metadata["report_path"])  # under the instance's storage, gone with it
        html = page.read_text(encoding="utf-8")

    bronze = read_table(run.lake.table("bronze.pi_timeseries"))
    day_rows = bronze.filter(pc.field("partition_date") == pa.scalar(DAY, pa.date32()))
    report = read_table(run.lake.table("gold.pi_ingestion_report")).to_pylist()
    by_section: dict[str, dict[str, float]] = {}
    for row in report:
        assert row["partition_date"] == DAY
        by_section.setdefault(row["section"], {})[row["label"]] = row["value"]

    assert len(by_section[RATE]) == 24
    assert sum(by_section[RATE].values()) == day_rows.num_rows == metadata["values"]
    hour_7 = pc.equal(pc.hour(day_rows["timestamp"]), 7)
    assert by_section[RATE]["07:00"] == pc.sum(hour_7.cast(pa.int64())).as_py()
    good_share = pc.mean(day_rows["good"].cast(pa.float64())).as_py()
    assert abs(metadata["good_share"] - good_share) < 1e-6
    area_counts = [int(row["detail"].split()[0]) for row in report if row["section"] == QUALITY]
    assert sum(area_counts) == day_rows.num_rows
    assert set(by_section[CHECKS]) == {f"pi_timeseries.good_quality@{DAY.isoformat()}|{s}" for s in SHARDS}
    assert metadata["failing_checks"] == len(SHARDS)
    assert by_section.get(ALARMS, {}) == _alarms(run)
    assert sum(by_section.get(ALARMS, {}).values()) == metadata["alarm_event_frames"]

    assert page.name == f"{DAY.isoformat()}.html"
    assert f"PI ingestion report, {DAY.isoformat()}" in html
    assert html.count("<svg") == 4
    assert "good_quality" in html
    assert f"{day_rows.num_rows:,} values" in metadata["summary"]


def _alarms(run: Materializer) -> dict[str, float]:
    """Alarm event frames active on DAY, by severity, counted row by row."""
    start = datetime(DAY.year, DAY.month, DAY.day, tzinfo=UTC)
    counts: dict[str, float] = {}
    for frame in read_table(run.lake.table("bronze.pi_event_frames")).to_pylist():
        alarm = (
            "Alarm" in (frame["category_names"] or []) or "alarm" in (frame["template_name"] or "").lower()
        )
        ends = frame["end_time"] or start + timedelta(days=1)
        if alarm and frame["start_time"] < start + timedelta(days=1) and ends >= start:
            counts[frame["severity"] or "None"] = counts.get(frame["severity"] or "None", 0) + 1
    return counts


def test_a_day_with_nothing_in_the_lake_gives_an_empty_report(tmp_path: Path) -> None:
    """No table written yet: zero values in every hour, no area, no late value, no alarm; the page renders."""
    lake = Lakehouse(str(tmp_path))
    tables = ReportTables(*(lake.table(name) for name in REPORT_INPUTS))
    report = build_report(tables, DAY, [])
    assert report.values == 0 and report.good_share == 0.0
    assert [n for _, n in report.rate_per_hour] == [0] * 24
    assert (report.quality_by_area, report.late_values, report.alarms_by_severity) == ((), (), ())
    write_report(lake.table("gold.pi_ingestion_report"), report)
    rows = read_table(lake.table("gold.pi_ingestion_report"))
    assert rows.num_rows == 24 and set(rows["section"].to_pylist()) == {RATE}
    assert "Every check evaluated on this day's partitions passed." in render_html(report)
