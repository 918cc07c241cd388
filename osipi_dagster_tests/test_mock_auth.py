"""Authentication (none, Basic, Bearer: static token or OIDC client credentials), CSRF and rate limit."""

from __future__ import annotations

import base64
import logging
import time

import pytest
import requests

CSRF = {"X-Requested-With": "test"}
DENIED = {"Message": "Authorization has been denied for this request."}


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def _assert_denied(response: requests.Response, challenge: str) -> None:
    assert response.status_code == 401
    assert response.json() == DENIED
    assert response.headers["www-authenticate"] == challenge


def test_anonymous_mode_ignores_credentials(mock_pi) -> None:
    user = requests.get(mock_pi.api + "/system/userinfo", headers=_basic("x", "y")).json()
    assert user["IsAuthenticated"] is False and user["IdentityType"] == "GenericIdentity"


def test_basic_auth(make_mock) -> None:
    mock = make_mock(auth="basic", users="piuser:pw1,other:pw2")
    url = mock.api + "/system/userinfo"
    challenge = 'Basic realm="PI Web API"'
    _assert_denied(requests.get(url), challenge)
    _assert_denied(requests.get(url, headers=_basic("piuser", "wrong")), challenge)
    _assert_denied(requests.get(url, headers=_basic("nobody", "pw1")), challenge)
    _assert_denied(requests.get(url, headers={"Authorization": "Basic %%%not-base64"}), challenge)
    _assert_denied(requests.get(url, headers={"Authorization": "Bearer mock-static-token"}), challenge)
    _assert_denied(requests.get(mock.api + "/no/such/route"), challenge)  # authentication comes first
    user = requests.get(url, headers=_basic("piuser", "pw1")).json()
    assert user["Name"] == "piuser" and user["IsAuthenticated"] is True
    assert user["IdentityType"] == "WindowsIdentity" and user["SID"].startswith("S-1-5-21-")
    domain_user = requests.get(url, headers=_basic("MOCKDOMAIN\\other", "pw2")).json()
    assert domain_user["Name"] == "MOCKDOMAIN\\other"
    assert requests.get(mock.url + "/admin/clock").status_code == 200  # the admin API needs no credentials


def test_bearer_static_token(make_mock) -> None:
    mock = make_mock(auth="bearer", token="tok-123")
    url = mock.api + "/system/userinfo"
    _assert_denied(requests.get(url), "Bearer")
    _assert_denied(requests.get(url, headers={"Authorization": "Bearer tok-12"}), "Bearer")
    user = requests.get(url, headers={"Authorization": "Bearer tok-123"}).json()
    assert user["IsAuthenticated"] is True and user["IdentityType"] == "ClaimsIdentity"


def _discover_and_get_token(api: str, **form: str) -> requests.Response:
    discovery = requests.get(api + "/.well-known/openid-configuration")
    assert discovery.status_code == 200
    endpoint = discovery.json()["token_endpoint"]
    return requests.post(endpoint, data={"grant_type": "client_credentials", "scope": "system", **form})


def test_oidc_discovery_and_client_credentials(make_mock) -> None:
    mock = make_mock(auth="bearer", client_id="cid", client_secret="csecret")
    discovery = requests.get(mock.api + "/.well-known/openid-configuration").json()
    assert discovery["issuer"] == mock.url + "/identitymanager"
    assert discovery["token_endpoint"] == mock.url + "/identitymanager/connect/token"
    answer = _discover_and_get_token(mock.api, client_id="cid", client_secret="csecret")
    assert answer.status_code == 200
    token = answer.json()
    assert token["token_type"] == "Bearer" and token["expires_in"] == 3600 and token["scope"] == "system"
    assert token["access_token"].count(".") == 2  # JWT-like
    headers = {"Authorization": "Bearer " + token["access_token"]}
    user = requests.get(mock.api + "/system/userinfo", headers=headers).json()
    assert user["Name"] == "cid" and user["IdentityType"] == "ClaimsIdentity"
    # The client may also authenticate with a Basic header (client_secret_basic).
    by_header = requests.post(
        discovery["token_endpoint"], data={"grant_type": "client_credentials"}, auth=("cid", "csecret")
    )
    assert by_header.status_code == 200
    forged = token["access_token"][:-2] + ("AA" if not token["access_token"].endswith("AA") else "BB")
    _assert_denied(
        requests.get(mock.api + "/system", headers={"Authorization": "Bearer " + forged}), "Bearer"
    )


def test_token_endpoint_refusals(make_mock) -> None:
    mock = make_mock(auth="bearer", client_id="cid", client_secret="csecret")
    wrong = _discover_and_get_token(mock.api, client_id="cid", client_secret="nope")
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    grant = requests.post(mock.url + "/identitymanager/connect/token", data={"grant_type": "password"})
    assert grant.status_code == 400 and grant.json()["error"] == "unsupported_grant_type"
    scope = _discover_and_get_token(mock.api, client_id="cid", client_secret="csecret", scope="all-apis")
    assert scope.status_code == 400 and scope.json()["error"] == "invalid_scope"
    bad_body = requests.post(mock.url + "/identitymanager/connect/token", data=b"\xff\xfe")
    assert bad_body.status_code == 400


def test_oidc_is_absent_without_bearer_mode(mock_pi) -> None:
    assert requests.get(mock_pi.api + "/.well-known/openid-configuration").status_code == 404
    assert requests.post(mock_pi.url + "/identitymanager/connect/token").status_code == 404


def test_issued_tokens_expire(make_mock) -> None:
    mock = make_mock(auth="bearer", token_ttl_s=0.5)
    token = _discover_and_get_token(mock.api, client_id="osipi-client", client_secret="osipi-secret").json()
    headers = {"Authorization": "Bearer " + token["access_token"]}
    assert requests.get(mock.api + "/system", headers=headers).status_code == 200
    time.sleep(0.6)
    _assert_denied(requests.get(mock.api + "/system", headers=headers), "Bearer")


def test_batch_sub_requests_run_as_the_caller(make_mock) -> None:
    mock = make_mock(auth="basic", users="piuser:pw1")
    batch = {"me": {"Method": "GET", "Resource": mock.api + "/system/userinfo"}}
    answer = requests.post(mock.api + "/batch", json=batch, headers={**CSRF, **_basic("piuser", "pw1")})
    assert answer.status_code == 207
    assert answer.json()["me"]["Content"]["Name"] == "piuser"
    anonymous = requests.post(mock.api + "/batch", json=batch, headers=CSRF)
    _assert_denied(anonymous, 'Basic realm="PI Web API"')


def test_secrets_never_reach_the_logs(make_mock, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    basic = make_mock(auth="basic", users="piuser:hunter2-password")
    requests.get(basic.api + "/system", headers=_basic("piuser", "hunter2-wrong"))
    requests.get(basic.api + "/system", headers=_basic("piuser", "hunter2-password"))
    bearer = make_mock(auth="bearer", token="static-secret-token", client_secret="client-secret-value")
    requests.get(bearer.api + "/system", headers={"Authorization": "Bearer static-secret-token-wrong"})
    token = _discover_and_get_token(bearer.api, client_id="osipi-client", client_secret="client-secret-value")
    access = token.json()["access_token"]
    requests.get(bearer.api + "/system", headers={"Authorization": "Bearer " + access})
    _discover_and_get_token(bearer.api, client_id="osipi-client", client_secret="client-secret-wrong")
    assert "denied" in caplog.text and "issued a token" in caplog.text  # the log is not empty
    for secret in ("hunter2", "static-secret-token", "client-secret", access, access.split(".")[2]):
        assert secret not in caplog.text


def test_csrf_defense(make_mock, mock_pi) -> None:
    batch = {"a": {"Method": "GET", "Resource": mock_pi.api + "/system"}}
    rejected = requests.post(mock_pi.api + "/batch", json=batch)
    assert rejected.status_code == 400
    assert "X-Requested-With" in rejected.json()["Errors"][0]
    assert requests.post(mock_pi.api + "/batch", json=batch, headers=CSRF).status_code == 207
    assert requests.delete(mock_pi.api + "/system").status_code == 400  # CSRF before routing
    forbidden = make_mock(csrf_status=403)
    assert requests.post(forbidden.api + "/batch", json=batch).status_code == 403
    off = make_mock(csrf=False)
    assert requests.post(off.api + "/batch", json=batch).status_code == 207


def test_rate_limit_per_client(make_mock) -> None:
    mock = make_mock(rate_limit_max=3, rate_limit_duration_s=60)
    statuses = [requests.get(mock.api + "/system").status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    limited = requests.get(mock.api)
    assert limited.json() == {"Errors": ["Rate limit was reached"]}
    assert requests.get(mock.url + "/admin/clock").status_code == 200  # the admin API is not limited


def test_rate_limit_window_resets(make_mock) -> None:
    mock = make_mock(rate_limit_max=2, rate_limit_duration_s=0.3)
    assert [requests.get(mock.api).status_code for _ in range(3)] == [200, 200, 429]
    time.sleep(0.35)
    assert requests.get(mock.api).status_code == 200
