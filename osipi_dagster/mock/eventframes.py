"""The mock's event frames: batches (with phase child frames), downtimes and alarms on the AF process units.

Event frames are never stored: the frames of one process unit on one UTC day are a pure function of
``(config.seed, day, unit)``, so any time window is enumerated by generating the few (day, unit) buckets it
touches. Rules per unit and day:

- Batch units run up to 3 batches, one per 8-hour shift (each shift is idle with probability 0.15); a batch
  starts 5 to 60 minutes into its shift and lasts 4 to 7 hours, in three phase child frames (Charge 15 %,
  React 65 %, Discharge 20 %). Attributes: Batch ID, Product, Recipe, Operator, Target Quantity.
- Any unit has a downtime with probability 0.2, lasting 15 minutes to 8 hours, planned (referencing the
  unit) or unplanned (referencing one equipment, then the unit). Attributes: Reason, Planned, Operator.
- Any unit raises 0 to 3 alarms on its equipment (at distinct seconds, with millisecond starts). Process
  alarms carry a "PI Point" attribute ``Process Value`` pointing at one of the equipment's numeric points;
  equipment alarms carry a Fault Code. 90 % last 30 s to 2 h, the rest (standing alarms) 4 to 20 hours.
  Severity Information, Warning, Minor, Major or Critical; three in four are acknowledged 30 s to 2 h after
  they start (IsAcknowledged once the clock has passed that moment). The admin API can acknowledge an
  alarm that is not acknowledged yet at the clock's now (``acknowledge``); that overrides its generated
  acknowledgement.

Frames exist from midnight UTC on or before ``started - event_frame_days`` (anchored at start-up, so history
does not vanish as the clock moves) and only once the clock has reached their start. A frame whose end lies
after the clock's now is open: it is reported with EndTime 9999-12-31T23:59:59Z and closes by itself as the
clock moves past its end.

Event frame GUIDs keep (database, day, unit, sequence, phase) in their last 8 bytes (real AF event frame ids
are partly sequential too), so a WebID is resolved by regenerating one bucket.
"""

from __future__ import annotations

import dataclasses
import functools
import random
import re
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from osipi_dagster.mock import webids
from osipi_dagster.mock.af import AssetModel
from osipi_dagster.mock.af_catalog import AttributeSpec, TemplateSpec
from osipi_dagster.mock.af_objects import Database, Element, ElementTemplate, stable_hash
from osipi_dagster.mock.af_search import wildcard
from osipi_dagster.mock.errors import PIError, not_found
from osipi_dagster.mock.model import Point
from osipi_dagster.mock.params import Params
from osipi_dagster.mock.timeparse import NS, TICK_NS

if TYPE_CHECKING:
    from osipi_dagster.mock.clock import MockClock
    from osipi_dagster.mock.config import MockConfig

OPEN_END = "9999-12-31T23:59:59Z"  # how an open event frame's EndTime is reported (AFTime.MaxValue)
OPEN_NS = 253_402_300_799 * NS  # 9999-12-31T23:59:59Z: an open frame's end in time comparisons
DAY_NS = 86_400 * NS
HOUR_NS = 3_600 * NS
MAX_DURATION_NS = DAY_NS  # no frame lasts longer, so a search only reaches one day of buckets back

SEVERITIES = ("None", "Information", "Warning", "Minor", "Major", "Critical")
SEARCH_MODES = (
    "None", "StartInclusive", "EndInclusive", "Inclusive", "Overlapped", "InProgress",
    "BackwardFromStartTime", "ForwardFromStartTime", "BackwardFromEndTime", "ForwardFromEndTime",
    "BackwardInProgress", "ForwardInProgress",
)  # fmt: skip
KEPT_SEARCHES = 4
# Parameters that page or render a search's answer without changing what it finds.
PAGING_PARAMETERS = ("startindex", "maxcount", "selectedfields", "webidtype")
PHASES = (("Charge", 0.15), ("React", 0.65), ("Discharge", 0.20))
OPERATORS = ("J. Smith", "A. Novak", "M. Tanaka", "R. Okafor", "L. Garcia")
PRODUCTS = ("Polyol A", "Resin 220", "Solvent Blend", "Additive X7", "Coating Base")
PLANNED_REASONS = ("Planned maintenance", "Cleaning", "Product changeover")
UNPLANNED_REASONS = ("Pump trip", "Power failure", "Feed shortage", "Instrument failure", "Leak")
ALARM_TYPES = ("HI", "HIHI", "LO", "LOLO")
NUMERIC_TYPES = ("Float16", "Float32", "Float64", "Int16", "Int32")

_EF = "EventFrame"
_PATTERN = "%TEMPLATE% %ELEMENT% %STARTTIME:yyyy-MM-dd HH:mm:ss%"
_OPERATOR = AttributeSpec("Operator", "String", categories=("Operations",))
EVENT_FRAME_TEMPLATES: tuple[TemplateSpec, ...] = (
    TemplateSpec(
        "Batch",
        "A production batch",
        categories=("Batch", "Production"),
        instance_type=_EF,
        naming_pattern=_PATTERN,
        attributes=(
            AttributeSpec("Batch ID", "String", categories=("Batch",)),
            AttributeSpec("Product", "String", categories=("Batch",)),
            AttributeSpec("Recipe", "String", categories=("Batch",)),
            _OPERATOR,
            AttributeSpec("Target Quantity", "Double", "kg", ("Batch",)),
        ),
    ),
    TemplateSpec(
        "Batch Phase",
        "A phase of a batch",
        categories=("Batch",),
        instance_type=_EF,
        naming_pattern="%NAME%",
        attributes=(AttributeSpec("Phase", "String", categories=("Batch",)),),
    ),
    TemplateSpec(
        "Downtime",
        "A unit or equipment downtime",
        categories=("Downtime",),
        instance_type=_EF,
        severity="Major",
        naming_pattern=_PATTERN,
        attributes=(
            AttributeSpec("Reason", "String", categories=("Downtime",)),
            AttributeSpec("Planned", "Boolean", categories=("Downtime",)),
            _OPERATOR,
        ),
    ),
    TemplateSpec(
        "Alarm",
        "Base template of alarms",
        categories=("Alarm",),
        instance_type=_EF,
        severity="Warning",
        can_be_acknowledged=True,
        naming_pattern=_PATTERN,
        attributes=(AttributeSpec("Message", "String", categories=("Alarm",)),),
    ),
    TemplateSpec(
        "Process Alarm",
        "A process value crossed a limit",
        "Alarm",
        ("Alarm",),
        instance_type=_EF,
        severity="Warning",
        can_be_acknowledged=True,
        naming_pattern=_PATTERN,
        attributes=(
            AttributeSpec("Alarm Type", "String", categories=("Alarm",)),
            AttributeSpec("Limit", "Double", categories=("Alarm",)),
            AttributeSpec("Process Value", "Double", categories=("Alarm",), point=True),
        ),
    ),
    TemplateSpec(
        "Equipment Alarm",
        "An equipment fault",
        "Alarm",
        ("Alarm",),
        instance_type=_EF,
        severity="Minor",
        can_be_acknowledged=True,
        naming_pattern=_PATTERN,
        attributes=(AttributeSpec("Fault Code", "String", categories=("Alarm",)),),
    ),
)


@dataclass(frozen=True, eq=False, slots=True)
class EventFrame:
    """One event frame; whether it is open or acknowledged depends on the clock (see the methods)."""

    guid: uuid.UUID
    database: Database
    name: str
    description: str
    path: str
    template: ElementTemplate
    start_ns: int
    end_ns: int  # its true end, reported only once the clock has passed it
    severity: str
    references: tuple[Element, ...]  # the first is the primary referenced element
    values: dict[str, object]  # static attribute values by attribute name
    point: Point | None  # the point of its templated "PI Point" attribute, if any
    acknowledged_ns: int | None  # when an operator acknowledges it, if ever
    acknowledged_by: str
    parent: EventFrame | None
    has_children: bool

    @property
    def categories(self) -> tuple[str, ...]:
        return self.template.spec.categories

    def is_open(self, now_ns: int) -> bool:
        return self.end_ns > now_ns

    def end_at(self, now_ns: int) -> int:
        """The end used in searches and sorts: ``OPEN_NS`` while open."""
        return OPEN_NS if self.end_ns > now_ns else self.end_ns

    def is_acknowledged(self, now_ns: int) -> bool:
        return self.acknowledged_ns is not None and self.acknowledged_ns <= now_ns


class EventFrameModel:
    """Event frames over the asset model's process units (see the module doc for the rules)."""

    def __init__(self, config: MockConfig, af: AssetModel, started_ns: int, clock: MockClock) -> None:
        self.seed = config.seed
        self.af = af
        self.now_ns = clock.now_ns  # WebID look-ups have no request time: frames must have started by now
        self.first_day = (started_ns - round(config.event_frame_days * DAY_NS)) // DAY_NS
        self._prefixes = {d.index: self._prefix(d.index) for d in af.databases}
        self._databases = {prefix: af.databases[index] for index, prefix in self._prefixes.items()}
        for database in af.databases:
            af.register_templates(database, EVENT_FRAME_TEMPLATES)
        af.attach_event_frames(self)
        # A bucket is a few frames; keeping the recent ones (a few days of every unit) makes searches cheap.
        self._bucket = functools.lru_cache(maxsize=max(16_384, 4 * len(af.units)))(self._generate)
        # The last searches, whole: paging through tens of thousands of frames must not search again for
        # every page (keyed by the root, the clock and every parameter but the paging and rendering ones).
        self._searches: dict[tuple, list[EventFrame]] = {}
        self._acknowledged: dict[uuid.UUID, tuple[int, str]] = {}  # admin acknowledgements: (when, by)

    # -- generation -------------------------------------------------------------------------------------

    def _prefix(self, database: int) -> int:
        """The first 8 bytes of a database's event frame GUIDs (with the version-4 nibble, as AF has)."""
        return (stable_hash(self.seed, "event-frames", database) & ~(0xF << 12)) | (4 << 12)

    def _guid(self, database: int, day: int, unit: int, sequence: int, phase: int = 0) -> uuid.UUID:
        low = (day << 40) | (unit << 16) | (sequence << 8) | phase
        return uuid.UUID(int=(self._prefixes[database] << 64) | low)

    def _generate(self, day: int, ordinal: int) -> tuple[EventFrame, ...]:
        """The top-level frames of unit ``ordinal`` that start on ``day``, whatever the clock says."""
        unit = self.af.units[ordinal]
        rng = random.Random(stable_hash(self.seed, "event-frames", day, ordinal))
        day_ns = day * DAY_NS
        maker = _FrameMaker(self, unit, day, ordinal)
        if unit.template.derives_from("Batch Unit"):
            for shift in range(3):
                idle = rng.random() < 0.15
                offset = rng.randint(5 * 60, 60 * 60) * NS
                duration = rng.randint(4 * 3600, 7 * 3600) * NS
                if not idle:
                    maker.batch(rng, day_ns + shift * 8 * HOUR_NS + offset, duration, shift + 1)
        if rng.random() < 0.2:
            maker.downtime(rng, day_ns + rng.randrange(86_400) * NS)
        count = rng.choices((0, 1, 2, 3), weights=(35, 35, 20, 10))[0]
        for second in sorted(rng.sample(range(86_400), count)):
            maker.alarm(rng, day_ns + second * NS + rng.randrange(1000) * 1_000_000)
        return tuple(maker.frames)

    def children(self, frame: EventFrame, now_ns: int) -> list[EventFrame]:
        """The child frames of ``frame`` that have started by ``now_ns`` (a batch's phases)."""
        if not frame.has_children:
            return []
        low = frame.guid.int & 0xFFFF_FFFF_FFFF_FFFF
        day, unit, sequence = low >> 40, (low >> 16) & 0xFF_FFFF, (low >> 8) & 0xFF
        start, found = frame.start_ns, []
        total = frame.end_ns - frame.start_ns
        template = frame.database.templates["BATCH PHASE"]
        for phase, (name, share) in enumerate(PHASES, start=1):
            end = frame.end_ns if phase == len(PHASES) else start + round(total * share / TICK_NS) * TICK_NS
            if start > now_ns:
                break
            found.append(
                EventFrame(
                    self._guid(frame.database.index, day, unit, sequence, phase),
                    frame.database,
                    name,
                    f"{name} phase of {frame.name}",
                    f"{frame.path}\\EventFrames[{name}]",
                    template,
                    start,
                    end,
                    "None",
                    frame.references,
                    {"Phase": name},
                    None,
                    None,
                    "",
                    frame,
                    False,
                )
            )
            start = end
        return found

    # -- look-ups ---------------------------------------------------------------------------------------

    def days(self, now_ns: int) -> range:
        """Every day that can hold a frame that exists at ``now_ns``."""
        return range(self.first_day, now_ns // DAY_NS + 1)

    def top_frames(self, ordinals: Iterable[int], days: range, now_ns: int) -> Iterator[EventFrame]:
        """The top-level frames of these units on these days that have started by ``now_ns``."""
        for day in days:
            for ordinal in ordinals:
                for frame in self._bucket(day, ordinal):
                    if frame.start_ns <= now_ns:
                        yield self._with_acknowledgement(frame)

    def _with_acknowledgement(self, frame: EventFrame) -> EventFrame:
        found = self._acknowledged.get(frame.guid)
        if found is None:
            return frame
        return dataclasses.replace(frame, acknowledged_ns=found[0], acknowledged_by=found[1])

    def acknowledge(self, frame: EventFrame, by: str, now_ns: int) -> EventFrame:
        """Acknowledge ``frame`` at ``now_ns`` by ``by`` (the admin API), as an operator would in PI.

        400 if its template cannot be acknowledged, 409 if it is acknowledged already at ``now_ns``."""
        if not frame.template.spec.can_be_acknowledged:
            raise PIError(
                400,
                f"The event frame '{frame.name}' cannot be acknowledged: its template "
                f"{frame.template.name} does not allow it.",
            )
        if frame.is_acknowledged(now_ns):
            raise PIError(409, f"The event frame '{frame.name}' is already acknowledged.")
        self._acknowledged[frame.guid] = (now_ns, by)
        self._searches.clear()  # a kept search holds the frame as it was before (the clock may not move)
        return self._with_acknowledgement(frame)

    def frame(self, web: webids.WebId, text: str = "") -> EventFrame:
        """The event frame an ``Fm`` WebID names; 404 if unknown (or not started yet)."""
        if web.marker != "Fm":
            raise not_found("event frame", text)
        guid = self.af.check_system(web, "event frame", text)
        if guid is None:
            return self.frame_by_path("\\\\" + (web.path or ""), text)
        return self.frame_by_guid(guid, text)

    def frame_by_guid(self, guid: uuid.UUID, text: str = "") -> EventFrame:
        database = self._databases.get(guid.int >> 64)
        low = guid.int & 0xFFFF_FFFF_FFFF_FFFF
        day, ordinal, phase = low >> 40, (low >> 16) & 0xFF_FFFF, low & 0xFF
        now = self.now_ns()
        if database is None or day not in self.days(now) or ordinal >= len(self.af.units):
            raise not_found("event frame", text or str(guid))
        bucket = self.top_frames([ordinal], range(day, day + 1), now)
        parent = next((f for f in bucket if f.guid.int >> 8 == guid.int >> 8), None)
        if parent is not None and phase:
            parent = next((c for c in self.children(parent, now) if c.guid == guid), None)
        found = parent
        if found is None or found.database is not database:
            raise not_found("event frame", text or str(guid))
        return found

    def frame_by_path(self, path: str, text: str = "") -> EventFrame:
        """``\\\\AF\\DB\\EventFrames[Name]`` or ``...\\EventFrames[Name]\\EventFrames[Child]`` (404 if
        unknown)."""
        match = re.fullmatch(
            r"(.*?)\\EventFrames\[([^\]]+)\](?:\\EventFrames\[([^\]]+)\])?", path.strip(), re.I
        )
        date = re.search(r"(\d{4})-(\d{2})-(\d{2})", match.group(2)) if match else None
        if match is None or date is None:
            raise not_found("event frame", text or path)
        try:
            database = self.af.database_by_path(match.group(1))
            day = int(datetime(*map(int, date.groups()), tzinfo=UTC).timestamp()) * NS // DAY_NS
        except (PIError, ValueError):
            raise not_found("event frame", text or path) from None
        now = self.now_ns()
        ordinals = [i for i, unit in enumerate(self.af.units) if unit.database is database]
        days = range(max(day, self.first_day), min(day, now // DAY_NS) + 1)
        name = match.group(2).upper()
        found = next((f for f in self.top_frames(ordinals, days, now) if f.name.upper() == name), None)
        if found is not None and match.group(3):
            child = match.group(3).upper()
            found = next((c for c in self.children(found, now) if c.name.upper() == child), None)
        if found is None:
            raise not_found("event frame", text or path)
        return found

    def time_context_of(self, frame: EventFrame) -> tuple[int, int]:
        """A frame's (start, end) in ns; the end is now while the frame is open."""
        now = self.now_ns()
        return frame.start_ns, min(frame.end_ns, now)

    # -- search -----------------------------------------------------------------------------------------

    def search(self, root: Database | Element | EventFrame, params: Params) -> list[EventFrame]:
        """The frames under ``root`` that ``GET .../eventframes`` returns, filtered and sorted (not paged).

        ``root`` is a database (its frames), an element (the frames that reference it) or an event frame (its
        child frames). See ``SearchWindow`` for the search modes. The last few searches are kept."""
        key = (type(root).__name__, root.guid, params.now_ns, params.query_key(PAGING_PARAMETERS))
        found = self._searches.get(key)
        if found is None:
            found = self._search(root, params)
            while len(self._searches) >= KEPT_SEARCHES:
                self._searches.pop(next(iter(self._searches)), None)
            self._searches[key] = found
        return found

    def _search(self, root: Database | Element | EventFrame, params: Params) -> list[EventFrame]:
        now = params.now_ns
        window = SearchWindow.of(params)
        full = params.bool("searchFullHierarchy", False)
        keep = self._filters(params, isinstance(root, Element))
        if isinstance(root, EventFrame):
            candidates: Iterable[EventFrame] = self._with_descendants(self.children(root, now), now, full)
        else:
            ordinals = self._units_under(root)
            days = window.days(self.days(now))
            top = self.top_frames(ordinals, days, now)
            if isinstance(root, Element):
                top = (f for f in top if any(e is root for e in f.references))
            candidates = self._with_descendants(top, now, full)
        found = [f for f in candidates if window.matches(f, now) and keep(f, now)]
        return window.sort(found, now)

    def _units_under(self, root: Database | Element) -> list[int]:
        """The ordinals of the units whose frames may concern ``root``."""
        if isinstance(root, Database):
            return [i for i, unit in enumerate(self.af.units) if unit.database is root]
        return [i for i, unit in enumerate(self.af.units) if unit is root.unit]

    def _with_descendants(self, frames: Iterable[EventFrame], now: int, full: bool) -> Iterator[EventFrame]:
        for frame in frames:
            yield frame
            if full:
                yield from self._with_descendants(self.children(frame, now), now, full)

    def _filters(self, params: Params, under_element: bool) -> Callable[[EventFrame, int], bool]:
        """The attribute filters of an event frame search as one predicate of (frame, now)."""
        name = wildcard(params.get("nameFilter"))
        template = params.get("templateName")
        category = (params.get("categoryName") or "").upper()
        severities = {_canonical_severity(s) for s in params.get_list("severity") if s}
        reference_name = None if under_element else wildcard(params.get("referencedElementNameFilter"))
        reference_template = None if under_element else params.get("referencedElementTemplateName")
        acknowledged = _optional_bool(params, "isAcknowledged")
        can_acknowledge = _optional_bool(params, "canBeAcknowledged")

        def keep(frame: EventFrame, now: int) -> bool:
            return (
                (name is None or name(frame.name))
                and (not template or frame.template.derives_from(template))
                and (not category or any(c.upper() == category for c in frame.categories))
                and (not severities or frame.severity in severities)
                and (reference_name is None or any(reference_name(e.name) for e in frame.references))
                and (
                    not reference_template
                    or any(e.template.derives_from(reference_template) for e in frame.references)
                )
                and (acknowledged is None or frame.is_acknowledged(now) == acknowledged)
                and (can_acknowledge is None or frame.template.spec.can_be_acknowledged == can_acknowledge)
            )

        return keep


# searchMode -> test of (frame start, frame end, is open, search start, search end).
_MODE_TESTS: dict[str, Callable[[int, int, bool, int, int], bool]] = {
    "None": lambda s, e, is_open, lo, hi: True,
    "StartInclusive": lambda s, e, is_open, lo, hi: lo <= s <= hi,
    "EndInclusive": lambda s, e, is_open, lo, hi: lo <= e <= hi,
    "Inclusive": lambda s, e, is_open, lo, hi: lo <= s and e <= hi,
    "Overlapped": lambda s, e, is_open, lo, hi: s <= hi and e >= lo,
    "InProgress": lambda s, e, is_open, lo, hi: is_open and lo <= s <= hi,
    "BackwardFromStartTime": lambda s, e, is_open, lo, hi: s <= lo,
    "ForwardFromStartTime": lambda s, e, is_open, lo, hi: s >= lo,
    "BackwardFromEndTime": lambda s, e, is_open, lo, hi: e <= lo,
    "ForwardFromEndTime": lambda s, e, is_open, lo, hi: e >= lo,
    "BackwardInProgress": lambda s, e, is_open, lo, hi: is_open and s <= lo,
    "ForwardInProgress": lambda s, e, is_open, lo, hi: is_open and s >= lo,
}


@dataclass(frozen=True)
class SearchWindow:
    """An event frame search's ``searchMode`` with its times and sort order.

    Time-window modes (defaults: ``Overlapped``, ``startTime=*-8h``, ``endTime=*``; the two times are swapped
    if reversed): ``None`` (no time condition), ``StartInclusive`` (start in [S, E]), ``EndInclusive`` (end in
    [S, E]), ``Inclusive`` (both), ``Overlapped`` (start <= E and end >= S), ``InProgress`` (open, start in
    [S, E]). Directional modes use ``startTime`` only and sort by the time they search on, nearest first:
    ``Backward/ForwardFromStartTime`` (start <= S / >= S), ``Backward/ForwardFromEndTime`` (end <= S / >= S),
    ``Backward/ForwardInProgress`` (open frames starting <= S / >= S). An open frame's end is 9999-12-31.
    """

    mode: str
    start: int
    end: int
    sort_field: str
    descending: bool

    @classmethod
    def of(cls, params: Params) -> SearchWindow:
        """Read searchMode, startTime, endTime, sortField and sortOrder; 400 on a bad or forbidden one."""
        mode = params.choice("searchMode", "Overlapped", SEARCH_MODES)
        start = params.time("startTime", "*-8h")
        if mode.startswith(("Backward", "Forward")):
            given = [name for name in ("endTime", "sortField", "sortOrder") if params.has(name)]
            if given:
                raise PIError(
                    400,
                    f"The parameter(s) {', '.join(given)} cannot be specified with the search mode '{mode}'.",
                )
            field = "EndTime" if mode.endswith("EndTime") else "StartTime"
            return cls(mode, start, start, field, mode.startswith("Backward"))
        end = params.time("endTime", "*")
        field = params.choice("sortField", "Name", ["Name", "StartTime", "EndTime"])
        descending = params.choice("sortOrder", "Ascending", ["Ascending", "Descending"]) == "Descending"
        return cls(mode, min(start, end), max(start, end), field, descending)

    def days(self, available: range) -> range:
        """The days whose frames can match (frames last at most ``MAX_DURATION_NS``)."""
        first, last = available.start, available.stop - 1
        if self.mode.startswith("Backward"):
            last = min(last, self.start // DAY_NS)
        elif self.mode.startswith("Forward"):
            first = max(first, (self.start - MAX_DURATION_NS) // DAY_NS)
        elif self.mode != "None":
            first = max(first, (self.start - MAX_DURATION_NS) // DAY_NS)
            last = min(last, self.end // DAY_NS)
        return range(first, max(first, last + 1))

    def matches(self, frame: EventFrame, now: int) -> bool:
        return _MODE_TESTS[self.mode](
            frame.start_ns, frame.end_at(now), frame.is_open(now), self.start, self.end
        )

    def sort(self, frames: list[EventFrame], now: int) -> list[EventFrame]:
        """Sort by the sort field, then start time, name and id, so every order is total and stable."""
        if self.sort_field == "Name":
            key: Callable[[EventFrame], tuple] = lambda f: (f.name.lower(), f.start_ns, f.guid.int)  # noqa: E731
        elif self.sort_field == "StartTime":
            key = lambda f: (f.start_ns, f.name.lower(), f.guid.int)  # noqa: E731
        else:
            key = lambda f: (f.end_at(now), f.start_ns, f.name.lower(), f.guid.int)  # noqa: E731
        return sorted(frames, key=key, reverse=self.descending)


class _FrameMaker:
    """Builds the frames of one (day, unit) bucket in order, numbering them."""

    def __init__(self, model: EventFrameModel, unit: Element, day: int, ordinal: int) -> None:
        self.model = model
        self.unit = unit
        self.day = day
        self.ordinal = ordinal
        self.database = unit.database
        self.frames: list[EventFrame] = []

    def _add(
        self,
        template_name: str,
        references: tuple[Element, ...],
        start: int,
        duration: int,
        severity: str,
        values: dict[str, object],
        description: str,
        point: Point | None = None,
        acknowledged: tuple[int, str] | None = None,
    ) -> None:
        template = self.database.templates[template_name.upper()]
        stamp = datetime.fromtimestamp(start // NS, UTC).strftime("%Y-%m-%d %H:%M:%S")
        name = f"{template.name} {label(references[0])} {stamp}"
        sequence = len(self.frames) + 1
        self.frames.append(
            EventFrame(
                self.model._guid(self.database.index, self.day, self.ordinal, sequence),
                self.database,
                name,
                description,
                f"{self.database.path}\\EventFrames[{name}]",
                template,
                start,
                start + duration,
                severity,
                references,
                values,
                point,
                acknowledged[0] if acknowledged else None,
                acknowledged[1] if acknowledged else "",
                None,
                template_name == "Batch",
            )
        )

    def batch(self, rng: random.Random, start: int, duration: int, number: int) -> None:
        product = rng.choice(PRODUCTS)
        batch_id = f"B-{label(self.unit)}-{datetime.fromtimestamp(start // NS, UTC):%y%m%d}-{number}"
        values = {
            "Batch ID": batch_id,
            "Product": product,
            "Recipe": f"RCP-{product.split()[0].upper()}-{rng.randint(1, 9)}",
            "Operator": rng.choice(OPERATORS),
            "Target Quantity": float(rng.randrange(5_000, 20_000, 50)),
        }
        self._add("Batch", (self.unit,), start, duration, "None", values, f"Batch {batch_id} of {product}")

    def downtime(self, rng: random.Random, start: int) -> None:
        duration = rng.randint(15 * 60, 8 * 3600) * NS
        planned = rng.random() < 0.4
        equipment = rng.choice(self.unit.children)
        reason = rng.choice(PLANNED_REASONS if planned else UNPLANNED_REASONS)
        references = (self.unit,) if planned else (equipment, self.unit)
        values = {"Reason": reason, "Planned": planned, "Operator": rng.choice(OPERATORS)}
        severity = "Information" if planned else "Major"
        self._add("Downtime", references, start, duration, severity, values, reason)

    def alarm(self, rng: random.Random, start: int) -> None:
        equipment = rng.choice(self.unit.children)
        standing = rng.random() < 0.1
        seconds = rng.randint(4 * 3600, 20 * 3600) if standing else rng.randint(30, 2 * 3600)
        severity = rng.choices(SEVERITIES[1:], weights=(1, 4, 3, 2, 1))[0]
        acknowledged = None
        if rng.random() < 0.75:
            acknowledged = (
                start + rng.randint(30, 2 * 3600) * NS,
                f"MOCK\\{rng.choice(OPERATORS).split()[-1].lower()}",
            )
        numeric = [
            p
            for p in (self.model.af.archive.points[i] for i in equipment.points)
            if p.point_type in NUMERIC_TYPES
        ]
        references = (equipment, self.unit)
        if numeric:
            point = rng.choice(numeric)
            kind = rng.choice(ALARM_TYPES)
            values = {"Alarm Type": kind, "Limit": round(point.zero + point.span * rng.random(), 2),
                      "Message": f"{kind} alarm on {equipment.name} ({point.name})"}  # fmt: skip
            self._add(
                "Process Alarm",
                references,
                start,
                seconds * NS,
                severity,
                values,
                values["Message"],
                point,
                acknowledged,
            )
        else:
            code = f"F{rng.randint(100, 999)}"
            values = {"Fault Code": code, "Message": f"Fault {code} on {equipment.name}"}
            self._add(
                "Equipment Alarm",
                references,
                start,
                seconds * NS,
                severity,
                values,
                values["Message"],
                None,
                acknowledged,
            )


def label(element: Element) -> str:
    """An element's path below its enterprise, dotted (``Plant1.Area2.Unit03.FIC0301``): unlike its name,
    unique in its database, so event frame names built from it are unique too."""
    return ".".join(element.path.split("\\")[5:])


def _canonical_severity(text: str) -> str:
    found = next((s for s in SEVERITIES if s.lower() == text.lower()), None)
    if found is None:
        raise PIError(400, f"The value '{text}' is not valid for severity.")
    return found


def _optional_bool(params: Params, name: str) -> bool | None:
    return params.bool(name, False) if params.get(name) else None
