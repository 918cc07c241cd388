"""Settings: one validated model per PI server, read from the environment only when asked, with errors that
name the variable (and never repeat a secret); the PIServer component builds a server from YAML."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from datetime import date
from pathlib import Path

import pytest

from osipi_dagster.settings import (
    DEMO_VARIABLES,
    LAKE_VARIABLES,
    PI_SERVER_SECRETS,
    PI_SERVER_VARIABLES,
    STREAM_VARIABLES,
    AuthMode,
    PIServerSettings,
    SettingsError,
    lake_from_env,
    pi_server_from_env,
)

REPO = Path(__file__).resolve().parents[1]
SECRET = "s3cr3t-never-shown"


def test_the_embedded_default_is_read_from_the_osipi_variables() -> None:
    env = {
        "OSIPI_PI_BASE_URL": "https://pi.example.com/piwebapi/",
        "OSIPI_PI_AUTH": "basic",
        "OSIPI_PI_USERNAME": "CORP\\svc",
        "OSIPI_PI_PASSWORD": SECRET,
        "OSIPI_PI_VERIFY_TLS": "off",
        "OSIPI_TAG_SHARDS": " 4 ",
        "OSIPI_START_DATE": "2023-06-01",
        "OSIPI_POINT_INCLUDE": "Plant1.*, ,Plant2.*",
        "OSIPI_OVERLAP_MINUTES": "",  # empty counts as unset
    }
    server = pi_server_from_env(env)
    assert server.base_url == "https://pi.example.com/piwebapi"
    assert server.auth is AuthMode.BASIC and server.username == "CORP\\svc"
    assert server.password_env_var == "OSIPI_PI_PASSWORD"  # the variable's name, never its value
    assert SECRET not in repr(server)
    assert (server.verify_tls, server.tag_shards, server.start_date) == (False, 4, date(2023, 6, 1))
    assert server.point_include == ("Plant1.*", "Plant2.*")
    assert server.overlap_minutes == 60
    assert pi_server_from_env({}) == PIServerSettings()
    assert lake_from_env({"OSIPI_LAKE_ROOT": "s3://bucket/lake"}).root == "s3://bucket/lake"


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("OSIPI_TAG_SHARDS", "0", "OSIPI_TAG_SHARDS='0': Input should be greater than or equal to 1"),
        (
            "OSIPI_TAG_SHARDS",
            "١٢",
            "OSIPI_TAG_SHARDS='١٢': must be a whole number written with the digits 0-9",
        ),
        ("OSIPI_TAG_SHARDS", "1_000", "must be a whole number written with the digits 0-9"),
        ("OSIPI_OVERLAP_MINUTES", "-5", "OSIPI_OVERLAP_MINUTES='-5': must be a whole number"),
        ("OSIPI_CLOSE_DAY_HOUR", "24", "OSIPI_CLOSE_DAY_HOUR='24': Input should be less than or equal to 23"),
        ("OSIPI_START_DATE", "yesterday", "OSIPI_START_DATE='yesterday'"),
        ("OSIPI_PI_VERIFY_TLS", "fasle", "OSIPI_PI_VERIFY_TLS='fasle': must be true or false"),
        ("OSIPI_PI_AUTH", "ntlm", "OSIPI_PI_AUTH='ntlm'"),
        ("OSIPI_PI_READ_MODE", "fast", "OSIPI_PI_READ_MODE='fast'"),
        (
            "OSIPI_PI_BASE_URL",
            "pi.example.com/piwebapi",
            "OSIPI_PI_BASE_URL: must be an http:// or https:// URL",
        ),
        ("OSIPI_PI_BASE_URL", "ftp://pi/piwebapi", "OSIPI_PI_BASE_URL: must be an http:// or https:// URL"),
        ("OSIPI_CATALOG_MAX_REMOVED_SHARE", "1.5", "OSIPI_CATALOG_MAX_REMOVED_SHARE='1.5'"),
    ],
)
def test_a_bad_variable_is_named_with_what_to_do(variable: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=r"docs/CONFIGURATION\.md") as error:
        pi_server_from_env({variable: value})
    assert message in str(error.value)


def test_credentials_in_the_base_url_are_refused_without_repeating_them() -> None:
    """Credentials in the URL would be stored in clear in every run's configuration (the job snapshot)."""
    with pytest.raises(SettingsError) as error:
        pi_server_from_env({"OSIPI_PI_BASE_URL": f"https://svc:{SECRET}@pi.example.com/piwebapi"})
    assert "must not embed credentials" in str(error.value) and "OSIPI_PI_PASSWORD" in str(error.value)
    assert SECRET not in str(error.value) and SECRET not in repr(error.value)
    with pytest.raises(ValueError) as explicit:
        PIServerSettings(base_url=f"https://svc:{SECRET}@pi.example.com/piwebapi")
    assert SECRET not in str(explicit.value)


def test_flags_accept_the_usual_spellings() -> None:
    for text, flag in [
        ("true", True),
        ("False", False),
        ("1", True),
        ("0", False),
        ("yes", True),
        ("off", False),
    ]:
        assert pi_server_from_env({"OSIPI_PI_COMPRESS": text}).compress is flag


def test_every_variable_is_documented() -> None:
    documented = (REPO / "docs" / "CONFIGURATION.md").read_text()
    variables = {
        **PI_SERVER_VARIABLES,
        **PI_SERVER_SECRETS,
        **LAKE_VARIABLES,
        **DEMO_VARIABLES,
        **STREAM_VARIABLES,
    }
    assert [name for name in variables if f"`{name}`" not in documented] == []


def test_the_component_builds_one_prefixed_server_per_yaml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two PIServer instances in a defs folder: the default keeps plain names, the other is prefixed, and
    its secret stays a reference to an environment variable."""
    package = tmp_path / "two_sites" / "defs"
    for site, attributes in {
        "embedded": "from_environment: true",
        "site_b": """
            name: site_b
            base_url: "{{ env('SITE_B_URL', 'https://pi-b.example.com/piwebapi') }}"
            auth: basic
            username: svc
            password_env_var: SITE_B_PASSWORD
            tag_shards: 4
            start_date: "2024-06-01"
        """,
    }.items():
        (package / site).mkdir(parents=True)
        (package / site / "defs.yaml").write_text(
            "type: osipi_dagster.defs.pi_server.PIServer\nattributes:\n"
            + textwrap.indent(textwrap.dedent(attributes).strip(), "  ")
            + "\n"
        )
    (package.parent / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "lakehouse.py").write_text("from osipi_dagster.defs.lakehouse import lakehouse\n")
    # Loaded in a fresh interpreter, as a code server loads a code location.
    env = {k: v for k, v in os.environ.items() if not k.startswith("OSIPI_")}
    env |= {"OSIPI_TAG_SHARDS": "2", "SITE_B_PASSWORD": SECRET, "PYTHONPATH": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", _DESCRIBE_DEFS, str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.splitlines()[-1])

    assert {"pi_timeseries", "site_b/pi_timeseries", "pi_points", "site_b/pi_points"} <= set(found["assets"])
    assert found["resources"] == ["lakehouse", "pi", "site_b__pi"]
    assert found["site_b_password"] == "SITE_B_PASSWORD"  # a reference, never the value
    assert SECRET not in done.stdout + done.stderr
    assert found["shards"] == {"pi_timeseries": 2, "site_b/pi_timeseries": 4}  # the default's from the env
    assert found["site_b_table"] == "bronze.site_b__pi_timeseries"
    assert "site_b__pi_timeseries_close_day" in found["schedules"]


_DESCRIBE_DEFS = """
import json, sys
from pathlib import Path
import dagster as dg
import two_sites.defs

defs = dg.components.load_defs(two_sites.defs, project_root=Path(sys.argv[1]))
timeseries = {
    key: defs.get_assets_def(dg.AssetKey.from_user_string(key))
    for key in ("pi_timeseries", "site_b/pi_timeseries")
}
print(json.dumps({
    "assets": sorted(k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()),
    "resources": sorted(defs.resources),
    "site_b_password": defs.resources["site_b__pi"].password.env_var_name,
    "shards": {
        key: len(asset.partitions_def.get_partitions_def_for_dimension("shard").get_partition_keys())
        for key, asset in timeseries.items()
    },
    "site_b_table": timeseries["site_b/pi_timeseries"].specs_by_key[
        dg.AssetKey(["site_b", "pi_timeseries"])
    ].metadata["dagster/table_name"],
    "schedules": [schedule.name for schedule in defs.schedules],
}))
"""
