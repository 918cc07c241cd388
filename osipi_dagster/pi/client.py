"""``PIWebAPIClient``: discovery, notification rules and bulk time-series reads against one PI Web API."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from types import TracebackType

from osipi_dagster.contract import TimeLike, format_ns, to_ns, to_pi_time
from osipi_dagster.pi.auth import Anonymous, PIAuth
from osipi_dagster.pi.errors import redact_url
from osipi_dagster.pi.notifications import Notifications
from osipi_dagster.pi.options import DEFAULT_CLIENT, DEFAULT_READ, ReadMode, ReadOptions
from osipi_dagster.pi.recorded import Limits, ReadSpec, StreamRead
from osipi_dagster.pi.transport import RetryPolicy, Transport, check_count
from osipi_dagster.pi.updates import Markers, UpdateRegistration, UpdatesRead, read_updates, register_updates

WebIds = str | Sequence[str]


class PIWebAPIClient(Notifications):
    """A client for one PI Web API, e.g. ``https://pi.example.com/piwebapi``.

    One pooled ``requests.Session`` carries every request; use the client as a context manager (or call
    :meth:`close`). ``timeout`` applies to GET requests and ``post_timeout`` to POST (batch) requests, in
    seconds. Transient failures (connection errors, timeouts, 429, 500, 502, 503, 504, bodies cut short) are
    retried ``max_retries`` times, the first at once, then with exponential backoff from ``backoff_base_s``
    up to ``backoff_max_s`` and jitter, or after the server's ``Retry-After``; see :class:`RetryPolicy`. A
    certificate that fails verification is not retried. ``verify`` is True (the system's CAs), False (no
    verification, for a lab server only) or the path of a CA bundle. ``max_count_limit`` is the server's
    MaxReturnedItemsPerCall; it is lowered by itself when the server refuses a ``maxCount``. ``compress``
    asks for gzip (the default); turn it off on loopback or a fast LAN, where compressing and decompressing
    only costs CPU. ``max_in_flight`` and ``max_requests_per_second`` (0: no limit) are the server's request
    budget in this process, shared with every other client of the same server and budget (see
    :class:`~osipi_dagster.pi.transport.RequestBudget`); a read's ``concurrency`` above it just waits.

    Settings are checked here, before any request: a base URL that is not an absolute ``http(s)://`` URL
    with a host, one that carries credentials (give them as ``auth``), a CA bundle that does not exist, a
    timeout <= 0, a negative ``max_retries`` or backoff, a ``pool_size`` or ``max_count_limit`` below 1
    raise :class:`~osipi_dagster.pi.errors.PIConfigurationError` (a ``ValueError``) naming the setting.

    Every time-series read returns a :class:`StreamRead`: iterate it for Arrow record batches with the
    schema :data:`~osipi_dagster.contract.RECORDED_SCHEMA` (``SUMMARY_SCHEMA`` for summaries), then read
    its ``failures``. A read given one WebId as a ``str`` uses ``/streams/{webId}/…``; a list of WebIds is
    read through ``/streamsets`` (``mode="streamsets"``, the default), ``/batch`` (``mode="batch"``) or
    one ``/streams`` request per stream (``mode="streams"``).

    Every read takes an optional ``cancel`` event: once it is set (from any thread), iterating the read
    raises :class:`~osipi_dagster.pi.recorded.ReadCancelledError` within about a tenth of a second, even
    while requests are in flight, and no further request is sent.
    """

    def __init__(
        self,
        base_url: str,
        *,
        auth: PIAuth | None = None,
        verify: bool | str = True,
        timeout: float = DEFAULT_CLIENT.timeout,
        post_timeout: float = DEFAULT_CLIENT.post_timeout,
        max_retries: int = DEFAULT_CLIENT.max_retries,
        backoff_base_s: float = DEFAULT_CLIENT.backoff_base_s,
        backoff_max_s: float = DEFAULT_CLIENT.backoff_max_s,
        pool_size: int = DEFAULT_CLIENT.pool_size,
        max_count_limit: int = DEFAULT_CLIENT.max_count_limit,
        user_agent: str = DEFAULT_CLIENT.user_agent,
        compress: bool = DEFAULT_CLIENT.compress,
        max_in_flight: int = DEFAULT_CLIENT.max_in_flight,
        max_requests_per_second: float = DEFAULT_CLIENT.max_requests_per_second,
    ):
        check_count("max_count_limit", max_count_limit, 1)
        self.auth = auth if auth is not None else Anonymous()
        self.retry = RetryPolicy(
            max_retries=max_retries, backoff_base_s=backoff_base_s, backoff_max_s=backoff_max_s
        )
        self._transport = Transport(
            base_url,
            auth=self.auth,
            verify=verify,
            timeout=timeout,
            post_timeout=post_timeout,
            retry=self.retry,
            pool_size=pool_size,
            user_agent=user_agent,
            compress=compress,
            max_in_flight=max_in_flight,
            max_requests_per_second=max_requests_per_second,
        )
        self._limits = Limits(max_count_limit)

    @property
    def base_url(self) -> str:
        return self._transport.base_url

    @property
    def verify(self) -> bool | str:
        """TLS verification: True (the system's CAs), False (none) or the path of a CA bundle."""
        return self._transport.verify

    @property
    def user_agent(self) -> str:
        return str(self._transport.session.headers["User-Agent"])

    @property
    def compress(self) -> bool:
        """Whether answers are asked for compressed (gzip over HTTP, permessage-deflate on channels)."""
        return self._transport.session.headers["Accept-Encoding"] != "identity"

    @property
    def max_count_limit(self) -> int:
        """The largest ``maxCount`` sent: MaxReturnedItemsPerCall as learnt from the server so far."""
        return self._limits.max_count

    @property
    def requests_sent(self) -> int:
        """Every HTTP request this client sent, retries included."""
        return self._transport.requests_sent

    def __repr__(self) -> str:
        return f"PIWebAPIClient({redact_url(self.base_url)!r}, auth={self.auth!r})"

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> PIWebAPIClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    # -- time series -----------------------------------------------------------------------------------

    def read_recorded(
        self,
        web_ids: WebIds,
        start: TimeLike,
        end: TimeLike,
        *,
        mode: ReadMode | str = DEFAULT_READ.mode,
        page_size: int | None = None,
        values_per_request: int = DEFAULT_READ.values_per_request,
        streams_per_request: int = DEFAULT_READ.streams_per_request,
        max_url_length: int = DEFAULT_READ.max_url_length,
        concurrency: int = DEFAULT_READ.concurrency,
        boundary_type: str = "Inside",
        filter_expression: str | None = None,
        cancel: threading.Event | None = None,
        expected_counts: Mapping[str, float] | None = None,
        dictionary: bool = False,
    ) -> StreamRead:
        """Every recorded value of each stream with ``start <= timestamp <= end`` (PI's inclusive bounds).

        ``start`` and ``end`` are timezone-aware datetimes, ISO 8601 strings with a zone, or nanoseconds
        since the epoch. Each stream pages on its own (see :mod:`osipi_dagster.pi.paging`); ``page_size`` is
        the number of new values asked per stream and page (default: ``values_per_request`` divided by the
        streams in the request, at most ``max_count_limit``). ``streams_per_request`` and
        ``max_url_length`` bound a request; ``concurrency`` requests are in flight at once.

        Without a ``page_size``, pages are planned from each stream's density so that most requests carry
        about ``values_per_request`` values (see :mod:`osipi_dagster.pi.recorded`): ``expected_counts``
        (WebId to the number of values expected between ``start`` and ``end``, e.g. from the previous
        run) sizes the first pages too; without it, a stream's first page tells its density. A wrong
        estimate costs requests, never values.
        ``boundary_type`` must be ``Inside``: PI's ``Outside`` and ``Interpolated`` add boundary values to
        every page, which paging cannot keep exact (a ``ValueError`` says so).

        With ``dictionary``, ``web_id`` and ``units`` are dictionary columns
        (:func:`~osipi_dagster.contract.dictionary_encoded`), for a writer that dictionary-encodes them
        anyway (Parquet, Delta).

        Returns a :class:`StreamRead`: batches are yielded as pages arrive; a stream that fails for good is
        reported in ``failures`` with the time from which to read it again, and never stops the others.
        Setting ``cancel`` ends the read with :class:`~osipi_dagster.pi.recorded.ReadCancelledError`.
        """
        start_ns, end_ns = to_ns(start), to_ns(end)
        if start_ns > end_ns:
            raise ValueError(f"start {format_ns(start_ns)} is after end {format_ns(end_ns)}")
        if boundary_type.lower() != "inside":
            # Outside and Interpolated add boundary values to every page: paged, they would be duplicated
            # and, with Outside, the value after endTime would move the cursor past the end for ever.
            raise ValueError(
                f"boundary_type {boundary_type!r} cannot be paged; only 'Inside' is supported (read the "
                "boundary values with read_value or read_interpolated)"
            )
        params = [("boundaryType", "Inside")]
        if filter_expression:
            params.append(("filterExpression", filter_expression))
        spec = ReadSpec(
            "recorded",
            tuple(params),
            paged=True,
            start=format_ns(start_ns),
            end=format_ns(end_ns),
            dictionary=dictionary,
        )
        options = ReadOptions(
            mode=self._mode(web_ids, mode),
            page_size=page_size,
            values_per_request=values_per_request,
            streams_per_request=streams_per_request,
            max_url_length=max_url_length,
            concurrency=concurrency,
        )
        ids = [web_ids] if isinstance(web_ids, str) else list(web_ids)
        return StreamRead(self._transport, ids, spec, options, self._limits, cancel, expected_counts)

    def read_interpolated(
        self,
        web_ids: WebIds,
        start: TimeLike,
        end: TimeLike,
        interval: str,
        *,
        sync_time: TimeLike | None = None,
        mode: ReadMode | str = DEFAULT_READ.mode,
        streams_per_request: int = DEFAULT_READ.streams_per_request,
        concurrency: int = DEFAULT_READ.concurrency,
        cancel: threading.Event | None = None,
    ) -> StreamRead:
        """Values interpolated every ``interval`` (a PI time span such as ``1h`` or ``30s``)."""
        params = [("startTime", to_pi_time(start)), ("endTime", to_pi_time(end)), ("interval", interval)]
        if sync_time is not None:
            params.append(("syncTime", to_pi_time(sync_time)))
        return self._read_once(
            web_ids, "interpolated", params, mode, streams_per_request, concurrency, cancel
        )

    def read_plot(
        self,
        web_ids: WebIds,
        start: TimeLike,
        end: TimeLike,
        intervals: int = 24,
        *,
        mode: ReadMode | str = DEFAULT_READ.mode,
        streams_per_request: int = DEFAULT_READ.streams_per_request,
        concurrency: int = DEFAULT_READ.concurrency,
        cancel: threading.Event | None = None,
    ) -> StreamRead:
        """PI's plot values: per interval the first, last, minimum, maximum and exceptional values."""
        params = [
            ("startTime", to_pi_time(start)),
            ("endTime", to_pi_time(end)),
            ("intervals", str(intervals)),
        ]
        return self._read_once(web_ids, "plot", params, mode, streams_per_request, concurrency, cancel)

    def read_summary(
        self,
        web_ids: WebIds,
        start: TimeLike,
        end: TimeLike,
        summary_types: Sequence[str] = ("Average",),
        *,
        duration: str | None = None,
        calculation_basis: str = "TimeWeighted",
        mode: ReadMode | str = DEFAULT_READ.mode,
        streams_per_request: int = DEFAULT_READ.streams_per_request,
        concurrency: int = DEFAULT_READ.concurrency,
        cancel: threading.Event | None = None,
    ) -> StreamRead:
        """Summaries (``Average``, ``Minimum``, ``Maximum``, ``Total``, ``Count``, …) over the window, or
        over each ``duration`` (e.g. ``1h``) in it. Rows have :data:`SUMMARY_SCHEMA`."""
        params = [("startTime", to_pi_time(start)), ("endTime", to_pi_time(end))]
        params += [("summaryType", summary_type) for summary_type in summary_types]
        params.append(("calculationBasis", calculation_basis))
        if duration is not None:
            params.append(("summaryDuration", duration))
        return self._read_once(web_ids, "summary", params, mode, streams_per_request, concurrency, cancel)

    def read_value(
        self,
        web_ids: WebIds,
        time: TimeLike | None = None,
        *,
        mode: ReadMode | str = DEFAULT_READ.mode,
        streams_per_request: int = DEFAULT_READ.streams_per_request,
        concurrency: int = DEFAULT_READ.concurrency,
        cancel: threading.Event | None = None,
    ) -> StreamRead:
        """Each stream's value at ``time`` (interpolated or PI's rule for the stream), or its snapshot."""
        params = [] if time is None else [("time", to_pi_time(time))]
        return self._read_once(web_ids, "value", params, mode, streams_per_request, concurrency, cancel)

    def read_end(
        self,
        web_ids: WebIds,
        *,
        mode: ReadMode | str = DEFAULT_READ.mode,
        streams_per_request: int = DEFAULT_READ.streams_per_request,
        concurrency: int = DEFAULT_READ.concurrency,
        cancel: threading.Event | None = None,
    ) -> StreamRead:
        """Each stream's last recorded value (which can lie in the future for future-data points)."""
        return self._read_once(web_ids, "end", [], mode, streams_per_request, concurrency, cancel)

    def _read_once(
        self,
        web_ids: WebIds,
        action: str,
        params: list[tuple[str, str]],
        mode: str,
        streams_per_request: int,
        concurrency: int,
        cancel: threading.Event | None,
    ) -> StreamRead:
        options = ReadOptions(
            mode=self._mode(web_ids, mode), streams_per_request=streams_per_request, concurrency=concurrency
        )
        return self._read(web_ids, ReadSpec(action, tuple(params)), options, cancel)

    def _read(
        self, web_ids: WebIds, spec: ReadSpec, options: ReadOptions, cancel: threading.Event | None
    ) -> StreamRead:
        ids = [web_ids] if isinstance(web_ids, str) else list(web_ids)
        return StreamRead(self._transport, ids, spec, options, self._limits, cancel)

    @staticmethod
    def _mode(web_ids: WebIds, mode: ReadMode | str) -> ReadMode:
        return ReadMode.STREAMS if isinstance(web_ids, str) else ReadMode(mode)

    # -- stream updates --------------------------------------------------------------------------------

    def register_updates(
        self, web_ids: WebIds, *, max_url_length: int = DEFAULT_READ.max_url_length, concurrency: int = 2
    ) -> UpdateRegistration:
        """Register streams for PI Web API's Stream Updates and return one marker per stream.

        Sends ``POST /streamsets/updates?webId=…`` (no body; with the ``X-Requested-With`` header PI's CSRF
        defence asks for), no URL longer than ``max_url_length``, ``concurrency`` requests at once.
        Registering a stream again is harmless (PI answers ``AlreadyRegistered``).

        Returns an :class:`~osipi_dagster.pi.updates.UpdateRegistration`: ``markers`` maps each registered
        WebId to the marker to give :meth:`read_updates`; ``failures`` maps each other WebId to why. A WebId
        PI refuses (invalid or unknown, a static AF attribute, a ``Failed`` registration) is a
        :class:`~osipi_dagster.pi.updates.RegistrationRefusedError` and never sinks the others (a request
        refused as a whole is split until the refused WebId stands alone). Updates start at the
        registration: read the stream's recorded values up to now for what came before. Only a refused
        authentication raises (:class:`~osipi_dagster.pi.errors.PIAuthenticationError`).
        """
        return register_updates(
            self._transport, web_ids, max_url_length=max_url_length, concurrency=concurrency
        )

    def read_updates(
        self, markers: Markers, *, max_url_length: int = DEFAULT_READ.max_url_length, concurrency: int = 2
    ) -> UpdatesRead:
        """Every change to each stream since its marker: new, late, edited and deleted values.

        ``markers`` maps each WebId to its marker (from :meth:`register_updates` or the previous
        ``read_updates``). Sends ``GET /streamsets/updates?marker=…``, no URL longer than ``max_url_length``,
        ``concurrency`` requests at once; answers are matched to streams by the marker sent and the
        ``Source`` WebId, never by position, and an answer for a stream that was not asked for is ignored
        and logged.

        Returns an :class:`~osipi_dagster.pi.updates.UpdatesRead`; each WebId lands in exactly one of:

        - ``markers``: the stream was read; its events are rows of ``events`` (schema
          :data:`~osipi_dagster.pi.updates.UPDATE_EVENTS_SCHEMA`: the recorded-value columns plus ``action``
          and ``previous_event_action``), contiguous and in PI's order, which is the order to apply them in.
          **Store the new marker only after the events are durably processed**: the new marker skips them
          for good, while the old one reads them again (so a crash in between repeats events; apply them
          idempotently);
        - ``needs_registration``: PI no longer serves the stream's marker (404 "Cache not found", an
          invalid marker, or an ``Exception`` such as "The signup was updated…"): an
          :class:`~osipi_dagster.pi.updates.UpdatesLostError`, never "no events". Register the stream again
          and read its recorded values from the last event you stored, to fill the gap;
        - ``failures``: the stream could not be read this time (no answer, 5xx after retries, a malformed
          answer, an event carrying ``Errors``): keep its old marker and read it again next time.

        Only a refused authentication raises (:class:`~osipi_dagster.pi.errors.PIAuthenticationError`).
        """
        return read_updates(self._transport, markers, max_url_length=max_url_length, concurrency=concurrency)
