"""A (date, shard) partition of a time-series table read point by point with bounded memory.

Silver cleans bronze, and gold summarizes silver, one point at a time; neither table's files hold a point's
values together (bronze holds them in runs of a page each, in read order; silver's writer may hand its
sorted batches to its files out of order). So a partition is read in *buckets*, each the values of
consecutive points (by WebId) about ``bucket_rows`` of them, bucket after bucket:

1. :func:`census` counts the values of each point (reading the WebId column only, dictionary-encoded)
   and groups consecutive points into buckets (a point with more values than a bucket is one of its own);
2. :func:`buckets` reads the partition once more and, when it holds more than one bucket, splits it into
   one temporary file a bucket (Arrow IPC, LZ4: about 11 bytes a value; removed as it goes, ``TMPDIR``
   chooses the disk), then hands each bucket over as one table, rows in the order the table's files hold
   them, the WebId replaced by the point's index among the partition's points (``point``).

Memory holds about one bucket, whatever the partition's size. :func:`point_order` sorts a bucket.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from osipi_dagster.lake import LakeTable
from osipi_dagster.lake.partitions import scan_partition

_SPILL_OPTIONS = pa.ipc.IpcWriteOptions(compression="lz4")  # measured: half the CPU of no compression
_MIN_RUN = 64  # rows a run of consecutive rows needs on average to be copied whole rather than gathered


@dataclass(frozen=True)
class Census:
    """The partition's points, sorted by WebId, the bucket of each (0, 1, ...), and the ``attributes``
    asked for, per point (the first row's)."""

    web_ids: pa.Array
    bucket: np.ndarray
    buckets: int
    attributes: dict[str, list]


def census(
    table: LakeTable,
    day: date,
    shard: str,
    bucket_rows: int,
    *,
    max_points: int | None = None,
    attributes: Sequence[str] = (),
) -> Census:
    """Count the partition's values per point and group consecutive points into buckets of about
    ``bucket_rows`` values (and at most ``max_points`` points); note each point's ``attributes`` (columns
    constant for a point, read dictionary-encoded if strings, like ``web_id``)."""
    counts: dict[str, int] = {}
    found: dict[str, tuple] = {}
    columns = ["web_id", *attributes]
    for batch in scan_partition(table, day, shard, columns, dictionary_columns=columns):
        column = batch.column(0)
        indices = column.indices.to_numpy(zero_copy_only=False)
        tally = np.bincount(indices, minlength=len(column.dictionary))
        present = [(i, web_id) for i, web_id in enumerate(column.dictionary.to_pylist()) if tally[i]]
        for i, web_id in present:
            counts[web_id] = counts.get(web_id, 0) + int(tally[i])
        new = [i for i, web_id in present if web_id not in found] if attributes else []
        if new:  # the first row of each point not seen before (a batch holds a few points)
            first = [int(np.argmax(indices == i)) for i in new]
            for row in batch.take(pa.array(first)).to_pylist():
                found[row["web_id"]] = tuple(row[name] for name in attributes)
    web_ids = sorted(counts)
    values = np.array([counts[w] for w in web_ids], np.int64)
    windows = (np.cumsum(values) - values) // bucket_rows  # the bucket-sized window each point starts in
    if max_points is not None:
        windows = windows * len(web_ids) + np.arange(len(web_ids)) // max_points
    found_windows, bucket = np.unique(windows, return_inverse=True)
    return Census(
        pa.array(web_ids, pa.string()),
        bucket.astype(np.int32),
        len(found_windows),
        {name: [found[w][i] for w in web_ids] for i, name in enumerate(attributes)},
    )


def buckets(
    table: LakeTable,
    day: date,
    shard: str,
    columns: Sequence[str],
    the_census: Census,
    *,
    dictionary_columns: Sequence[str] = (),
) -> Iterator[pa.Table]:
    """Each bucket's rows: ``point`` (int32, the index of the row's WebId in ``the_census.web_ids``) then
    ``columns`` (``web_id`` not among them), in the order the table's files hold them.

    The partition is opened here, and a partition of several buckets split into its bucket files here, in
    the calling thread, before the first bucket is asked for: the iterator may be read from a writer's
    threads (spilling from delta-rs's, which once pulled it, the allocator kept freed memory: a 1,000-point
    day's silver grew past 1 GiB)."""
    batches = scan_partition(
        table, day, shard, ["web_id", *columns], dictionary_columns=("web_id", *dictionary_columns)
    )
    if the_census.buckets <= 1:
        return _one_bucket(batches, the_census)
    folder = tempfile.TemporaryDirectory(prefix="osipi-buckets-")
    try:
        paths = _spill(batches, the_census, Path(folder.name))
    except BaseException:
        folder.cleanup()
        raise
    return _read_back(folder, paths)


def _one_bucket(batches: Iterator[pa.RecordBatch], the_census: Census) -> Iterator[pa.Table]:
    coded = [with_point_index(batch, the_census.web_ids) for batch in batches]
    if coded:
        yield pa.Table.from_batches(coded)


def _spill(batches: Iterator[pa.RecordBatch], the_census: Census, folder: Path) -> list[Path]:
    """Write each bucket's rows into a file of its own in ``folder``; the files, bucket by bucket."""
    paths = [folder / f"bucket-{b:05d}.arrows" for b in range(the_census.buckets)]
    writers: dict[int, pa.ipc.RecordBatchStreamWriter] = {}
    with ExitStack() as open_files:
        for batch in batches:
            coded = with_point_index(batch, the_census.web_ids)
            bucket = the_census.bucket[coded.column(0).to_numpy()]
            by_bucket = gather(coded, np.argsort(bucket, kind="stable"))
            sizes = np.bincount(bucket, minlength=the_census.buckets)
            present = np.flatnonzero(sizes)
            starts = np.cumsum(sizes)[present] - sizes[present]
            for b, start, size in zip(
                present.tolist(), starts.tolist(), sizes[present].tolist(), strict=True
            ):
                if b not in writers:
                    sink = open_files.enter_context(pa.OSFile(str(paths[b]), "wb"))
                    writers[b] = open_files.enter_context(
                        pa.ipc.new_stream(sink, coded.schema, options=_SPILL_OPTIONS)
                    )
                for piece in by_bucket.slice(start, size).to_batches():
                    writers[b].write_batch(piece)
    return paths


def _read_back(folder: tempfile.TemporaryDirectory, paths: list[Path]) -> Iterator[pa.Table]:
    """The buckets read back one by one, each file removed once read, the folder at the end."""
    with folder:
        for path in paths:
            with pa.OSFile(str(path), "rb") as source:
                yield pa.ipc.open_stream(source).read_all()
            path.unlink()


def with_point_index(batch: pa.RecordBatch, web_ids: pa.Array) -> pa.RecordBatch:
    """``batch`` with its WebId (first column, dictionary-encoded) replaced by the point's index in
    ``web_ids`` (``point``, int32).

    Raises:
        ValueError: a WebId of ``batch`` is not in ``web_ids``.
    """
    column = batch.column(0)
    found = pc.index_in(column.dictionary, value_set=web_ids)
    if found.null_count:
        raise ValueError(
            f"WebIds not among the partition's points: {column.dictionary.filter(found.is_null())}"
        )
    to_point = found.to_numpy(zero_copy_only=False)
    point = to_point[column.indices.to_numpy(zero_copy_only=False)].astype(np.int32)
    return pa.RecordBatch.from_arrays(
        [pa.array(point), *batch.columns[1:]], names=["point", *batch.schema.names[1:]]
    )


def point_order(points: np.ndarray, keys: Sequence[np.ndarray]) -> np.ndarray:
    """The stable order of rows by point then ``keys`` (rows equal on all keep their order).

    The files hold each point's values mostly in order, in runs: a stable sort by point alone (a radix
    sort of small integers) is then enough, and checked; otherwise every key is sorted."""
    if not len(points):
        return np.zeros(0, np.int64)
    low = int(points.min())
    narrow = (points - low).astype(np.uint16) if int(points.max()) - low < 1 << 16 else points
    order = np.argsort(narrow, kind="stable")
    tied = points[order][1:] == points[order][:-1]
    for key in keys:
        ordered = key[order]
        if np.any(tied & (ordered[1:] < ordered[:-1])):
            return np.lexsort((*reversed(keys), points))
        tied &= ordered[1:] == ordered[:-1]
    return order


def gather(rows: pa.Table | pa.RecordBatch, order: np.ndarray) -> pa.Table:
    """``rows.take(order)`` as one chunk; by slices when ``order`` is mostly long runs of consecutive rows
    (points' values in runs): a copy per run instead of a gather per value."""
    runs = np.flatnonzero(np.diff(order) != 1) + 1
    if not len(order) or len(runs) * _MIN_RUN > len(order):
        taken = rows.take(pa.array(order))
        return taken if isinstance(taken, pa.Table) else pa.Table.from_batches([taken])
    starts, ends = np.r_[0, runs].tolist(), np.r_[runs, len(order)].tolist()
    pieces = [rows.slice(int(order[start]), end - start) for start, end in zip(starts, ends, strict=True)]
    table = pa.Table.from_batches(pieces) if isinstance(rows, pa.RecordBatch) else pa.concat_tables(pieces)
    return table.combine_chunks()
