"""The mock's AF model over real HTTP: servers, databases, elements, attributes, templates, categories."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections import Counter
from dataclasses import replace

import pytest
import requests
from starlette.requests import Request
from starlette.responses import Response

from osipi_dagster.mock import webids
from osipi_dagster.mock.af import AssetModel
from osipi_dagster.mock.archive import Archive
from osipi_dagster.mock.params import Params
from osipi_dagster.mock.responses import AnswerCache
from osipi_dagster.mock.server import RunningMock
from osipi_dagster_tests.conftest import TEST_CONFIG


def get(mock: RunningMock, resource: str, status: int = 200, /, **params) -> dict:
    """GET ``/piwebapi{resource}`` (or an absolute link) and check the status."""
    url = resource if resource.startswith("http") else mock.api + resource
    response = requests.get(url, params=params, timeout=30)
    assert response.status_code == status, response.text
    return response.json()


def database(mock: RunningMock) -> dict:
    server = get(mock, "/assetservers")["Items"][0]
    return get(mock, server["Links"]["Databases"])["Items"][0]


def all_elements(mock: RunningMock, **params) -> list[dict]:
    return get(mock, database(mock)["Links"]["Elements"], searchFullHierarchy="true", **params)["Items"]


def element_by_name(mock: RunningMock, name_filter: str) -> dict:
    return all_elements(mock, nameFilter=name_filter)[0]


# -- asset servers and databases ---------------------------------------------------------------------------


def test_asset_server_list_get_and_lookups(mock_pi: RunningMock) -> None:
    servers = get(mock_pi, "/assetservers")
    assert servers["Links"] == {} and len(servers["Items"]) == 1
    server = servers["Items"][0]
    assert (
        server["Name"] == "AFMOCK" and server["Path"] == "\\\\AFMOCK" and server["WebId"].startswith("F1RS")
    )
    assert get(mock_pi, f"/assetservers/{server['WebId']}") == server
    assert get(mock_pi, "/assetservers", path="\\\\afmock")["WebId"] == server["WebId"]
    assert get(mock_pi, "/assetservers", name="AFMOCK")["WebId"] == server["WebId"]
    get(mock_pi, "/assetservers", 404, name="OTHER")
    databases = get(mock_pi, server["Links"]["Databases"])["Items"]
    assert [d["Name"] for d in databases] == ["Operations"]
    assert set(databases[0]["Links"]) >= {
        "Self",
        "Elements",
        "ElementTemplates",
        "EventFrames",
        "AssetServer",
    }


def test_several_databases_share_the_points(make_mock) -> None:
    mock = make_mock(af_databases=3)
    databases = get(mock, get(mock, "/assetservers")["Items"][0]["Links"]["Databases"])["Items"]
    assert [d["Name"] for d in databases] == ["Operations", "Europe", "Americas"]
    paths = [
        e["Path"]
        for d in databases
        for e in get(mock, d["Links"]["Elements"], searchFullHierarchy="true")["Items"]
    ]
    assert len(paths) == len(set(paths))
    assert all(p.split("\\")[3] in {d["Name"] for d in databases} for p in paths)


def test_database_by_web_id_and_path(mock_pi: RunningMock) -> None:
    db = database(mock_pi)
    assert get(mock_pi, f"/assetdatabases/{db['WebId']}") == db
    assert get(mock_pi, "/assetdatabases", path="\\\\AFMOCK\\operations")["WebId"] == db["WebId"]
    get(mock_pi, "/assetdatabases", 404, path="\\\\AFMOCK\\Nope")
    get(mock_pi, "/assetdatabases", 400)


# -- the hierarchy -----------------------------------------------------------------------------------------


def test_root_element_and_five_levels(mock_pi: RunningMock) -> None:
    roots = get(mock_pi, database(mock_pi)["Links"]["Elements"])["Items"]
    assert [r["Name"] for r in roots] == ["MockChem"]
    assert roots[0]["TemplateName"] == "Enterprise" and roots[0]["HasChildren"] is True
    depths = Counter(e["Path"].count("\\") - 3 for e in all_elements(mock_pi))
    assert sorted(depths) == [1, 2, 3, 4, 5]  # enterprise, site, area, unit, equipment
    equipment = [e for e in all_elements(mock_pi) if e["Path"].count("\\") == 8]
    assert all(not e["HasChildren"] for e in equipment)


def test_parent_links_rebuild_the_tree(mock_pi: RunningMock) -> None:
    elements = all_elements(mock_pi)
    by_self = {e["Links"]["Self"]: e for e in elements}
    for element in elements:
        if "Parent" in element["Links"]:
            parent = by_self[element["Links"]["Parent"]]
            assert element["Path"].rsplit("\\", 1)[0] == parent["Path"]
        else:
            assert element["Name"] == "MockChem"


def test_every_point_is_referenced_exactly_once(mock_pi: RunningMock) -> None:
    archive = mock_pi.state.archive
    config_strings, point_links = Counter(), Counter()
    for element in all_elements(mock_pi):
        for attribute in get(mock_pi, element["Links"]["Attributes"], searchFullHierarchy="true")["Items"]:
            if attribute["DataReferencePlugIn"] == "PI Point":
                config_strings[attribute["ConfigString"]] += 1
                point_links[attribute["Links"]["Point"]] += 1
    expected = {f"\\\\{archive.server_name}\\{p.name}" for p in archive.points}
    assert set(config_strings) == expected and set(config_strings.values()) == {1}
    assert {link.rsplit("/", 1)[1] for link in point_links} == {
        archive.point_webid(p) for p in archive.points
    }


@pytest.mark.slow
def test_a_100k_point_model_builds_fast_and_references_each_point_once() -> None:
    config = replace(TEST_CONFIG, tags=100_000)
    archive = Archive(config, 1_736_164_800_000_000_000)
    started = time.process_time()  # CPU time: what the build costs, whatever else shares the machine
    model = AssetModel(config, archive)
    assert time.process_time() - started < 10.0  # about 1.2 s here
    indexes = [i for d in model.databases for e in d.elements for i in e.points]
    assert sorted(indexes) == list(range(100_000))


def test_element_by_web_id_path_and_children(mock_pi: RunningMock) -> None:
    unit = element_by_name(mock_pi, "Unit01")
    assert get(mock_pi, f"/elements/{unit['WebId']}") == unit
    assert get(mock_pi, "/elements", path=unit["Path"].lower())["WebId"] == unit["WebId"]
    children = get(mock_pi, unit["Links"]["Elements"])["Items"]
    assert children and all(c["Path"].startswith(unit["Path"] + "\\") for c in children)
    assert [c["Name"] for c in children] == sorted((c["Name"] for c in children), key=str.lower)
    site = element_by_name(mock_pi, "Plant1")
    descendants = get(mock_pi, site["Links"]["Elements"], searchFullHierarchy="true")["Items"]
    assert {c["WebId"] for c in children} < {d["WebId"] for d in descendants}
    categories = get(mock_pi, unit["Links"]["Categories"])["Items"]
    assert {c["Name"] for c in categories} == set(unit["CategoryNames"])


def test_element_links_point_at_streamsets(mock_pi: RunningMock) -> None:
    element = element_by_name(mock_pi, "FIC0101")
    links = element["Links"]
    assert links["RecordedData"] == f"{mock_pi.api}/streamsets/{element['WebId']}/recorded"
    assert links["Value"].endswith(f"/streamsets/{element['WebId']}/value")
    assert get(mock_pi, links["Template"])["Name"] == element["TemplateName"] == "Flow Controller"
    assert get(mock_pi, links["Database"])["Name"] == "Operations"


# -- element filters, sorting and paging -------------------------------------------------------------------


def test_template_filter_matches_derived_templates(mock_pi: RunningMock) -> None:
    transmitters = all_elements(mock_pi, templateName="Transmitter")
    kinds = {e["TemplateName"] for e in transmitters}
    assert kinds == {"Temperature Transmitter", "Pressure Transmitter", "Level Transmitter", "Analyzer"}
    equipment = all_elements(mock_pi, templateName="equipment")
    assert {e["TemplateName"] for e in transmitters} < {e["TemplateName"] for e in equipment}
    assert all(e["Path"].count("\\") == 8 for e in equipment)
    assert all_elements(mock_pi, templateName="Centrifugal Pump") == all_elements(mock_pi, nameFilter="P??0?")


def test_category_name_and_description_filters(mock_pi: RunningMock) -> None:
    critical = all_elements(mock_pi, categoryName="critical")
    assert critical and all("Critical" in e["CategoryNames"] for e in critical)
    units = all_elements(mock_pi, categoryName="Process Unit")
    assert units and all(e["TemplateName"] in ("Batch Unit", "Continuous Unit") for e in units)
    valves = all_elements(mock_pi, descriptionFilter="On-Off Valve*")
    assert valves and all(e["TemplateName"] == "On-Off Valve" for e in valves)
    assert all_elements(mock_pi, nameFilter="fic*") == all_elements(mock_pi, nameFilter="FIC????")


def test_sort_order_and_paging(mock_pi: RunningMock) -> None:
    ascending = all_elements(mock_pi)
    descending = all_elements(mock_pi, sortOrder="Descending")
    assert [e["WebId"] for e in descending] == [e["WebId"] for e in reversed(ascending)]
    by_description = all_elements(mock_pi, sortField="Description")
    assert [e["Description"].lower() for e in by_description] == sorted(
        e["Description"].lower() for e in ascending
    )
    pages = [all_elements(mock_pi, startIndex=i, maxCount=7) for i in range(0, len(ascending) + 7, 7)]
    assert [e["WebId"] for page in pages for e in page] == [e["WebId"] for e in ascending]
    assert all(len(page) == 7 for page in pages[:-2])


def test_full_hierarchy_over_1000_elements_pages_without_loss(make_mock) -> None:
    mock = make_mock(tags=1_500)
    expected = sum(len(d.elements) for d in mock.state.af.databases)
    assert expected > 1_000
    assert len(all_elements(mock)) == 1_000  # the default maxCount truncates silently
    seen: list[str] = []
    while True:
        page = all_elements(mock, startIndex=len(seen), maxCount=1_000, selectedFields="Items.WebId")
        seen += [e["WebId"] for e in page]
        if len(page) < 1_000:
            break
    assert len(seen) == len(set(seen)) == expected


# -- attributes --------------------------------------------------------------------------------------------


def test_attribute_json_of_a_pi_point_attribute(mock_pi: RunningMock) -> None:
    element = element_by_name(mock_pi, "FIC0101")
    attributes = get(mock_pi, element["Links"]["Attributes"])["Items"]
    flow = next(a for a in attributes if a["Name"] == "Feed flow")
    point = next(p for p in mock_pi.state.archive.points if p.name == "Plant1.Area1.Unit01.FIC0101.PV")
    assert flow["DataReferencePlugIn"] == "PI Point"
    assert flow["ConfigString"] == f"\\\\PIMOCK\\{point.name}"
    assert flow["Links"]["Point"] == f"{mock_pi.api}/points/{mock_pi.state.archive.point_webid(point)}"
    assert flow["Links"]["RecordedData"] == f"{mock_pi.api}/streams/{flow['WebId']}/recorded"
    assert flow["Type"] == "Single" and flow["DefaultUnitsNameAbbreviation"] == "m3/h"
    assert flow["Path"] == f"{element['Path']}|Feed flow" and flow["WebId"].startswith("F1AbE")
    assert (flow["Span"], flow["Zero"], flow["Step"]) == (point.span, point.zero, point.step)
    mode = next(a for a in attributes if a["Name"] == "Feed controller mode")
    assert mode["Type"] == "EnumerationValue" and mode["TypeQualifier"] == "Modes"
    assert get(mock_pi, f"/attributes/{flow['WebId']}") == flow
    assert get(mock_pi, "/attributes", path=flow["Path"])["WebId"] == flow["WebId"]


def test_static_attributes_children_hidden_and_excluded(mock_pi: RunningMock) -> None:
    element = element_by_name(mock_pi, "FIC0101")
    url = element["Links"]["Attributes"]
    visible = {a["Name"]: a for a in get(mock_pi, url)["Items"]}
    assert {"Manufacturer", "Model", "Install Year", "Rated Capacity"} <= set(visible)
    assert "Asset ID" not in visible and "Minimum" not in visible
    manufacturer = visible["Manufacturer"]
    assert manufacturer["DataReferencePlugIn"] == "" and manufacturer["ConfigString"] == ""
    assert "Point" not in manufacturer["Links"] and manufacturer["Span"] is None
    hidden = get(mock_pi, url, showHidden="true")["Items"]
    assert next(a for a in hidden if a["Name"] == "Asset ID")["IsHidden"] is True
    capacity = visible["Rated Capacity"]
    assert capacity["HasChildren"] is True
    children = get(mock_pi, capacity["Links"]["Attributes"])["Items"]
    assert [(c["Name"], c["TraitName"]) for c in children] == [("Maximum", "Maximum"), ("Minimum", "Minimum")]
    assert children[0]["Links"]["Parent"] == capacity["Links"]["Self"]
    assert get(mock_pi, children[0]["Links"]["Attributes"])["Items"] == []
    full = get(mock_pi, url, searchFullHierarchy="true")["Items"]
    assert {"Minimum", "Maximum"} <= {a["Name"] for a in full}
    every_equipment = [e for e in all_elements(mock_pi, templateName="Equipment")]
    excluded = [
        a
        for e in every_equipment[:30]
        for a in get(mock_pi, e["Links"]["Attributes"], showExcluded="true", nameFilter="Warranty*")["Items"]
    ]
    assert {a["IsExcluded"] for a in excluded} == {True, False}


def test_attribute_filters(mock_pi: RunningMock) -> None:
    url = element_by_name(mock_pi, "P0106")["Links"]["Attributes"]
    measurements = get(mock_pi, url, categoryName="Measurement")["Items"]
    assert measurements and all(a["DataReferencePlugIn"] == "PI Point" for a in measurements)
    # An attribute belongs to the template that defines it, and so to that template's bases.
    templated = get(mock_pi, url, templateName="Equipment")["Items"]
    static = [a for a in get(mock_pi, url)["Items"] if a["DataReferencePlugIn"] == ""]
    assert templated == static and "Rated Capacity" in {a["Name"] for a in static}
    assert [a["Name"] for a in get(mock_pi, url, templateName="Pump")["Items"]] == ["Rated Capacity"]
    assert get(mock_pi, url, templateName="Transmitter")["Items"] == []
    assert [a["Name"] for a in get(mock_pi, url, nameFilter="feed pump*")["Items"]] == [
        "Feed pump run hours",
        "Feed pump running",
        "Feed pump speed",
    ]
    names = [a["Name"] for a in get(mock_pi, url, sortOrder="Descending")["Items"]]
    assert names == sorted(names, key=str.lower, reverse=True)


def test_element_attributes_of_a_database_equal_the_per_element_listings(mock_pi: RunningMock) -> None:
    """``/assetdatabases/{id}/elementattributes`` (FindElementAttributes) with searchFullHierarchy gives,
    in pages, exactly the attributes the per-element listings give with searchFullHierarchy (the same
    bodies), sorted by name; each names its element in ``Links.Element``; without searchFullHierarchy only
    the root elements' attributes; the element and attribute filters narrow it."""
    url = database(mock_pi)["Links"]["Self"] + "/elementattributes"
    per_element = {}
    for element in all_elements(mock_pi):
        for attribute in get(mock_pi, element["Links"]["Attributes"], searchFullHierarchy="true")["Items"]:
            per_element[attribute["WebId"]] = (element["Links"]["Self"], attribute)
    pages, start = [], 0
    while page := get(mock_pi, url, searchFullHierarchy="true", startIndex=start, maxCount=500)["Items"]:
        pages.append(page)
        start += len(page)
    found = [attribute for page in pages for attribute in page]
    assert len(pages) > 1 and len(found) == len(per_element)
    assert {a["WebId"]: a for a in found} == {web_id: a for web_id, (_, a) in per_element.items()}
    assert all(a["Links"]["Element"] == per_element[a["WebId"]][0] for a in found)
    names = [(a["Name"].lower(), a["Path"].lower()) for a in found]
    assert names == sorted(names)
    roots = get(mock_pi, url)["Items"]
    assert roots and {a["Path"].split("|")[0].count("\\") for a in roots} == {4}  # \\AF\DB\Root|...
    pumps = get(
        mock_pi, url, searchFullHierarchy="true", elementTemplate="Pump", attributeCategory="Measurement"
    )
    assert pumps["Items"] and all(a["DataReferencePlugIn"] == "PI Point" for a in pumps["Items"])
    assert {a["Path"].split("|")[0].rsplit("\\", 1)[1][:1] for a in pumps["Items"]} == {"P"}
    trimmed = get(
        mock_pi, url, searchFullHierarchy="true", maxCount=3, selectedFields="Items.WebId;Items.Links.Element"
    )["Items"]
    assert [set(a) for a in trimmed] == [{"WebId", "Links"}] * 3 and all(
        set(a["Links"]) == {"Element"} for a in trimmed
    )


# The attribute search and the element listing, as the mock answered them before their answers were
# rendered lazily (links made only when selectedFields keeps them) and WebIDs encoded from cached parts:
# a digest of each answer's bytes (the mock's address taken out).
ATTRIBUTE_SEARCHES: list[tuple[dict[str, str], str]] = [
    ({"searchFullHierarchy": "true"}, "baf8d14c05cee991"),
    ({}, "bf228cd7fd39a411"),
    (
        {"searchFullHierarchy": "true", "elementTemplate": "Pump", "attributeCategory": "Measurement"},
        "bcfc3d6d8e19caa4",
    ),
    (
        {"searchFullHierarchy": "true", "attributeNameFilter": "*temp*", "sortOrder": "Descending"},
        "0432108d8409b227",
    ),
    (
        {"searchFullHierarchy": "true", "elementNameFilter": "P*", "attributeType": "Double"},
        "398b5b749cde0c75",
    ),
    (
        {"searchFullHierarchy": "true", "elementCategory": "Critical", "webIdType": "IDOnly"},
        "06f34472ac58eef6",
    ),
    (
        {"searchFullHierarchy": "true", "elementDescriptionFilter": "*pump*", "webIdType": "PathOnly"},
        "a8178ea19b188529",
    ),
    (
        {
            "searchFullHierarchy": "true",
            "selectedFields": "Items.WebId;Items.Id;Items.Name;Items.Path;Items.Type;"
            "Items.DefaultUnitsNameAbbreviation;Items.DataReferencePlugIn;Items.ConfigString;"
            "Items.CategoryNames;Items.Links.Point;Items.Links.Element",
        },
        "8d8cf0418a258960",
    ),
    (
        {"searchFullHierarchy": "true", "startIndex": "100", "maxCount": "50", "webIdType": "LocalIDOnly"},
        "f1417b5198d1c17e",
    ),
    (
        {"searchFullHierarchy": "true", "attributeCategory": "Nameplate", "webIdType": "DefaultIDOnly"},
        "7418ae886e0bbc8d",
    ),
    (
        {"searchFullHierarchy": "true", "selectedFields": "Items.Links", "attributeType": "Int32"},
        "ad9081040be02717",
    ),
    (
        {
            "searchFullHierarchy": "true",
            "selectedFields": "Items.WebId;Items.Links.Template;Items.Links.Parent",
        },
        "a960923649195cbd",
    ),
]
ELEMENT_LISTINGS: list[tuple[dict[str, str], str]] = [
    ({"searchFullHierarchy": "true"}, "c1350c803adef541"),
    ({"searchFullHierarchy": "true", "webIdType": "IDOnly", "associations": "Paths"}, "45a95ebaa87f09eb"),
    (
        {"searchFullHierarchy": "true", "selectedFields": "Items.WebId;Items.Path;Items.Links.Parent"},
        "45e0628ca654fb27",
    ),
]


def answer_digest(mock: RunningMock, url: str, params: dict[str, str]) -> str:
    response = requests.get(url, params=params, timeout=30)
    assert response.status_code == 200, response.text
    return hashlib.sha256(response.content.replace(mock.api.encode(), b"{api}")).hexdigest()[:16]


def test_attribute_search_and_element_answers_are_unchanged(mock_pi: RunningMock) -> None:
    links = database(mock_pi)["Links"]
    searches = [
        answer_digest(mock_pi, links["Self"] + "/elementattributes", p) for p, _ in ATTRIBUTE_SEARCHES
    ]
    listings = [answer_digest(mock_pi, links["Elements"], p) for p, _ in ELEMENT_LISTINGS]
    assert searches == [digest for _, digest in ATTRIBUTE_SEARCHES]
    assert listings == [digest for _, digest in ELEMENT_LISTINGS]


def test_attribute_slots_describe_the_attributes_they_stand_for() -> None:
    """The database-wide search sorts and filters slots instead of attributes: every element's slots name,
    in order, exactly its built attributes (path, categories, type, hidden, excluded)."""
    config = replace(TEST_CONFIG, af_databases=2)
    model = AssetModel(config, Archive(config, 1_736_164_800_000_000_000))
    for element in (e for d in model.databases for e in d.elements):
        built = [
            (i, a.name, a.path, a.categories, a.type, n.hidden, n.excluded)
            for i, n, a in ((i, n, n.attribute) for i, n in enumerate(model.attributes_of(element).every))
        ]
        assert [tuple(slot) for slot in model.attribute_slots(element)] == built


@pytest.mark.slow
def test_a_page_of_the_attribute_search_of_100k_points_builds_only_its_own_attributes() -> None:
    config = replace(TEST_CONFIG, tags=100_000)
    model = AssetModel(config, Archive(config, 1_736_164_800_000_000_000))
    database = model.databases[0]
    started = time.process_time()  # CPU time: what the search costs, whatever else shares the machine
    found = model.element_attributes(database, Params([("searchFullHierarchy", "true")], 0))
    page = found[:1000]
    assert time.process_time() - started < 20.0  # about 4 s here (all 420,000 attributes: over 20 s)
    assert len(found) > 400_000 and len(page) == 1000
    # The attribute sets built so far (a private cache): those of the page's elements, not the database's.
    assert len(model._attribute_sets) <= 1000 < len(database.elements)


def test_model_entry_points_for_the_streams(mock_pi: RunningMock) -> None:
    af = mock_pi.state.af
    element = element_by_name(mock_pi, "TI0102")
    web = webids.decode(element["WebId"])
    params = Params([("nameFilter", "Reactor*")], mock_pi.state.clock.now_ns())
    attributes = af.stream_attributes(web, params)
    assert [a.name for a in attributes] == ["Reactor temperature", "Reactor temperature alarm"]
    assert all(a.point_id is not None and a.owner_kind == "E" for a in attributes)
    attribute_json = get(mock_pi, element["Links"]["Attributes"], nameFilter="Reactor temperature")["Items"][
        0
    ]
    assert af.attribute(webids.decode(attribute_json["WebId"])) == attributes[0]
    assert af.time_context(web) is None
    static = af.stream_attributes(web, Params([("nameFilter", "Manufacturer")], 0))[0]
    assert static.point_id is None and static.static_value in ("Sulzer", "Siemens", "ABB")


# -- templates and categories ------------------------------------------------------------------------------


def test_element_templates_and_attribute_templates(mock_pi: RunningMock) -> None:
    db = database(mock_pi)
    templates = {t["Name"]: t for t in get(mock_pi, db["Links"]["ElementTemplates"])["Items"]}
    assert templates["Centrifugal Pump"]["BaseTemplate"] == "Pump"
    assert templates["Process Alarm"]["InstanceType"] == "EventFrame"
    assert templates["Alarm"]["CanBeAcknowledged"] is True
    assert templates["Pump"]["InstanceType"] == "Element"
    pump = templates["Centrifugal Pump"]
    assert get(mock_pi, pump["Links"]["BaseTemplate"])["Name"] == "Pump"
    assert get(mock_pi, f"/elementtemplates/{pump['WebId']}") == pump
    assert get(mock_pi, "/elementtemplates", path=pump["Path"])["WebId"] == pump["WebId"]
    own = get(mock_pi, pump["Links"]["AttributeTemplates"])["Items"]
    assert [a["Name"] for a in own] == ["Rated Capacity"]
    inherited = get(mock_pi, pump["Links"]["AttributeTemplates"], showInherited="true")["Items"]
    assert [a["Name"] for a in inherited][:2] == ["Manufacturer", "Model"]
    nested = get(mock_pi, pump["Links"]["AttributeTemplates"], showDescendants="true")["Items"]
    assert [a["Path"].split("|", 1)[1] for a in nested] == [
        "Rated Capacity",
        "Rated Capacity|Minimum",
        "Rated Capacity|Maximum",
    ]
    assert get(mock_pi, nested[1]["Links"]["Self"]) == nested[1]
    pumps = get(mock_pi, db["Links"]["ElementTemplates"], query="*pump")["Items"]
    assert [t["Name"] for t in pumps] == ["Centrifugal Pump", "Pump"]
    get(mock_pi, db["Links"]["ElementTemplates"], 400, query="x", field="Nope")


def test_attributes_share_their_template_id(mock_pi: RunningMock) -> None:
    one, two = all_elements(mock_pi, templateName="Centrifugal Pump")[:2]
    first = get(mock_pi, one["Links"]["Attributes"], nameFilter="Rated Capacity")["Items"][0]
    second = get(mock_pi, two["Links"]["Attributes"], nameFilter="Rated Capacity")["Items"][0]
    assert first["Id"] == second["Id"] and first["WebId"] != second["WebId"]
    assert get(mock_pi, first["Links"]["Template"])["Id"] == first["Id"]


def test_element_categories(mock_pi: RunningMock) -> None:
    categories = get(mock_pi, database(mock_pi)["Links"]["ElementCategories"])["Items"]
    names = [c["Name"] for c in categories]
    assert {"Alarm", "Batch", "Critical", "Equipment", "Process Unit"} <= set(names)
    assert names == sorted(names, key=str.lower)
    assert get(mock_pi, categories[0]["Links"]["Self"]) == categories[0]


# -- WebID types, selected fields and determinism ----------------------------------------------------------


@pytest.mark.parametrize("webid_type", ["IDOnly", "PathOnly", "LocalIDOnly", "DefaultIDOnly"])
def test_web_id_types_round_trip(mock_pi: RunningMock, webid_type: str) -> None:
    full = element_by_name(mock_pi, "LI0104")
    short = get(mock_pi, f"/elements/{full['WebId']}", webIdType=webid_type)
    assert short["WebId"][0] == webids.WEBID_TYPES[webid_type] and short["WebId"] != full["WebId"]
    assert short["Links"]["Self"].endswith(short["WebId"])
    assert get(mock_pi, f"/elements/{short['WebId']}")["WebId"] == full["WebId"]


@pytest.mark.parametrize("webid_type", ["IDOnly", "PathOnly"])
def test_attribute_web_id_types_round_trip(mock_pi: RunningMock, webid_type: str) -> None:
    element = element_by_name(mock_pi, "LI0104")
    attributes = get(
        mock_pi, element["Links"]["Attributes"], webIdType=webid_type, searchFullHierarchy="true"
    )
    for attribute in attributes["Items"]:
        assert get(mock_pi, f"/attributes/{attribute['WebId']}")["Path"] == attribute["Path"]
        if "Point" in attribute["Links"]:
            assert attribute["Links"]["Point"].rsplit("/", 1)[1][0] == webids.WEBID_TYPES[webid_type]


def test_selected_fields(mock_pi: RunningMock) -> None:
    items = all_elements(mock_pi, selectedFields="Items.Name;Items.Links.Attributes", maxCount=3)
    assert [set(i) for i in items] == [{"Name", "Links"}] * 3
    assert all(set(i["Links"]) == {"Attributes"} for i in items)


def test_identical_requests_give_identical_bytes(mock_pi: RunningMock) -> None:
    url = database(mock_pi)["Links"]["Elements"]
    first = requests.get(url, params={"searchFullHierarchy": "true"}, timeout=30).content
    assert requests.get(url, params={"searchFullHierarchy": "true"}, timeout=30).content == first
    other = AssetModel(TEST_CONFIG, mock_pi.state.archive)
    assert [e.guid for e in other.databases[0].elements] == [
        e.guid for e in mock_pi.state.af.databases[0].elements
    ]
    assert other.system_guid == mock_pi.state.af.system_guid


# -- bad input ---------------------------------------------------------------------------------------------


def test_bad_input_answers(mock_pi: RunningMock) -> None:
    db = database(mock_pi)
    assert get(mock_pi, "/elements/not-a-webid", 400)["Errors"][0].startswith(
        "Unknown or invalid WebID format"
    )
    af = mock_pi.state.af
    unknown = webids.encode("Em", (af.system_guid, uuid.UUID(int=7)), "\\\\AFMOCK\\Operations\\Nothing")
    assert "Errors" in get(mock_pi, f"/elements/{unknown}", 404)
    foreign = webids.encode("Em", (uuid.UUID(int=1), uuid.UUID(int=7)), "\\\\X\\Y")
    get(mock_pi, f"/elements/{foreign}", 404)
    get(mock_pi, f"/elements/{db['WebId']}", 404)  # a database WebID is no element
    get(mock_pi, f"/assetdatabases/{unknown}", 404)
    get(mock_pi, f"/attributes/{unknown}", 404)
    get(mock_pi, f"/assetservers/{db['WebId']}", 404)
    get(mock_pi, "/elements", 400)
    get(mock_pi, "/elements", 404, path="\\\\AFMOCK\\Operations\\Nothing")
    get(mock_pi, "/attributes", 404, path="\\\\AFMOCK\\Operations\\MockChem|Nothing")
    url = db["Links"]["Elements"]
    get(mock_pi, url, 400, maxCount=150_001)
    get(mock_pi, url, 400, maxCount=0)
    get(mock_pi, url, 400, startIndex=-1)
    get(mock_pi, url, 400, sortField="Colour")
    get(mock_pi, url, 400, sortOrder="Sideways")
    get(mock_pi, url, 400, searchFullHierarchy="maybe")
    get(mock_pi, url, 400, webIdType="Short")


CATALOG_FIELDS = "Items.WebId;Items.Name;Items.Path;Items.Links.Parent;Items.Links.Element;Items.Links.Point"


def test_a_repeated_catalog_listing_is_answered_as_the_first_time_from_the_kept_answer(make_mock) -> None:
    mock = make_mock(tags=60)
    links = database(mock)["Links"]
    server = get(mock, "/dataservers")["Items"][0]["WebId"]
    listings = [
        (links["Self"] + "/elementattributes", {"searchFullHierarchy": "true", "maxCount": 25}),
        (
            links["Self"] + "/elementattributes",
            {"searchFullHierarchy": "true", "selectedFields": CATALOG_FIELDS, "startIndex": 25},
        ),
        (links["Elements"], {"searchFullHierarchy": "true", "selectedFields": CATALOG_FIELDS}),
        (f"{mock.api}/dataservers/{server}/points", {"maxCount": 40, "webIdType": "IDOnly"}),
    ]
    first = [requests.get(url, params=params, timeout=30) for url, params in listings]
    kept = len(mock.state.af.catalog_answers)
    again = [requests.get(url, params=params, timeout=30) for url, params in listings]
    assert kept == len(listings) == len(mock.state.af.catalog_answers)  # the second round added nothing
    for before, after in zip(first, again, strict=True):
        assert before.status_code == after.status_code == 200
        assert before.content == after.content and len(before.json()["Items"]) > 0
        assert before.headers["Content-Type"] == after.headers["Content-Type"]
    # Without gzip (the kept answer is stored compressed, and sent as it was made).
    plain = requests.get(
        listings[0][0], params=listings[0][1], headers={"Accept-Encoding": "identity"}, timeout=30
    )
    assert plain.content == first[0].content and "Content-Encoding" not in plain.headers


def test_a_failed_catalog_listing_is_not_kept(make_mock) -> None:
    mock = make_mock(tags=20, max_returned_items=100)
    url = database(mock)["Links"]["Self"] + "/elementattributes"
    for _ in range(2):
        answer = requests.get(url, params={"maxCount": 101}, timeout=30)
        assert answer.status_code == 400 and "maxCount" in answer.text
    assert len(mock.state.af.catalog_answers) == 0


def _request(query: str) -> Request:
    scope = {"type": "http", "method": "GET", "path": "/piwebapi/x", "query_string": query.encode(),
             "headers": [(b"host", b"127.0.0.1")], "scheme": "http", "server": ("127.0.0.1", 80)}  # fmt: skip
    return Request(scope)


def test_kept_answers_stay_within_their_budget_least_recently_used_first() -> None:
    cache = AnswerCache(budget_bytes=600)
    made: list[str] = []

    def answer(query: str) -> bytes:
        def render() -> Response:
            made.append(query)
            return Response(query.encode() * 100, 200)  # about 40 bytes once compressed

        return bytes(cache.answer(_request(query), render).body)

    bodies = {query: answer(query) for query in ("a=1", "a=2", "a=3")}
    assert answer("a=1") == bodies["a=1"] and made == ["a=1", "a=2", "a=3"]  # a=1 kept, and used last
    for number in range(4, 40):  # enough to fill the budget several times over
        answer(f"a={number}")
    assert 0 < len(cache) < 36
    answer("a=2")
    assert made.count("a=2") == 2  # dropped long ago, made again


def test_a_point_listing_drops_links_only_where_selected_fields_does(mock_pi: RunningMock) -> None:
    server = get(mock_pi, "/dataservers")["Items"][0]["WebId"]
    listing = f"/dataservers/{server}/points"
    whole = get(mock_pi, listing, maxCount=2)["Items"]
    assert [
        item["Links"]["Self"]
        for item in get(mock_pi, listing, maxCount=2, selectedFields="Items.Links.Self")["Items"]
    ] == [item["Links"]["Self"] for item in whole]
    assert get(mock_pi, listing, maxCount=2, selectedFields="Items.WebId;Items.Name")["Items"] == [
        {"WebId": item["WebId"], "Name": item["Name"]} for item in whole
    ]
    assert get(mock_pi, listing, maxCount=2, selectedFields="Items")["Items"] == whole
    # One point's own answer selects at its top level: its Links stay when selected.
    single = get(mock_pi, f"/points/{whole[0]['WebId']}", selectedFields="WebId;Links.Value")
    assert single == {"WebId": whole[0]["WebId"], "Links": {"Value": whole[0]["Links"]["Value"]}}
