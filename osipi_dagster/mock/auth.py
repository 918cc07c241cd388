"""Authentication as PI Web API does it: Anonymous, Basic, Bearer (a static token or OIDC client credentials).

Issued bearer tokens are JWT-like (``header.payload.signature``, HS256 with a key derived from the
configuration) and expire ``token_ttl_s`` seconds after issue on the real (wall) clock, not the mock clock:
the ``exp`` claim and ``expires_in`` then mean what a client expects, and moving the mock clock for data
tests never expires a token. Tests make a token expire quickly with a short ``token_ttl_s``.

Secrets (passwords, client secrets, tokens) are never logged; denials log the reason and the user name.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import itertools
import logging
import time
from dataclasses import dataclass

import orjson
from starlette.responses import Response

from osipi_dagster.mock.config import MockConfig
from osipi_dagster.mock.errors import JSON_MEDIA_TYPE

log = logging.getLogger("osipi_dagster.mock.auth")

DENIED_BODY = b'{"Message":"Authorization has been denied for this request."}'
SCOPE = "system"  # the scope PI Web API's bearer documentation asks for


@dataclass(frozen=True)
class Identity:
    """Who a request runs as, in the shape of ``/system/userinfo``."""

    name: str
    identity_type: str  # GenericIdentity (anonymous) | WindowsIdentity (Basic) | ClaimsIdentity (Bearer)
    authenticated: bool
    impersonation: str

    def user_info(self) -> dict:
        return {
            "IdentityType": self.identity_type,
            "Name": self.name,
            "IsAuthenticated": self.authenticated,
            "SID": _sid(self.name) if self.authenticated else "S-1-5-7",  # S-1-5-7: the anonymous logon
            "ImpersonationLevel": self.impersonation,
        }


ANONYMOUS = Identity("", "GenericIdentity", False, "Anonymous")


def _sid(name: str) -> str:
    """A stable Windows-like SID for a user name."""
    words = hashlib.sha256(name.lower().encode()).digest()
    parts = (int.from_bytes(words[i : i + 4], "little") for i in range(0, 12, 4))
    return "S-1-5-21-" + "-".join(str(p) for p in parts) + "-1001"


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class OAuthError(Exception):
    """A token request error, answered as OAuth 2.0 does: ``{"error": code}``."""

    def __init__(self, status: int, code: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.code = code
        self.description = description

    def response(self) -> Response:
        body = orjson.dumps({"error": self.code, "error_description": self.description})
        headers = {"WWW-Authenticate": "Basic"} if self.status == 401 else {}
        return Response(body, self.status, headers, media_type=JSON_MEDIA_TYPE)


class Authenticator:
    """Checks ``Authorization`` headers against the configured mode and issues OIDC tokens."""

    def __init__(self, config: MockConfig) -> None:
        self.mode = config.auth
        self._users = config.basic_users()
        self._static_token = config.token
        self._client_id = config.client_id
        self._client_secret = config.client_secret
        self._ttl_s = config.token_ttl_s
        self._key = hashlib.sha256(f"osipi-mock:{config.seed}:{config.client_secret}".encode()).digest()
        self._token_ids = itertools.count(1)

    @property
    def challenge(self) -> str:
        """The ``WWW-Authenticate`` value of a 401."""
        return 'Basic realm="PI Web API"' if self.mode == "basic" else "Bearer"

    def denied(self) -> Response:
        """The 401 the real server answers (an ASP.NET body: ``Message``, not ``Errors``)."""
        return Response(DENIED_BODY, 401, {"WWW-Authenticate": self.challenge}, media_type=JSON_MEDIA_TYPE)

    def identify(self, authorization: str | None) -> Identity | None:
        """The identity an ``Authorization`` header proves, or None when the request must be denied."""
        if self.mode == "none":
            return ANONYMOUS
        scheme, _, credentials = (authorization or "").strip().partition(" ")
        if self.mode == "basic" and scheme.lower() == "basic":
            return self._basic(credentials.strip())
        if self.mode == "bearer" and scheme.lower() == "bearer":
            return self._bearer(credentials.strip())
        log.info("denied: no %s credentials", self.mode)
        return None

    def _basic(self, credentials: str) -> Identity | None:
        try:
            user, sep, password = base64.b64decode(credentials, validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            log.info("denied: Basic credentials are not base64 of user:password")
            return None
        bare = user.rpartition("\\")[2]  # DOMAIN\user logs in as user
        expected = self._users.get(user, self._users.get(bare))
        if not sep or expected is None or not hmac.compare_digest(expected.encode(), password.encode()):
            log.info("denied: wrong user name or password for user %r", user)
            return None
        return Identity(user, "WindowsIdentity", True, "Impersonation")

    def _bearer(self, token: str) -> Identity | None:
        if hmac.compare_digest(token.encode(), self._static_token.encode()):
            return Identity("static-token", "ClaimsIdentity", True, "Impersonation")
        claims = self._verify(token)
        if claims is None:
            return None
        return Identity(str(claims.get("sub", "")), "ClaimsIdentity", True, "Impersonation")

    def _verify(self, token: str) -> dict | None:
        """The claims of a token this server issued, or None if it is forged, malformed or expired."""
        head, _, rest = token.partition(".")
        payload, _, signature = rest.partition(".")
        expected = _b64url(hmac.new(self._key, f"{head}.{payload}".encode(), hashlib.sha256).digest())
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            log.info("denied: the bearer token is not one this server issued")
            return None
        try:
            claims = orjson.loads(_unb64url(payload))
            expires = float(claims["exp"])
        except (binascii.Error, ValueError, KeyError, TypeError):
            log.info("denied: the bearer token is malformed")
            return None
        if expires <= time.time():
            log.info("denied: the bearer token of %r has expired", claims.get("sub"))
            return None
        return claims

    def issue_token(
        self, client_id: str, client_secret: str, grant_type: str, scope: str, issuer: str
    ) -> dict:
        """An OAuth 2.0 client-credentials token response; ``OAuthError`` when the request is refused."""
        if grant_type != "client_credentials":
            raise OAuthError(
                400, "unsupported_grant_type", "Only grant_type=client_credentials is supported."
            )
        if not (
            hmac.compare_digest(client_id.encode(), self._client_id.encode())
            and hmac.compare_digest(client_secret.encode(), self._client_secret.encode())
        ):
            log.info("token refused: wrong client credentials for client %r", client_id)
            raise OAuthError(401, "invalid_client", "Client authentication failed.")
        if scope and SCOPE not in scope.split():
            raise OAuthError(400, "invalid_scope", f"The scope must include '{SCOPE}'.")
        now = time.time()
        claims = {
            "iss": issuer,
            "sub": client_id,
            "aud": "piwebapi",
            "scope": SCOPE,
            "iat": int(now),
            "exp": now + self._ttl_s,
            "jti": str(next(self._token_ids)),
        }
        head = _b64url(orjson.dumps({"alg": "HS256", "typ": "JWT"}))
        payload = _b64url(orjson.dumps(claims))
        signature = _b64url(hmac.new(self._key, f"{head}.{payload}".encode(), hashlib.sha256).digest())
        log.info("issued a token to client %r for %ss", client_id, self._ttl_s)
        return {
            "access_token": f"{head}.{payload}.{signature}",
            "token_type": "Bearer",
            "expires_in": max(1, round(self._ttl_s)),
            "scope": SCOPE,
        }
