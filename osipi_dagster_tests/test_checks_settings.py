"""The thresholds and severities of the checks are settings like any other: ``OSIPI_CHECK_*`` variables for
the embedded default, attributes of a ``PIServer`` component's YAML for another site; a bad value is
refused naming the variable; a severity decides whether the check is blocking."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import dagster as dg
import pytest

from osipi_dagster.settings import CheckSeverity, SettingsError, pi_server_from_env


def test_the_check_variables_set_the_thresholds_and_severities() -> None:
    settings = pi_server_from_env(
        {
            "OSIPI_CHECK_NULL_OR_BAD_MAX_SHARE": "0.2",
            "OSIPI_CHECK_FRESHNESS_MINUTES": "15",
            "OSIPI_CHECK_VOLUME_MAX_Z": "4.5",
            "OSIPI_CHECK_DUPLICATES_SEVERITY": "WARN",
            "OSIPI_CHECK_CLOCK_SKEW_SEVERITY": " error ",
        }
    )

    assert (settings.check_null_or_bad_max_share, settings.check_freshness_minutes) == (0.2, 15)
    assert settings.check_volume_max_z == 4.5
    assert settings.check_duplicates_severity is CheckSeverity.WARN
    assert settings.check_clock_skew_severity is CheckSeverity.ERROR
    assert pi_server_from_env({}).check_good_quality_min_share == 0.9


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (
            "OSIPI_CHECK_SCHEMA_SEVERITY",
            "fatal",
            "OSIPI_CHECK_SCHEMA_SEVERITY='fatal': Input should be 'warn' or",
        ),
        ("OSIPI_CHECK_GOOD_QUALITY_MIN_SHARE", "90", "OSIPI_CHECK_GOOD_QUALITY_MIN_SHARE='90'"),
        ("OSIPI_CHECK_FRESHNESS_MINUTES", "0", "OSIPI_CHECK_FRESHNESS_MINUTES='0'"),
        ("OSIPI_CHECK_VOLUME_MAX_Z", "-1", "OSIPI_CHECK_VOLUME_MAX_Z='-1'"),
    ],
)
def test_a_bad_check_variable_is_named(variable: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=r"docs/CONFIGURATION\.md") as error:
        pi_server_from_env({variable: value})
    assert message in str(error.value)


def test_a_sites_yaml_sets_its_severities_and_an_error_check_is_blocking(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second site whose YAML makes ``good_quality`` an error and ``duplicates`` a warning: its checks
    are prefixed with its name, ``good_quality`` is blocking and ``duplicates`` is not; the default
    server keeps the defaults (``duplicates`` and ``schema`` blocking)."""
    package = tmp_path / "sites" / "defs"
    for site, attributes in {
        "embedded": "from_environment: true",
        "site_b": """
            name: site_b
            check_good_quality_severity: error
            check_good_quality_min_share: 0.95
            check_duplicates_severity: warn
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
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in [name for name in os.environ if name.startswith("OSIPI_")]:
        monkeypatch.delenv(name)
    import sites.defs

    defs = dg.components.load_defs(sites.defs, project_root=tmp_path)

    graph = defs.resolve_asset_graph()
    blocking = {
        (key.asset_key.to_user_string(), key.name)
        for key in graph.asset_check_keys
        if graph.get(key).blocking and key.asset_key.path[-1] == "pi_timeseries"
    }
    assert blocking == {
        ("pi_timeseries", "duplicates"),
        ("pi_timeseries", "schema"),
        ("site_b/pi_timeseries", "good_quality"),
        ("site_b/pi_timeseries", "schema"),
    }
