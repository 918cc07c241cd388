"""``silver.pi_timeseries_clean`` against independent reads of the mock over HTTP: every value of the day once
(a value repeated right after itself at one timestamp dropped), states split out of the numbers, AF context
equal to what the mock's AF says, duplicates in bronze removed, and a re-run giving the same tables."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from osipi_dagster.ingest.gold import aggregate_partition
from osipi_dagster.ingest.silver import clean_partition
from osipi_dagster.lake import Lakehouse, overwrite_table, read_table, replace_slice
from osipi_dagster.lake.partitions import WRITER_COLUMNS, read_partition, replace_partition
from osipi_dagster.lake.schemas import SILVER_EDGES, SILVER_TIMESERIES
from osipi_dagster.lake.tables import without_columns
from osipi_dagster.mock.server import serve_in_thread
from osipi_dagster_tests.pi_helpers import raw_recorded
from osipi_dagster_tests.silver_gold_helpers import (
    CONFIG,
    DAY,
    DAYS,
    SHARD,
    DayLake,
    build_day_lake,
    get_json,
    run_gold,
    run_silver,
)
from osipi_dagster_tests.timeseries_helpers import ROW_COLUMNS, assert_same_rows, day_start_ns, pi_time

pytestmark = pytest.mark.slow
DAY_NS = 86_400_000_000_000
SILVER_COLUMNS = SILVER_TIMESERIES.schema.names


@pytest.fixture(scope="module")
def day_lake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DayLake]:
    with serve_in_thread(CONFIG) as mock:
        yield build_day_lake(mock, Path(tmp_path_factory.mktemp("silver")))


def silver_day(lake: Lakehouse) -> pa.Table:
    return read_partition(lake.table("silver.pi_timeseries_clean"), DAY, SHARD, SILVER_COLUMNS)


RECORDED_SHAPE = [
    "web_id",
    "timestamp_ns",
    "value",
    "string_value",
    "system_state_code",
    "system_state_name",
    "digital_state_code",
    "digital_state_name",
    "is_good",
    "questionable",
    "substituted",
    "annotated",
    "engineering_units",
]


def as_recorded(rows: pa.Table) -> Counter:
    """Silver rows in the shape of the mock's truth rows (states merged back into one code and name)."""
    found: Counter = Counter()
    for row in rows.select(RECORDED_SHAPE).to_pylist():
        system = row["system_state_code"] is not None
        found[
            (
                row["web_id"],
                row["timestamp_ns"],
                row["value"],
                row["string_value"],
                row["system_state_code"] if system else row["digital_state_code"],
                row["system_state_name"] if system else row["digital_state_name"],
                system,
                row["is_good"],
                row["questionable"],
                row["substituted"],
                row["annotated"],
                row["engineering_units"],
            )
        ] += 1
    return found


def without_repeats(rows: list[tuple]) -> list[tuple]:
    """The rows (one point, PI's order) less each row equal to the row just before it."""
    return [row for i, row in enumerate(rows) if i == 0 or row != rows[i - 1]]


def test_every_value_of_the_day_once_in_pi_order(day_lake: DayLake) -> None:
    silver = silver_day(day_lake.lake)
    web_ids = sorted(set(silver.column("web_id").to_pylist()))
    start = day_start_ns(DAY)
    want: Counter = Counter()
    repeats = 0
    kept_of: dict[str, list[tuple]] = {}
    for web_id in web_ids:
        rows = raw_recorded(day_lake.mock.api, web_id, pi_time(start), pi_time(start + DAY_NS - 100))
        kept = kept_of[web_id] = without_repeats(rows)
        repeats += len(rows) - len(kept)
        want.update(kept)
    assert_same_rows(as_recorded(silver), want)
    assert repeats > 0, "the test day must hold repeated values"
    in_order = silver.select(["web_id", "timestamp_ns", "sequence", "value"]).sort_by(
        [("web_id", "ascending"), ("timestamp_ns", "ascending"), ("sequence", "ascending")]
    )
    found: dict[str, list[tuple]] = {web_id: [] for web_id in web_ids}
    for row in zip(
        *(in_order.column(name).to_pylist() for name in ("web_id", "timestamp_ns", "value")), strict=True
    ):
        found[row[0]].append(row)
    for web_id in web_ids:
        assert found[web_id] == [row[:3] for row in kept_of[web_id]], f"{web_id}: PI's order at one timestamp"
    stamps = silver.column("timestamp_ns").to_pylist()
    assert silver.column("timestamp").cast(pa.int64()).to_pylist() == [s // 1000 for s in stamps]


def test_states_are_never_numbers(day_lake: DayLake) -> None:
    rows = silver_day(day_lake.lake).to_pylist()
    system = [r for r in rows if r["system_state_code"] is not None]
    assert system, "the test day must hold system states"
    assert all(
        r["value"] is None and not r["is_good"] and r["system_state_name"] and r["digital_state_code"] is None
        for r in system
    )
    digital = [r for r in rows if r["digital_state_code"] is not None]
    assert digital and all(r["point_type"] == "Digital" and r["value"] is None for r in digital)
    assert all(r["point_type"] == "Digital" for r in rows if r["digital_state_name"] is not None)
    strings = [r for r in rows if r["string_value"] is not None]
    assert strings and all(r["point_type"] == "String" for r in strings)
    numbers = [r for r in rows if r["value"] is not None]
    assert all(r["point_type"] in {"Float32", "Float64", "Int32"} and r["is_good"] for r in numbers)


def test_af_context_is_the_mock_af(day_lake: DayLake) -> None:
    expected = _af_of_points(day_lake.mock.api)
    rows = silver_day(day_lake.lake).select(
        [
            "point_name",
            "af_attribute_path",
            "af_attribute_name",
            "af_attribute_count",
            "af_element_path",
            "af_element_template",
            "site",
            "area",
            "unit",
        ]
    )
    got = {row["point_name"]: row for row in rows.to_pylist()}
    assert set(got) == set(expected)
    for name, row in got.items():
        assert {k: v for k, v in row.items() if k != "point_name"} == expected[name], name


def _af_of_points(api: str) -> dict[str, dict]:
    """Per point name, the AF context read from the mock's AF over plain HTTP: the attribute whose
    ConfigString names the point, its element, and the element's Site, Area and unit ancestors."""
    servers = get_json(api, "assetservers")["Items"]
    elements: dict[str, dict] = {}
    for server in servers:
        for database in get_json(api, f"assetservers/{server['WebId']}/assetdatabases")["Items"]:
            found = get_json(
                api,
                f"assetdatabases/{database['WebId']}/elements",
                searchFullHierarchy="true",
                maxCount="10000",
            )["Items"]
            elements.update({e["Path"].upper(): e for e in found})
    roles = {"Site": "site", "Area": "area", "Batch Unit": "unit", "Continuous Unit": "unit"}
    context: dict[str, dict] = {}
    for element in elements.values():
        for attribute in get_json(api, f"elements/{element['WebId']}/attributes")["Items"]:
            if attribute["DataReferencePlugIn"] != "PI Point":
                continue
            tag = attribute["ConfigString"].split(";")[0].rsplit("\\", 1)[-1]
            ancestry = {"site": None, "area": None, "unit": None}
            path = element["Path"]
            while path.upper() in elements:
                role = roles.get(elements[path.upper()]["TemplateName"])
                if role:
                    ancestry[role] = elements[path.upper()]["Name"]
                path = path.rsplit("\\", 1)[0]
            assert tag not in context, "the mock references every point once"
            context[tag] = {
                "af_attribute_path": attribute["Path"],
                "af_attribute_name": attribute["Name"],
                "af_attribute_count": 1,
                "af_element_path": element["Path"],
                "af_element_template": element["TemplateName"],
                **ancestry,
            }
    return context


def test_duplicates_in_bronze_are_removed(day_lake: DayLake, tmp_path: Path) -> None:
    """Bronze holding every value of some points twice gives the same silver rows."""
    bronze = read_partition(
        day_lake.table("bronze.pi_timeseries"), DAY, SHARD, ["web_id", "timestamp_ns", *_RECORDED_TAIL]
    )
    batch = bronze.set_column(
        1, "timestamp", bronze.column("timestamp_ns").cast(pa.timestamp("ns", tz="UTC"))
    )
    # Points with one value per timestamp: a copy of a multi-value timestamp (A, B, A, B) is not a repeat.
    pairs = Counter(
        zip(bronze.column("web_id").to_pylist(), bronze.column("timestamp_ns").to_pylist(), strict=True)
    )
    multi = {web_id for (web_id, _), count in pairs.items() if count > 1}
    doubled_ids = sorted(set(batch.column("web_id").to_pylist()) - multi)[:5]
    doubled = batch.filter(pa.compute.is_in(batch.column("web_id"), pa.array(doubled_ids)))
    lake = Lakehouse(str(tmp_path))
    for name in ("bronze.pi_points", "bronze.pi_af_hierarchy", "bronze.pi_af_attributes"):
        overwrite_table(lake.table(name), read_table(day_lake.table(name)).drop_columns(["ingested_at"]))
    replace_slice(
        lake.table("bronze.pi_timeseries"),
        [*batch.to_batches(), *doubled.to_batches()],
        partition_date=DAY,
        tag_shard=SHARD,
    )
    result = run_silver(lake, DAY)
    original = run_silver(day_lake.lake, DAY)
    assert result.duplicates_removed == original.duplicates_removed + doubled.num_rows
    assert result.rows == original.rows
    assert _without_run_columns(silver_day(lake)) == _without_run_columns(silver_day(day_lake.lake))


_RECORDED_TAIL = ROW_COLUMNS[2:]  # the value columns after the point and the time


def _without_run_columns(rows: pa.Table) -> pa.Table:
    rows = rows.drop_columns([c for c in ("ingested_at",) if c in rows.column_names])
    return rows.sort_by([("web_id", "ascending"), ("timestamp_ns", "ascending"), ("sequence", "ascending")])


def test_a_rerun_gives_identical_tables(day_lake: DayLake) -> None:
    lake = day_lake.lake
    silver_before = {
        day: _stable(read_partition(lake.table("silver.pi_timeseries_clean"), day, SHARD, SILVER_COLUMNS))
        for day in DAYS
    }
    gold_before = _stable(read_table(lake.table("gold.pi_timeseries_hourly")))
    version = lake.table("silver.pi_timeseries_clean").version()
    for day in DAYS:
        run_silver(lake, day)
    run_gold(lake)
    assert lake.table("silver.pi_timeseries_clean").version() == version + len(DAYS)
    for day in DAYS:
        after = read_partition(lake.table("silver.pi_timeseries_clean"), day, SHARD, SILVER_COLUMNS)
        assert _stable(after) == silver_before[day]
    assert _stable(read_table(lake.table("gold.pi_timeseries_hourly"))) == gold_before


def _stable(rows: pa.Table) -> pa.Table:
    """The rows without the run's ``ingested_at``, in silver's order (point, time, PI's order: files need not
    keep the order rows were written in, so it is ``sequence`` that carries PI's order)."""
    keys = [("web_id", "ascending"), ("timestamp_ns", "ascending"), ("sequence", "ascending")]
    rows = rows.drop_columns(["ingested_at"])
    if "hour" in rows.column_names:
        keys = [("web_id", "ascending"), ("hour", "ascending")]
    return rows.sort_by(keys).combine_chunks()


def test_a_partition_in_many_buckets_gives_the_same_tables(day_lake: DayLake, tmp_path: Path) -> None:
    """Silver and gold reading the day in buckets of a few points each (spilled to temporary files, sorted
    one by one) write what they write from one bucket."""
    lake, split = day_lake.lake, Lakehouse(str(tmp_path))
    silver = clean_partition(
        bronze=lake.table("bronze.pi_timeseries"),
        silver=split.table("silver.pi_timeseries_clean"),
        edges=split.table("silver.pi_timeseries_edges"),
        points=lake.table("bronze.pi_points"),
        af_hierarchy=lake.table("bronze.pi_af_hierarchy"),
        af_attributes=lake.table("bronze.pi_af_attributes"),
        day=DAY,
        shard=SHARD,
        bucket_rows=SMALL_BUCKET,
    )
    assert silver.buckets > 5
    assert _stable(silver_day(split)) == _stable(silver_day(lake))
    assert _edges_of(split) == _edges_of(lake)
    aggregate_partition(
        silver=lake.table("silver.pi_timeseries_clean"),
        edges=lake.table("silver.pi_timeseries_edges"),
        gold=split.table("gold.pi_timeseries_hourly"),
        day=DAY,
        shard=SHARD,
        bucket_rows=SMALL_BUCKET,
    )
    gold = [_stable(read_table(x.table("gold.pi_timeseries_hourly"))) for x in (split, lake)]
    assert gold[0] == gold[1]


@pytest.mark.parametrize("silver_as", ["out_of_order", "without_edges"])
def test_gold_of_a_silver_partition_not_as_silver_writes_it_is_the_same(
    day_lake: DayLake, tmp_path: Path, silver_as: str
) -> None:
    """Gold reads silver's files as they come when their footers show them in WebId order and the day's
    edges were written with them; a partition whose rows are out of order (sorted by gold chunk by chunk)
    or whose edges are missing (split into buckets first) gives the same gold."""
    lake, copy = day_lake.lake, Lakehouse(str(tmp_path))
    stamp = datetime(2025, 1, 8, tzinfo=UTC)
    for day in DAYS:
        silver = read_partition(lake.table("silver.pi_timeseries_clean"), day, SHARD, SILVER_WRITTEN)
        if silver_as == "out_of_order" and day == DAY:
            silver = silver.take(pa.array(range(silver.num_rows - 1, -1, -1)))
        copies = {"silver.pi_timeseries_clean": silver}
        if not (silver_as == "without_edges" and day == DAY):
            edges = lake.table("silver.pi_timeseries_edges")
            copies["silver.pi_timeseries_edges"] = read_partition(edges, day, SHARD, EDGES_WRITTEN)
        for name, rows in copies.items():
            replace_partition(
                copy.table(name), rows.to_batches(), partition_date=day, tag_shard=SHARD, ingested_at=stamp
            )
    result = aggregate_partition(
        silver=copy.table("silver.pi_timeseries_clean"),
        edges=copy.table("silver.pi_timeseries_edges"),
        gold=copy.table("gold.pi_timeseries_hourly"),
        day=DAY,
        shard=SHARD,
        bucket_rows=SMALL_BUCKET,
    )
    assert result.neighbours_read_whole == 0
    gold = [_stable(read_table(x.table("gold.pi_timeseries_hourly"))) for x in (copy, lake)]
    assert gold[0] == gold[1]


SMALL_BUCKET = 20_000
SILVER_WRITTEN = without_columns(SILVER_TIMESERIES.schema, WRITER_COLUMNS).names
EDGES_WRITTEN = without_columns(SILVER_EDGES.schema, WRITER_COLUMNS).names
EDGE_KEY = ["web_id", "edge", "timestamp_ns", "sequence", "value", "is_good"]


def _edges_of(lake: Lakehouse) -> pa.Table:
    rows = read_partition(lake.table("silver.pi_timeseries_edges"), DAY, SHARD, EDGE_KEY)
    return rows.sort_by([(name, "ascending") for name in EDGE_KEY]).combine_chunks()


def test_silver_files_keep_strings_dictionary_encoded_and_delta_statistics(day_lake: DayLake) -> None:
    """Every string column of silver's files is dictionary-encoded (Arrow's writer falls back to a string
    per row when a dictionary handed to it repeats a value), and the Delta log holds the files' statistics
    readers prune by (WebId, time)."""
    table = day_lake.lake.table("silver.pi_timeseries_clean").load()
    files = table.file_uris(file_pruning_predicate=[("partition_date", "=", DAY.isoformat())])
    strings = [f.name for f in SILVER_TIMESERIES.schema if f.type == pa.string() and f.name != "tag_shard"]
    assert files
    for path in files:
        metadata = pq.read_metadata(path)
        for group in range(metadata.num_row_groups):
            for i in range(metadata.num_columns):
                column = metadata.row_group(group).column(i)
                if column.path_in_schema in strings:
                    assert "RLE_DICTIONARY" in column.encodings, (
                        path,
                        column.path_in_schema,
                        column.encodings,
                    )
    added = [a for a in pa.table(table.get_add_actions(flatten=True)).to_pylist() if a["path"] in str(files)]
    assert len(added) == len(files)
    for add in added:
        assert add["min.web_id"] <= add["max.web_id"]
        assert add["min.timestamp"] <= add["max.timestamp"]
        assert add["num_records"] > 0
