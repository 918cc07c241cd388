"""``refresh_af``: the AF hierarchy and attribute tables against the mock, over real HTTP and real Delta.

Expectations come from an independent plain-``requests`` listing of the mock (and its state as a cross
check), never from the connector's own client.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from osipi_dagster.ingest.af import refresh_af
from osipi_dagster.ingest.rows import table_rows
from osipi_dagster.lake import Lakehouse, LakeTable, overwrite_table, read_table
from osipi_dagster.mock.server import RunningMock
from osipi_dagster.pi import ATTRIBUTE_FIELDS, PIWebAPIClient
from osipi_dagster_tests.answer_proxy import answer_proxy

# The columns of bronze.pi_af_hierarchy that describe an element (ingested_at excluded).
ELEMENT_COLUMNS = (
    "web_id",
    "parent_web_id",
    "name",
    "path",
    "depth",
    "template_name",
    "category_names",
    "description",
    "database_web_id",
)


def get(url: str, **params) -> dict:
    """GET ``url`` with plain requests; fail on any non-200 answer."""
    response = requests.get(url, params=params, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


@dataclass(frozen=True)
class RawAF:
    """The mock's AF as listed over plain HTTP: databases, elements (JSON) and attributes per element."""

    databases: list[dict]
    elements: list[dict]  # each with an added "DatabaseWebId"
    attributes: dict[str, list[dict]]  # element WebId -> its attributes (child attributes too)

    def point_attributes(self) -> list[tuple[dict, dict]]:
        """``(element, attribute)`` for every "PI Point" attribute."""
        return [
            (element, attribute)
            for element in self.elements
            for attribute in self.attributes[element["WebId"]]
            if attribute["DataReferencePlugIn"] == "PI Point"
        ]


def raw_af(api: str) -> RawAF:
    """Every AF database, element and attribute of the mock, read independently of the connector."""
    databases: list[dict] = []
    elements: list[dict] = []
    for server in get(api + "/assetservers")["Items"]:
        for database in get(server["Links"]["Databases"])["Items"]:
            databases.append(database)
            listing = get(database["Links"]["Elements"], searchFullHierarchy="true", maxCount=100_000)
            elements += [{**element, "DatabaseWebId": database["WebId"]} for element in listing["Items"]]
    session = requests.Session()
    attributes = {}
    for element in elements:
        response = session.get(
            f"{api}/elements/{element['WebId']}/attributes",
            params={"searchFullHierarchy": "true", "maxCount": 100_000},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        attributes[element["WebId"]] = response.json()["Items"]
    return RawAF(databases, elements, attributes)


def raw_points(api: str) -> tuple[dict, list[dict]]:
    """The first data server and all its points, read independently of the connector."""
    server = get(api + "/dataservers")["Items"][0]
    return server, get(server["Links"]["Points"], maxCount=100_000)["Items"]


def web_id_of_link(link: str) -> str:
    return link.rstrip("/").rpartition("/")[2]


def expected_element_rows(raw: RawAF) -> dict[str, dict]:
    """The hierarchy rows the raw listing implies: parents and depths derived from the paths alone."""
    by_path = {element["Path"].upper(): element["WebId"] for element in raw.elements}
    rows = {}
    for element in raw.elements:
        segments = element["Path"].lstrip("\\").split("\\")  # AFSERVER, DATABASE, root, child, ...
        depth = len(segments) - 3
        parent_path = ("\\\\" + "\\".join(segments[:-1])).upper()
        rows[element["WebId"]] = {
            "web_id": element["WebId"],
            "parent_web_id": by_path[parent_path] if depth else None,
            "name": element["Name"],
            "path": element["Path"],
            "depth": depth,
            "template_name": element["TemplateName"],
            "category_names": element["CategoryNames"],
            "description": element["Description"],
            "database_web_id": element["DatabaseWebId"],
        }
    return rows


@dataclass(frozen=True)
class AFTables:
    hierarchy: LakeTable
    attributes: LakeTable


def af_tables(root: Path) -> AFTables:
    lake = Lakehouse(str(root))
    return AFTables(lake.table("bronze.pi_af_hierarchy"), lake.table("bronze.pi_af_attributes"))


def run_refresh(api: str, tables: AFTables, **options):
    with PIWebAPIClient(api) as client:
        return refresh_af(client, tables.hierarchy, tables.attributes, **options)


def stored(table: LakeTable, columns: tuple[str, ...] | None = None) -> dict[str, dict]:
    """The table's rows by WebId (without ``ingested_at``); each WebId must appear once."""
    data = read_table(table)
    assert data is not None
    rows = data.drop_columns(["ingested_at"]).to_pylist()
    by_web_id = {row["web_id"]: row for row in rows}
    assert len(by_web_id) == len(rows), "a WebId appears twice"
    if columns is not None:
        by_web_id = {key: {c: row[c] for c in columns} for key, row in by_web_id.items()}
    return by_web_id


@pytest.fixture(scope="module")
def mock_af(mock_pi: RunningMock) -> RawAF:
    return raw_af(mock_pi.api)


def test_hierarchy_holds_exactly_the_mocks_elements(
    mock_pi: RunningMock, mock_af: RawAF, tmp_path: Path
) -> None:
    """The hierarchy table has one row per mock element (count and WebIds equal to an independent HTTP
    listing and to the mock's own model), every column as the listing gives it, and parent WebIds and
    depths consistent with the paths (roots at depth 0 without a parent, each parent one level up)."""
    tables = af_tables(tmp_path)
    run_refresh(mock_pi.api, tables)

    rows = stored(tables.hierarchy, ELEMENT_COLUMNS)
    expected = expected_element_rows(mock_af)
    oracle_count = sum(len(database.elements) for database in mock_pi.state.af.databases)
    assert len(rows) == len(expected) == oracle_count == 140
    assert rows.keys() == expected.keys()
    assert rows == expected
    for row in rows.values():
        if row["parent_web_id"] is None:
            assert row["depth"] == 0 and row["path"].count("\\") == 4  # \\AF\DB\Root
        else:
            parent = rows[row["parent_web_id"]]
            assert row["depth"] == parent["depth"] + 1
            assert row["path"].rpartition("\\")[0] == parent["path"]
    assert Counter(row["depth"] for row in rows.values())[0] == len(mock_af.databases)
    assert max(row["depth"] for row in rows.values()) == 4  # enterprise, site, area, unit, equipment


def test_every_point_is_referenced_by_exactly_one_attribute_row(
    mock_pi: RunningMock, mock_af: RawAF, tmp_path: Path
) -> None:
    """The attribute table holds every attribute of every element (WebIds equal to the listing), and each
    PI point of the data server is the ``point_web_id`` of exactly one row, a "PI Point" attribute of the
    element whose listing names that point, with its config string."""
    tables = af_tables(tmp_path)
    run_refresh(mock_pi.api, tables)

    rows = stored(tables.attributes)
    expected_ids = {a["WebId"] for attributes in mock_af.attributes.values() for a in attributes}
    assert rows.keys() == expected_ids
    _, points = raw_points(mock_pi.api)
    references = Counter(row["point_web_id"] for row in rows.values() if row["point_web_id"] is not None)
    assert references == Counter({point["WebId"]: 1 for point in points})
    for element, attribute in mock_af.point_attributes():
        row = rows[attribute["WebId"]]
        assert row["element_web_id"] == element["WebId"]
        assert row["point_web_id"] == web_id_of_link(attribute["Links"]["Point"])
        assert (row["name"], row["path"], row["config_string"], row["data_reference"]) == (
            attribute["Name"],
            attribute["Path"],
            attribute["ConfigString"],
            "PI Point",
        )
    static = [row for row in rows.values() if row["data_reference"] != "PI Point"]
    assert static and all(row["point_web_id"] is None for row in static)


def test_first_run_adds_everything_and_a_second_run_changes_nothing(
    mock_pi: RunningMock, mock_af: RawAF, tmp_path: Path
) -> None:
    """Metadata counts: the first refresh reports every element and attribute added; a second refresh of
    the same AF reports 0 added, removed and changed, leaves identical rows, and commits nothing (both
    tables keep their version)."""
    tables = af_tables(tmp_path)
    element_count = len(mock_af.elements)
    attribute_count = sum(len(attributes) for attributes in mock_af.attributes.values())

    first = run_refresh(mock_pi.api, tables)
    assert first.databases == len(mock_af.databases) == 1
    assert (first.element_diff.added, first.element_diff.removed, first.element_diff.changed) == (
        element_count,
        0,
        0,
    )
    assert first.attribute_diff.added == attribute_count
    assert first.hierarchy.rows_written == element_count
    assert first.attributes.rows_written == attribute_count
    before = (stored(tables.hierarchy), stored(tables.attributes))

    second = run_refresh(mock_pi.api, tables)
    diff = second.element_diff
    assert (diff.added, diff.removed, diff.changed, diff.unchanged) == (0, 0, 0, element_count)
    attribute_diff = second.attribute_diff
    assert (attribute_diff.added, attribute_diff.removed, attribute_diff.changed) == (0, 0, 0)
    assert (stored(tables.hierarchy), stored(tables.attributes)) == before
    assert second.hierarchy is None and second.attributes is None
    assert (second.element_count, second.attribute_count) == (element_count, attribute_count)
    assert first.hierarchy.version == tables.hierarchy.version()
    assert first.attributes.version == tables.attributes.version()


@pytest.mark.parametrize(
    "overrides", [{"tags": 230}, {"af_databases": 2}], ids=["more_tags", "two_databases"]
)
def test_a_different_af_reports_elements_added_removed_and_changed(
    mock_pi: RunningMock, mock_af: RawAF, make_mock, tmp_path: Path, overrides: dict
) -> None:
    """Refreshing over a different AF (more points, or the units split over two databases) replaces the
    table with exactly the new AF and counts added, removed and changed elements as an independent
    comparison of the two listings does (some added and some removed in both cases)."""
    tables = af_tables(tmp_path)
    run_refresh(mock_pi.api, tables)
    other = make_mock(**overrides)
    other_af = raw_af(other.api)

    result = run_refresh(other.api, tables, max_removed_share=1.0)  # another AF on purpose: no safety limit

    old, new = expected_element_rows(mock_af), expected_element_rows(other_af)
    common = old.keys() & new.keys()
    expected = (
        len(new.keys() - old.keys()),
        len(old.keys() - new.keys()),
        sum(1 for key in common if old[key] != new[key]),
    )
    diff = result.element_diff
    assert (diff.added, diff.removed, diff.changed) == expected
    assert diff.added > 0 and diff.removed > 0
    assert diff.unchanged == len(common) - expected[2]
    assert result.databases == len(other_af.databases)
    assert stored(tables.hierarchy, ELEMENT_COLUMNS) == new


def test_an_element_edited_since_the_last_run_counts_as_changed(
    mock_pi: RunningMock, mock_af: RawAF, tmp_path: Path
) -> None:
    """An element whose stored description differs from PI (as if AF was edited since the last
    run) counts once as changed, and the refresh restores PI's values."""
    tables = af_tables(tmp_path)
    run_refresh(mock_pi.api, tables)
    data = read_table(tables.hierarchy)
    assert data is not None
    rows = data.drop_columns(["ingested_at"]).to_pylist()
    edited = next(row for row in rows if row["depth"] == 4)
    original = dict(edited)
    edited["description"] = "an old description"
    overwrite_table(tables.hierarchy, table_rows(tables.hierarchy, rows))

    result = run_refresh(mock_pi.api, tables)

    diff = result.element_diff
    assert (diff.added, diff.removed, diff.changed, diff.unchanged) == (0, 0, 1, len(rows) - 1)
    assert stored(tables.hierarchy)[original["web_id"]] == original


def test_attributes_come_from_one_paged_search_per_database_trimmed_by_selected_fields(
    mock_pi: RunningMock, tmp_path: Path
) -> None:
    """Through a recording proxy: the refresh lists no element's attributes one by one; it pages through
    the database's FindElementAttributes search (``searchFullHierarchy``, ``selectedFields`` naming the
    stored fields and ``Links.Element``), and the rows equal those of a refresh with one page for all."""
    one_page = af_tables(tmp_path / "one_page")
    run_refresh(mock_pi.api, one_page)
    tables = af_tables(tmp_path / "paged")
    with answer_proxy(mock_pi.url) as proxy, PIWebAPIClient(proxy.api) as client:
        result = refresh_af(client, tables.hierarchy, tables.attributes, page_size=100)
    paths = [exchange.path for exchange in proxy.exchanges]
    assert not [path for path in paths if path.endswith("/attributes")]
    searches = [e for e in proxy.exchanges if e.path.endswith("/elementattributes")]
    assert len(searches) == result.attribute_count // 100 + 1
    for search in searches:
        query = dict(search.query)
        assert query["searchFullHierarchy"] == "true" and query["maxCount"] == "100"
        assert set(query["selectedFields"].split(";")) == set(ATTRIBUTE_FIELDS)
    assert stored(tables.attributes) == stored(one_page.attributes)
    assert stored(tables.hierarchy) == stored(one_page.hierarchy)


def test_attributes_without_an_element_link_find_their_element_by_path(
    mock_pi: RunningMock, tmp_path: Path
) -> None:
    """A server that leaves ``Links.Element`` out of the search's attributes: each row still names its
    element, found by the element part of the attribute's path."""
    expected = af_tables(tmp_path / "expected")
    run_refresh(mock_pi.api, expected)

    def without_element_links(exchange):
        if exchange.path.endswith("/elementattributes"):
            for attribute in exchange.answer["Items"]:
                attribute["Links"].pop("Element", None)
        return exchange.answer

    tables = af_tables(tmp_path / "stripped")
    with answer_proxy(mock_pi.url, without_element_links) as proxy:
        run_refresh(proxy.api, tables)
    assert stored(tables.attributes) == stored(expected.attributes)
