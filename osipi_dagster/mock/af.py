"""The mock's AF asset model: one AF server (PISystem), its asset databases, element templates, element
categories and a deterministic element hierarchy whose attributes reference every PI point exactly once.

Generation rules (a pure function of ``config.seed``, ``config.af_databases`` and the archive's points):

- The archive names its points ``Plant{p}.Area{a}.Unit{uu}.{LOOP}.{PARAM}``, the points of one unit and of
  one loop being consecutive. Walking the points in order, the first three name segments give the site,
  area and process unit elements and the fourth the equipment (one element per loop, e.g. ``FIC0301``);
  names with fewer than five segments go to ``Unassigned`` site, area and unit elements. The units are
  split into ``af_databases`` contiguous, near-equal shares (a plant may span two databases).
- Each database holds one root element, the enterprise ``MockChem``: five levels,
  ``\\\\AF\\DB\\MockChem\\Plant1\\Area2\\Unit03\\FIC0301``.
- Every point becomes one "PI Point" attribute of its equipment, named after its descriptor up to the first
  comma (``Feed flow``), else after what its engineering units measure; ConfigString ``\\\\SERVER\\TAG``.
- Every element also has static attributes (no data reference) from its template, e.g. Manufacturer,
  Model, Install Year, Rated Capacity (with child attributes Minimum and Maximum), a hidden Asset ID and an
  optional Warranty Expiry that is excluded (IsExcluded) on about half of the equipment. Sites carry their
  Country, Latitude and Longitude; about one equipment in ten also has the category ``Critical``.
- The equipment template follows the loop's letters (``P`` Centrifugal Pump, ``FIC`` Flow Controller,
  ``TI`` Temperature Transmitter, ``XV`` On-Off Valve, ...); a unit is a Batch Unit or a Continuous Unit
  by a hash of its path.

Templates use inheritance (``Centrifugal Pump`` derives from ``Pump``, from ``Rotating Equipment``, from
``Equipment``), so ``templateName`` filters match derived templates. Templated attributes share their
attribute template's id, as in AF; point attributes are element-level (non-templated) attributes.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from osipi_dagster.mock import webids
from osipi_dagster.mock.errors import PIError, not_found
from osipi_dagster.mock.model import Attribute, Point
from osipi_dagster.mock.params import Params

if TYPE_CHECKING:
    from osipi_dagster.mock.config import MockConfig
    from osipi_dagster.mock.eventframes import EventFrame, EventFrameModel


class ArchiveLike(Protocol):
    """What the asset model needs from the PI Data Archive."""

    points: list[Point]
    server_name: str

    def point_webid(self, point: Point, webid_type: str = "Full") -> str: ...


# ----------------------------------------------------------------------------------------------------------
# Deterministic hashing (``hash()`` is salted per process, so it cannot drive the data).


def stable_hash(*parts: object) -> int:
    """A 64-bit hash of ``parts`` that is the same in every process and on every machine."""
    return int.from_bytes(hashlib.blake2b(repr(parts).encode(), digest_size=8).digest(), "little")


def stable_guid(*parts: object) -> uuid.UUID:
    """A random-looking (version 4) GUID that is a pure function of ``parts``."""
    return uuid.UUID(bytes=hashlib.blake2b(repr(parts).encode(), digest_size=16).digest(), version=4)


def wildcard(pattern: str | None) -> Callable[[str], bool] | None:
    """A case-insensitive matcher for a PI/AF name filter (``*`` any run, ``?`` one character); None = all."""
    if not pattern:
        return None
    text = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    regex = re.compile(text, re.IGNORECASE | re.DOTALL)
    return lambda value: regex.fullmatch(value) is not None


def path_key(path: str) -> str:
    """The lookup key of an AF path: upper case without the leading ``\\\\`` (as PathOnly WebIDs carry it)."""
    return path.lstrip("\\").upper()


# ----------------------------------------------------------------------------------------------------------
# Template catalogue.


@dataclass(frozen=True)
class AttributeSpec:
    """An attribute a template gives its elements or event frames (a static one unless ``point``)."""

    name: str
    type: str  # Double | Int32 | String | Boolean | DateTime
    units: str = ""
    categories: tuple[str, ...] = ()
    choices: tuple[object, ...] = ()  # the value is one of these, picked by the owner's hash ...
    bounds: tuple[float, float] = (0.0, 0.0)  # ... or a number in this range
    hidden: bool = False
    optional: bool = False  # excluded (IsExcluded) on about half of the owners
    trait: str = ""  # a limit trait of a child attribute (Minimum, Maximum, ...)
    scale: float = 0.0  # a child attribute's value is its parent's value times this
    point: bool = False  # a "PI Point" data reference chosen per owner (event frame attributes)
    children: tuple[AttributeSpec, ...] = ()


@dataclass(frozen=True)
class TemplateSpec:
    """An element or event-frame template before it is placed in a database."""

    name: str
    description: str
    base: str = ""
    categories: tuple[str, ...] = ()
    attributes: tuple[AttributeSpec, ...] = ()
    instance_type: str = "Element"  # Element | EventFrame
    severity: str = "None"
    can_be_acknowledged: bool = False
    naming_pattern: str = "%TEMPLATE%"
    abbreviation: str = ""  # the tag prefix of equipment names (P-10104)


def _capacity(units: str, low: float, high: float) -> AttributeSpec:
    """``Rated Capacity`` with its limit children; each template that has one has its own units."""
    limits = ("Limits",)
    return AttributeSpec(
        "Rated Capacity",
        "Double",
        units,
        ("Nameplate",),
        bounds=(low, high),
        children=(
            AttributeSpec("Minimum", "Double", units, limits, trait="Minimum", scale=0.1),
            AttributeSpec("Maximum", "Double", units, limits, trait="Maximum", scale=1.1),
        ),
    )


def _equipment(name: str, base: str, category: str, *attributes: AttributeSpec) -> TemplateSpec:
    return TemplateSpec(name, f"A {name.lower()}", base, (category,), attributes)


_NAMEPLATE = ("Nameplate",)
_INSTRUMENT = "Instrument"
ELEMENT_TEMPLATES: tuple[TemplateSpec, ...] = (
    TemplateSpec(
        "Enterprise",
        "A company: the root of a database's hierarchy",
        categories=("Organization",),
        attributes=(
            AttributeSpec("Headquarters", "String", categories=_NAMEPLATE, choices=("Houston, US",)),
        ),
    ),
    TemplateSpec(
        "Site",
        "A production site",
        categories=("Organization", "Site"),
        attributes=(
            AttributeSpec("Country", "String", categories=("Location",)),
            AttributeSpec("Latitude", "Double", "°", ("Location",)),
            AttributeSpec("Longitude", "Double", "°", ("Location",)),
        ),
    ),
    TemplateSpec(
        "Area",
        "A plant area",
        categories=("Organization",),
        attributes=(
            AttributeSpec("Area Manager", "String", categories=_NAMEPLATE, choices=("J. Smith", "A. Novak")),
        ),
    ),
    TemplateSpec(
        "Process Unit",
        "A process unit",
        categories=("Process Unit",),
        attributes=(AttributeSpec("Design Throughput", "Double", "t/d", _NAMEPLATE, bounds=(200, 5000)),),
    ),
    TemplateSpec("Batch Unit", "A batch process unit", "Process Unit", ("Process Unit", "Batch")),
    TemplateSpec("Continuous Unit", "A continuous unit", "Process Unit", ("Process Unit", "Continuous")),
    TemplateSpec(
        "Equipment",
        "Base template of all equipment",
        categories=("Equipment",),
        attributes=(
            AttributeSpec(
                "Manufacturer", "String", categories=_NAMEPLATE, choices=("Sulzer", "Siemens", "ABB")
            ),
            AttributeSpec("Model", "String", categories=_NAMEPLATE, choices=("MX-200", "HP-45", "CPT 40")),
            AttributeSpec("Install Year", "Int32", "", _NAMEPLATE, bounds=(1985, 2024)),
            AttributeSpec("Asset ID", "String", categories=_NAMEPLATE, hidden=True),
            AttributeSpec(
                "Warranty Expiry", "String", categories=_NAMEPLATE, choices=("2026-06-30",), optional=True
            ),
        ),
    ),
    _equipment("Rotating Equipment", "Equipment", "Rotating Equipment"),
    _equipment("Pump", "Rotating Equipment", "Rotating Equipment"),
    _equipment("Centrifugal Pump", "Pump", "Rotating Equipment", _capacity("m3/h", 20, 800)),
    _equipment("Valve", "Equipment", "Static Equipment"),
    _equipment("On-Off Valve", "Valve", "Static Equipment", _capacity("m3/h", 20, 800)),
    _equipment(_INSTRUMENT, "Equipment", _INSTRUMENT),
    _equipment("Flow Controller", _INSTRUMENT, _INSTRUMENT, _capacity("m3/h", 50, 500)),
    _equipment("Flow Totalizer", _INSTRUMENT, _INSTRUMENT),
    _equipment("Transmitter", _INSTRUMENT, _INSTRUMENT),
    _equipment("Temperature Transmitter", "Transmitter", _INSTRUMENT, _capacity("°C", 100, 600)),
    _equipment("Pressure Transmitter", "Transmitter", _INSTRUMENT, _capacity("bar", 10, 100)),
    _equipment("Level Transmitter", "Transmitter", _INSTRUMENT),
    _equipment("Analyzer", "Transmitter", _INSTRUMENT),
    _equipment("Batch Tracker", _INSTRUMENT, _INSTRUMENT),
    _equipment("Forecast Model", _INSTRUMENT, _INSTRUMENT),
)
EXTRA_CATEGORIES = ("Critical",)  # given to about one equipment in ten, from no template
# The equipment template of a loop, from the letters its name starts with.
LOOP_TEMPLATES = {
    "P": "Centrifugal Pump", "XV": "On-Off Valve", "FIC": "Flow Controller", "FQ": "Flow Totalizer",
    "TI": "Temperature Transmitter", "PI": "Pressure Transmitter", "LI": "Level Transmitter",
    "AI": "Analyzer", "BATCH": "Batch Tracker", "FC": "Forecast Model",
}  # fmt: skip
UNIT_KINDS = {
    "Batch Unit": ("Batch Reactor", "Blending Unit"),
    "Continuous Unit": ("Hydrotreater", "Boiler House"),
}
SITES: tuple[tuple[str, str, float, float], ...] = (
    ("Houston", "United States", 29.76, -95.37),
    ("Rotterdam", "Netherlands", 51.92, 4.48),
    ("Singapore", "Singapore", 1.29, 103.85),
    ("Ludwigshafen", "Germany", 49.48, 8.44),
    ("Jubail", "Saudi Arabia", 27.01, 49.66),
)
DATABASE_NAMES = ("Operations", "Europe", "Americas", "Asia Pacific", "Middle East")
ENTERPRISE = "MockChem"
UNASSIGNED = "Unassigned"

POINT_ATTRIBUTE_TYPES = {
    "Float16": "Single", "Float32": "Single", "Float64": "Double", "Int16": "Int16", "Int32": "Int32",
    "Digital": "EnumerationValue", "String": "String", "Timestamp": "DateTime", "Blob": "Blob",
}  # fmt: skip
# What a point measures, from its engineering units (lower case); the attribute is named after it.
_MEASURES = {
    "degc": "Temperature", "°c": "Temperature", "deg. c": "Temperature", "degf": "Temperature",
    "°f": "Temperature", "k": "Temperature", "bar": "Pressure", "barg": "Pressure", "kpa": "Pressure",
    "mpa": "Pressure", "psi": "Pressure", "psig": "Pressure", "pa": "Pressure", "mbar": "Pressure",
    "m3/h": "Flow", "kg/h": "Flow", "t/h": "Flow", "l/min": "Flow", "m3/d": "Flow", "kg/s": "Flow",
    "%": "Level", "m": "Level", "mm": "Position", "rpm": "Speed", "hz": "Frequency", "a": "Current",
    "v": "Voltage", "kv": "Voltage", "kw": "Power", "mw": "Power", "kwh": "Energy", "mwh": "Energy",
    "mm/s": "Vibration", "um": "Vibration", "ph": "pH", "ppm": "Concentration", "mg/l": "Concentration",
    "us/cm": "Conductivity", "kg/m3": "Density", "cp": "Viscosity", "kg": "Weight", "t": "Weight",
    "s": "Duration", "h": "Running Hours",
}  # fmt: skip
_MEASURES_BY_TYPE = {"Digital": "Status", "String": "Message", "Int32": "Count", "Int16": "Count"}
UNIT_NAMES = {
    "°": "degree", "m3/h": "cubic meter per hour", "kW": "kilowatt", "m3": "cubic meter",
    "t/h": "tonne per hour", "t/d": "tonne per day", "kg": "kilogram", "degC": "degree Celsius",
    "°C": "degree Celsius", "bar": "bar", "barg": "bar gauge", "kPa": "kilopascal", "%": "percent",
    "rpm": "revolutions per minute", "A": "ampere", "V": "volt", "MW": "megawatt",
    "mm/s": "millimeter per second", "h": "hour", "s": "second", "min": "minute",
}  # fmt: skip


# ----------------------------------------------------------------------------------------------------------
# The model's objects.


@dataclass(frozen=True, eq=False)
class AttributeTemplate:
    """An attribute template of an element template (its children are nested attribute templates)."""

    guid: uuid.UUID
    spec: AttributeSpec
    template: ElementTemplate | None  # set right after construction (the template owns its attributes)
    path: str  # \\AF\DB\ElementTemplates[Pump]|Rated Capacity|Minimum
    parent: AttributeTemplate | None
    children: tuple[AttributeTemplate, ...]


@dataclass(eq=False)
class ElementTemplate:
    """An element or event-frame template placed in one database."""

    guid: uuid.UUID
    database: Database
    spec: TemplateSpec
    path: str
    lineage: tuple[str, ...]  # upper-case names: itself, its base, its base's base, ...
    attributes: tuple[AttributeTemplate, ...]  # its own top-level attribute templates
    inherited: tuple[AttributeTemplate, ...]  # base templates' first, then its own

    @property
    def name(self) -> str:
        return self.spec.name

    def derives_from(self, name: str) -> bool:
        """Is this template ``name`` or derived from it (case-insensitive)?"""
        return name.upper() in self.lineage

    def find_attribute(self, rel_path: str) -> AttributeTemplate | None:
        """The attribute template at ``Name|Child`` (case-insensitive) among its own, or None."""
        return _walk_by_name(self.attributes, rel_path, lambda t: t.spec.name, lambda t: t.children)


@dataclass(frozen=True, eq=False)
class Category:
    """An element category (event frames use element categories too)."""

    guid: uuid.UUID
    database: Database
    name: str
    path: str  # \\AF\DB\CategoriesElement[Name]


@dataclass(eq=False)
class Database:
    """An AF asset database."""

    index: int
    guid: uuid.UUID
    name: str
    description: str
    path: str
    templates: dict[str, ElementTemplate] = field(default_factory=dict)  # upper-case name -> template
    categories: dict[str, Category] = field(default_factory=dict)  # upper-case name -> category
    roots: list[Element] = field(default_factory=list)
    elements: list[Element] = field(default_factory=list)  # every element, depth-first


@dataclass(eq=False, slots=True)
class Element:
    """An AF element; ``points`` indexes the archive's points that are its PI Point attributes."""

    guid: uuid.UUID
    name: str
    path: str
    database: Database
    parent: Element | None
    template: ElementTemplate
    categories: tuple[str, ...]
    description: str
    points: tuple[int, ...]  # indexes into the archive's points
    values: dict[str, object]  # static attribute values fixed at build (the others come from hashes)
    children: list[Element] = field(default_factory=list)
    unit: Element | None = None  # its process unit (itself for a unit), for event frame references


@dataclass(frozen=True, eq=False, slots=True)
class AttributeNode:
    """An attribute with what its JSON needs beyond ``model.Attribute``."""

    attribute: Attribute
    parent: AttributeNode | None
    children: tuple[AttributeNode, ...]
    template: AttributeTemplate | None
    point: Point | None
    hidden: bool
    excluded: bool
    trait: str


@dataclass(frozen=True, eq=False)
class AttributeSet:
    """The attributes of one element or event frame."""

    top: tuple[AttributeNode, ...]
    every: tuple[AttributeNode, ...]  # depth-first, children after their parent
    by_guid: dict[uuid.UUID, AttributeNode]

    def find(self, rel_path: str) -> AttributeNode | None:
        """The attribute at ``Name|Child`` (case-insensitive), or None."""
        return _walk_by_name(self.top, rel_path, lambda n: n.attribute.name, lambda n: n.children)


def _walk_by_name(nodes, rel_path: str, name_of, children_of):
    """Follow ``A|B|C`` down a tree of named nodes, case-insensitively."""
    found = None
    for part in rel_path.upper().split("|"):
        found = next((node for node in nodes if name_of(node).upper() == part), None)
        if found is None:
            return None
        nodes = children_of(found)
    return found


# ----------------------------------------------------------------------------------------------------------
# The model.


class AssetModel:
    """One AF server with ``config.af_databases`` databases over the archive's points (see the module doc)."""

    def __init__(self, config: MockConfig, archive: ArchiveLike) -> None:
        self.config = config
        self.seed = config.seed
        self.archive = archive
        self.server_name = config.af_server_name
        self.system_guid = stable_guid(config.seed, "af-system", config.af_server_name)
        self.path = "\\\\" + self.server_name
        self.event_frames: EventFrameModel | None = None  # attached by the EventFrameModel
        self.databases: list[Database] = []
        self.units: list[Element] = []  # every process unit, in database and build order
        self._elements: dict[uuid.UUID, Element] = {}
        self._by_path: dict[str, Element] = {}
        self._attribute_sets: dict[uuid.UUID, AttributeSet] = {}  # element attributes, built on first use
        self._build()

    # -- construction ------------------------------------------------------------------------------------

    def _build(self) -> None:
        units = _group_points(self.archive.points)
        count = max(1, self.config.af_databases)
        for index in range(count):
            database = self._add_database(index)
            self.register_templates(database, ELEMENT_TEMPLATES, EXTRA_CATEGORIES)
            share = units[len(units) * index // count : len(units) * (index + 1) // count]
            enterprise = self._add_element(database, None, ENTERPRISE, "Enterprise", "MockChem Industries")
            for location, loops in share:
                self._add_unit(database, enterprise, location, loops)
            database.elements = list(_depth_first(database.roots))

    def _add_database(self, index: int) -> Database:
        name = DATABASE_NAMES[index] if index < len(DATABASE_NAMES) else f"Operations {index + 1}"
        database = Database(
            index,
            stable_guid(self.seed, "af-database", index),
            name,
            f"Asset model of the {name} region",
            f"{self.path}\\{name}",
        )
        self.databases.append(database)
        return database

    def register_templates(
        self, database: Database, specs: Iterable[TemplateSpec], extra_categories: Iterable[str] = ()
    ) -> None:
        """Place ``specs`` (bases first) and their categories in ``database``."""
        for spec in specs:
            base = database.templates[spec.base.upper()] if spec.base else None
            path = f"{database.path}\\ElementTemplates[{spec.name}]"
            own = tuple(self._attribute_template(database, spec.name, path, a, None) for a in spec.attributes)
            template = ElementTemplate(
                stable_guid(self.seed, "template", database.index, spec.name),
                database,
                spec,
                path,
                (spec.name.upper(), *(base.lineage if base else ())),
                own,
                (*(base.inherited if base else ()), *own),
            )
            for attribute in walk_templates(own):
                object.__setattr__(attribute, "template", template)
            database.templates[spec.name.upper()] = template
            for name in spec.categories:
                self._add_category(database, name)
        for name in extra_categories:
            self._add_category(database, name)

    def _attribute_template(
        self,
        database: Database,
        owner: str,
        owner_path: str,
        spec: AttributeSpec,
        parent: AttributeTemplate | None,
    ) -> AttributeTemplate:
        path = f"{parent.path if parent else owner_path}|{spec.name}"
        node = AttributeTemplate(
            stable_guid(self.seed, "attribute-template", database.index, owner, path),
            spec,
            None,
            path,
            parent,
            (),
        )
        children = tuple(
            self._attribute_template(database, owner, owner_path, c, node) for c in spec.children
        )
        object.__setattr__(node, "children", children)
        return node

    def _add_category(self, database: Database, name: str) -> None:
        if name.upper() not in database.categories:
            database.categories[name.upper()] = Category(
                stable_guid(self.seed, "category", database.index, name),
                database,
                name,
                f"{database.path}\\CategoriesElement[{name}]",
            )

    def _child(self, database: Database, parent: Element, name: str, make: Callable[[], Element]) -> Element:
        """``parent``'s child ``name``, made by ``make`` the first time it is needed."""
        return self._by_path.get(path_key(f"{parent.path}\\{name}")) or make()

    def _add_unit(
        self,
        database: Database,
        enterprise: Element,
        location: tuple[str, str, str],
        loops: dict[str, list[int]],
    ) -> None:
        site_name, area_name, unit_name = location
        site = self._child(
            database, enterprise, site_name, lambda: self._add_site(database, enterprise, site_name)
        )
        area = self._child(
            database,
            site,
            area_name,
            lambda: self._add_element(database, site, area_name, "Area", f"{area_name} area"),
        )
        path = f"{area.path}\\{unit_name}"
        template = (
            "Batch Unit" if stable_hash(self.seed, "unit-kind", path.upper()) % 2 else "Continuous Unit"
        )
        kinds = UNIT_KINDS[template]
        kind = kinds[stable_hash(self.seed, "unit", path.upper()) % len(kinds)]
        unit = self._child(
            database, area, unit_name, lambda: self._add_element(database, area, unit_name, template, kind)
        )
        unit.unit = unit
        self.units.append(unit)
        for loop, points in loops.items():
            letters = re.match(r"[A-Za-z]*", loop).group(0).upper()  # type: ignore[union-attr]
            template_name = LOOP_TEMPLATES.get(letters, "Equipment")
            critical = stable_hash(self.seed, "critical", unit.path, loop) % 10 == 0
            categories = ("Critical",) if critical else ()
            self._add_element(
                database, unit, loop, template_name, f"{template_name} {loop}", points, categories
            )

    def _add_site(self, database: Database, enterprise: Element, name: str) -> Element:
        number = len(enterprise.children)
        city, country, latitude, longitude = SITES[stable_hash(self.seed, "site", name.upper()) % len(SITES)]
        values = {"Country": country, "Latitude": latitude, "Longitude": longitude}
        description = f"{city} production site" + (f" {number + 1}" if number else "")
        return self._add_element(database, enterprise, name, "Site", description, values=values)

    def _add_element(
        self,
        database: Database,
        parent: Element | None,
        name: str,
        template_name: str,
        description: str,
        points: tuple[int, ...] = (),
        extra_categories: tuple[str, ...] = (),
        values: dict[str, object] | None = None,
    ) -> Element:
        template = database.templates[template_name.upper()]
        path = f"{parent.path if parent else database.path}\\{name}"
        element = Element(
            stable_guid(self.seed, "element", path.upper()),
            name,
            path,
            database,
            parent,
            template,
            (*template.spec.categories, *extra_categories),
            description,
            points,
            values or {},
            unit=parent.unit if parent else None,
        )
        (parent.children if parent else database.roots).append(element)
        self._elements[element.guid] = element
        self._by_path[path_key(path)] = element
        return element

    def attach_event_frames(self, event_frames: EventFrameModel) -> None:
        """Let attribute and time-context look-ups reach event frames (the EventFrameModel calls this)."""
        self.event_frames = event_frames

    # -- look-ups ---------------------------------------------------------------------------------------

    def check_system(self, web: webids.WebId, kind: str, text: str) -> uuid.UUID | None:
        """The object GUID of a decoded WebID of this AF server (None for PathOnly); 404 if foreign."""
        if web.kind == "P":
            return None
        if web.kind in ("F", "I") and web.guids[0] != self.system_guid:
            raise not_found(kind, text)
        return web.guids[-1]

    def database(self, web: webids.WebId, text: str = "") -> Database:
        """The database a ``RD`` WebID names; 404 if unknown."""
        guid = self._expect(web, "RD", "asset database", text)
        found = next(
            (d for d in self.databases if (d.guid == guid if guid else path_key(d.path) == web.path)), None
        )
        if found is None:
            raise not_found("asset database", text)
        return found

    def database_by_path(self, path: str) -> Database:
        found = next((d for d in self.databases if path_key(d.path) == path_key(path)), None)
        if found is None:
            raise not_found("asset database", path)
        return found

    def element(self, web: webids.WebId, text: str = "") -> Element:
        """The element an ``Em`` WebID names; 404 if unknown."""
        guid = self._expect(web, "Em", "element", text)
        found = self._elements.get(guid) if guid else self._by_path.get(web.path or "")
        if found is None:
            raise not_found("element", text)
        return found

    def element_by_path(self, path: str) -> Element:
        found = self._by_path.get(path_key(path))
        if found is None:
            raise not_found("element", path)
        return found

    def template(self, web: webids.WebId, text: str = "") -> ElementTemplate:
        """The element template an ``ET`` WebID names; 404 if unknown."""
        guid = self._expect(web, "ET", "element template", text)
        for database in self.databases:
            for template in database.templates.values():
                if (template.guid == guid) if guid else (path_key(template.path) == web.path):
                    return template
        raise not_found("element template", text)

    def template_by_path(self, path: str) -> ElementTemplate:
        """``\\\\AF\\DB\\ElementTemplates[Name]``; 404 if unknown."""
        match = re.fullmatch(r"(.*)\\ElementTemplates\[(.+)\]", path.strip(), re.IGNORECASE)
        database = self.database_by_path(match.group(1)) if match else None
        template = database.templates.get(match.group(2).upper()) if database and match else None
        if template is None:
            raise not_found("element template", path)
        return template

    def attribute_template(self, web: webids.WebId, text: str = "") -> AttributeTemplate:
        """The attribute template an ``AT`` WebID names; 404 if unknown."""
        guid = self._expect(web, "AT", "attribute template", text)
        for database in self.databases:
            for template in database.templates.values():
                for attribute in walk_templates(template.attributes):
                    if (attribute.guid == guid) if guid else (path_key(attribute.path) == web.path):
                        return attribute
        raise not_found("attribute template", text)

    def category(self, web: webids.WebId, text: str = "") -> Category:
        """The element category an ``EC`` WebID names; 404 if unknown."""
        guid = self._expect(web, "EC", "element category", text)
        for database in self.databases:
            for category in database.categories.values():
                if (category.guid == guid) if guid else (path_key(category.path) == web.path):
                    return category
        raise not_found("element category", text)

    def _expect(self, web: webids.WebId, marker: str, kind: str, text: str) -> uuid.UUID | None:
        if web.marker != marker:
            raise not_found(kind, text)
        return self.check_system(web, kind, text)

    # -- elements -------------------------------------------------------------------------------------

    def search_elements(self, root: Database | Element, params: Params) -> list[Element]:
        """The children (or, with ``searchFullHierarchy``, descendants) of ``root`` that pass the filters of
        ``/elements`` (nameFilter, descriptionFilter, categoryName, templateName incl. derived templates),
        sorted by ``sortField`` (Name | Description) and ``sortOrder``."""
        full = params.bool("searchFullHierarchy", False)
        sort_field = params.choice("sortField", "Name", ["Name", "Description"])
        descending = params.choice("sortOrder", "Ascending", ["Ascending", "Descending"]) == "Descending"
        name = wildcard(params.get("nameFilter"))
        description = wildcard(params.get("descriptionFilter"))
        category = (params.get("categoryName") or "").upper()
        template = params.get("templateName")
        if isinstance(root, Database):
            candidates: Iterable[Element] = root.elements if full else root.roots
        else:
            candidates = _depth_first(root.children) if full else root.children
        found = [
            e
            for e in candidates
            if (name is None or name(e.name))
            and (description is None or description(e.description))
            and (not category or any(c.upper() == category for c in e.categories))
            and (not template or e.template.derives_from(template))
        ]
        key = (lambda e: (e.name.lower(), e.path.lower())) if sort_field == "Name" else _description_key
        return sorted(found, key=key, reverse=descending)

    # -- attributes -----------------------------------------------------------------------------------

    def attributes_of(self, owner: Element | EventFrame) -> AttributeSet:
        """The attributes of an element (built on first use, then kept) or of an event frame (built on each
        call: frames are generated on demand and must not pile up in memory)."""
        if not isinstance(owner, Element):
            return self.build_attribute_set(
                owner.guid, "F", owner.path, owner.template.inherited, owner.values, owner.point
            )
        found = self._attribute_sets.get(owner.guid)
        if found is None:
            found = self._attribute_sets[owner.guid] = self._element_attributes(owner)
        return found

    def _element_attributes(self, element: Element) -> AttributeSet:
        def value_of(spec: AttributeSpec) -> object:
            if spec.name in element.values:
                return element.values[spec.name]
            if spec.name == "Asset ID":
                return f"A{stable_hash(self.seed, element.path) % 10**8:08d}"
            return _hashed_value(spec, stable_hash(self.seed, element.path, spec.name))

        points = [self.archive.points[i] for i in element.points]
        return self.build_attribute_set(
            element.guid, "E", element.path, element.template.inherited, value_of, None, points
        )

    def build_attribute_set(
        self,
        owner_guid: uuid.UUID,
        owner_kind: str,
        owner_path: str,
        templates: Iterable[AttributeTemplate],
        value_of: Callable[[AttributeSpec], object] | dict[str, object],
        templated_point: Point | None = None,
        points: Iterable[Point] = (),
    ) -> AttributeSet:
        """The attributes of an owner: one per attribute template (static, or a PI Point reference to
        ``templated_point``) plus one non-templated PI Point attribute per point of ``points``."""
        values = value_of if callable(value_of) else (lambda spec: value_of.get(spec.name))
        top: list[AttributeNode] = []
        for template in templates:
            top.append(
                self._templated_node(
                    owner_guid, owner_kind, owner_path, template, None, values, templated_point
                )
            )
        names = {node.attribute.name.upper() for node in top}
        for point in points:
            name = _unique(_attribute_name(point), names)
            attribute = Attribute(
                stable_guid(self.seed, "point-attribute", point.id),
                owner_guid,
                owner_kind,
                name,
                f"{owner_path}|{name}",
                POINT_ATTRIBUTE_TYPES.get(point.point_type, "Double"),
                point.units,
                ("Measurement",),
                point.id,
                None,
            )
            top.append(AttributeNode(attribute, None, (), None, point, False, False, ""))
        every = tuple(_walk_nodes(top))
        return AttributeSet(tuple(top), every, {node.attribute.guid: node for node in every})

    def _templated_node(
        self,
        owner_guid: uuid.UUID,
        owner_kind: str,
        owner_path: str,
        template: AttributeTemplate,
        parent: AttributeNode | None,
        values: Callable[[AttributeSpec], object],
        templated_point: Point | None,
    ) -> AttributeNode:
        spec = template.spec
        point = templated_point if spec.point else None
        if spec.scale and parent is not None and isinstance(parent.attribute.static_value, int | float):
            value: object = round(parent.attribute.static_value * spec.scale, 2)
        else:
            value = None if spec.point else values(spec)
        path = f"{parent.attribute.path if parent else owner_path}|{spec.name}"
        excluded = spec.optional and stable_hash(self.seed, owner_path, spec.name, "excluded") % 2 == 0
        attribute = Attribute(
            template.guid,
            owner_guid,
            owner_kind,
            spec.name,
            path,
            POINT_ATTRIBUTE_TYPES.get(point.point_type, "Double") if point else spec.type,
            point.units if point else spec.units,
            spec.categories,
            point.id if point else None,
            None if excluded else value,
        )
        node = AttributeNode(attribute, parent, (), template, point, spec.hidden, excluded, spec.trait)
        children = tuple(
            self._templated_node(owner_guid, owner_kind, owner_path, child, node, values, templated_point)
            for child in template.children
        )
        object.__setattr__(node, "children", children)
        return node

    def owner(self, web: webids.WebId, text: str = "") -> Element | EventFrame:
        """The element (``Em``) or event frame (``Fm``) a WebID names; 404 if unknown."""
        if web.marker == "Fm" and self.event_frames is not None:
            return self.event_frames.frame(web, text)
        return self.element(web, text)

    def attribute_node(self, web: webids.WebId, text: str = "") -> AttributeNode:
        """The element or event-frame attribute an ``Ab`` WebID names; 404 if unknown."""
        if web.marker != "Ab" or web.owner not in ("E", "F"):
            raise not_found("attribute", text)
        if web.kind == "P":
            return self.attribute_by_path(web.path or "", text)
        if web.kind not in ("F", "I"):  # a local id carries only the attribute's id, shared by a template
            raise not_found("attribute", text)
        self.check_system(web, "attribute", text)
        owner_marker = "Em" if web.owner == "E" else "Fm"
        owner_web = webids.WebId("I", owner_marker, "", (web.guids[0], web.guids[1]), None, None)
        found = self.attributes_of(self.owner(owner_web, text)).by_guid.get(web.guids[2])
        if found is None:
            raise not_found("attribute", text)
        return found

    def attribute_by_path(self, path: str, text: str = "") -> AttributeNode:
        """``\\\\AF\\DB\\Element|Attribute|Child`` or ``\\\\AF\\DB\\EventFrames[EF]|Attribute`` (404 if
        unknown)."""
        owner_path, _, rel = path.partition("|")
        try:
            if re.search(r"\\EventFrames\[", owner_path, re.IGNORECASE) and self.event_frames is not None:
                owner: Element | EventFrame = self.event_frames.frame_by_path(owner_path)
            else:
                owner = self.element_by_path(owner_path)
        except PIError:
            raise not_found("attribute", text or path) from None
        found = self.attributes_of(owner).find(rel) if rel else None
        if found is None:
            raise not_found("attribute", text or path)
        return found

    def attribute(self, web: webids.WebId) -> Attribute:
        """The element or event-frame attribute a WebID names (the streams' entry point); 404 if unknown."""
        return self.attribute_node(web).attribute

    def filter_attributes(self, nodes: Iterable[AttributeNode], params: Params) -> list[AttributeNode]:
        """Apply nameFilter, categoryName, templateName, showExcluded and showHidden; sort by name."""
        name = wildcard(params.get("nameFilter"))
        category = (params.get("categoryName") or "").upper()
        template = params.get("templateName")
        show_excluded = params.bool("showExcluded", False)
        show_hidden = params.bool("showHidden", False)
        descending = params.choice("sortOrder", "Ascending", ["Ascending", "Descending"]) == "Descending"
        params.choice("sortField", "Name", ["Name"])
        found = [
            node
            for node in nodes
            if (name is None or name(node.attribute.name))
            and (not category or any(c.upper() == category for c in node.attribute.categories))
            and (
                not template
                or (
                    node.template is not None
                    and node.template.template is not None
                    and node.template.template.derives_from(template)
                )
            )
            and (show_excluded or not node.excluded)
            and (show_hidden or not node.hidden)
        ]
        return sorted(
            found, key=lambda n: (n.attribute.name.lower(), n.attribute.path.lower()), reverse=descending
        )

    def child_attributes(self, web: webids.WebId, params: Params, text: str = "") -> list[AttributeNode]:
        """The attributes of an element, event frame (``Em``/``Fm``) or parent attribute (``Ab``), filtered as
        ``/elements/{webId}/attributes`` does; ``searchFullHierarchy`` adds nested child attributes."""
        full = params.bool("searchFullHierarchy", False)
        if web.marker == "Ab":
            parent = self.attribute_node(web, text)
            nodes: Iterable[AttributeNode] = _walk_nodes(parent.children) if full else parent.children
        else:
            attributes = self.attributes_of(self.owner(web, text))
            nodes = attributes.every if full else attributes.top
        return self.filter_attributes(nodes, params)

    def stream_attributes(self, web: webids.WebId, params: Params) -> list[Attribute]:
        """The attributes behind ``/streamsets/{webId}/...`` (nameFilter, categoryName, templateName,
        searchFullHierarchy, showExcluded, showHidden); 404 if the element or event frame is unknown."""
        return [node.attribute for node in self.child_attributes(web, params)]

    def time_context(self, web: webids.WebId) -> tuple[int, int] | None:
        """An event frame's (or its attribute's) time range in ns, its end being now while it is open;
        None for elements and their attributes."""
        if web.marker == "Ab" and web.owner == "F":
            node = self.attribute_node(web)
            frame_guid = node.attribute.owner_guid
            assert self.event_frames is not None  # an "F" attribute resolved, so frames are attached
            return self.event_frames.time_context_of(self.event_frames.frame_by_guid(frame_guid))
        if web.marker == "Fm" and self.event_frames is not None:
            return self.event_frames.time_context_of(self.event_frames.frame(web))
        if web.marker in ("Em", "Ab"):
            if web.marker == "Em":
                self.element(web)
            else:
                self.attribute_node(web)
            return None
        raise not_found("element or event frame", "")

    # -- points -----------------------------------------------------------------------------------------

    def config_string(self, point: Point) -> str:
        """The ConfigString of a PI Point data reference: ``\\\\SERVER\\TAG``."""
        return f"\\\\{self.archive.server_name}\\{point.name}"


# ----------------------------------------------------------------------------------------------------------
# Helpers.


def _group_points(points: list[Point]) -> list[tuple[tuple[str, str, str], dict[str, list[int]]]]:
    """The units in point order: ((site, area, unit), {loop: point indexes}) from the points' names."""
    units: dict[tuple[str, str, str], dict[str, list[int]]] = {}
    for index, point in enumerate(points):
        parts = point.name.split(".")
        if len(parts) >= 5:
            location, loop = (parts[0], parts[1], parts[2]), parts[3]
        else:
            location, loop = (UNASSIGNED, UNASSIGNED, UNASSIGNED), point.name
        units.setdefault(location, {}).setdefault(loop, []).append(index)
    return list(units.items())


def _depth_first(elements: Iterable[Element]) -> Iterator[Element]:
    stack = list(reversed(list(elements)))
    while stack:
        element = stack.pop()
        yield element
        stack.extend(reversed(element.children))


def _walk_nodes(nodes: Iterable[AttributeNode]) -> Iterator[AttributeNode]:
    for node in nodes:
        yield node
        yield from _walk_nodes(node.children)


def walk_templates(templates: Iterable[AttributeTemplate]) -> Iterator[AttributeTemplate]:
    """Attribute templates depth-first, each followed by its children."""
    for template in templates:
        yield template
        yield from walk_templates(template.children)


def _description_key(element: Element) -> tuple[str, str]:
    return element.description.lower(), element.path.lower()


def _hashed_value(spec: AttributeSpec, draw: int) -> object:
    """A static attribute's value: one of its choices, or a number within its bounds."""
    if spec.choices:
        return spec.choices[draw % len(spec.choices)]
    low, high = spec.bounds
    if spec.type == "Int32":
        return int(low) + draw % (int(high) - int(low) + 1)
    if spec.type == "String":
        return ""
    return round(low + (high - low) * (draw % 10_000) / 10_000, 1)


def _attribute_name(point: Point) -> str:
    """A point's attribute name: its descriptor up to the first comma, else what its units measure."""
    described = point.descriptor.split(",")[0].strip()
    return (
        described
        or _MEASURES.get(point.units.strip().lower())
        or _MEASURES_BY_TYPE.get(point.point_type, "Value")
    )


def _unique(name: str, taken: set[str]) -> str:
    """``name``, or ``name 2``, ``name 3``... when a sibling already has it (``taken`` is updated)."""
    candidate, number = name, 1
    while candidate.upper() in taken:
        number += 1
        candidate = f"{name} {number}"
    taken.add(candidate.upper())
    return candidate
