"""The AF hierarchy and attributes: a full refresh of two small catalog tables.

Every element of every asset database is read (flat and paged, never capped at 1,000), then each
element's attributes with their PI point reference resolved. Both tables are replaced whole, each in one
commit; the diff against the previous version (added, removed, changed elements) is returned for metadata.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from osipi_dagster.ingest.rows import table_rows
from osipi_dagster.lake import LakeTable, RowDiff, WriteResult, diff_rows, overwrite_table, read_table
from osipi_dagster.pi import Attribute, Element, PIWebAPIClient

# Attributes are listed one element at a time (PI has no bulk call for them); a few requests in flight
# hide the round trips without loading the server much.
ATTRIBUTE_READERS = 4


@dataclass(frozen=True)
class AFResult:
    """What one refresh of the AF tables found and wrote."""

    databases: int
    hierarchy: WriteResult
    attributes: WriteResult
    element_diff: RowDiff
    attribute_diff: RowDiff
    duration_seconds: float


def refresh_af(client: PIWebAPIClient, hierarchy_table: LakeTable, attributes_table: LakeTable) -> AFResult:
    """Read every AF database's elements and attributes and replace both tables."""
    started = time.perf_counter()
    elements: list[tuple[str, Element]] = []
    databases = 0
    for server in client.asset_servers():
        for database in client.asset_databases(server.web_id):
            databases += 1
            elements += [(database.web_id, element) for element in client.elements(database.web_id)]
    with ThreadPoolExecutor(ATTRIBUTE_READERS, thread_name_prefix="af-attributes") as pool:
        attribute_lists = list(pool.map(lambda item: client.attributes(item[1].web_id), elements))
    hierarchy_rows = table_rows(hierarchy_table, _hierarchy_rows(elements))
    attribute_rows = table_rows(attributes_table, _attribute_rows(elements, attribute_lists))
    element_diff = diff_rows(read_table(hierarchy_table), hierarchy_rows, key=["web_id"])
    attribute_diff = diff_rows(read_table(attributes_table), attribute_rows, key=["web_id"])
    hierarchy = overwrite_table(hierarchy_table, hierarchy_rows)
    attributes = overwrite_table(attributes_table, attribute_rows)
    return AFResult(
        databases=databases,
        hierarchy=hierarchy,
        attributes=attributes,
        element_diff=element_diff,
        attribute_diff=attribute_diff,
        duration_seconds=time.perf_counter() - started,
    )


def _hierarchy_rows(elements: list[tuple[str, Element]]) -> Iterator[dict]:
    for database_web_id, element in elements:
        yield {
            "web_id": element.web_id,
            "parent_web_id": element.parent_web_id,
            "name": element.name,
            "path": element.path,
            "depth": element.depth,
            "template_name": element.template_name,
            "category_names": list(element.category_names),
            "description": element.description,
            "database_web_id": database_web_id,
        }


def _attribute_rows(elements: list[tuple[str, Element]], attributes: list[list[Attribute]]) -> Iterator[dict]:
    for (_, element), element_attributes in zip(elements, attributes, strict=True):
        for attribute in element_attributes:
            yield {
                "web_id": attribute.web_id,
                "element_web_id": element.web_id,
                "name": attribute.name,
                "path": attribute.path,
                "type": attribute.type,
                "units": attribute.default_units_name_abbreviation,
                "data_reference": attribute.data_reference_plug_in,
                "config_string": attribute.config_string,
                "point_web_id": attribute.point_web_id,
                "category_names": list(attribute.category_names),
            }
