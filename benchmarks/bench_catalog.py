"""The catalog at scale: ``pi_af`` + ``pi_points`` for N points, twice, and the mock's own costs at that size.

Starts the mock PI Web API in its own process (``python -m osipi_dagster.mock --tags N --now <fixed>``) and
reports:

* the mock: start-up (process start until ``/piwebapi`` answers), ``GET /admin/info``, a search of the last
  day's event frames of every database read to the end (pages of 1,000, with ``searchFullHierarchy``:
  children too), and a ``summaryDuration`` summary (1-minute averages over one day of one point: 1,440
  intervals), in ms per interval;
* the first refresh: ``pi_af`` and ``pi_points`` materialized through Dagster (``dg.materialize`` on a
  ``dg.instance_for_test()`` instance) into an empty lake: wall time, CPU seconds of the run's process and of
  the mock, and the run's peak RSS (``ru_maxrss``: Dagster and the lake writer included);
* the second refresh, nothing changed in PI: the same figures and the changes it reported (elements,
  attributes and points added, removed, changed: all zero when the catalog is stable).

Each refresh runs in a child process of its own (this script with ``--child``) so that each peak RSS belongs
to that refresh alone. With ``--phases``, each refresh also reports the peak RSS and the CPU seconds of each
of its phases (reading AF, each table's commit, reading points): the process's peak (``VmHWM``) is reset at
each phase's start through ``/proc/self/clear_refs`` (Linux) and read at its end, the phases marked by
wrapping the refresh functions and the lake's writer as the assets call them.

    .venv/bin/python benchmarks/bench_catalog.py --points 100000
    .venv/bin/python benchmarks/bench_catalog.py --points 10000 --keep /tmp/lake   # keep the lake to look at
    .venv/bin/python benchmarks/bench_catalog.py --points 100000 --max-frame-pages 2   # main before issue 11
    .venv/bin/python benchmarks/bench_catalog.py --points 100000 --phases   # where each refresh peaks
    .venv/bin/python benchmarks/bench_catalog.py --points 30000 --changed-points 30100   # a changed catalog
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_ingest import (
    free_port,
    proc_cpu_seconds,
    proc_peak_rss_mib,
    self_cpu_seconds,
    self_peak_rss_mib,
    wait_until_up,
)

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2025, 1, 6, 12, tzinfo=UTC)
CHANGE_KEYS = (
    "elements_added", "elements_removed", "elements_changed",
    "attributes_added", "attributes_removed", "attributes_changed",
    "points_added", "points_deleted", "points_renamed",
)  # fmt: skip


def start_mock(points: int) -> tuple[subprocess.Popen, str, float]:
    """The mock in its own process, its clock fixed at ``NOW``; returns (process, api, start-up seconds)."""
    port = free_port()
    command = [
        sys.executable, "-m", "osipi_dagster.mock", "--port", str(port), "--tags", str(points),
        "--now", NOW.isoformat().replace("+00:00", "Z"), "--archive-days", "3", "--event-frame-days", "2",
    ]  # fmt: skip
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    api = f"http://127.0.0.1:{port}/piwebapi"
    wait_until_up(api, process)
    return process, api, time.perf_counter() - started


def mock_figures(api: str, max_frame_pages: int | None) -> dict[str, object]:
    """Time ``/admin/info``, the last day's event frames and a ``summaryDuration`` summary."""
    from osipi_dagster.pi import PIWebAPIClient

    started = time.perf_counter()
    info = requests.get(api.removesuffix("/piwebapi") + "/admin/info", timeout=600).json()
    info_seconds = time.perf_counter() - started
    with PIWebAPIClient(api) as client:
        databases = [d.web_id for s in client.asset_servers() for d in client.asset_databases(s.web_id)]
        point = next(iter(client.points(client.data_servers()[0].web_id, page_size=1)))
    # Pages read here with a long timeout (not the client's 30 s): the point is to time the mock.
    started = time.perf_counter()
    frames = pages = 0
    first_page_seconds = None
    for database in databases:
        start = 0
        while max_frame_pages is None or pages < max_frame_pages:
            params = {
                "searchMode": "Overlapped", "startTime": (NOW - timedelta(days=1)).isoformat(),
                "endTime": NOW.isoformat(), "searchFullHierarchy": "true", "startIndex": start,
                "maxCount": 1000, "selectedFields": "Items.WebId",
            }  # fmt: skip
            items = requests.get(f"{api}/assetdatabases/{database}/eventframes", params, timeout=900).json()
            start, frames, pages = start + len(items["Items"]), frames + len(items["Items"]), pages + 1
            first_page_seconds = first_page_seconds or time.perf_counter() - started
            if len(items["Items"]) < 1000:
                break
    frames_seconds = time.perf_counter() - started
    started = time.perf_counter()
    summary = requests.get(
        f"{api}/streams/{point.web_id}/summary",
        params={"startTime": "*-1d", "endTime": "*", "summaryDuration": "1m", "summaryType": "Average"},
        timeout=600,
    )
    summary_seconds = time.perf_counter() - started
    intervals = len(summary.json()["Items"])
    return {
        "admin_info_seconds": round(info_seconds, 2),
        "elements": sum(db["ElementCount"] for db in info["AssetServer"]["Databases"]),
        "event_frames_last_day": frames,
        "event_frames_last_day_seconds": round(frames_seconds, 2),
        "event_frame_pages": pages,
        "event_frame_first_page_seconds": round(first_page_seconds or 0.0, 2),
        "event_frame_seconds_per_later_page": round(
            (frames_seconds - (first_page_seconds or 0.0)) / max(pages - 1, 1), 2
        ),
        "summary_intervals": intervals,
        "summary_ms_per_interval": round(summary_seconds / max(intervals, 1) * 1e3, 3),
    }


class PhaseProbe:
    """The peak RSS and the CPU seconds of each phase of this process: ``mark`` ends the current phase (its
    peak is ``VmHWM`` since the last mark) and starts the next one with the peak reset to the current RSS."""

    def __init__(self) -> None:
        self.phases: list[dict[str, object]] = []
        self._current = "start"
        self._cpu = self_cpu_seconds()
        self._reset_peak()

    def mark(self, phase: str) -> None:
        status = _status_mib()
        cpu = self_cpu_seconds()
        self.phases.append(
            {
                "phase": self._current,
                "peak_mib": round(status["VmHWM"]),
                "rss_end_mib": round(status["VmRSS"]),
                "cpu_seconds": round(cpu - self._cpu, 2),
            }
        )
        self._current, self._cpu = phase, cpu
        self._reset_peak()

    def wrap(self, module: object, name: str, phase: Callable[..., str]) -> None:
        """Mark ``phase(*args)`` when ``module.name`` is called and "after <it>" when it returns."""
        function = getattr(module, name)

        def wrapped(*args: object, **kwargs: object) -> object:
            label = phase(*args)
            self.mark(label)
            try:
                return function(*args, **kwargs)
            finally:
                self.mark(f"after {label}")

        setattr(module, name, wrapped)

    @staticmethod
    def _reset_peak() -> None:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")


def _status_mib() -> dict[str, float]:
    with open("/proc/self/status") as status:
        return {
            line.split(":")[0]: int(line.split()[1]) / 1024
            for line in status
            if line.startswith(("VmHWM:", "VmRSS:"))
        }


def probe_phases() -> PhaseProbe:
    """A :class:`PhaseProbe` whose phases are the refresh functions as the assets call them, and each
    table's write inside them."""
    from osipi_dagster.defs.pi_server import af as af_asset
    from osipi_dagster.defs.pi_server import points as points_asset
    from osipi_dagster.ingest import af, catalog

    probe = PhaseProbe()
    probe.wrap(af_asset, "refresh_af", lambda *args: "refresh_af: read elements and attributes")
    probe.wrap(points_asset, "refresh_point_catalog", lambda *args: "refresh_point_catalog: read points")
    for module in (af, catalog):
        probe.wrap(module, "overwrite_table_batches", lambda table, *args: f"commit {table.name}")
    return probe


def refresh(api: str, root: str, phases: bool) -> dict[str, object]:
    """In the child process: materialize ``pi_af`` and ``pi_points`` once; return its figures."""
    import dagster as dg

    from osipi_dagster.defs.pi_server import server_assets
    from osipi_dagster.defs.resources import DeltaLakehouseResource, PIWebAPIResource
    from osipi_dagster.settings import PIServerSettings

    # --changed-points reads another mock on purpose: the safety limit on removals (a comparison of counts,
    # no cost) would refuse it.
    assets = server_assets(PIServerSettings(catalog_max_removed_share=1.0))
    resources = {"pi": PIWebAPIResource(base_url=api), "lakehouse": DeltaLakehouseResource(root=root)}
    with dg.instance_for_test() as instance:
        rss_before = self_peak_rss_mib()
        cpu_before = self_cpu_seconds()
        probe = probe_phases() if phases else None
        started = time.perf_counter()
        result = dg.materialize([assets.af, assets.points], resources=resources, instance=instance)
        wall = time.perf_counter() - started
        if probe is not None:
            probe.mark("end")
        assert result.success
        metadata: dict[str, object] = {}
        for node in ("pi_af", "pi_points"):
            for materialization in result.asset_materializations_for_node(node):
                metadata.update({key: value.value for key, value in materialization.metadata.items()})
    phase_peaks = probe.phases if probe is not None else []
    return {
        "wall_seconds": round(wall, 1),
        "cpu_seconds": round(self_cpu_seconds() - cpu_before, 1),
        # The probe resets the kernel's peak at each phase: the run's peak is then the highest phase's.
        "peak_rss_mib": round(max([self_peak_rss_mib(), *(p["peak_mib"] for p in phase_peaks)])),
        "peak_rss_mib_after_imports": round(rss_before),
        "points_active": metadata.get("points_active"),
        "changes": {key: metadata.get(key) for key in CHANGE_KEYS},
        **({"phases": phase_peaks} if probe is not None else {}),
    }


def run_child(api: str, root: Path, mock_pid: int, phases: bool) -> dict[str, object]:
    """One refresh in a child process, with the mock's CPU seconds over it."""
    mock_cpu = proc_cpu_seconds(mock_pid)
    command = [
        sys.executable,
        __file__,
        "--child",
        api,
        "--root",
        str(root),
        *(["--phases"] if phases else []),
    ]
    child = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if child.returncode:
        raise SystemExit(f"the refresh failed (status {child.returncode}):\n{child.stderr[-5000:]}")
    figures = json.loads(child.stdout.strip().splitlines()[-1])
    figures["mock_cpu_seconds"] = round(proc_cpu_seconds(mock_pid) - mock_cpu, 1)
    return figures


def run(args: argparse.Namespace) -> dict[str, object]:
    root = args.keep or Path(tempfile.mkdtemp(prefix="bench_catalog_"))
    load_before = os.getloadavg()
    mock, api, startup = start_mock(args.points)
    try:
        mock_side = {"startup_seconds": round(startup, 1), **mock_figures(api, args.max_frame_pages)}
        first = run_child(api, root, mock.pid, args.phases)
        if args.changed_points is not None:
            mock.terminate()
            mock.wait(60)
            mock, api, _ = start_mock(args.changed_points)
        second = run_child(api, root, mock.pid, args.phases)
        mock_side["peak_rss_mib"] = round(proc_peak_rss_mib(mock.pid))
    finally:
        mock.terminate()
        mock.wait(60)
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    return {
        "points": args.points,
        "mock": mock_side,
        "first": first,
        "second": second,
        "own_cpu_seconds": round(self_cpu_seconds(), 1),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=lambda s: int(s.replace("_", "")), default=10_000)
    parser.add_argument(
        "--keep", type=Path, default=None, help="lake root to keep (default: a temporary one)"
    )
    parser.add_argument(
        "--max-frame-pages",
        type=int,
        default=None,
        help="read at most this many pages of event frames (default: the whole day; main's mock at 100,000 "
        "points searches again for every page)",
    )
    parser.add_argument(
        "--phases", action="store_true", help="report each refresh's peak RSS phase by phase (Linux)"
    )
    parser.add_argument(
        "--changed-points",
        type=lambda s: int(s.replace("_", "")),
        default=None,
        help="run the second refresh against another mock of this many points: a changed catalog (the mock "
        "figures are then the first mock's, its peak RSS the second's)",
    )
    parser.add_argument("--child", metavar="API", help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(refresh(args.child, args.root, args.phases)))
        return
    figures = run(args)
    mock_side, first, second = figures["mock"], figures["first"], figures["second"]
    print(
        f"{args.points:,} points: mock start-up {mock_side['startup_seconds']} s, /admin/info "
        f"{mock_side['admin_info_seconds']} s, {mock_side['event_frames_last_day']:,} event frames of the "
        f"last day in {mock_side['event_frames_last_day_seconds']} s ({mock_side['event_frame_pages']} "
        "pages), summaries "
        f"{mock_side['summary_ms_per_interval']} ms/interval; pi_af + pi_points first "
        f"{first['wall_seconds']} s (peak {first['peak_rss_mib']} MiB), second {second['wall_seconds']} s "
        f"(peak {second['peak_rss_mib']} MiB), changes on the second: {second['changes']}"
    )
    for name in ("first", "second") if args.phases else ():
        for phase in figures[name]["phases"]:
            print(
                f"{name}: {phase['phase']}: peak {phase['peak_mib']} MiB, then {phase['rss_end_mib']} MiB, "
                f"{phase['cpu_seconds']} s CPU"
            )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
