"""The asset checks of one PI server: the quality of what each asset stored. The figures are computed by
:mod:`osipi_dagster.ingest.quality` (whose docstring says why these are checks of their own rather than
results of the materializations); this module only runs them and reports.

* ``pi_timeseries``: one multi-asset check partitioned like the asset (date x shard), with seven checks,
  each with its threshold and severity from the server's ``check_*`` settings. Dagster adds it to every run
  that materializes ``pi_timeseries``, after the asset's step. A run may cover several partitions (a
  backfill's range), and Dagster 1.13 cannot attach a partition to an ``AssetCheckResult`` in such a run, so
  the check logs one evaluation per check and partition, each targeting that partition's latest
  materialization, and yields no result (which a subsettable check may do).
* ``pi_af_hierarchy``/``pi_af_attributes``, ``pi_points``, ``pi_event_frames``: the small tables, read
  whole; one evaluation per check and run.

A check whose severity is ``error`` is *blocking*: a downstream asset whose automation condition includes
``AutomationCondition.all_deps_blocking_checks_passed()`` waits until it passes for that partition. A check
never fails its run for what it finds: every check logs evaluations rather than yielding results, since
Dagster fails the run of a failed blocking result, though the data is committed (and the sensors would
then request the partition again and again). It only fails the run when it cannot look (the lake or PI
unreachable). The flip side: a downstream asset in the same run is not held back (blocking acts through
automation), and a run-failure alert does not fire; watch the checks (the asset's Checks tab, or an alert
on check failures).
"""

from collections.abc import Callable, Iterator, Mapping
from datetime import date, timedelta

import dagster as dg
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,
)

from osipi_dagster.defs.pi_server.partitions import split_partition_key
from osipi_dagster.defs.pi_server.wiring import LAKEHOUSE, ServerWiring
from osipi_dagster.ingest.quality import (
    Offender,
    Outcome,
    TimeseriesLimits,
    TimeseriesQuality,
    af_cycles,
    af_orphans,
    af_point_references,
    duplicate_keys,
    frames_end_after_start,
    stable_shards,
)
from osipi_dagster.ingest.server_clock import server_now
from osipi_dagster.lake import read_table
from osipi_dagster.lake.schemas import (
    AF_ATTRIBUTES,
    AF_HIERARCHY,
    DATA_LATENCY,
    EVENT_FRAMES,
    POINTS,
    TIMESERIES,
)
from osipi_dagster.settings import CheckSeverity, PIServerSettings

TIMESERIES_CHECKS = {
    "null_or_bad_values": "The share of values that are null (no number, text or state) or bad (a system "
    "state such as I/O Timeout, counted apart) is at most check_null_or_bad_max_share.",
    "freshness": "Today's partition: every point that reports has a value no older than "
    "check_freshness_minutes, or three of its own typical intervals if longer, at the PI server's now. "
    "Closed days pass.",
    "volume": "The partition's row count is within check_volume_max_z standard deviations of the same "
    "shard's 14 previous days (Delta statistics; skipped with fewer than 7 days; today scaled to the part "
    "of the day stored).",
    "good_quality": "The share of values PI flags Good and not Questionable is at least "
    "check_good_quality_min_share.",
    "duplicates": "The share of rows identical to another (point, exact time, value, text, state, flags) is "
    "at most check_duplicates_max_share; different values at one timestamp are PI data and do not count.",
    "schema": "The table's columns, types, nullability and partitioning equal its contract "
    "(lake/schemas.py).",
    "clock_skew": "No value stored, and none found in PI by the materialization's run, is stamped more than "
    "clock_skew_tolerance_minutes after the PI server's now.",
}


# The settings the check descriptions name, shown with their values.
THRESHOLDS = (
    "check_null_or_bad_max_share",
    "check_freshness_minutes",
    "check_volume_max_z",
    "check_good_quality_min_share",
    "check_duplicates_max_share",
    "clock_skew_tolerance_minutes",
)


def with_thresholds(description: str, settings: PIServerSettings) -> str:
    """``description`` with each threshold setting it names followed by the server's value, as a plant
    engineer reads it in the UI: "at most `check_null_or_bad_max_share` (5 %)"."""
    for name in THRESHOLDS:
        shown = _threshold_text(name, getattr(settings, name))
        description = description.replace(name, f"`{name}` ({shown})")
    return description


def _threshold_text(name: str, value: float) -> str:
    if name.endswith("_share"):
        return f"{value * 100:g} %"
    if name.endswith("_minutes"):
        return f"{value:g} min"
    return f"{value:g}"


def server_checks(server: ServerWiring) -> list[dg.AssetChecksDefinition]:
    """Every asset check of the server."""
    return [timeseries_checks(server), af_checks(server), points_checks(server), event_frames_checks(server)]


def timeseries_checks(server: ServerWiring) -> dg.AssetChecksDefinition:
    """The checks of ``pi_timeseries``, one evaluation per check and partition."""
    settings = server.settings
    asset = server.key("pi_timeseries")
    severities = timeseries_severities(settings)

    @dg.multi_asset_check(
        name=settings.qualified("pi_timeseries_checks"),
        specs=[
            dg.AssetCheckSpec(
                name,
                asset=asset,
                description=with_thresholds(description, settings),
                partitions_def=server.partitions.timeseries,
                blocking=severities[name] is CheckSeverity.ERROR,
            )
            for name, description in TIMESERIES_CHECKS.items()
        ],
        can_subset=True,
        required_resource_keys=server.resource_keys,
    )
    def pi_timeseries_checks(context: dg.AssetCheckExecutionContext) -> Iterator[dg.AssetCheckResult]:
        """Null or bad values, freshness, volume, good quality, duplicates, schema and clock skew of each
        (date, shard) partition, read from its Delta slice only, batch by batch."""
        pi, lake = server.pi(context), server.lake(context)
        quality = TimeseriesQuality(
            timeseries=lake.table(TIMESERIES.name),
            points=lake.table(POINTS.name),
            latency=lake.table(DATA_LATENCY.name),
            now=server_now(pi.client, pi.data_server),
            limits=timeseries_limits(settings),
            checks=[key.name for key in context.selected_asset_check_keys],
        )
        for key in context.partition_keys:
            day, shard = split_partition_key(key)
            target = _latest_materialization(context.instance, asset, key)
            outcomes = quality.partition(date.fromisoformat(day), shard, target.run_id if target else None)
            _log(context, {asset: target}, outcomes, partition=key)
        yield from ()  # every evaluation was logged, with its partition

    return pi_timeseries_checks


def timeseries_severities(settings: PIServerSettings) -> dict[str, CheckSeverity]:
    """The severity of each time-series check, from the server's settings."""
    return {
        "null_or_bad_values": settings.check_null_or_bad_severity,
        "freshness": settings.check_freshness_severity,
        "volume": settings.check_volume_severity,
        "good_quality": settings.check_good_quality_severity,
        "duplicates": settings.check_duplicates_severity,
        "schema": settings.check_schema_severity,
        "clock_skew": settings.check_clock_skew_severity,
    }


def timeseries_limits(settings: PIServerSettings) -> TimeseriesLimits:
    """The thresholds of the time-series checks, from the server's settings."""
    return TimeseriesLimits(
        null_or_bad_max_share=settings.check_null_or_bad_max_share,
        freshness=timedelta(minutes=settings.check_freshness_minutes),
        volume_max_z=settings.check_volume_max_z,
        good_quality_min_share=settings.check_good_quality_min_share,
        duplicates_max_share=settings.check_duplicates_max_share,
        skew_tolerance=timedelta(minutes=settings.clock_skew_tolerance_minutes),
    )


def af_checks(server: ServerWiring) -> dg.AssetChecksDefinition:
    """The AF tables: no orphan, no cycle (errors), every PI Point attribute names a catalog point (a
    warning: points excluded by the catalog filters count too). Ordered after ``pi_points`` when a run
    materializes it too, so the references are checked against the catalog of the same run."""
    hierarchy, attributes = server.key("pi_af_hierarchy"), server.key("pi_af_attributes")

    @dg.multi_asset_check(
        name=server.settings.qualified("pi_af_checks"),
        specs=[
            dg.AssetCheckSpec(
                "no_orphans",
                asset=hierarchy,
                blocking=True,
                description="Every element's parent, and every attribute's element, is in the hierarchy.",
            ),
            dg.AssetCheckSpec(
                "no_cycles", asset=hierarchy, blocking=True, description="No element is its own ancestor."
            ),
            dg.AssetCheckSpec(
                "points_resolve",
                asset=attributes,
                additional_deps=[server.key("pi_points")],
                description="Every attribute with a PI Point data reference names an active point of the "
                "tag catalog (pi_points).",
            ),
        ],
        can_subset=True,
        required_resource_keys={LAKEHOUSE},
    )
    def pi_af_checks(context: dg.AssetCheckExecutionContext) -> Iterator[dg.AssetCheckResult]:
        """Orphans and cycles of the AF hierarchy, and the PI points its attributes reference."""
        lake = server.lake(context)
        elements = read_table(lake.table(AF_HIERARCHY.name))
        attribute_rows = read_table(lake.table(AF_ATTRIBUTES.name))
        yield from _evaluate(
            context,
            {
                "no_orphans": lambda: af_orphans(elements, attribute_rows),
                "no_cycles": lambda: af_cycles(elements),
                "points_resolve": lambda: af_point_references(
                    attribute_rows, read_table(lake.table(POINTS.name))
                ),
            },
        )

    return pi_af_checks


def points_checks(server: ServerWiring) -> dg.AssetChecksDefinition:
    """The tag catalog: one row per WebId, and no point moved to another shard (both errors)."""
    asset = server.key("pi_points")

    @dg.multi_asset_check(
        name=server.settings.qualified("pi_points_checks"),
        specs=[
            dg.AssetCheckSpec(
                "unique_web_ids", asset=asset, blocking=True, description="Every point has one row."
            ),
            dg.AssetCheckSpec(
                "stable_shards",
                asset=asset,
                blocking=True,
                description="No point is in another tag shard than in the previous version of the table.",
            ),
        ],
        can_subset=True,
        required_resource_keys={LAKEHOUSE},
    )
    def pi_points_checks(context: dg.AssetCheckExecutionContext) -> Iterator[dg.AssetCheckResult]:
        """Duplicate WebIds and shard moves of the tag catalog."""
        points = server.lake(context).table(POINTS.name)
        yield from _evaluate(
            context,
            {
                "unique_web_ids": lambda: duplicate_keys(read_table(points), "points"),
                "stable_shards": lambda: stable_shards(points),
            },
        )

    return pi_points_checks


def event_frames_checks(server: ServerWiring) -> dg.AssetChecksDefinition:
    """The event frames: one row per frame (an error), and none ending before its start (a warning: PI
    holds what it holds); open frames are counted."""
    asset = server.key("pi_event_frames")

    @dg.multi_asset_check(
        name=server.settings.qualified("pi_event_frames_checks"),
        specs=[
            dg.AssetCheckSpec(
                "unique_frames", asset=asset, blocking=True, description="Every event frame has one row."
            ),
            dg.AssetCheckSpec(
                "end_after_start",
                asset=asset,
                description="Every closed frame ends at or after its start; open frames are counted.",
            ),
        ],
        can_subset=True,
        required_resource_keys={LAKEHOUSE},
    )
    def pi_event_frames_checks(context: dg.AssetCheckExecutionContext) -> Iterator[dg.AssetCheckResult]:
        """Duplicate frames, frames that end before they start, and how many are open (the whole table)."""
        frames = read_table(server.lake(context).table(EVENT_FRAMES.name))
        yield from _evaluate(
            context,
            {
                "unique_frames": lambda: duplicate_keys(frames, "event frames"),
                "end_after_start": lambda: frames_end_after_start(frames),
            },
        )

    return pi_event_frames_checks


def _evaluate(
    context: dg.AssetCheckExecutionContext, checks: Mapping[str, Callable[[], Outcome]]
) -> Iterator[dg.AssetCheckResult]:
    """Evaluate the selected ``checks`` (name -> the function giving its outcome) of whole tables and log
    them against their assets' latest materializations."""
    selected = {key.name for key in context.selected_asset_check_keys}
    targets = {
        spec.asset_key: _latest_materialization(context.instance, spec.asset_key)
        for spec in context.check_specs
    }
    _log(context, targets, {name: check() for name, check in checks.items() if name in selected})
    yield from ()  # every evaluation was logged


def _log(
    context: dg.AssetCheckExecutionContext,
    targets: Mapping[dg.AssetKey, AssetCheckEvaluationTargetMaterializationData | None],
    outcomes: Mapping[str, Outcome],
    partition: str | None = None,
) -> None:
    """Log one evaluation per outcome, against its asset's ``targets`` materialization. Logged, not yielded
    as results: a failed blocking result would fail the run, though the data is committed (and the sensors
    would request the partition again and again); ``partition`` is what a result cannot carry in a run of
    several partitions. A blocking check's severity is ERROR, the others' WARN."""
    specs = {spec.name: spec for spec in context.check_specs}
    for name, outcome in outcomes.items():
        spec = specs[name]
        context.op_execution_context.log_event(
            dg.AssetCheckEvaluation(
                asset_key=spec.asset_key,
                check_name=name,
                passed=outcome.passed,
                severity=dg.AssetCheckSeverity.ERROR if spec.blocking else dg.AssetCheckSeverity.WARN,
                description=outcome.description,
                metadata=_metadata(outcome),
                blocking=spec.blocking,
                partition=partition,
                target_materialization_data=targets[spec.asset_key],
            )
        )


def _latest_materialization(
    instance: dg.DagsterInstance, asset: dg.AssetKey, partition: str | None = None
) -> AssetCheckEvaluationTargetMaterializationData | None:
    """The latest materialization of ``asset`` (of its ``partition``, if given), which an evaluation is
    about; None if there is none."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=asset, asset_partitions=[partition] if partition else None), limit=1
    ).records
    if not records:
        return None
    record = records[0]
    return AssetCheckEvaluationTargetMaterializationData(
        storage_id=record.storage_id, run_id=record.run_id, timestamp=record.timestamp
    )


def _readable(value: float) -> float:
    return float(f"{float(value):.6g}")


def _metadata(outcome: Outcome) -> dict[str, dg.MetadataValue]:
    """The outcome's figures as numbers the UI plots, and its worst offenders as a table."""
    metadata: dict[str, dg.MetadataValue] = {
        # Six significant digits: a share reads 0.000567626, not 0.0005676264816226728.
        name: dg.MetadataValue.int(value)
        if isinstance(value, int)
        else dg.MetadataValue.float(_readable(value))
        for name, value in outcome.figures.items()
    }
    if outcome.offenders:
        metadata["worst"] = dg.MetadataValue.md(_offenders_table(outcome.offenders))
    return metadata


def _offenders_table(offenders: tuple[Offender, ...]) -> str:
    columns = list(dict.fromkeys(column for offender in offenders for column in offender.figures))
    lines = [
        "| " + " | ".join(["name", *columns, "WebId"]) + " |",
        "|" + "---|" * (len(columns) + 2),
    ]
    for offender in offenders:
        cells = [offender.name, *(offender.figures.get(column, "") for column in columns), offender.web_id]
        lines.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
    return "\n".join(lines)


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")
