"""Discovery calls of the PI client against the mock over real HTTP."""

from __future__ import annotations

import gc

import msgspec
import pytest
import requests

from osipi_dagster.contract import to_ns
from osipi_dagster.pi import PIWebAPIClient
from osipi_dagster.pi.discovery import element_parent

WIDE = ("2000-01-01T00:00:00Z", "2100-01-01T00:00:00Z")
WINDOW = ("2025-01-05T00:00:00Z", "2025-01-06T00:00:00Z")


@pytest.fixture(scope="module")
def client(mock_pi):
    with PIWebAPIClient(mock_pi.api) as client:
        yield client


@pytest.fixture(scope="module")
def server(client):
    (server,) = client.data_servers()
    return server


@pytest.fixture(scope="module")
def database(client):
    (asset_server,) = client.asset_servers()
    (database,) = client.asset_databases(asset_server.web_id)
    return database


def test_data_server_and_points_paged(client, server, mock_pi):
    assert client.data_server(server.name).web_id == server.web_id
    whole = list(client.points(server.web_id))
    assert len(whole) == 200
    assert [p.web_id for p in client.points(server.web_id, page_size=7)] == [p.web_id for p in whole]
    assert {p.point_type for p in whole} >= {"Float32", "Digital", "String"}
    pv = list(client.points(server.web_id, name_filter="*.PV", page_size=5))
    assert pv and all(p.name.endswith(".PV") for p in pv)
    assert [p.name for p in pv] == [p.name for p in whole if p.name.endswith(".PV")]
    assert client.point(whole[3].path).web_id == whole[3].web_id


def test_point_query(client, server):
    found = list(client.search_points(server.web_id, "name:=*.PV", page_size=9))
    assert found and all(p.name.endswith(".PV") for p in found)
    assert sorted(p.web_id for p in found) == sorted(
        p.web_id for p in client.points(server.web_id, name_filter="*.PV")
    )


def test_element_hierarchy_is_whole_with_parents(client, database, mock_pi):
    elements = client.elements(database.web_id, page_size=7)
    info = requests.get(f"{mock_pi.url}/admin/info", timeout=10).json()
    assert len(elements) == info["AssetServer"]["Databases"][0]["ElementCount"]
    assert [e.web_id for e in elements] == [e.web_id for e in client.elements(database.web_id)]
    by_id = {e.web_id: e for e in elements}
    for element in elements:
        if element.depth == 0:
            assert element.parent_web_id is None
        else:
            parent = by_id[element.parent_web_id]
            assert element.path.rsplit("\\", 1)[0] == parent.path
            assert element.depth == parent.depth + 1
    assert any(e.template_name for e in elements)
    assert any(e.category_names for e in elements)


def test_element_pages_find_parents_listed_after_their_children(client, database):
    """PI sorts the listing by name, so a child can come pages before its parent: ``element_pages`` gives
    each element its ``Links.Parent`` and ``element_parent`` the parent at its path once every page is read,
    which is what ``elements`` returns."""
    pages = list(client.element_pages(database.web_id, page_size=7))
    listed = [element for page in pages for element in page]
    by_path = {element.path.upper(): element.web_id for element in listed}

    resolved = [
        msgspec.structs.replace(e, parent_web_id=element_parent(e.path, e.parent_web_id, by_path))
        for e in listed
    ]

    assert {len(page) for page in pages[:-1]} == {7}
    assert resolved == client.elements(database.web_id, page_size=7)
    position = {element.web_id: at for at, element in enumerate(listed)}
    assert any(position[e.parent_web_id] > at for at, e in enumerate(resolved) if e.parent_web_id)


def test_element_hierarchy_is_never_capped_at_1000(make_mock):
    mock = make_mock(tags=3000)
    with PIWebAPIClient(mock.api) as client:
        (asset_server,) = client.asset_servers()
        (database,) = client.asset_databases(asset_server.web_id)
        elements = client.elements(database.web_id)
        info = requests.get(f"{mock.url}/admin/info", timeout=10).json()
    assert len(elements) == info["AssetServer"]["Databases"][0]["ElementCount"] > 1000


def test_attributes_resolve_their_points(client, server, database):
    points = {p.path.upper(): p for p in client.points(server.web_id)}
    elements = client.elements(database.web_id)
    resolved = 0
    for element in [e for e in elements if e.template_name][:10]:
        for attribute in client.attributes(element.web_id):
            if attribute.data_reference_plug_in == "PI Point":
                assert attribute.point_path is not None
                assert points[attribute.point_path.upper()].web_id == attribute.point_web_id
                resolved += 1
            else:
                assert attribute.point_web_id is None
    assert resolved


def test_listed_objects_are_left_out_of_the_garbage_collectors_walks(client, server, database):
    """A catalog read decodes hundreds of thousands of objects: none of them is tracked (they hold only
    strings, numbers, and lists and dicts of strings, so they cannot form a cycle)."""
    (page, *_) = client.element_attributes(database.web_id, page_size=50)
    listed = [next(iter(client.points(server.web_id))), *client.elements(database.web_id)[:3], *page]
    assert not any(gc.is_tracked(item) for item in listed)
    assert any(getattr(item, "category_names", None) for item in listed)


def test_enumeration_sets(client, server):
    sets = {s.name: s for s in client.enumeration_sets(server)}
    system = {v.value: v.name for v in sets["SYSTEM"].values}
    assert system[246] == "I/O Timeout" and system[254] == "Shutdown"
    assert len(sets) > 1  # the digital sets of the digital points


@pytest.fixture(scope="module")
def all_frames(client, database):
    return list(client.event_frames(database.web_id, *WIDE, search_mode="Overlapped"))


def _ns(value: str | None) -> int:
    return to_ns(value) if value else 2**63


@pytest.mark.parametrize(
    "mode, keep",
    [
        ("Overlapped", lambda s, e, a, b: a <= e and b >= s),
        ("StartInclusive", lambda s, e, a, b: s <= a <= e),
        ("EndInclusive", lambda s, e, a, b: s <= b <= e),
        ("Inclusive", lambda s, e, a, b: s <= a and b <= e),
        ("InProgress", lambda s, e, a, b: s <= a <= e and b == 2**63),
        ("ForwardFromStartTime", lambda s, e, a, b: a >= s),
        ("BackwardFromStartTime", lambda s, e, a, b: a <= s),
        ("ForwardFromEndTime", lambda s, e, a, b: b >= s),
        ("BackwardFromEndTime", lambda s, e, a, b: b <= s),
        ("ForwardInProgress", lambda s, e, a, b: a >= s and b == 2**63),
        ("BackwardInProgress", lambda s, e, a, b: a <= s and b == 2**63),
    ],
)
def test_event_frame_search_modes(client, database, all_frames, mode, keep):
    start, end = to_ns(WINDOW[0]), to_ns(WINDOW[1])
    directional = mode.startswith(("Forward", "Backward"))
    found = list(
        client.event_frames(
            database.web_id, WINDOW[0], None if directional else WINDOW[1], search_mode=mode, page_size=11
        )
    )
    expected = {f.web_id for f in all_frames if keep(start, end, _ns(f.start_time), _ns(f.end_time))}
    assert {f.web_id for f in found} == expected
    assert len(found) == len(expected), "paging repeated a frame"


def test_event_frame_fields_and_filters(client, database, all_frames):
    assert any(f.is_open for f in all_frames) and any(not f.is_open for f in all_frames)
    for frame in all_frames:
        assert frame.end_time is None or not frame.end_time.startswith("9999")
        if frame.ref_element_web_ids:
            assert frame.primary_element_web_id in frame.ref_element_web_ids
    template = next(f.template_name for f in all_frames if f.template_name)
    by_template = list(client.event_frames(database.web_id, *WIDE, template_name=template))
    assert {f.web_id for f in by_template} == {f.web_id for f in all_frames if f.template_name == template}
    category = next(c for f in all_frames for c in f.category_names)
    by_category = list(client.event_frames(database.web_id, *WIDE, category_name=category))
    assert {f.web_id for f in by_category} == {f.web_id for f in all_frames if category in f.category_names}
    severity = next(f.severity for f in all_frames if f.severity != "None")
    by_severity = list(client.event_frames(database.web_id, *WIDE, severities=[severity]))
    assert {f.web_id for f in by_severity} == {f.web_id for f in all_frames if f.severity == severity}
    prefix = all_frames[0].name[:5]
    by_name = list(client.event_frames(database.web_id, *WIDE, name_filter=prefix + "*"))
    assert {f.web_id for f in by_name} == {f.web_id for f in all_frames if f.name.startswith(prefix)}
    acknowledged = list(client.event_frames(database.web_id, *WIDE, is_acknowledged=True))
    assert {f.web_id for f in acknowledged} == {f.web_id for f in all_frames if f.is_acknowledged}


def test_event_frame_attributes(client, all_frames):
    frame = next(f for f in all_frames if f.template_name)
    attributes = client.event_frame_attributes(frame.web_id)
    assert attributes
