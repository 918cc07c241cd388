"""Bulk time-series reads: many streams per HTTP call, each stream paged and failing on its own.

A read is a :class:`StreamRead`: iterate it for Arrow record batches (yielded as answers arrive, never
accumulated per stream) and look at ``failures`` for the streams that failed for good. Streams travel to
the server in one of three ways (``mode``):

- ``"streamsets"``: ``GET /streamsets/{action}?webId=…&webId=…`` with the URL length bounded. One request
  has one ``startTime``: streams whose cursors coincide share one; once the streams' cursors differ
  (after their first page), those that cannot fill a streamset request travel as ``/batch`` sub-requests;
- ``"batch"``: ``POST /batch`` in the real format, one ``GET /streams/{id}/{action}`` sub-request per
  stream, each with its own cursor; answers are mapped by request id, never by position;
- ``"streams"``: one ``GET /streams/{id}/{action}`` per stream.

Density-aware planning (recorded reads without a fixed ``page_size``): each stream's density (values per
second of PI time) is known from a hint (``expected_counts``, e.g. the previous run's count), learnt from
its first page, or, for a stream not read yet, guessed from the densities of the last pages read; a
stream's next page then asks for what the stream is expected to still hold (plus a margin), and requests
are packed so that their expected values add up to ``values_per_request``. Most streams thus finish in
their first page (only those of the first requests, sent before any density is known, take two) and most
requests are full. The planning only sizes ``maxCount``: paging stays exact whatever the estimate (a
stream that holds more is simply paged again).

Adaptive page sizes: an answer slower than ``slow_answer_s``, or a request refused with 413 or failing
with 502/503 after the transport's retries, halves the values asked per request for the rest of the read
(down to 1/64 of ``values_per_request``; the streams of a failed request are read again, up to
``max_retries`` times); fast answers bring it back up step by step.

Failure isolation: a request refused with a 4xx is split in halves until the refused streams stand alone,
so one bad WebId never sinks the others. A failed batch sub-request, a stream-level error or a value
carrying ``Errors`` fails only its stream, which is retried from exactly where it stopped, up to
``max_retries`` times without progress, before it is reported. A request that still fails after the
transport's own retries (5xx, timeouts, dropped connections, broken bodies) is reported for exactly the
streams it carried. Only a refused authentication aborts the whole read.

A wrong answer fails its stream, never counts as data or as "no values": a stream's answer without ``Items``
(or ``Value``), a streamset entry that is not a stream's answer, a timestamp that is not a time, a page
that starts before the stream's cursor or does not move it (a server ignoring ``startTime``). The streams
of a streamset answer are matched to the request by the identity their WebIds encode
(:mod:`osipi_dagster.pi.webids`), never by position: a stream missing from the answer or answered twice
fails, an entry for a stream that was not requested is ignored.

A read can be cancelled from another thread with the ``cancel`` event: iterating then raises
:class:`ReadCancelledError` within :data:`CANCEL_POLL_S`, nothing more is sent, and requests in flight are
left to finish in their threads.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import logging
import math
import re
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

import msgspec
import pyarrow as pa

from osipi_dagster.contract import to_ns
from osipi_dagster.pi import decode as dec
from osipi_dagster.pi.errors import (
    PIAuthenticationError,
    PIWebAPIError,
    error_messages,
    redact_url,
    scrub,
)
from osipi_dagster.pi.options import ReadMode, ReadOptions
from osipi_dagster.pi.paging import Cursor, advances, page_problem, plan_page, request_count
from osipi_dagster.pi.webids import pair_streams

if TYPE_CHECKING:
    from osipi_dagster.pi.transport import Transport

log = logging.getLogger("osipi_dagster.pi")

CANCEL_POLL_S = 0.1  # how often a read waiting for answers looks at its cancel event

_RECORDED_FIELDS = ("Timestamp", "Value", "Good", "Questionable", "Substituted", "Annotated", "Errors")
# Left as they are in query values, as RFC 3986 allows (PI Web API's own examples write times and
# selectedFields so): a URL with no percent-escape is one that urllib3 passes through at C speed, where any
# escape makes it re-check the URL byte by byte in Python, twice a request (88 -> 33 µs a 2 KB URL, 588 ->
# 195 a 13 KB one: benchmarks/bench_urls.py).
_QUERY_SAFE = ":;"
# PI's words for "maxCount is above MaxReturnedItemsPerCall"; the number in brackets is the limit.
_LIMIT_MESSAGE = re.compile(r"maximum allowed|maxcount", re.IGNORECASE)
_LIMIT_NUMBER = re.compile(r"maximum allowed\D{0,20}?(\d+)", re.IGNORECASE)


class ReadCancelledError(Exception):
    """The read's ``cancel`` event was set: nothing more is yielded or sent.

    Batches yielded before stay yielded. ``completed`` and ``failures`` stay true but describe only part of
    the read: a stream in neither was read in part or not at all.
    """


@dataclass(frozen=True)
class StreamFailure:
    """A stream whose read failed for good.

    Attributes:
        web_id: the stream's WebId, as the caller passed it.
        status: the HTTP status of the failed request or batch sub-request; None when no answer arrived
            (connection error, timeout, a body cut short) and for a per-value or stream-level error.
        message: what went wrong, with PI's ``Errors``; scrubbed of secrets and cut to a few thousand
            characters when the failure is made (see :func:`~osipi_dagster.pi.errors.scrub`).
        resume_from: a PI time string: every value of the stream earlier than this time was yielded before
            the failure (values stamped exactly this time may be partly yielded). Read again from here.
    """

    web_id: str
    status: int | None
    message: str
    resume_from: str

    def __post_init__(self) -> None:
        # The message quotes the server, which may echo the request's credentials.
        object.__setattr__(self, "message", scrub(self.message))

    @property
    def resume_from_ns(self) -> int:
        return to_ns(self.resume_from)


@dataclass(frozen=True)
class ReadSpec:
    """What a read asks for: the action, its query parameters, and whether it pages.

    Paged reads (recorded) send ``startTime`` from each stream's cursor, the fixed ``endTime`` and an
    explicit ``maxCount``; the others read each stream once with ``params`` as given.
    """

    action: str  # recorded | interpolated | plot | summary | value | end
    params: tuple[tuple[str, str], ...] = ()
    paged: bool = False
    start: str = ""
    end: str = ""
    dictionary: bool = False  # repeated strings as dictionary columns (contract.dictionary_encoded)

    @property
    def summary(self) -> bool:
        return self.action == "summary"

    @property
    def schema(self) -> pa.Schema:
        return dec.batch_schema(summary=self.summary, dictionary=self.dictionary)

    @property
    def kind(self) -> type:
        """The answer type of one stream (``/streams/{id}/{action}``, or a batch sub-request)."""
        if self.action in ("value", "end"):
            return dec.TimedValue
        return dec.SummaryValues if self.summary else dec.TimedValues

    @property
    def set_kind(self) -> type:
        """The answer type of ``/streamsets/{action}``."""
        if self.action in ("value", "end"):
            return dec.StreamValuePage
        return dec.StreamSummariesPage if self.summary else dec.StreamValuesPage

    @property
    def entry_kind(self) -> type:
        """The type of one stream in the answer of ``/streamsets/{action}``."""
        if self.action in ("value", "end"):
            return dec.StreamValue
        return dec.StreamSummaries if self.summary else dec.StreamValues

    def query(self, cursor: Cursor, max_count: int, *, streamset: bool) -> list[tuple[str, str]]:
        params = list(self.params)
        if not self.paged:
            return params
        # Only the fields the schema needs: a third of the bytes of a full answer.
        fields = [f"Items.{name}" for name in _RECORDED_FIELDS] + ["UnitsAbbreviation", "Errors"]
        if streamset:
            fields = ["Items.WebId", *(f"Items.{name}" for name in fields)]
        params += [
            ("startTime", cursor.start),
            ("endTime", self.end),
            ("maxCount", str(max_count)),
            ("selectedFields", ";".join([*fields, "WebException"])),
        ]
        return params


class StreamRead:
    """An iterator of Arrow record batches, plus the streams that failed.

    ``failures`` (a list of :class:`StreamFailure`) fills up while the read runs and is complete once the
    iteration ends; ``completed`` lists the WebIds read to the end. ``requests`` counts this read's HTTP
    requests, retries included, ``full_requests`` those whose answer carried at least :data:`FULL_SHARE`
    of ``values_per_request``, ``rows`` the rows yielded, and ``values_read`` those rows by WebId (counted
    from the answers, so no caller scans the batches for it). Every batch has the schema ``schema``.
    Once ``cancel`` is set, iterating raises :class:`ReadCancelledError`.
    """

    def __init__(
        self,
        transport: Transport,
        web_ids: Sequence[str],
        spec: ReadSpec,
        options: ReadOptions,
        limits: Limits,
        cancel: threading.Event | None = None,
        expected_counts: Mapping[str, float] | None = None,
    ):
        self._engine = _Engine(transport, web_ids, spec, options, limits, cancel, expected_counts)
        self._batches = self._engine.run()
        self.schema: pa.Schema = spec.schema
        self.failures: list[StreamFailure] = self._engine.failures
        self.completed: list[str] = self._engine.completed
        self.values_read: Counter[str] = self._engine.values_read

    def __iter__(self) -> StreamRead:
        return self

    def __next__(self) -> pa.RecordBatch:
        self._engine.check_cancel()  # also after the read ended by being cancelled
        return next(self._batches)

    @property
    def requests(self) -> int:
        return self._engine.requests

    @property
    def full_requests(self) -> int:
        return self._engine.full_requests

    @property
    def rows(self) -> int:
        return self._engine.rows

    def read_all(self) -> pa.Table:
        """Every remaining batch as one table (check ``failures`` afterwards)."""
        return pa.Table.from_batches(list(self), schema=self.schema)

    def close(self) -> None:
        """Stop early: nothing new is sent; requests in flight finish in their threads, unawaited."""
        self._batches.close()


class Limits:
    """The server's MaxReturnedItemsPerCall as learnt so far, shared by every read of one client."""

    def __init__(self, max_count: int):
        self.max_count = max_count

    def lower(self, value: int) -> None:
        if 0 < value < self.max_count:
            log.info("PI Web API refused maxCount above %d; lowering the page limit", value)
            self.max_count = value


# A planned page asks for this much more than the stream is expected to hold, so that most streams end in
# it; a stream holding more than planned is just paged again.
_PLAN_SLACK = 1.1
_PLAN_MARGIN = 16
# A stream not read yet is planned at a low density among the last pages read (see _Engine._weight): the
# tenth lowest of every hundred.
_DENSITY_SAMPLE = 256
_GUESS_QUANTILE = 0.1
FULL_SHARE = 0.8  # a request carrying this share of values_per_request counts as full in the read's stats
_OVERLOAD_STATUSES = frozenset({413, 502, 503})  # the server asks for smaller or fewer requests
_SMALLEST_SCALE = 1 / 64  # adaptive page sizes never go below this share of values_per_request


@dataclass(slots=True)
class _Stream:
    web_id: str
    cursor: Cursor
    attempts: int = 0  # failures since the stream last made progress
    rate: float | None = None  # values per nanosecond of PI time, from a hint or the stream's last page
    planned: int | None = None  # its next maxCount: the values skipped at the cursor + those expected after
    guessed: bool = False  # planned from other streams' density (not read yet), not from its own


@dataclass
class _Outcome:
    """What one answer did to one stream: rows to yield, and where the stream goes next."""

    stream: _Stream
    segments: list[dec.Segment] = field(default_factory=list)
    next: Cursor | None = None  # success: None = complete; error: the cursor after the yielded rows, if any
    # The density the page showed (values per nanosecond), when it can tell; for a page that ends the
    # stream, its values over the rest of the read's window.
    rate: float | None = None
    error: str | None = None  # the stream failed in this answer: retry it, then report it
    status: int | None = None
    fatal: bool = False  # report at once: no retry can help
    limit: int | None = None  # the server refused maxCount: lower it and read the stream again
    where: str = ""  # the request that answered the segments, as messages name it


@dataclass
class _Answer:
    batch: pa.RecordBatch | None = None
    outcomes: list[_Outcome] = field(default_factory=list)
    error: PIWebAPIError | None = None  # the whole request failed for good
    limit: int | None = None  # the whole request was refused for its maxCount
    seconds: float = 0.0  # how long the request's last attempt took (waiting for the budget excluded)


class _Engine:
    """Schedules requests (caller's thread) and runs them (worker threads); a stream is in one at a time."""

    def __init__(
        self,
        transport: Transport,
        web_ids: Sequence[str],
        spec: ReadSpec,
        options: ReadOptions,
        limits: Limits,
        cancel: threading.Event | None = None,
        expected_counts: Mapping[str, float] | None = None,
    ):
        self.transport = transport
        self.spec = spec
        self.options = options
        self.limits = limits
        self.cancel = cancel
        self.failures: list[StreamFailure] = []
        self.completed: list[str] = []
        self.rows = 0
        self.full_requests = 0
        self.values_read: Counter[str] = Counter()
        self._end_ns = to_ns(spec.end) if spec.paged else 0
        # Density planning sizes the pages of paged reads whose page size is not fixed by the caller.
        self._planning = spec.paged and options.page_size is None
        self._scale = 1.0  # the share of values_per_request asked per request (adaptive page sizes)
        self._densities: deque[float] = deque(maxlen=_DENSITY_SAMPLE)  # of the last pages read
        self._guessed_rate: float | None = None  # the density a stream not read yet is planned at
        self._tiebreak = itertools.count()
        self._requests = 0
        self._requests_lock = threading.Lock()  # worker threads count their sends
        self._sends = threading.local()  # when this worker thread last sent (the budget's wait excluded)
        self._stopped = threading.Event()  # the iteration ended: worker threads send nothing more
        # Streams waiting, keyed by cursor start (streamset requests share one startTime).
        self._waiting: dict[str, deque[_Stream]] = {}
        self._isolated: deque[list[_Stream]] = deque()  # groups split after a 4xx
        self._delayed: list[tuple[float, int, _Stream]] = []  # (not before, tie-breaker, stream) heap
        # Duplicates in the caller's list would be read twice: keep the first of each.
        span_ns = self._end_ns - to_ns(spec.start) + 1 if self._planning else 0
        for web_id in dict.fromkeys(web_ids):
            stream = _Stream(web_id, Cursor(spec.start))
            expected = expected_counts.get(web_id) if expected_counts and self._planning else None
            if expected is not None and expected >= 0:
                stream.rate = expected / span_ns
                stream.planned = self._plan(expected)
            self._enqueue(stream)

    @property
    def requests(self) -> int:
        return self._requests

    def check_cancel(self) -> None:
        """Raise :class:`ReadCancelledError` once the cancel event is set."""
        if self.cancel is not None and self.cancel.is_set():
            raise ReadCancelledError(
                f"the read was cancelled after {self.rows} rows; {len(self.completed)} streams were complete "
                f"and {len(self.failures)} had failed"
            )

    def _before_send(self) -> None:
        """Called by the transport before every attempt, retries included: a stopped read sends nothing."""
        if self._stopped.is_set():
            raise ReadCancelledError("the read has ended; the request is not sent")
        self.check_cancel()
        with self._requests_lock:
            self._requests += 1
        self._sends.at = time.monotonic()

    # -- scheduling, in the caller's thread -------------------------------------------------------------

    def run(self) -> Iterator[pa.RecordBatch]:
        inflight: dict[Future[_Answer], list[_Stream]] = {}
        pool = ThreadPoolExecutor(self.options.concurrency, thread_name_prefix="pi-read")
        try:
            while self._waiting or self._isolated or self._delayed or inflight:
                self.check_cancel()
                self._release_delayed()
                self._send_more(inflight, pool)
                if not inflight:
                    self._sleep(self._delayed[0][0] - time.monotonic())
                    continue
                done, _ = wait(inflight, timeout=self._wait_timeout(), return_when=FIRST_COMPLETED)
                for future in done:
                    # Before an answer moves any stream: ``completed`` only lists streams wholly yielded.
                    self.check_cancel()
                    group = inflight.pop(future)
                    answer = future.result()
                    self._apply(group, answer)
                    # The next requests go out before the caller takes this batch, so that PI prepares
                    # them while the caller writes it (else the server idles during every write).
                    self._send_more(inflight, pool)
                    if answer.batch is not None and answer.batch.num_rows:
                        self.rows += answer.batch.num_rows
                        for outcome in answer.outcomes:
                            for segment in outcome.segments:
                                self.values_read[segment.web_id] += len(segment.items)
                        if answer.batch.num_rows >= FULL_SHARE * self.options.values_per_request:
                            self.full_requests += 1
                        yield answer.batch
            log.info(
                "read %d values of %d streams in %d requests, %d of them full (at least %d%% of %d values)",
                self.rows,
                len(self.completed) + len(self.failures),
                self.requests,
                self.full_requests,
                round(FULL_SHARE * 100),
                self.options.values_per_request,
            )
        finally:
            # Never wait for requests in flight (a cancelled read must end now): they finish in their
            # threads, their answers are dropped, and their retries are not sent (see _before_send).
            self._stopped.set()
            pool.shutdown(wait=False, cancel_futures=True)

    def _send_more(self, inflight: dict[Future[_Answer], list[_Stream]], pool: ThreadPoolExecutor) -> None:
        """Send requests until ``concurrency`` are in flight or no stream is ready."""
        while len(inflight) < self.options.concurrency:
            group = self._next_group()
            if not group:
                return
            inflight[pool.submit(self._fetch, group)] = group

    def _sleep(self, seconds: float) -> None:
        if self.cancel is None:
            time.sleep(max(0.0, seconds))
        else:
            self.cancel.wait(max(0.0, seconds))

    def _wait_timeout(self) -> float | None:
        timeout = max(0.0, self._delayed[0][0] - time.monotonic()) if self._delayed else None
        if self.cancel is None:
            return timeout
        return CANCEL_POLL_S if timeout is None else min(timeout, CANCEL_POLL_S)

    def _enqueue(self, stream: _Stream) -> None:
        key = stream.cursor.start if self.options.mode is ReadMode.STREAMSETS else ""
        self._waiting.setdefault(key, deque()).append(stream)

    def _delay(self, stream: _Stream) -> None:
        not_before = time.monotonic() + self.transport.retry.delay(stream.attempts - 1)
        heapq.heappush(self._delayed, (not_before, next(self._tiebreak), stream))

    def _release_delayed(self) -> None:
        now = time.monotonic()
        while self._delayed and self._delayed[0][0] <= now:
            self._enqueue(heapq.heappop(self._delayed)[2])

    def _next_group(self) -> list[_Stream]:
        if self._isolated:
            return self._isolated.popleft()
        if not self._waiting:
            return []
        key = next(iter(self._waiting))
        queue = self._waiting[key]
        if self.options.mode is ReadMode.STREAMS:
            group = [queue.popleft()]
        elif self.options.mode is ReadMode.BATCH or not self._fills_streamset(queue):
            return self._pack_batch()
        else:
            group = self._pack_streamset(queue)
        if not queue:
            del self._waiting[key]
        return group

    def _budget(self) -> int:
        """The values one request asks for now: ``values_per_request`` scaled by the adaptive page size."""
        return max(1, int(self.options.values_per_request * self._scale))

    def _plan(self, expected: float) -> int:
        """The page for a stream expected to hold ``expected`` more values: all of them, with a margin."""
        return math.ceil(expected * _PLAN_SLACK) + _PLAN_MARGIN

    def _weight(self, stream: _Stream) -> int:
        """The values ``stream`` is expected to add to a request.

        A stream not read yet, with no expected count, is planned at a low density among the last pages
        read, once there are some: on a site of many similar tags and a short window, each stream then ends
        in its first page, instead of a first page of ``values_per_request / streams_per_request`` values
        and a second for the rest (twice the pages for the server and the client). A low density, not the
        median: a stream guessed too sparse only takes a second page, as before, while streams guessed too
        dense would share nearly empty requests. A wrong guess costs requests, never values."""
        if not self._planning:
            return max(1, self._budget() // self.options.streams_per_request)
        if stream.planned is None and self._guessed_rate is not None:
            self._replan(stream, self._guessed_rate, guessed=True)
        if stream.planned is not None:
            return min(stream.planned, self._budget())
        return max(1, self._budget() // self.options.streams_per_request)

    def _replan(self, stream: _Stream, rate: float, *, guessed: bool = False) -> None:
        """Plan ``stream``'s next page at ``rate`` from its cursor: the rest of the window, with a margin."""
        stream.rate, stream.guessed = rate, guessed
        left_ns = max(0, self._end_ns - to_ns(stream.cursor.start))
        stream.planned = stream.cursor.taken + self._plan(stream.rate * left_ns)

    def _fills_streamset(self, queue: deque[_Stream]) -> bool:
        """Whether the streams at one cursor make a good streamset request: first pages (every stream at
        the read's start, its density unknown or guessed) always do; later, only enough to fill one."""
        first, spr = queue[0], self.options.streams_per_request
        if not self._planning or first.planned is None or first.guessed or len(queue) >= spr:
            return True
        wanted, total = FULL_SHARE * self._budget(), 0
        for stream in queue:
            total += self._weight(stream)
            if total >= wanted:
                return True
        return False

    def _pack_streamset(self, queue: deque[_Stream]) -> list[_Stream]:
        # Measured with the largest maxCount a request can carry: its digits never push a URL past the bound.
        base = len(self._streamset_url([queue[0]], self.limits.max_count)) - self._id_cost(queue[0])
        room = self.options.max_url_length - base
        values = self._budget()
        group: list[_Stream] = []
        while queue and len(group) < self.options.streams_per_request:
            cost, weight = self._id_cost(queue[0]), self._weight(queue[0])
            if group and (cost > room or weight > values):
                break
            room -= cost
            values -= weight
            group.append(queue.popleft())
        return group

    def _pack_batch(self) -> list[_Stream]:
        """Streams of any cursors, oldest first, whose expected values fill one request."""
        values = self._budget()
        group: list[_Stream] = []
        while self._waiting and len(group) < self.options.streams_per_request:
            key = next(iter(self._waiting))
            queue = self._waiting[key]
            while queue and len(group) < self.options.streams_per_request:
                weight = self._weight(queue[0])
                if group and weight > values:
                    break
                values -= weight
                group.append(queue.popleft())
            if queue:
                return group
            del self._waiting[key]
        return group

    @staticmethod
    def _id_cost(stream: _Stream) -> int:
        return len("&webId=") + len(quote(stream.web_id, safe=""))

    def _apply(self, group: list[_Stream], answer: _Answer) -> None:
        self._adapt(answer)
        if answer.limit is not None:
            self.limits.lower(answer.limit)
            for stream in group:
                self._enqueue(stream)
            return
        if answer.error is not None:
            self._request_failed(group, answer.error)
            return
        for outcome in answer.outcomes:
            stream = outcome.stream
            if outcome.limit is not None:
                self.limits.lower(outcome.limit)
                self._enqueue(stream)
            elif outcome.error is None:
                stream.attempts = 0
                if outcome.rate is not None and self._planning:
                    self._densities.append(outcome.rate)
                if outcome.next is None:
                    self.completed.append(stream.web_id)
                else:
                    stream.cursor = outcome.next
                    rate = outcome.rate if outcome.rate is not None else stream.rate
                    if rate is not None and self._planning:
                        self._replan(stream, rate)
                    self._enqueue(stream)
            else:
                if outcome.next is not None and outcome.next != stream.cursor:
                    stream.cursor = outcome.next
                    stream.attempts = 0
                stream.attempts += 1
                if outcome.fatal or stream.attempts > self.transport.retry.max_retries:
                    self._fail(stream, outcome.status, outcome.error)
                else:
                    self._delay(stream)
        if self._densities:
            ordered = sorted(self._densities)
            self._guessed_rate = ordered[int(_GUESS_QUANTILE * (len(ordered) - 1))]

    def _adapt(self, answer: _Answer) -> None:
        """Halve the page size after a slow answer or an overloaded server; grow it back on fast answers."""
        overloaded = answer.error is not None and answer.error.status in _OVERLOAD_STATUSES
        if overloaded or answer.seconds > self.options.slow_answer_s:
            scale = max(_SMALLEST_SCALE, self._scale / 2)
            if scale < self._scale:
                log.warning(
                    "PI Web API is %s; asking %d values per request instead of %d",
                    f"answering {answer.error.status}" if overloaded and answer.error else "slow",
                    int(self.options.values_per_request * scale),
                    self._budget(),
                )
            self._scale = scale
        elif answer.error is None and answer.seconds < self.options.slow_answer_s / 4:
            self._scale = min(1.0, self._scale * 1.25)

    def _request_failed(self, group: list[_Stream], error: PIWebAPIError) -> None:
        if isinstance(error, PIAuthenticationError):
            raise error
        if error.status in _OVERLOAD_STATUSES and self._scale > _SMALLEST_SCALE:
            # Smaller requests may pass (see _adapt): read these streams again, as after a stream's error.
            for stream in group:
                stream.attempts += 1
                if stream.attempts > self.transport.retry.max_retries:
                    self._fail(stream, error.status, str(error))
                else:
                    self._delay(stream)
            return
        refused = error.status is not None and 400 <= error.status < 500 and error.status != 429
        if refused and len(group) > 1:
            half = len(group) // 2
            self._isolated.extend([group[:half], group[half:]])
            return
        for stream in group:
            self._fail(stream, error.status, str(error))

    def _fail(self, stream: _Stream, status: int | None, message: str) -> None:
        log.warning("PI stream %s failed: %s", stream.web_id, message)
        self.failures.append(StreamFailure(stream.web_id, status, message, stream.cursor.start))

    # -- requests, in worker threads --------------------------------------------------------------------

    def _fetch(self, group: list[_Stream]) -> _Answer:
        self._sends.at = time.monotonic()
        answer = self._fetch_group(group)
        # From the last attempt's send: waiting for the server's request budget is not a slow answer.
        answer.seconds = time.monotonic() - self._sends.at
        return answer

    def _fetch_group(self, group: list[_Stream]) -> _Answer:
        counts = self._max_counts(group)  # read once: another answer may lower the limit meanwhile
        try:
            if self.options.mode is ReadMode.STREAMS or self._single(group):
                return self._fetch_stream(group[0], counts[0])
            if self.options.mode is ReadMode.STREAMSETS and _same_cursor(group):
                return self._fetch_streamset(group, counts)
            return self._fetch_batch(group, counts)
        except PIWebAPIError as error:
            limit = self._refused_limit(error, max(counts))
            return _Answer(limit=limit) if limit is not None else _Answer(error=error)

    def _single(self, group: list[_Stream]) -> bool:
        """Whether a streamset read sends ``group`` as a plain stream request: one stream's planned page,
        where a batch or a streamset of one would only add its envelope."""
        return (
            self.options.mode is ReadMode.STREAMSETS
            and len(group) == 1
            and self._planning
            and group[0].planned is not None
        )

    def _refused_limit(self, error: PIWebAPIError, sent: int) -> int | None:
        """A lower maxCount when ``error`` refused the ``sent`` maxCount as above MaxReturnedItemsPerCall."""
        if error.status != 400 or not self.spec.paged:
            return None
        text = " ".join(error.errors)
        if not _LIMIT_MESSAGE.search(text) or "webid" in text.lower():
            return None
        number = _LIMIT_NUMBER.search(text)
        proposed = int(number.group(1)) if number else sent // 2
        # Only a limit below what was sent makes progress; anything else is an ordinary 400.
        return proposed if 0 < proposed < sent else None

    def _max_counts(self, group: list[_Stream]) -> list[int]:
        """Each stream's maxCount (0: cannot be paged further); 1 for reads that do not page."""
        if not self.spec.paged:
            return [1] * len(group)
        share = max(1, self._budget() // len(group))
        return [request_count(s.cursor.taken, self._page(s, share), self.limits.max_count) for s in group]

    def _page(self, stream: _Stream, share: int) -> int:
        """The new values to ask of ``stream``: the caller's page size, else its planned page (at most a
        request's budget), else its ``share`` of the request."""
        if self.options.page_size is not None:
            return self.options.page_size
        if stream.planned is None:
            return share
        return min(stream.planned - stream.cursor.taken, self._budget())

    def _streamset_url(self, group: list[_Stream], max_count: int) -> str:
        params = self.spec.query(group[0].cursor, max_count, streamset=True)
        params += [("webId", s.web_id) for s in group]
        query = urlencode(params, safe=_QUERY_SAFE, quote_via=quote)
        return self.transport.url(f"streamsets/{self.spec.action}") + "?" + query

    def _stream_url(self, stream: _Stream, max_count: int) -> str:
        path = self.transport.url(f"streams/{quote(stream.web_id, safe='')}/{self.spec.action}")
        query = urlencode(
            self.spec.query(stream.cursor, max_count, streamset=False), safe=_QUERY_SAFE, quote_via=quote
        )
        return f"{path}?{query}" if query else path

    def _unpageable(self, group: list[_Stream], counts: list[int]) -> list[_Outcome]:
        return [_too_many(s, self.limits.max_count) for s, c in zip(group, counts, strict=True) if not c]

    def _fetch_streamset(self, group: list[_Stream], counts: list[int]) -> _Answer:
        outcomes = self._unpageable(group, counts)
        streams = [s for s, c in zip(group, counts, strict=True) if c]
        if not streams:
            return _Answer(outcomes=outcomes)
        max_count = max(counts)  # per stream: a stream that skips fewer values just gets a longer page
        url = self._streamset_url(streams, max_count)
        page_kind, entry_kind = self.spec.set_kind, self.spec.entry_kind
        entries = self.transport.get(
            url,
            decode=lambda body: dec.decode_streamset(body, page_kind, entry_kind),
            on_send=self._before_send,
        )
        where = _request_name("GET", url)
        pairing = pair_streams([s.web_id for s in streams], [entry.WebId for entry in entries])
        for index in pairing.ignored:
            entry = entries[index]
            what = entry.problem if isinstance(entry, dec.BadEntry) else "a stream that was not requested"
            log.warning("PI answered %s (WebId %r) to %s: ignored", what, entry.WebId, where)
        by_stream: dict[int, _Outcome] = {}
        for index, why in pairing.unanswered.items():
            by_stream[index] = _Outcome(streams[index], error=f"{why}, in the answer of {where}")
        for index, answer in pairing.pairs:
            by_stream[index] = self._entry_outcome(streams[index], entries[answer], max_count, where)
        outcomes += [by_stream[index] for index in range(len(streams))]
        return self._answer(outcomes)

    def _entry_outcome(self, stream: _Stream, entry: Any, max_count: int, where: str) -> _Outcome:
        if isinstance(entry, dec.BadEntry):
            return _Outcome(stream, error=f"{entry.problem}, in the answer of {where}")
        return self._outcome(stream, _as_stream_item(entry), max_count, where)

    def _fetch_stream(self, stream: _Stream, count: int) -> _Answer:
        if not count:
            return _Answer(outcomes=self._unpageable([stream], [count]))
        url = self._stream_url(stream, count)
        kind = self.spec.kind
        content = self.transport.get(
            url, decode=lambda body: dec.decode_page(body, kind), on_send=self._before_send
        )
        where = _request_name("GET", url)
        return self._answer([self._outcome(stream, _as_stream_item(content), count, where)])

    def _fetch_batch(self, group: list[_Stream], counts: list[int]) -> _Answer:
        outcomes = self._unpageable(group, counts)
        members = {str(i): (s, c) for i, (s, c) in enumerate(zip(group, counts, strict=True)) if c}
        if not members:
            return _Answer(outcomes=outcomes)
        requests = {
            key: {"Method": "GET", "Resource": self._stream_url(s, c)} for key, (s, c) in members.items()
        }
        answers = self.transport.request(
            "POST",
            "batch",
            body=msgspec.json.encode(requests),
            decode=dec.decode_batch,
            on_send=self._before_send,
        )
        batch = _request_name("POST", self.transport.url("batch"))
        for key, (stream, count) in members.items():
            sub = answers.get(key)
            where = f"{_request_name('GET', requests[key]['Resource'])} (sub-request {key} of {batch})"
            if sub is None:
                outcomes.append(
                    _Outcome(stream, error=f"the sub-request is missing from the answer of {batch}")
                )
            elif isinstance(sub, str):
                outcomes.append(_Outcome(stream, error=f"{sub}, in the answer of {where}"))
            elif 200 <= sub.Status < 300:
                outcomes.append(self._sub_outcome(stream, sub, count, where))
            else:
                outcomes.append(self._sub_failure(stream, sub, count))
        return self._answer(outcomes)

    def _sub_outcome(self, stream: _Stream, sub: dec.SubResponse, count: int, where: str) -> _Outcome:
        try:
            content = dec.decode_page(sub.Content, self.spec.kind)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            return _Outcome(
                stream, status=sub.Status, error=f"not a stream's answer ({exc}), in the answer of {where}"
            )
        except PIWebAPIError as exc:
            return _Outcome(stream, status=sub.Status, error=f"{exc}, in the answer of {where}")
        return self._outcome(stream, _as_stream_item(content), count, where)

    def _sub_failure(self, stream: _Stream, sub: dec.SubResponse, count: int) -> _Outcome:
        try:
            errors = error_messages(msgspec.json.decode(sub.Content))
        except msgspec.DecodeError:
            errors = []
        error = PIWebAPIError("batch sub-request failed", status=sub.Status, errors=errors)
        limit = self._refused_limit(error, count)
        if limit is not None:
            return _Outcome(stream, limit=limit)
        # The batch controller reports a back-end hiccup of one sub-request as 5xx: retry that stream.
        fatal = 400 <= sub.Status < 500 and sub.Status != 429
        return _Outcome(stream, status=sub.Status, error=str(error), fatal=fatal)

    def _outcome(self, stream: _Stream, item: Any, max_count: int, where: str) -> _Outcome:
        problem = dec.stream_problem(item)
        if problem is not None:
            return _Outcome(stream, error=f"{problem}, in the answer of {where}")
        if self.spec.summary:
            return self._summary_outcome(stream, item, where)
        items: list[dec.TimedValue] = item.Items
        units = item.UnitsAbbreviation
        if units is None and items:
            units = items[0].UnitsAbbreviation
        odd = dec.odd_values(items)
        failed = dec.first_error(items, odd)
        if not self.spec.paged:
            if failed is not None:
                return _Outcome(stream, error=f"value at {items[failed[0]].Timestamp}: {failed[1]}")
            return _Outcome(stream, [dec.Segment(stream.web_id, units, items, odd=odd)], where=where)
        return self._page_outcome(stream, items, units, odd, failed, max_count, where)

    def _page_outcome(
        self,
        stream: _Stream,
        items: list[dec.TimedValue],
        units: str | None,
        odd: list[int],
        failed: tuple[int, str] | None,
        max_count: int,
        where: str,
    ) -> _Outcome:
        """What a page of recorded values does to its stream; a page that cannot be the answer to the
        stream's read (see :func:`page_problem`) fails the stream and yields nothing. ``odd`` is
        :func:`~osipi_dagster.pi.decode.odd_values` of ``items``; its segment keeps those it yields."""
        cursor_ns = last_ns = 0
        if items:
            try:
                first_ns = dec.time_ns(items[0].Timestamp)
                last_ns = dec.time_ns(items[-1].Timestamp)
            except ValueError as exc:
                return _Outcome(stream, error=f"{exc}, in the answer of {where}")
            cursor_ns = to_ns(stream.cursor.start)
            problem = page_problem(first_ns, last_ns, cursor_ns, self._end_ns)
            if problem is not None:
                return _Outcome(stream, error=f"{problem}, in the answer of {where}")
        step = plan_page(_Stamps(items), stream.cursor, max_count, failed[0] if failed else None)
        if (
            failed is None
            and step.next is not None
            and not advances(stream.cursor, cursor_ns, step.next, last_ns)
        ):
            return _Outcome(
                stream, error=f"the page does not move the stream's cursor, in the answer of {where}"
            )
        segments = []
        if step.end > step.begin:
            begin, end = step.begin, step.end
            kept = [i - begin for i in odd if begin <= i < end]
            segments.append(dec.Segment(stream.web_id, units, items[begin:end], odd=kept))
        if failed is not None:
            error = f"value at {items[failed[0]].Timestamp}: {failed[1]}"
            return _Outcome(stream, segments, step.next, error=error, where=where)
        rate = None
        if step.next is not None and last_ns > cursor_ns:
            rate = (step.end - step.begin) / (last_ns - cursor_ns)
        elif step.next is None:
            rate = (step.end - step.begin) / max(1, self._end_ns - to_ns(stream.cursor.start))
        return _Outcome(stream, segments, step.next, rate=rate, where=where)

    def _summary_outcome(self, stream: _Stream, item: dec.StreamSummaries, where: str) -> _Outcome:
        for summary in item.Items:
            failed = dec.first_error([summary.Value])
            if failed is not None:
                return _Outcome(stream, error=f"{summary.Type}: {failed[1]}")
        units = next((s.Value.UnitsAbbreviation for s in item.Items if s.Value.UnitsAbbreviation), None)
        segments = [dec.Segment(stream.web_id, units, [s.Value], s.Type) for s in item.Items]
        return _Outcome(stream, segments, where=where)

    def _answer(self, outcomes: list[_Outcome]) -> _Answer:
        segments = [segment for outcome in outcomes for segment in outcome.segments]
        if not segments:
            return _Answer(outcomes=outcomes)
        build = functools.partial(dec.build_batch, summary=self.spec.summary, dictionary=self.spec.dictionary)
        try:
            batch = build(segments)
        except dec.TimestampError as error:
            outcomes = _without_bad_timestamps(outcomes, error)
            segments = [segment for outcome in outcomes for segment in outcome.segments]
            batch = build(segments) if segments else None
        return _Answer(batch=batch, outcomes=outcomes)


def _same_cursor(group: list[_Stream]) -> bool:
    start = group[0].cursor.start
    return all(stream.cursor.start == start for stream in group)


def _request_name(method: str, url: str) -> str:
    """A request as a message names it: method and URL without its query, secrets removed."""
    return f"{method} {redact_url(url.partition('?')[0])}"


def _without_bad_timestamps(outcomes: list[_Outcome], error: dec.TimestampError) -> list[_Outcome]:
    """``outcomes`` where each stream holding a timestamp Arrow cannot read fails, yielding nothing."""
    result = []
    position = 0  # the index of the outcome's first segment among all segments of the answer
    for outcome in outcomes:
        owned = range(position, position + len(outcome.segments))
        position += len(outcome.segments)
        problem = next((error.problems[i] for i in owned if i in error.problems), None)
        if problem is None:
            result.append(outcome)
        else:
            result.append(_Outcome(outcome.stream, error=f"{problem}, in the answer of {outcome.where}"))
    return result


class _Stamps(Sequence[str]):
    """The timestamps of a page as a sequence, without building a list."""

    __slots__ = ("_items",)

    def __init__(self, items: list[dec.TimedValue]):
        self._items = items

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, index):  # type: ignore[override]
        return self._items[index].Timestamp


def _as_stream_item(content: Any) -> Any:
    """Any answer for one stream in the shape of a streamset item of recorded values (or of summaries)."""
    if isinstance(content, dec.TimedValue):
        return dec.StreamValues(Items=[content], UnitsAbbreviation=content.UnitsAbbreviation)
    if isinstance(content, dec.StreamValue):
        value = content.Value
        return dec.StreamValues(
            WebId=content.WebId,
            Items=[value],
            UnitsAbbreviation=content.UnitsAbbreviation or value.UnitsAbbreviation,
            WebException=content.WebException,
            Errors=content.Errors,
        )
    if isinstance(content, dec.SummaryValues):
        return dec.StreamSummaries(Items=content.Items)
    return content


def _too_many(stream: _Stream, limit: int) -> _Outcome:
    message = (
        f"more than {limit} values at {stream.cursor.start}, the most the server returns in one call; "
        "the stream cannot be paged further"
    )
    return _Outcome(stream, error=message, fatal=True)
