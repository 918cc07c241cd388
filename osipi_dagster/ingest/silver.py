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
* **PI's order** of several values at one timestamp is the column ``sequence`` (0, 1, ...): Delta files need
  not keep the order rows were written in. Rows are written sorted by point, time and ``sequence``, and
  each partition is replaced whole in one commit (:func:`osipi_dagster.lake.partitions.replace_partition`):
  a re-run gives the same rows.

Memory: the bronze partition is held once, compactly (its repeated strings dictionary-encoded, about 40 bytes
a value), and written in batches of ``BATCH_ROWS``; size the tag shards so that a partition holds at most
about 15 million values a day for 1 GiB (docs/BENCHMARKS.md).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from osipi_dagster.lake import LakeTable, WriteResult, read_table
from osipi_dagster.lake.partitions import WRITER_COLUMNS, read_partition, replace_partition
from osipi_dagster.lake.schemas import SILVER_TIMESERIES, UTC_US
from osipi_dagster.lake.tables import without_columns

BATCH_ROWS = 256 * 1024
# The bronze columns silver reads, and the ones that make two rows the same value.
_VALUE_COLUMNS = [
    "value",
    "string_value",
    "state_code",
    "state_name",
    "is_system",
    "good",
    "questionable",
    "substituted",
    "annotated",
    "units",
]
_BRONZE_COLUMNS = ["web_id", "timestamp_ns", *_VALUE_COLUMNS]
_DICTIONARY_COLUMNS = ("web_id", "state_name", "units")
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
_SILVER_DICTIONARIES = (
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
_CONTEXT_STRINGS = [name for name in _CONTEXT_COLUMNS if name in _SILVER_DICTIONARIES]
_SILVER_INPUT = pa.schema(
    [
        f.with_type(pa.dictionary(pa.int32(), pa.string())) if f.name in _SILVER_DICTIONARIES else f
        for f in without_columns(SILVER_TIMESERIES.schema, WRITER_COLUMNS)
    ]
)
_SEQUENCE = _SILVER_INPUT.get_field_index("sequence")


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
    write: WriteResult
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
    points: LakeTable,
    af_hierarchy: LakeTable,
    af_attributes: LakeTable,
    day: date,
    shard: str,
) -> SilverResult:
    """Replace the silver partition (``day``, ``shard``) with its bronze partition cleaned (module docstring).

    A bronze partition that is empty or missing gives an empty silver partition: silver mirrors bronze.
    """
    started = time.perf_counter()
    rows = read_partition(bronze, day, shard, _BRONZE_COLUMNS, dictionary_columns=_DICTIONARY_COLUMNS)
    if rows is None or not rows.num_rows:
        rows = _EMPTY_BRONZE
    rows = rows.unify_dictionaries().combine_chunks()
    codes, web_ids = _point_codes(rows.column("web_id").chunk(0))
    order, duplicates = _clean_order(rows, codes)
    context = point_context(read_table(points), read_table(af_hierarchy), read_table(af_attributes))
    context_rows = _context_rows(web_ids, context)
    write = replace_partition(
        silver,
        _silver_batches(rows, codes, order, web_ids, context_rows, context),
        partition_date=day,
        tag_shard=shard,
        dictionary_columns=_SILVER_DICTIONARIES,
    )
    return SilverResult(
        day=day,
        shard=shard,
        rows_read=rows.num_rows,
        duplicates_removed=duplicates,
        system_states=int(pc.sum(rows.column("is_system")).as_py() or 0),
        points=len(web_ids),
        points_without_af=_without_af(context_rows, context),
        write=write,
        duration_seconds=time.perf_counter() - started,
    )


_EMPTY_BRONZE = pa.table(
    {
        "web_id": pa.array([], pa.dictionary(pa.int32(), pa.string())),
        "timestamp_ns": pa.array([], pa.int64()),
        "value": pa.array([], pa.float64()),
        "string_value": pa.array([], pa.string()),
        "state_code": pa.array([], pa.int32()),
        "state_name": pa.array([], pa.dictionary(pa.int32(), pa.string())),
        "is_system": pa.array([], pa.bool_()),
        "good": pa.array([], pa.bool_()),
        "questionable": pa.array([], pa.bool_()),
        "substituted": pa.array([], pa.bool_()),
        "annotated": pa.array([], pa.bool_()),
        "units": pa.array([], pa.dictionary(pa.int32(), pa.string())),
    }
)


def _point_codes(web_id: pa.DictionaryArray) -> tuple[np.ndarray, pa.Array]:
    """Per row, the index of its WebId in the sorted WebIds of the partition; and those WebIds."""
    dictionary = web_id.dictionary
    rank = np.argsort(np.asarray(dictionary.to_pylist(), dtype=object), kind="stable")
    position = np.empty(len(rank), np.int32)
    position[rank] = np.arange(len(rank), dtype=np.int32)
    codes = position[web_id.indices.to_numpy(zero_copy_only=False)]
    used = np.unique(codes)
    # Codes of the WebIds present only (a dictionary may hold unused entries), renumbered 0..n-1 in order.
    renumber = np.full(len(rank), -1, np.int32)
    renumber[used] = np.arange(len(used), dtype=np.int32)
    return renumber[codes], dictionary.take(pa.array(rank[used]))


def _clean_order(rows: pa.Table, codes: np.ndarray) -> tuple[np.ndarray, int]:
    """The row indices to write, sorted by point, time and stored order, duplicates left out; and how many
    duplicates there were. A duplicate is a row identical to the row before it at the same timestamp."""
    stamps = rows.column("timestamp_ns").to_numpy()
    order = np.lexsort((stamps, codes))  # stable: equal (point, time) keep the stored order
    if len(order) < 2:
        return order, 0
    sorted_codes, sorted_stamps = codes[order], stamps[order]
    same_stamp = np.flatnonzero(
        (sorted_codes[1:] == sorted_codes[:-1]) & (sorted_stamps[1:] == sorted_stamps[:-1])
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


def _silver_batches(
    rows: pa.Table,
    codes: np.ndarray,
    order: np.ndarray,
    web_ids: pa.Array,
    context_rows: np.ndarray,
    context: pa.Table,
) -> Iterator[pa.RecordBatch]:
    """The silver rows, ``BATCH_ROWS`` at a time, their repeated strings dictionary-encoded."""
    sequence = _sequence(codes[order], rows.column("timestamp_ns").to_numpy()[order])
    for start in range(0, len(order), BATCH_ROWS):
        taken = order[start : start + BATCH_ROWS]
        batch = _silver_batch(rows.take(pa.array(taken)), codes[taken], web_ids, context_rows, context)
        yield batch.set_column(
            _SEQUENCE, _SILVER_INPUT.field("sequence"), pa.array(sequence[start : start + BATCH_ROWS])
        )


def _sequence(codes: np.ndarray, stamps: np.ndarray) -> np.ndarray:
    """Per sorted row, its position among the rows of its point at its timestamp."""
    if not len(codes):
        return np.zeros(0, np.int32)
    starts = np.r_[True, (codes[1:] != codes[:-1]) | (stamps[1:] != stamps[:-1])]
    first = np.maximum.accumulate(np.where(starts, np.arange(len(codes)), 0))
    return (np.arange(len(codes)) - first).astype(np.int32)


def _silver_batch(
    rows: pa.Table, codes: np.ndarray, web_ids: pa.Array, context_rows: np.ndarray, context: pa.Table
) -> pa.RecordBatch:
    system = rows.column("is_system").to_numpy()
    state_name = rows.column("state_name").chunk(0) if rows.num_rows else _EMPTY_NAMES
    state_code = rows.column("state_code")
    has_state = state_code.is_valid().to_numpy(zero_copy_only=False)
    code = state_code.fill_null(0).to_numpy()
    stamps = rows.column("timestamp_ns").to_numpy()
    at = context_rows[codes]
    known = at >= 0
    point = np.maximum(at, 0)
    columns: dict[str, object] = {
        "web_id": _dictionary(codes, np.ones(len(codes), bool), web_ids),
        "timestamp": pa.array(np.floor_divide(stamps, 1000), UTC_US),
        "timestamp_ns": stamps,
        "sequence": np.zeros(len(stamps), np.int32),
        "value": rows.column("value"),
        "string_value": rows.column("string_value"),
        "digital_state_code": pa.array(code, pa.int32(), mask=system | ~has_state),
        "digital_state_name": _masked(state_name, ~system),
        "system_state_code": pa.array(code, pa.int32(), mask=~system | ~has_state),
        "system_state_name": _masked(state_name, system),
        "is_good": rows.column("good"),
        "questionable": rows.column("questionable"),
        "substituted": rows.column("substituted"),
        "annotated": rows.column("annotated"),
        "engineering_units": rows.column("units").chunk(0) if rows.num_rows else _EMPTY_NAMES,
        "step": pa.array(context.column("step").to_numpy(zero_copy_only=False)[point], mask=~known)
        if len(context)
        else pa.nulls(len(codes), pa.bool_()),
        "af_attribute_count": np.where(
            known, context.column("af_attribute_count").to_numpy()[point] if len(context) else 0, 0
        ).astype(np.int32),
    }
    for name in _CONTEXT_STRINGS:
        values = context.column(name).combine_chunks() if len(context) else pa.nulls(0, pa.string())
        valid = known & values.is_valid().to_numpy(zero_copy_only=False)[point] if len(context) else known
        columns[name] = _dictionary(point, valid, values)
    return pa.RecordBatch.from_arrays(
        [_flat(columns[name]) for name in _SILVER_INPUT.names], schema=_SILVER_INPUT
    )


_EMPTY_NAMES = pa.DictionaryArray.from_arrays(pa.array([], pa.int32()), pa.array([], pa.string()))


def _dictionary(indices: np.ndarray, valid: np.ndarray, values: pa.Array) -> pa.DictionaryArray:
    """Strings ``values[indices]`` (null where not ``valid``) without copying them row by row."""
    return pa.DictionaryArray.from_arrays(pa.array(indices.astype(np.int32), mask=~valid), values)


def _masked(column: pa.DictionaryArray, keep: np.ndarray) -> pa.DictionaryArray:
    """``column`` with null where not ``keep``."""
    valid = keep & column.is_valid().to_numpy(zero_copy_only=False)
    indices = column.indices.fill_null(0).to_numpy(zero_copy_only=False)
    return _dictionary(indices, valid, column.dictionary)


def _flat(column: object) -> pa.Array:
    if isinstance(column, pa.ChunkedArray):
        return column.combine_chunks()
    return column if isinstance(column, pa.Array) else pa.array(column)


# -- AF context -------------------------------------------------------------------------------------------

_CONTEXT_SCHEMA = pa.schema(
    [pa.field("web_id", pa.string(), nullable=False)]
    + [SILVER_TIMESERIES.schema.field(name) for name in _CONTEXT_COLUMNS]
)


def _null_context(rows: int) -> pa.Table:
    return pa.table({f.name: pa.nulls(rows, f.type) for f in _CONTEXT_SCHEMA})


def _without_af(context_rows: np.ndarray, context: pa.Table) -> int:
    """How many of the partition's points have no AF attribute (or are not in the catalog)."""
    has_af = pc.is_valid(context.column("af_attribute_path")).to_numpy(zero_copy_only=False)
    return int(np.count_nonzero((context_rows < 0) | ~has_af[np.maximum(context_rows, 0)]))


def _context_rows(web_ids: pa.Array, context: pa.Table) -> np.ndarray:
    """Per WebId of the partition, its row in ``context`` or -1."""
    if not len(context):
        return np.full(len(web_ids), -1, np.int64)
    found = pc.index_in(web_ids, value_set=context.column("web_id"))
    return pc.fill_null(found, -1).to_numpy().astype(np.int64)


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
