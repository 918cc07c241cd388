"""Injected faults: every fault type over real HTTP, and the determinism of the schedule."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable

import orjson
import pytest
import requests

from osipi_dagster.mock.config import FaultConfig
from osipi_dagster.mock.faults import FaultInjector, add_web_exception, spoil_values, truncate
from osipi_dagster.mock.server import RunningMock

CSRF = {"X-Requested-With": "test"}


def _faults(mock: RunningMock, **settings: float) -> dict:
    answer = requests.put(mock.url + "/admin/faults", json=settings)
    assert answer.status_code == 200, answer.text
    return answer.json()


@pytest.fixture
def mock(make_mock: Callable[..., RunningMock]) -> RunningMock:
    return make_mock()


def test_faults_are_off_by_default(mock: RunningMock) -> None:
    config = requests.get(mock.url + "/admin/faults").json()
    assert all(config[name] == 0 for name in config if name.endswith("_rate"))
    assert all(requests.get(mock.api).status_code == 200 for _ in range(20))


def test_admin_faults_replace_the_configuration(mock: RunningMock) -> None:
    assert _faults(mock, error_rate=0.5, seed=3)["error_rate"] == 0.5
    replaced = _faults(mock, throttle_rate=0.25)
    assert replaced["error_rate"] == 0.0 and replaced["seed"] == 0 and replaced["throttle_rate"] == 0.25
    assert requests.get(mock.url + "/admin/faults").json() == replaced
    for bad in (
        {"error_rate": 2},
        {"nonsense": 1},
        {"error_rate": "high"},
        {"seed": 1.5},
        {"latency_ms": -1},
    ):
        answer = requests.put(mock.url + "/admin/faults", json=bad)
        assert answer.status_code == 400, bad
        assert "Errors" in answer.json()
    assert requests.put(mock.url + "/admin/faults", json=[1]).status_code == 400


def test_schedule_is_a_pure_function_of_seed_and_request_number() -> None:
    config = FaultConfig(seed=42, error_rate=0.3, throttle_rate=0.2, drop_rate=0.1, truncate_rate=0.2)
    first = [FaultInjector(config).plan(i) for i in range(300)]
    again = [FaultInjector(config).plan(i) for i in range(300)]
    other = [FaultInjector(FaultConfig(**{**config.__dict__, "seed": 43})).plan(i) for i in range(300)]
    assert first == again and first != other
    drops = sum(p.drop for p in first)
    assert 10 < drops < 60  # about 10 %
    # Each fault has its own draw: adding a fault does not move the others.
    more = FaultConfig(**{**config.__dict__, "web_exception_rate": 0.5})
    assert [p.drop for p in first] == [FaultInjector(more).plan(i).drop for i in range(300)]


def test_same_seed_gives_the_same_sequence_over_http(mock: RunningMock) -> None:
    def statuses() -> list[int]:
        _faults(mock, seed=7, error_rate=0.3, throttle_rate=0.2)  # also restarts the schedule
        return [requests.get(mock.api + "/system").status_code for _ in range(40)]

    first = statuses()
    assert first == statuses()
    assert {200, 429} <= set(first) and set(first) & {500, 502, 503, 504}
    _faults(mock, seed=8, error_rate=0.3, throttle_rate=0.2)
    assert [requests.get(mock.api + "/system").status_code for _ in range(40)] != first


def test_error_rate_answers_5xx_in_pi_shape(mock: RunningMock) -> None:
    _faults(mock, error_rate=1)
    answers = [requests.get(mock.api) for _ in range(40)]
    assert {a.status_code for a in answers} == {500, 502, 503, 504}
    assert all("injected fault" in a.json()["Errors"][0] for a in answers)


def test_throttle_rate_answers_429_with_retry_after(mock: RunningMock) -> None:
    _faults(mock, throttle_rate=1, retry_after_s=3)
    answer = requests.get(mock.api)
    assert answer.status_code == 429 and answer.headers["retry-after"] == "3"
    assert "Rate limit was reached" in answer.json()["Errors"][0]


def test_latency_with_jitter(mock: RunningMock) -> None:
    _faults(mock, latency_ms=150, latency_jitter_ms=50)
    started = time.monotonic()
    assert requests.get(mock.api).status_code == 200
    assert 0.15 <= time.monotonic() - started < 2


def test_timeout_holds_the_answer(mock: RunningMock) -> None:
    _faults(mock, timeout_rate=1, timeout_s=1.0)
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(mock.api, timeout=0.3)
    started = time.monotonic()
    assert requests.get(mock.api, timeout=5).status_code == 200  # a patient client gets the answer
    assert time.monotonic() - started >= 1.0


def test_dropped_connections(mock: RunningMock) -> None:
    _faults(mock, drop_rate=1)
    with requests.Session() as session:
        for _ in range(3):
            with pytest.raises(requests.exceptions.ConnectionError):
                session.get(mock.api, timeout=5)
    _faults(mock)
    assert requests.get(mock.api).status_code == 200  # the server survived


def test_truncated_json(mock: RunningMock) -> None:
    whole = requests.get(mock.api + "/system").content
    _faults(mock, truncate_rate=1)
    for _ in range(5):
        cut = requests.get(mock.api + "/system").content
        assert len(cut) < len(whole) and whole.startswith(cut)
        with pytest.raises(json.JSONDecodeError):
            json.loads(cut)


def test_malformed_json(mock: RunningMock) -> None:
    _faults(mock, malformed_rate=1)
    answer = requests.get(mock.api + "/system")
    assert answer.status_code == 200
    with pytest.raises(requests.exceptions.JSONDecodeError):
        answer.json()


def test_web_exception_in_a_200_answer(mock: RunningMock) -> None:
    whole = requests.get(mock.api + "/system").json()
    _faults(mock, web_exception_rate=1)
    answer = requests.get(mock.api + "/system")
    assert answer.status_code == 200
    body = answer.json()
    assert body.pop("WebException")["StatusCode"] == 500
    assert body == whole


def test_errors_are_not_rewritten(mock: RunningMock) -> None:
    _faults(mock, truncate_rate=1, web_exception_rate=1)
    assert requests.get(mock.api + "/nothing").json()["Errors"]  # a 404 body stays valid JSON


def test_faults_spare_the_admin_api(mock: RunningMock) -> None:
    _faults(mock, error_rate=1, drop_rate=1)
    assert all(requests.get(mock.url + "/admin/clock").status_code == 200 for _ in range(10))


def test_batch_sub_requests_only_suffer_batch_fail_rate(mock: RunningMock) -> None:
    batch = {
        "a": {"Method": "GET", "Resource": mock.api + "/system"},
        "b": {"Method": "GET", "Resource": "$.a.Content.Links.Status", "ParentIds": ["a"]},
    }
    _faults(mock, batch_fail_rate=1)
    answer = requests.post(mock.api + "/batch", json=batch, headers=CSRF).json()
    assert answer["a"]["Status"] == 500 and "injected fault" in answer["a"]["Content"]["Errors"][0]
    assert answer["b"]["Status"] == 424
    _faults(mock, web_exception_rate=1)
    answer = requests.post(mock.api + "/batch", json=batch, headers=CSRF).json()
    assert answer.pop("WebException")["StatusCode"] == 500  # the batch answer itself is a 2xx JSON answer
    assert answer["a"]["Status"] == 200 and "WebException" not in answer["a"]["Content"]


def test_batch_failures_are_deterministic(mock: RunningMock) -> None:
    batch = {str(i): {"Method": "GET", "Resource": mock.api + "/system/status"} for i in range(30)}

    def failed() -> list[str]:
        _faults(mock, seed=5, batch_fail_rate=0.4)
        answer = requests.post(mock.api + "/batch", json=batch, headers=CSRF).json()
        return [key for key, sub in answer.items() if sub["Status"] == 500]

    first = failed()
    assert first == failed() and 0 < len(first) < 30


# --- the body rewrites, on exact inputs -------------------------------------------------------------------


def test_value_errors_take_pi_shape_and_rate() -> None:
    values = [{"Timestamp": f"2025-01-01T00:00:{i:02d}Z", "Value": i, "Good": True} for i in range(60)]
    body = orjson.dumps({"Links": {}, "Items": [{"WebId": "x", "Items": values}]})
    spoiled = orjson.loads(spoil_values(body, 0.5, random.Random(1)))["Items"][0]["Items"]
    bad = [v for v in spoiled if "Errors" in v]
    assert 10 < len(bad) < 50
    assert bad[0]["Value"] is None and bad[0]["Good"] is False
    assert bad[0]["Errors"][0]["FieldName"] == "Value" and isinstance(bad[0]["Errors"][0]["Message"], list)
    single = orjson.loads(spoil_values(orjson.dumps(values[0]), 1.0, random.Random(1)))
    assert "Errors" in single  # /value and /end answer one TimedValue
    assert spoil_values(body, 0.5, random.Random(1)) == spoil_values(body, 0.5, random.Random(1))


def test_web_exception_and_truncation_helpers() -> None:
    assert orjson.loads(add_web_exception(b"{}"))["WebException"]["StatusCode"] == 500
    assert orjson.loads(add_web_exception(b'{"a":1}'))["a"] == 1
    assert add_web_exception(b"[1]") == b"[1]"
    assert truncate(b'{"a":1}', 0.999) == b'{"a":1'
    assert truncate(b"", 0.5) == b""


def _recorded_url(mock: RunningMock) -> str:
    points = requests.get(mock.api + "/dataservers").json()["Items"][0]["Links"]["Points"]
    point = requests.get(points, params={"maxCount": 1}).json()["Items"][0]
    return point["Links"]["RecordedData"] + "?startTime=*-1h&endTime=*&maxCount=500"


def test_value_errors_in_stream_answers(mock: RunningMock) -> None:
    url = _recorded_url(mock)
    clean = requests.get(url).json()["Items"]
    _faults(mock, value_error_rate=0.2)
    spoiled = requests.get(url).json()["Items"]
    bad = [v for v in spoiled if "Errors" in v]
    assert len(spoiled) == len(clean) and 0 < len(bad) < len(clean)
    assert bad[0]["Errors"][0]["FieldName"] == "Value" and bad[0]["Good"] is False
    assert [v["Timestamp"] for v in spoiled] == [v["Timestamp"] for v in clean]
    assert "Errors" not in requests.get(mock.api + "/system").json()  # only stream answers
