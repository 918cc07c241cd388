"""Storage upkeep: the files no version within the retention period reads are deleted (Delta VACUUM).

Every writer here commits a new version and leaves the files it replaced on storage, where readers of older
versions still find them: a time-series slice re-read by the hourly runs, the catalog, the update markers on
every sensor tick, the live table's compactions. Nothing ever deleted them, so storage grew with every run
(a 30-second sensor replaces the markers table 2,880 times a day). :func:`vacuum_table` deletes the files
removed from the table more than ``retention_hours`` ago.

Why it cannot lose data: VACUUM deletes only files that the table's current version does not reference and
that a commit removed longer ago than the retention (delta-rs' default "lite" mode: files it never wrote are
left alone). What is lost is time travel to versions older than the retention, and a reader or writer that
runs longer than the retention on an old version would fail (cleanly, on a missing file), hence the floor of
:data:`MIN_RETENTION_HOURS`.

After the vacuum a checkpoint is written: the log keeps a removal (a "tombstone") until a checkpoint finds it
older than the table's ``delta.deletedFileRetentionDuration`` (a week by default), and delta-rs counts a
tombstone as a deleted file at every vacuum that sees it, so without the checkpoint each day's run would count
the week's files again. With a retention under the table's duration, a file is still counted by the later
runs until then. Log files older than ``delta.logRetentionDuration`` (30 days) go at checkpoints, and so do
the partitions' claims older than a week (:data:`~osipi_dagster.lake.tables.CLAIM_RETENTION`; a table created
before the claims is given the setting here, once).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from osipi_dagster.lake.errors import LakeError
from osipi_dagster.lake.tables import CLAIM_RETENTION, LakeTable

MIN_RETENTION_HOURS = 1
DEFAULT_RETENTION_HOURS = 168  # Delta's default (delta.deletedFileRetentionDuration): a week of time travel


class InvalidRetentionError(LakeError, ValueError):
    """A vacuum retention below :data:`MIN_RETENTION_HOURS`."""


@dataclass(frozen=True)
class VacuumResult:
    """What one vacuum of one table deleted."""

    table: str
    version: int  # the table's version before the vacuum (its own commits come after)
    files_deleted: int
    duration_seconds: float


def vacuum_table(table: LakeTable, *, retention_hours: int = DEFAULT_RETENTION_HOURS) -> VacuumResult | None:
    """Delete the files removed from ``table`` more than ``retention_hours`` ago; None if the table does not
    exist. The retention given here rules, whatever the table's ``delta.deletedFileRetentionDuration``:
    one setting for every table of the lakehouse."""
    if retention_hours < MIN_RETENTION_HOURS:
        raise InvalidRetentionError(
            f"A vacuum retention of {retention_hours} hours would delete files that running readers and "
            f"writers may still read: use at least {MIN_RETENTION_HOURS} hour(s) (the default is "
            f"{DEFAULT_RETENTION_HOURS}, a week of time travel)."
        )
    if not table.exists():
        return None
    started = time.perf_counter()
    delta_table = table.load()
    version = delta_table.version()
    deleted = delta_table.vacuum(
        retention_hours=retention_hours, dry_run=False, enforce_retention_duration=False
    )
    if not CLAIM_RETENTION.items() <= delta_table.metadata().configuration.items():
        delta_table.alter.set_table_properties(CLAIM_RETENTION)
    delta_table.create_checkpoint()
    return VacuumResult(
        table=table.name,
        version=version,
        files_deleted=len(deleted),
        duration_seconds=time.perf_counter() - started,
    )
