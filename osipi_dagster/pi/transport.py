"""HTTP transport: one pooled session, retries with backoff and jitter, typed errors.

Bodies are read with ``stream=True`` and ``raw.read()`` (two to three times cheaper than ``.content``) and
handed to a decode function; a body that does not decode (cut short, not JSON, a top-level WebException) is
retried like a dropped connection, because with PI Web API it is a transient failure of that one answer.
"""

from __future__ import annotations

import http.client
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TypeVar

import msgspec
import requests
import urllib3
from requests.adapters import HTTPAdapter

from osipi_dagster.pi.auth import PIAuth
from osipi_dagster.pi.errors import (
    PIAuthenticationError,
    PIConnectionError,
    PIResponseError,
    PIWebAPIError,
    error_messages,
    redact_url,
)

log = logging.getLogger("osipi_dagster.pi")

T = TypeVar("T")
Params = Sequence[tuple[str, str | int | float]]

# What a dropped connection, a timeout or a body cut short raises somewhere between socket and requests.
_TRANSIENT = (requests.RequestException, urllib3.exceptions.HTTPError, http.client.HTTPException, OSError)


@dataclass(frozen=True)
class RetryPolicy:
    """When and how long to wait before sending a failed request again.

    ``statuses`` are retried; every other 4xx and 5xx fails at once (retrying 400, 404 or 409 cannot help).
    Waits grow as ``backoff_base_s * 2**attempt`` up to ``backoff_max_s``, with the upper half jittered so
    many clients do not come back in step; a 429 or 503 with ``Retry-After`` waits what the server asked
    for (at most ``retry_after_max_s``).
    """

    max_retries: int = 3
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    retry_after_max_s: float = 300.0
    statuses: frozenset[int] = frozenset({429, 502, 503, 504})

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        if retry_after is not None:
            return min(retry_after, self.retry_after_max_s)
        ceiling = min(self.backoff_max_s, self.backoff_base_s * (2**attempt))
        return ceiling / 2 + random.uniform(0, ceiling / 2)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())


class _Retryable(Exception):
    def __init__(self, error: PIWebAPIError, retry_after: float | None = None):
        self.error = error
        self.retry_after = retry_after


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
    ):
        self.base_url = base_url.rstrip("/")
        self.auth = auth
        self.verify = verify
        self.timeout = timeout
        self.post_timeout = post_timeout
        self.retry = retry
        self.session = requests.Session()
        adapter = HTTPAdapter(pool_connections=pool_size, pool_maxsize=pool_size, max_retries=0)
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
        :class:`PIResponseError` for a body it cannot use; the request is then retried like a dropped
        connection. ``on_send`` is called before every attempt (to count requests per read). Raises
        :class:`PIWebAPIError` (or a subclass) when it fails for good.
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
            if on_send is not None:
                on_send()
            try:
                return self._once(method, url, params, body, headers, timeout, decode)
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
                wait = self.retry.delay(attempt, failure.retry_after)
                attempt += 1
                log.warning(
                    "PI Web API request failed (%s); retry %d of %d in %.2f s",
                    failure.error,
                    attempt,
                    self.retry.max_retries,
                    wait,
                )
                time.sleep(wait)

    def _once(
        self,
        method: str,
        url: str,
        params: Params,
        body: bytes | None,
        headers: dict[str, str],
        timeout: float,
        decode: Callable[[bytes], T],
    ) -> T:
        with self._sent_lock:
            self.requests_sent += 1
        try:
            response = self.session.request(
                method,
                url,
                params=params,
                data=body,
                headers=headers,
                auth=self.auth,
                timeout=timeout,
                verify=self.verify,
                stream=True,
            )
            try:
                content = response.raw.read(decode_content=True)
            finally:
                response.close()
        except _TRANSIENT as exc:
            reason = "timed out" if isinstance(exc, requests.Timeout | TimeoutError) else "connection failed"
            raise _Retryable(PIConnectionError(f"{reason}: {type(exc).__name__}", url=url)) from None
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
        error = PIWebAPIError(
            http.client.responses.get(status, "error"), status=status, url=url, errors=errors
        )
        if status in self.retry.statuses:
            raise _Retryable(error, parse_retry_after(response.headers.get("Retry-After")))
        raise error


def _error_body(content: bytes) -> list[str]:
    try:
        return error_messages(msgspec.json.decode(content))
    except (msgspec.DecodeError, UnicodeDecodeError):
        text = content[:200].decode("utf-8", "replace").strip()
        return [text] if text else []
