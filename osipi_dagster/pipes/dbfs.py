"""The Pipes context and messages as files on DBFS, through the cluster's DBFS mount.

dagster-pipes has ``PipesDbfsContextLoader`` and ``PipesDbfsMessageWriter`` for this, but the writer asks
for an active Spark session (to find cluster log delivery) and both assume the mount is ``/dbfs``. The
ingestion starts no Spark, so these read and write the same files without it, under a mount that is
``/dbfs`` on Databricks (``OSIPI_PIPES_DBFS_MOUNT`` moves it where no FUSE mount exists, e.g. the tests'
stand-in workspace).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager

from dagster_pipes import (
    PipesBlobStoreMessageWriter,
    PipesBufferedFilesystemMessageWriterChannel,
    PipesContextData,
    PipesContextLoader,
    PipesParams,
)


def mounted(mount: str, dbfs_path: str) -> str:
    """Where the DBFS path ``dbfs_path`` (``/tmp/...`` or ``dbfs:/tmp/...``) is in the local file system."""
    return os.path.join(mount, dbfs_path.removeprefix("dbfs:").lstrip("/"))


class DbfsContextLoader(PipesContextLoader):
    """Reads the context file the Dagster side put on DBFS."""

    def __init__(self, mount: str) -> None:
        self.mount = mount

    @contextmanager
    def load_context(self, params: PipesParams) -> Iterator[PipesContextData]:
        with open(mounted(self.mount, str(params["path"])), encoding="utf-8") as file:
            yield json.load(file)


class DbfsMessageWriter(PipesBlobStoreMessageWriter):
    """Writes message chunks into the DBFS folder the Dagster side reads them from."""

    def __init__(self, mount: str, *, interval: float = 5) -> None:
        super().__init__(interval=interval)
        self.mount = mount

    def make_channel(self, params: PipesParams) -> PipesBufferedFilesystemMessageWriterChannel:
        return PipesBufferedFilesystemMessageWriterChannel(
            path=mounted(self.mount, str(params["path"])), interval=self.interval
        )
