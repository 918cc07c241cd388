r"""``silver.pi_timeseries_clean``: a bronze (UTC day, tag shard) partition cleaned, typed and in context.

What a silver partition is, as a function of its bronze partition and the catalog tables:

* **Every bronze value once.** A row identical in every value column (value, string, state, flags, units) to
  the row just before it, same point and same exact timestamp, is a duplicate and dropped; several distinct
  values of a point at one timestamp are PI data and all stay, in PI's order. Only repeats in a row are
  dropped (``A, A, B`` keeps ``A, B``; ``A, B, A`` stays): the last value at a timestamp is the one PI
  carries on, so the signal, and every time-weighted figure computed from silver, stays PI's. PI's Count
  and event-weighted figures count a repeated value once more than silver does.
* **Typed, states split out.** ``value`` is the number of a numeric point; a String point's value is
  ``string_value``; a digital point's state is ``digital_state_code``/``digital_state_name``; a system state
  (I/O Timeout, Shutdown, Bad Input, ...) is ``system_state_code``/``system_state_name`` with ``value`` null
  and ``is_good`` false: a state is never a number.
* **AF context** from ``bronze.pi_points.af_attribute_paths`` and the AF tables: the referencing attribute's
  path and name, its element's path and template, and the element's ISA-95 ``site``, ``area`` and ``unit``:
  the nearest element up the tree (the element itself included) whose template name or one of whose
  categories is ``Site``, ``Area``, or ``Unit``/``Process Unit``/``Process Cell`` (case-insensitive), by
  name. A point several attributes reference takes the attribute whose path sorts first
  (case-insensitively), and ``af_attribute_count`` says how many reference it; a point none references has
  null context and a count of 0. The context is the catalog's when silver runs: re-materialize silver to
  apply a changed AF model to past days.
* **PI's order** of several values at one timestamp is the column ``sequence`` (0, 1, ...). Rows are handed
  to the writer sorted by point (WebId), time and ``sequence``, and its files hold them in that order, but
  the table's files come in any order (and partitions written by earlier versions, through delta-rs's
  writer, may hold the batches of one write in another order): read them sorted by ``web_id``,
  ``timestamp_ns``, ``sequence``. Each partition is replaced whole in one commit
  (:func:`osipi_dagster.lake.partitions.replace_partition`): a re-run gives the same rows.

With each partition, ``silver.pi_timeseries_edges`` gets the partition's first values (every value at each
point's first timestamp) and last value of each point, stamped with the same ``ingested_at``: gold carries
values from one day into the next with them instead of reading whole days.

Memory does not grow with the partition: bronze is cleaned in buckets of whole points of about
``BUCKET_ROWS`` values (:mod:`osipi_dagster.ingest.buckets`: a partition larger than one bucket is split
into temporary files first), each step vectorised over a bucket (numpy, Arrow), never a Python step per
value.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from osipi_dagster.contract import RECORDED_SCHEMA
from osipi_dagster.ingest.buckets import buckets, census, gather, point_order
from osipi_dagster.lake import LakeTable, WriteResult, read_table
from osipi_dagster.lake.partitions import WRITER_COLUMNS, replace_partition
from osipi_dagster.lake.schemas import SILVER_EDGES, SILVER_TIMESERIES, UTC_US
from osipi_dagster.lake.tables import utc_now, without_columns

# Bronze rows cleaned at once: memory is about 150 bytes a row of this. A million is faster than two (the
# 1,000-point day: 2.2 against 1.8 M values/s, 899 against 1,015 MiB; bench_silver_gold.py, BENCHMARKS.md;
# measured, not profiled), and half a million is slower again (2.0 M values/s).
BUCKET_ROWS = 1_000_000
BATCH_ROWS = 256 * 1024  # rows a batch handed to the writer
# The bronze columns silver reads besides the point and time: the ones that make two rows the same value.
_VALUE_COLUMNS = [name for name in RECORDED_SCHEMA.names if name not in ("web_id", "timestamp")]
_BRONZE_DICTIONARIES = ("state_name", "units")
_READ = ["timestamp_ns", *_VALUE_COLUMNS]
_CONTEXT_COLUMNS = [
    "point_name",
    "point_type",
    "step",
    "engineering_units",
    "af_attribute_path",
    "af_attribute_name",
    "af_attribute_count",
    "af_element_path",
    "af_element_template",
    "site",
    "area",
    "unit",
]
# ISA-95 roles of AF elements, recognised by template or category name (upper case).
_ROLES = {"site": {"SITE"}, "area": {"AREA"}, "unit": {"UNIT", "PROCESS UNIT", "PROCESS CELL"}}
# Strings that repeat on many rows: written dictionary-encoded (see replace_partition).
SILVER_DICTIONARIES = (
    "web_id",
    "point_name",
    "point_type",
    "engineering_units",
    "digital_state_name",
    "system_state_name",
    "af_attribute_path",
    "af_attribute_name",
    "af_element_path",
    "af_element_template",
    "site",
    "area",
    "unit",
)
_DICTIONARY = pa.dictionary(pa.int32(), pa.string())
_CONTEXT_STRINGS = [name for name in _CONTEXT_COLUMNS if name in SILVER_DICTIONARIES]
_SILVER_INPUT = pa.schema(
    [
        f.with_type(_DICTIONARY) if f.name in SILVER_DICTIONARIES else f
        for f in without_columns(SILVER_TIMESERIES.schema, WRITER_COLUMNS)
    ]
)
_EDGES_INPUT = without_columns(SILVER_EDGES.schema, WRITER_COLUMNS)


@dataclass(frozen=True)
class SilverResult:
    """What one silver partition's run read and wrote."""

    day: date
    shard: str
    rows_read: int
    duplicates_removed: int
    system_states: int
    points: int
    points_without_af: int
    buckets: int
    write: WriteResult
    edges: WriteResult
    duration_seconds: float

    @property
    def rows(self) -> int:
        return self.write.rows_written

    @property
    def values_per_second(self) -> float:
        return self.rows_read / self.duration_seconds if self.duration_seconds > 0 else 0.0


def clean_partition(
    *,
    bronze: LakeTable,
    silver: LakeTable,
    edges: LakeTable,
    points: LakeTable,
    af_hierarchy: LakeTable,
    af_attributes: LakeTable,
    day: date,
    shard: str,
    bucket_rows: int = BUCKET_ROWS,
) -> SilverResult:
    """Replace the silver partition (``day``, ``shard``) with its bronze partition cleaned (module docstring),
    in buckets of whole points of about ``bucket_rows`` values, then the partition's edges in ``edges``.

    A bronze partition that is empty or missing gives an empty silver partition: silver mirrors bronze.
    """
    started = time.perf_counter()
    points_of = census(bronze, day, shard, bucket_rows)
    context = _PointContext.of(
        points_of.web_ids,
        point_context(read_table(points), read_table(af_hierarchy), read_table(af_attributes)),
    )
    tally = _Tally()
    stamp = utc_now()  # the silver partition and its edges carry one ingested_at
    rows = buckets(bronze, day, shard, _READ, points_of, dictionary_columns=_BRONZE_DICTIONARIES)
    write = replace_partition(
        silver,
        _silver_batches(rows, context, tally),
        partition_date=day,
        tag_shard=shard,
        dictionary_columns=SILVER_DICTIONARIES,
        ingested_at=stamp,
    )
    edges_write = replace_partition(
        edges, tally.edges, partition_date=day, tag_shard=shard, ingested_at=stamp
    )  # after the partition: a reader finding the same ingested_at in both knows they belong together
    return SilverResult(
        day=day,
        shard=shard,
        rows_read=tally.rows_read,
        duplicates_removed=tally.duplicates,
        system_states=tally.system_states,
        points=len(points_of.web_ids),
        points_without_af=context.without_af,
        buckets=points_of.buckets,
        write=write,
        edges=edges_write,
        duration_seconds=time.perf_counter() - started,
    )


@dataclass
class _Tally:
    """What the batches handed to the writer held, and the partition's edges."""

    rows_read: int = 0
    duplicates: int = 0
    system_states: int = 0
    edges: list[pa.RecordBatch] = field(default_factory=list)


# -- cleaning one bucket ----------------------------------------------------------------------------------


def _silver_batches(
    buckets: Iterator[pa.Table], context: _PointContext, tally: _Tally
) -> Iterator[pa.RecordBatch]:
    """The silver rows, bucket after bucket, ``BATCH_ROWS`` at a time; the edges and counts into ``tally``."""
    for rows in buckets:
        rows = rows.unify_dictionaries().combine_chunks()
        tally.rows_read += rows.num_rows
        tally.system_states += int(pc.sum(rows.column("is_system")).as_py() or 0)
        order, duplicates = _clean_order(rows)
        tally.duplicates += duplicates
        cleaned = gather(rows, order)
        points = cleaned.column("point").to_numpy()
        stamps = cleaned.column("timestamp_ns").to_numpy()
        sequence = _sequence(points, stamps)
        tally.edges.append(_edges(cleaned, points, stamps, sequence, context))
        for start in range(0, cleaned.num_rows, BATCH_ROWS):
            end = start + BATCH_ROWS
            yield _silver_batch(
                cleaned.slice(start, BATCH_ROWS), points[start:end], sequence[start:end], context
            )


def _clean_order(rows: pa.Table) -> tuple[np.ndarray, int]:
    """The row indices to write, sorted by point, time and stored order, duplicates left out; and how many
    duplicates there were. A duplicate is a row identical to the row before it at the same timestamp."""
    points = rows.column("point").to_numpy()
    stamps = rows.column("timestamp_ns").to_numpy()
    order = point_order(points, [stamps])
    if len(order) < 2:
        return order, 0
    sorted_points, sorted_stamps = points[order], stamps[order]
    same_stamp = np.flatnonzero(
        (sorted_points[1:] == sorted_points[:-1]) & (sorted_stamps[1:] == sorted_stamps[:-1])
    )
    if not len(same_stamp):
        return order, 0
    # Only a row sharing its (point, time) with the row before can repeat it: compare those pairs.
    earlier = rows.take(pa.array(order[same_stamp])).select(_VALUE_COLUMNS)
    later = rows.take(pa.array(order[same_stamp + 1])).select(_VALUE_COLUMNS)
    repeated = np.ones(len(same_stamp), bool)
    for name in _VALUE_COLUMNS:
        a, b = _decoded(earlier.column(name)), _decoded(later.column(name))
        both_null = pc.and_(pc.is_null(a), pc.is_null(b))
        repeated &= pc.or_(pc.fill_null(pc.equal(a, b), False), both_null).to_numpy(zero_copy_only=False)
    keep = np.ones(len(order), bool)
    keep[same_stamp[repeated] + 1] = False
    return order[keep], int(np.count_nonzero(repeated))


def _decoded(column: pa.ChunkedArray) -> pa.ChunkedArray:
    return column.cast(column.type.value_type) if pa.types.is_dictionary(column.type) else column


def _sequence(points: np.ndarray, stamps: np.ndarray) -> np.ndarray:
    """Per sorted row, its position among the rows of its point at its timestamp."""
    if not len(points):
        return np.zeros(0, np.int32)
    starts = np.r_[True, (points[1:] != points[:-1]) | (stamps[1:] != stamps[:-1])]
    first = np.maximum.accumulate(np.where(starts, np.arange(len(points)), 0))
    return (np.arange(len(points)) - first).astype(np.int32)


def _silver_batch(
    rows: pa.Table, points: np.ndarray, sequence: np.ndarray, context: _PointContext
) -> pa.RecordBatch:
    """Silver rows (``_SILVER_INPUT``) from cleaned bucket rows of the points ``points``."""
    system = rows.column("is_system").to_numpy()
    state_code = rows.column("state_code")
    has_state = state_code.is_valid().to_numpy(zero_copy_only=False)
    code = state_code.fill_null(0).to_numpy()
    state_name = rows.column("state_name").chunk(0)
    point = pa.array(points, pa.int32())
    columns: dict[str, pa.Array] = {
        "web_id": pa.DictionaryArray.from_arrays(point, context.web_ids),
        "timestamp": pa.array(rows.column("timestamp_ns").to_numpy() // 1000, UTC_US),
        "timestamp_ns": rows.column("timestamp_ns").chunk(0),
        "sequence": pa.array(sequence, pa.int32()),
        "value": rows.column("value").chunk(0),
        "string_value": rows.column("string_value").chunk(0),
        "digital_state_code": pa.array(code, pa.int32(), mask=system | ~has_state),
        "digital_state_name": _masked(state_name, ~system),
        "system_state_code": pa.array(code, pa.int32(), mask=~system | ~has_state),
        "system_state_name": _masked(state_name, system),
        "is_good": rows.column("good").chunk(0),
        "questionable": rows.column("questionable").chunk(0),
        "substituted": rows.column("substituted").chunk(0),
        "annotated": rows.column("annotated").chunk(0),
        "engineering_units": rows.column("units").chunk(0),
        **context.columns(point),
    }
    return pa.RecordBatch.from_arrays([columns[name] for name in _SILVER_INPUT.names], schema=_SILVER_INPUT)


def _masked(column: pa.DictionaryArray, keep: np.ndarray) -> pa.DictionaryArray:
    """``column`` with null where not ``keep``."""
    valid = keep & column.is_valid().to_numpy(zero_copy_only=False)
    indices = column.indices.fill_null(0).to_numpy(zero_copy_only=False)
    return pa.DictionaryArray.from_arrays(pa.array(indices, pa.int32(), mask=~valid), column.dictionary)


def _edges(
    rows: pa.Table, points: np.ndarray, stamps: np.ndarray, sequence: np.ndarray, context: _PointContext
) -> pa.RecordBatch:
    """The edge rows of a cleaned bucket: per point, every row at its first timestamp, and its last row."""
    first, last = edge_rows(points, stamps)
    taken = np.concatenate([first, last])
    point = pa.array(points[taken], pa.int32())
    columns = {
        "web_id": context.web_ids.take(point),
        **{
            name: column.cast(pa.string()) if name != "step" else column
            for name, column in context.columns(point).items()
            if name in ("point_name", "point_type", "step")
        },
        "edge": pa.array(["first"] * len(first) + ["last"] * len(last), pa.string()),
        "timestamp_ns": pa.array(stamps[taken], pa.int64()),
        "sequence": pa.array(sequence[taken], pa.int32()),
        "value": rows.column("value").take(pa.array(taken)),
        "is_good": rows.column("good").take(pa.array(taken)),
    }
    return pa.RecordBatch.from_arrays(
        [_flat(columns[name]) for name in _EDGES_INPUT.names], schema=_EDGES_INPUT
    )


def edge_rows(points: np.ndarray, stamps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Of rows sorted by point, time and PI's order: the rows at each point's first timestamp, and each
    point's last row (the edges ``silver.pi_timeseries_edges`` holds)."""
    starts = np.flatnonzero(np.r_[True, points[1:] != points[:-1]])
    first_stamp = np.repeat(stamps[starts], np.diff(np.r_[starts, len(points)]))
    return np.flatnonzero(stamps == first_stamp), np.r_[starts[1:], len(points)] - 1


def _flat(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column


# -- AF context -------------------------------------------------------------------------------------------

_CONTEXT_SCHEMA = pa.schema(
    [pa.field("web_id", pa.string(), nullable=False)]
    + [SILVER_TIMESERIES.schema.field(name) for name in _CONTEXT_COLUMNS]
)


@dataclass(frozen=True)
class _PointContext:
    """Per point of the partition (by index), its context as silver writes it. A string column is each
    point's index among the column's distinct values, so that a batch's column is one gather of indices and
    a dictionary of distinct values (Parquet's writer takes such a dictionary as it is; with a value
    repeated in it, it falls back to writing every row's string)."""

    web_ids: pa.Array
    strings: dict[str, tuple[np.ndarray, pa.Array]]  # each point's index in the distinct values (-1: null)
    others: dict[str, pa.Array]  # per other context column, its value for each point
    without_af: int

    @classmethod
    def of(cls, web_ids: pa.Array, context: pa.Table) -> _PointContext:
        """The context of ``web_ids`` (null, and a count of 0, for a point the catalog does not know)."""
        unknown = len(context)  # the index of a row of nulls appended to every context column
        at = pc.index_in(web_ids, value_set=context.column("web_id")).fill_null(unknown)
        strings: dict[str, tuple[np.ndarray, pa.Array]] = {}
        others: dict[str, pa.Array] = {}
        for name in _CONTEXT_COLUMNS:
            column = pa.concat_arrays(
                [*context.column(name).chunks, pa.nulls(1, _CONTEXT_SCHEMA.field(name).type)]
            ).take(at)
            if name in _CONTEXT_STRINGS:
                encoded = column.dictionary_encode()
                index = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int32)
                strings[name] = (index, encoded.dictionary)
            else:
                others[name] = column.fill_null(0) if name == "af_attribute_count" else column
        without_af = int(np.count_nonzero(strings["af_attribute_path"][0] < 0))
        return cls(web_ids, strings, others, without_af)

    def columns(self, point: pa.Array) -> dict[str, pa.Array]:
        """The context columns of rows whose points are ``point`` (indices of ``web_ids``)."""
        points = point.to_numpy(zero_copy_only=False)
        found = {name: values.take(point) for name, values in self.others.items()}
        for name, (index, values) in self.strings.items():
            taken = index[points]
            nulls = taken < 0 if index.min(initial=0) < 0 else None
            found[name] = pa.DictionaryArray.from_arrays(pa.array(taken, mask=nulls), values)
        return {name: found[name] for name in _CONTEXT_COLUMNS}


def point_context(
    points: pa.Table | None, hierarchy: pa.Table | None, attributes: pa.Table | None
) -> pa.Table:
    """Per point of the catalog, its name, type, step, units and AF context (the module docstring's rules).

    One Python step per catalog point and AF element (thousands), never per value.
    """
    if points is None:
        return _CONTEXT_SCHEMA.empty_table()
    elements = {row["web_id"]: row for row in (hierarchy.to_pylist() if hierarchy is not None else [])}
    by_path = {row["path"].upper(): row for row in (attributes.to_pylist() if attributes is not None else [])}
    rows = []
    for point in points.select(
        ["web_id", "name", "point_type", "step", "engineering_units", "af_attribute_paths"]
    ).to_pylist():
        known = sorted((p for p in point["af_attribute_paths"] or [] if p.upper() in by_path), key=str.upper)
        attribute = by_path[known[0].upper()] if known else None
        element = elements.get(attribute["element_web_id"]) if attribute else None
        rows.append(
            {
                "web_id": point["web_id"],
                "point_name": point["name"],
                "point_type": point["point_type"],
                "step": point["step"],
                "engineering_units": point["engineering_units"] or None,
                "af_attribute_path": attribute["path"] if attribute else None,
                "af_attribute_name": attribute["name"] if attribute else None,
                "af_attribute_count": len(known),
                "af_element_path": element["path"] if element else None,
                "af_element_template": element["template_name"] if element else None,
                **_roles(element, elements),
            }
        )
    return pa.Table.from_pylist(rows, schema=_CONTEXT_SCHEMA)


def _roles(element: dict | None, elements: dict[str, dict]) -> dict[str, str | None]:
    """The names of the nearest site, area and unit elements up from ``element`` (itself included)."""
    found: dict[str, str | None] = dict.fromkeys(_ROLES)
    seen: set[str] = set()
    while element is not None and element["web_id"] not in seen:
        seen.add(element["web_id"])
        names = {
            (element["template_name"] or "").upper(),
            *(c.upper() for c in element["category_names"] or []),
        }
        for role, markers in _ROLES.items():
            if found[role] is None and names & markers:
                found[role] = element["name"]
        element = elements.get(element["parent_web_id"]) if element["parent_web_id"] else None
    return found
