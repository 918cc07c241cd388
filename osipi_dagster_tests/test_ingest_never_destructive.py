"""An empty or shrunken answer from PI never deletes history (issue: "a wrong answer from PI must never
delete").

Real mock over HTTP, a real proxy in front of it where PI must answer something odd (an empty point list,
as after a permission change), real Delta tables. The catalog refuses a refresh that would delete too many
points; the time series keeps the rows of points the catalog keeps as deleted; a shard the catalog lists
empty never empties its slice; the AF refresh and the notification rules refuse an answer that removes too
much of what the lake holds.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import date, datetime
from pathlib import Path

import pytest

from osipi_dagster.ingest.af import AFResult, AFShrinkError, refresh_af
from osipi_dagster.ingest.alarms_rules import (
    NotificationRulesResult,
    NotificationRulesShrinkError,
    refresh_notification_rules,
)
from osipi_dagster.ingest.catalog import (
    CatalogResult,
    CatalogShrinkError,
    PointFilter,
    refresh_point_catalog,
    shard_points,
)
from osipi_dagster.ingest.timeseries import EmptyShardError, PartitionResult, ingest_partition
from osipi_dagster.lake import Lakehouse, read_table
from osipi_dagster.mock.server import RunningMock
from osipi_dagster.pi import PIWebAPIClient
from osipi_dagster.pi.options import ReadOptions
from osipi_dagster_tests.conftest import TEST_NOW
from osipi_dagster_tests.timeseries_helpers import SECOND_NS, assert_same_rows, day_start_ns, lake_rows, truth
from osipi_dagster_tests.untrusted_server import Answer, Exchange, Proxy, empty_listing

NOW = datetime.fromisoformat(TEST_NOW.replace("Z", "+00:00"))
DAY = date(2025, 1, 5)
SHARDS = 4
SHARD = "s01"


def refresh(api: str, lake: Lakehouse, **options) -> CatalogResult:
    with PIWebAPIClient(api, backoff_base_s=0.01) as client:
        return refresh_point_catalog(
            client,
            lake.table("bronze.pi_points"),
            af_attributes_table=lake.table("bronze.pi_af_attributes"),
            hierarchy_table=lake.table("bronze.pi_af_hierarchy"),
            shard_count=SHARDS,
            point_filter=options.pop("point_filter", PointFilter()),
            now=NOW,
            **options,
        )


def ingest(api: str, lake: Lakehouse, *, prune: bool = False) -> PartitionResult:
    points = shard_points(lake.table("bronze.pi_points"), SHARD)
    with PIWebAPIClient(api, backoff_base_s=0.01) as client:
        return ingest_partition(
            client,
            timeseries=lake.table("bronze.pi_timeseries"),
            watermarks=lake.table("checkpoints.pi_watermarks"),
            web_ids=points.read,
            kept_web_ids=points.keep,
            prune=prune,
            day=DAY,
            shard=SHARD,
            now=NOW,
            settings=ReadOptions(values_per_request=50_000),
        )


def day_truth(api: str, web_ids: list[str]) -> Counter:
    start = day_start_ns(DAY)
    return truth(api, web_ids, start, start + 86_400 * SECOND_NS)


@pytest.fixture
def lake(tmp_path: Path) -> Lakehouse:
    return Lakehouse(str(tmp_path / "lake"))


def test_an_empty_point_list_from_pi_is_refused_and_writes_nothing(
    mock_pi: RunningMock, lake: Lakehouse
) -> None:
    """A proxy answers every point listing with no point (a permission change on the PI server): the
    refresh fails naming the counts and how to confirm, and the catalog keeps its version and rows."""
    refresh(mock_pi.api, lake)
    points = lake.table("bronze.pi_points")
    version, rows = points.version(), read_table(points)

    proxy = Proxy(mock_pi.url, answer=empty_listing("/points"))
    try:
        with pytest.raises(CatalogShrinkError) as error:
            refresh(proxy.api, lake)
    finally:
        proxy.close()

    message = str(error.value)
    assert "Refusing to mark 200 of the 200 active points deleted (all of them" in message
    assert "PI Web API listed 0 points" in message and "confirm_removed_points: 200" in message
    assert "Nothing was written" in message
    assert points.version() == version and read_table(points) == rows


def test_a_filter_typo_is_refused_naming_the_filters(mock_pi: RunningMock, lake: Lakehouse) -> None:
    refresh(mock_pi.api, lake)
    version = lake.table("bronze.pi_points").version()

    with pytest.raises(CatalogShrinkError, match=r"the filters \(include=\['Plant9\*'\]\) kept 0"):
        refresh(mock_pi.api, lake, point_filter=PointFilter(include=["Plant9*"]))

    assert lake.table("bronze.pi_points").version() == version


def test_a_shrink_above_the_share_needs_the_exact_count(make_mock, lake: Lakehouse) -> None:
    """200 points, then a server listing 150 of them: 25 % removed is above the default 10 %. A wrong count
    is refused; the exact count, or a larger allowed share, goes through and marks the 50 deleted."""
    refresh(make_mock().api, lake)
    smaller = make_mock(tags=150)  # same seed: points 1..150 are the same points
    with pytest.raises(CatalogShrinkError, match="Refusing to mark 50 of the 200 active points deleted"):
        refresh(smaller.api, lake)
    with pytest.raises(CatalogShrinkError):
        refresh(smaller.api, lake, confirm_removed=49)

    assert refresh(smaller.api, lake, confirm_removed=50).deleted == 50
    refresh(make_mock(tags=140).api, lake, max_removed_share=0.10)  # 10 of 150: not above 10 %


def test_a_closed_day_keeps_the_rows_of_deleted_points_unless_pruned(make_mock, lake: Lakehouse) -> None:
    """The nightly close-day run after points disappeared from PI: the day is replaced for the points that
    still exist, and the deleted points' values (which PI can no longer give) stay; pruning on purpose
    deletes them."""
    full = make_mock()
    refresh(full.api, lake)
    before = shard_points(lake.table("bronze.pi_points"), SHARD).read
    ingest(full.api, lake)
    table = lake.table("bronze.pi_timeseries")
    stored_before = lake_rows(table, DAY, SHARD)
    smaller = make_mock(tags=150)
    refresh(smaller.api, lake, confirm_removed=50)
    points = shard_points(lake.table("bronze.pi_points"), SHARD)
    # The smaller server lays names out differently: some points are renamed (their old WebIds are read
    # again under the new ones), the others of the 50 are gone (their rows are kept).
    gone = set(before) & points.keep
    renamed = set(before) - set(points.read) - points.keep
    assert gone and renamed

    result = ingest(smaller.api, lake)

    stored = lake_rows(table, DAY, SHARD)
    assert result.points == len(points.read)
    kept_rows = Counter({row: n for row, n in stored_before.items() if row[0] in gone})
    assert sum(kept_rows.values()) > 0
    assert_same_rows(stored, day_truth(smaller.api, points.read) + kept_rows)
    assert not {row[0] for row in stored} & renamed

    ingest(smaller.api, lake, prune=True)

    assert_same_rows(lake_rows(table, DAY, SHARD), day_truth(smaller.api, points.read))


def test_a_shard_listed_empty_never_empties_its_slice(mock_pi: RunningMock, lake: Lakehouse) -> None:
    """The catalog lists no active point in a shard whose day holds rows (a catalog emptied by hand, or the
    shard count changed): the run fails naming the shard and the rows at stake, and the slice is unchanged."""
    refresh(mock_pi.api, lake)
    ingest(mock_pi.api, lake)
    table = lake.table("bronze.pi_timeseries")
    version, stored = table.version(), lake_rows(table, DAY, SHARD)

    with PIWebAPIClient(mock_pi.api) as client, pytest.raises(EmptyShardError) as error:
        ingest_partition(
            client,
            timeseries=table,
            watermarks=lake.table("checkpoints.pi_watermarks"),
            web_ids=[],
            day=DAY,
            shard=SHARD,
            now=NOW,
        )

    assert f"no active point in shard {SHARD}" in str(error.value)
    assert f"{sum(stored.values())} values of {DAY.isoformat()}|{SHARD}" in str(error.value)
    assert "prune_absent_points" in str(error.value)
    assert table.version() == version and lake_rows(table, DAY, SHARD) == stored


def refresh_rules(api: str, lake: Lakehouse, **options) -> NotificationRulesResult:
    with PIWebAPIClient(api, compress=False) as pi:
        return refresh_notification_rules(pi, lake.table("bronze.pi_notification_rules"), **options)


def test_an_empty_rule_list_from_pi_is_refused_and_writes_nothing(
    mock_pi: RunningMock, lake: Lakehouse
) -> None:
    """A proxy answers every notification-rule search with no rule (an AF database hidden by a permission
    change): the refresh fails naming the counts and how to confirm; the table keeps its version and rows.
    The exact count confirms the removal."""
    first = refresh_rules(mock_pi.api, lake)
    rules = lake.table("bronze.pi_notification_rules")
    version, rows = rules.version(), read_table(rules)
    assert first.rules > 1

    proxy = Proxy(mock_pi.url, answer=empty_listing("/notificationrules/search"))
    try:
        with pytest.raises(NotificationRulesShrinkError) as error:
            refresh_rules(proxy.api, lake)
        with pytest.raises(NotificationRulesShrinkError):
            refresh_rules(proxy.api, lake, confirm_removed=first.rules - 1)
        assert rules.version() == version and read_table(rules) == rows
        assert refresh_rules(proxy.api, lake, confirm_removed=first.rules).diff.removed == first.rules
    finally:
        proxy.close()

    message = str(error.value)
    assert f"Refusing to remove {first.rules} of the {first.rules} notification rules" in message
    assert "(all of them" in message and "PI Web API listed 0 rules" in message
    assert f"confirm_removed_rules: {first.rules}" in message and "Nothing was written" in message
    assert read_table(rules).num_rows == 0


def refresh_af_tables(api: str, lake: Lakehouse, **options) -> AFResult:
    with PIWebAPIClient(api, compress=False) as pi:
        return refresh_af(
            pi, lake.table("bronze.pi_af_hierarchy"), lake.table("bronze.pi_af_attributes"), **options
        )


def test_an_af_server_listing_no_database_is_refused_and_writes_nothing(
    mock_pi: RunningMock, lake: Lakehouse
) -> None:
    """A proxy answers the asset-database listing with no database (the service account lost its access):
    the refresh fails naming both counts and how to confirm them, and neither AF table changes. One
    confirmed count alone is not enough; both exact counts empty the tables."""
    first = refresh_af_tables(mock_pi.api, lake)
    tables = [lake.table("bronze.pi_af_hierarchy"), lake.table("bronze.pi_af_attributes")]
    before = [(table.version(), read_table(table)) for table in tables]
    elements, attributes = first.element_count, first.attribute_count
    assert elements > 1 and attributes > 1

    proxy = Proxy(mock_pi.url, answer=empty_listing("/assetdatabases"))
    try:
        with pytest.raises(AFShrinkError) as error:
            refresh_af_tables(proxy.api, lake)
        with pytest.raises(
            AFShrinkError, match=f"Refusing to remove {attributes} of the {attributes} AF attr"
        ):
            refresh_af_tables(proxy.api, lake, confirm_removed_elements=elements)
        assert [(table.version(), read_table(table)) for table in tables] == before
        confirmed = refresh_af_tables(
            proxy.api, lake, confirm_removed_elements=elements, confirm_removed_attributes=attributes
        )
    finally:
        proxy.close()

    message = str(error.value)
    assert (
        f"Refusing to remove {elements} of the {elements} AF elements (all of them) and {attributes} of"
        in message
    )
    assert "PI Web API listed 0 asset database(s) (none) with 0 elements and 0 attributes" in message
    assert "Nothing was written" in message
    assert f"`confirm_removed_elements: {elements}` and `confirm_removed_attributes: {attributes}`" in message
    assert (confirmed.element_diff.removed, confirmed.attribute_diff.removed) == (elements, attributes)
    assert [read_table(table).num_rows for table in tables] == [0, 0]


def test_an_af_shrink_above_the_share_needs_the_exact_count(make_mock, lake: Lakehouse) -> None:
    """Two asset databases, then a server where the second one is hidden: about half of the elements would
    go, above the default 10 %. A wrong count is refused and writes nothing; a larger allowed share goes
    through; the next refresh, removing nothing, needs no confirmation."""
    both = make_mock(af_databases=2)
    first = refresh_af_tables(both.api, lake)
    assert first.databases == 2
    hierarchy = lake.table("bronze.pi_af_hierarchy")
    version = hierarchy.version()

    def first_database_only(exchange: Exchange, answer: Answer) -> Answer:
        if not exchange.route.endswith("/assetdatabases"):
            return answer
        listing = json.loads(answer.body)
        return Answer(answer.status, json.dumps({**listing, "Items": listing["Items"][:1]}).encode())

    proxy = Proxy(both.url, rewrite=first_database_only)
    try:
        with pytest.raises(AFShrinkError, match=r"AF elements \(more than 10% of them\)") as error:
            refresh_af_tables(proxy.api, lake)
        removed = int(str(error.value).split("Refusing to remove ", 1)[1].split(" ", 1)[0])
        with pytest.raises(AFShrinkError):
            refresh_af_tables(proxy.api, lake, confirm_removed_elements=removed - 1, max_removed_share=0.10)
        assert hierarchy.version() == version
        shrunk = refresh_af_tables(proxy.api, lake, max_removed_share=1.0)
        again = refresh_af_tables(proxy.api, lake)  # nothing removed now: no confirmation needed
    finally:
        proxy.close()

    assert shrunk.databases == 1 and shrunk.element_diff.removed == removed
    assert 0 < removed < first.element_count
    assert (again.element_diff.removed, again.hierarchy) == (0, None)
