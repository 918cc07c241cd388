"""``pi_timeseries_live_sensor`` evaluated as the daemon does (``evaluate_tick``) on a real live table: each
micro-batch commit becomes one runless materialization with its figures, and the freshness check fails when
the stream stopped or falls behind."""

from __future__ import annotations

import time
from pathlib import Path

import dagster as dg
import pyarrow as pa

from osipi_dagster.contract import RECORDED_SCHEMA, to_ns
from osipi_dagster.defs.pi_server.live import CHECK_NAME, live_sensor
from osipi_dagster.defs.pi_server.wiring import ServerWiring
from osipi_dagster.defs.resources import DeltaLakehouseResource
from osipi_dagster.lake import Lakehouse
from osipi_dagster.lake.live import STREAM_ROWS_SCHEMA, append_batch, lake_rows
from osipi_dagster.lake.schemas import LIVE_TIMESERIES
from osipi_dagster.settings import PIServerSettings, StreamSettings


def _commit(root: Path, version: int, p95: float) -> None:
    stamp = to_ns("2025-01-06T10:00:00Z") + version
    values = {name: [None] for name in RECORDED_SCHEMA.names}
    values |= {"web_id": ["A"], "timestamp": [stamp], "value": [1.0], "received_at": [stamp]}
    values |= {flag: [False] for flag in ("is_system", "questionable", "substituted", "annotated")}
    values["good"] = [True]
    rows = pa.Table.from_pydict(values, schema=STREAM_ROWS_SCHEMA)
    table = Lakehouse(str(root)).table(LIVE_TIMESERIES.name)
    metadata = {"osipi.latency_p95_s": str(p95), "osipi.streamed_rows": "1"}
    metadata |= {"osipi.paused": str(version - 1), "osipi.paused_s": f"{version - 1:.3f}"}
    append_batch(table, lake_rows(rows, version), "test", version, metadata)


def _tick(sensor: dg.SensorDefinition, root: Path, cursor: str | None) -> tuple[list, str | None]:
    with dg.build_sensor_context(
        instance=dg.DagsterInstance.ephemeral(),
        cursor=cursor,
        resources={"lakehouse": DeltaLakehouseResource(root=str(root))},
    ) as context:
        result = sensor.evaluate_tick(context)
    return list(result.asset_events), result.cursor


def test_each_commit_is_reported_once_and_staleness_alerts(tmp_path: Path) -> None:
    server = ServerWiring(PIServerSettings())
    sensor = live_sensor(server, StreamSettings(stale_seconds=60))
    events, cursor = _tick(sensor, tmp_path, None)
    assert [type(e) for e in events] == [dg.AssetCheckEvaluation]
    assert events[0].passed is False and "never committed" in (events[0].description or "")

    _commit(tmp_path, 1, 0.8)
    _commit(tmp_path, 2, 0.9)
    events, cursor = _tick(sensor, tmp_path, cursor)
    materializations = [e for e in events if isinstance(e, dg.AssetMaterialization)]
    assert [m.metadata["batch_version"].value for m in materializations] == [1, 2]
    assert materializations[1].metadata["latency_p95_s"].value == 0.9
    paused = [(m.metadata["paused"].value, m.metadata["paused_s"].value) for m in materializations]
    assert paused == [(0, 0.0), (1, 1.0)]  # back-pressure since the previous commit
    assert materializations[0].asset_key == dg.AssetKey("pi_timeseries_live")
    check = events[-1]
    assert (check.check_name, check.passed) == (CHECK_NAME, True)

    events, cursor = _tick(sensor, tmp_path, cursor)  # nothing new: only the check
    assert [type(e) for e in events] == [dg.AssetCheckEvaluation]

    _commit(tmp_path, 3, 600.0)  # values committed ten minutes after their time: behind
    events, _ = _tick(sensor, tmp_path, cursor)
    assert events[-1].passed is False and "falls behind" in (events[-1].description or "")
    stale = live_sensor(server, StreamSettings(stale_seconds=1))
    _commit(tmp_path, 4, 0.5)
    time.sleep(1.5)
    events, _ = _tick(stale, tmp_path, None)
    assert events[-1].passed is False and "stopped" in (events[-1].description or "")
