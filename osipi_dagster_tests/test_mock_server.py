"""The mock's system routes, error shapes, admin API, gzip, and its command line (a real subprocess)."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import requests

from osipi_dagster.mock.server import RunningMock
from osipi_dagster_tests.conftest import TEST_NOW

CSRF = {"X-Requested-With": "test"}


def test_landing_links_are_absolute_and_self_ends_with_a_slash(mock_pi: RunningMock) -> None:
    body = requests.get(mock_pi.api).json()
    assert body["Links"]["Self"] == mock_pi.api + "/"
    assert set(body["Links"]) == {"Self", "AssetServers", "DataServers", "Search", "System"}
    assert body["Links"]["DataServers"] == mock_pi.api + "/dataservers"


def test_trailing_slash_and_route_case_are_ignored(mock_pi: RunningMock) -> None:
    assert requests.get(mock_pi.api + "/").json() == requests.get(mock_pi.api).json()
    upper = requests.get(mock_pi.url + "/PIWebAPI/System/Status")
    assert upper.status_code == 200
    assert upper.json()["ServerTime"] == TEST_NOW


def test_system_routes(mock_pi: RunningMock) -> None:
    system = requests.get(mock_pi.api + "/system").json()
    assert system["ProductTitle"] == "PI Web API"
    assert {"Self", "Status", "UserInfo", "Versions", "Configuration"} <= set(system["Links"])
    for link in system["Links"].values():
        assert requests.get(link).status_code == 200, link
    versions = requests.get(mock_pi.api + "/system/versions").json()
    assert all({"FullVersion", "MajorMinorRevision", "Build"} == set(v) for v in versions.values())
    status = requests.get(mock_pi.api + "/system/status").json()
    assert status["State"] == "Running" and status["ServerTime"] == TEST_NOW
    user = requests.get(mock_pi.api + "/system/userinfo").json()
    assert user == {
        "IdentityType": "GenericIdentity",
        "Name": "",
        "IsAuthenticated": False,
        "SID": "S-1-5-7",
        "ImpersonationLevel": "Anonymous",
    }
    configuration = requests.get(mock_pi.api + "/system/configuration").json()
    assert configuration["MaxReturnedItemsPerCall"] == 150_000
    assert configuration["EnableCSRFDefense"] is True


def test_selected_fields_trim_system_answers(mock_pi: RunningMock) -> None:
    body = requests.get(mock_pi.api + "/system", params={"SELECTEDFIELDS": "Links.Self"}).json()
    assert body == {"Links": {"Self": mock_pi.api + "/system"}}


def test_unknown_routes_answer_404_in_pi_shape(mock_pi: RunningMock) -> None:
    for path in ("/piwebapi/nothing", "/piwebapi/system/nothing/more", "/nothing", "/"):
        response = requests.get(mock_pi.url + path)
        assert response.status_code == 404, path
        assert response.headers["content-type"].startswith("application/json")
        assert list(response.json()) == ["Errors"]
        assert "No HTTP resource was found" in response.json()["Errors"][0]


def test_wrong_method_answers_405_in_pi_shape(mock_pi: RunningMock) -> None:
    response = requests.delete(mock_pi.api + "/system", headers=CSRF)
    assert response.status_code == 405
    assert response.json() == {"Errors": ["The requested resource does not support http method 'DELETE'."]}
    assert "GET" in response.headers["allow"]


def test_gzip_when_asked(mock_pi: RunningMock) -> None:
    batch = {str(i): {"Method": "GET", "Resource": mock_pi.api + "/system"} for i in range(20)}
    headers = {**CSRF, "Accept-Encoding": "gzip"}
    raw = requests.post(mock_pi.api + "/batch", json=batch, headers=headers, stream=True).raw
    assert raw.headers["content-encoding"] == "gzip"
    plain = requests.post(mock_pi.api + "/batch", json=batch, headers={**CSRF, "Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert gzip.decompress(raw.read(decode_content=False)) == plain.content


def test_admin_clock(make_mock) -> None:
    mock = make_mock()
    assert requests.get(mock.url + "/admin/clock").json() == {"Now": TEST_NOW}
    assert requests.post(mock.url + "/admin/clock", json={"advance": "1h"}).json() == {
        "Now": "2025-01-06T13:00:00Z"
    }
    assert requests.post(mock.url + "/admin/clock", json={"advance": "-30m"}).json() == {
        "Now": "2025-01-06T12:30:00Z"
    }
    moved = requests.post(mock.url + "/admin/clock", json={"now": "2025-02-01T00:00:00.5Z"})
    assert moved.json() == {"Now": "2025-02-01T00:00:00.5Z"}
    assert requests.get(mock.api + "/system/status").json()["ServerTime"] == "2025-02-01T00:00:00.5Z"
    for bad in ({"advance": "1 parsec"}, {"now": "not a time"}, {}, {"now": 5}, [1]):
        response = requests.post(mock.url + "/admin/clock", json=bad)
        assert response.status_code == 400, bad
        assert "Errors" in response.json()
    assert requests.post(mock.url + "/admin/clock", data=b"{").status_code == 400


def test_admin_info_summarises_the_server(mock_pi: RunningMock) -> None:
    info = requests.get(mock_pi.url + "/admin/info").json()
    assert info["DataServer"]["PointCount"] == 200
    assert info["DataServer"]["WebId"].startswith("F1DS")
    assert info["AssetServer"]["Databases"][0]["ElementCount"] > 0
    assert info["Now"] == TEST_NOW and info["Auth"] == "none"
    assert info["EventFramesLastDay"] >= 0
    assert requests.get(info["ExampleUrls"][0]).status_code == 200


# --- the command line ---------------------------------------------------------------------------------------


@contextmanager
def _cli(*args: str, env: dict[str, str] | None = None) -> Iterator[str]:
    """Run ``python -m osipi_dagster.mock`` on a free port; yields its base URL once it listens."""
    command = [sys.executable, "-m", "osipi_dagster.mock", "--port", "0", "--now", TEST_NOW, *args]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})}
    )
    try:
        line = process.stdout.readline()
        assert "listening on http://" in line, process.stderr.read()
        yield line.split("listening on ")[1].split("/piwebapi")[0]
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_cli_serves_with_options_and_environment() -> None:
    with _cli("--tags", "30", "--auth", "basic", env={"MOCK_PI_USERS": "ann:secret1"}) as url:
        assert requests.get(url + "/piwebapi").status_code == 401
        user = requests.get(url + "/piwebapi/system/userinfo", auth=("ann", "secret1")).json()
        assert user["Name"] == "ann"
        assert requests.get(url + "/admin/info").json()["DataServer"]["PointCount"] == 30


def test_cli_environment_tag_count_and_faults() -> None:
    env = {"MOCK_PI_TAG_COUNT": "12", "MOCK_PI_FAULT_THROTTLE_RATE": "1", "MOCK_PI_FAULT_RETRY_AFTER_S": "7"}
    with _cli(env=env) as url:
        assert requests.get(url + "/admin/info").json()["DataServer"]["PointCount"] == 12
        throttled = requests.get(url + "/piwebapi")
        assert throttled.status_code == 429 and throttled.headers["retry-after"] == "7"


def _fails(*args: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "osipi_dagster.mock", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=60,
    )
    assert result.returncode == 2, result
    return result.stderr


@pytest.mark.slow
def test_cli_rejects_bad_options_with_status_2() -> None:
    assert "--auth must be none, basic or bearer" in _fails("--auth", "kerberos")
    assert "--fault-error-rate must be between 0 and 1" in _fails("--fault-error-rate", "2")
    assert "invalid int value" in _fails("--tags", "many")
    assert "--now must be an ISO 8601 time" in _fails("--now", "yesterday-ish")
    assert "MOCK_PI_TAG_COUNT" in _fails(env={"MOCK_PI_TAG_COUNT": "abc"})
    assert "--csrf-status must be a 4xx status" in _fails("--csrf-status", "200")


def test_console_script_help() -> None:
    script = os.path.join(os.path.dirname(sys.executable), "osipi-mock")
    result = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert "MOCK_PI_TAG_COUNT" in result.stdout and "MOCK_PI_FAULT_DROP_RATE" in result.stdout
