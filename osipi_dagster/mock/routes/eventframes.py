"""Event frame routes: searches under a database, an element or a parent event frame, and single frames.

``GET .../eventframes`` takes ``searchMode`` (default Overlapped; every mode of PI Web API, see
``eventframes.SearchWindow``), ``startTime`` (``*-8h``), ``endTime`` (``*``; not allowed, nor are sortField
and sortOrder, with a Backward*/Forward* mode), ``nameFilter``, ``templateName`` (derived templates match),
``categoryName``, repeated ``severity``, ``referencedElementNameFilter``, ``referencedElementTemplateName``
(database searches only), ``isAcknowledged``, ``canBeAcknowledged``, ``searchFullHierarchy`` (adds child
frames), ``sortField`` (Name, StartTime, EndTime), ``sortOrder``, ``startIndex``, ``maxCount``,
``selectedFields`` and ``webIdType``.
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from osipi_dagster.mock import webids
from osipi_dagster.mock.errors import PIError, not_found
from osipi_dagster.mock.eventframes import OPEN_END, EventFrame, EventFrameModel
from osipi_dagster.mock.responses import collection
from osipi_dagster.mock.routes.assets import View
from osipi_dagster.mock.timeparse import format_time

router = APIRouter(prefix="/piwebapi")
# The mock has no security model: every caller may do everything.
SECURITY = {
    "CanAnnotate": True, "CanDelete": True, "CanExecute": True, "CanRead": True, "CanReadData": True,
    "CanSubscribe": True, "CanSubscribeOthers": True, "CanWrite": True, "CanWriteData": True,
    "HasAdmin": True, "Rights": [],
}  # fmt: skip


def _model(view: View) -> EventFrameModel:
    assert view.af.event_frames is not None  # the EventFrameModel attaches itself when it is built
    return view.af.event_frames


def frame_id(view: View, frame: EventFrame) -> str:
    return view.web_id("Fm", (view.system, frame.guid), frame.path)


def frame_body(view: View, frame: EventFrame) -> dict:
    """The EventFrame JSON (reference §5.2): no PrimaryReferencedElementWebId, no embedded attributes."""
    web_id = frame_id(view, frame)
    url = f"{view.base}/eventframes/{web_id}"
    references = [view.element_id(element) for element in frame.references]
    links = {
        "Self": url,
        "Attributes": f"{url}/attributes",
        "EventFrames": f"{url}/eventframes",
        "Database": f"{view.base}/assetdatabases/{view.database_id(frame.database)}",
        "ReferencedElements": f"{url}/referencedelements",
        "Categories": f"{url}/categories",
        "Template": f"{view.base}/elementtemplates/{view.template_id(frame.template)}",
    }
    if references:
        links["PrimaryReferencedElement"] = f"{view.base}/elements/{references[0]}"
    if frame.parent is not None:
        links["Parent"] = f"{view.base}/eventframes/{frame_id(view, frame.parent)}"
    acknowledged = frame.is_acknowledged(view.now)
    body = {
        "WebId": web_id,
        "Id": str(frame.guid),
        "Name": frame.name,
        "Description": frame.description,
        "Path": frame.path,
        "TemplateName": frame.template.name,
        "HasChildren": frame.has_children,
        "CategoryNames": list(frame.categories),
        "ExtendedProperties": {},
        "StartTime": format_time(frame.start_ns),
        "EndTime": OPEN_END if frame.is_open(view.now) else format_time(frame.end_ns),
        "Severity": frame.severity,
        "AcknowledgedBy": frame.acknowledged_by if acknowledged else "",
        "CanBeAcknowledged": frame.template.spec.can_be_acknowledged,
        "IsAcknowledged": acknowledged,
        "IsAnnotated": False,
        "IsLocked": False,
        "AreValuesCaptured": False,
        "RefElementWebIds": references,
        "Security": SECURITY,
        "Links": links | view.stream_links(web_id, "streamsets"),
    }
    if acknowledged and frame.acknowledged_ns is not None:
        body["AcknowledgedDate"] = format_time(frame.acknowledged_ns)
    return body


def _frame(view: View, text: str) -> EventFrame:
    return _model(view).frame(webids.decode(text), text)


@router.get("/assetdatabases/{web_id}/eventframes")
def search_database_event_frames(web_id: str, request: Request) -> Response:
    view = View(request)
    database = view.af.database(webids.decode(web_id), web_id)
    return view.page(_model(view).search(database, view.params), lambda f: frame_body(view, f))


@router.get("/elements/{web_id}/eventframes")
def search_element_event_frames(web_id: str, request: Request) -> Response:
    """The frames that reference the element (the referencedElement* filters do not apply here)."""
    view = View(request)
    element = view.af.element(webids.decode(web_id), web_id)
    return view.page(_model(view).search(element, view.params), lambda f: frame_body(view, f))


@router.get("/eventframes")
def get_event_frame_by_path(request: Request) -> Response:
    """``path=\\\\AF\\DB\\EventFrames[Name]`` (or ``...\\EventFrames[Parent]\\EventFrames[Child]``)."""
    view = View(request)
    path = view.params.get("path")
    if not path:
        raise PIError(400, "The 'path' parameter is required.")
    return view.respond(frame_body(view, _model(view).frame_by_path(path)))


@router.get("/eventframes/{web_id}")
def get_event_frame(web_id: str, request: Request) -> Response:
    view = View(request)
    return view.respond(frame_body(view, _frame(view, web_id)))


@router.get("/eventframes/{web_id}/eventframes")
def search_child_event_frames(web_id: str, request: Request) -> Response:
    """The child frames (batch phases), searched like a database's frames (same defaults)."""
    view = View(request)
    frame = _frame(view, web_id)
    return view.page(_model(view).search(frame, view.params), lambda f: frame_body(view, f))


@router.get("/eventframes/{web_id}/attributes")
def list_event_frame_attributes(web_id: str, request: Request) -> Response:
    """The frame's attributes, with the filters of ``/elements/{webId}/attributes``."""
    view = View(request)
    web = webids.decode(web_id)
    if web.marker != "Fm":
        raise not_found("event frame", web_id)
    return view.page(view.af.child_attributes(web, view.params, web_id), view.attribute)


@router.get("/eventframes/{web_id}/categories")
def list_event_frame_categories(web_id: str, request: Request) -> Response:
    """The frame's categories (element categories, as in AF)."""
    view = View(request)
    frame = _frame(view, web_id)
    categories = [frame.database.categories[name.upper()] for name in frame.categories]
    return view.respond(collection([view.category(category) for category in categories]))


@router.get("/eventframes/{web_id}/referencedelements")
def list_referenced_elements(web_id: str, request: Request) -> Response:
    """The elements the frame references, the primary one first."""
    view = View(request)
    frame = _frame(view, web_id)
    return view.respond(collection([view.element(element) for element in frame.references]))
