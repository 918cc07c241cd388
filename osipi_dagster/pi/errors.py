"""Typed exceptions of the PI Web API client, and the URL redaction every one of them goes through.

Every exception carries the URL with secrets removed (user info and secret-looking query parameters), the
HTTP status when there was one, and PI's own ``Errors`` list, so a log line or a traceback can be shared
without leaking a password or a token.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

# Query parameters whose values are never shown, compared case-insensitively.
_SECRET_PARAMS = frozenset(
    {
        "password",
        "passwd",
        "pwd",
        "token",
        "access_token",
        "refresh_token",
        "id_token",
        "client_secret",
        "code",
    }
)


def redact_url(url: str) -> str:
    """``url`` without user info, and with ``***`` for the values of secret-looking query parameters."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    netloc = parts.hostname or ""
    if parts.port is not None:
        netloc = f"{netloc}:{parts.port}"
    query = parts.query
    if query and any(name.lower() in _SECRET_PARAMS for name, _ in parse_qsl(query, keep_blank_values=True)):
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, "***" if k.lower() in _SECRET_PARAMS else v) for k, v in pairs], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


class PIWebAPIError(Exception):
    """A request to PI Web API failed for good.

    Attributes:
        status: the HTTP status, or None when no answer arrived (connection error, timeout).
        url: the request URL with secrets removed.
        errors: PI's ``Errors`` messages (or the ``Message`` of an ASP.NET error), possibly empty.
    """

    def __init__(self, message: str, *, status: int | None = None, url: str = "", errors: Sequence[str] = ()):
        self.status = status
        self.url = redact_url(url) if url else ""
        self.errors = list(errors)
        self.message = message
        super().__init__(self._render())

    def _render(self) -> str:
        text = self.message
        if self.status is not None:
            text = f"HTTP {self.status}: {text}"
        if self.errors:
            text = f"{text} ({'; '.join(self.errors)})"
        if self.url:
            text = f"{text} [{self.url}]"
        return text

    def __reduce__(self):
        # Pickling (e.g. across process pools) must keep the keyword-only fields.
        return (_rebuild, (type(self), self.message, self.status, self.url, self.errors))


def _rebuild(cls: type[PIWebAPIError], message: str, status: int | None, url: str, errors: list[str]):
    return cls(message, status=status, url=url, errors=errors)


class PIAuthenticationError(PIWebAPIError):
    """The server refused the credentials (401), also after one token refresh when the auth can refresh."""


class PIConnectionError(PIWebAPIError):
    """No usable answer after every retry: connection errors, timeouts, or bodies cut short."""


class PIResponseError(PIWebAPIError):
    """The server answered 2xx with a body that is not the expected JSON, or with a top-level WebException."""


class MissingExtraError(ImportError):
    """An optional dependency is missing; the message names the extra that installs it."""

    def __init__(self, feature: str, extra: str):
        self.extra = extra
        super().__init__(f"{feature} needs the optional extra {extra!r}: pip install osipi-dagster[{extra}]")


def error_messages(body: object) -> list[str]:
    """PI's messages from a decoded error body: ``{"Errors": [...]}`` or ASP.NET's ``{"Message": ...}``."""
    if not isinstance(body, dict):
        return []
    errors = body.get("Errors")
    if isinstance(errors, list):
        return [_flatten(e) for e in errors]
    message = body.get("Message")
    return [str(message)] if message is not None else []


def _flatten(error: object) -> str:
    # Per-value errors are PropertyError objects {"FieldName": ..., "Message": [...]}.
    if isinstance(error, dict):
        messages = error.get("Message")
        text = "; ".join(map(str, messages)) if isinstance(messages, list) else str(messages or "")
        field = error.get("FieldName")
        return f"{field}: {text}" if field else text
    return str(error)
