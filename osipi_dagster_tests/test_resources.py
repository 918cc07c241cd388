"""The resources: secrets stay references to environment variables, never values in logs or reprs."""

from __future__ import annotations

import dagster as dg
import pytest

from osipi_dagster.assets.af import pi_af
from osipi_dagster.resources import DeltaLakehouseResource, PIWebAPIResource, resources_from_env

SECRET = "s3cr3t-never-shown"


def test_secrets_from_the_environment_are_env_var_references(monkeypatch: pytest.MonkeyPatch) -> None:
    """resources_from_env passes secrets as dg.EnvVar, so the UI shows the variable's name only."""
    monkeypatch.setenv("OSIPI_PI_AUTH", "basic")
    monkeypatch.setenv("OSIPI_PI_USERNAME", "piuser")
    monkeypatch.setenv("OSIPI_PI_PASSWORD", SECRET)
    monkeypatch.setenv("OSIPI_PI_CLIENT_SECRET", SECRET)
    pi = resources_from_env()["pi"]
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
