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
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc

from osipi_dagster.ingest.rows import table_rows
from osipi_dagster.ingest.server_clock import find_data_server
from osipi_dagster.ingest.shards import shard_of
from osipi_dagster.lake import LakeTable, WriteResult, overwrite_table, read_table
from osipi_dagster.pi import PIWebAPIClient, Point


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


@dataclass(frozen=True)
class _Reference:
    attribute_path: str
    attribute_name: str
    element_web_id: str
    template: str


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
    """
    started = time.perf_counter()
    server = find_data_server(client, data_server)
    discovered = list(client.points(server.web_id))
    references = _references(af_attributes_table, hierarchy_table)
    template_elements = _elements_of_templates(client, point_filter.exact_templates)
    kept = [p for p in discovered if point_filter.keeps(p, _references_of(p, references), template_elements)]
    previous = {row["web_id"]: row for row in _dicts(read_table(points_table))}
    # A point renamed more than once has several rows with its identity: the active one wins (listed last).
    by_identity = {
        (row["data_server_web_id"], row["point_id"]): row
        for row in sorted(previous.values(), key=lambda row: not row["is_deleted"])
    }
    rows: dict[str, dict] = {}
    renamed_from: set[str] = set()  # the old WebIds of renamed points: a rename is not also a deletion
    added = 0
    for point in kept:
        before = previous.get(point.web_id)
        if before is None:
            before = by_identity.get((server.web_id, point.id))
            if before is None:
                added += 1
            else:
                renamed_from.add(before["web_id"])
        rows[point.web_id] = {
            "web_id": point.web_id,
            "point_id": point.id,
            "name": point.name,
            "path": point.path,
            "descriptor": point.descriptor,
            "point_class": point.point_class,
            "point_type": point.point_type,
            "digital_set_name": point.digital_set_name,
            "engineering_units": point.engineering_units,
            "step": point.step,
            "future": point.future,
            "data_server_web_id": server.web_id,
            "af_attribute_paths": [r.attribute_path for r in _references_of(point, references)],
            "tag_shard": shard_of(f"{server.id}:{point.id}", shard_count),
            "first_seen": before["first_seen"] if before else now,
            "last_seen": now,
            "is_deleted": False,
        }
    gone = [row for web_id, row in previous.items() if web_id not in rows]
    # Deleted: rows active until now that are gone. A rename's old row is not a deletion; subtracting the
    # rename count instead would hide a real deletion whenever the old row was already deleted.
    removed = [row for row in gone if not row["is_deleted"] and row["web_id"] not in renamed_from]
    deleted = len(removed)
    previously_active = sum(1 for row in previous.values() if not row["is_deleted"])
    if (
        deleted
        and confirm_removed != deleted
        and (len(kept) == 0 or deleted > max_removed_share * previously_active)
    ):
        raise CatalogShrinkError(
            _shrink_message(
                removed, previously_active, len(discovered), len(kept), point_filter, max_removed_share
            )
        )
    for row in gone:
        rows[row["web_id"]] = {**row, "is_deleted": True}
    write = overwrite_table(points_table, table_rows(points_table, rows.values()), ingested_at=now)
    shard_counts: dict[str, int] = {}
    for row in rows.values():
        if not row["is_deleted"]:
            shard_counts[row["tag_shard"]] = shard_counts.get(row["tag_shard"], 0) + 1
    return CatalogResult(
        active=len(kept),
        added=added,
        deleted=deleted,
        renamed=len(renamed_from),
        excluded=len(discovered) - len(kept),
        shard_counts=dict(sorted(shard_counts.items())),
        write=write,
        duration_seconds=time.perf_counter() - started,
    )


def _shrink_message(
    removed: list[dict],
    previously_active: int,
    discovered: int,
    kept: int,
    point_filter: PointFilter,
    max_removed_share: float,
) -> str:
    examples = ", ".join(row["name"] for row in removed[:5])
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
    rows = read_table(points_table)
    if rows is None:
        return {}
    active = rows.filter(pc.invert(rows["is_deleted"])).select(["web_id", "tag_shard"])
    return dict(zip(active["web_id"].to_pylist(), active["tag_shard"].to_pylist(), strict=True))


def points_first_seen(points_table: LakeTable, after: datetime, until: datetime) -> dict[str, str]:
    """The active points that entered the catalog in ``(after, until]``: WebId -> tag shard. A renamed point
    keeps its ``first_seen``, so a rename is not new."""
    rows = read_table(points_table)
    if rows is None:
        return {}
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
    rows = read_table(points_table)
    if rows is None:
        raise LookupError(f"{points_table} does not exist yet: materialize the pi_points asset first.")
    catalog = list(_dicts(rows))
    active_identities = {
        (row["data_server_web_id"], row["point_id"]) for row in catalog if not row["is_deleted"]
    }
    return ShardPoints(
        read=sorted(
            row["web_id"] for row in catalog if row["tag_shard"] == tag_shard and not row["is_deleted"]
        ),
        keep=frozenset(
            row["web_id"]
            for row in catalog
            if row["is_deleted"] and (row["data_server_web_id"], row["point_id"]) not in active_identities
        ),
        future=frozenset(row["web_id"] for row in catalog if row["tag_shard"] == tag_shard and row["future"]),
    )


def _matches_any(name: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(name.upper(), pattern.upper()) for pattern in patterns)


def _dicts(table: pa.Table | None) -> Iterator[dict]:
    return iter(()) if table is None else iter(table.to_pylist())


def _references(af_attributes_table: LakeTable, hierarchy_table: LakeTable) -> dict[str, list[_Reference]]:
    """AF attributes by the point they reference, keyed by point WebId and by upper-case point path."""
    templates = {row["web_id"]: row["template_name"] or "" for row in _dicts(read_table(hierarchy_table))}
    found: dict[str, list[_Reference]] = {}
    for row in _dicts(read_table(af_attributes_table)):
        if row["data_reference"] != "PI Point":
            continue
        element = row["element_web_id"]
        reference = _Reference(row["path"], row["name"], element, templates.get(element, ""))
        point_path = (row["config_string"] or "").split(";")[0].upper()
        for key in {row["point_web_id"], point_path} - {None, ""}:
            found.setdefault(key, []).append(reference)
    return found


def _references_of(point: Point, references: dict[str, list[_Reference]]) -> list[_Reference]:
    return references.get(point.web_id) or references.get(point.path.upper(), [])


def _elements_of_templates(client: PIWebAPIClient, templates: Sequence[str]) -> set[str]:
    """The WebIds of elements of ``templates`` or templates derived from them, as PI's search finds them."""
    return {
        element.web_id
        for template in templates
        for server in client.asset_servers()
        for database in client.asset_databases(server.web_id)
        for element in client.elements(database.web_id, template_name=template)
    }
