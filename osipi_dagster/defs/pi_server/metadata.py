"""Metadata shared by every asset: the table's schema and what a Delta write did."""

from __future__ import annotations

import dagster as dg

from osipi_dagster.lake import LakeTable, MergeResult, TableSpec, WriteResult
from osipi_dagster.lake.columns import column_description

KINDS = {"pi", "deltalake"}
POOL = "pi_webapi"  # every asset that calls PI Web API runs in this concurrency pool (dagster.yaml)


def table_schema(spec: TableSpec) -> dg.TableSchema:
    """A Delta table's columns as Dagster shows them."""
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                field.name,
                str(field.type),
                description=column_description(spec.name, field.name),
                constraints=dg.TableColumnConstraints(nullable=field.nullable),
            )
            for field in spec.schema
        ]
    )


def definition_metadata(spec: TableSpec, table_name: str, partitions: str | None = None) -> dict[str, object]:
    """Static metadata of an asset backed by the table ``table_name`` of layout ``spec`` (shown before
    anything is materialized); ``partitions`` says what one Dagster partition of a partitioned asset is."""
    return {
        "dagster/table_name": table_name,
        "dagster/column_schema": table_schema(spec),
        **({"dagster_partition": partitions} if partitions else {}),
        "delta_partition_columns": ", ".join(spec.partition_by) or "none",
    }


def table_metadata(table: LakeTable) -> dict[str, object]:
    """Where a table is and its columns, for every materialization of it."""
    spec = table.spec
    assert spec is not None, f"{table} has no known layout"
    return {"delta_table_uri": dg.MetadataValue.path(table.uri), "dagster/column_schema": table_schema(spec)}


def write_metadata(result: WriteResult, table: LakeTable) -> dict[str, object]:
    """What one Delta commit did."""
    return {
        **table_metadata(table),
        "dagster/row_count": dg.MetadataValue.int(result.rows_written),
        "delta_table_version": dg.MetadataValue.int(result.version),
        "files_added": dg.MetadataValue.int(result.files_added),
        "write_seconds": dg.MetadataValue.float(round(result.duration_seconds, 3)),
    }


def merge_metadata(result: MergeResult, table: LakeTable) -> dict[str, object]:
    """What one Delta MERGE did: ``dagster/row_count`` counts the rows it wrote (inserted or updated)."""
    return {
        **table_metadata(table),
        "dagster/row_count": dg.MetadataValue.int(result.rows_inserted + result.rows_updated),
        "rows_inserted": dg.MetadataValue.int(result.rows_inserted),
        "rows_updated": dg.MetadataValue.int(result.rows_updated),
        "delta_table_version": dg.MetadataValue.int(result.version),
        "merge_attempts": dg.MetadataValue.int(result.attempts),
        "write_seconds": dg.MetadataValue.float(round(result.duration_seconds, 3)),
    }
