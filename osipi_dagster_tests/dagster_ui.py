"""A small client of the Dagster webserver's GraphQL API, sending the documents the UI itself sends.

Tests drive ``dagster dev`` through it as a user does through the UI: load-status of the code location,
the Materialize button (``launchRun``), the partition backfill dialog (``launchPartitionBackfill``), and
the status pages of runs and backfills. Requests only, loopback only.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import requests

REPOSITORY = "__repository__"  # the repository name of a ``dg.Definitions`` object
ASSET_JOB = "__ASSET_JOB"  # the implicit job the UI materializes assets with
RUN_DONE = {"SUCCESS", "FAILURE", "CANCELED"}
BACKFILL_DONE = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}

LOCATIONS = """query { workspaceOrError { __typename
  ... on Workspace { locationEntries { name loadStatus
    locationOrLoadError { __typename ... on PythonError { message stack } } } }
  ... on PythonError { message } } }"""
LAUNCH_RUN = """mutation LaunchRun($executionParams: ExecutionParams!) {
  launchRun(executionParams: $executionParams) { __typename
    ... on LaunchRunSuccess { run { runId status } }
    ... on PythonError { message stack } ... on InvalidSubsetError { message }
    ... on RunConfigValidationInvalid { errors { message } } } }"""
RUN_STATUS = """query RunStatus($runId: ID!) { runOrError(runId: $runId) { __typename
  ... on Run { runId status tags { key value } }
  ... on RunNotFoundError { message } ... on PythonError { message } } }"""
RUN_ERRORS = """query RunErrors($runId: ID!) { logsForRun(runId: $runId) { __typename
  ... on EventConnection { events { __typename
    ... on ExecutionStepFailureEvent { stepKey error { message } }
    ... on RunFailureEvent { message } } } } }"""
LAUNCH_BACKFILL = """mutation LaunchPartitionBackfill($backfillParams: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $backfillParams) { __typename
    ... on LaunchBackfillSuccess { backfillId launchedRunIds }
    ... on PartitionKeysNotFoundError { message partitionKeys }
    ... on InvalidSubsetError { message } ... on UnauthorizedError { message }
    ... on PythonError { message stack } ... on PartitionSetNotFoundError { message } } }"""
BACKFILL_STATUS = """query BackfillStatus($backfillId: String!) {
  partitionBackfillOrError(backfillId: $backfillId) { __typename
    ... on PartitionBackfill { id status numPartitions partitionNames
      runs(limit: 1000) { runId status tags { key value } } error { message } }
    ... on PythonError { message } ... on BackfillNotFoundError { message } } }"""
START_SENSOR = """mutation StartSensor($sensorSelector: SensorSelector!) {
  startSensor(sensorSelector: $sensorSelector) { __typename
    ... on Sensor { id sensorState { id selectorId status } }
    ... on PythonError { message } ... on UnauthorizedError { message } } }"""
STOP_SENSOR = """mutation StopSensor($id: String!) { stopSensor(id: $id) { __typename
    ... on StopSensorMutationResult { instigationState { status } }
    ... on PythonError { message } ... on UnauthorizedError { message } } }"""
SENSOR_STATE = """query SensorState($sensorSelector: SensorSelector!) {
  sensorOrError(sensorSelector: $sensorSelector) { __typename
    ... on Sensor { name sensorState { status ticks(limit: 200) { status runIds skipReason timestamp
      error { message } } } }
    ... on PythonError { message } } }"""
RUNS = """query Runs($filter: RunsFilter) { runsOrError(filter: $filter, limit: 500) { __typename
  ... on Runs { results { runId status jobName startTime endTime tags { key value } } }
  ... on PythonError { message } } }"""
MATERIALIZATIONS = """query Materializations($assetKey: AssetKeyInput!, $partitions: [String!]) {
  assetOrError(assetKey: $assetKey) { __typename
    ... on Asset { assetMaterializations(partitions: $partitions) { partition runId } }
    ... on AssetNotFoundError { message } } }"""


class DagsterUI:
    """The GraphQL API of a Dagster webserver at ``url`` (e.g. ``http://127.0.0.1:3000``)."""

    def __init__(self, url: str) -> None:
        self.url = url

    def gql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """The ``data`` of one GraphQL request; raises on HTTP or GraphQL errors."""
        answer = requests.post(
            f"{self.url}/graphql", json={"query": query, "variables": variables or {}}, timeout=60
        )
        if answer.status_code != 200:  # schema errors come back as 400
            raise RuntimeError(f"GraphQL HTTP {answer.status_code}: {answer.text[:2000]}")
        body = answer.json()
        if body.get("errors"):
            raise RuntimeError(f"GraphQL errors: {json.dumps(body['errors'])[:2000]}")
        return body["data"]

    def location(self) -> str:
        """The name of the one code location; raises with Dagster's own error if it failed to load."""
        workspace = self.gql(LOCATIONS)["workspaceOrError"]
        if workspace["__typename"] != "Workspace":
            raise RuntimeError(f"The workspace failed to load: {workspace}")
        (entry,) = workspace["locationEntries"]
        loaded = entry["locationOrLoadError"] or {}
        if loaded.get("__typename") != "RepositoryLocation":
            raise RuntimeError(
                f"Code location {entry['name']} ({entry['loadStatus']}) failed to load: {loaded}"
            )
        return entry["name"]

    def materialize(self, location: str, assets: list[str], tags: dict[str, str] | None = None) -> str:
        """Launch one run of ``assets`` as the Materialize button does (a partition range through the
        range tags, as the launchpad sets them); the run id."""
        selector = {"repositoryLocationName": location, "repositoryName": REPOSITORY, "jobName": ASSET_JOB}
        params = {
            "selector": {**selector, "assetSelection": [{"path": [name]} for name in assets]},
            "mode": "default",
            "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in (tags or {}).items()]},
            "runConfigData": {},
        }
        launched = self.gql(LAUNCH_RUN, {"executionParams": params})["launchRun"]
        if launched["__typename"] != "LaunchRunSuccess":
            raise RuntimeError(f"launchRun failed: {launched}")
        return launched["run"]["runId"]

    def wait_run(self, run_id: str, timeout_s: float) -> dict[str, Any]:
        """The run once it ended; raises with its step errors if it did not succeed."""
        run = _poll(lambda: self.gql(RUN_STATUS, {"runId": run_id})["runOrError"], _run_done, timeout_s)
        if run.get("status") != "SUCCESS":
            raise AssertionError(f"Run {run_id} ended {run.get('status', run)}: {self.run_errors(run_id)}")
        return run

    def run_errors(self, run_id: str) -> list[str]:
        """The step and run failure messages of a run."""
        events = self.gql(RUN_ERRORS, {"runId": run_id})["logsForRun"].get("events", [])
        return [
            f"{event.get('stepKey', 'run')}: {(event.get('error') or event)['message']}"
            for event in events
            if event["__typename"] in {"ExecutionStepFailureEvent", "RunFailureEvent"}
        ]

    def launch_backfill(self, asset: str, partitions: list[str], tags: dict[str, str]) -> str:
        """Launch a backfill of ``partitions`` of ``asset`` as the UI's backfill dialog does; its id."""
        params = {
            "assetSelection": [{"path": [asset]}],
            "partitionNames": partitions,
            "fromFailure": False,
            "tags": [{"key": key, "value": value} for key, value in tags.items()],
        }
        launched = self.gql(LAUNCH_BACKFILL, {"backfillParams": params})["launchPartitionBackfill"]
        if launched["__typename"] != "LaunchBackfillSuccess":
            raise RuntimeError(f"launchPartitionBackfill failed: {launched}")
        return launched["backfillId"]

    def wait_backfill(self, backfill_id: str, timeout_s: float) -> dict[str, Any]:
        """The backfill once it and all its runs ended (the daemon evaluates it every 30 s)."""

        def fetch() -> dict[str, Any]:
            return self.gql(BACKFILL_STATUS, {"backfillId": backfill_id})["partitionBackfillOrError"]

        return _poll(fetch, _backfill_done, timeout_s)

    def start_sensor(self, location: str, name: str) -> str:
        """Turn a sensor on, as its toggle in the UI does; its id (for :meth:`stop_sensor`)."""
        selector = {"repositoryLocationName": location, "repositoryName": REPOSITORY, "sensorName": name}
        started = self.gql(START_SENSOR, {"sensorSelector": selector})["startSensor"]
        if started["__typename"] != "Sensor" or started["sensorState"]["status"] != "RUNNING":
            raise RuntimeError(f"startSensor failed: {started}")
        return started["id"]

    def stop_sensor(self, sensor_id: str) -> None:
        """Turn a sensor off, as its toggle in the UI does."""
        stopped = self.gql(STOP_SENSOR, {"id": sensor_id})["stopSensor"]
        if stopped["__typename"] != "StopSensorMutationResult":
            raise RuntimeError(f"stopSensor failed: {stopped}")

    def sensor_ticks(self, location: str, name: str) -> list[dict[str, Any]]:
        """The sensor's ticks, newest first (status, runIds, skipReason, timestamp, error)."""
        selector = {"repositoryLocationName": location, "repositoryName": REPOSITORY, "sensorName": name}
        sensor = self.gql(SENSOR_STATE, {"sensorSelector": selector})["sensorOrError"]
        if sensor["__typename"] != "Sensor":
            raise RuntimeError(f"sensorOrError failed: {sensor}")
        return sensor["sensorState"]["ticks"]

    def runs(self, job_name: str | None = None) -> list[dict[str, Any]]:
        """Every run (of ``job_name``), newest first, with status, start/end times and tags."""
        runs_filter = {"pipelineName": job_name} if job_name else {}
        answer = self.gql(RUNS, {"filter": runs_filter})["runsOrError"]
        if answer["__typename"] != "Runs":
            raise RuntimeError(f"runsOrError failed: {answer}")
        return answer["results"]

    def materializations(self, asset: str, partitions: list[str]) -> list[dict[str, str]]:
        """Every materialization (``partition``, ``runId``) of ``partitions`` of ``asset``."""
        answer = self.gql(MATERIALIZATIONS, {"assetKey": {"path": [asset]}, "partitions": partitions})
        return answer["assetOrError"]["assetMaterializations"]


def _run_done(run: dict[str, Any]) -> bool:
    return run["__typename"] != "Run" or run["status"] in RUN_DONE


def _backfill_done(backfill: dict[str, Any]) -> bool:
    if backfill["__typename"] != "PartitionBackfill":
        return True
    return backfill["status"] in BACKFILL_DONE and all(run["status"] in RUN_DONE for run in backfill["runs"])


def _poll(
    fetch: Callable[[], dict[str, Any]], done: Callable[[dict[str, Any]], bool], timeout_s: float
) -> dict[str, Any]:
    """``fetch()`` every second until ``done`` says so; raises ``TimeoutError`` with the last answer."""
    deadline = time.monotonic() + timeout_s
    while True:
        answer = fetch()
        if done(answer):
            return answer
        if time.monotonic() > deadline:
            raise TimeoutError(f"Still not done after {timeout_s:.0f} s: {answer}")
        time.sleep(1)
