"""The ``databricks`` compute target, on the wire: ``PipesDatabricksClient`` submits a one-time job run to a
stand-in workspace (``databricks_standin``: a real HTTP server that runs the task as a local process), the
task writes Delta and reports back through DBFS, and the tables are registered in Unity Catalog.

Checked: the submitted payload (cluster, library, environment; secrets only as Databricks secret
references, never a value anywhere on the wire), the Delta slices against the mock's truth, the Unity
Catalog names in the asset metadata and the tables registered, and a failing run failing the Dagster run
with the remote error.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from osipi_dagster.mock.server import RunningMock
from osipi_dagster.settings import PIServerSettings, SettingsError, pi_server_from_env
from osipi_dagster.unity_catalog import uc_columns
from osipi_dagster_tests.conftest import TEST_NOW
from osipi_dagster_tests.databricks_standin import DatabricksStandin, serve_standin
from osipi_dagster_tests.pipes_helpers import (
    DAY,
    SHARDS,
    Materializer,
    assert_day_matches_mock,
    assert_event_frames_match_mock,
    failure_of,
    mock_now,
    partition_metadata,
)

TOKEN = "dapi-standin-token-0123456789"
PI_USER, PI_PASSWORD = "svc_pi", "pi-password-never-on-the-wire"
LIBRARY = "dbfs:/FileStore/wheels/osipi_dagster-0.1.0-py3-none-any.whl"


@pytest.fixture
def standin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[DatabricksStandin]:
    # The orchestrator's environment: Dagster resolves both EnvVars from it at run time.
    monkeypatch.setenv("OSIPI_TEST_DATABRICKS_TOKEN", TOKEN)
    monkeypatch.setenv("OSIPI_TEST_PI_PASSWORD", PI_PASSWORD)
    with serve_standin(tmp_path / "workspace", TOKEN, {("osipi", "pi-password"): PI_PASSWORD}) as running:
        running.catalogs = ("osipi",)
        yield running
        running.wait_for_runs()


@pytest.fixture
def basic_mock(make_mock) -> RunningMock:
    return make_mock(tags=12, auth="basic", users=f"{PI_USER}:{PI_PASSWORD}")


@pytest.fixture
def truth_mock(make_mock) -> RunningMock:
    """The same PI server without authentication (the mock's data is a function of its seed, points and
    clock), for the truth helpers, which read it with plain requests."""
    return make_mock(tags=12)


def databricks_server(mock: RunningMock, standin: DatabricksStandin, **overrides) -> PIServerSettings:
    settings = {
        "base_url": mock.api,
        "auth": "basic",
        "username": PI_USER,
        "password_env_var": "OSIPI_TEST_PI_PASSWORD",
        "compress": False,
        "tag_shards": 2,
        "compute": "databricks",
        "databricks_host": standin.host,
        "databricks_token_env_var": "OSIPI_TEST_DATABRICKS_TOKEN",
        "databricks_catalog": "osipi",
        "databricks_node_type": "Standard_D4ds_v5",
        "databricks_library": LIBRARY,
        "databricks_secrets": ("OSIPI_TEST_PI_PASSWORD=osipi/pi-password",),
        "databricks_poll_seconds": 0.2,
    }
    return PIServerSettings(**{**settings, **overrides})


def test_a_databricks_job_run_writes_the_mocks_values_and_registers_the_tables(
    basic_mock: RunningMock, truth_mock: RunningMock, standin: DatabricksStandin, tmp_path: Path
) -> None:
    server = databricks_server(basic_mock, standin)
    with dg.instance_for_test() as instance:
        # A URI, as the object store both sides reach would be (the stand-in's cluster is this machine).
        run = Materializer(server, (tmp_path / "lake").as_uri(), instance)
        run.catalog()  # in the Dagster step, as always
        timeseries, event_frames = run.timeseries_day(), run.event_frames_day()
        assert timeseries.success and event_frames.success
    standin.wait_for_runs()

    assert len(standin.submitted) == 2
    for payload, job in zip(standin.submitted, ("timeseries", "event_frames"), strict=True):
        (task,) = payload["tasks"]
        cluster = task["new_cluster"]
        assert cluster["spark_version"] == "15.4.x-scala2.12"
        assert cluster["node_type_id"] == "Standard_D4ds_v5"
        assert cluster["num_workers"] == 0
        assert cluster["spark_conf"]["spark.databricks.cluster.profile"] == "singleNode"
        environment = cluster["spark_env_vars"]
        assert environment["OSIPI_TEST_PI_PASSWORD"] == "{{secrets/osipi/pi-password}}"
        assert environment["OSIPI_PIPES_TRANSPORT"] == "dbfs"
        assert {"DAGSTER_PIPES_CONTEXT", "DAGSTER_PIPES_MESSAGES"} <= set(environment)
        assert task["libraries"] == [{"whl": LIBRARY}]
        assert task["python_wheel_task"] == {"package_name": "osipi_dagster", "entry_point": "osipi-pipes"}
        assert task["task_key"] == f"osipi_{job}"
    assert_no_secret_on_the_wire(standin)

    lake = run.lake
    assert_day_matches_mock(lake, truth_mock)
    assert_event_frames_match_mock(lake, truth_mock, mock_now(TEST_NOW))

    # Unity Catalog: the asset definitions carry the three-part names, and the tables are registered.
    assets = {spec.key.to_user_string(): spec for spec in run.defs.resolve_all_asset_specs()}
    assert assets["pi_timeseries"].metadata["dagster/table_name"] == "osipi.bronze.pi_timeseries"
    assert assets["pi_points"].metadata["dagster/table_name"] == "osipi.bronze.pi_points"
    registered = standin.tables["osipi.bronze.pi_timeseries"]
    assert registered["table_type"] == "EXTERNAL" and registered["data_source_format"] == "DELTA"
    assert registered["storage_location"] == lake.table("bronze.pi_timeseries").uri
    stored_schema = json.loads(lake.table("bronze.pi_timeseries").load().schema().to_json())
    assert [c["name"] for c in registered["columns"]] == [f["name"] for f in stored_schema["fields"]]
    partitioned = {c["name"]: c["partition_index"] for c in registered["columns"] if "partition_index" in c}
    assert partitioned == {"partition_date": 0, "tag_shard": 1}
    assert {"osipi.bronze", "osipi.checkpoints"} <= set(standin.schemas)
    assert {
        "osipi.bronze.pi_points",
        "osipi.bronze.pi_event_frames",
        "osipi.checkpoints.pi_watermarks",
    } <= set(standin.tables)

    metadata = partition_metadata(timeseries)
    assert sorted(metadata) == [f"{DAY.isoformat()}|{shard}" for shard in SHARDS]
    for values in metadata.values():
        assert values["Databricks Job Run ID"] == "1"
        assert "osipi.bronze.pi_timeseries" in values["unity_catalog_tables"]
        assert values["dagster/row_count"] > 0


def assert_no_secret_on_the_wire(standin: DatabricksStandin) -> None:
    """Neither the PI password nor the token is in any request body, the Pipes context file included."""
    for request in standin.requests:
        texts = [request.raw]
        if request.path.endswith("/dbfs/put"):
            texts.append(base64.b64decode(request.body["contents"]).decode())
        for text in texts:
            assert PI_PASSWORD not in text and TOKEN not in text, request.path


def test_a_failing_databricks_run_fails_the_dagster_run_with_the_remote_error(
    basic_mock: RunningMock, standin: DatabricksStandin, tmp_path: Path
) -> None:
    """No catalog yet: the task fails on the cluster, the job run ends FAILED, and the Dagster run fails
    with the task's own error (Databricks' state message only says that the workload failed)."""
    server = databricks_server(basic_mock, standin)
    with dg.instance_for_test() as instance:
        run = Materializer(server, (tmp_path / "lake").as_uri(), instance)
        description, metadata = failure_of(run.timeseries_day())
    standin.wait_for_runs()
    assert standin.runs[1].state()["result_state"] == "FAILED"
    assert "LookupError" in description and "materialize the pi_points asset first" in description
    assert metadata["partitions_written_before_failure"] == 0
    assert not standin.tables


def test_a_secret_without_a_databricks_secret_is_refused_before_anything_is_submitted(
    basic_mock: RunningMock, standin: DatabricksStandin, tmp_path: Path
) -> None:
    server = databricks_server(basic_mock, standin, databricks_secrets=())
    with dg.instance_for_test() as instance:
        run = Materializer(server, (tmp_path / "lake").as_uri(), instance)
        description, _ = failure_of(run.event_frames_day())
    assert "OSIPI_TEST_PI_PASSWORD" in description and "OSIPI_DATABRICKS_SECRETS" in description
    assert PI_PASSWORD not in description
    assert not standin.runs


def test_a_cluster_that_cannot_start_fails_the_dagster_run_with_databricks_message(
    basic_mock: RunningMock, standin: DatabricksStandin, tmp_path: Path
) -> None:
    """The workspace has no such secret: the job run ends INTERNAL_ERROR before any task runs."""
    server = databricks_server(basic_mock, standin, databricks_secrets=("OSIPI_TEST_PI_PASSWORD=osipi/gone",))
    with dg.instance_for_test() as instance:
        run = Materializer(server, (tmp_path / "lake").as_uri(), instance)
        description, _ = failure_of(run.event_frames_day())
    assert "Secret does not exist with scope: osipi and key: gone" in description
    assert standin.runs[1].process is None


def test_a_local_lake_root_is_refused_before_anything_is_submitted(
    basic_mock: RunningMock, standin: DatabricksStandin, tmp_path: Path
) -> None:
    with dg.instance_for_test() as instance:
        run = Materializer(databricks_server(basic_mock, standin), str(tmp_path / "lake"), instance)
        description, _ = failure_of(run.event_frames_day())
    assert "is a local folder" in description and "OSIPI_LAKE_ROOT" in description
    assert not standin.runs


def test_databricks_settings_are_checked_when_the_code_location_loads() -> None:
    with pytest.raises(SettingsError, match=r"databricks_host \(OSIPI_DATABRICKS_HOST\).*databricks_library"):
        pi_server_from_env({"OSIPI_COMPUTE": "databricks", "OSIPI_DATABRICKS_NODE_TYPE": "n"})
    with pytest.raises(SettingsError, match="ENV_VAR=scope/key") as error:
        pi_server_from_env({"OSIPI_DATABRICKS_SECRETS": "OSIPI_PI_PASSWORD=hunter2"})
    assert "hunter2" not in str(error.value)


def test_unity_catalog_columns_follow_the_delta_schema() -> None:
    schema = {
        "type": "struct",
        "fields": [
            {"name": "tag_shard", "type": "string", "nullable": False, "metadata": {}},
            {"name": "n", "type": "long", "nullable": True, "metadata": {}},
            {
                "name": "attributes",
                "type": {
                    "type": "map",
                    "keyType": "string",
                    "valueType": "string",
                    "valueContainsNull": True,
                },
                "nullable": True,
                "metadata": {},
            },
            {
                "name": "days",
                "type": {
                    "type": "array",
                    "elementType": {
                        "type": "struct",
                        "fields": [{"name": "date", "type": "date", "nullable": False, "metadata": {}}],
                    },
                    "containsNull": True,
                },
                "nullable": True,
                "metadata": {},
            },
        ],
    }
    columns = uc_columns(schema, partition_by=["tag_shard"])
    assert [(c["name"], c["type_name"], c["type_text"], c["position"]) for c in columns] == [
        ("tag_shard", "STRING", "string", 0),
        ("n", "LONG", "bigint", 1),
        ("attributes", "MAP", "map<string,string>", 2),
        ("days", "ARRAY", "array<struct<date:date>>", 3),
    ]
    assert columns[0]["partition_index"] == 0 and columns[0]["nullable"] is False
    assert json.loads(columns[2]["type_json"]) == schema["fields"][2]
