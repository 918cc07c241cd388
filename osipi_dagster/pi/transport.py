"""HTTP transport: one pooled session, urllib3's retries (backoff, jitter, ``Retry-After``), typed errors.

Status retries (429, 500, 502, 503, 504) and connection retries are urllib3's ``Retry`` mounted on the
session's adapter; each retry it sends is counted as a request and logged. The client retries only what
urllib3 cannot see: a 2xx body that does not decode (cut short, not JSON, a top-level WebException), because
with PI Web API that is a transient failure of that one answer. Bodies are read with ``stream=True`` and
``raw.read()`` (two to three times cheaper than ``.content``; a gzip body is inflated by one zlib-ng call, see
:func:`_body`) and handed to a decode function.

A PI Web API is finite: every request to one server from this process, retries included, goes through
that server's :class:`RequestBudget` (at most ``max_in_flight`` requests at once, at most
``max_per_second`` sent per second), shared by every client of the process for that server and budget.
Across processes (Dagster steps, concurrent runs) the concurrency pool of the PI assets bounds how many
steps call the server at once (see ``docs/CONFIGURATION.md``).

Settings are checked when the transport is made: a malformed base URL, credentials in it, a missing CA
bundle or a nonsensical number raise :class:`PIConfigurationError` before any request.
"""

from __future__ import annotations

import http.client
import logging
import math
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, TypeVar
from urllib.parse import urlsplit

import msgspec
import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.exceptions import InvalidHeader, LocationParseError, MaxRetryError
from urllib3.util.retry import RequestHistory, Retry
from zlib_ng import zlib_ng

from osipi_dagster.pi.auth import PIAuth
from osipi_dagster.pi.errors import (
    LOGGER_NAME,
    PIAuthenticationError,
    PIConfigurationError,
    PIConnectionError,
    PIResponseError,
    PIWebAPIError,
    error_messages,
    redact_url,
)
from osipi_dagster.pi.options import DEFAULT_CLIENT

log = logging.getLogger(LOGGER_NAME)

T = TypeVar("T")
Params = Sequence[tuple[str, str | int | float]]

# What a dropped connection, a timeout or a body cut short raises somewhere between socket and requests.
_GZIP_MAGIC = b"\x1f\x8b\x08"  # ID1, ID2 and CM (deflate): how every gzip member starts
# The one-buffer inflate reserves what the trailer says up front. Deflate cannot inflate more than 1,032
# times its size, and past 1 GiB an answer grows block by block, so a lying trailer cannot reserve more.
_DEFLATE_MAX_RATIO = 1032
_ONE_BUFFER_MAX_BYTES = 1 << 30
_TRANSIENT = (requests.RequestException, urllib3.exceptions.HTTPError, http.client.HTTPException, OSError)
_TIMEOUTS = (requests.Timeout, urllib3.exceptions.ReadTimeoutError, TimeoutError)

# The only POSTs this client sends are /batch, whose sub-requests are all GETs (it never writes to PI), and
# the OIDC token request: sending either again changes nothing, so they are retried like GETs.
_RETRIED_METHODS = frozenset({"GET", "POST"})

_TLS_HINT = (
    "give the certificate of the CA that signed the server's certificate as a PEM file "
    "(verify='/path/ca.pem'; OSIPI_PI_CA_BUNDLE for the Dagster resources), or, for a lab server only, "
    "turn verification off (verify=False; OSIPI_PI_VERIFY_TLS=false)"
)


@dataclass(frozen=True)
class RetryPolicy:
    """When and how long to wait before sending a failed request again.

    Connection failures and the ``statuses`` (429, 500, 502, 503, 504: PI Web API answers 500 for a busy AF
    SDK cache or an IIS recycle too) are retried by urllib3's ``Retry`` (:meth:`urllib3_retry`), at most
    ``max_retries`` times: the first retry at once, then after ``backoff_base_s * 2**n`` seconds plus up to
    ``backoff_base_s`` of jitter, never more than ``backoff_max_s``; a ``Retry-After`` is waited as asked, at
    most ``retry_after_max_s``. Every other 4xx and 5xx fails at once (retrying 400, 404 or 409 cannot
    help), and so does a certificate that fails verification (it will fail again). The client retries an
    unusable body and a stream that failed inside an answer with the same waits (:meth:`delay`).
    """

    max_retries: int = DEFAULT_CLIENT.max_retries
    backoff_base_s: float = DEFAULT_CLIENT.backoff_base_s
    backoff_max_s: float = DEFAULT_CLIENT.backoff_max_s
    retry_after_max_s: float = 300.0
    statuses: frozenset[int] = frozenset({429, 500, 502, 503, 504})

    def __post_init__(self) -> None:
        check_count("max_retries", self.max_retries, 0)
        for name in ("backoff_base_s", "backoff_max_s", "retry_after_max_s"):
            _check_seconds(name, getattr(self, name), allow_zero=True)

    def urllib3_retry(self, on_retry: Callable[[RequestHistory, int, float], None] | None = None) -> Retry:
        """The urllib3 ``Retry`` of this policy; ``on_retry(failure, retry_number, wait_s)`` is called
        before each retry is sent."""
        return _Retry(
            total=self.max_retries,
            allowed_methods=_RETRIED_METHODS,
            status_forcelist=self.statuses,
            backoff_factor=self.backoff_base_s,
            backoff_jitter=self.backoff_base_s,
            backoff_max=self.backoff_max_s,
            retry_after_max=self.retry_after_max_s,
            respect_retry_after_header=True,
            raise_on_status=False,  # the last answer is returned, so its status and PI's Errors are reported
            on_retry=on_retry,
        )

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry ``attempt + 1`` (``attempt`` counts from 0): urllib3's backoff."""
        failures = (RequestHistory(None, None, None, None, None),) * (attempt + 1)
        return self.urllib3_retry().new(history=failures).get_backoff_time()


class _Retry(Retry):
    """urllib3's ``Retry`` that reports each retry right before sending it, gives up at once on a certificate
    that failed verification, and waits the backoff when a ``Retry-After`` cannot be read."""

    def __init__(
        self, *args: Any, on_retry: Callable[[RequestHistory, int, float], None] | None = None, **kwargs: Any
    ):
        super().__init__(*args, **kwargs)
        self.on_retry = on_retry

    def new(self, **kw: Any) -> _Retry:
        return super().new(on_retry=self.on_retry, **kw)

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: Any = None,
        error: Exception | None = None,
        _pool: Any = None,
        _stacktrace: Any = None,
    ) -> _Retry:
        if error is not None and _find(error, ssl.SSLCertVerificationError) is not None:
            raise MaxRetryError(_pool, url or "", error) from error
        return super().increment(method, url, response, error, _pool, _stacktrace)

    def get_retry_after(self, response: Any) -> float | None:
        try:
            return super().get_retry_after(response)
        except InvalidHeader:
            return None

    def sleep(self, response: Any = None) -> None:
        retry_after = None
        if response is not None and self.respect_retry_after_header:
            retry_after = self.get_retry_after(response)
        wait = retry_after or self.get_backoff_time()
        time.sleep(wait)
        # Reported after the wait, right before the request is sent again: a read cancelled meanwhile
        # refuses the retry there (its hook raises), so nothing is sent after a cancel.
        if self.on_retry is not None:
            self.on_retry(self.history[-1], len(self.history), wait)


class RequestBudget:
    """At most ``max_in_flight`` requests at once and ``max_per_second`` sent per second (0: no rate limit)
    to one PI Web API; thread-safe. Get the process's budget of a server with :func:`request_budget`."""

    def __init__(self, max_in_flight: int, max_per_second: float = 0.0):
        check_count("max_in_flight", max_in_flight, 1)
        if isinstance(max_per_second, bool) or not isinstance(max_per_second, int | float):
            raise PIConfigurationError(f"max_requests_per_second must be a number, got {max_per_second!r}")
        if not 0 <= max_per_second < math.inf:
            raise PIConfigurationError(
                f"max_requests_per_second must be 0 (no limit) or more, got {max_per_second!r}"
            )
        self.max_in_flight = max_in_flight
        self.max_per_second = max_per_second
        self._slots = threading.BoundedSemaphore(max_in_flight)
        self._interval = 1 / max_per_second if max_per_second else 0.0
        self._lock = threading.Lock()
        self._next_send = 0.0  # time.monotonic() before which no request may be sent

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one of the in-flight slots (waiting for one) while the block sends and reads a request."""
        self._slots.acquire()
        try:
            yield
        finally:
            self._slots.release()

    def pace(self) -> None:
        """Wait until the rate limit lets one more request go (call right before each send)."""
        if not self._interval:
            return
        with self._lock:
            now = time.monotonic()
            at = max(now, self._next_send)
            self._next_send = at + self._interval
        if at > now:
            time.sleep(at - now)


_BUDGETS: dict[tuple[str, int, float], RequestBudget] = {}
_BUDGETS_LOCK = threading.Lock()


def request_budget(base_url: str, max_in_flight: int, max_per_second: float = 0.0) -> RequestBudget:
    """The budget this process shares among every client of the PI Web API at ``base_url`` that asks for
    the same limits (a client asking for other limits gets a budget of its own)."""
    key = (base_url.lower(), max_in_flight, float(max_per_second))
    with _BUDGETS_LOCK:
        budget = _BUDGETS.get(key)
        if budget is None:
            budget = _BUDGETS[key] = RequestBudget(max_in_flight, max_per_second)
        return budget


class _Call(NamedTuple):
    """The request a thread is sending, for the retries urllib3 sends on its behalf."""

    url: str
    on_send: Callable[[], None] | None


class _Retryable(Exception):
    def __init__(self, error: PIWebAPIError):
        self.error = error


class Transport:
    """Sends requests to one PI Web API over a pooled session; thread-safe."""

    def __init__(
        self,
        base_url: str,
        *,
        auth: PIAuth,
        verify: bool | str,
        timeout: float,
        post_timeout: float,
        retry: RetryPolicy,
        pool_size: int,
        user_agent: str,
        compress: bool = True,
        max_in_flight: int = DEFAULT_CLIENT.max_in_flight,
        max_requests_per_second: float = DEFAULT_CLIENT.max_requests_per_second,
    ):
        self.base_url = checked_base_url(base_url)
        self.budget = request_budget(self.base_url, max_in_flight, max_requests_per_second)
        _check_seconds("timeout", timeout)
        _check_seconds("post_timeout", post_timeout)
        check_count("pool_size", pool_size, 1)
        _check_ca_bundle(verify)
        self.auth = auth
        self.verify = verify
        self.timeout = timeout
        self.post_timeout = post_timeout
        self.retry = retry
        self.session = requests.Session()
        retries = retry.urllib3_retry(self._retrying)
        adapter = HTTPAdapter(pool_connections=pool_size, pool_maxsize=pool_size, max_retries=retries)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers.update(
            {
                "Accept": "application/json",
                # gzip saves bandwidth to a remote server; on loopback or a fast LAN it only costs CPU.
                "Accept-Encoding": "gzip, deflate" if compress else "identity",
                "User-Agent": user_agent,
            }
        )
        self._sent_lock = threading.Lock()
        self._calls = threading.local()
        self.requests_sent = 0  # every HTTP request, retries included
        auth.bind(self.session, self.base_url, verify=verify, timeout=timeout)

    def close(self) -> None:
        self.session.close()

    def url(self, path: str) -> str:
        """An absolute URL for ``path`` (absolute URLs pass through; others are relative to the base URL)."""
        if path.startswith(("http://", "https://")):
            return path
        return f"{self.base_url}/{path.lstrip('/')}"

    def get(
        self,
        path: str,
        params: Params = (),
        *,
        decode: Callable[[bytes], T],
        on_send: Callable[[], None] | None = None,
    ) -> T:
        return self.request("GET", path, params=params, decode=decode, on_send=on_send)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Params = (),
        body: bytes | None = None,
        decode: Callable[[bytes], T],
        on_send: Callable[[], None] | None = None,
    ) -> T:
        """Send one request, retrying transient failures, and return ``decode(body)`` of the 2xx answer.

        ``decode`` may raise ``msgspec.DecodeError``/``msgspec.ValidationError``/``ValueError`` or
        :class:`PIResponseError` for a body it cannot use; the request is then sent again, up to
        ``max_retries`` times. ``on_send`` is called before every request sent, urllib3's retries included
        (to count requests per read). Raises :class:`PIWebAPIError` (or a subclass) when it fails for good.
        """
        url = self.url(path)
        headers = (
            {}
            if method == "GET"
            else {"X-Requested-With": "osipi-dagster", "Content-Type": "application/json"}
        )
        timeout = self.timeout if method == "GET" else self.post_timeout
        attempt = 0
        refreshed = False
        while True:
            try:
                with self.budget.slot():
                    self.budget.pace()
                    self._count(on_send)
                    return self._send(method, url, params, body, headers, timeout, decode, on_send)
            except PIAuthenticationError:
                if refreshed or not self.auth.on_unauthorized():
                    raise
                refreshed = True
                log.info(
                    "PI Web API answered 401; retrying once with renewed credentials: %s", redact_url(url)
                )
            except _Retryable as failure:
                if attempt >= self.retry.max_retries:
                    raise failure.error from None
                wait = self.retry.delay(attempt)
                attempt += 1
                log.warning(
                    "PI Web API answer unusable (%s); retry %d of %d in %.2f s",
                    failure.error,
                    attempt,
                    self.retry.max_retries,
                    wait,
                )
                time.sleep(wait)

    def _count(self, on_send: Callable[[], None] | None) -> None:
        with self._sent_lock:
            self.requests_sent += 1
        if on_send is not None:
            on_send()

    def _retrying(self, failure: RequestHistory, number: int, wait: float) -> None:
        """urllib3 is about to send a request again (its wait is over): count it, and say why."""
        call: _Call | None = getattr(self._calls, "current", None)
        if call is not None:  # None: a request of the auth (the token endpoint), not one of PI Web API
            self.budget.pace()
            self._count(call.on_send)
        if failure.status is not None:
            cause = f"HTTP {failure.status}: {http.client.responses.get(failure.status, 'error')}"
        else:
            cause = _failure_text(failure.error, self.timeout) if failure.error else "failed"
        log.warning(
            "PI Web API request failed (%s); retry %d of %d after %.2f s [%s]",
            cause,
            number,
            self.retry.max_retries,
            wait,
            redact_url(call.url if call is not None else failure.url or ""),
        )

    def _send(
        self,
        method: str,
        url: str,
        params: Params,
        body: bytes | None,
        headers: dict[str, str],
        timeout: float,
        decode: Callable[[bytes], T],
        on_send: Callable[[], None] | None,
    ) -> T:
        try:
            # Prepared apart from the send (as Session.request does), so that a token request the auth
            # makes while preparing is not counted as a retry of this request.
            prepared = self.session.prepare_request(
                requests.Request(method, url, params=params, data=body, headers=headers, auth=self.auth)
            )
            settings = self.session.merge_environment_settings(prepared.url, {}, True, self.verify, None)
            self._calls.current = _Call(url, on_send)
            try:
                response = self.session.send(prepared, timeout=timeout, **settings)
            finally:
                self._calls.current = None
        except requests.exceptions.SSLError as exc:
            raise PIConnectionError(_tls_failure(exc), url=url) from None
        except _TRANSIENT as exc:  # urllib3 has retried it already
            raise PIConnectionError(_failure_text(exc, timeout), url=url) from None
        try:
            content = _body(response.raw)
        except _TRANSIENT as exc:
            raise _Retryable(PIConnectionError(_failure_text(exc, timeout), url=url)) from None
        finally:
            response.close()
        status = response.status_code
        if 200 <= status < 300:
            try:
                return decode(content)
            except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
                raise _Retryable(
                    PIResponseError(f"invalid response body: {exc}", status=status, url=url)
                ) from None
            except PIResponseError as exc:
                raise _Retryable(exc) from None
        errors = _error_body(content)
        if status == 401:
            raise PIAuthenticationError("authentication failed", status=status, url=url, errors=errors)
        raise PIWebAPIError(http.client.responses.get(status, "error"), status=status, url=url, errors=errors)


def _body(raw: urllib3.BaseHTTPResponse) -> bytes:
    """The answer's body, decoded. A gzip body is inflated here in one call: urllib3's decoder copies the
    inflated body twice more (a sixth of the inflate's own cost on a 10 MB answer)."""
    if raw.headers.get("Content-Encoding", "").strip().lower() != "gzip":
        return raw.read(decode_content=True)
    return _gunzip(raw.read(decode_content=False))


def _gunzip(data: bytes) -> bytes:
    """Every gzip member of ``data``, inflated; ``urllib3.exceptions.DecodeError`` (a broken body, retried
    like one cut short) when it is not gzip or ends inside a member."""
    if not data:
        return data
    body = _gunzip_one_member(data)
    if body is not None:
        return body
    parts = []
    try:
        while True:
            member = zlib_ng.decompressobj(16 + zlib_ng.MAX_WBITS)
            parts.append(member.decompress(data))
            if not member.eof:
                raise urllib3.exceptions.DecodeError("the gzip body ends inside a member")
            data = member.unused_data
            if not data:
                break
    except zlib_ng.error as exc:
        raise urllib3.exceptions.DecodeError(f"the gzip body does not inflate: {exc}") from None
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _gunzip_one_member(data: bytes) -> bytes | None:
    """``data`` inflated into one buffer of the size its trailer gives, when it is one gzip member;
    ``None`` when that cannot be told cheaply (the caller then inflates member by member).

    Why: ``decompressobj`` grows its output in blocks (up to 16 MiB) and joins them, so every 10 MB answer
    maps fresh memory twice and page-faults through it; that was most of the reader threads' kernel time.
    ``decompress`` fills a buffer of the given size in place, but reads only the first member and ignores
    what follows it. So the fast path is taken only when nothing can follow: every further member would
    start with the gzip magic, which is searched for in the compressed bytes (a chance match in the
    deflate data only sends the answer down the exact path), and the output must have the length the last
    4 bytes (the trailer's ISIZE) promise, which bytes after the member would have to fake.

    zlib-ng (``zlib_ng``: zlib's interface, its SIMD inflate) inflates about twice as fast as zlib. It
    doubles an output buffer that is full before it looks for the end of the stream, so a buffer of
    exactly ISIZE bytes would be mapped afresh at twice the size and page-faulted through on every
    answer: the buffer has one byte to spare, which is trimmed in place. Not ISA-L (``isal``), though it
    inflates faster still: its assembly leaves the AVX registers' upper halves dirty (no ``vzeroupper``),
    and the SSE code run next in the thread (msgspec's number parsing) then ran twice as slow."""
    size = int.from_bytes(data[-4:], "little")
    if not 0 < size <= min(_ONE_BUFFER_MAX_BYTES, _DEFLATE_MAX_RATIO * len(data)):
        return None
    if data.find(_GZIP_MAGIC, 1) != -1:
        return None
    try:
        body = zlib_ng.decompress(data, 31, bufsize=size + 1)
    except zlib_ng.error:
        return None  # the exact path names what is broken
    return body if len(body) == size else None


def _error_body(content: bytes) -> list[str]:
    try:
        return error_messages(msgspec.json.decode(content))
    except (msgspec.DecodeError, UnicodeDecodeError):
        text = content.decode("utf-8", "replace").strip()
        return [text] if text else []


def _chain(error: BaseException) -> Iterator[BaseException]:
    """``error`` and what it wraps, outermost first (requests wraps urllib3, which wraps ssl and socket)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        wrapped = getattr(current, "reason", None)  # urllib3's MaxRetryError
        if not isinstance(wrapped, BaseException):
            wrapped = next((arg for arg in current.args if isinstance(arg, BaseException)), None)
        current = wrapped or current.__cause__ or current.__context__


def _find(error: BaseException, kind: type[BaseException]) -> Any:
    return next((cause for cause in _chain(error) if isinstance(cause, kind)), None)


def _failure_text(error: BaseException, timeout: float) -> str:
    """What went wrong without an answer: a timeout, or the innermost cause (e.g. Connection refused)."""
    if any(isinstance(cause, _TIMEOUTS) for cause in _chain(error)):
        return f"timed out: no answer within {timeout:g} s"
    *_, root = _chain(error)
    detail = str(root)
    return f"connection failed: {type(root).__name__}" + (f": {detail}" if detail else "")


def _tls_failure(error: BaseException) -> str:
    verification = _find(error, ssl.SSLCertVerificationError)
    if verification is not None:
        reason = verification.verify_message or str(verification)
        return (
            f"TLS certificate verify failed ({reason}): the server's certificate is not trusted: {_TLS_HINT}"
        )
    *_, root = _chain(error)
    return f"TLS handshake failed ({root}): check that the URL's host and port serve HTTPS"


def check_count(name: str, value: object, least: int) -> None:
    """:class:`PIConfigurationError` unless the setting ``name`` is a whole number >= ``least``."""
    if not isinstance(value, int) or isinstance(value, bool) or value < least:
        raise PIConfigurationError(f"{name} must be a whole number >= {least} (got {value!r})")


def _check_seconds(name: str, value: object, *, allow_zero: bool = False) -> None:
    valid = (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and (value >= 0 if allow_zero else value > 0)
    )
    if not valid:
        bound = ">= 0" if allow_zero else "> 0"
        raise PIConfigurationError(f"{name} must be a finite number of seconds {bound} (got {value!r})")


def _check_ca_bundle(verify: bool | str) -> None:
    if isinstance(verify, bool):
        return
    bundle = Path(verify)
    if not str(verify) or not bundle.exists():
        raise PIConfigurationError(f"the CA bundle {str(verify)!r} does not exist: {_TLS_HINT}")
    if bundle.is_dir():
        return  # a folder of hashed certificates (c_rehash), as requests takes it
    try:
        ssl.create_default_context(cafile=str(bundle))
    except (ssl.SSLError, OSError) as exc:
        raise PIConfigurationError(
            f"the CA bundle {str(verify)!r} holds no certificate that can be read ({exc}): {_TLS_HINT}"
        ) from None


def checked_base_url(base_url: str) -> str:
    """``base_url`` without a trailing slash; :class:`PIConfigurationError` says what is wrong with it."""
    url = base_url.strip() if isinstance(base_url, str) else ""
    if not url:
        raise PIConfigurationError(
            f"the PI Web API base URL is empty (got {base_url!r}): give it as https://host/piwebapi"
        )
    shown = repr(_shown(url))
    if "://" not in url:
        raise PIConfigurationError(
            f"the PI Web API base URL {shown} is not an absolute URL: write it with its scheme, as "
            "https://host/piwebapi"
        )
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - urlsplit checks the port only when it is read
    except ValueError as exc:
        raise PIConfigurationError(f"the PI Web API base URL {shown} is malformed: {exc}") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise PIConfigurationError(
            f"the PI Web API base URL {shown} has the scheme {parts.scheme!r}: PI Web API is served over "
            "https:// (http:// only for a lab server or the mock)"
        )
    if "@" in parts.netloc:
        raise PIConfigurationError(
            f"the PI Web API base URL {shown} carries credentials (user:password@): remove them and give "
            "them as auth settings instead (auth=BasicAuth(user, password); OSIPI_PI_AUTH=basic with "
            "OSIPI_PI_USERNAME and OSIPI_PI_PASSWORD), which are never shown in logs and errors"
        )
    if not parts.hostname:
        raise PIConfigurationError(
            f"the PI Web API base URL {shown} has no host: give it as https://host/piwebapi"
        )
    if parts.query or parts.fragment:
        raise PIConfigurationError(
            f"the PI Web API base URL {shown} carries a query or a fragment: give only scheme, host and path"
        )
    try:
        urllib3.util.parse_url(url)
    except LocationParseError:
        raise PIConfigurationError(
            f"the PI Web API base URL {shown} is malformed: its host or port is not valid"
        ) from None
    return url.rstrip("/")


def _shown(url: str) -> str:
    """``url`` as an error may show it: user info masked, even when the URL is too broken to parse."""
    scheme, separator, rest = url.partition("://")
    if not separator:
        scheme, rest = "", url
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        authority = "***@" + authority.rpartition("@")[2]
    return f"{scheme}{separator}{authority}{slash}{path}"
