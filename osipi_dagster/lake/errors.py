"""Exceptions raised by the lake layer. Each message says what is wrong and what to do."""

from __future__ import annotations


class LakeError(Exception):
    """Base class of every error raised by ``osipi_dagster.lake``."""


class InvalidTableNameError(LakeError, ValueError):
    """A table name is not ``<schema>.<table>`` in lower-case ASCII."""


class InvalidLakeRootError(LakeError, ValueError):
    """The lakehouse root is neither a local folder nor a supported object-store URI."""


class TableSchemaMismatchError(LakeError):
    """An existing Delta table does not have the schema this version of osipi-dagster writes."""


class InvalidRowsError(LakeError, ValueError):
    """Rows handed to a writer break the write's contract (columns, nulls, slice bounds, keys)."""


class ConcurrentWriteError(LakeError):
    """Another writer committed a conflicting change to the same rows at the same time."""


class UnwritableLakeRootError(LakeError):
    """The lakehouse root is a local folder this process cannot create or write."""


class UnsafeStorageOptionsError(LakeError, ValueError):
    """Object-store settings with which two concurrent writers could both commit the same table version."""
