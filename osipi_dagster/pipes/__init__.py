"""The ingestion core run elsewhere than in the Dagster step, through Dagster Pipes.

``python -m osipi_dagster.pipes`` (console script ``osipi-pipes``) is what a ``subprocess`` or ``databricks``
compute target starts (``osipi_dagster.defs.compute``). It reads the partition keys and the settings from the
Pipes context, runs the same ``osipi_dagster.ingest`` functions as the in-process asset, and reports each
partition's result back through Pipes, where the asset turns it into the same metadata.

It imports ``dagster-pipes`` only, never ``dagster`` (an import-linter contract): the cluster side needs
nothing of the orchestrator.
"""
