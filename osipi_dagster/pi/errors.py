"""Typed exceptions of the PI Web API client, and the scrubbing every one of them goes through.

Text from the server is untrusted: a proxy or a server in debug mode may echo the request, headers and
body included, in its error page. So every exception (its message, PI's ``Errors`` and the URL), every
:class:`~osipi_dagster.pi.recorded.StreamFailure` message and every line of the client's logger passes
through :func:`scrub`: it removes the secrets the auth objects registered (in the forms a server could
echo them) and anything that looks like a credential, and cuts long texts, so a log line or a traceback
can be shared without leaking a password or a token.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import re
import threading
import weakref
from collections.abc import Sequence
from urllib.parse import parse_qsl, quote, quote_plus, urlencode, urlsplit, urlunsplit

LOGGER_NAME = "osipi_dagster.pi"  # the one logger of the client; its lines are scrubbed

MESSAGE_LIMIT = 500  # characters kept of one message of the server
MESSAGES_KEPT = 5  # messages kept of one error body
TEXT_LIMIT = 4000  # characters kept of one exception message, failure message or log line
_SCAN_LIMIT = 65_536  # characters of one text that are read at all; the rest is dropped unread
# Characters dropped after scrubbing a text that was cut at _SCAN_LIMIT: a secret cut in half there does
# not match, so the end of the scanned part is never shown.
_SCAN_GUARD = 16_384

# Query parameters and JSON keys whose values are never shown, compared case-insensitively.
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
        "client_assertion",
        "code",
        "api_key",
        "apikey",
    }
)
_NAMES = "|".join(sorted(_SECRET_PARAMS, key=len, reverse=True))
_MASK = "***"
# Credentials a server could echo that no auth object registered (a proxy's, a Kerberos ticket, someone
# else's), each with what replaces it.
_CREDENTIAL_PATTERNS = (
    # A header as a header line, a JSON member or a dict item: its value up to a quote or the line's end.
    (
        re.compile(
            r"(?i)(\b(?:proxy-)?authorization|\bcookie|\bset-cookie)([\\'\"\s]*[:=][\\'\"\s]*)[^\r\n'\"\\]+"
        ),
        rf"\1\2{_MASK}",
    ),
    # A scheme and its token anywhere (a short word after "Basic" is prose, not a token).
    (re.compile(r"(?i)\b(basic|bearer|negotiate|ntlm)(\s+)[A-Za-z0-9\-._~+/]{16,}=*"), rf"\1\2{_MASK}"),
    # user:password@ (or user@) in a URL.
    (re.compile(r"(?i)(\b[a-z][a-z0-9+.\-]*://)[^/\s@?#'\"<>]+@"), rf"\1{_MASK}@"),
    # password=..., access_token=... in a query string or a form body.
    (re.compile(rf"(?i)(\b(?:{_NAMES})=)[^&\s'\"<>;,]+"), rf"\1{_MASK}"),
    # "password": "...", 'client_secret': '...' in JSON or a Python repr (escaped quotes included).
    (
        re.compile(rf"(?i)([\\'\"](?:{_NAMES})[\\'\"]+\s*:\s*[\\'\"]+)(?:[^'\"\\\r\n]|\\.)+"),
        rf"\1{_MASK}",
    ),
)


class _SecretRegistry:
    """The secrets the live auth objects hold, each in every form a server could echo it.

    Process-wide on purpose: exceptions, stream failures and log lines are made deep in code that has no
    client at hand (a decoder, a dataclass, a logging filter), and a scrubber that had to be passed along
    would be forgotten somewhere. Secrets are kept per owner (an auth object) and role: a renewed token
    replaces the old one, and the owner is held by a weak reference, so the secrets of an auth object that
    is gone leave the pattern at the next registration. Masking another client's secret is harmless.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._owners: weakref.WeakKeyDictionary[object, dict[str, frozenset[str]]] = (
            weakref.WeakKeyDictionary()
        )
        self._pattern: re.Pattern[str] | None = None
        self.longest = 0

    def register(self, owner: object, role: str, secret: str) -> None:
        with self._lock:
            self._owners.setdefault(owner, {})[role] = _echo_forms(secret)
            forms = {
                form for roles in list(self._owners.values()) for each in roles.values() for form in each
            }
            self.longest = max(map(len, forms), default=0)
            alternatives = "|".join(map(re.escape, sorted(forms, key=len, reverse=True)))
            self._pattern = re.compile(alternatives) if forms else None

    def scrub(self, text: str) -> str:
        pattern = self._pattern
        return pattern.sub(_MASK, text) if pattern is not None else text


def _echo_forms(secret: str) -> frozenset[str]:
    """``secret`` as it is and as a server could echo it: URL-, JSON-, HTML- and base64-encoded."""
    if not secret:
        return frozenset()
    forms = {secret, quote(secret, safe=""), quote_plus(secret), html.escape(secret)}
    forms |= {json.dumps(secret, ensure_ascii=escaped)[1:-1] for escaped in (True, False)}
    # requests encodes Basic credentials as Latin-1, this client as UTF-8: both, when they differ.
    for raw in {secret.encode(), secret.encode("latin-1", "ignore")}:
        for encoded in (base64.b64encode(raw), base64.urlsafe_b64encode(raw)):
            text = encoded.decode("ascii")
            forms |= {text, text.rstrip("=")}
    return frozenset(form for form in forms if form)


_SECRETS = _SecretRegistry()


def register_secret(owner: object, role: str, secret: str) -> None:
    """Have :func:`scrub` mask ``secret`` (and its encodings) for as long as ``owner`` lives.

    Auth objects call this for every secret they hold or obtain (``role`` names it, e.g. ``"token"``: a
    renewed token replaces the previous one). An empty secret registers nothing.
    """
    _SECRETS.register(owner, role, secret)


def scrub(text: str, limit: int | None = TEXT_LIMIT) -> str:
    """``text`` with every registered secret and anything that looks like a credential masked (``***``),
    cut to ``limit`` characters (None: not cut, but never more than the first 65,536 are read).

    The one function every exception, stream failure and log line of the client goes through.
    """
    length = len(text)
    cut = length > _SCAN_LIMIT
    if cut:
        text = text[:_SCAN_LIMIT]
    text = _SECRETS.scrub(text)
    for pattern, replacement in _CREDENTIAL_PATTERNS:
        text = pattern.sub(replacement, text)
    if cut:
        text = text[: max(0, len(text) - max(_SCAN_GUARD, _SECRETS.longest))]
    if limit is not None and (cut or len(text) > limit):
        marker = f" ... [cut: {length} characters]"
        text = text[: max(0, limit - len(marker))] + marker
    elif cut:
        text += f" ... [cut: {length} characters]"
    return text


def scrub_messages(messages: Sequence[str]) -> list[str]:
    """Messages of the server, scrubbed, each cut to MESSAGE_LIMIT, at most MESSAGES_KEPT of them."""
    kept = [scrub(message, MESSAGE_LIMIT) for message in messages[:MESSAGES_KEPT]]
    if len(messages) > MESSAGES_KEPT:
        kept.append(f"... and {len(messages) - MESSAGES_KEPT} more messages")
    return kept


class _ScrubbingFilter(logging.Filter):
    """Scrubs each record of the client's logger: its lines may quote the server (PI's Errors, URLs)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = scrub(record.getMessage())
        record.args = None
        return True


logging.getLogger(LOGGER_NAME).addFilter(_ScrubbingFilter())


def redact_url(url: str) -> str:
    """``url`` without user info, and with ``***`` for the values of secret-looking query parameters."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    netloc = parts.netloc.rpartition("@")[2]
    query = parts.query
    if query and any(name.lower() in _SECRET_PARAMS for name, _ in parse_qsl(query, keep_blank_values=True)):
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, "***" if k.lower() in _SECRET_PARAMS else v) for k, v in pairs], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


class PIWebAPIError(Exception):
    """A request to PI Web API failed for good.

    Every field is scrubbed (see :func:`scrub`) when the error is made.

    Attributes:
        status: the HTTP status, or None when no answer arrived (connection error, timeout).
        url: the request URL with secrets removed.
        errors: PI's ``Errors`` messages (or the ``Message`` of an ASP.NET error), possibly empty; at most
            MESSAGES_KEPT of MESSAGE_LIMIT characters each.
    """

    def __init__(self, message: str, *, status: int | None = None, url: str = "", errors: Sequence[str] = ()):
        self._assign(
            scrub(message), status, scrub(redact_url(url), None) if url else "", scrub_messages(errors)
        )

    def _assign(self, message: str, status: int | None, url: str, errors: list[str]) -> None:
        self.message = message
        self.status = status
        self.url = url
        self.errors = errors
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
        return (_restore, (type(self), self.message, self.status, self.url, self.errors))


def _restore(cls: type[PIWebAPIError], message: str, status: int | None, url: str, errors: list[str]):
    # The fields were scrubbed when the error was made; scrubbing them again would cut the cut messages.
    error = cls.__new__(cls)
    error._assign(message, status, url, errors)
    return error


class PIAuthenticationError(PIWebAPIError):
    """The server refused the credentials (401), also after one token refresh when the auth can refresh."""


class PIConnectionError(PIWebAPIError):
    """No usable answer after every retry: connection errors, timeouts, or bodies cut short."""


class PIResponseError(PIWebAPIError):
    """The server answered 2xx with a body that is not the expected JSON, or with a top-level WebException."""


class PIPagingError(PIResponseError):
    """The pages of a collection do not add up: a page holds only objects that earlier pages listed, so the
    server (or a proxy) ignores ``startIndex``; reading on could loop for ever."""


class PIConfigurationError(ValueError):
    """The client was given a setting it cannot work with: a malformed base URL, credentials in the URL, a
    missing CA bundle, a nonsensical number. Raised when the client is made, before any request.

    A ``ValueError`` rather than a :class:`PIWebAPIError`: PI was never asked, no retry can help, and code
    that handles a failed request (reports the streams, tries again on the next run) must not take a wrong
    setting for one.
    """

    def __init__(self, message: str):
        super().__init__(scrub(message))


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
