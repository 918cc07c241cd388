"""Where the Delta tables live, and the shared plumbing every writer uses.

A :class:`Lakehouse` is a table root: a local folder (the default, ``./data/lakehouse``) or an object-store
URI (``s3://``, ``abfss://``, ``gs://``, ...) with the ``storage_options`` delta-rs passes to object_store.
Tables are addressed as ``<schema>.<table>``: ``bronze.pi_timeseries`` lives under
``<root>/bronze/pi_timeseries``.

Concurrent writers are safe on every store because delta-rs (1.x) writes a commit file with put-if-absent:
the second writer of a version is refused and retries at the next one. Azure and Google Cloud Storage do
that natively; S3 does it with conditional writes (``If-None-Match``), which :func:`commit_safe_options`
turns on explicitly and never lets a setting turn off.
"""

from __future__ import annotations

import re
import tempfile
import time
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs
from deltalake import CommitProperties, DeltaTable
from deltalake.exceptions import DeltaError, TableNotFoundError
from deltalake.fs import DeltaStorageHandler

from osipi_dagster.lake.errors import (
    InvalidLakeRootError,
    InvalidRowsError,
    InvalidTableNameError,
    LakeError,
    TableSchemaMismatchError,
    UnsafeStorageOptionsError,
    UnwritableLakeRootError,
)
from osipi_dagster.lake.schemas import TABLE_SPECS, TableSpec

DEFAULT_ROOT = "./data/lakehouse"
OBJECT_STORE_SCHEMES = frozenset({"s3", "s3a", "gs", "az", "abfs", "abfss", "file"})
S3_SCHEMES = frozenset({"s3", "s3a"})
# Given explicitly, so they win over delta-rs's own reading of the environment: commit with a conditional
# write (PUT If-None-Match: *), never with a rename that does not check the version is free.
S3_COMMIT_SAFE_OPTIONS = {"aws_conditional_put": "etag", "AWS_S3_ALLOW_UNSAFE_RENAME": "false"}
_FALSE_WORDS = frozenset({"", "false", "0", "no", "off", "n", "f"})
# The custom commit-info key that lets a writer find its own commit among concurrent ones.
WRITE_ID_KEY = "osipi.write_id"
# How many recent commits to search for our own: concurrent writers of other slices commit in between.
_HISTORY_SEARCH_DEPTH = 200
# Every write of a partition claims it with a Delta application transaction (lake/streaming.py,
# overwrite_files), one per partition ever written. A claim only matters while a concurrent write of the
# partition runs (delta-rs checks the commits made since the loser's snapshot, which the log keeps for 30
# days), so checkpoints drop claims older than a week instead of keeping one per (date, shard) for ever.
CLAIM_RETENTION = {"delta.setTransactionRetentionDuration": "interval 7 days"}

_LOCAL = pafs.LocalFileSystem()
_NAME_PART = r"[a-z][a-z0-9_]{0,62}"
_TABLE_NAME = re.compile(rf"^({_NAME_PART})\.({_NAME_PART})$")
_TABLE_PREFIX = re.compile(r"^[a-z][a-z0-9_]{0,40}__$")
_URI = re.compile(r"^([a-z][a-z0-9+.-]+)://(.+)$")

ArrowData = TypeVar("ArrowData", pa.Table, pa.RecordBatch)


@dataclass(frozen=True)
class WriteResult:
    """What one committed write did, for logs and Dagster metadata."""

    table: str
    version: int
    rows_written: int
    files_added: int
    files_removed: int
    predicate: str | None
    duration_seconds: float

    @classmethod
    def of(
        cls, table: LakeTable, commit: Commit, *, rows: int, predicate: str | None, started: float
    ) -> WriteResult:
        """What ``commit`` did, for a write of ``rows`` rows begun at ``started`` (a perf_counter time)."""
        return cls(
            table=table.name,
            version=commit.version,
            rows_written=rows,
            files_added=commit.files_added,
            files_removed=commit.files_removed,
            predicate=predicate,
            duration_seconds=time.perf_counter() - started,
        )

    @property
    def rows_per_second(self) -> float:
        return self.rows_written / self.duration_seconds if self.duration_seconds > 0 else 0.0


def parse_table_name(name: str) -> tuple[str, str]:
    """Split ``"<schema>.<table>"`` into its two parts, or raise :class:`InvalidTableNameError`."""
    match = _TABLE_NAME.match(name) if isinstance(name, str) else None
    if match is None:
        raise InvalidTableNameError(
            f"Table name {name!r} is not valid: expected '<schema>.<table>', two parts of lower-case "
            "ASCII letters, digits and underscores, each starting with a letter "
            "(e.g. 'bronze.pi_timeseries')."
        )
    return match.group(1), match.group(2)


@dataclass(frozen=True)
class LakeTable:
    """One Delta table of a lakehouse: its ``<schema>.<table>`` name, its layout, URI and storage options.

    ``name`` is the table's name in the lakehouse (with the lakehouse's table prefix, e.g.
    ``bronze.site_b__pi_timeseries``); ``spec`` is its layout (``spec.name`` is the name without prefix), or
    None for a table the connector does not know.
    """

    name: str
    uri: str
    spec: TableSpec | None = None
    # Object-store credentials: kept out of repr (tracebacks, logs).
    storage_options: Mapping[str, str] = field(default_factory=dict, repr=False)

    @property
    def delta_options(self) -> dict[str, str]:
        """The storage options delta-rs gets: ``storage_options`` with the safe commit settings of the
        table's store (see :func:`commit_safe_options`)."""
        return commit_safe_options(self.uri, self.storage_options)

    def exists(self) -> bool:
        return DeltaTable.is_deltatable(self.uri, storage_options=self.delta_options)

    def load(self) -> DeltaTable:
        """The table's latest version; raises :class:`LakeError` if it was never written."""
        try:
            return DeltaTable(self.uri, storage_options=self.delta_options)
        except TableNotFoundError as exc:
            raise LakeError(
                f"Table {self.name} does not exist yet at {self.uri}: materialize the asset that writes "
                "it first."
            ) from exc

    def version(self) -> int | None:
        """The latest committed version, or None if the table does not exist yet."""
        return self.load().version() if self.exists() else None

    def partition_dataset(
        self, partition: Mapping[str, date | str], *, read_options: ds.ParquetReadOptions | None = None
    ) -> ds.Dataset:
        """The files of one partition (``{"partition_date": day, "tag_shard": "s03"}``) as an Arrow dataset.

        delta-rs picks the partition's files from the log before Arrow sees any: a dataset over every file
        of the table costs about 0.1 ms a file to build (0.4 s for 4,000 files, measured), and a table of
        a few years of days x shards holds tens of thousands, per partition read. Filter rows as before:
        the dataset's fragments keep their partition values."""
        pruning = [(column, "=", _partition_text(value)) for column, value in partition.items()]
        return self.load().to_pyarrow_dataset(
            file_pruning_predicate=pruning, parquet_read_options=read_options
        )

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class Lakehouse:
    """A table root holding ``<schema>/<table>`` Delta tables.

    Args:
        root: a local folder (relative paths are resolved against the working directory) or an
            object-store URI: ``s3://bucket/prefix``, ``abfss://container@account.dfs.core.windows.net/prefix``,
            ``gs://bucket/prefix``.
        storage_options: passed to delta-rs (credentials, region, endpoint...); on S3 with the safe commit
            settings added (:func:`commit_safe_options`), and refused if they would make commits unsafe.
        table_prefix: put before every table name, so several PI servers share one root without sharing a
            table: with ``site_b__``, ``bronze.pi_timeseries`` is ``bronze.site_b__pi_timeseries``. Empty
            (the default) or lower-case ASCII letters, digits and underscores ending in ``__``.
    """

    root: str = DEFAULT_ROOT
    # Object-store credentials: kept out of repr (tracebacks, logs).
    storage_options: Mapping[str, str] = field(default_factory=dict, repr=False)
    table_prefix: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", _normalize_root(self.root))
        commit_safe_options(self.root, self.storage_options)  # unsafe settings fail here, before any write
        if self.table_prefix and not _TABLE_PREFIX.match(self.table_prefix):
            raise InvalidTableNameError(
                f"Table prefix {self.table_prefix!r} is not valid: use lower-case ASCII letters, digits and "
                "underscores, starting with a letter and ending in '__' (e.g. 'site_b__'), or no prefix."
            )

    def table(self, name: str) -> LakeTable:
        """Address ``<schema>.<table>`` (the name without this lakehouse's prefix); it need not exist yet."""
        stored = stored_table_name(name, self.table_prefix)
        return LakeTable(
            name=stored,
            uri=f"{self.root}/{stored.replace('.', '/')}",
            spec=TABLE_SPECS.get(name),
            storage_options=self.storage_options,
        )

    def require_writable(self) -> None:
        """Fail early, naming the folder, when a local root cannot be written (object stores are checked by
        their first write: their credentials and permissions are delta-rs's to report)."""
        if _URI.match(self.root):
            return
        path = Path(self.root)
        try:
            path.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=path):
                pass
        except OSError as exc:
            raise UnwritableLakeRootError(
                f"The lakehouse root {self.root} cannot be written ({exc.strerror or exc}). Point "
                "OSIPI_LAKE_ROOT (the lakehouse resource's root) at a folder this process may create and "
                "write, or fix the folder's permissions."
            ) from exc


def _partition_text(value: date | str) -> str:
    # Delta stores partition values as text: a date as ISO 8601.
    return value.isoformat() if isinstance(value, date) else value


def stored_table_name(name: str, table_prefix: str) -> str:
    """The name ``<schema>.<table>`` takes in a lakehouse with ``table_prefix`` (see :class:`Lakehouse`)."""
    schema, table = parse_table_name(name)
    return f"{schema}.{table_prefix}{table}"


def commit_safe_options(uri: str, storage_options: Mapping[str, str]) -> dict[str, str]:
    """The storage options delta-rs gets for the table or root at ``uri``.

    On S3 (``s3://``, ``s3a://``) that is ``storage_options`` plus :data:`S3_COMMIT_SAFE_OPTIONS` for the
    settings they do not give: commits are conditional writes, which AWS S3 has supported since August
    2024 (as do MinIO, Cloudflare R2 and other S3-compatible stores), so of two writers committing the same
    version one is refused and retries. Other stores are returned unchanged: their put-if-absent is native.

    Raises:
        UnsafeStorageOptionsError: an S3 setting that lets two writers commit the same version (one commit
            would silently replace the other), or that deltalake 1.x no longer honours.
    """
    options = dict(storage_options)
    match = _URI.match(str(uri))
    if match is None or match.group(1) not in S3_SCHEMES:
        return options
    for key, value in options.items():
        problem = _unsafe_s3_setting(_s3_setting_name(key), str(value).strip().lower())
        if problem:
            raise UnsafeStorageOptionsError(
                f"The storage setting {key}={value!r} for {uri} is refused: {problem} Concurrent runs "
                "commit to the same tables, so a lost commit would silently drop data. S3 commits are "
                "conditional writes by default (aws_conditional_put=etag); see docs/CONFIGURATION.md, "
                '"Object stores".'
            )
    given = {_s3_setting_name(key) for key in options}
    defaults = {
        key: value for key, value in S3_COMMIT_SAFE_OPTIONS.items() if _s3_setting_name(key) not in given
    }
    return {**defaults, **options}


def _s3_setting_name(key: str) -> str:
    # delta-rs and object_store accept a setting with or without its AWS_ / AWS_S3_ prefix, in any case.
    name = key.strip().lower()
    for prefix in ("aws_s3_", "aws_"):
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


def _unsafe_s3_setting(name: str, value: str) -> str | None:
    """Why the S3 setting ``name`` (without prefix, lower case) set to ``value`` is unsafe, or None."""
    if name == "allow_unsafe_rename" and value not in _FALSE_WORDS:
        return (
            "it lets a writer rename its commit into place without checking that the version is free, so two "
            "writers can both commit version N and one commit is lost. Remove it."
        )
    if name == "conditional_put" and value != "etag":
        return "only 'etag' (conditional writes) keeps concurrent commits apart. Remove it or set it to etag."
    if name == "locking_provider" and value:
        return (
            "deltalake 1.x no longer supports a DynamoDB locking provider (it logs an error and ignores it), "
            "so the lock it promises does not exist. Remove it: conditional writes replace it."
        )
    return None


def _normalize_root(root: str | Path) -> str:
    text = str(root).strip()
    if not text:
        raise InvalidLakeRootError(
            "The lakehouse root is empty: set it to a local folder or an object-store URI."
        )
    match = _URI.match(text)
    if match is None:
        # A local folder: resolved now, so a later chdir cannot move the tables.
        return str(Path(text).expanduser().resolve())
    if match.group(1) not in OBJECT_STORE_SCHEMES:
        raise InvalidLakeRootError(
            f"The lakehouse root {text!r} uses the unsupported scheme {match.group(1)!r}: use a local folder "
            f"or one of {', '.join(sorted(s + '://' for s in OBJECT_STORE_SCHEMES))}."
        )
    return text.rstrip("/")


def ensure_table(table: LakeTable) -> DeltaTable:
    """Open the table, creating it empty with its spec's schema and partitioning if it does not exist.

    Creation is safe with concurrent first writers: every one of them tries to commit version 0, exactly
    one succeeds (object stores with put-if-absent, local rename-without-replace), and the others find
    the table created and carry on. An existing table must have the spec's schema.
    """
    spec = spec_of(table)
    if not table.exists():
        try:
            DeltaTable.create(
                table.uri,
                spec.schema,
                mode="ignore",
                partition_by=list(spec.partition_by) or None,
                name=spec.name,
                description=spec.description,
                configuration=CLAIM_RETENTION,
                storage_options=table.delta_options,
                # By default delta-rs retries a lost version-0 commit as version 1: a second CREATE whose
                # metadata action makes every writer that read version 0 fail with "Metadata changed".
                commit_properties=CommitProperties(max_commit_retries=0),
            )
        except DeltaError:
            # Lost the race for version 0 to another writer; anything else resurfaces just below.
            if not table.exists():
                raise
    delta_table = table.load()
    _check_schema(table, spec, delta_table)
    return delta_table


def spec_of(table: LakeTable) -> TableSpec:
    """The table's layout; raises :class:`LakeError` for a table the connector does not know."""
    spec = table.spec
    if spec is None:
        raise LakeError(
            f"Table {table.name} has no layout in osipi_dagster.lake.schemas.TABLE_SPECS: add a TableSpec "
            f"for it (known tables: {', '.join(sorted(TABLE_SPECS))})."
        )
    return spec


def _check_schema(table: LakeTable, spec: TableSpec, delta_table: DeltaTable) -> None:
    actual = pa.schema(delta_table.schema().to_arrow())
    expected = {f.name: f.type for f in spec.schema}
    found = {f.name: f.type for f in actual}
    if expected != found or list(delta_table.metadata().partition_columns) != list(spec.partition_by):
        raise TableSchemaMismatchError(
            f"Table {table.name} at {table.uri} does not have the layout this version of osipi-dagster "
            f"writes. Expected columns {_describe(expected)} partitioned by {list(spec.partition_by)}; "
            f"found {_describe(found)} partitioned by {list(delta_table.metadata().partition_columns)}. "
            "Move the old table away (or migrate it) and re-materialize."
        )


def _describe(columns: Mapping[str, pa.DataType]) -> str:
    return "{" + ", ".join(f"{name}: {dtype}" for name, dtype in columns.items()) + "}"


def conform(data: ArrowData, schema: pa.Schema, *, what: str) -> ArrowData:
    """Return ``data`` with exactly ``schema``'s columns, in order, cast to its types.

    Raises :class:`InvalidRowsError` naming the column if one is missing or unexpected, cannot be cast
    safely, or holds nulls where the schema forbids them. ``what`` names the data in messages.
    """
    missing = [name for name in schema.names if name not in data.schema.names]
    extra = [name for name in data.schema.names if name not in schema.names]
    if missing or extra:
        raise InvalidRowsError(
            f"{what} does not have the expected columns: missing {missing}, unexpected {extra}. "
            f"Expected exactly {schema.names}."
        )
    columns = []
    for target in schema:
        column = data.column(target.name)
        if column.type != target.type:
            try:
                column = column.cast(target.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise InvalidRowsError(
                    f"{what}: column {target.name!r} has type {column.type}, which cannot be cast safely to "
                    f"{target.type} ({exc}). Produce {target.type} values."
                ) from exc
        if not target.nullable and column.null_count:
            raise InvalidRowsError(
                f"{what}: column {target.name!r} holds {column.null_count} null(s) but may not be null. "
                "Fill it or drop those rows before writing."
            )
        columns.append(column)
    return type(data).from_arrays(columns, schema=schema)


@dataclass(frozen=True)
class Commit:
    """A commit this process made: its version and delta-rs's operation metrics."""

    version: int
    files_added: int
    files_removed: int


def tagged_commit(
    table: LakeTable, delta_table: DeltaTable, write: Callable[[CommitProperties], None]
) -> Commit:
    """Run ``write`` (one delta-rs write given the commit properties to use) and find the commit it made.

    delta-rs's writers return nothing, and other writers may commit right after us, so the commit is tagged
    with a unique id and found by its tag rather than assumed to be the latest. Its version is
    ``delta_table.version()`` right after the write (the state delta-rs keeps after its commit): the
    ``version`` numbers ``history()`` reports can be off while concurrent writers commit. A commit of add
    actions (``create_write_transaction``) does not advance ``delta_table``: its version is that of the first
    log entry after ``delta_table``'s that holds the tag, and its file counts are the caller's to fill in
    (delta-rs records none for it).
    """
    write_id = uuid.uuid4().hex
    version_before = delta_table.version()
    write(CommitProperties(custom_metadata={WRITE_ID_KEY: write_id}))
    version = delta_table.version()
    if version == version_before:  # a commit of add actions: delta_table stays, delta-rs records no metrics
        return Commit(_logged_version(table, write_id, after=version_before), 0, 0)
    for commit in table.load().history(_HISTORY_SEARCH_DEPTH):
        if commit.get(WRITE_ID_KEY) == write_id:
            metrics = commit.get("operationMetrics", {})
            return Commit(
                version, int(metrics.get("num_added_files", 0)), int(metrics.get("num_removed_files", 0))
            )
    raise LakeError(
        f"Committed write {write_id} is not among the last {_HISTORY_SEARCH_DEPTH} commits of "
        f"{table}; the data is committed but its metrics are unknown."
    )


def _logged_version(table: LakeTable, write_id: str, *, after: int) -> int:
    """The version of the commit tagged ``write_id``, made after version ``after``: the first log entry
    after it that holds the tag (history()'s version numbers are not to be trusted here)."""
    files = table_files(table)
    for version in range(after + 1, after + 1 + _HISTORY_SEARCH_DEPTH):
        path = f"_delta_log/{version:020d}.json"
        if files.get_file_info(path).type == pafs.FileType.NotFound:
            break
        with files.open_input_stream(path) as entry:
            if write_id.encode() in entry.read():
                return version
    raise LakeError(
        f"Committed write {write_id} is not among the log entries of {table} after version {after}; the "
        "data is committed but its version is unknown."
    )


def local_folder(table: LakeTable) -> pafs.FileSystem | None:
    """A local table's folder as Arrow's own file system, or None for a table in an object store."""
    uri = urlparse(table.uri)
    if uri.scheme == "file":
        return pafs.SubTreeFileSystem(uri.path, _LOCAL)
    if len(uri.scheme) <= 1:  # a path (with a drive letter on Windows)
        return pafs.SubTreeFileSystem(str(Path(table.uri).resolve()), _LOCAL)
    return None


def table_files(table: LakeTable) -> pafs.FileSystem:
    """The table's folder as a file system: Arrow's own for a local table, delta-rs's (object stores, with
    the table's credentials) otherwise."""
    return local_folder(table) or pafs.PyFileSystem(DeltaStorageHandler(table.uri, table.delta_options))


def sql_literal(value: str) -> str:
    """``value`` as an SQL string literal for a Delta predicate (quotes doubled: no value can end it)."""
    return "'" + value.replace("'", "''") + "'"


def utc_now() -> datetime:
    """The current time in UTC (a datetime has the microsecond precision Delta stores)."""
    return datetime.now(UTC)


def require_utc(value: datetime, *, what: str) -> datetime:
    """``value`` in UTC; raises on naive datetimes, which PI would read in the server's local zone."""
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            f"{what} must be a timezone-aware datetime (e.g. datetime(..., tzinfo=UTC)); got {value!r}."
        )
    return value.astimezone(UTC)


def row_count(table: LakeTable, partitions: Mapping[str, object] | None = None) -> int:
    """Rows in the table, or in the partitions whose partition columns equal ``partitions``.

    Counted from the per-file statistics of the Delta log, without reading any data file; if some file
    has no statistics (written by another engine), the matching rows are counted by a scan instead.
    """
    wanted = dict(partitions or {})
    return row_counts(table, tuple(wanted)).get(tuple(wanted.values()), 0)


def row_counts(table: LakeTable, by: Sequence[str] = ()) -> dict[tuple[object, ...], int]:
    """Rows per distinct value of the partition columns ``by`` (a tuple of their values, in ``by``'s order;
    ``()`` for the whole table), for every partition that holds files.

    One read of the Delta log: the per-file statistics are summed, so no data file is read; a partition
    with a file that has no statistics (written by another engine) is counted by a scan of that partition.
    """
    delta_table = table.load()
    files = pa.table(delta_table.get_add_actions(flatten=True))
    keys = {column: files.column(f"partition.{column}") for column in by}
    grouped = (
        pa.table({**keys, "rows": files.column("num_records"), "unknown": pc.is_null(files["num_records"])})
        .group_by(list(by))
        .aggregate([("rows", "sum"), ("unknown", "any")])
    )
    counts: dict[tuple[object, ...], int] = {}
    for group in grouped.to_pylist():
        key = tuple(group[column] for column in by)
        counts[key] = int(group["rows_sum"] or 0)
        if group["unknown_any"]:
            expression = None
            for column, value in zip(by, key, strict=True):
                term = ds.field(column) == value
                expression = term if expression is None else expression & term
            counts[key] = delta_table.to_pyarrow_dataset().count_rows(filter=expression)
    if not by:
        counts.setdefault((), 0)
    return counts


def without_columns(schema: pa.Schema, computed: Collection[str]) -> pa.Schema:
    """``schema`` minus the columns a writer computes itself (what callers must provide)."""
    return pa.schema([f for f in schema if f.name not in computed])
