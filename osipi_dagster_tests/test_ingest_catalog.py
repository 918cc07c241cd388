"""``refresh_point_catalog`` and ``shard_points``: the tag catalog against the mock, over real HTTP and
real Delta tables in ``tmp_path``.

Expectations come from an independent plain-``requests`` listing of the mock's points and AF attributes
(see ``test_ingest_af``), and from an independent PI-wildcard matcher (a regex, not ``fnmatch``).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from osipi_dagster.ingest.af import refresh_af
from osipi_dagster.ingest.catalog import (
    CatalogResult,
    PointFilter,
    _HashIndex,
    refresh_point_catalog,
    shard_points,
)
from osipi_dagster.ingest.rows import table_rows
from osipi_dagster.ingest.shards import shard_keys, shard_of
from osipi_dagster.lake import Lakehouse, LakeTable, overwrite_table, read_table
from osipi_dagster.mock.server import RunningMock
from osipi_dagster.pi import PIWebAPIClient
from osipi_dagster_tests.test_ingest_af import RawAF, get, raw_af, raw_points, web_id_of_link

T1 = datetime(2025, 1, 6, 12, tzinfo=UTC)
T2 = T1 + timedelta(hours=1)
T3 = T2 + timedelta(hours=1)
SHARDS = 16


def pi_wildcard(pattern: str) -> re.Pattern[str]:
    """A PI name pattern (``*`` any run, ``?`` one character, case-insensitive) as a full-match regex."""
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(body, re.IGNORECASE | re.DOTALL)


def matches_any(value: str, patterns) -> bool:
    return any(pi_wildcard(pattern).fullmatch(value) for pattern in patterns)


@dataclass(frozen=True)
class Reference:
    """One AF attribute that references a point, as the raw listing shows it."""

    attribute_path: str
    attribute_name: str
    template: str


@dataclass(frozen=True)
class RawCatalog:
    """The mock's data server, points and the AF references of each point, from plain HTTP."""

    server: dict
    points: list[dict]
    references: dict[str, list[Reference]]  # point WebId -> references

    def expected(self, point_filter: PointFilter) -> set[str]:
        """The WebIds the filter keeps, computed independently of the connector."""
        kept = set()
        for point in self.points:
            refs = self.references.get(point["WebId"], [])
            if not matches_any(point["Name"], point_filter.include):
                continue
            if matches_any(point["Name"], point_filter.exclude):
                continue
            if point_filter.af_templates and not any(
                matches_any(r.template, point_filter.af_templates) for r in refs
            ):
                continue
            if point_filter.af_attribute_names and not any(
                matches_any(r.attribute_name, point_filter.af_attribute_names) for r in refs
            ):
                continue
            kept.add(point["WebId"])
        return kept

    def shard(self, point: dict, shard_count: int = SHARDS) -> str:
        return shard_of(f"{self.server['Id']}:{point['Id']}", shard_count)


def raw_catalog(api: str, af: RawAF | None = None) -> RawCatalog:
    af = af or raw_af(api)
    server, points = raw_points(api)
    references: dict[str, list[Reference]] = {}
    for element, attribute in af.point_attributes():
        reference = Reference(attribute["Path"], attribute["Name"], element["TemplateName"])
        references.setdefault(web_id_of_link(attribute["Links"]["Point"]), []).append(reference)
    return RawCatalog(server, points, references)


@dataclass(frozen=True)
class Lake:
    points: LakeTable
    hierarchy: LakeTable
    attributes: LakeTable

    def refresh_af(self, api: str, **options) -> None:
        with PIWebAPIClient(api) as client:
            refresh_af(client, self.hierarchy, self.attributes, **options)

    def refresh(
        self,
        api: str,
        now: datetime,
        point_filter: PointFilter | None = None,
        shard_count: int = SHARDS,
        confirm_removed: int | None = None,
    ) -> CatalogResult:
        with PIWebAPIClient(api) as client:
            return refresh_point_catalog(
                client,
                self.points,
                af_attributes_table=self.attributes,
                hierarchy_table=self.hierarchy,
                shard_count=shard_count,
                point_filter=point_filter or PointFilter(),
                now=now,
                confirm_removed=confirm_removed,
            )

    def rows(self) -> dict[str, dict]:
        """The catalog by WebId; fails if a WebId appears twice."""
        data = read_table(self.points)
        assert data is not None
        rows = data.to_pylist()
        by_web_id = {row["web_id"]: row for row in rows}
        assert len(by_web_id) == len(rows), "a WebId appears twice in the catalog"
        return by_web_id

    def replace_rows(self, rows) -> None:
        """Rewrite the catalog (to simulate history the mock cannot produce)."""
        rows = [{k: v for k, v in row.items() if k != "ingested_at"} for row in rows]
        overwrite_table(self.points, table_rows(self.points, rows))


def make_lake(root: Path) -> Lake:
    lakehouse = Lakehouse(str(root))
    return Lake(
        lakehouse.table("bronze.pi_points"),
        lakehouse.table("bronze.pi_af_hierarchy"),
        lakehouse.table("bronze.pi_af_attributes"),
    )


@pytest.fixture(scope="module")
def mock_af_raw(mock_pi: RunningMock) -> RawAF:
    return raw_af(mock_pi.api)


@pytest.fixture(scope="module")
def mock_catalog(mock_pi: RunningMock, mock_af_raw: RawAF) -> RawCatalog:
    return raw_catalog(mock_pi.api, mock_af_raw)


@pytest.fixture
def lake(mock_pi: RunningMock, tmp_path: Path) -> Lake:
    """Fresh Delta tables with the AF tables of ``mock_pi`` already refreshed."""
    lake = make_lake(tmp_path)
    lake.refresh_af(mock_pi.api)
    return lake


def active(rows: dict[str, dict]) -> set[str]:
    return {web_id for web_id, row in rows.items() if not row["is_deleted"]}


def test_every_point_appears_once_with_its_shard_and_af_attributes(
    mock_pi: RunningMock, mock_catalog: RawCatalog, lake: Lake
) -> None:
    """Without filters the catalog holds every point of the data server exactly once, with the listing's
    fields, the shard ``shard_of("<server Id>:<point Id>", N)``, the path of the one AF attribute that
    references it, first_seen = last_seen = now, not deleted; the result counts all as added."""
    result = lake.refresh(mock_pi.api, T1)

    rows = lake.rows()
    assert rows.keys() == {point["WebId"] for point in mock_catalog.points}
    assert len(rows) == len(mock_pi.state.archive.points) == 200
    for point in mock_catalog.points:
        row = rows[point["WebId"]]
        assert (row["point_id"], row["name"], row["path"], row["point_type"], row["descriptor"]) == (
            point["Id"],
            point["Name"],
            point["Path"],
            point["PointType"],
            point["Descriptor"],
        )
        assert row["data_server_web_id"] == mock_catalog.server["WebId"]
        assert row["tag_shard"] == mock_catalog.shard(point)
        assert row["af_attribute_paths"] == [
            r.attribute_path for r in mock_catalog.references[point["WebId"]]
        ]
        assert len(row["af_attribute_paths"]) == 1
        assert (row["first_seen"], row["last_seen"], row["is_deleted"]) == (T1, T1, False)
    shards = Counter(mock_catalog.shard(point) for point in mock_catalog.points)
    assert (result.active, result.added, result.deleted, result.renamed, result.excluded) == (
        200,
        200,
        0,
        0,
        0,
    )
    assert result.shard_counts == dict(sorted(shards.items()))
    assert len(shards) == SHARDS  # 200 points spread over every shard
    assert result.write is not None and result.write.rows_written == 200


def test_the_shard_count_is_the_one_asked_for(
    mock_pi: RunningMock, mock_catalog: RawCatalog, lake: Lake
) -> None:
    """With another shard count every point's shard is ``shard_of(identity, N)`` for that N, within the
    keys s00..s(N-1)."""
    result = lake.refresh(mock_pi.api, T1, shard_count=5)

    rows = lake.rows()
    assert {web_id: row["tag_shard"] for web_id, row in rows.items()} == {
        point["WebId"]: mock_catalog.shard(point, 5) for point in mock_catalog.points
    }
    assert set(result.shard_counts) == set(shard_keys(5))
    assert sum(result.shard_counts.values()) == 200


FILTERS = {
    "include": PointFilter(include=["plant1*"]),
    "exclude": PointFilter(exclude=["*.PV", "*.mode"]),
    "include_and_exclude_with_?": PointFilter(include=["Plant?.Area1.Unit0?.FIC*"], exclude=["*.SP"]),
    "af_template": PointFilter(af_templates=["Flow Controller"]),
    "af_template_wildcard": PointFilter(af_templates=["*pump", "level transmitter"]),
    "af_attribute_name": PointFilter(af_attribute_names=["Feed flow"]),
    "af_attribute_name_wildcard": PointFilter(af_attribute_names=["*temperature*"]),
    "everything_combined": PointFilter(
        include=["Plant1*", "Plant2*"],
        exclude=["*Unit01*"],
        af_templates=["Flow Controller", "Centrifugal Pump"],
        af_attribute_names=["Feed*"],
    ),
}


@pytest.mark.parametrize("point_filter", FILTERS.values(), ids=FILTERS.keys())
def test_filters_keep_exactly_the_expected_points(
    mock_pi: RunningMock, mock_catalog: RawCatalog, lake: Lake, point_filter: PointFilter
) -> None:
    """Include and exclude name patterns (PI wildcards, any case), AF element templates and AF attribute
    names keep exactly the points an independent evaluation over the raw listing keeps; the others are
    counted as excluded and, never having been seen, have no row."""
    expected = mock_catalog.expected(point_filter)
    assert 0 < len(expected) < len(mock_catalog.points)

    result = lake.refresh(mock_pi.api, T1, point_filter)

    rows = lake.rows()
    assert rows.keys() == active(rows) == expected
    assert (result.active, result.added, result.excluded) == (
        len(expected),
        len(expected),
        200 - len(expected),
    )
    assert sum(result.shard_counts.values()) == len(expected)
    assert shard_points(lake.points, "s00").read == sorted(
        point["WebId"]
        for point in mock_catalog.points
        if point["WebId"] in expected and mock_catalog.shard(point) == "s00"
    )


def test_first_seen_is_kept_and_last_seen_moves(mock_pi: RunningMock, lake: Lake) -> None:
    """A second refresh keeps every point's first_seen, moves last_seen to the new now, and adds,
    deletes and renames nothing."""
    lake.refresh(mock_pi.api, T1)
    result = lake.refresh(mock_pi.api, T2)

    rows = lake.rows()
    assert len(rows) == 200
    assert {(row["first_seen"], row["last_seen"], row["is_deleted"]) for row in rows.values()} == {
        (T1, T2, False)
    }
    assert (result.active, result.added, result.deleted, result.renamed) == (200, 0, 0, 0)


def test_a_point_that_disappears_is_kept_deleted_and_counted(
    mock_pi: RunningMock, mock_catalog: RawCatalog, lake: Lake
) -> None:
    """Points that drop out (here by a new exclude pattern) keep their row with is_deleted = true and
    their last_seen, are counted as deleted (once) and leave the shard lists; when they come back they are
    active again with their first first_seen, and not counted as added."""
    lake.refresh(mock_pi.api, T1)
    point_filter = PointFilter(exclude=["Plant1.Area1.Unit01.*"])
    gone = {p["WebId"] for p in mock_catalog.points} - mock_catalog.expected(point_filter)
    assert 0 < len(gone) < 200

    second = lake.refresh(mock_pi.api, T2, point_filter)
    rows = lake.rows()
    assert len(rows) == 200 and active(rows) == rows.keys() - gone
    for web_id in gone:
        assert (rows[web_id]["is_deleted"], rows[web_id]["first_seen"], rows[web_id]["last_seen"]) == (
            True,
            T1,
            T1,
        )
    assert (second.active, second.added, second.deleted, second.renamed, second.excluded) == (
        200 - len(gone),
        0,
        len(gone),
        0,
        len(gone),
    )
    assert sum(second.shard_counts.values()) == 200 - len(gone)
    every_shard = [web_id for shard in shard_keys(SHARDS) for web_id in shard_points(lake.points, shard).read]
    assert sorted(every_shard) == sorted(rows.keys() - gone)

    third = lake.refresh(mock_pi.api, T3, point_filter)  # still gone: not counted again
    assert (third.deleted, third.added) == (0, 0)
    assert {web_id: lake.rows()[web_id]["last_seen"] for web_id in gone} == dict.fromkeys(gone, T1)

    back = lake.refresh(mock_pi.api, T3)
    rows = lake.rows()
    assert active(rows) == rows.keys() and len(rows) == 200
    assert {rows[web_id]["first_seen"] for web_id in gone} == {T1}
    assert (back.added, back.deleted, back.renamed) == (0, 0, 0)


def test_a_renamed_point_keeps_first_seen_and_its_old_row(
    mock_pi: RunningMock, mock_catalog: RawCatalog, lake: Lake
) -> None:
    """A point whose stored row has the same server and point id but another WebId and name (a rename in
    PI) is counted as renamed (not added, not deleted): the new row carries the old first_seen and the
    old row is kept with is_deleted = true and its last_seen."""
    lake.refresh(mock_pi.api, T1)
    rows = lake.rows()
    point = mock_catalog.points[7]
    old = {
        **rows.pop(point["WebId"]),
        "web_id": "F1DP-OLD-WEBID",
        "name": "Old.Name",
        "first_seen": T1 - timedelta(days=30),
    }
    lake.replace_rows([*rows.values(), old])

    result = lake.refresh(mock_pi.api, T2)

    rows = lake.rows()
    assert len(rows) == 201
    assert (result.active, result.added, result.renamed, result.deleted) == (200, 0, 1, 0)
    new = rows[point["WebId"]]
    assert (new["name"], new["first_seen"], new["last_seen"], new["is_deleted"]) == (
        point["Name"],
        T1 - timedelta(days=30),
        T2,
        False,
    )
    kept = rows["F1DP-OLD-WEBID"]
    assert (kept["name"], kept["point_id"], kept["last_seen"], kept["is_deleted"]) == (
        "Old.Name",
        point["Id"],
        T1,
        True,
    )
    assert "F1DP-OLD-WEBID" not in shard_points(lake.points, new["tag_shard"]).read
    assert point["WebId"] in shard_points(lake.points, new["tag_shard"]).read


def test_renames_and_deletions_between_two_servers_are_told_apart(
    mock_pi: RunningMock, mock_catalog: RawCatalog, make_mock, tmp_path: Path
) -> None:
    """Against a mock with fewer tags and the same seed (same data server, point ids 1..150 kept, names
    laid out differently, so some WebIds change), ids that survive under another WebId count as renamed
    and keep first_seen and shard, ids that vanish count as deleted, and every old row is kept."""
    lake = make_lake(tmp_path)
    lake.refresh_af(mock_pi.api)
    lake.refresh(mock_pi.api, T1)
    smaller = make_mock(tags=150)
    other = raw_catalog(smaller.api)
    assert other.server["WebId"] == mock_catalog.server["WebId"]
    old_by_id = {point["Id"]: point["WebId"] for point in mock_catalog.points}
    renamed = [p for p in other.points if old_by_id[p["Id"]] != p["WebId"]]
    assert renamed and len(renamed) < 150

    lake.refresh_af(smaller.api, max_removed_share=1.0)  # the smaller server's AF, on purpose
    result = lake.refresh(smaller.api, T2, confirm_removed=50)  # 50 of 200 points deleted on purpose

    rows = lake.rows()
    assert (result.active, result.added, result.renamed, result.deleted) == (150, 0, len(renamed), 50)
    assert len(rows) == 200 + len(renamed)
    assert active(rows) == {point["WebId"] for point in other.points}
    assert {web_id for web_id, row in rows.items() if row["is_deleted"]} == set(old_by_id.values()) - active(
        rows
    )
    for point in other.points:
        row = rows[point["WebId"]]
        assert (row["first_seen"], row["last_seen"]) == (T1, T2)
        assert row["tag_shard"] == other.shard(point) == mock_catalog.shard(point)
        assert row["af_attribute_paths"] == [r.attribute_path for r in other.references[point["WebId"]]]


def test_a_rename_does_not_hide_another_deletion(
    mock_pi: RunningMock, mock_catalog: RawCatalog, lake: Lake
) -> None:
    """A point that comes back under a new WebId while its old row was already deleted (e.g. renamed while
    filtered out) is a rename, and a point that disappears in the same run is still counted as deleted."""
    lake.refresh(mock_pi.api, T1)
    rows = lake.rows()
    back, leaving = mock_catalog.points[3], mock_catalog.points[40]
    old = {**rows.pop(back["WebId"]), "web_id": "F1DP-OLD-WEBID", "name": "Old.Name", "is_deleted": True}
    lake.replace_rows([*rows.values(), old])

    result = lake.refresh(mock_pi.api, T2, PointFilter(exclude=[leaving["Name"]]))

    rows = lake.rows()
    assert rows[leaving["WebId"]]["is_deleted"] and rows["F1DP-OLD-WEBID"]["is_deleted"]
    assert not rows[back["WebId"]]["is_deleted"]
    assert (result.added, result.renamed, result.deleted, result.excluded) == (0, 1, 1, 1)


def test_shard_points_lists_only_active_points_of_the_shard(
    mock_pi: RunningMock, mock_catalog: RawCatalog, lake: Lake, tmp_path: Path
) -> None:
    """``shard_points`` gives, sorted, the WebIds of exactly the active points of one shard (deleted rows
    left out), the shards together cover every active point once, and it refuses a missing table."""
    with pytest.raises(LookupError, match="pi_points"):
        shard_points(lake.points, "s00")
    lake.refresh(mock_pi.api, T1)
    point_filter = PointFilter(exclude=["*.PV"])
    kept = mock_catalog.expected(point_filter)
    lake.refresh(mock_pi.api, T2, point_filter, confirm_removed=len(mock_catalog.points) - len(kept))

    listed = []
    for shard in shard_keys(SHARDS):
        web_ids = shard_points(lake.points, shard).read
        assert web_ids == sorted(
            p["WebId"] for p in mock_catalog.points if p["WebId"] in kept and mock_catalog.shard(p) == shard
        )
        listed += web_ids
    assert sorted(listed) == sorted(kept)
    assert shard_points(lake.points, "s99").read == []


def test_a_point_renamed_twice_is_one_rename_and_no_deletion(
    mock_pi: RunningMock, mock_catalog: RawCatalog, lake: Lake
) -> None:
    """With two earlier rows of the same server and point id (one already deleted by an older rename, one
    active), a new WebId is one rename of the active row: nothing counted as deleted, both old rows kept
    deleted, and the first first_seen carried over."""
    lake.refresh(mock_pi.api, T1)
    rows = lake.rows()
    point = mock_catalog.points[11]
    current = rows.pop(point["WebId"])
    oldest = {**current, "web_id": "F1DP-OLDEST", "first_seen": T1 - timedelta(days=9), "is_deleted": True}
    middle = {**current, "web_id": "F1DP-MIDDLE", "first_seen": T1 - timedelta(days=9)}
    # Both orders: which row the table lists last must not matter.
    for history in ([oldest, middle], [middle, oldest]):
        lake.replace_rows([*rows.values(), *history])

        result = lake.refresh(mock_pi.api, T2)

        stored = lake.rows()
        assert (result.added, result.renamed, result.deleted) == (0, 1, 0)
        assert stored["F1DP-OLDEST"]["is_deleted"] and stored["F1DP-MIDDLE"]["is_deleted"]
        assert stored[point["WebId"]]["first_seen"] == T1 - timedelta(days=9)
        assert not stored[point["WebId"]]["is_deleted"]


@pytest.mark.parametrize("template", ["Pump", "Equipment"])
def test_an_af_template_filter_keeps_points_of_derived_templates(
    mock_pi: RunningMock, mock_af_raw: RawAF, lake: Lake, template: str
) -> None:
    """An AF template filter keeps the points of elements whose template derives from it, as PI's own
    ``templateName`` search finds them (the expectation is the mock's templateName answer)."""
    expected = set()
    for database in mock_af_raw.databases:
        elements = get(database["Links"]["Elements"], searchFullHierarchy="true", templateName=template)
        for element in elements["Items"]:
            expected |= {
                web_id_of_link(attribute["Links"]["Point"])
                for attribute in mock_af_raw.attributes[element["WebId"]]
                if attribute["DataReferencePlugIn"] == "PI Point"
            }
    assert expected

    lake.refresh(mock_pi.api, T1, PointFilter(af_templates=[template]))

    assert active(lake.rows()) == expected


def test_a_page_of_points_is_found_in_the_previous_catalog_as_one_by_one() -> None:
    """The previous catalog's index finds a page's WebIds at once as it finds each, hash collisions
    (CPython hashes -1 and -2 alike) and repeated values (the preferred position first) included."""
    values = [-2, 5, -1, 7, -2, "E1", "E2", "E1"]
    for index in (_HashIndex(values), _HashIndex(values, prefer=np.array([1, 0, 1, 1, 0, 0, 1, 1], bool))):
        wanted = [-1, -2, 5, 6, "E1", "E2", "E3", -3, 7]
        assert index.find_all(wanted) == [index.find(value) for value in wanted]
        assert index.find_all(wanted)[:2] == [2, index.find(-2)] and index.find(-2) in (0, 4)
    assert _HashIndex([]).find_all(["E1"]) == [None]
