"""The DataServer, Point and EnumerationSet controllers of the mock PI Data Archive (piwebapi.md 2.2-2.4).

- ``GET /dataservers`` (``?path=\\\\NAME`` or ``\\\\PIServer[NAME]``, ``?name=NAME``: one object),
  ``/dataservers/{webId}``, ``/dataservers/{webId}/points`` (nameFilter with PI wildcards, sourceFilter,
  startIndex, maxCount default 1000, silently truncating), ``/dataservers/{webId}/enumerationsets``.
- ``GET /points/{webId}``, ``/points?path=``, ``/points/multiple?webId=..&path=..`` (207 when some fail),
  ``/points/search?dataServerWebId=..&query=..`` (PI point query syntax, maxCount at most 1000),
  ``/points/{webId}/attributes`` (``name``, ``nameFilter``) and ``/points/{webId}/attributes/{name}``.
- ``GET /enumerationsets/{webId}``, ``/enumerationsets?path=``, ``/enumerationsets/{webId}/enumerationvalues``
  (linked as ``Links.Values``), ``/enumerationvalues/{webId}`` and ``/enumerationvalues?path=`` for the data
  server's digital state sets (owner marker ``D``); AF database sets are not simulated.

Every list endpoint takes ``selectedFields`` and ``webIdType``. A maxCount above MaxReturnedItemsPerCall is
a 400.
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from osipi_dagster.mock.archive import SERVER_VERSION, Archive, EnumerationSet, wildcard
from osipi_dagster.mock.errors import PIError, not_found
from osipi_dagster.mock.links import api_base
from osipi_dagster.mock.model import Point
from osipi_dagster.mock.params import Params
from osipi_dagster.mock.responses import collection, json_response, parse_selected_fields
from osipi_dagster.mock.timeparse import format_time
from osipi_dagster.mock.webids import WEBID_TYPES

router = APIRouter(prefix="/piwebapi")

SEARCH_MAX_COUNT = 1000  # GetPointsBySearch: "Cannot be greater than 1000"


def webid_type(params: Params) -> str:
    return params.choice("webIdType", "Full", list(WEBID_TYPES))


def _archive(request: Request) -> Archive:
    return request.app.state.mock.archive


def _answer(body: dict, params: Params, status: int = 200) -> Response:
    return json_response(body, status, params.get("selectedFields"))


def _page(items: list, params: Params, limit: int) -> list:
    start, count = params.start_index(), params.max_count(limit)
    return items[start : start + count]


# -- objects ------------------------------------------------------------------------------------------


def dataserver_json(request: Request, archive: Archive, kind: str) -> dict:
    web = archive.webid(kind)
    base = f"{api_base(request)}/dataservers/{web}"
    return {
        "WebId": web,
        "Id": str(archive.server_guid),
        "Name": archive.server_name,
        "Path": archive.path,
        "IsConnected": True,
        "ServerVersion": SERVER_VERSION,
        "ServerTime": format_time(request.app.state.mock.clock.now_ns()),
        "Links": {"Self": base, "Points": base + "/points", "EnumerationSets": base + "/enumerationsets"},
    }


def point_json(
    base: str, archive: Archive, point: Point, kind: str, server_web: str, links: bool = True
) -> dict:
    """The Point object with its full link set (``links``: else without ``Links``, for an answer whose
    ``selectedFields`` leaves them out); ``base`` is ``http://host/piwebapi``."""
    web = archive.point_webid(point, kind)
    body = {
        "WebId": web,
        "Id": point.id,
        "Name": point.name,
        "Path": archive.point_path(point),
        "Descriptor": point.descriptor,
        "PointClass": point.point_class,
        "PointType": point.point_type,
        "DigitalSetName": point.digital_set,
        "EngineeringUnits": point.units,
        "Span": point.span,
        "Zero": point.zero,
        "Step": point.step,
        "Future": point.future,
        "DisplayDigits": point.display_digits,
    }
    if not links:
        return body
    streams = f"{base}/streams/{web}"
    body["Links"] = {
        "Self": f"{base}/points/{web}",
        "DataServer": f"{base}/dataservers/{server_web}",
        "Attributes": f"{base}/points/{web}/attributes",
        "InterpolatedData": streams + "/interpolated",
        "RecordedData": streams + "/recorded",
        "PlotData": streams + "/plot",
        "SummaryData": streams + "/summary",
        "Value": streams + "/value",
        "EndValue": streams + "/end",
    }
    return body


def _points_json(request: Request, points: list[Point], params: Params, links: bool = True) -> list[dict]:
    archive, kind, base = _archive(request), webid_type(params), api_base(request)
    server_web = archive.webid(kind)
    return [point_json(base, archive, p, kind, server_web, links) for p in points]


def _listed_points_json(request: Request, points: list[Point], params: Params) -> list[dict]:
    """The ``Items`` of a listing of points, without their ``Links`` when ``selectedFields`` drops them (nine
    URLs a point, and a catalog listing selects none)."""
    tree = parse_selected_fields(params.get("selectedFields"))
    items = (tree or {}).get("items")
    links = tree is None or (items is not None and (not items or "links" in items))
    return _points_json(request, points, params, links)


def set_json(request: Request, archive: Archive, enum_set: EnumerationSet, kind: str) -> dict:
    web = archive.set_webid(enum_set, kind)
    base = api_base(request)
    return {
        "WebId": web,
        "Id": str(enum_set.guid),
        "Name": enum_set.name,
        "Description": enum_set.description,
        "Path": archive.set_path(enum_set),
        "Links": {
            "Self": f"{base}/enumerationsets/{web}",
            "DataServer": f"{base}/dataservers/{archive.webid(kind)}",
            "Values": f"{base}/enumerationsets/{web}/enumerationvalues",
        },
    }


def _value_json(request: Request, archive: Archive, enum_set: EnumerationSet, code: int, kind: str) -> dict:
    """An EnumerationValue. ``Parent`` names the parent value of a nested AF value (``CarBrand`` for
    ``CarBrand|Model3`` in the reference's sample): a digital state has none, so it is empty and there is no
    ``Links.Parent``."""
    web = archive.value_webid(enum_set, code, kind)
    base = api_base(request)
    return {
        "WebId": web,
        "Id": str(enum_set.value_guid(code)),
        "Name": enum_set.state_name(code),
        "Description": "",
        "Value": code,
        "Path": archive.value_path(enum_set, code),
        "Parent": "",
        "Links": {
            "Self": f"{base}/enumerationvalues/{web}",
            "EnumerationSet": f"{base}/enumerationsets/{archive.set_webid(enum_set, kind)}",
        },
    }


# -- data servers -------------------------------------------------------------------------------------


@router.get("/dataservers")
async def list_dataservers(request: Request) -> Response:
    """The one data server, or the server named by ``path`` / ``name`` (404 if it is another)."""
    params, archive = Params.of(request), _archive(request)
    path, name = params.get("path"), params.get("name")
    body = dataserver_json(request, archive, webid_type(params))
    if path is not None:
        if not archive.matches_path(path):
            raise not_found("data server", path)
        return _answer(body, params)
    if name is not None:
        if name.split(".")[0].upper() != archive.server_name.upper():  # a fully qualified name is fine
            raise not_found("data server", name)
        return _answer(body, params)
    return _answer(collection([body]), params)


@router.get("/dataservers/{webId}")
async def get_dataserver(request: Request) -> Response:
    params, archive = Params.of(request), _archive(request)
    archive.resolve_server(request.path_params["webId"])
    return _answer(dataserver_json(request, archive, webid_type(params)), params)


@router.get("/dataservers/{webId}/points")
async def dataserver_points(request: Request) -> Response:
    """Points whose name matches ``nameFilter`` (and point source ``sourceFilter``), paged."""
    params, archive = Params.of(request), _archive(request)
    archive.resolve_server(request.path_params["webId"])

    def render() -> Response:
        points = archive.find(params.get("nameFilter"))
        source = params.get("sourceFilter")
        if source:
            points = [p for p in points if wildcard(source).fullmatch(p.point_source)]
        page = _page(points, params, request.app.state.mock.config.max_returned_items)
        return _answer(collection(_listed_points_json(request, page, params)), params)

    return request.app.state.mock.af.catalog_answers.answer(request, render)


@router.get("/dataservers/{webId}/enumerationsets")
async def dataserver_sets(request: Request) -> Response:
    params, archive = Params.of(request), _archive(request)
    archive.resolve_server(request.path_params["webId"])
    kind = webid_type(params)
    return _answer(
        collection([set_json(request, archive, s, kind) for s in archive.enumeration_sets]), params
    )


# -- points -------------------------------------------------------------------------------------------


@router.get("/points")
async def point_by_path(request: Request) -> Response:
    params = Params.of(request)
    path = params.get("path")
    if not path:
        raise PIError(400, "The 'path' parameter is required.")
    point = _archive(request).point_by_path(path)
    return _answer(_points_json(request, [point], params)[0], params)


@router.get("/points/multiple")
async def points_multiple(request: Request) -> Response:
    """Points by ``webId`` and ``path`` (in that order); 207 when some are not found."""
    params, archive = Params.of(request), _archive(request)
    wanted = [("WebId", w) for w in params.get_list("webId")] + [("Path", p) for p in params.get_list("path")]
    if not wanted:
        raise PIError(400, "At least one 'webId' or 'path' parameter is required.")
    include = params.choice("includeMode", "All", ["All", "ItemsOnly", "ItemsWithException"])
    items, failed = [], False
    for kind, ident in wanted:
        item: dict = {"Identifier": ident, "IdentifierType": kind}
        try:
            point = archive.resolve_point(ident) if kind == "WebId" else archive.point_by_path(ident)
            item["Object"] = _points_json(request, [point], params)[0]
            if include == "ItemsWithException":
                continue
        except PIError as error:
            failed = True
            if include == "ItemsOnly":
                continue
            item["Exception"] = {"Errors": error.messages}
        items.append(item)
    return _answer(collection(items), params, 207 if failed else 200)


@router.get("/points/search")
async def points_search(request: Request) -> Response:
    """A PI point query (see ``archive`` for the syntax); maxCount at most 1000."""
    params, archive = Params.of(request), _archive(request)
    server = params.get("dataServerWebId")
    if server:
        archive.resolve_server(server)
    points = archive.search(params.get("query"))
    page = _page(points, params, SEARCH_MAX_COUNT)
    return _answer(collection(_listed_points_json(request, page, params)), params)


@router.get("/points/{webId}")
async def get_point(request: Request) -> Response:
    params = Params.of(request)
    point = _archive(request).resolve_point(request.path_params["webId"])
    return _answer(_points_json(request, [point], params)[0], params)


def _point_attributes(point: Point) -> dict[str, object]:
    """The PI point attributes (as ``/points/{webId}/attributes`` lists them)."""
    return {
        "tag": point.name,
        "pointid": point.id,
        "descriptor": point.descriptor,
        "pointtype": point.point_type,
        "ptclassname": point.point_class,
        "pointsource": point.point_source,
        "engunits": point.units,
        "digitalset": point.digital_set,
        "zero": point.zero,
        "span": point.span,
        "step": int(point.step),
        "future": int(point.future),
        "displaydigits": point.display_digits,
        "compressing": 1,
        "excdev": round(point.span * 0.001, 6),
        "compdev": round(point.span * 0.002, 6),
        "scan": 1,
        "archiving": 1,
    }


def _attribute_json(request: Request, web: str, name: str, value: object) -> dict:
    base = f"{api_base(request)}/points/{web}"
    return {"Name": name, "Value": value, "Links": {"Self": f"{base}/attributes/{name}", "Point": base}}


@router.get("/points/{webId}/attributes")
async def point_attributes(request: Request) -> Response:
    """The point's attributes; ``name`` (repeatable) selects some (400 if unknown), ``nameFilter`` filters."""
    params, web = Params.of(request), request.path_params["webId"]
    attributes = _point_attributes(_archive(request).resolve_point(web))
    names = params.get_list("name")
    unknown = [n for n in names if n.lower() not in attributes]
    if unknown:
        raise PIError(400, *(f"The point attribute '{n}' was not found." for n in unknown))
    selected = [n.lower() for n in names] or list(attributes)
    name_filter = params.get("nameFilter")
    if name_filter:
        selected = [n for n in selected if wildcard(name_filter).fullmatch(n)]
    items = [_attribute_json(request, web, n, attributes[n]) for n in selected]
    return _answer(collection(items), params)


@router.get("/points/{webId}/attributes/{name}")
async def point_attribute(request: Request) -> Response:
    params, web, name = Params.of(request), request.path_params["webId"], request.path_params["name"]
    attributes = _point_attributes(_archive(request).resolve_point(web))
    if name.lower() not in attributes:
        raise not_found("point attribute", name)
    return _answer(_attribute_json(request, web, name.lower(), attributes[name.lower()]), params)


# -- enumeration sets ---------------------------------------------------------------------------------


@router.get("/enumerationsets")
async def set_by_path(request: Request) -> Response:
    params, archive = Params.of(request), _archive(request)
    path = params.get("path") or ""
    for enum_set in archive.enumeration_sets:
        if archive.set_path(enum_set).upper() == path.upper():
            return _answer(set_json(request, archive, enum_set, webid_type(params)), params)
    raise not_found("enumeration set", path)


@router.get("/enumerationsets/{webId}")
async def get_set(request: Request) -> Response:
    params, archive = Params.of(request), _archive(request)
    enum_set = archive.resolve_set(request.path_params["webId"])
    return _answer(set_json(request, archive, enum_set, webid_type(params)), params)


@router.get("/enumerationsets/{webId}/enumerationvalues")
async def set_values(request: Request) -> Response:
    params, archive = Params.of(request), _archive(request)
    enum_set = archive.resolve_set(request.path_params["webId"])
    kind = webid_type(params)
    items = [_value_json(request, archive, enum_set, code, kind) for code, _ in enum_set.states]
    return _answer(collection(items), params)


@router.get("/enumerationvalues")
async def value_by_path(request: Request) -> Response:
    params, archive = Params.of(request), _archive(request)
    enum_set, code = archive.value_by_path(params.get("path") or "")
    return _answer(_value_json(request, archive, enum_set, code, webid_type(params)), params)


@router.get("/enumerationvalues/{webId}")
async def get_value(request: Request) -> Response:
    params, archive = Params.of(request), _archive(request)
    enum_set, code = archive.resolve_value(request.path_params["webId"])
    return _answer(_value_json(request, archive, enum_set, code, webid_type(params)), params)
