"""Commit safety on S3 by default: conditional writes are turned on explicitly, and every setting that
would let two writers commit the same table version is refused, wherever it comes from (storage options,
dagster-deltalake's ``S3Config``, delta-rs's own environment variables)."""

from __future__ import annotations

import pytest
from dagster_deltalake import S3Config

from osipi_dagster.defs.resources import DeltaLakehouseResource
from osipi_dagster.lake import Lakehouse
from osipi_dagster.lake.errors import UnsafeStorageOptionsError
from osipi_dagster.settings import SettingsError, lake_from_env

UNSAFE = [
    ("AWS_S3_ALLOW_UNSAFE_RENAME", "true"),
    ("aws_s3_allow_unsafe_rename", "1"),
    ("allow_unsafe_rename", "True"),  # dagster-deltalake's S3Config spelling
    ("aws_conditional_put", "disabled"),
    ("AWS_CONDITIONAL_PUT", "Disabled"),
    ("conditional_put", "something-else"),
    ("AWS_S3_LOCKING_PROVIDER", "dynamodb"),
]


def test_s3_tables_commit_with_conditional_writes_whatever_the_environment_says() -> None:
    table = Lakehouse("s3://bucket/lake", {"aws_region": "eu-west-1"}).table("bronze.pi_timeseries")

    assert table.storage_options == {"aws_region": "eu-west-1"}  # what was given, unchanged
    # Given explicitly, these win over delta-rs's own reading of AWS_CONDITIONAL_PUT and friends.
    assert table.delta_options == {
        "aws_region": "eu-west-1",
        "aws_conditional_put": "etag",
        "AWS_S3_ALLOW_UNSAFE_RENAME": "false",
    }
    given = {"AWS_CONDITIONAL_PUT": "etag", "allow_unsafe_rename": "false"}
    assert Lakehouse("s3a://bucket/lake", given).table("bronze.pi_points").delta_options == given


@pytest.mark.parametrize(
    "root", ["/tmp/lake", "abfss://c@account.dfs.core.windows.net/lake", "gs://bucket/lake", "file:///tmp/l"]
)
def test_other_stores_get_their_options_unchanged(root: str) -> None:
    """Azure, GCS and local files refuse a second writer of a version natively."""
    options = {"some_option": "x"}
    assert Lakehouse(root, options).table("bronze.pi_points").delta_options == options


@pytest.mark.parametrize(("key", "value"), UNSAFE)
def test_unsafe_s3_settings_are_refused_naming_the_setting(key: str, value: str) -> None:
    with pytest.raises(UnsafeStorageOptionsError, match=rf"{key}={value!r}.*refused") as error:
        Lakehouse("s3://bucket/lake", {key: value})
    assert "conditional writes" in str(error.value) or "conditional_put" in str(error.value)


def test_an_unsafe_s3_config_fails_the_lakehouse_resource() -> None:
    unsafe = DeltaLakehouseResource(root="s3://bucket/lake", storage=S3Config(allow_unsafe_rename=True))
    with pytest.raises(UnsafeStorageOptionsError, match="allow_unsafe_rename='True'"):
        unsafe.lakehouse()
    safe = DeltaLakehouseResource(root="s3://bucket/lake", storage=S3Config(allow_unsafe_rename=False))
    assert safe.table("bronze.pi_points").delta_options["aws_conditional_put"] == "etag"


@pytest.mark.parametrize(("variable", "value"), [(k, v) for k, v in UNSAFE if k.isupper()])
def test_an_unsafe_variable_is_refused_when_the_code_location_loads(variable: str, value: str) -> None:
    with pytest.raises(SettingsError, match=rf"LakeSettings.*{variable}={value!r}"):
        lake_from_env({"OSIPI_LAKE_ROOT": "s3://bucket/lake", variable: value})
    # The same variable does not concern a local lake, and a safe value is accepted.
    assert lake_from_env({"OSIPI_LAKE_ROOT": "data/lake", variable: value}).root == "data/lake"
    assert lake_from_env({"OSIPI_LAKE_ROOT": "s3://bucket/lake", "AWS_CONDITIONAL_PUT": "etag"})
