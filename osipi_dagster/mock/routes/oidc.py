"""Bearer authentication end to end: the OIDC discovery document and a client-credentials token endpoint.

The real PI Web API publishes its discovery document at ``/piwebapi/.well-known/openid-configuration`` and
delegates tokens to an identity provider (AVEVA Identity Manager, whose token endpoint is
``/identitymanager/connect/token``). The mock plays both parts; the token endpoint lies outside
``/piwebapi``, so it needs no authentication, no CSRF header and suffers no injected faults. Both answer
404 unless the server runs with ``--auth bearer``.
"""

from __future__ import annotations

import base64
import binascii
from urllib.parse import parse_qsl

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from osipi_dagster.mock.auth import OAuthError
from osipi_dagster.mock.errors import PIError
from osipi_dagster.mock.responses import json_response

router = APIRouter()

TOKEN_PATH = "/identitymanager/connect/token"


def _require_bearer(request: Request) -> None:
    if request.app.state.auth.mode != "bearer":
        raise PIError(404, "Bearer authentication is not enabled on this server.")


def _issuer(request: Request) -> str:
    return str(request.base_url).rstrip("/") + "/identitymanager"


@router.get("/piwebapi/.well-known/openid-configuration")
async def discovery(request: Request) -> Response:
    """Where to get a token, and how."""
    _require_bearer(request)
    body = {
        "issuer": _issuer(request),
        "token_endpoint": str(request.base_url).rstrip("/") + TOKEN_PATH,
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        "scopes_supported": ["system"],
        "response_types_supported": ["token"],
    }
    return json_response(body)


def _basic_client(authorization: str | None) -> tuple[str, str]:
    """Client id and secret from an ``Authorization: Basic`` header (client_secret_basic), or empty."""
    scheme, _, credentials = (authorization or "").partition(" ")
    if scheme.lower() != "basic":
        return "", ""
    try:
        client_id, _, secret = base64.b64decode(credentials.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise OAuthError(401, "invalid_client", "The Basic client credentials are malformed.") from exc
    return client_id, secret


@router.post(TOKEN_PATH)
async def token(request: Request) -> Response:
    """OAuth 2.0 client credentials: a form body, the client in the body or in a Basic header."""
    _require_bearer(request)
    try:
        form = dict(parse_qsl((await request.body()).decode("utf-8"), keep_blank_values=True))
        basic_id, basic_secret = _basic_client(request.headers.get("authorization"))
        answer = request.app.state.auth.issue_token(
            client_id=form.get("client_id") or basic_id,
            client_secret=form.get("client_secret") or basic_secret,
            grant_type=form.get("grant_type", ""),
            scope=form.get("scope", ""),
            issuer=_issuer(request),
        )
    except UnicodeDecodeError:
        return OAuthError(400, "invalid_request", "The body must be a UTF-8 form.").response()
    except OAuthError as exc:
        return exc.response()
    response = json_response(answer)
    response.headers["Cache-Control"] = "no-store"
    return response
