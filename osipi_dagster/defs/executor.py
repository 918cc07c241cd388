"""How every run of the code location executes its steps: one after the other, in its run worker.

Dagster's default, the multiprocess executor, starts a fresh Python process for each step of a run, which
imports Dagster and the project again (about 7 CPU seconds each, docs/BENCHMARKS.md). A run of
``pi_timeseries`` has two steps (the asset, then its checks), so it paid three start-ups where one does:
on a busy host, start-ups were most of a backfill's run time. The steps of these runs depend on one another
and read PI or Delta through the run's own resources, so running them side by side gained nothing.

The executor is set for the whole code location (``Definitions(executor=...)``) because a backfill launched
from the UI runs the implicit asset job, which takes the location's executor, not a named job's. Memory
isolation, when a step needs it, comes from ``OSIPI_COMPUTE=subprocess`` or ``databricks`` (defs/compute.py);
a run's termination interrupts its worker, which is then the step itself (``test_cancellation.py``).
"""

import dagster as dg


def executor_definitions() -> dg.Definitions:
    """The executor of every job of the code location, the implicit asset job included."""
    return dg.Definitions(executor=dg.in_process_executor)


@dg.definitions
def executor() -> dg.Definitions:
    """Every run executes its steps in its run worker."""
    return executor_definitions()
