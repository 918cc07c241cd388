"""Notification rule routes (PI Notifications), and the admin route that acknowledges an alarm.

- ``GET /notificationrules/search?databaseWebId=..&query=..`` (``startIndex``, ``maxCount``): the database's
  rules matching an AF search query (``mock.notifications`` documents the filters); all without a query.
- ``GET /notificationrules/{webId}``, ``GET /notificationrules?path=..``: one rule.
- ``GET /elements/{webId}/notificationrules``: the rules an element owns (none for most elements).
- ``GET /notificationrules/{webId}/notificationrulesubscribers`` and
  ``GET /notificationrulesubscribers/{webId}``: who a rule notifies.
- ``POST /admin/eventframes/acknowledge`` with ``{"WebId": ..., "AcknowledgedBy": "MOCK\\\\tester"}``: an
  operator acknowledges an alarm now, on the mock's clock (``AcknowledgedBy`` is optional) ->
  ``{"Now", "WebId", "AcknowledgedBy", "AcknowledgedDate"}``; 400 for a frame that cannot be acknowledged,
  409 for one acknowledged already.

Shapes: the fields of the published client models ``NotificationRule`` and ``NotificationRuleSubscriber``
(PI Web API 2018 SP1 swagger, and its 2023 generation), plus ``Links.Self`` as the AVEVA reference samples
show it. Every route reads ``selectedFields`` and ``webIdType``.
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from osipi_dagster.mock import webids
from osipi_dagster.mock.errors import PIError
from osipi_dagster.mock.notifications import NotificationModel, NotificationRule, Subscriber
from osipi_dagster.mock.responses import collection, json_response
from osipi_dagster.mock.routes.admin import _json_object as json_object
from osipi_dagster.mock.routes.assets import View
from osipi_dagster.mock.state import MockState
from osipi_dagster.mock.timeparse import format_time

# Both /piwebapi and /admin routes: no prefix.
router = APIRouter()
DEFAULT_ACKNOWLEDGER = "MOCK\\operator"


def _model(request: Request) -> NotificationModel:
    return request.app.state.mock.notifications


def rule_id(view: View, rule: NotificationRule) -> str:
    return view.web_id("NR", (view.system, rule.guid), rule.path)


def rule_body(view: View, rule: NotificationRule) -> dict:
    web_id = rule_id(view, rule)
    return {
        "WebId": web_id,
        "Id": str(rule.guid),
        "Name": rule.name,
        "Description": rule.description,
        "Path": rule.path,
        "AutoCreated": rule.auto_created,
        "CategoryNames": list(rule.categories),
        "Criteria": rule.criteria,
        "MultiTriggerEventOption": rule.multi_trigger_event_option,
        "NonrepetitionInterval": rule.nonrepetition_interval,
        "ResendInterval": rule.resend_interval,
        "Status": rule.status,
        "TemplateName": "",
        "Links": {"Self": f"{view.base}/notificationrules/{web_id}"},
    }


def subscriber_body(view: View, rule: NotificationRule, subscriber: Subscriber) -> dict:
    web_id = view.web_id("NS", (view.system, rule.guid, subscriber.guid), subscriber.path, owner="L")
    return {
        "WebId": web_id,
        "Id": str(subscriber.guid),
        "Name": subscriber.name,
        "Description": subscriber.description,
        "Path": subscriber.path,
        "ConfigString": subscriber.config_string,
        "ContactTemplateName": subscriber.contact_template_name,
        "ContactType": subscriber.contact_type,
        "DeliveryFormatName": subscriber.delivery_format_name,
        "PlugInName": subscriber.plug_in_name,
        "EscalationTimeout": subscriber.escalation_timeout,
        "MaximumRetries": subscriber.maximum_retries,
        "NotifyOption": subscriber.notify_option,
        "RetryInterval": subscriber.retry_interval,
        "Links": {"Self": f"{view.base}/notificationrulesubscribers/{web_id}"},
    }


@router.get("/piwebapi/notificationrules/search")
def search_notification_rules(request: Request) -> Response:
    view = View(request)
    database_id = view.params.get("databaseWebId")
    if not database_id:
        raise PIError(400, "The 'databaseWebId' parameter is required.")
    database = view.af.database(webids.decode(database_id), database_id)
    rules = _model(request).search(database, view.params.get("query"))
    return view.page(rules, lambda rule: rule_body(view, rule))


@router.get("/piwebapi/notificationrules")
def get_notification_rule_by_path(request: Request) -> Response:
    view = View(request)
    path = view.params.get("path")
    if not path:
        raise PIError(400, "The 'path' parameter is required.")
    return view.respond(rule_body(view, _model(request).rule_by_path(path)))


@router.get("/piwebapi/notificationrules/{web_id}")
def get_notification_rule(web_id: str, request: Request) -> Response:
    view = View(request)
    return view.respond(rule_body(view, _model(request).rule(webids.decode(web_id), web_id)))


@router.get("/piwebapi/notificationrules/{web_id}/notificationrulesubscribers")
def list_notification_rule_subscribers(web_id: str, request: Request) -> Response:
    view = View(request)
    rule = _model(request).rule(webids.decode(web_id), web_id)
    return view.respond(collection([subscriber_body(view, rule, s) for s in rule.subscribers]))


@router.get("/piwebapi/notificationrulesubscribers/{web_id}")
def get_notification_rule_subscriber(web_id: str, request: Request) -> Response:
    view = View(request)
    rule, subscriber = _model(request).subscriber(webids.decode(web_id), web_id)
    return view.respond(subscriber_body(view, rule, subscriber))


@router.get("/piwebapi/elements/{web_id}/notificationrules")
def list_element_notification_rules(web_id: str, request: Request) -> Response:
    view = View(request)
    element = view.af.element(webids.decode(web_id), web_id)
    return view.respond(collection([rule_body(view, rule) for rule in _model(request).rules_of(element)]))


@router.post("/admin/eventframes/acknowledge")
async def acknowledge_event_frame(request: Request) -> Response:
    """An operator acknowledges an alarm now (the mock's clock), so tests can change PI's truth."""
    state: MockState = request.app.state.mock
    body = {str(key).lower(): value for key, value in (await json_object(request)).items()}
    web_id, by = body.get("webid"), body.get("acknowledgedby", DEFAULT_ACKNOWLEDGER)
    if not isinstance(web_id, str) or not isinstance(by, str) or not by:
        raise PIError(400, 'Send {"WebId": "<event frame WebId>", "AcknowledgedBy": "DOMAIN\\\\user"}.')
    now = state.clock.now_ns()
    state.event_frames.acknowledge(state.event_frames.frame(webids.decode(web_id), web_id), by, now)
    return json_response(
        {"Now": format_time(now), "WebId": web_id, "AcknowledgedBy": by, "AcknowledgedDate": format_time(now)}
    )
