"""``pi_timeseries_live``: the table ``osipi-stream`` writes, seen from Dagster (docs/STREAMING.md).

The stream runs outside Dagster (a long-running process, ``make stream``). Dagster sees it through
``pi_timeseries_live_sensor``: every tick reads the table's new micro-batch commits from its Delta log and
reports each as a runless materialization of the external asset ``pi_timeseries_live`` (rows, the share
streamed rather than read to fill a gap, latency percentiles, the Delta version, how often and how long
the stream paused reading from the channels since the previous commit: back-pressure), and evaluates the
check ``pi_timeseries_live_fresh``: it fails (severity WARN) when the last commit is older than the stream's
``OSIPI_STREAM_STALE_SECONDS`` (the stream stopped, or has nothing to say) or when the last commit's p95
latency is above it (the stream falls behind). The same check can be run by hand.
"""

import time

import dagster as dg

from osipi_dagster.defs.pi_server.metadata import KINDS, definition_metadata
from osipi_dagster.defs.pi_server.wiring import LAKEHOUSE, ServerWiring
from osipi_dagster.lake import LakeTable
from osipi_dagster.lake.live import BATCH_KEY, stream_commits
from osipi_dagster.lake.schemas import LIVE_TIMESERIES
from osipi_dagster.settings import StreamSettings

CHECK_NAME = "pi_timeseries_live_fresh"
SENSOR_INTERVAL_S = 30


def live_asset(server: ServerWiring) -> dg.AssetSpec:
    """The external asset ``pi_timeseries_live`` (written by ``osipi-stream``, not by a run)."""
    return dg.AssetSpec(
        key=server.key("pi_timeseries_live"),
        description="PI values streamed over channels by osipi-stream into bronze.pi_timeseries_live, "
        "committed every second (docs/STREAMING.md). Each commit is reported by pi_timeseries_live_sensor.",
        group_name=server.group,
        kinds=KINDS,
        metadata=definition_metadata(LIVE_TIMESERIES, server.table_name(LIVE_TIMESERIES.name)),
    )


def live_check(server: ServerWiring, stream: StreamSettings) -> dg.AssetChecksDefinition:
    """``pi_timeseries_live_fresh``, run by hand (the sensor reports it on every tick)."""

    @dg.asset_check(
        asset=server.key("pi_timeseries_live"),
        name=CHECK_NAME,
        required_resource_keys={LAKEHOUSE},
        blocking=False,
    )
    def pi_timeseries_live_fresh(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        """Whether osipi-stream committed recently enough, with a low enough latency."""
        table = server.lake(context).table(LIVE_TIMESERIES.name)
        commits = stream_commits(table, None, limit=20)
        return dg.AssetCheckResult(**_freshness(commits[-1] if commits else None, stream.stale_seconds))

    return pi_timeseries_live_fresh


def live_sensor(server: ServerWiring, stream: StreamSettings) -> dg.SensorDefinition:
    """The server's ``pi_timeseries_live_sensor`` (stopped until turned on in the UI)."""
    asset_key = server.key("pi_timeseries_live")

    @dg.sensor(
        name=server.settings.qualified("pi_timeseries_live_sensor"),
        minimum_interval_seconds=SENSOR_INTERVAL_S,
        default_status=dg.DefaultSensorStatus.STOPPED,
        required_resource_keys={LAKEHOUSE},
    )
    def pi_timeseries_live_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        """Reports each new micro-batch of osipi-stream as a materialization of pi_timeseries_live, and
        alerts (a failed pi_timeseries_live_fresh, logged as an error) when the stream stopped or falls
        behind."""
        table: LakeTable = server.lake(context).table(LIVE_TIMESERIES.name)
        after = int(context.cursor) if context.cursor else None
        commits = stream_commits(table, after)
        events: list[dg.AssetMaterialization | dg.AssetCheckEvaluation] = [
            dg.AssetMaterialization(asset_key=asset_key, metadata=_commit_metadata(c)) for c in commits
        ]
        last = commits[-1] if commits else (stream_commits(table, None, limit=20) or [None])[-1]
        freshness = _freshness(last, stream.stale_seconds)
        if not freshness["passed"]:
            context.log.error(f"pi_timeseries_live: {freshness['description']}")
        events.append(
            dg.AssetCheckEvaluation(
                asset_key=asset_key,
                check_name=CHECK_NAME,
                passed=freshness["passed"],
                severity=freshness["severity"],
                description=freshness["description"],
                metadata=freshness["metadata"],
            )
        )
        cursor = str(commits[-1]["version"]) if commits else context.cursor
        return dg.SensorResult(asset_events=events, cursor=cursor)

    return pi_timeseries_live_sensor


def _commit_metadata(commit: dict) -> dict[str, object]:
    metrics = commit.get("operationMetrics", {})
    metadata: dict[str, object] = {
        "delta_version": int(commit["version"]),
        "batch_version": int(commit[BATCH_KEY]),
        "rows": int(metrics.get("num_added_rows", commit.get("osipi.rows", 0))),
        "streamed_rows": int(commit.get("osipi.streamed_rows", 0)),
        "committed_at": dg.TimestampMetadataValue(commit["timestamp"] / 1000),
    }
    for name in ("p50", "p95", "p99", "max"):
        value = commit.get(f"osipi.latency_{name}_s")
        if value is not None:
            metadata[f"latency_{name}_s"] = float(value)
    if "osipi.paused" in commit:  # back-pressure: reading from the channels paused since the previous commit
        metadata["paused"] = int(commit["osipi.paused"])
        metadata["paused_s"] = float(commit["osipi.paused_s"])
    return metadata


def _freshness(last: dict | None, stale_seconds: int) -> dict:
    """The check's outcome for the last micro-batch commit (None: the stream never committed)."""
    if last is None:
        return _outcome(False, "osipi-stream never committed to the table: is it running?", {})
    age_s = time.time() - last["timestamp"] / 1000
    p95 = float(last.get("osipi.latency_p95_s", 0.0))
    metadata = {"seconds_since_last_commit": round(age_s, 1), "last_p95_latency_s": p95}
    limit = f"(> {stale_seconds} s)"
    if age_s > stale_seconds:
        return _outcome(False, f"no commit for {age_s:.0f} s {limit}: the stream stopped", metadata)
    if p95 > stale_seconds:
        return _outcome(False, f"p95 latency {p95:.0f} s {limit}: the stream falls behind", metadata)
    return _outcome(True, f"last commit {age_s:.0f} s ago, p95 latency {p95:.1f} s", metadata)


def _outcome(passed: bool, description: str, metadata: dict) -> dict:
    return {
        "passed": passed,
        "severity": dg.AssetCheckSeverity.WARN,
        "description": description,
        "metadata": metadata,
    }
