"""The daily ingestion report: what reached the lake on one UTC day, how good it was, what arrived late,
which checks fail and which alarms PI raised, as figures (``gold.pi_ingestion_report``, one row per figure)
and as a small HTML dashboard (inline SVG, no plotting library) that the Dagster UI links to.

Every figure is computed with Arrow group-bys over the day's slices: no Python step per value.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc

from osipi_dagster.ingest.silver import point_context
from osipi_dagster.lake import LakeTable, WriteResult, read_table, replace_day

RATE = "rate_per_hour"
QUALITY = "quality_by_area"
LATE = "late_values"
CHECKS = "failing_checks"
ALARMS = "event_frames_by_severity"
NO_AREA = "(no AF area)"
NS_PER_SECOND = 1_000_000_000
_NS_PER_HOUR = 3600 * NS_PER_SECOND


@dataclass(frozen=True)
class FailingCheck:
    """An asset check whose latest evaluation of one of the day's partitions failed."""

    name: str
    partition: str
    severity: str
    description: str


@dataclass(frozen=True)
class ReportTables:
    """The tables a report reads, all of one PI server."""

    timeseries: LakeTable
    points: LakeTable
    hierarchy: LakeTable
    attributes: LakeTable
    latency: LakeTable
    event_frames: LakeTable


@dataclass(frozen=True)
class IngestionReport:
    """One UTC day's figures."""

    day: date
    values: int
    rate_per_hour: tuple[tuple[str, int], ...]
    quality_by_area: tuple[tuple[str, float, int], ...]  # area, good share, values
    late_values: tuple[tuple[str, int], ...]  # tag shard, late values found
    failing_checks: tuple[FailingCheck, ...]
    alarms_by_severity: tuple[tuple[str, int], ...]

    @property
    def good_share(self) -> float:
        good = sum(share * count for _, share, count in self.quality_by_area)
        return good / self.values if self.values else 0.0

    @property
    def late_total(self) -> int:
        return sum(count for _, count in self.late_values)

    @property
    def alarms(self) -> int:
        return sum(count for _, count in self.alarms_by_severity)

    def rows(self) -> pa.Table:
        """The report as ``gold.pi_ingestion_report`` rows (every column but ``ingested_at``)."""
        figures: list[tuple[str, str, float, str | None]] = [
            *((RATE, hour, float(n), None) for hour, n in self.rate_per_hour),
            *((QUALITY, area, share, f"{n} values") for area, share, n in self.quality_by_area),
            *((LATE, shard, float(n), None) for shard, n in self.late_values),
            *(
                (CHECKS, f"{c.name}@{c.partition}", 1.0, f"{c.severity}: {c.description}")
                for c in self.failing_checks
            ),
            *((ALARMS, severity, float(n), None) for severity, n in self.alarms_by_severity),
        ]
        return pa.table(
            {
                "partition_date": pa.array([self.day] * len(figures), pa.date32()),
                "section": pa.array([f[0] for f in figures], pa.string()),
                "label": pa.array([f[1] for f in figures], pa.string()),
                "value": pa.array([f[2] for f in figures], pa.float64()),
                "detail": pa.array([f[3] for f in figures], pa.string()),
            }
        )


def build_report(tables: ReportTables, day: date, failing_checks: Sequence[FailingCheck]) -> IngestionReport:
    """The figures of ``day`` from the lake (every shard's slice of it) and the failing checks given."""
    values = _day_values(tables.timeseries, day)
    per_point = values.group_by("web_id").aggregate([("good", "count"), ("good", "sum")])
    return IngestionReport(
        day=day,
        values=values.num_rows,
        rate_per_hour=_rate_per_hour(values, day),
        quality_by_area=_quality_by_area(per_point, tables),
        late_values=_late_values(tables.latency, day),
        failing_checks=tuple(sorted(failing_checks, key=lambda c: (c.severity, c.name, c.partition))),
        alarms_by_severity=_alarms_by_severity(tables.event_frames, day),
    )


def write_report(table: LakeTable, report: IngestionReport) -> WriteResult:
    """Replace the day's rows of ``gold.pi_ingestion_report`` with the report's, in one commit."""
    return replace_day(table, report.rows(), report.day)


def _day_values(table: LakeTable, day: date) -> pa.Table:
    if not table.exists():
        return pa.table(
            {
                "web_id": pa.array([], pa.string()),
                "timestamp_ns": pa.array([], pa.int64()),
                "good": pa.array([], pa.bool_()),
            }
        )
    dataset = table.load().to_pyarrow_dataset()
    return dataset.to_table(
        columns=["web_id", "timestamp_ns", "good"],
        filter=pc.field("partition_date") == pa.scalar(day, pa.date32()),
    )


def _rate_per_hour(values: pa.Table, day: date) -> tuple[tuple[str, int], ...]:
    start = int(datetime.combine(day, datetime.min.time(), UTC).timestamp()) * NS_PER_SECOND
    hours = pc.divide(pc.subtract(values["timestamp_ns"].cast(pa.int64()), start), _NS_PER_HOUR)
    counts = pa.table({"hour": hours}).group_by("hour").aggregate([("hour", "count")])
    by_hour = dict(zip(counts["hour"].to_pylist(), counts["hour_count"].to_pylist(), strict=True))
    return tuple((f"{hour:02d}:00", by_hour.get(hour, 0)) for hour in range(24))


def _quality_by_area(per_point: pa.Table, tables: ReportTables) -> tuple[tuple[str, float, int], ...]:
    context = point_context(
        read_table(tables.points), read_table(tables.hierarchy), read_table(tables.attributes)
    )
    areas = dict(zip(context["web_id"].to_pylist(), context["area"].to_pylist(), strict=True))
    totals: dict[str, list[int]] = {}
    for web_id, count, good in zip(
        per_point["web_id"].to_pylist(),
        per_point["good_count"].to_pylist(),
        per_point["good_sum"].to_pylist(),
        strict=True,
    ):  # one step per point, not per value
        total = totals.setdefault(areas.get(web_id) or NO_AREA, [0, 0])
        total[0] += count
        total[1] += good or 0
    return tuple(
        (area, good / count if count else 0.0, count) for area, (count, good) in sorted(totals.items())
    )


def _late_values(table: LakeTable, day: date) -> tuple[tuple[str, int], ...]:
    rows = read_table(table)
    if rows is None:
        return ()
    rows = rows.filter(pc.field("partition_date") == pa.scalar(day, pa.date32()))
    sums = rows.group_by("tag_shard").aggregate([("late_values", "sum")]).sort_by("tag_shard")
    return tuple(zip(sums["tag_shard"].to_pylist(), sums["late_values_sum"].to_pylist(), strict=True))


def _alarms_by_severity(table: LakeTable, day: date) -> tuple[tuple[str, int], ...]:
    """Alarm frames (category or template naming an alarm) active at some time of ``day``."""
    frames = read_table(table)
    if frames is None:
        return ()
    start = datetime.combine(day, datetime.min.time(), UTC)
    end = start + timedelta(days=1)
    counts: dict[str, int] = {}
    for frame in frames.select(
        ["template_name", "category_names", "severity", "start_time", "end_time"]
    ).to_pylist():
        names = [frame["template_name"] or "", *(frame["category_names"] or [])]
        active = frame["start_time"] < end and (frame["end_time"] is None or frame["end_time"] >= start)
        if active and any("alarm" in name.lower() for name in names):
            severity = frame["severity"] or "None"
            counts[severity] = counts.get(severity, 0) + 1
    return tuple(sorted(counts.items()))


def summary_markdown(report: IngestionReport) -> str:
    """The report as Markdown, for the materialization's metadata (the UI renders it)."""
    lines = [
        f"**{report.day.isoformat()}**: {report.values:,} values, {report.good_share:.1%} good, "
        f"{report.late_total:,} late, {len(report.failing_checks)} failing check(s), "
        f"{report.alarms} alarm(s).",
        "",
        "| area | good share | values |",
        "|---|---|---|",
        *(f"| {_md(area)} | {share:.1%} | {n:,} |" for area, share, n in report.quality_by_area),
    ]
    if report.failing_checks:
        lines += ["", "| failing check | partition | severity |", "|---|---|---|"]
        lines += [f"| {c.name} | {c.partition} | {c.severity} |" for c in report.failing_checks]
    if report.alarms_by_severity:
        lines += ["", "| alarm severity | frames |", "|---|---|"]
        lines += [f"| {_md(severity)} | {n} |" for severity, n in report.alarms_by_severity]
    return "\n".join(lines)


def render_html(report: IngestionReport) -> str:
    """A one-page dashboard of the report: bar charts as inline SVG, readable offline."""
    late = report.late_values or (("-", 0),)
    charts = [
        _bars("Values per hour (UTC)", [(h, float(n)) for h, n in report.rate_per_hour], "{:,.0f}"),
        _bars("Good-value share by area", [(a, s) for a, s, _ in report.quality_by_area], "{:.1%}", 1.0),
        _bars("Late values found, by tag shard", [(s, float(n)) for s, n in late], "{:,.0f}"),
        _bars(
            "Alarm event frames by severity", [(s, float(n)) for s, n in report.alarms_by_severity], "{:.0f}"
        ),
    ]
    checks = "".join(
        f"<tr><td>{_h(c.name)}</td><td>{_h(c.partition)}</td><td>{_h(c.severity)}</td>"
        f"<td>{_h(c.description)}</td></tr>"
        for c in report.failing_checks
    )
    checks_html = (
        "<table><tr><th>check</th><th>partition</th><th>severity</th><th>what it checks</th></tr>"
        f"{checks}</table>"
        if checks
        else "<p>Every check evaluated on this day's partitions passed.</p>"
    )
    title = f"PI ingestion report, {report.day.isoformat()}"
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title><style>"
        "body{font-family:sans-serif;margin:24px;color:#222}section{margin-bottom:28px}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}"
        f"</style></head><body><h1>{title}</h1><p>{_h(summary_line(report))}</p>"
        + "".join(charts)
        + f"<section><h2>Failing checks</h2>{checks_html}</section></body></html>"
    )


def summary_line(report: IngestionReport) -> str:
    """The day in one sentence (also what ``make demo`` prints)."""
    return (
        f"{report.values:,} values, {report.good_share:.1%} good, {report.late_total:,} late values, "
        f"{len(report.failing_checks)} failing check evaluation(s), {report.alarms} alarm event frame(s)."
    )


def _bars(title: str, bars: list[tuple[str, float]], fmt: str, top: float | None = None) -> str:
    if not bars:
        return f"<section><h2>{_h(title)}</h2><p>None.</p></section>"
    width, row, label_width = 640, 18, 140
    largest = top or max(value for _, value in bars) or 1.0
    shapes = []
    for i, (label, value) in enumerate(bars):
        y, length = i * row, (width - label_width - 90) * value / largest
        shapes.append(
            f"<text x='0' y='{y + 13}' font-size='12'>{_h(label)}</text>"
            f"<rect x='{label_width}' y='{y + 2}' width='{length:.1f}' height='{row - 4}' fill='#4f7cac'/>"
            f"<text x='{label_width + length + 4:.1f}' y='{y + 13}' font-size='12'>"
            f"{_h(fmt.format(value))}</text>"
        )
    svg = f"<svg width='{width}' height='{row * len(bars)}' xmlns='http://www.w3.org/2000/svg'>{''.join(shapes)}</svg>"
    return f"<section><h2>{_h(title)}</h2>{svg}</section>"


def _h(text: str) -> str:
    return html.escape(str(text), quote=True)


def _md(text: str) -> str:
    return str(text).replace("|", "\\|")
