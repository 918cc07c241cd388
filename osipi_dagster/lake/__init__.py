"""Delta Lake storage for PI data: table layouts, idempotent writes, watermarks. No Dagster and no PI
client here: what a value is and PI's time arithmetic come from ``osipi_dagster.contract``, which the client
shares, so both sides agree on one definition of a value and a PI time.

Every writer commits once and atomically: readers see a table before or after a write, never during.

* :func:`replace_slice`: one (date, shard) slice, or a time range of it, of ``bronze.pi_timeseries``.
* :func:`write_watermarks` / :func:`read_watermarks`: ``checkpoints.pi_watermarks``.
* :func:`merge_event_frames`: ``bronze.pi_event_frames`` (MERGE by WebId); :func:`merge_rows` in general.
* :func:`overwrite_table` and :func:`diff_rows`: full refreshes of small tables; :class:`StagedRows`,
  :class:`RowFingerprints`, :class:`ComparedRows` and :func:`overwrite_table_batches` the same page by page
  for the catalog tables.
"""

from osipi_dagster.lake.errors import (
    ConcurrentWriteError,
    InvalidLakeRootError,
    InvalidRowsError,
    InvalidTableNameError,
    LakeError,
    TableSchemaMismatchError,
    UnwritableLakeRootError,
)
from osipi_dagster.lake.eventframes import EVENT_FRAME_INPUT_SCHEMA, merge_event_frames
from osipi_dagster.lake.merge import MergeResult, merge_rows
from osipi_dagster.lake.refresh import (
    ComparedRows,
    RowDiff,
    RowFingerprints,
    StagedRows,
    diff_rows,
    overwrite_table,
    overwrite_table_batches,
    read_table,
    replace_day,
    scan_files,
    table_files,
)
from osipi_dagster.lake.schemas import TABLE_SPECS, TableSpec
from osipi_dagster.lake.tables import (
    Lakehouse,
    LakeTable,
    WriteResult,
    ensure_table,
    row_count,
    row_counts,
    stored_table_name,
)
from osipi_dagster.lake.timeseries import read_slice, replace_slice, slice_row_count
from osipi_dagster.lake.watermarks import Watermark, read_watermarks, write_watermarks

__all__ = [
    "EVENT_FRAME_INPUT_SCHEMA",
    "TABLE_SPECS",
    "ComparedRows",
    "ConcurrentWriteError",
    "InvalidLakeRootError",
    "InvalidRowsError",
    "InvalidTableNameError",
    "LakeError",
    "LakeTable",
    "Lakehouse",
    "MergeResult",
    "RowDiff",
    "RowFingerprints",
    "StagedRows",
    "TableSchemaMismatchError",
    "TableSpec",
    "UnwritableLakeRootError",
    "Watermark",
    "WriteResult",
    "diff_rows",
    "ensure_table",
    "merge_event_frames",
    "merge_rows",
    "overwrite_table",
    "overwrite_table_batches",
    "read_slice",
    "read_table",
    "read_watermarks",
    "replace_day",
    "replace_slice",
    "row_count",
    "row_counts",
    "scan_files",
    "slice_row_count",
    "stored_table_name",
    "table_files",
    "write_watermarks",
]
