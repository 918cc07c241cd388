"""The mock PI Data Archive: one data server, its points, its digital state sets, and point lookups.

Everything here is a pure function of the configuration (seed, tag count, server name, archive length and
start-up time), so two servers with one configuration serve the same archive.

**Points.** ``config.tags`` points with ids 1..N, named ``Plant{p}.Area{a}.Unit{uu}.{LOOP}.{PARAM}`` (for
example ``Plant1.Area2.Unit03.FIC0301.PV``). The points of one unit are consecutive, and so are the points of
one loop: the asset model walks them in id order and the first three name segments locate the unit. A unit
holds the 15 instruments of ``UNIT_TEMPLATE`` (every tenth unit also a Future forecast point): types
Float32, Float64, Int32, Digital and String; sampling 1 s, 5 s, 60 s and irregular (exception-like). Which
points hold several values at one timestamp (``multi``, about 5 %) and which receive some values late
(``late``, ``config.late_share``) is decided by a hash of (seed, point id). With ``config.sampling == "1s"``
(a benchmark archive) every point is a 1 Hz numeric point instead (see :func:`one_hertz`): same names,
multi-values, late arrivals, bad values and forecast points, so N points hold about N x 86,400 values a day.

**WebIDs.** The data server is ``DS`` + server GUID + name; a point ``DP`` + server GUID + point id + path
``SERVER\\TAG``. Full, IDOnly, LocalIDOnly/DefaultIDOnly and PathOnly point WebIDs all resolve (PathOnly
through the case-insensitive path). Enumeration sets of the data server use marker ``MS`` with owner
``D`` (data server) + server GUID + set GUID, their values ``MV`` with owner ``D`` + server GUID + set GUID
+ value GUID (marker ``MV`` as in the EnumerationValue samples of the PI Web API reference, ``I1MVR...``);
the set paths are ``\\\\SERVER\\EnumerationSets[Name]`` (the form AF uses; a PI Data Archive's own form
was not found in the references) and a value's path is its set's path, ``\\``, its name.

**PI point queries** (``/points/search``): ``Query = AndCondition {OR AndCondition}``, an AndCondition being
filters separated by whitespace or ``AND``, optionally in parentheses. A filter is ``Attribute Operator
Value`` with operators ``:`` / ``:=`` (equal), ``:<>``, ``:<``, ``:<=``, ``:>``, ``:>=``, or a bare value
(``Tag:=value``). Values may be quoted with ' or ". Equality on text uses the PI wildcards ``*`` and ``?``,
case-insensitively. Attributes (and aliases): Tag (Name), Descriptor (Description), PointType (DataType),
PointSource, PtClassName (PointClass), EngUnits, DigitalSet, PointId, Zero, Span, DisplayDigits, Step,
Future. Value filters (Value, TimeStamp, IsGood, ...) are not simulated and answer 400.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np

from osipi_dagster.mock import webids
from osipi_dagster.mock.config import MockConfig
from osipi_dagster.mock.errors import PIError, not_found
from osipi_dagster.mock.hashing import key, uniform
from osipi_dagster.mock.model import Point
from osipi_dagster.mock.timeparse import NS
from osipi_dagster.mock.values import DataSource

SERVER_VERSION = "3.4.440.477"
_NAMESPACE = uuid.UUID("6f1d3c5e-8a47-4f0e-9b1c-2d7e5a9f0c31")  # the mock's own uuid5 namespace


@dataclass(frozen=True, slots=True)
class Instrument:
    """One point of the unit template; ``{n}`` in ``loop`` is the unit's loop prefix (e.g. ``03``)."""

    loop: str
    param: str
    point_type: str
    units: str
    descriptor: str
    sampling: str
    zero: float
    span: float
    step: bool = False
    digital_set: str = ""
    point_class: str = "classic"
    point_source: str = "OPC"
    display_digits: int = -5
    future: bool = False


UNIT_TEMPLATE: tuple[Instrument, ...] = (
    Instrument("FIC{n}01", "PV", "Float32", "m3/h", "Feed flow", "1s", 0.0, 250.0),
    Instrument("FIC{n}01", "SP", "Float32", "m3/h", "Feed flow setpoint", "60s", 0.0, 250.0, step=True),
    Instrument("FIC{n}01", "OUT", "Float32", "%", "Feed valve output", "5s", 0.0, 100.0, display_digits=1),
    Instrument("FIC{n}01", "MODE", "Digital", "", "Feed controller mode", "irregular", 0, 2, True, "Modes"),
    Instrument("TI{n}02", "PV", "Float64", "°C", "Reactor temperature", "5s", 0.0, 400.0),
    Instrument("TI{n}02", "ALM", "Digital", "", "Reactor temperature alarm", "irregular", 0, 4, True,
               "AlarmStates"),
    Instrument("PI{n}03", "PV", "Float32", "bar", "Reactor pressure", "1s", 0.0, 40.0),
    Instrument("LI{n}04", "PV", "Float32", "%", "Buffer tank level", "irregular", 0.0, 100.0),
    Instrument("XV{n}05", "STATE", "Digital", "", "Outlet valve position", "irregular", 0, 3, True,
               "ValveState"),
    Instrument("P{n}06", "RUN", "Digital", "", "Feed pump running", "irregular", 0, 1, True, "OnOff"),
    Instrument("P{n}06", "SPEED", "Int32", "rpm", "Feed pump speed", "5s", 0.0, 3600.0),
    Instrument("P{n}06", "HOURS", "Int32", "h", "Feed pump run hours", "60s", 0.0, 100000.0, True,
               point_class="base", point_source="C"),
    Instrument("FQ{n}01", "TOT", "Float64", "m3", "Feed daily total", "60s", 0.0, 6000.0,
               point_class="base", point_source="C"),
    Instrument("AI{n}07", "PV", "Float32", "ppm", "Outlet analyzer O2", "irregular", 0.0, 50.0,
               point_source="LAB"),
    Instrument("BATCH{n}", "ID", "String", "", "Current batch id", "irregular", 0.0, 0.0, True,
               point_class="base", point_source="BATCH"),
)  # fmt: skip
FORECAST = Instrument(
    "FC{n}01", "FCST", "Float32", "m3/h", "Feed flow forecast", "60s", 0.0, 250.0, future=True,
    point_source="FCST",
)  # fmt: skip
FORECAST_EVERY = 10  # every tenth unit has a Future forecast point
UNITS_PER_AREA = 20
MAX_PLANTS = 3
MULTI_SHARE = 0.05
_SALT_MULTI, _SALT_LATE = 101, 102


@dataclass(frozen=True, slots=True)
class EnumerationSet:
    """A digital state set of the data server; ``states`` are (code, name) in code order."""

    name: str
    description: str
    guid: uuid.UUID
    states: tuple[tuple[int, str], ...]
    is_system: bool = False

    def value_guid(self, code: int) -> uuid.UUID:
        return uuid.uuid5(self.guid, str(code))

    def state_name(self, code: int) -> str:
        return dict(self.states)[code]


# SYSTEM digital states (AFSystemStateCode); the mock injects the marked ones as bad values.
SYSTEM_STATES: tuple[tuple[int, str], ...] = (
    (210, "AccessDenied"), (211, "No Sample"), (212, "No Result"), (213, "Unit Down"), (214, "Sample Bad"),
    (215, "Equip Fail"), (216, "No Lab Data"), (217, "Trace"), (233, "DCS failed"), (237, "Bad Output"),
    (238, "Scan Off"), (239, "Scan On"), (240, "Configure"), (241, "Failed"), (242, "Error"),
    (243, "Execute"), (244, "Filtered"), (245, "Calc Off"), (246, "I/O Timeout"), (247, "Set to Bad"),
    (248, "No Data"), (249, "Calc Failed"), (250, "Calc Overflow"), (251, "Under Range"),
    (252, "Over Range"), (253, "Pt Created"), (254, "Shutdown"), (255, "Bad Input"), (256, "Bad Total"),
    (257, "No Alarm"), (258, "Over UCL"), (259, "Under LCL"),
)  # fmt: skip
USER_SETS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("Modes", "Controller modes", ("Manual", "Auto", "Cascade")),
    ("OnOff", "Two-state equipment status", ("Off", "On")),
    ("AlarmStates", "Process alarm states", ("Normal", "Low", "High", "LowLow", "HighHigh")),
    ("ValveState", "Valve positions", ("Closed", "Open", "Travel", "Fault")),
)


@lru_cache(maxsize=512)
def wildcard(pattern: str) -> re.Pattern[str]:
    """A PI wildcard pattern (``*`` any run, ``?`` one character) as a case-insensitive full-match regex."""
    parts = (".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL)


class Archive:
    """The PI Data Archive the mock serves (points, digital state sets, lookups)."""

    def __init__(self, config: MockConfig, started_ns: int) -> None:
        self.config = config
        self.seed = config.seed
        self.server_name = config.server_name
        self.server_guid = uuid.uuid5(_NAMESPACE, f"dataserver:{config.seed}:{config.server_name}")
        # Data exist from here on; whole seconds keep the grids of every point aligned to it.
        start = started_ns - int(config.archive_days * 86_400 * NS)
        self.start_ns = start - start % NS
        self.points: list[Point] = _build_points(config.tags, config.seed, config.late_share, config.sampling)
        self._by_name = {p.name.upper(): p for p in self.points}
        self.enumeration_sets: list[EnumerationSet] = self._build_sets()
        self._sets_by_name = {s.name.upper(): s for s in self.enumeration_sets}
        self._sets_by_guid = {s.guid: s for s in self.enumeration_sets}
        self._values_by_guid = {s.value_guid(c): (s, c) for s in self.enumeration_sets for c, _ in s.states}
        self._values_by_path = {
            self.value_path(s, c).upper(): (s, c) for s in self.enumeration_sets for c, _ in s.states
        }
        self.data = DataSource(self)  # the reads of every point's stream

    # -- the data server ------------------------------------------------------------------------------

    @property
    def path(self) -> str:
        """The DataServer ``Path`` field, ``\\\\PIServer[NAME]``."""
        return f"\\\\PIServer[{self.server_name}]"

    def webid(self, webid_type: str = "Full") -> str:
        return webids.encode("DS", (self.server_guid,), self.server_name, webid_type=webid_type)

    def resolve_server(self, text: str) -> None:
        """Check that WebID ``text`` names this data server: 400 if malformed, 404 if another object."""
        web = webids.decode(text)
        if web.marker != "DS":
            raise PIError(400, f"Unknown or invalid WebID format: '{text}'.")
        if web.guids and web.guids[0] != self.server_guid:
            raise not_found("data server", text)
        if web.path is not None and web.path.upper() != self.server_name.upper():
            raise not_found("data server", text)

    def matches_path(self, path: str) -> bool:
        """``\\\\NAME`` or ``\\\\PIServer[NAME]`` (case-insensitive) names this server."""
        bare = path.strip().lstrip("\\").upper()
        return bare in (self.server_name.upper(), f"PISERVER[{self.server_name.upper()}]")

    # -- points ---------------------------------------------------------------------------------------

    def point(self, point_id: int) -> Point:
        if not 1 <= point_id <= len(self.points):
            raise not_found("PI point", str(point_id))
        return self.points[point_id - 1]

    def point_path(self, point: Point) -> str:
        return f"\\\\{self.server_name}\\{point.name}"

    def point_webid(self, point: Point, webid_type: str = "Full") -> str:
        return webids.encode(
            "DP",
            (self.server_guid,),
            f"{self.server_name}\\{point.name}",
            point_id=point.id,
            webid_type=webid_type,
        )

    def resolve_point(self, text: str) -> Point:
        """The point a WebID names: 400 if malformed or not a point WebID, 404 if unknown."""
        web = webids.decode(text)
        if web.marker != "DP":
            raise PIError(400, f"Unknown or invalid WebID format: '{text}'.")
        if web.kind == "P":
            return self._point_by_bare_path(web.path or "", text)
        if web.guids[0] != self.server_guid or web.point_id is None:
            raise not_found("PI point", text)
        if not 1 <= web.point_id <= len(self.points):
            raise not_found("PI point", text)
        return self.points[web.point_id - 1]

    def point_by_path(self, path: str) -> Point:
        """``\\\\SERVER\\TAG`` (case-insensitive); 404 if no such point."""
        if not path.startswith("\\\\"):
            raise PIError(400, f"The path '{path}' is not a valid PI point path.")
        return self._point_by_bare_path(path[2:], path)

    def _point_by_bare_path(self, bare: str, ident: str) -> Point:
        server, _, tag = bare.partition("\\")
        point = self._by_name.get(tag.upper()) if server.upper() == self.server_name.upper() else None
        if point is None:
            raise not_found("PI point", ident)
        return point

    def find(self, name_filter: str | None) -> list[Point]:
        """Points whose name matches the PI wildcard ``name_filter`` (all points if None or empty)."""
        if not name_filter:
            return self.points
        pattern = wildcard(name_filter)
        return [p for p in self.points if pattern.fullmatch(p.name)]

    def search(self, query: str | None) -> list[Point]:
        """Points matching a PI point query (see the module docstring); a bad query is a 400."""
        if not query or not query.strip():
            return self.points
        conditions = parse_point_query(query)
        return [p for p in self.points if any(all(f(p) for f in cond) for cond in conditions)]

    # -- enumeration sets -----------------------------------------------------------------------------

    def _build_sets(self) -> list[EnumerationSet]:
        def guid(name: str) -> uuid.UUID:
            return uuid.uuid5(self.server_guid, f"enumerationset:{name.upper()}")

        sets = [EnumerationSet("SYSTEM", "System digital states", guid("SYSTEM"), SYSTEM_STATES, True)]
        for name, description, states in USER_SETS:
            sets.append(EnumerationSet(name, description, guid(name), tuple(enumerate(states))))
        return sets

    def enumeration_set(self, name: str) -> EnumerationSet:
        found = self._sets_by_name.get(name.upper())
        if found is None:
            raise not_found("enumeration set", name)
        return found

    def set_path(self, enum_set: EnumerationSet) -> str:
        return f"\\\\{self.server_name}\\EnumerationSets[{enum_set.name}]"

    def set_webid(self, enum_set: EnumerationSet, webid_type: str = "Full") -> str:
        path = self.set_path(enum_set)
        return webids.encode("MS", (self.server_guid, enum_set.guid), path, owner="D", webid_type=webid_type)

    def value_path(self, enum_set: EnumerationSet, code: int) -> str:
        return f"{self.set_path(enum_set)}\\{enum_set.state_name(code)}"

    def value_webid(self, enum_set: EnumerationSet, code: int, webid_type: str = "Full") -> str:
        guids = (self.server_guid, enum_set.guid, enum_set.value_guid(code))
        path = self.value_path(enum_set, code)
        return webids.encode("MV", guids, path, owner="D", webid_type=webid_type)

    def resolve_value(self, text: str) -> tuple[EnumerationSet, int]:
        """The (set, code) an enumeration value WebID names: 400 if malformed, 404 if unknown."""
        web = webids.decode(text)
        if web.marker != "MV":
            raise PIError(400, f"Unknown or invalid WebID format: '{text}'.")
        if web.kind == "P":
            return self.value_by_path("\\\\" + (web.path or ""), text)
        found = self._values_by_guid.get(web.guids[-1])
        if found is None or (len(web.guids) > 1 and web.guids[0] != self.server_guid):
            raise not_found("enumeration value", text)
        return found

    def value_by_path(self, path: str, text: str = "") -> tuple[EnumerationSet, int]:
        """``\\\\SERVER\\EnumerationSets[Set]\\Value`` (case-insensitive); 404 if unknown."""
        found = self._values_by_path.get(path.upper())
        if found is None:
            raise not_found("enumeration value", text or path)
        return found

    def resolve_set(self, text: str) -> EnumerationSet:
        """The enumeration set a WebID names: 400 if malformed, 404 if unknown."""
        web = webids.decode(text)
        if web.marker != "MS":
            raise PIError(400, f"Unknown or invalid WebID format: '{text}'.")
        if web.kind == "P":
            bare = (web.path or "").upper()
            for enum_set in self.enumeration_sets:
                if self.set_path(enum_set).lstrip("\\").upper() == bare:
                    return enum_set
            raise not_found("enumeration set", text)
        found = self._sets_by_guid.get(web.guids[-1])
        if found is None or (len(web.guids) > 1 and web.guids[0] != self.server_guid):
            raise not_found("enumeration set", text)
        return found


def one_hertz(spec: Instrument) -> Instrument:
    """``spec`` as a 1 Hz numeric point (``--sampling 1s``): Float32, Float64 and Int32 keep their type and
    shape; Digital and String points become Float32 analog points (no state set, not step, span 100 if
    the original had none)."""
    if spec.point_type in ("Digital", "String"):
        return replace(
            spec, sampling="1s", point_type="Float32", digital_set="", step=False, span=spec.span or 100.0
        )
    return replace(spec, sampling="1s")


def _build_points(count: int, seed: int, late_share: float, sampling: str = "mixed") -> list[Point]:
    """``count`` points, unit by unit; ids start at 1; ``sampling`` ``1s`` makes every point 1 Hz numeric."""
    convert = one_hertz if sampling == "1s" else (lambda spec: spec)
    ids = np.arange(1, count + 1)
    multi = (uniform(ids, key(seed, _SALT_MULTI)) < MULTI_SHARE).tolist()
    late = (uniform(ids, key(seed, _SALT_LATE)) < late_share).tolist()
    per_unit = len(UNIT_TEMPLATE) + 1 / FORECAST_EVERY
    units = max(1, -(-count // int(per_unit)))
    plants = min(MAX_PLANTS, units)
    units_per_plant = -(-units // plants)
    points: list[Point] = []
    unit = 0
    while len(points) < count:
        plant, within = divmod(unit, units_per_plant)
        area, number = divmod(within, UNITS_PER_AREA)
        prefix = f"Plant{plant + 1}.Area{area + 1}.Unit{number + 1:02d}"
        template = UNIT_TEMPLATE + ((FORECAST,) if unit % FORECAST_EVERY == FORECAST_EVERY - 1 else ())
        for spec in map(convert, template[: count - len(points)]):
            index = len(points)
            points.append(
                Point(
                    id=index + 1,
                    name=f"{prefix}.{spec.loop.format(n=f'{number + 1:02d}')}.{spec.param}",
                    point_type=spec.point_type,
                    point_class=spec.point_class,
                    descriptor=f"{spec.descriptor}, {prefix.replace('.', ' ')}",
                    units=spec.units,
                    digital_set=spec.digital_set,
                    zero=spec.zero,
                    span=spec.span,
                    step=spec.step,
                    future=spec.future,
                    point_source=spec.point_source,
                    display_digits=spec.display_digits,
                    sampling=spec.sampling,
                    late=late[index] and not spec.future,
                    multi=multi[index] and spec.point_type != "String" and not spec.future,
                )
            )
        unit += 1
    return points


# -- PI point query ---------------------------------------------------------------------------------------

Predicate = Callable[[Point], bool]

_ATTRIBUTES = {
    "tag": "name", "name": "name", "descriptor": "descriptor", "description": "descriptor",
    "pointtype": "point_type", "datatype": "point_type", "pointsource": "point_source",
    "ptclassname": "point_class", "pointclass": "point_class", "engunits": "units",
    "digitalset": "digital_set", "pointid": "id", "zero": "zero", "span": "span",
    "displaydigits": "display_digits", "step": "step", "future": "future",
}  # fmt: skip
_NUMERIC = {"id", "zero", "span", "display_digits"}
_BOOLEAN = {"step", "future"}
_VALUE_FILTERS = {"value", "timestamp", "substituted", "questionable", "annotated", "isgood"}
_TOKEN = re.compile(r"""\s*(?:(\()|(\))|'((?:[^'\\]|\\.|'')*)'|"((?:[^"\\]|\\.|"")*)"|([^\s()'"]+))""")
_FILTER = re.compile(r"^([A-Za-z]+)(:<>|:<=|:>=|:<|:>|:=|:)(.*)$", re.DOTALL)
_ORDER = {":<": "__lt__", ":<=": "__le__", ":>": "__gt__", ":>=": "__ge__"}


def parse_point_query(query: str) -> list[list[Predicate]]:
    """Parse a PI point query into OR-ed lists of AND-ed predicates; a syntax error is a 400."""
    conditions: list[list[Predicate]] = [[]]
    depth = 0
    pending: tuple[str, str] | None = None  # (attribute, operator) whose value is the next (quoted) token
    for kind, text in _tokenize(query):
        if pending is not None:
            if kind not in ("quoted", "word"):
                raise _bad_query(query)
            conditions[-1].append(_predicate(*pending, text, query))
            pending = None
        elif kind == "(":
            depth += 1
            if depth > 1 or conditions[-1]:
                raise _bad_query(query)
        elif kind == ")":
            depth -= 1
            if depth < 0 or not conditions[-1]:
                raise _bad_query(query)
        elif kind == "word" and text.upper() == "OR":
            if not conditions[-1] or depth:
                raise _bad_query(query)
            conditions.append([])
        elif kind == "word" and text.upper() == "AND":
            continue
        else:
            match = _FILTER.match(text) if kind == "word" else None
            if match is None:  # a bare value means Tag:=value
                conditions[-1].append(_predicate("tag", ":=", text, query))
            elif match.group(3):
                conditions[-1].append(_predicate(match.group(1), match.group(2), match.group(3), query))
            else:
                pending = (match.group(1), match.group(2))
    if depth or pending is not None or not conditions[-1]:
        raise _bad_query(query)
    return conditions


def _tokenize(query: str) -> list[tuple[str, str]]:
    tokens, pos, end = [], 0, len(query.rstrip())
    while pos < end:
        match = _TOKEN.match(query, pos)
        if not match:
            raise _bad_query(query)
        pos = match.end()
        if match.group(1) or match.group(2):
            tokens.append((match.group(0).strip(), ""))
        elif match.group(3) is not None:
            tokens.append(("quoted", match.group(3).replace("''", "'").replace("\\'", "'")))
        elif match.group(4) is not None:
            tokens.append(("quoted", match.group(4).replace('""', '"').replace('\\"', '"')))
        else:
            tokens.append(("word", match.group(5)))
    return tokens


def _predicate(attribute: str, operator: str, text: str, query: str) -> Predicate:
    """The test ``attribute operator text`` on a point."""
    name = attribute.lower()
    if name in _VALUE_FILTERS:
        raise PIError(400, f"The PI point query filter '{attribute}' is not supported by this server.")
    field = _ATTRIBUTES.get(name)
    if field is None:
        raise PIError(400, f"Unknown PI point attribute '{attribute}' in query '{query}'.")
    target = _target(field, text, query)
    if operator in (":", ":=", ":<>"):
        negate = operator == ":<>"
        if isinstance(target, str):
            pattern = wildcard(text)
            return lambda p: (pattern.fullmatch(str(getattr(p, field))) is None) is negate
        return lambda p: (getattr(p, field) == target) is not negate
    compare = _ORDER[operator]

    def ordered(point: Point) -> bool:
        value = getattr(point, field)
        value = value.lower() if isinstance(value, str) else float(value)
        return getattr(value, compare)(target) is True

    return ordered


def _target(field: str, text: str, query: str) -> object:
    """The comparison value of ``field``: a float, a bool or lower-case text."""
    if field in _NUMERIC:
        try:
            return float(text)
        except ValueError as exc:
            raise PIError(400, f"The value '{text}' is not a number in query '{query}'.") from exc
    if field in _BOOLEAN:
        if text.lower() not in ("true", "false", "1", "0"):
            raise PIError(400, f"The value '{text}' is not a boolean in query '{query}'.")
        return text.lower() in ("true", "1")
    return text.lower()


def _bad_query(query: str) -> PIError:
    return PIError(400, f"The PI point query '{query}' is not valid.")
