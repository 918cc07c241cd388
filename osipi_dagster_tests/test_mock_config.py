"""The mock's configuration: a pydantic model that the command line and ``MOCK_PI_*`` variables both feed."""

from __future__ import annotations

from dataclasses import replace

import pytest
from pydantic import ValidationError

from osipi_dagster.mock.config import FaultConfig, MockConfig, parse_args
from osipi_dagster_tests.conftest import TEST_CONFIG


def _exit_message(capsys: pytest.CaptureFixture[str], argv: list[str], environ: dict[str, str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        parse_args(argv, environ)
    assert exit_info.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


def test_a_bad_value_is_refused_wherever_the_config_is_built() -> None:
    """Not only the command line checks values: a config made by a test or by ``replace`` is checked too."""
    with pytest.raises(ValidationError, match="tags"):
        MockConfig(tags=0)
    with pytest.raises(ValidationError, match="auth"):
        replace(TEST_CONFIG, auth="kerberos")
    with pytest.raises(ValidationError, match="error_rate"):
        FaultConfig(error_rate=2)
    with pytest.raises(ValidationError, match="now"):
        MockConfig(now="yesterday-ish")
    assert replace(TEST_CONFIG, port=8123).port == 8123 and TEST_CONFIG.port == 0


def test_errors_name_the_flag_or_the_variable_the_value_came_from(capsys: pytest.CaptureFixture[str]) -> None:
    message = _exit_message(capsys, [], {"MOCK_PI_TAG_COUNT": "0"})
    assert message == "osipi-mock: error: environment variable MOCK_PI_TAG_COUNT must be at least 1 (got '0')"
    message = _exit_message(capsys, ["--tags", "0"], {"MOCK_PI_TAG_COUNT": "5"})
    assert message == "osipi-mock: error: --tags must be at least 1 (got 0)"
    message = _exit_message(capsys, [], {"MOCK_PI_FAULT_DROP_RATE": "1.5"})
    assert message.endswith(
        "environment variable MOCK_PI_FAULT_DROP_RATE must be between 0 and 1 (got '1.5')"
    )
    message = _exit_message(capsys, [], {"MOCK_PI_CSRF": "maybe"})
    assert "environment variable MOCK_PI_CSRF is not valid" in message and "'maybe'" in message
    message = _exit_message(capsys, ["--rate-limit-duration-s", "0"], {})
    assert message.endswith("--rate-limit-duration-s must be positive (got 0.0)")


def test_variables_are_converted_like_flags() -> None:
    config = parse_args(["--csrf", "off"], {"MOCK_PI_ARCHIVE_DAYS": "3", "MOCK_PI_FAULT_RETRY_AFTER_S": "9"})
    assert config.csrf is False and config.archive_days == 3.0 and config.faults.retry_after_s == 9
    assert parse_args([], {"MOCK_PI_CSRF": "no"}).csrf is False
