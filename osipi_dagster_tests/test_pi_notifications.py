"""The PI client's notification rule calls against the mock over real HTTP, compared with plain reads."""

from __future__ import annotations

import pytest
import requests

from osipi_dagster.pi import NotificationRule, PIWebAPIClient, PIWebAPIError

UNIT = "\\\\AFMOCK\\Operations\\MockChem\\Plant1\\Area1\\Unit02"


@pytest.fixture(scope="module")
def client(mock_pi):
    with PIWebAPIClient(mock_pi.api, compress=False) as client:
        yield client


@pytest.fixture(scope="module")
def database(client):
    (asset_server,) = client.asset_servers()
    (database,) = client.asset_databases(asset_server.web_id)
    return database


def plain(url: str, **params) -> dict:
    answer = requests.get(url, params=params, timeout=30)
    answer.raise_for_status()
    return answer.json()


def test_rules_of_a_database_are_read_whole_across_pages(client, database, mock_pi) -> None:
    truth = plain(f"{mock_pi.api}/notificationrules/search", databaseWebId=database.web_id)["Items"]
    rules = list(client.notification_rules(database.web_id, page_size=9))
    assert len(rules) == len(truth) > 9
    for rule, raw in zip(rules, truth, strict=True):
        assert (rule.web_id, rule.id, rule.name, rule.path) == (
            raw["WebId"],
            raw["Id"],
            raw["Name"],
            raw["Path"],
        )
        assert (rule.criteria, rule.status, rule.category_names) == (
            raw["Criteria"],
            raw["Status"],
            raw["CategoryNames"],
        )
        assert (rule.nonrepetition_interval, rule.resend_interval, rule.multi_trigger_event_option) == (
            raw["NonrepetitionInterval"],
            raw["ResendInterval"],
            raw["MultiTriggerEventOption"],
        )
        assert rule.auto_created is raw["AutoCreated"] and rule.links == raw["Links"]
        assert rule.enabled == (raw["Status"] == "Enabled")
        assert rule.element_path == raw["Path"].split("\\NotificationRules[")[0]


def test_a_query_selects_rules(client, database) -> None:
    found = list(client.notification_rules(database.web_id, query="Name:='Equipment Faults'"))
    assert found and {rule.name for rule in found} == {"Equipment Faults"}


def test_an_elements_rules_a_rule_and_its_subscribers(client, mock_pi) -> None:
    element = plain(f"{mock_pi.api}/elements", path=UNIT)
    rules = client.element_notification_rules(element["WebId"])
    assert {rule.element_path for rule in rules} == {UNIT} and len(rules) == 4
    rule = rules[0]
    assert client.notification_rule(rule.web_id) == rule
    subscribers = client.notification_rule_subscribers(rule.web_id)
    truth = plain(rule.links["Self"] + "/notificationrulesubscribers")["Items"]
    assert [s.web_id for s in subscribers] == [raw["WebId"] for raw in truth] and subscribers
    for subscriber, raw in zip(subscribers, truth, strict=True):
        assert (subscriber.name, subscriber.contact_type, subscriber.plug_in_name) == (
            raw["Name"],
            raw["ContactType"],
            raw["PlugInName"],
        )
        assert (subscriber.notify_option, subscriber.maximum_retries, subscriber.escalation_timeout) == (
            raw["NotifyOption"],
            raw["MaximumRetries"],
            raw["EscalationTimeout"],
        )
        assert subscriber.config_string == raw["ConfigString"]


def test_a_path_without_the_rules_marker_names_no_element() -> None:
    assert NotificationRule(web_id="x", path="\\\\AF\\DB\\Elsewhere[Rule]").element_path is None
    assert NotificationRule(web_id="x", path="").element_path is None


def test_an_unknown_rule_is_a_typed_error(client, mock_pi) -> None:
    with pytest.raises(PIWebAPIError) as raised:
        client.notification_rule("garbage")
    assert raised.value.status == 400
