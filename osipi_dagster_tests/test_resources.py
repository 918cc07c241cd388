"""The resources: secrets stay references to environment variables, never values in logs or reprs."""

from __future__ import annotations

import dagster as dg
import pytest
from dagster_deltalake import S3Config

from osipi_dagster.defs.resources import DeltaLakehouseResource, PIWebAPIResource, pi_resource
from osipi_dagster.settings import pi_server_from_env
from osipi_dagster_tests.definitions_helpers import pi_af, pi_timeseries

SECRET = "s3cr3t-never-shown"


def test_secrets_from_the_environment_are_env_var_references(monkeypatch: pytest.MonkeyPatch) -> None:
    """The default server's resource passes secrets as dg.EnvVar, so the UI shows the variable's name only."""
    monkeypatch.setenv("OSIPI_PI_AUTH", "basic")
    monkeypatch.setenv("OSIPI_PI_USERNAME", "piuser")
    monkeypatch.setenv("OSIPI_PI_PASSWORD", SECRET)
    monkeypatch.setenv("OSIPI_PI_CLIENT_SECRET", SECRET)
    pi = pi_resource(pi_server_from_env())
    assert isinstance(pi, PIWebAPIResource)
    assert pi.password == dg.EnvVar("OSIPI_PI_PASSWORD")
    assert pi.client_secret == dg.EnvVar("OSIPI_PI_CLIENT_SECRET")
    assert pi.verify_tls is True


def test_resource_repr_masks_secrets() -> None:
    """A resolved resource (what a traceback or a log line would print) never shows a secret."""
    pi = PIWebAPIResource(base_url="http://pi", auth="basic", username="u", password=SECRET, token=SECRET)
    assert SECRET not in repr(pi)
    assert SECRET not in str(pi)


def test_missing_credentials_name_the_fields() -> None:
    """Basic auth without a password is a clear configuration error, before any request."""
    pi = PIWebAPIResource(base_url="http://pi", auth="basic", username="u")
    with pytest.raises(dg.DagsterInvalidConfigError, match="needs password"):
        pi.setup_for_execution(dg.build_init_resource_context())


def test_a_run_with_basic_auth_never_logs_the_password(make_mock, tmp_path, monkeypatch) -> None:
    """Materialize against a mock that demands Basic auth: the run succeeds and its whole event log
    (what the UI shows) never contains the password."""
    mock = make_mock(auth="basic", users=f"piuser:{SECRET}")
    monkeypatch.setenv("TEST_PI_PASSWORD", SECRET)
    resources = {
        "pi": PIWebAPIResource(
            base_url=mock.api, auth="basic", username="piuser", password=dg.EnvVar("TEST_PI_PASSWORD")
        ),
        "lakehouse": DeltaLakehouseResource(root=str(tmp_path)),
    }
    with dg.instance_for_test() as instance:
        result = dg.materialize([pi_af], resources=resources, instance=instance)
        assert result.success
        logs = instance.all_logs(result.run_id)
        run = instance.get_run_by_id(result.run_id)
    assert logs
    assert all(SECRET not in str(entry) for entry in logs)
    assert SECRET not in str(run)


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


def test_an_unwritable_lake_root_is_named_before_anything_runs(mock_pi, tmp_path) -> None:
    """A lake root that cannot be created (here: below a regular file; permissions alone would not stop
    root, which CI runs as) fails the run before anything is read, naming the folder, not as a missing
    upstream table."""
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("")
    resources = {
        "pi": PIWebAPIResource(base_url=mock_pi.api),
        "lakehouse": DeltaLakehouseResource(root=str(blocker / "lake")),
    }
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [pi_timeseries],
            resources=resources,
            instance=instance,
            partition_key="2025-01-05|s02",
            raise_on_error=False,
        )
    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type_value == "RESOURCE_INIT_FAILURE"]
    message = str(failure.event_specific_data.error)
    assert f"The lakehouse root {blocker / 'lake'} cannot be written" in message
    assert "OSIPI_LAKE_ROOT" in message and "materialize the pi_points asset first" not in message
