"""The mock's AF asset model: one AF server (PISystem), its asset databases, element templates, element
categories and a deterministic element hierarchy whose attributes reference every PI point exactly once.

This module builds the model and looks objects up; the template catalogue is ``af_catalog``, the object
types ``af_objects``, the filtering and sorting of searches ``af_search``.

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

import re
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Protocol

from osipi_dagster.mock import webids
from osipi_dagster.mock.af_catalog import (
    DATABASE_NAMES,
    ELEMENT_TEMPLATES,
    ENTERPRISE,
    EXTRA_CATEGORIES,
    LOOP_TEMPLATES,
    POINT_ATTRIBUTE_TYPES,
    SITES,
    UNASSIGNED,
    UNIT_KINDS,
    AttributeSpec,
    TemplateSpec,
    attribute_name,
    hashed_value,
)
from osipi_dagster.mock.af_objects import (
    AttributeNode,
    AttributeSet,
    AttributeSlot,
    AttributeTemplate,
    Category,
    Database,
    Element,
    ElementTemplate,
    depth_first,
    path_key,
    stable_guid,
    stable_hash,
    walk_nodes,
    walk_templates,
)
from osipi_dagster.mock.af_search import FoundAttributes, filter_attributes, search_element_attributes
from osipi_dagster.mock.errors import PIError, not_found
from osipi_dagster.mock.model import Attribute, Point
from osipi_dagster.mock.params import Params
from osipi_dagster.mock.responses import AnswerCache

if TYPE_CHECKING:
    from osipi_dagster.mock.config import MockConfig
    from osipi_dagster.mock.eventframes import EventFrame, EventFrameModel


KEPT_SEARCHES = 4
POINT_ATTRIBUTE_CATEGORIES = ("Measurement",)
SEARCH_PARAMETERS = (
    "searchFullHierarchy", "sortOrder", "sortField", "elementNameFilter", "elementDescriptionFilter",
    "elementCategory", "elementTemplate", "attributeNameFilter", "attributeCategory", "attributeType",
)  # fmt: skip


class ArchiveLike(Protocol):
    """What the asset model needs from the PI Data Archive."""

    points: list[Point]
    server_name: str

    def point_webid(self, point: Point, webid_type: str = "Full") -> str: ...


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
        # The last element-attribute searches, by database and filters: paging through a few hundred
        # thousand attributes must not search and sort them again for every page.
        self._attribute_searches: dict[tuple, list[tuple[Element, int]]] = {}
        # Each element template's attribute templates depth-first, with their paths below the owner.
        self._template_slots: dict[uuid.UUID, tuple[tuple[AttributeTemplate, str], ...]] = {}
        # The answers of the catalog's listings (elements, attributes, points): the model and the archive's
        # points never change once built, so a repeated listing is answered as it was the first time.
        self.catalog_answers = AnswerCache()
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
            database.elements = list(depth_first(database.roots))

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
            return hashed_value(spec, stable_hash(self.seed, element.path, spec.name))

        points = [self.archive.points[i] for i in element.points]
        return self.build_attribute_set(
            element.guid, "E", element.path, element.template.inherited, value_of, None, points
        )

    def build_attribute_set(
        self,
        owner_guid: uuid.UUID,
        owner_kind: str,
        owner_path: str,
        templates: Sequence[AttributeTemplate],
        value_of: Callable[[AttributeSpec], object] | dict[str, object],
        templated_point: Point | None = None,
        points: Iterable[Point] = (),
    ) -> AttributeSet:
        """The attributes of an owner: one per attribute template (static, or a PI Point reference to
        ``templated_point``) plus one non-templated PI Point attribute per point of ``points``."""
        values = value_of if callable(value_of) else (lambda spec: value_of.get(spec.name))
        top: list[AttributeNode] = []
        every: list[AttributeNode] = []  # depth-first, as each node is made (a parent before its children)
        for template in templates:
            top.append(
                self._templated_node(
                    owner_guid, owner_kind, owner_path, template, None, values, templated_point, every
                )
            )
        points = list(points)
        for point, name in zip(points, _point_attribute_names(templates, points), strict=True):
            attribute = Attribute(
                stable_guid(self.seed, "point-attribute", point.id),
                owner_guid,
                owner_kind,
                name,
                f"{owner_path}|{name}",
                _point_attribute_type(point),
                point.units,
                POINT_ATTRIBUTE_CATEGORIES,
                point.id,
                None,
            )
            node = AttributeNode(attribute, None, (), None, point, False, False, "")
            top.append(node)
            every.append(node)
        return AttributeSet(tuple(top), tuple(every), {node.attribute.guid: node for node in every})

    def _templated_node(
        self,
        owner_guid: uuid.UUID,
        owner_kind: str,
        owner_path: str,
        template: AttributeTemplate,
        parent: AttributeNode | None,
        values: Callable[[AttributeSpec], object],
        templated_point: Point | None,
        every: list[AttributeNode],
    ) -> AttributeNode:
        """The attribute of ``template`` and its children, each appended to ``every`` as it is made."""
        spec = template.spec
        point = templated_point if spec.point else None
        if spec.scale and parent is not None and isinstance(parent.attribute.static_value, int | float):
            value: object = round(parent.attribute.static_value * spec.scale, 2)
        else:
            value = None if spec.point else values(spec)
        path = f"{parent.attribute.path if parent else owner_path}|{spec.name}"
        excluded = self._excluded(owner_path, spec)
        attribute = Attribute(
            template.guid,
            owner_guid,
            owner_kind,
            spec.name,
            path,
            _point_attribute_type(point) if point else spec.type,
            point.units if point else spec.units,
            spec.categories,
            point.id if point else None,
            None if excluded else value,
        )
        node = AttributeNode(attribute, parent, (), template, point, spec.hidden, excluded, spec.trait)
        every.append(node)
        if template.children:  # most attributes have none: no tuple to build then
            children = [
                self._templated_node(
                    owner_guid, owner_kind, owner_path, child, node, values, templated_point, every
                )
                for child in template.children
            ]
            object.__setattr__(node, "children", tuple(children))
        return node

    def _excluded(self, owner_path: str, spec: AttributeSpec) -> bool:
        """Is the attribute of ``spec`` excluded (IsExcluded) on its owner? Half the optional ones are."""
        return spec.optional and stable_hash(self.seed, owner_path, spec.name, "excluded") % 2 == 0

    def element_attributes(self, database: Database, params: Params) -> FoundAttributes:
        """The attributes ``/assetdatabases/{webId}/elementattributes`` finds (see
        :func:`~osipi_dagster.mock.af_search.search_element_attributes`), the last few searches kept; a page
        builds only the attributes it returns."""
        key = (
            database.index,
            *((params.get(name) or "").upper() for name in SEARCH_PARAMETERS),
        )
        found = self._attribute_searches.get(key)
        if found is None:
            found = search_element_attributes(database, params, self.attribute_slots)
            while len(self._attribute_searches) >= KEPT_SEARCHES:
                del self._attribute_searches[next(iter(self._attribute_searches))]
            self._attribute_searches[key] = found
        return FoundAttributes(found, self.attributes_of)

    def attribute_slots(self, element: Element) -> Iterator[AttributeSlot]:
        """The attributes of ``element`` in the order of its ``AttributeSet.every`` (as
        :meth:`build_attribute_set` makes them: its template's attributes depth-first, then one per point),
        with what the database-wide search reads, without building them."""
        templated = self._template_slots.get(element.template.guid)
        if templated is None:
            templated = self._template_slots[element.template.guid] = tuple(
                (template, "|" + template.path.split("|", 1)[1])
                for template in walk_templates(element.template.inherited)
            )
        for position, (template, below_owner) in enumerate(templated):
            spec = template.spec
            yield AttributeSlot(
                position,
                spec.name,
                element.path + below_owner,
                spec.categories,
                spec.type,
                spec.hidden,
                self._excluded(element.path, spec),
            )
        points = [self.archive.points[i] for i in element.points]
        names = _point_attribute_names(element.template.inherited, points)
        for position, (point, name) in enumerate(zip(points, names, strict=True), len(templated)):
            yield AttributeSlot(
                position,
                name,
                f"{element.path}|{name}",
                POINT_ATTRIBUTE_CATEGORIES,
                _point_attribute_type(point),
                False,
                False,
            )

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

    def child_attributes(self, web: webids.WebId, params: Params, text: str = "") -> list[AttributeNode]:
        """The attributes of an element, event frame (``Em``/``Fm``) or parent attribute (``Ab``), filtered as
        ``/elements/{webId}/attributes`` does; ``searchFullHierarchy`` adds nested child attributes."""
        full = params.bool("searchFullHierarchy", False)
        if web.marker == "Ab":
            parent = self.attribute_node(web, text)
            nodes: Iterable[AttributeNode] = walk_nodes(parent.children) if full else parent.children
        else:
            attributes = self.attributes_of(self.owner(web, text))
            nodes = attributes.every if full else attributes.top
        return filter_attributes(nodes, params)

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


def _point_attribute_names(templates: Iterable[AttributeTemplate], points: Iterable[Point]) -> list[str]:
    """The names of an owner's PI Point attributes: each point's :func:`attribute_name`, numbered when a
    templated attribute or an earlier point has it."""
    taken = {template.spec.name.upper() for template in templates}
    return [_unique(attribute_name(point), taken) for point in points]


def _point_attribute_type(point: Point) -> str:
    """The value type of an attribute that references ``point``."""
    return POINT_ATTRIBUTE_TYPES.get(point.point_type, "Double")


def _unique(name: str, taken: set[str]) -> str:
    """``name``, or ``name 2``, ``name 3``... when a sibling already has it (``taken`` is updated)."""
    candidate, number = name, 1
    while candidate.upper() in taken:
        number += 1
        candidate = f"{name} {number}"
    taken.add(candidate.upper())
    return candidate
