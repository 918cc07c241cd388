"""The tag catalog ``bronze.pi_points``: which points are read, their shard, and their history.

Points come from the Data Archive, joined with the AF attributes that reference them (from the AF tables,
when they were materialized). Include and exclude name patterns (PI wildcards ``*`` and ``?``) and AF
filters (element template, attribute name) choose the points to read.

Nothing is silently lost: a point that disappears from PI, is renamed (same server and point id, new
WebId) or falls out of the filters keeps its row with ``is_deleted = true`` and its ``last_seen``, and the
result counts it. ``first_seen`` survives renames. The shard is a stable hash of the data server's id and
the point id, so neither renames nor new points move a point to another shard.
"""

from __future__ import annotations

import fnmatch
import functools
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import chain, islice
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs

from osipi_dagster.ingest.server_clock import find_data_server
from osipi_dagster.ingest.shards import shard_of
from osipi_dagster.ingest.shrink import removal_refused
from osipi_dagster.lake import (
    LakeTable,
    StagedRows,
    WriteResult,
    overwrite_table_batches,
    scan_files,
    table_files,
)
from osipi_dagster.lake.schemas import POINTS
from osipi_dagster.pi import POINT_FIELDS, PIWebAPIClient, Point


@dataclass(frozen=True)
class PointFilter:
    """Which points the catalog keeps. Patterns use PI wildcards and ignore case."""

    include: Sequence[str] = ("*",)
    exclude: Sequence[str] = ()
    # Keep points referenced from elements of these templates, or of templates derived from them (as PI's
    # own templateName search does); a pattern with wildcards matches the element's own template name.
    af_templates: Sequence[str] = ()
    af_attribute_names: Sequence[str] = ()  # keep points referenced by attributes with these names

    def keeps(self, point: Point, references: list[_Reference], template_elements: set[str]) -> bool:
        if not _matches_any(point.name, self.include) or _matches_any(point.name, self.exclude):
            return False
        if self.af_templates and not any(
            r.element_web_id in template_elements or _matches_any(r.template, self.wildcard_templates)
            for r in references
        ):
            return False
        return not self.af_attribute_names or any(
            _matches_any(r.attribute_name, self.af_attribute_names) for r in references
        )

    @property
    def exact_templates(self) -> list[str]:
        return [t for t in self.af_templates if not any(c in t for c in "*?")]

    @property
    def wildcard_templates(self) -> list[str]:
        return [t for t in self.af_templates if any(c in t for c in "*?")]


class CatalogShrinkError(RuntimeError):
    """A refresh would mark too many active points deleted; nothing was written."""


@dataclass(frozen=True)
class ShardPoints:
    """What one shard's time-series partitions read, and whose rows they must keep.

    Attributes:
        read: the WebIds of the shard's active points, in a stable order.
        keep: the WebIds of points the catalog keeps as deleted (gone from PI, or filtered out): their rows
            stay in the lake when a slice is replaced, since they are history nobody can read again. A
            renamed point's old WebId is not kept: its values are read again under its new WebId.
    """

    read: list[str]
    keep: frozenset[str]
    future: frozenset[str] = frozenset()  # points that hold future data by design (PI's Future attribute)


@dataclass(frozen=True)
class CatalogResult:
    """What one catalog refresh found."""

    active: int
    added: int
    deleted: int
    renamed: int
    excluded: int
    shard_counts: dict[str, int]
    write: WriteResult
    duration_seconds: float


class _Reference(NamedTuple):
    """An AF attribute that references a point (one made per reference a refresh finds: a named tuple is
    made in about a third of a frozen dataclass's time)."""

    attribute_path: str
    attribute_name: str
    element_web_id: str
    template: str


# Points per request of the point listing, and rows per staged page.
PAGE_SIZE = 10_000


def refresh_point_catalog(
    client: PIWebAPIClient,
    points_table: LakeTable,
    *,
    af_attributes_table: LakeTable,
    hierarchy_table: LakeTable,
    shard_count: int,
    point_filter: PointFilter,
    now: datetime,
    data_server: str | None = None,
    max_removed_share: float = 0.10,
    confirm_removed: int | None = None,
) -> CatalogResult:
    """Discover the server's points, apply the filters and replace ``bronze.pi_points`` in one commit.

    A refresh that would mark every active point deleted, or more than ``max_removed_share`` of them, raises
    :class:`CatalogShrinkError` and writes nothing, unless ``confirm_removed`` equals the number of points it
    would mark deleted: an empty or shrunken answer from PI (a filter typo, a permission change, a proxy)
    must not become a mass deletion that the next closed-day run acts on.

    Points are read, matched with the previous catalog and staged on local disk one page at a time; the
    previous catalog is held as a few compact columns, so memory does not grow with whole rows of either.
    """
    started = time.perf_counter()
    server = find_data_server(client, data_server)
    references = _ReferenceIndex(af_attributes_table, hierarchy_table)
    template_elements = _elements_of_templates(client, point_filter.exact_templates)
    previous = _PreviousCatalog(points_table)
    schema = pa.schema([field for field in POINTS.schema if field.name != "ingested_at"])
    discovered = kept = added = 0
    shard_counts: dict[str, int] = {}
    listing = client.points(server.web_id, page_size=PAGE_SIZE, selected_fields=POINT_FIELDS)
    with StagedRows(schema) as staged:
        while page := list(islice(listing, PAGE_SIZE)):
            discovered += len(page)
            page_references = references.of(page)
            listed = [
                point
                for point in page
                if point_filter.keeps(point, page_references.get(point.web_id, []), template_elements)
            ]
            seen = previous.first_seen(listed, server.web_id)
            added += seen.count(None)
            shards = [shard_of(f"{server.id}:{point.id}", shard_count) for point in listed]
            for shard in shards:
                shard_counts[shard] = shard_counts.get(shard, 0) + 1
            attribute_paths = [
                [r.attribute_path for r in page_references.get(point.web_id, [])] for point in listed
            ]
            first_seen = [at or now for at in seen]
            kept += len(listed)
            columns = {"tag_shard": shards, "first_seen": first_seen, "af_attribute_paths": attribute_paths}
            staged.append(_point_rows(schema, listed, server.web_id, columns, now))
        removed = previous.removed()
        if removal_refused(
            len(removed),
            previous.active,
            kept,
            max_removed_share=max_removed_share,
            confirm_removed=confirm_removed,
        ):
            raise CatalogShrinkError(
                _shrink_message(removed, previous.active, discovered, kept, point_filter, max_removed_share)
            )
        write = overwrite_table_batches(
            points_table, chain(staged.batches(), previous.gone_rows(schema)), ingested_at=now
        )
    return CatalogResult(
        active=kept,
        added=added,
        deleted=len(removed),
        renamed=previous.renamed,
        excluded=discovered - kept,
        shard_counts=dict(sorted(shard_counts.items())),
        write=write,
        duration_seconds=time.perf_counter() - started,
    )


def _point_rows(
    schema: pa.Schema,
    points: list[Point],
    data_server_web_id: str,
    columns: dict[str, list],
    now: datetime,
) -> pa.RecordBatch:
    """The catalog rows of ``points``, active and last seen ``now``, with the ``columns`` a refresh works out
    (``tag_shard``, ``first_seen``, ``af_attribute_paths``: one item a point). Built column by column: a dict
    per row for ``from_pylist`` cost three times the CPU (32-37 against 11-13 ms for 10,000 points)."""
    count = len(points)
    return pa.RecordBatch.from_pydict(
        {
            "web_id": [point.web_id for point in points],
            "point_id": [point.id for point in points],
            "name": [point.name for point in points],
            "path": [point.path for point in points],
            "descriptor": [point.descriptor for point in points],
            "point_class": [point.point_class for point in points],
            "point_type": [point.point_type for point in points],
            "digital_set_name": [point.digital_set_name for point in points],
            "engineering_units": [point.engineering_units for point in points],
            "step": [point.step for point in points],
            "future": [point.future for point in points],
            "data_server_web_id": [data_server_web_id] * count,
            **columns,
            "last_seen": [now] * count,
            "is_deleted": [False] * count,
        },
        schema=schema,
    )


class _PreviousCatalog:
    """The catalog before this refresh, as the few columns a refresh matches points with.

    A point is the same point when its WebId is; failing that, when its identity (data server WebId and
    point id) is: a rename, whose old row stays (deleted) and whose ``first_seen`` carries over. A point
    renamed more than once has several rows with its identity: the active one wins.
    """

    COLUMNS = ("web_id", "data_server_web_id", "point_id", "name", "first_seen", "is_deleted")

    def __init__(self, table: LakeTable) -> None:
        self.table = table
        self._files = table_files(table)  # one version, read now and again for the rows gone
        self.rows = _read_columns(table, self.COLUMNS, files=self._files)
        self._web_ids = self.rows["web_id"].to_pylist()
        self._first_seen = self.rows["first_seen"]
        deleted = self.rows["is_deleted"].to_numpy(zero_copy_only=False)
        self.active = int((~deleted).sum())
        self._deleted = deleted
        self._by_web_id = _HashIndex(self._web_ids)
        servers, point_ids = self.rows["data_server_web_id"].to_pylist(), self.rows["point_id"].to_pylist()
        identities = list(zip(servers, point_ids, strict=True))
        self._by_identity = _HashIndex(identities, prefer=~deleted)
        self._seen = np.zeros(self.rows.num_rows, bool)
        self._renamed_from = np.zeros(self.rows.num_rows, bool)
        self.renamed = 0

    def first_seen(self, points: list[Point], data_server_web_id: str) -> list[datetime | None]:
        """When each of ``points`` (of the data server ``data_server_web_id``) was first seen (None for a
        new point); marks their previous rows as still there, or renamed."""
        positions = self._by_web_id.find_all([point.web_id for point in points])
        for index, (point, at) in enumerate(zip(points, positions, strict=True)):
            if at is not None:
                self._seen[at] = True
                continue
            at = positions[index] = self._by_identity.find((data_server_web_id, point.id))
            if at is not None and not self._renamed_from[at]:
                self._renamed_from[at] = True
                self.renamed += 1
        return self._first_seen.take(pa.array(positions, pa.int64())).to_pylist()

    def removed(self) -> list[str]:
        """The names of the points active until now that are gone. A rename's old row is not a deletion;
        subtracting the rename count instead would hide a real deletion whenever the old row was already
        deleted."""
        gone = ~self._seen & ~self._deleted & ~self._renamed_from
        return self.rows["name"].filter(pa.array(gone)).to_pylist()

    def gone_rows(self, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
        """Every previous row this refresh did not list again, marked deleted (renames' old rows too)."""
        gone = self.rows["web_id"].filter(pa.array(~self._seen))
        if not len(gone):
            return iter(())
        # File by file in this thread (the generator runs within delta-rs's write): Arrow's dataset scanner
        # read ahead with its threads and held about 40 MiB more when 66,000 of 100,000 points were renamed.
        rows = (
            batch.filter(pc.is_in(batch.column("web_id"), value_set=gone))
            for batch in scan_files(self._files, schema.names, 10_000)
        )
        return (
            batch.set_column(
                batch.schema.get_field_index("is_deleted"), "is_deleted", pa.repeat(True, batch.num_rows)
            ).cast(schema)
            for batch in rows
            if batch.num_rows
        )


def _read_columns(
    table: LakeTable,
    columns: Sequence[str],
    keep: Callable[[pa.RecordBatch], pa.ChunkedArray | pa.Array] | None = None,
    *,
    files: list[tuple[str, pafs.FileSystem]] | None = None,
) -> pa.Table:
    """``columns`` of the table's rows (those ``keep`` selects; of ``files``, a version's files listed
    before, or else the current version's), typed by its spec even when it is empty."""
    assert table.spec is not None  # the catalog tables are known tables
    schema = pa.schema([table.spec.schema.field(name) for name in columns])
    scanned = scan_files(table_files(table) if files is None else files, columns, 50_000)
    batches = [(batch if keep is None else batch.filter(keep(batch))).cast(schema) for batch in scanned]
    return pa.Table.from_batches(batches, schema=schema).combine_chunks()


class _HashIndex:
    """Positions of values in a list through sorted 64-bit hashes, 16 bytes a value (a dict of the values
    themselves would hold every string twice)."""

    def __init__(self, values: list, prefer: np.ndarray | None = None) -> None:
        self._values = values
        hashes = np.fromiter(map(hash, values), np.int64, len(values))
        # Among equal values, the preferred (then the last) position is found first.
        rank = np.zeros(len(values), np.int8) if prefer is None else (~prefer).astype(np.int8)
        order = np.lexsort((-np.arange(len(values)), rank, hashes))
        self._hashes, self._positions = hashes[order], order

    def find_all(self, values: list) -> list[int | None]:
        """:meth:`find` of each of ``values``, the hashes looked up at once: the first position with a
        value's hash holds the value but for a collision, which :meth:`find` then resolves."""
        if not len(self._hashes):
            return [None] * len(values)
        wanted = np.fromiter(map(hash, values), np.int64, len(values))
        at = np.minimum(np.searchsorted(self._hashes, wanted), len(self._hashes) - 1)
        hashed = (self._hashes[at] == wanted).tolist()
        return [
            (position if self._values[position] == value else self.find(value)) if hit else None
            for value, hit, position in zip(values, hashed, self._positions[at].tolist(), strict=True)
        ]

    def find(self, value: object) -> int | None:
        """A position of ``value``, or None."""
        wanted = hash(value)
        at = int(np.searchsorted(self._hashes, wanted))
        while at < len(self._hashes) and self._hashes[at] == wanted:
            position = int(self._positions[at])
            if self._values[position] == value:
                return position
            at += 1
        return None


def _shrink_message(
    removed: list[str],
    previously_active: int,
    discovered: int,
    kept: int,
    point_filter: PointFilter,
    max_removed_share: float,
) -> str:
    examples = ", ".join(removed[:5])
    filters = ", ".join(
        f"{name}={list(getattr(point_filter, name))}"
        for name in ("include", "exclude", "af_templates", "af_attribute_names")
        if getattr(point_filter, name)
    )
    limit = "all of them" if kept == 0 else f"more than {max_removed_share:.0%} of them"
    return (
        f"Refusing to mark {len(removed)} of the {previously_active} active points deleted ({limit}; e.g. "
        f"{examples}): PI Web API listed {discovered} points and the filters ({filters or 'none'}) kept "
        f"{kept}. Nothing was written. If a filter, a permission or the PI server changed by mistake, fix "
        f"it and re-run. If these points really are gone, confirm with the pi_points run config "
        f"`confirm_removed_points: {len(removed)}` (the exact count), or raise catalog_max_removed_share "
        "(OSIPI_CATALOG_MAX_REMOVED_SHARE); deleted points keep their history in the lake."
    )


def active_points(points_table: LakeTable) -> dict[str, str]:
    """Every active point of the catalog: WebId -> tag shard (empty before the first refresh)."""
    if not points_table.exists():
        return {}
    rows = _read_columns(points_table, ("web_id", "tag_shard", "is_deleted"))
    active = rows.filter(pc.invert(rows["is_deleted"])).select(["web_id", "tag_shard"])
    return dict(zip(active["web_id"].to_pylist(), active["tag_shard"].to_pylist(), strict=True))


def points_first_seen(points_table: LakeTable, after: datetime, until: datetime) -> dict[str, str]:
    """The active points that entered the catalog in ``(after, until]``: WebId -> tag shard. A renamed point
    keeps its ``first_seen``, so a rename is not new."""
    if not points_table.exists():
        return {}
    rows = _read_columns(points_table, ("web_id", "tag_shard", "is_deleted", "first_seen"))
    first_seen = rows["first_seen"]
    new = rows.filter(
        pc.and_(
            pc.invert(rows["is_deleted"]),
            pc.and_(
                pc.greater(first_seen, pa.scalar(after, first_seen.type)),
                pc.less_equal(first_seen, pa.scalar(until, first_seen.type)),
            ),
        )
    )
    return dict(zip(new["web_id"].to_pylist(), new["tag_shard"].to_pylist(), strict=True))


def shard_points(points_table: LakeTable, tag_shard: str) -> ShardPoints:
    """The points of ``tag_shard`` to read, and the deleted points whose rows every slice keeps."""
    if not points_table.exists():
        raise LookupError(f"{points_table} does not exist yet: materialize the pi_points asset first.")
    rows = _read_columns(
        points_table, ("web_id", "tag_shard", "is_deleted", "future", "data_server_web_id", "point_id")
    )
    deleted, in_shard = rows["is_deleted"], pc.equal(rows["tag_shard"], tag_shard)
    identity = pc.binary_join_element_wise(
        rows["data_server_web_id"], pc.cast(rows["point_id"], pa.string()), ":", null_handling="replace"
    )
    active_identities = identity.filter(pc.invert(deleted))
    keep = rows.filter(pc.and_(deleted, pc.invert(pc.is_in(identity, value_set=active_identities))))
    return ShardPoints(
        read=sorted(rows.filter(pc.and_(in_shard, pc.invert(deleted)))["web_id"].to_pylist()),
        keep=frozenset(keep["web_id"].to_pylist()),
        future=frozenset(rows.filter(pc.and_(in_shard, rows["future"]))["web_id"].to_pylist()),
    )


def _matches_any(name: str, patterns: Sequence[str]) -> bool:
    return bool(patterns) and _any_of(tuple(patterns)).match(name.upper()) is not None


@functools.lru_cache(maxsize=64)
def _any_of(patterns: tuple[str, ...]) -> re.Pattern[str]:
    """One expression for ``patterns`` (PI wildcards, upper-cased), matched once a name: a refresh matches
    every point's name with the filters."""
    return re.compile("|".join(fnmatch.translate(pattern.upper()) for pattern in patterns))


class _ReferenceIndex:
    """The AF attributes that reference points (the "PI Point" rows of the AF attributes table, with their
    element's template), held as Arrow columns and looked up a page of points at a time."""

    def __init__(self, af_attributes_table: LakeTable, hierarchy_table: LakeTable) -> None:
        columns = ("path", "name", "element_web_id", "data_reference", "config_string", "point_web_id")
        attributes = _read_columns(
            af_attributes_table, columns, lambda batch: pc.equal(batch["data_reference"], "PI Point")
        )
        templates = _read_columns(hierarchy_table, ("web_id", "template_name"))
        point_path = pc.utf8_upper(pc.list_element(pc.split_pattern(attributes["config_string"], ";"), 0))
        self.references = (
            attributes.append_column("point_path", point_path)
            .join(templates, keys="element_web_id", right_keys="web_id", join_type="left outer")
            .combine_chunks()
        )

    def of(self, points: list[Point]) -> dict[str, list[_Reference]]:
        """The references of each of ``points`` by point WebId: those naming its WebId, else its path
        (looked up only for the points that no reference names by WebId)."""
        found = self._lookup("point_web_id", [p.web_id for p in points])
        unnamed = [point for point in points if point.web_id not in found]
        by_path = self._lookup("point_path", [p.path.upper() for p in unnamed])
        found.update(
            (point.web_id, references) for point in unnamed if (references := by_path.get(point.path.upper()))
        )
        return found

    def _lookup(self, column: str, keys: list[str]) -> dict[str, list[_Reference]]:
        rows = self.references.filter(
            pc.is_in(self.references[column], value_set=pa.array(keys, pa.string()))
        )
        # Column by column, only the columns a reference keeps: a dict per row of every column cost 1.6 times
        # the CPU (42 against 27 ms for 10,000 points among 200,000 references).
        found: dict[str, list[_Reference]] = {}
        for key, path, name, element, template in zip(
            *(rows[name].to_pylist() for name in (column, "path", "name", "element_web_id", "template_name")),
            strict=True,
        ):
            found.setdefault(key, []).append(_Reference(path, name, element, template or ""))
        return found


def _elements_of_templates(client: PIWebAPIClient, templates: Sequence[str]) -> set[str]:
    """The WebIds of elements of ``templates`` or templates derived from them, as PI's search finds them."""
    return {
        element.web_id
        for template in templates
        for server in client.asset_servers()
        for database in client.asset_databases(server.web_id)
        for element in client.elements(
            database.web_id, template_name=template, selected_fields=("Items.WebId", "Items.Path")
        )
    }
