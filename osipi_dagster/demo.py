"""`make demo`: start the mock PI Web API, show what it serves and answer a few sample requests.

Until the ingestion job lands (issue 4) this is the end-to-end tour of the embedded default: it starts
the mock with a fixed clock (so the output is reproducible), prints the data server, point count, AF
databases and event frames, runs sample requests over real HTTP, stops the mock and exits 0.
"""

from __future__ import annotations

import json
import sys
import time
from urllib.parse import quote

import requests

from osipi_dagster.mock.config import MockConfig
from osipi_dagster.mock.server import serve_in_thread

DEMO_CONFIG = MockConfig(port=0, tags=2_000, now="2025-01-06T12:00:00Z")
HEADERS = {"Accept-Encoding": "gzip", "X-Requested-With": "osipi-demo"}


def _get(session: requests.Session, url: str, **params: str) -> dict:
    response = session.get(url, params=params, headers=HEADERS, timeout=30)
    response.raise_for_status()
    return response.json()


def _show(title: str, body: object, limit: int = 600) -> None:
    text = json.dumps(body, indent=1)
    print(f"\n--- {title}\n{text[:limit]}{' ...' if len(text) > limit else ''}")


def main() -> int:
    started = time.perf_counter()
    with serve_in_thread(DEMO_CONFIG) as mock, requests.Session() as session:
        print(f"Mock PI Web API listening on {mock.api} (clock fixed at {DEMO_CONFIG.now})")
        info = _get(session, mock.url + "/admin/info")
        _show("What the mock serves (/admin/info)", info, limit=4000)

        server = _get(session, mock.api + "/dataservers")["Items"][0]
        points = _get(session, server["Links"]["Points"], maxCount="3")["Items"]
        _show(f"Data server {server['Name']}: first points", [p["Name"] for p in points])
        first = points[0]
        recorded = _get(
            session,
            first["Links"]["RecordedData"],
            startTime="*-1m",
            endTime="*",
            maxCount="5",
            selectedFields="Items.Timestamp;Items.Value;Items.Good",
        )
        _show(f"Recorded values of {first['Name']} over the last minute (5 max)", recorded)

        webids = "&".join(f"webId={quote(p['WebId'])}" for p in points)
        streamset = _get(session, f"{mock.api}/streamsets/value?{webids}")
        _show("Snapshot values of three points (/streamsets/value)", streamset)

        asset_server = _get(session, mock.api + "/assetservers")["Items"][0]
        database = _get(session, asset_server["Links"]["Databases"])["Items"][0]
        elements = _get(session, database["Links"]["Elements"], searchFullHierarchy="true", maxCount="3")
        _show(f"AF database {database['Path']}: first elements", [e["Path"] for e in elements["Items"]])
        frames = _get(session, database["Links"]["EventFrames"], startTime="*-1d", maxCount="3")
        _show(
            "Event frames active in the last day (3 max)",
            [
                {k: f[k] for k in ("Name", "TemplateName", "StartTime", "EndTime", "Severity")}
                for f in frames["Items"]
            ],
        )

        batch = session.post(
            mock.api + "/batch",
            json={
                "points": {"Method": "GET", "Resource": f"{server['Links']['Points']}?maxCount=2"},
                "end": {"Method": "GET", "Resource": first["Links"]["EndValue"]},
            },
            headers=HEADERS,
            timeout=30,
        )
        _show(f"A /batch request answered {batch.status_code}", batch.json())
    print(f"\nDemo finished in {time.perf_counter() - started:.1f} s; the mock is stopped.")
    print("Run the mock alone with `make mock` (http://127.0.0.1:8010/piwebapi).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
