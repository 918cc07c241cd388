"""AF routes: asset servers, asset databases, elements, attributes, element templates and element categories.

Every route reads ``selectedFields`` and ``webIdType`` (Full, IDOnly, PathOnly, LocalIDOnly, DefaultIDOnly;
the WebIDs inside ``Links`` use the same type). Collections page with ``startIndex`` and ``maxCount``
(default 1000, silently truncating; above MaxReturnedItemsPerCall a 400). A malformed WebID is a 400, a
well-formed one that names nothing (or an object of another kind) a 404.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from osipi_dagster.mock import webids
from osipi_dagster.mock.af import AssetModel
from osipi_dagster.mock.af_catalog import UNIT_NAMES
from osipi_dagster.mock.af_objects import (
    AttributeNode,
    AttributeTemplate,
    Category,
    Database,
    Element,
    ElementTemplate,
    walk_templates,
)
from osipi_dagster.mock.af_search import search_elements, wildcard
from osipi_dagster.mock.archive import Archive
from osipi_dagster.mock.errors import PIError, not_found
from osipi_dagster.mock.links import api_base
from osipi_dagster.mock.model import Attribute
from osipi_dagster.mock.params import Params
from osipi_dagster.mock.responses import FieldTree, collection, json_response, parse_selected_fields
from osipi_dagster.mock.timeparse import format_time

router = APIRouter(prefix="/piwebapi")
AF_SERVER_VERSION = "2.10.11.2717"
STREAM_LINKS = {
    "Value": "value",
    "EndValue": "end",
    "InterpolatedData": "interpolated",
    "RecordedData": "recorded",
    "PlotData": "plot",
    "SummaryData": "summary",
}
T = TypeVar("T")
_NOTHING: FieldTree = {}  # a field that selectedFields leaves out (compared by identity)


class View:
    """What every renderer needs: the model, the API base URL, the requested WebID type and the clock."""

    def __init__(self, request: Request) -> None:
        self.params = Params.of(request)
        self.af: AssetModel = request.app.state.mock.af
        self.archive: Archive = request.app.state.mock.archive
        self.base = api_base(request)
        self.webid_type = self.params.choice("webIdType", "Full", list(webids.WEBID_TYPES))
        self.now = self.params.now_ns
        self.system = self.af.system_guid
        # What selectedFields keeps of each object a page renders (None: all of it; set by page() only,
        # since other answers put rendered objects at other depths), and the answers of keeps() so far.
        self._rendered_fields: FieldTree | None = None
        self._kept: dict[tuple[str, ...], bool] = {}
        self._kept_links: dict[str, bool] = {}  # link name -> keeps("links", name.lower())
        self._kept_streams: list[tuple[str, str]] | None = None  # the stream links kept, once known
        self._owner_links: dict[int, str] = {}  # by the owner's GUID as an int (a UUID hashes in Python)

    def respond(self, body: object) -> Response:
        return json_response(body, selected_fields=self.params.get("selectedFields"))

    def page(self, items: Sequence[T], render: Callable[[T], dict]) -> Response:
        """One page (``startIndex``, ``maxCount``) of ``items``, rendered, as a collection."""
        start = self.params.start_index()
        count = self.params.max_count(self.af.config.max_returned_items)
        if fields := parse_selected_fields(self.params.get("selectedFields")):
            self._rendered_fields = fields.get("items", _NOTHING)
        return self.respond(collection([render(item) for item in items[start : start + count]]))

    def keeps(self, *path: str) -> bool:
        """Does the answer keep the field at ``path`` (lower case) of an object a page renders? A link to
        another object costs its WebID, and a catalog refresh selects few of them (``selectedFields``)."""
        kept = self._kept.get(path)
        if kept is None:
            kept = self._kept[path] = self._selects(path)
        return kept

    def _selects(self, path: tuple[str, ...]) -> bool:
        node = self._rendered_fields
        for part in path:
            if not node:  # no selectedFields, or the whole subtree selected
                return node is not _NOTHING
            node = node.get(part, _NOTHING)
        return node is not _NOTHING

    def keeps_link(self, name: str) -> bool:
        """``keeps("links", name.lower())``, looked up once per link name: a page asks for every object."""
        kept = self._kept_links.get(name)
        if kept is None:
            kept = self._kept_links[name] = self.keeps("links", name.lower())
        return kept

    def kept_links(self, links: dict[str, str]) -> dict[str, str]:
        """``links`` without those the answer leaves out."""
        return {name: url for name, url in links.items() if self.keeps_link(name)}

    def kept_stream_links(self, web_id: str, kind: str) -> dict[str, str]:
        """:meth:`stream_links` without those the answer leaves out (none is built then)."""
        if self._kept_streams is None:
            self._kept_streams = [
                (name, action) for name, action in STREAM_LINKS.items() if self.keeps_link(name)
            ]
        return {name: f"{self.base}/{kind}/{web_id}/{action}" for name, action in self._kept_streams}

    def web_id(self, marker: str, guids: tuple, path: str, owner: str = "") -> str:
        return webids.encode(marker, guids, path, owner=owner, webid_type=self.webid_type)

    def wants_paths(self) -> bool:
        """``associations=Paths``: elements and attributes list their paths (the mock has one each)."""
        return (self.params.get("associations") or "").lower() == "paths"

    def stream_links(self, web_id: str, kind: str) -> dict[str, str]:
        """The stream links of an attribute (``streams``) or an element or event frame (``streamsets``)."""
        return {name: f"{self.base}/{kind}/{web_id}/{action}" for name, action in STREAM_LINKS.items()}

    # -- WebIDs of each kind ----------------------------------------------------------------------------

    def server_id(self) -> str:
        return self.web_id("RS", (self.system,), self.af.path)

    def database_id(self, database: Database) -> str:
        return self.web_id("RD", (self.system, database.guid), database.path)

    def element_id(self, element: Element) -> str:
        return self.web_id("Em", (self.system, element.guid), element.path)

    def template_id(self, template: ElementTemplate) -> str:
        return self.web_id("ET", (self.system, template.guid), template.path)

    def attribute_template_id(self, attribute: AttributeTemplate) -> str:
        assert attribute.template is not None  # set when its element template is registered
        return self.web_id("AT", (self.system, attribute.template.guid, attribute.guid), attribute.path)

    def category_id(self, category: Category) -> str:
        return self.web_id("EC", (self.system, category.guid), category.path)

    def attribute_id(self, node: AttributeNode) -> str:
        attribute = node.attribute
        guids = (self.system, attribute.owner_guid, attribute.guid)
        return self.web_id("Ab", guids, attribute.path, owner=attribute.owner_kind)

    # -- bodies -----------------------------------------------------------------------------------------

    def server(self) -> dict:
        web_id = self.server_id()
        return {
            "WebId": web_id,
            "Id": str(self.system),
            "Name": self.af.server_name,
            "Description": "Mock AF server",
            "Path": self.af.path,
            "IsConnected": True,
            "ServerVersion": AF_SERVER_VERSION,
            "ServerTime": format_time(self.now),
            "ExtendedProperties": {},
            "Links": {
                "Self": f"{self.base}/assetservers/{web_id}",
                "Databases": f"{self.base}/assetservers/{web_id}/assetdatabases",
            },
        }

    def database(self, database: Database) -> dict:
        web_id = self.database_id(database)
        url = f"{self.base}/assetdatabases/{web_id}"
        return {
            "WebId": web_id,
            "Id": str(database.guid),
            "Name": database.name,
            "Description": database.description,
            "Path": database.path,
            "ExtendedProperties": {},
            "Links": {
                "Self": url,
                "Elements": f"{url}/elements",
                "ElementTemplates": f"{url}/elementtemplates",
                "EventFrames": f"{url}/eventframes",
                "AssetServer": f"{self.base}/assetservers/{self.server_id()}",
                "ElementCategories": f"{url}/elementcategories",
            },
        }

    def element(self, element: Element) -> dict:
        web_id = self.element_id(element)
        url = f"{self.base}/elements/{web_id}"
        keeps = self.keeps_link
        links = {}
        for name, below in (("Self", ""), ("Attributes", "/attributes"), ("Elements", "/elements")):
            if keeps(name):
                links[name] = url + below
        if keeps("Database"):
            links["Database"] = f"{self.base}/assetdatabases/{self.database_id(element.database)}"
        if keeps("Template"):
            links["Template"] = f"{self.base}/elementtemplates/{self.template_id(element.template)}"
        for name, below in (
            ("Categories", "/categories"),
            ("EventFrames", "/eventframes"),
            ("NotificationRules", "/notificationrules"),
        ):
            if keeps(name):
                links[name] = url + below
        if element.parent is not None and keeps("Parent"):
            links["Parent"] = f"{self.base}/elements/{self.element_id(element.parent)}"
        body = {
            "WebId": web_id,
            "Id": str(element.guid),
            "Name": element.name,
            "Description": element.description,
            "Path": element.path,
            "TemplateName": element.template.name,
            "HasChildren": bool(element.children),
            "CategoryNames": list(element.categories),
            "ExtendedProperties": {},
            "Links": links | self.kept_stream_links(web_id, "streamsets"),
        }
        if self.wants_paths():
            body["Paths"] = [element.path]
        return body

    def attribute(self, node: AttributeNode) -> dict:
        attribute, point = node.attribute, node.point
        web_id = self.attribute_id(node)
        url = f"{self.base}/attributes/{web_id}"
        owner = "Element" if attribute.owner_kind == "E" else "EventFrame"
        keeps = self.keeps_link
        links = {}
        if keeps("Self"):
            links["Self"] = url
        if keeps("Attributes"):
            links["Attributes"] = f"{url}/attributes"
        if keeps(owner):
            links[owner] = self._owner_link(attribute)
        if node.parent is not None and keeps("Parent"):
            links["Parent"] = f"{self.base}/attributes/{self.attribute_id(node.parent)}"
        if node.template is not None and keeps("Template"):
            links["Template"] = f"{self.base}/attributetemplates/{self.attribute_template_id(node.template)}"
        if point is not None and keeps("Point"):
            links["Point"] = f"{self.base}/points/{self.archive.point_webid(point, self.webid_type)}"
        if (
            point is not None
            and point.digital_set
            and (keeps("EnumerationSet") or keeps("EnumerationValues"))
        ):
            enum_set = self.archive.enumeration_set(point.digital_set)
            set_url = f"{self.base}/enumerationsets/{self.archive.set_webid(enum_set, self.webid_type)}"
            links |= self.kept_links(
                {"EnumerationSet": set_url, "EnumerationValues": f"{set_url}/enumerationvalues"}
            )
        body = {
            "WebId": web_id,
            "Id": str(attribute.guid),
            "Name": attribute.name,
            "Description": point.descriptor if point else "",
            "Path": attribute.path,
            "Type": attribute.type,
            "TypeQualifier": point.digital_set if point else "",
            "DefaultUnitsName": UNIT_NAMES.get(attribute.units, attribute.units),
            "DefaultUnitsNameAbbreviation": attribute.units,
            "DisplayDigits": point.display_digits if point else -5,
            "DataReferencePlugIn": "PI Point" if point else "",
            "ConfigString": self.af.config_string(point) if point else "",
            "IsConfigurationItem": point is None,
            "IsExcluded": node.excluded,
            "IsHidden": node.hidden,
            "IsManualDataEntry": False,
            "HasChildren": bool(node.children),
            "CategoryNames": list(attribute.categories),
            "Step": point.step if point else False,
            "TraitName": node.trait,
            "Span": point.span if point else None,
            "Zero": point.zero if point else None,
            "Links": links | self.kept_stream_links(web_id, "streams"),
        }
        if self.wants_paths():
            body["Paths"] = [attribute.path]
        return body

    def _owner_link(self, attribute: Attribute) -> str:
        """The link to an attribute's element or event frame, made once per owner and answer: a page of a
        database-wide search holds several attributes of each element."""
        link = self._owner_links.get(attribute.owner_guid.int)
        if link is None:
            route, marker = ("elements", "Em") if attribute.owner_kind == "E" else ("eventframes", "Fm")
            owner_path = attribute.path.split("|", 1)[0]
            owner_id = self.web_id(marker, (self.system, attribute.owner_guid), owner_path)
            link = self._owner_links[attribute.owner_guid.int] = f"{self.base}/{route}/{owner_id}"
        return link

    def template(self, template: ElementTemplate) -> dict:
        web_id = self.template_id(template)
        url = f"{self.base}/elementtemplates/{web_id}"
        spec = template.spec
        links = {
            "Self": url,
            "AttributeTemplates": f"{url}/attributetemplates",
            "Database": f"{self.base}/assetdatabases/{self.database_id(template.database)}",
            "Categories": f"{url}/categories",
            "BaseTemplates": f"{url}/baseelementtemplates",
            "DerivedTemplates": f"{url}/derivedelementtemplates",
        }
        if spec.base:
            base = template.database.templates[spec.base.upper()]
            links["BaseTemplate"] = f"{self.base}/elementtemplates/{self.template_id(base)}"
        return {
            "WebId": web_id,
            "Id": str(template.guid),
            "Name": spec.name,
            "Description": spec.description,
            "Path": template.path,
            "AllowElementToExtend": True,
            "BaseTemplate": spec.base,
            "InstanceType": spec.instance_type,
            "NamingPattern": spec.naming_pattern,
            "CategoryNames": list(spec.categories),
            "ExtendedProperties": {},
            "Severity": spec.severity,
            "CanBeAcknowledged": spec.can_be_acknowledged,
            "Links": links,
        }

    def attribute_template(self, attribute: AttributeTemplate) -> dict:
        assert attribute.template is not None  # set when its element template is registered
        web_id = self.attribute_template_id(attribute)
        url = f"{self.base}/attributetemplates/{web_id}"
        spec = attribute.spec
        links = {
            "Self": url,
            "AttributeTemplates": f"{url}/attributetemplates",
            "ElementTemplate": f"{self.base}/elementtemplates/{self.template_id(attribute.template)}",
        }
        if attribute.parent is not None:
            links["Parent"] = f"{self.base}/attributetemplates/{self.attribute_template_id(attribute.parent)}"
        return {
            "WebId": web_id,
            "Id": str(attribute.guid),
            "Name": spec.name,
            "Description": "",
            "Path": attribute.path,
            "Type": spec.type,
            "TypeQualifier": "",
            "DefaultUnitsName": UNIT_NAMES.get(spec.units, spec.units),
            "DefaultUnitsNameAbbreviation": spec.units,
            "DefaultValue": None,
            "DataReferencePlugIn": "PI Point" if spec.point else "",
            "ConfigString": "",
            "IsConfigurationItem": not spec.point,
            "IsExcluded": False,
            "IsHidden": spec.hidden,
            "IsManualDataEntry": False,
            "HasChildren": bool(attribute.children),
            "CategoryNames": list(spec.categories),
            "TraitName": spec.trait,
            "Links": links,
        }

    def category(self, category: Category) -> dict:
        web_id = self.category_id(category)
        return {
            "WebId": web_id,
            "Id": str(category.guid),
            "Name": category.name,
            "Description": "",
            "Path": category.path,
            "Links": {
                "Self": f"{self.base}/elementcategories/{web_id}",
                "Database": f"{self.base}/assetdatabases/{self.database_id(category.database)}",
            },
        }


def _required_path(view: View) -> str:
    path = view.params.get("path")
    if not path:
        raise PIError(400, "The 'path' parameter is required.")
    return path


# -- asset servers -----------------------------------------------------------------------------------------


@router.get("/assetservers")
def list_asset_servers(request: Request) -> Response:
    """The AF server: all of them (one), or the one named by ``path`` (``\\\\NAME``) or ``name``."""
    view = View(request)
    path, name = view.params.get("path"), view.params.get("name")
    if path is None and name is None:
        return view.respond(collection([view.server()]))
    wanted = (path or "").lstrip("\\") if path is not None else name
    if (wanted or "").upper() != view.af.server_name.upper():
        raise not_found("asset server", path or name or "")
    return view.respond(view.server())


@router.get("/assetservers/{web_id}")
def get_asset_server(web_id: str, request: Request) -> Response:
    view = View(request)
    _asset_server(view, web_id)
    return view.respond(view.server())


@router.get("/assetservers/{web_id}/assetdatabases")
def list_asset_databases(web_id: str, request: Request) -> Response:
    """Every database of the server (this call does not page, as on the real server)."""
    view = View(request)
    _asset_server(view, web_id)
    return view.respond(collection([view.database(d) for d in view.af.databases]))


def _asset_server(view: View, text: str) -> None:
    web = webids.decode(text)
    if web.marker != "RS":
        raise not_found("asset server", text)
    if web.kind == "P":
        if (web.path or "") != view.af.server_name.upper():
            raise not_found("asset server", text)
    elif web.guids[-1] != view.system:
        raise not_found("asset server", text)


# -- asset databases ---------------------------------------------------------------------------------------


@router.get("/assetdatabases")
def get_asset_database_by_path(request: Request) -> Response:
    view = View(request)
    return view.respond(view.database(view.af.database_by_path(_required_path(view))))


@router.get("/assetdatabases/{web_id}")
def get_asset_database(web_id: str, request: Request) -> Response:
    view = View(request)
    return view.respond(view.database(view.af.database(webids.decode(web_id), web_id)))


@router.get("/assetdatabases/{web_id}/elements")
def list_database_elements(web_id: str, request: Request) -> Response:
    """The root elements (or with ``searchFullHierarchy`` every element), filtered, sorted and paged."""
    view = View(request)
    database = view.af.database(webids.decode(web_id), web_id)
    return view.af.catalog_answers.answer(
        request, lambda: view.page(search_elements(database, view.params), view.element)
    )


@router.get("/assetdatabases/{web_id}/elementattributes")
def find_element_attributes(web_id: str, request: Request) -> Response:
    """AssetDatabase FindElementAttributes: the attributes (child attributes too) of the root elements, or
    with ``searchFullHierarchy`` of every element, filtered by their element (elementNameFilter,
    elementDescriptionFilter, elementCategory, elementTemplate incl. derived templates) and by themselves
    (attributeNameFilter, attributeCategory, attributeType), sorted by name (sortOrder) and paged."""
    view = View(request)
    database = view.af.database(webids.decode(web_id), web_id)
    return view.af.catalog_answers.answer(
        request, lambda: view.page(view.af.element_attributes(database, view.params), view.attribute)
    )


@router.get("/assetdatabases/{web_id}/elementtemplates")
def list_element_templates(web_id: str, request: Request) -> Response:
    """Element and event-frame templates; ``query`` is a wildcard over the ``field`` values (default Name)."""
    view = View(request)
    database = view.af.database(webids.decode(web_id), web_id)
    matcher = _query_matcher(view.params.get("query"), view.params.get_list("field") or ["Name"])
    descending = view.params.choice("sortOrder", "Ascending", ["Ascending", "Descending"]) == "Descending"
    view.params.choice("sortField", "Name", ["Name"])
    templates = sorted(
        (t for t in database.templates.values() if matcher(t)),
        key=lambda t: t.name.lower(),
        reverse=descending,
    )
    return view.page(templates, view.template)


def _query_matcher(query: str | None, fields: list[str]) -> Callable[[ElementTemplate], bool]:
    """A template matcher for ``query`` (PI wildcards) over the named fields, any field matching."""
    for field in fields:
        if field.lower() not in ("name", "description", "categories"):
            raise PIError(400, f"The value '{field}' is not valid for field.")
    matches = wildcard(query)
    if matches is None:
        return lambda template: True

    def values(template: ElementTemplate) -> list[str]:
        found: list[str] = []
        for field in {f.lower() for f in fields}:
            if field == "name":
                found.append(template.name)
            elif field == "description":
                found.append(template.spec.description)
            else:
                found.extend(template.spec.categories)
        return found

    return lambda template: any(matches(value) for value in values(template))


@router.get("/assetdatabases/{web_id}/elementcategories")
def list_element_categories(web_id: str, request: Request) -> Response:
    view = View(request)
    database = view.af.database(webids.decode(web_id), web_id)
    categories = sorted(database.categories.values(), key=lambda c: c.name.lower())
    return view.page(categories, view.category)


@router.get("/elementcategories/{web_id}")
def get_element_category(web_id: str, request: Request) -> Response:
    view = View(request)
    return view.respond(view.category(view.af.category(webids.decode(web_id), web_id)))


# -- elements ----------------------------------------------------------------------------------------------


@router.get("/elements")
def get_element_by_path(request: Request) -> Response:
    view = View(request)
    return view.respond(view.element(view.af.element_by_path(_required_path(view))))


@router.get("/elements/{web_id}")
def get_element(web_id: str, request: Request) -> Response:
    view = View(request)
    return view.respond(view.element(view.af.element(webids.decode(web_id), web_id)))


@router.get("/elements/{web_id}/elements")
def list_child_elements(web_id: str, request: Request) -> Response:
    """The element's children (or with ``searchFullHierarchy`` its descendants), filtered, sorted, paged."""
    view = View(request)
    element = view.af.element(webids.decode(web_id), web_id)
    return view.page(search_elements(element, view.params), view.element)


@router.get("/elements/{web_id}/attributes")
def list_element_attributes(web_id: str, request: Request) -> Response:
    """The element's attributes: nameFilter, categoryName, templateName, searchFullHierarchy, showExcluded,
    showHidden, sortOrder (by name), startIndex, maxCount."""
    view = View(request)
    web = webids.decode(web_id)
    if web.marker != "Em":
        raise not_found("element", web_id)
    return view.page(view.af.child_attributes(web, view.params, web_id), view.attribute)


@router.get("/elements/{web_id}/categories")
def list_element_category_links(web_id: str, request: Request) -> Response:
    view = View(request)
    element = view.af.element(webids.decode(web_id), web_id)
    categories = [element.database.categories[name.upper()] for name in element.categories]
    return view.respond(collection([view.category(c) for c in categories]))


# -- attributes --------------------------------------------------------------------------------------------


@router.get("/attributes")
def get_attribute_by_path(request: Request) -> Response:
    """``path=\\\\AF\\DB\\Element|Attribute`` (or an event frame's ``...\\EventFrames[Name]|Attribute``)."""
    view = View(request)
    return view.respond(view.attribute(view.af.attribute_by_path(_required_path(view))))


@router.get("/attributes/{web_id}")
def get_attribute(web_id: str, request: Request) -> Response:
    view = View(request)
    return view.respond(view.attribute(view.af.attribute_node(webids.decode(web_id), web_id)))


@router.get("/attributes/{web_id}/attributes")
def list_child_attributes(web_id: str, request: Request) -> Response:
    """An attribute's child attributes (often none), with the filters of ``/elements/{webId}/attributes``."""
    view = View(request)
    web = webids.decode(web_id)
    if web.marker != "Ab":
        raise not_found("attribute", web_id)
    return view.page(view.af.child_attributes(web, view.params, web_id), view.attribute)


# -- element templates -------------------------------------------------------------------------------------


@router.get("/elementtemplates")
def get_element_template_by_path(request: Request) -> Response:
    """``path=\\\\AF\\DB\\ElementTemplates[Name]``."""
    view = View(request)
    return view.respond(view.template(view.af.template_by_path(_required_path(view))))


@router.get("/elementtemplates/{web_id}")
def get_element_template(web_id: str, request: Request) -> Response:
    view = View(request)
    return view.respond(view.template(view.af.template(webids.decode(web_id), web_id)))


@router.get("/elementtemplates/{web_id}/attributetemplates")
def list_attribute_templates(web_id: str, request: Request) -> Response:
    """The template's attribute templates; ``showInherited`` adds its base templates' (first),
    ``showDescendants`` nested child attribute templates."""
    view = View(request)
    template = view.af.template(webids.decode(web_id), web_id)
    top = template.inherited if view.params.bool("showInherited", False) else template.attributes
    if view.params.bool("showDescendants", False):
        return view.page(list(walk_templates(top)), view.attribute_template)
    return view.page(list(top), view.attribute_template)


@router.get("/elementtemplates/{web_id}/categories")
def list_element_template_categories(web_id: str, request: Request) -> Response:
    """The template's categories; ``showInherited`` adds its base templates' (its own first)."""
    view = View(request)
    template = view.af.template(webids.decode(web_id), web_id)
    lineage = _lineage(template) if view.params.bool("showInherited", False) else [template]
    names = dict.fromkeys(name.upper() for t in lineage for name in t.spec.categories)
    return view.respond(collection([view.category(template.database.categories[name]) for name in names]))


@router.get("/elementtemplates/{web_id}/baseelementtemplates")
def list_base_element_templates(web_id: str, request: Request) -> Response:
    """The template's base, its base's base, and so on."""
    view = View(request)
    template = view.af.template(webids.decode(web_id), web_id)
    return view.page(_lineage(template)[1:], view.template)


@router.get("/elementtemplates/{web_id}/derivedelementtemplates")
def list_derived_element_templates(web_id: str, request: Request) -> Response:
    """The templates derived from this one (with ``showDescendants``, at any depth), sorted by name."""
    view = View(request)
    template = view.af.template(webids.decode(web_id), web_id)
    descendants = view.params.bool("showDescendants", False)
    name = template.name.upper()
    derived = [
        t
        for t in template.database.templates.values()
        if name in (t.lineage[1:] if descendants else t.lineage[1:2])
    ]
    return view.page(sorted(derived, key=lambda t: t.name.lower()), view.template)


def _lineage(template: ElementTemplate) -> list[ElementTemplate]:
    """The template, then its base, its base's base, ..."""
    return [template.database.templates[name] for name in template.lineage]


@router.get("/attributetemplates/{web_id}")
def get_attribute_template(web_id: str, request: Request) -> Response:
    view = View(request)
    return view.respond(view.attribute_template(view.af.attribute_template(webids.decode(web_id), web_id)))


@router.get("/attributetemplates/{web_id}/attributetemplates")
def list_child_attribute_templates(web_id: str, request: Request) -> Response:
    """An attribute template's child attribute templates (as ``Rated Capacity`` has Minimum and Maximum)."""
    view = View(request)
    attribute = view.af.attribute_template(webids.decode(web_id), web_id)
    return view.respond(collection([view.attribute_template(child) for child in attribute.children]))
