"""The AF hierarchy and attributes: a full refresh of two catalog tables, page by page.

Every element of every asset database is read (flat and paged, never capped at 1,000), then the attributes
of all of a database's elements in one paged search (PI's FindElementAttributes), with their PI point
reference resolved; ``selectedFields`` keeps only what the tables store. Pages are compared with the
tables' current rows as they come (the elements once every parent is known by its path: they are staged on
local disk until then) and staged on local disk from the first row that differs
(:class:`~osipi_dagster.lake.ComparedRows`), so memory holds a page and a path -> WebId entry per element,
not the AF model. Each table is then replaced in one commit, or left as it is when nothing in it changed; the
diff (added, removed, changed rows) is returned for metadata.

An answer that would remove every element (or attribute) the lake holds, or more than ``max_removed_share``
of them, raises :class:`AFShrinkError` before either table is written (``ingest/shrink.py``): an asset
database hidden by a permission change, taken offline or renamed behind a proxy is not a mass deletion,
since the point catalog's AF filters and every AF join downstream would act on it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa

from osipi_dagster.ingest.shrink import removal_refused
from osipi_dagster.lake import (
    ComparedRows,
    LakeTable,
    RowDiff,
    StagedRows,
    WriteResult,
    overwrite_table_batches,
)
from osipi_dagster.pi import ATTRIBUTE_FIELDS, ELEMENT_FIELDS, Attribute, Element, PIWebAPIClient
from osipi_dagster.pi.discovery import element_parent

# Objects per request: 10,000 attributes are a few MB of JSON, and a million attributes take 100 requests.
PAGE_SIZE = 10_000


class AFShrinkError(RuntimeError):
    """A refresh would remove too many of the AF elements or attributes the lake holds; nothing was
    written."""


@dataclass(frozen=True)
class AFResult:
    """What one refresh of the AF tables found and wrote; a write is None when its table was unchanged."""

    databases: int
    element_count: int
    attribute_count: int
    hierarchy: WriteResult | None
    attributes: WriteResult | None
    element_diff: RowDiff
    attribute_diff: RowDiff
    duration_seconds: float


def refresh_af(
    client: PIWebAPIClient,
    hierarchy_table: LakeTable,
    attributes_table: LakeTable,
    *,
    page_size: int = PAGE_SIZE,
    max_removed_share: float = 0.10,
    confirm_removed_elements: int | None = None,
    confirm_removed_attributes: int | None = None,
) -> AFResult:
    """Read every AF database's elements and attributes and replace both tables (each only if it changed);
    ``page_size`` objects per request and per staged page.

    Raises:
        AFShrinkError: the answer removes every element or attribute the tables hold, or more than
            ``max_removed_share`` of them, and the matching ``confirm_removed_*`` is not that exact count;
            neither table was written.
    """
    started = time.perf_counter()
    databases: list[str] = []
    # Every element's upper-cased path -> WebId: attributes name their element by Links.Element, and a
    # server that leaves it out still gives the attribute's path, whose element part is the element's path;
    # elements find their parent by its path once every page is read (PI sorts the listing by name).
    owners: dict[str, str] = {}
    with (
        StagedRows(_schema(hierarchy_table)) as listed,
        ComparedRows(hierarchy_table, key=["web_id"]) as elements,
        ComparedRows(attributes_table, key=["web_id"]) as attributes,
    ):
        for server in client.asset_servers():
            for database in client.asset_databases(server.web_id):
                databases.append(database.path)
                for page in client.element_pages(
                    database.web_id, page_size=page_size, selected_fields=ELEMENT_FIELDS
                ):
                    owners.update((element.path.upper(), element.web_id) for element in page)
                    listed.append(_hierarchy_batch(listed.schema, database.web_id, page))
                for found in client.element_attributes(
                    database.web_id, page_size=page_size, selected_fields=ATTRIBUTE_FIELDS
                ):
                    attributes.append(_attribute_batch(attributes.schema, found, owners))
        for batch in listed.batches(page_size):
            elements.append(_with_parents(batch, owners))
        element_diff, attribute_diff = elements.diff(), attributes.diff()
        _refuse_a_shrink(
            [
                _Removal("elements", element_diff, elements.rows, confirm_removed_elements),
                _Removal("attributes", attribute_diff, attributes.rows, confirm_removed_attributes),
            ],
            databases,
            max_removed_share,
        )
        hierarchy = _write_if_changed(hierarchy_table, elements, element_diff)
        attributes_write = _write_if_changed(attributes_table, attributes, attribute_diff)
        return AFResult(
            databases=len(databases),
            element_count=elements.rows,
            attribute_count=attributes.rows,
            hierarchy=hierarchy,
            attributes=attributes_write,
            element_diff=element_diff,
            attribute_diff=attribute_diff,
            duration_seconds=time.perf_counter() - started,
        )


@dataclass(frozen=True)
class _Removal:
    """What a refresh does to one AF table's rows, and the count its run config confirms."""

    what: str  # "elements" or "attributes": the table's rows, and its run config field's suffix
    diff: RowDiff
    listed: int
    confirmed: int | None

    @property
    def previous(self) -> int:
        return self.diff.removed + self.diff.changed + self.diff.unchanged


def _refuse_a_shrink(removals: list[_Removal], databases: list[str], max_removed_share: float) -> None:
    refused = [
        removal
        for removal in removals
        if removal_refused(
            removal.diff.removed,
            removal.previous,
            removal.listed,
            max_removed_share=max_removed_share,
            confirm_removed=removal.confirmed,
        )
    ]
    if not refused:
        return
    counts = " and ".join(
        f"{r.diff.removed} of the {r.previous} AF {r.what} "
        f"({'all of them' if not r.listed else f'more than {max_removed_share:.0%} of them'})"
        for r in refused
    )
    listed = " and ".join(f"{r.listed} {r.what}" for r in removals)
    where = f"{len(databases)} asset database(s) ({', '.join(databases[:5]) or 'none'})"
    confirm = " and ".join(f"`confirm_removed_{r.what}: {r.diff.removed}`" for r in refused)
    raise AFShrinkError(
        f"Refusing to remove {counts} the lake holds: PI Web API listed {where} with {listed}. Nothing was "
        "written. If an asset database, a permission or the PI server changed by mistake, fix it and re-run. "
        f"If these really are gone, confirm with the pi_af run config {confirm} (the exact counts), or raise "
        "catalog_max_removed_share (OSIPI_CATALOG_MAX_REMOVED_SHARE)."
    )


def _schema(table: LakeTable) -> pa.Schema:
    assert table.spec is not None  # the AF tables are known tables
    return pa.schema([field for field in table.spec.schema if field.name != "ingested_at"])


def _write_if_changed(table: LakeTable, rows: ComparedRows, diff: RowDiff) -> WriteResult | None:
    if table.exists() and not (diff.added or diff.removed or diff.changed):
        return None
    return overwrite_table_batches(table, rows.batches())


def _hierarchy_batch(schema: pa.Schema, database_web_id: str, elements: Sequence[Element]) -> pa.RecordBatch:
    # Column by column, as :func:`_attribute_batch` (a dict per row cost more than twice the CPU).
    return pa.RecordBatch.from_pydict(
        {
            "web_id": [element.web_id for element in elements],
            "parent_web_id": [element.parent_web_id for element in elements],
            "name": [element.name for element in elements],
            "path": [element.path for element in elements],
            "depth": [element.depth for element in elements],
            "template_name": [element.template_name for element in elements],
            "category_names": [element.category_names for element in elements],
            "description": [element.description for element in elements],
            "database_web_id": [database_web_id] * len(elements),
        },
        schema=schema,
    )


def _with_parents(batch: pa.RecordBatch, owners: dict[str, str]) -> pa.RecordBatch:
    """``batch`` (hierarchy rows whose ``parent_web_id`` is the element's ``Links.Parent``) with each
    element's parent found by its path among every element listed (``owners``)."""
    linked = batch.column("parent_web_id").to_pylist()
    parents = [
        element_parent(path, parent, owners)
        for path, parent in zip(batch.column("path").to_pylist(), linked, strict=True)
    ]
    at = batch.schema.get_field_index("parent_web_id")
    return batch.set_column(at, batch.schema.field(at), pa.array(parents, pa.string()))


def _attribute_batch(
    schema: pa.Schema, attributes: list[Attribute], owners: dict[str, str]
) -> pa.RecordBatch:
    # Column by column: a dict per row for ``from_pylist`` cost 2.4 times the CPU (10.8 against 4.5 ms for
    # 10,000 attributes).
    return pa.RecordBatch.from_pydict(
        {
            "web_id": [attribute.web_id for attribute in attributes],
            "element_web_id": [
                attribute.element_web_id or owners.get(attribute.path.split("|", 1)[0].upper())
                for attribute in attributes
            ],
            "name": [attribute.name for attribute in attributes],
            "path": [attribute.path for attribute in attributes],
            "type": [attribute.type for attribute in attributes],
            "units": [attribute.default_units_name_abbreviation for attribute in attributes],
            "data_reference": [attribute.data_reference_plug_in for attribute in attributes],
            "config_string": [attribute.config_string for attribute in attributes],
            "point_web_id": [attribute.point_web_id for attribute in attributes],
            "category_names": [attribute.category_names for attribute in attributes],
        },
        schema=schema,
    )
