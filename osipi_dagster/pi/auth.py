"""Authentication for PI Web API: Basic, Bearer (static or OIDC client credentials), Kerberos, anonymous.

Every class is a ``requests`` auth object. The client calls :meth:`PIAuth.bind` once with its session, and
:meth:`PIAuth.on_unauthorized` when the server answers 401; an auth that can obtain fresh credentials (OIDC)
returns True there and the request is sent once more. No class ever shows its secret in ``repr`` or in an
exception message, and each registers its secrets with :func:`~osipi_dagster.pi.errors.register_secret`, so
that a server that echoes them (in an error page, in PI's ``Errors``) cannot get them into an exception or
a log line.
"""

from __future__ import annotations

import base64
import threading
import time
from typing import Any

import msgspec
import requests
from requests.auth import AuthBase

from osipi_dagster.pi.errors import MissingExtraError, PIAuthenticationError, error_messages, register_secret


class PIAuth(AuthBase):
    """Base of the client's auth objects; also usable directly as anonymous access (no header)."""

    def bind(self, session: requests.Session, base_url: str, *, verify: bool | str, timeout: float) -> None:
        """Called once by the client, so auths that talk to an identity provider can share its session."""

    def on_unauthorized(self) -> bool:
        """The server answered 401: renew the credentials and return True to retry once, or return False."""
        return False

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        return request

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Anonymous(PIAuth):
    """No credentials, for servers with the Anonymous authentication method."""


class BasicAuth(PIAuth):
    """HTTP Basic; ``username`` may carry a domain (``DOMAIN\\user``)."""

    def __init__(self, username: str, password: str):
        self.username = username
        token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
        self._header = f"Basic {token}"
        register_secret(self, "password", password)
        register_secret(self, "credentials", f"{username}:{password}")  # its base64 is the header's token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = self._header
        return request

    def __repr__(self) -> str:
        return f"BasicAuth(username={self.username!r}, password='***')"


class BearerAuth(PIAuth):
    """A static bearer token (obtained elsewhere)."""

    def __init__(self, token: str):
        self._header = f"Bearer {token}"
        register_secret(self, "token", token)

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = self._header
        return request

    def __repr__(self) -> str:
        return "BearerAuth(token='***')"


class _Discovery(msgspec.Struct):
    token_endpoint: str
    token_endpoint_auth_methods_supported: list[str] | None = None


class _TokenAnswer(msgspec.Struct):
    access_token: str
    expires_in: float | None = None


class OIDCClientCredentials(PIAuth):
    """OAuth 2 client credentials against the identity provider PI Web API announces.

    The token endpoint comes from ``{base_url}/.well-known/openid-configuration`` unless ``token_endpoint``
    is given. The token is renewed ``refresh_margin_s`` before it expires (for short-lived tokens, at half
    their lifetime), and once more when the server answers 401.
    """

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        *,
        scope: str = "system",
        token_endpoint: str | None = None,
        discovery_url: str | None = None,
        refresh_margin_s: float = 60.0,
    ):
        self.client_id = client_id
        self._secret = client_secret
        register_secret(self, "client_secret", client_secret)
        # Sent as Basic credentials to the token endpoint (client_secret_basic).
        register_secret(self, "client_credentials", f"{client_id}:{client_secret}")
        self.scope = scope
        self.token_endpoint = token_endpoint
        self.discovery_url = discovery_url
        self.refresh_margin_s = refresh_margin_s
        self._client_auth_methods: list[str] | None = None
        self._session: requests.Session | None = None
        self._verify: bool | str = True
        self._timeout = 30.0
        self._token: str | None = None
        self._renew_at = 0.0
        self._lock = threading.Lock()
        self.tokens_fetched = 0

    def __repr__(self) -> str:
        return (
            f"OIDCClientCredentials(client_id={self.client_id!r}, client_secret='***', scope={self.scope!r})"
        )

    def bind(self, session: requests.Session, base_url: str, *, verify: bool | str, timeout: float) -> None:
        self._session = session
        self._verify = verify
        self._timeout = timeout
        if self.discovery_url is None:
            self.discovery_url = base_url.rstrip("/") + "/.well-known/openid-configuration"

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._current_token()}"
        return request

    def on_unauthorized(self) -> bool:
        with self._lock:
            self._token = None
        return True

    def _current_token(self) -> str:
        with self._lock:
            if self._token is None or time.monotonic() >= self._renew_at:
                self._fetch_token()
            assert self._token is not None
            return self._token

    def _http(self) -> requests.Session:
        if self._session is None:
            raise RuntimeError(
                "OIDCClientCredentials is used outside a PIWebAPIClient (bind() was not called)"
            )
        return self._session

    def _discover(self) -> None:
        assert self.discovery_url is not None
        answer = self._http().get(self.discovery_url, timeout=self._timeout, verify=self._verify)
        if answer.status_code != 200:
            raise PIAuthenticationError(
                "OpenID discovery failed", status=answer.status_code, url=self.discovery_url
            )
        try:
            discovery = msgspec.json.decode(answer.content, type=_Discovery)
        except msgspec.DecodeError as exc:
            raise PIAuthenticationError(
                f"OpenID discovery document is invalid: {exc}", url=self.discovery_url
            ) from None
        self.token_endpoint = discovery.token_endpoint
        self._client_auth_methods = discovery.token_endpoint_auth_methods_supported

    def _fetch_token(self) -> None:
        if self.token_endpoint is None:
            self._discover()
        assert self.token_endpoint is not None
        form: dict[str, str] = {"grant_type": "client_credentials", "scope": self.scope}
        client_auth: tuple[str, str] | None = None
        # RFC 6749 makes client_secret_basic the default; use the form only when the provider asks for it.
        methods = self._client_auth_methods
        if methods is not None and "client_secret_basic" not in methods and "client_secret_post" in methods:
            form.update(client_id=self.client_id, client_secret=self._secret)
        else:
            client_auth = (self.client_id, self._secret)
        started = time.monotonic()
        answer = self._http().post(
            self.token_endpoint,
            data=form,
            auth=client_auth,
            headers={"X-Requested-With": "osipi-dagster", "Accept": "application/json"},
            timeout=self._timeout,
            verify=self._verify,
        )
        if answer.status_code != 200:
            raise PIAuthenticationError(
                "the token endpoint refused the client credentials",
                status=answer.status_code,
                url=self.token_endpoint,
                errors=_oauth_error(answer),
            )
        try:
            token = msgspec.json.decode(answer.content, type=_TokenAnswer)
        except msgspec.DecodeError:
            raise PIAuthenticationError(
                "the token endpoint answered without a token", url=self.token_endpoint
            ) from None
        lifetime = token.expires_in if token.expires_in and token.expires_in > 0 else 3600.0
        self._token = token.access_token
        register_secret(self, "token", token.access_token)
        # Renew refresh_margin_s before expiry, but never before half the lifetime (short-lived tokens).
        self._renew_at = started + max(lifetime / 2, lifetime - self.refresh_margin_s)
        self.tokens_fetched += 1


def _oauth_error(answer: requests.Response) -> list[str]:
    """The OAuth ``error``/``error_description`` of a refused token request (never echoes the request)."""
    try:
        body: Any = answer.json()
    except ValueError:
        return []
    if isinstance(body, dict) and "error" in body:
        return [": ".join(str(body[k]) for k in ("error", "error_description") if body.get(k))]
    return error_messages(body)


class KerberosAuth(PIAuth):
    """Kerberos / Negotiate through requests-kerberos (the optional extra ``kerberos``).

    The keyword arguments go to ``requests_kerberos.HTTPKerberosAuth``; ``mutual_authentication`` defaults to
    OPTIONAL because PI Web API behind a load balancer does not always sign its answer.
    """

    def __init__(self, **kerberos_options: Any):
        try:
            import requests_kerberos
        except ImportError:
            raise MissingExtraError("Kerberos authentication", "kerberos") from None
        kerberos_options.setdefault("mutual_authentication", requests_kerberos.OPTIONAL)
        self._inner = requests_kerberos.HTTPKerberosAuth(**kerberos_options)

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        # requests-kerberos answers the 401 Negotiate challenge itself, through a response hook.
        return self._inner(request)

    def __repr__(self) -> str:
        return "KerberosAuth()"
