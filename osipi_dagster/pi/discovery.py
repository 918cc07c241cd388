"""Discovery of the PI System: data servers, points, AF servers, databases, the element hierarchy,
attributes with their PI points, enumeration sets and event frames.

Every listing pages with ``startIndex``/``maxCount`` until a short page (``Links.Next`` is not relied on),
so nothing stops at PI's default of 1,000 items; a server that ignores ``startIndex`` is detected (a page
that brings nothing new) and refused with :class:`~osipi_dagster.pi.errors.PIPagingError`. Objects are
frozen msgspec structs with snake_case fields (the JSON's PascalCase names), plus a few fields the client
derives (parent, depth, point, open flag).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from itertools import islice
from typing import TYPE_CHECKING, Generic, TypeVar
from urllib.parse import quote, urlencode

import msgspec

from osipi_dagster.contract import to_pi_time
from osipi_dagster.pi.decode import WebException as _WebException
from osipi_dagster.pi.decode import check_web_exception, decoder
from osipi_dagster.pi.errors import PIPagingError, PIWebAPIError

if TYPE_CHECKING:
    from osipi_dagster.pi.transport import Params, Transport

T = TypeVar("T")
ObjectT = TypeVar("ObjectT", bound="_Object")

SEARCH_MODES = (
    "None",
    "StartInclusive",
    "EndInclusive",
    "Inclusive",
    "Overlapped",
    "InProgress",
    "BackwardFromStartTime",
    "ForwardFromStartTime",
    "BackwardFromEndTime",
    "ForwardFromEndTime",
    "BackwardInProgress",
    "ForwardInProgress",
)
# Modes that look from one point in time: PI refuses endTime, sortField and sortOrder with them.
_DIRECTIONAL = frozenset(m for m in SEARCH_MODES if m.startswith(("Backward", "Forward")))


# Not tracked by Python's garbage collector (``gc=False``, inherited by every listed object): an object holds
# only strings, numbers and lists or dicts of strings, so it can never be part of a reference cycle, and a
# catalog read decodes hundreds of thousands of them, which tracked made the collector walk again and again
# (125,000 AF attributes decoded, resolved and given their element a page at a time in a process that holds
# Dagster: 1.3 s of CPU tracked, 0.7 s untracked).
class _Object(msgspec.Struct, frozen=True, kw_only=True, rename="pascal", gc=False):
    web_id: str
    name: str = ""
    path: str = ""
    links: dict[str, str] = {}


class DataServer(_Object, frozen=True, kw_only=True, rename="pascal"):
    """A PI Data Archive. ``server_time`` is its clock when the answer was made (PI's UTC string): readers
    take "now" from it, not from the local clock, so a skewed local clock never reads the future."""

    id: str = ""
    is_connected: bool | None = None
    server_version: str | None = None
    server_time: str | None = None


class Point(_Object, frozen=True, kw_only=True, rename="pascal"):
    id: int | None = None
    descriptor: str = ""
    point_class: str = ""
    point_type: str = ""
    digital_set_name: str = ""
    engineering_units: str = ""
    span: float | None = None
    zero: float | None = None
    step: bool = False
    future: bool = False


class AssetServer(_Object, frozen=True, kw_only=True, rename="pascal"):
    id: str = ""
    description: str = ""
    is_connected: bool | None = None
    server_version: str | None = None


class AssetDatabase(_Object, frozen=True, kw_only=True, rename="pascal"):
    id: str = ""
    description: str = ""


class Element(_Object, frozen=True, kw_only=True, rename="pascal"):
    """An AF element. ``parent_web_id`` (None for a root element) and ``depth`` (0 for a root element)
    are derived from the element's path within the listing (:meth:`Discovery.element_pages`: the parent's
    ``Links.Parent`` until the whole listing is read)."""

    id: str = ""
    description: str = ""
    template_name: str = ""
    has_children: bool = False
    category_names: list[str] = []
    parent_web_id: str | None = None
    depth: int = 0


class Attribute(_Object, frozen=True, kw_only=True, rename="pascal"):
    """An AF attribute. For a PI Point data reference, ``point_web_id`` and ``point_path`` name the point
    (from ``Links.Point``, else resolved from the config string); both are None for other attributes.
    ``element_web_id`` is the owning element's WebId from ``Links.Element`` (None when PI leaves it out)."""

    id: str = ""
    description: str = ""
    type: str = ""
    type_qualifier: str = ""
    default_units_name: str = ""
    default_units_name_abbreviation: str = ""
    data_reference_plug_in: str = ""
    config_string: str = ""
    is_configuration_item: bool = False
    is_excluded: bool = False
    is_hidden: bool = False
    has_children: bool = False
    step: bool = False
    category_names: list[str] = []
    point_web_id: str | None = None
    point_path: str | None = None
    element_web_id: str | None = None


# What the catalog tables keep of an element, an attribute and a point: ``selectedFields`` trims the rest
# (stream links, templates, security...), most of each answer's bytes, before it is sent. An element's or an
# attribute's ``Id`` (a GUID, 6 % of an attribute's bytes) and an element's ``HasChildren`` are not stored.
ELEMENT_FIELDS = tuple(
    f"Items.{name}"
    for name in ("WebId", "Name", "Path", "Description", "TemplateName", "CategoryNames", "Links.Parent")
)
ATTRIBUTE_FIELDS = tuple(
    f"Items.{name}"
    for name in (
        "WebId", "Name", "Path", "Type", "DefaultUnitsNameAbbreviation", "DataReferencePlugIn",
        "ConfigString", "CategoryNames", "Links.Point", "Links.Element",
    )
)  # fmt: skip
POINT_FIELDS = tuple(
    f"Items.{name}"
    for name in (
        "WebId", "Id", "Name", "Path", "Descriptor", "PointClass", "PointType", "DigitalSetName",
        "EngineeringUnits", "Step", "Future",
    )
)  # fmt: skip


def _selected(fields: Sequence[str]) -> list[tuple[str, str]]:
    return [("selectedFields", ";".join(fields))] if fields else []


class EnumerationValue(msgspec.Struct, frozen=True, kw_only=True, rename="pascal"):
    name: str
    value: int
    description: str = ""


class EnumerationSet(_Object, frozen=True, kw_only=True, rename="pascal"):
    id: str = ""
    description: str = ""
    values: list[EnumerationValue] = []


class EventFrame(_Object, frozen=True, kw_only=True, rename="pascal"):
    """An event frame. Times are PI's UTC strings; ``end_time`` is None while the frame is open (PI says
    9999-12-31 or nothing). ``primary_element_web_id`` comes from ``Links.PrimaryReferencedElement``, else
    the first of ``ref_element_web_ids``; ``parent_web_id`` from ``Links.Parent`` (None for a root frame)."""

    id: str = ""
    description: str = ""
    template_name: str = ""
    has_children: bool = False
    category_names: list[str] = []
    start_time: str | None = None
    end_time: str | None = None
    severity: str = "None"
    acknowledged_by: str | None = None
    acknowledged_date: str | None = None
    can_be_acknowledged: bool = False
    is_acknowledged: bool = False
    is_annotated: bool = False
    is_locked: bool = False
    are_values_captured: bool = False
    ref_element_web_ids: list[str] = []
    primary_element_web_id: str | None = None
    parent_web_id: str | None = None

    @property
    def is_open(self) -> bool:
        return self.end_time is None


class _Page(msgspec.Struct, Generic[T]):
    Items: list[T] = []
    WebException: _WebException | None = None


def _web_id_of_link(link: str | None, collection: str) -> str | None:
    """The WebId at the end of a link such as ``…/elements/{webId}``, when it points into ``collection``."""
    if not link:
        return None
    head, _, tail = link.rstrip("/").rpartition("/")
    return tail if head.endswith("/" + collection) and tail else None


def element_parent(path: str, linked_parent: str | None, web_ids_by_path: Mapping[str, str]) -> str | None:
    """The WebId of the parent of the element at ``path``: the element listed at the parent's path
    (``web_ids_by_path``: the upper-cased paths of a database's elements -> their WebIds), failing that
    ``linked_parent`` (its ``Links.Parent``: the parent may be filtered out of the list); None for a root
    element (``\\\\AF\\DB\\Root``)."""
    parts = _split_path(path)
    if len(parts) <= 3:
        return None
    return web_ids_by_path.get(("\\\\" + "\\".join(parts[:-1])).upper()) or linked_parent


def _mark_seen(seen: set[int], item: _Object) -> bool:
    """Add ``item`` to ``seen``; False when it was there. WebId and path together: an element referenced
    under two parents keeps its WebId at both places."""
    key = hash((item.web_id, item.path))
    if key in seen:
        return False
    seen.add(key)
    return True


def _split_path(path: str) -> list[str]:
    return path.lstrip("\\").split("\\")


def point_path_from_config(config_string: str) -> str | None:
    """``\\\\server\\tag`` of a PI Point data reference's config string, or None when it has none
    (substitution patterns such as ``%Element%`` are returned as they are)."""
    head = config_string.split(";", 1)[0].strip()
    if not head.startswith("\\\\"):
        return None
    parts = [segment.split("?", 1)[0] for segment in _split_path(head)]
    if len(parts) < 2 or not all(parts):
        return None
    return "\\\\" + "\\".join(parts)


class Discovery:
    """Discovery calls; :class:`~osipi_dagster.pi.client.PIWebAPIClient` inherits them."""

    _transport: Transport

    def _get_object(self, path: str, kind: type[T], params: Params = ()) -> T:
        return self._transport.get(path, params, decode=decoder(kind).decode)

    def _list(self, path: str, kind: type[T], params: Params = ()) -> list[T]:
        """A collection that PI does not page."""
        page = self._transport.get(path, params, decode=decoder(_Page[kind]).decode)
        check_web_exception(page.WebException)
        return page.Items

    def _paged(self, path: str, kind: type[ObjectT], params: Params, page_size: int) -> Iterator[ObjectT]:
        """Every object of a collection, page by page, each object once.

        A server or proxy that ignores ``startIndex`` answers every page with the same objects: a full
        page that brings nothing new raises :class:`PIPagingError` instead of paging for ever. An object
        seen before (a collection that changed between two pages) is skipped. Only a hash per object is
        kept, a small fraction of the objects themselves.
        """
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        seen: set[int] = set()
        start = 0
        while True:
            query = [*params, ("startIndex", start), ("maxCount", page_size)]
            page = self._transport.get(path, query, decode=decoder(_Page[kind]).decode)
            check_web_exception(page.WebException)
            new = [item for item in page.Items if _mark_seen(seen, item)]
            if page.Items and not new:
                url = f"{self._transport.url(path)}?{urlencode(query)}"
                raise PIPagingError(
                    f"the page at startIndex={start} holds only objects that earlier pages listed: the "
                    "server (or a proxy in front of it) ignores startIndex, so the collection cannot be read "
                    "whole; reading stopped",
                    status=200,
                    url=url,
                )
            yield from new
            if len(page.Items) < page_size:
                return
            # A server that sends more than maxCount objects has still numbered them from startIndex.
            start += len(page.Items)

    # -- PI Data Archive ------------------------------------------------------------------------------

    def data_servers(self) -> list[DataServer]:
        """Every PI Data Archive this PI Web API knows."""
        return self._list("dataservers", DataServer)

    def data_server(self, name: str) -> DataServer:
        """The data server called ``name``."""
        return self._get_object("dataservers", DataServer, [("name", name)])

    def points(
        self,
        data_server_web_id: str,
        *,
        name_filter: str = "*",
        page_size: int = 1000,
        selected_fields: Sequence[str] = (),
    ) -> Iterator[Point]:
        """The server's points whose names match ``name_filter`` (``*`` and ``?`` wildcards), paged;
        ``selected_fields`` (e.g. :data:`POINT_FIELDS`) trims each answer to those fields."""
        path = f"dataservers/{quote(data_server_web_id, safe='')}/points"
        return self._paged(path, Point, [("nameFilter", name_filter), *_selected(selected_fields)], page_size)

    def search_points(self, data_server_web_id: str, query: str, *, page_size: int = 1000) -> Iterator[Point]:
        """Points matching a PI point query such as ``name:=sinus* AND pointsource:=R``, paged."""
        params = [("dataServerWebId", data_server_web_id), ("query", query)]
        return self._paged("points/search", Point, params, page_size)

    def point(self, path: str) -> Point:
        """The point at ``\\\\server\\tag``."""
        return self._get_object("points", Point, [("path", path)])

    # -- Asset Framework -------------------------------------------------------------------------------

    def asset_servers(self) -> list[AssetServer]:
        return self._list("assetservers", AssetServer)

    def asset_databases(self, asset_server_web_id: str) -> list[AssetDatabase]:
        return self._list(f"assetservers/{quote(asset_server_web_id, safe='')}/assetdatabases", AssetDatabase)

    def elements(
        self,
        database_web_id: str,
        *,
        name_filter: str | None = None,
        template_name: str | None = None,
        category_name: str | None = None,
        page_size: int = 1000,
        selected_fields: Sequence[str] = (),
    ) -> list[Element]:
        """The database's whole element hierarchy, flat, with each element's parent and depth.

        PI answers ``searchFullHierarchy=true`` with a flat, paged list; it is read to the end (never
        capped at 1,000). Parents come from the paths (:func:`element_parent`): an element whose parent is
        filtered out keeps the parent from ``Links.Parent`` when PI gives one. ``selected_fields`` (e.g.
        :data:`ELEMENT_FIELDS`) trims each answer to those fields.
        """
        pages = self.element_pages(
            database_web_id,
            name_filter=name_filter,
            template_name=template_name,
            category_name=category_name,
            page_size=page_size,
            selected_fields=selected_fields,
        )
        found = [element for page in pages for element in page]
        by_path = {element.path.upper(): element.web_id for element in found}
        return [
            msgspec.structs.replace(
                element, parent_web_id=element_parent(element.path, element.parent_web_id, by_path)
            )
            for element in found
        ]

    def element_pages(
        self,
        database_web_id: str,
        *,
        name_filter: str | None = None,
        template_name: str | None = None,
        category_name: str | None = None,
        page_size: int = 1000,
        selected_fields: Sequence[str] = (),
    ) -> Iterator[list[Element]]:
        """:meth:`elements` page by page (``page_size`` elements a page), each element with its depth but,
        as ``parent_web_id``, its ``Links.Parent`` (None when PI leaves it out): the element at the parent's
        path, which :meth:`elements` prefers, may come on a later page (PI sorts the list by name), so
        :func:`element_parent` finds it once every page is read. Memory holds a page, not the hierarchy.
        """
        params: list[tuple[str, str | int | float]] = [("searchFullHierarchy", "true")]
        for name, value in (
            ("nameFilter", name_filter),
            ("templateName", template_name),
            ("categoryName", category_name),
        ):
            if value is not None:
                params.append((name, value))
        params += _selected(selected_fields)
        path = f"assetdatabases/{quote(database_web_id, safe='')}/elements"
        page: list[Element] = []
        for element in self._paged(path, Element, params, page_size):
            depth = max(0, len(_split_path(element.path)) - 3)  # \\AF\DB\Root is depth 0
            linked = _web_id_of_link(element.links.get("Parent"), "elements")
            page.append(msgspec.structs.replace(element, parent_web_id=linked, depth=depth))
            if len(page) == page_size:
                yield page
                page = []
        if page:
            yield page

    def attributes(
        self,
        element_web_id: str,
        *,
        search_full_hierarchy: bool = True,
        name_filter: str | None = None,
        category_name: str | None = None,
        page_size: int = 1000,
    ) -> list[Attribute]:
        """An element's attributes (child attributes too by default), PI point references resolved."""
        return self._attributes(
            "elements", element_web_id, search_full_hierarchy, name_filter, category_name, page_size
        )

    def element_attributes(
        self,
        database_web_id: str,
        *,
        page_size: int = 1000,
        selected_fields: Sequence[str] = (),
    ) -> Iterator[list[Attribute]]:
        """Every attribute of every element of a database (child attributes too), one page at a time.

        One paged search (``GET /assetdatabases/{webId}/elementattributes``, AssetDatabase
        FindElementAttributes, ``searchFullHierarchy=true``) instead of one listing per element; each page
        comes with its PI point references resolved and each attribute's element WebId (``Links.Element``).
        """
        params = [("searchFullHierarchy", "true"), *_selected(selected_fields)]
        path = f"assetdatabases/{quote(database_web_id, safe='')}/elementattributes"
        attributes = self._paged(path, Attribute, params, page_size)
        while page := list(islice(attributes, page_size)):
            yield [
                msgspec.structs.replace(
                    attribute, element_web_id=_web_id_of_link(attribute.links.get("Element"), "elements")
                )
                for attribute in self._resolve_points(page)
            ]

    def event_frame_attributes(
        self, event_frame_web_id: str, *, search_full_hierarchy: bool = True, page_size: int = 1000
    ) -> list[Attribute]:
        """An event frame's attributes, PI point references resolved."""
        return self._attributes(
            "eventframes", event_frame_web_id, search_full_hierarchy, None, None, page_size
        )

    def _attributes(
        self,
        owner: str,
        web_id: str,
        search_full_hierarchy: bool,
        name_filter: str | None,
        category_name: str | None,
        page_size: int,
    ) -> list[Attribute]:
        params: list[tuple[str, str | int | float]] = [
            ("searchFullHierarchy", "true" if search_full_hierarchy else "false")
        ]
        if name_filter is not None:
            params.append(("nameFilter", name_filter))
        if category_name is not None:
            params.append(("categoryName", category_name))
        path = f"{owner}/{quote(web_id, safe='')}/attributes"
        return self._resolve_points(list(self._paged(path, Attribute, params, page_size)))

    def _resolve_points(self, attributes: list[Attribute]) -> list[Attribute]:
        resolved: dict[str, str | None] = {}
        result = []
        for attribute in attributes:
            if attribute.data_reference_plug_in != "PI Point":
                result.append(attribute)
                continue
            point_path = point_path_from_config(attribute.config_string)
            point_web_id = _web_id_of_link(attribute.links.get("Point"), "points")
            if point_web_id is None and point_path is not None and "%" not in point_path:
                if point_path not in resolved:
                    resolved[point_path] = self._point_web_id(point_path)
                point_web_id = resolved[point_path]
            result.append(
                msgspec.structs.replace(attribute, point_web_id=point_web_id, point_path=point_path)
            )
        return result

    def _point_web_id(self, path: str) -> str | None:
        try:
            return self.point(path).web_id
        except PIWebAPIError as error:
            if error.status in (400, 404):
                return None  # the data reference names a point that does not exist (PI shows it unresolved)
            raise

    def enumeration_sets(self, owner: DataServer | AssetDatabase) -> list[EnumerationSet]:
        """The enumeration sets (digital state sets) of a data server or an AF database, with values."""
        collection = "dataservers" if isinstance(owner, DataServer) else "assetdatabases"
        sets = self._list(f"{collection}/{quote(owner.web_id, safe='')}/enumerationsets", EnumerationSet)
        return [
            msgspec.structs.replace(
                s,
                values=self._list(
                    f"enumerationsets/{quote(s.web_id, safe='')}/enumerationvalues", EnumerationValue
                ),
            )
            for s in sets
        ]

    def event_frames(
        self,
        database_web_id: str,
        start: datetime | str,
        end: datetime | str | None = None,
        *,
        search_mode: str = "Overlapped",
        name_filter: str | None = None,
        template_name: str | None = None,
        category_name: str | None = None,
        severities: Sequence[str] = (),
        referenced_element_name_filter: str | None = None,
        referenced_element_template_name: str | None = None,
        is_acknowledged: bool | None = None,
        can_be_acknowledged: bool | None = None,
        search_full_hierarchy: bool = False,
        page_size: int = 1000,
    ) -> Iterator[EventFrame]:
        """Event frames of a database found with ``search_mode`` (PI's search modes, e.g. ``Overlapped``:
        active at some time in ``[start, end]``), paged.

        ``end`` is required except for the ``Backward*``/``Forward*`` modes, which look from ``start`` only
        (PI then refuses ``endTime``). Times must be timezone-aware (see
        :func:`~osipi_dagster.contract.to_ns`).
        """
        if search_mode not in SEARCH_MODES:
            raise ValueError(f"search_mode must be one of {', '.join(SEARCH_MODES)} (got {search_mode!r})")
        directional = search_mode in _DIRECTIONAL
        if not directional and end is None:
            raise ValueError(f"search mode {search_mode} needs an end time")
        params: list[tuple[str, str | int | float]] = [
            ("searchMode", search_mode),
            ("startTime", to_pi_time(start)),
        ]
        if not directional:
            assert end is not None
            params.append(("endTime", to_pi_time(end)))
        options = {
            "nameFilter": name_filter,
            "templateName": template_name,
            "categoryName": category_name,
            "referencedElementNameFilter": referenced_element_name_filter,
            "referencedElementTemplateName": referenced_element_template_name,
            "isAcknowledged": None if is_acknowledged is None else str(is_acknowledged).lower(),
            "canBeAcknowledged": None if can_be_acknowledged is None else str(can_be_acknowledged).lower(),
        }
        params += [(name, value) for name, value in options.items() if value is not None]
        params += [("severity", severity) for severity in severities]
        params.append(("searchFullHierarchy", "true" if search_full_hierarchy else "false"))
        path = f"assetdatabases/{quote(database_web_id, safe='')}/eventframes"
        for frame in self._paged(path, EventFrame, params, page_size):
            yield _finish_event_frame(frame)


def _finish_event_frame(frame: EventFrame) -> EventFrame:
    end = frame.end_time
    if not end or end.startswith("9999"):
        end = None
    primary = _web_id_of_link(frame.links.get("PrimaryReferencedElement"), "elements")
    if primary is None and frame.ref_element_web_ids:
        primary = frame.ref_element_web_ids[0]
    parent = _web_id_of_link(frame.links.get("Parent"), "eventframes")
    return msgspec.structs.replace(frame, end_time=end, primary_element_web_id=primary, parent_web_id=parent)
