"""Unity Catalog names and external Delta tables for the lakehouse's tables (no Dagster).

With the ``databricks`` compute target, a table ``<schema>.<table>`` of the lakehouse is also
``<catalog>.<schema>.<table>`` in Unity Catalog: an EXTERNAL Delta table over the same files, registered
through the Unity Catalog REST API (``POST /api/2.1/unity-catalog/tables``; the SDK has no call for it),
its columns taken from the table's own Delta log. Registration only adds what is missing (a schema, a
table); a name already registered elsewhere is refused, never replaced.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from osipi_dagster.lake import LakeTable
from osipi_dagster.lake.tables import parse_table_name

if TYPE_CHECKING:  # the `databricks` extra: imported only by the code that has a workspace client
    from databricks.sdk import WorkspaceClient

TABLES_PATH = "/api/2.1/unity-catalog/tables"

# Delta's primitive types -> (Unity Catalog type name, Spark SQL type text).
_PRIMITIVES = {
    "string": ("STRING", "string"),
    "long": ("LONG", "bigint"),
    "integer": ("INT", "int"),
    "short": ("SHORT", "smallint"),
    "byte": ("BYTE", "tinyint"),
    "float": ("FLOAT", "float"),
    "double": ("DOUBLE", "double"),
    "boolean": ("BOOLEAN", "boolean"),
    "binary": ("BINARY", "binary"),
    "date": ("DATE", "date"),
    "timestamp": ("TIMESTAMP", "timestamp"),
    "timestamp_ntz": ("TIMESTAMP_NTZ", "timestamp_ntz"),
}


class UnityCatalogError(RuntimeError):
    """Unity Catalog refused a table, or holds a different one under its name; nothing was replaced."""


@dataclass(frozen=True)
class Registration:
    """One table's name in Unity Catalog, and whether this call registered it."""

    name: str
    storage_location: str
    created: bool


def uc_table_name(catalog: str, table_name: str) -> str:
    """``<catalog>.<schema>.<table>`` for the lakehouse table ``<schema>.<table>``."""
    schema, table = parse_table_name(table_name)
    return f"{catalog}.{schema}.{table}"


def uc_columns(delta_schema: dict[str, Any], partition_by: Iterable[str] = ()) -> list[dict[str, Any]]:
    """The ``columns`` of a table-create request for a Delta schema (its JSON, as in the Delta log)."""
    partitions = list(partition_by)
    columns = []
    for position, field in enumerate(delta_schema["fields"]):
        type_name, type_text = _type_of(field["type"])
        column: dict[str, Any] = {
            "name": field["name"],
            "type_name": type_name,
            "type_text": type_text,
            "type_json": json.dumps(field),
            "position": position,
            "nullable": field.get("nullable", True),
        }
        if field["name"] in partitions:
            column["partition_index"] = partitions.index(field["name"])
        columns.append(column)
    return columns


def _type_of(delta_type: str | dict[str, Any]) -> tuple[str, str]:
    if isinstance(delta_type, str):
        if delta_type in _PRIMITIVES:
            return _PRIMITIVES[delta_type]
        if delta_type.startswith("decimal"):
            return "DECIMAL", delta_type
        raise UnityCatalogError(f"No Unity Catalog type for the Delta type {delta_type!r}.")
    kind = delta_type["type"]
    if kind == "array":
        return "ARRAY", f"array<{_type_of(delta_type['elementType'])[1]}>"
    if kind == "map":
        key, value = _type_of(delta_type["keyType"])[1], _type_of(delta_type["valueType"])[1]
        return "MAP", f"map<{key},{value}>"
    if kind == "struct":
        fields = ",".join(f"{f['name']}:{_type_of(f['type'])[1]}" for f in delta_type["fields"])
        return "STRUCT", f"struct<{fields}>"
    raise UnityCatalogError(f"No Unity Catalog type for the Delta type {delta_type!r}.")


def register_tables(
    workspace: WorkspaceClient, catalog: str, tables: Iterable[LakeTable]
) -> list[Registration]:
    """Register each of ``tables`` that exists in the lake as an external Delta table of ``catalog``
    (creating its schema if needed); tables already registered at the same location are left as they are.

    Raises:
        UnityCatalogError: a name is registered at another location (nothing is changed), or Unity
            Catalog refused a schema or a table (its message, with what to grant).
    """
    from databricks.sdk.errors import DatabricksError

    registrations = []
    schemas_seen: set[str] = set()
    for table in tables:
        if not table.exists():
            continue
        name = uc_table_name(catalog, table.name)
        schema = name.rsplit(".", 1)[0]
        try:
            if schema not in schemas_seen:
                _ensure_schema(workspace, catalog, schema.split(".")[1])
                schemas_seen.add(schema)
            registrations.append(_ensure_table(workspace, catalog, name, table))
        except DatabricksError as error:
            raise UnityCatalogError(
                f"Unity Catalog refused {name} ({error}). The principal Dagster uses needs USE CATALOG on "
                f"{catalog}, CREATE SCHEMA, USE SCHEMA and CREATE TABLE, and EXTERNAL USE SCHEMA and CREATE "
                "EXTERNAL TABLE on the external location that holds the lake (docs/DEPLOYMENT.md)."
            ) from error
    return registrations


def _ensure_schema(workspace: WorkspaceClient, catalog: str, schema: str) -> None:
    from databricks.sdk.errors import NotFound

    try:
        workspace.schemas.get(f"{catalog}.{schema}")
    except NotFound:
        workspace.schemas.create(name=schema, catalog_name=catalog, comment="osipi-dagster: PI System data")


def _ensure_table(workspace: WorkspaceClient, catalog: str, name: str, table: LakeTable) -> Registration:
    from databricks.sdk.errors import NotFound

    try:
        existing = workspace.tables.get(name)
    except NotFound:
        existing = None
    if existing is not None:
        if _same_location(existing.storage_location or "", table.uri):
            return Registration(name, table.uri, created=False)
        raise UnityCatalogError(
            f"{name} is already registered in Unity Catalog at {existing.storage_location}, not at "
            f"{table.uri}: nothing was changed. Drop or rename that table, or choose another catalog "
            "(OSIPI_DATABRICKS_CATALOG)."
        )
    schema_name, table_name = name.split(".")[1:]
    spec = table.spec
    workspace.api_client.do(
        "POST",
        TABLES_PATH,
        body={
            "name": table_name,
            "catalog_name": catalog,
            "schema_name": schema_name,
            "table_type": "EXTERNAL",
            "data_source_format": "DELTA",
            "storage_location": table.uri,
            "columns": uc_columns(
                json.loads(table.load().schema().to_json()), spec.partition_by if spec else ()
            ),
            "comment": "osipi-dagster: written by Dagster through delta-rs",
        },
    )
    return Registration(name, table.uri, created=True)


def _same_location(registered: str, uri: str) -> bool:
    return registered.rstrip("/") == uri.rstrip("/")
