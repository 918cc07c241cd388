"""A run interrupted while it reads (SIGINT, or SIGTERM as Dagster's run termination and Kubernetes send it)
stops within seconds, commits nothing and is recorded as failed.

The run is a real Dagster materialization of ``pi_timeseries`` in a real process, on a real instance, reading
the mock through a real HTTP proxy that slows every recorded read down, so that the whole partition would
take minutes. The test waits until the run is reading, sends the signal, and checks the process, the
instance and the Delta tables.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import dagster as dg
import pytest

from osipi_dagster.lake import Lakehouse
from osipi_dagster.mock.server import RunningMock
from osipi_dagster_tests.conftest import TEST_NOW
from osipi_dagster_tests.timeseries_helpers import build_catalog
from osipi_dagster_tests.untrusted_server import Answer, Exchange, Proxy

NOW = datetime.fromisoformat(TEST_NOW.replace("Z", "+00:00"))
PARTITION = "2025-01-05|s02"
SLOW_S = 0.5  # every recorded read takes this long: the partition's ~80 requests would take a minute

_RUN = """
import sys
import dagster as dg
from osipi_dagster.defs.resources import DeltaLakehouseResource, PIWebAPIResource
from osipi_dagster_tests.definitions_helpers import pi_timeseries

api, root, partition = sys.argv[1:]
resources = {
    "pi": PIWebAPIResource(base_url=api, compress=False, values_per_request=2_000, concurrency=1),
    "lakehouse": DeltaLakehouseResource(root=root),
}
print("materializing", flush=True)
result = dg.materialize(
    [pi_timeseries], resources=resources, partition_key=partition, instance=dg.DagsterInstance.get(),
    raise_on_error=False,
)
print("finished", result.success, flush=True)
"""


@pytest.mark.parametrize("signal_number", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_run_stops_reading_and_commits_nothing(
    mock_pi: RunningMock, tmp_path: Path, signal_number: int
) -> None:
    lake = Lakehouse(str(tmp_path / "lake"))
    build_catalog(mock_pi.api, lake, NOW)
    home = tmp_path / "dagster_home"
    home.mkdir()

    def slow_recorded(exchange: Exchange, answer: Answer) -> Answer:
        if "/recorded" in exchange.route:
            time.sleep(SLOW_S)
        return answer

    proxy = Proxy(mock_pi.url, rewrite=slow_recorded)
    process = subprocess.Popen(
        [sys.executable, "-c", _RUN, proxy.api, lake.root, PARTITION],
        env={**os.environ, "DAGSTER_HOME": str(home)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while sum("/recorded" in e.route for e in proxy.exchanges) < 3:
            assert process.poll() is None, process.communicate()[0]
            assert time.monotonic() < deadline, "the run never started reading"
            time.sleep(0.1)

        process.send_signal(signal_number)
        interrupted = time.monotonic()
        output = process.communicate(timeout=60)[0]
        stopped_after = time.monotonic() - interrupted
        requests_at_exit = len(proxy.exchanges)
        time.sleep(2 * SLOW_S)
    finally:
        if process.poll() is None:
            process.kill()
        proxy.close()

    assert stopped_after < 10, f"the run took {stopped_after:.1f} s to stop:\n{output[-3000:]}"
    assert "finished True" not in output
    assert len(proxy.exchanges) == requests_at_exit, "requests went on after the run stopped"
    timeseries, watermarks = lake.table("bronze.pi_timeseries"), lake.table("checkpoints.pi_watermarks")
    assert not timeseries.exists() or timeseries.load().to_pyarrow_table().num_rows == 0
    assert not watermarks.exists()
    with dg.DagsterInstance.from_config(str(home)) as instance:
        (run,) = instance.get_runs()
        assert run.status in (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)
