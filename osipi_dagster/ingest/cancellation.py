"""Stopping a run cleanly: an interrupt (SIGINT, or SIGTERM, which Dagster's run termination turns into one)
stops reading within seconds and commits nothing.

Python delivers a signal to the main thread only, and only while it runs Python code. A Delta write spends
its time inside delta-rs (Rust), which pulls the record batches from another thread: an interrupt would
wait until the write has committed the whole slice. So the work runs in a worker thread while the main
thread waits in Python, where the interrupt arrives; it then sets the ``cancel`` event the work's read
checks, waits for the work to stop (the read raises, so delta-rs aborts the write without a commit), and
re-raises the interrupt, so the run ends as failed or cancelled.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

# How long an interrupted run waits for its work to stop before it gives up on it (the thread is a daemon:
# it dies with the process). A read stops within about a second; a commit already under way completes.
STOP_TIMEOUT_S = 30.0
_POLL_S = 0.2


def run_interruptibly(work: Callable[[threading.Event], T]) -> T:
    """``work(cancel)``, run so that an interrupt of the calling (main) thread sets ``cancel`` and is
    re-raised once the work has stopped (or after ``STOP_TIMEOUT_S``).

    Off the main thread no signal can arrive, so the work simply runs in the caller's thread.
    """
    cancel = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        return work(cancel)
    results: list[T] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            results.append(work(cancel))
        except BaseException as exc:  # handed to the waiting thread, which re-raises it
            errors.append(exc)

    worker = threading.Thread(target=target, name="osipi-ingest", daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(_POLL_S)
    except BaseException:
        cancel.set()
        worker.join(STOP_TIMEOUT_S)
        raise
    if errors:
        raise errors[0]
    return results[0]
