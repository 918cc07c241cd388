"""Where ``pi_timeseries`` and ``pi_event_frames`` run: in the Dagster step (the default), in a separate
process on this machine, or in a Databricks job run, the last two through Dagster Pipes.

A PI server's ``compute`` setting (``OSIPI_COMPUTE``) picks the target. With ``subprocess`` or
``databricks`` the server gets a ``compute`` resource (:class:`ComputeResource`), and the two assets hand
their partitions to :func:`run_elsewhere`, which starts ``python -m osipi_dagster.pipes`` there. That entry
point calls the same ``osipi_dagster.ingest`` functions and reports each partition's result back; the asset
turns each into the same metadata as in process. A partition is committed by one Delta commit wherever it
runs, so the exactly-once guarantees do not change.

Secrets never travel in the request: it names the environment variables that hold them. A subprocess
inherits this process's environment; a Databricks job cluster gets them from Databricks secrets, as
``{{secrets/<scope>/<key>}}`` references in ``spark_env_vars``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

import dagster as dg
from dagster._core.errors import DagsterPipesExecutionError  # what every Pipes client raises; not exported
from pydantic import Field, PrivateAttr

from osipi_dagster.defs.pi_server.partitions import split_partition_key
from osipi_dagster.defs.pi_server.wiring import ServerWiring
from osipi_dagster.defs.resources import PIWebAPIResource
from osipi_dagster.lake import LakeTable
from osipi_dagster.lake.schemas import TABLE_SPECS, TableSpec
from osipi_dagster.pipes.request import (
    EXTRAS_KEY,
    ClientOptions,
    Partition,
    RemoteJob,
    RemoteRequest,
    result_of,
)
from osipi_dagster.settings import ComputeTarget, PipesTransport, PIServerSettings
from osipi_dagster.unity_catalog import register_tables

if TYPE_CHECKING:
    from databricks.sdk import WorkspaceClient

ENTRY_POINT = [sys.executable, "-m", "osipi_dagster.pipes"]
# The wheel's distribution name and console script (pyproject.toml), as Databricks' python_wheel_task takes.
WHEEL_PACKAGE = "osipi_dagster"
WHEEL_ENTRY_POINT = "osipi-pipes"

# A table's metadata from one partition's result, and from the whole run's results.
PartitionMetadata = Callable[[Any, LakeTable], Mapping[str, object]]
RunMetadata = Callable[[list[Any], LakeTable], Mapping[str, object]]


class ComputeResource(dg.ConfigurableResource):
    """Runs a step's ingestion outside the Dagster step: a subprocess, or a Databricks one-time job run on
    a new cluster that has the connector installed (`library`)."""

    target: ComputeTarget = Field(description="subprocess or databricks.")
    databricks_host: str | None = Field(default=None, description="The Databricks workspace URL.")
    databricks_token: str | None = Field(
        default=None, description="The token Dagster submits job runs with: use an EnvVar."
    )
    spark_version: str = Field(
        default="15.4.x-scala2.12", description="The job cluster's Databricks Runtime."
    )
    node_type: str | None = Field(default=None, description="The job cluster's node type.")
    num_workers: int = Field(default=0, ge=0, description="The job cluster's workers (0: a single node).")
    library: str | None = Field(
        default=None,
        description="The connector's wheel (dbfs:/, /Workspace/, /Volumes/) or PyPI requirement.",
    )
    secrets: dict[str, str] = Field(
        default_factory=dict,
        description="The job cluster's secret environment variables, as Databricks secret references "
        "({{secrets/scope/key}}).",
    )
    poll_interval_seconds: float = Field(default=5.0, gt=0, description="How often the job run is polled.")

    _workspace: Any = PrivateAttr(default=None)

    def __repr_args__(self):
        for name, value in super().__repr_args__():
            yield name, ("***" if name == "databricks_token" and value else value)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        if self.target == ComputeTarget.DATABRICKS:
            self._workspace = _workspace_client(self.databricks_host, self.databricks_token)

    @property
    def workspace(self) -> WorkspaceClient:
        """The step's Databricks workspace client (opened by Dagster before the step runs)."""
        if self._workspace is None:
            raise dg.DagsterInvariantViolationError(
                "ComputeResource.workspace exists inside a step whose target is databricks only."
            )
        return self._workspace

    def run(self, context: dg.AssetExecutionContext, request: RemoteRequest) -> RemoteRun:
        """Run ``request`` on the target; every message it reported, and the target's run metadata.

        Raises:
            dg.Failure: the remote run failed (with its error), or ended without reporting every partition.
        """
        if self.target == ComputeTarget.DATABRICKS:
            self._check_secrets(request.server)
        reader = self._message_reader()
        try:
            completed = self._launch(context, request, reader)
        except DagsterPipesExecutionError as error:
            raise _remote_failure(request, reader.custom_messages(), str(error)) from error
        remote = RemoteRun(request.job, reader.custom_messages(), dict(completed.metadata))
        missing = [p.key for p in request.partitions if p.key not in remote.results]
        if missing:
            raise _remote_failure(
                request, reader.custom_messages(), f"the run ended without reporting {', '.join(missing)}"
            )
        return remote

    def _message_reader(self) -> _RemembersMessages:
        if self.target == ComputeTarget.DATABRICKS:
            return _dbfs_message_reader(self.workspace, self.poll_interval_seconds)
        return _TempFileMessageReader()

    def _launch(
        self, context: dg.AssetExecutionContext, request: RemoteRequest, reader: _RemembersMessages
    ) -> dg.PipesClientCompletedInvocation:
        extras = {EXTRAS_KEY: request.model_dump(mode="json")}
        if self.target == ComputeTarget.SUBPROCESS:
            return dg.PipesSubprocessClient(message_reader=reader).run(
                context=context, extras=extras, command=ENTRY_POINT
            )
        from dagster_databricks import PipesDatabricksClient

        client = PipesDatabricksClient(
            self.workspace, message_reader=reader, poll_interval_seconds=self.poll_interval_seconds
        )
        return client.run(
            context=context,
            extras=extras,
            task=self._task(request),
            submit_args={"run_name": f"osipi {request.job.value} {request.run_id}"},
        )

    def _task(self, request: RemoteRequest) -> Any:
        from databricks.sdk.service import jobs

        single_node = {
            "spark_conf": {"spark.databricks.cluster.profile": "singleNode", "spark.master": "local[*]"},
            "custom_tags": {"ResourceClass": "SingleNode"},
        }
        return jobs.SubmitTask.from_dict(
            {
                "task_key": f"osipi_{request.job.value}",
                "new_cluster": {
                    "spark_version": self.spark_version,
                    "node_type_id": self.node_type,
                    "num_workers": self.num_workers,
                    **(single_node if self.num_workers == 0 else {}),
                    "spark_env_vars": {**self.secrets, "OSIPI_PIPES_TRANSPORT": PipesTransport.DBFS.value},
                },
                "libraries": [library_spec(self.library or "")],
                "python_wheel_task": {"package_name": WHEEL_PACKAGE, "entry_point": WHEEL_ENTRY_POINT},
            }
        )

    def _check_secrets(self, server: PIServerSettings) -> None:
        # Checked before anything is submitted: a cluster without the secret would fail minutes later.
        missing = [name for name in server.secret_env_vars.values() if name not in self.secrets]
        if missing:
            raise dg.Failure(
                description=f"The PI server {server.name!r} reads its secrets from {', '.join(missing)}, "
                "which the Databricks job cluster would not have: map each to a Databricks secret in "
                "OSIPI_DATABRICKS_SECRETS (e.g. OSIPI_PI_PASSWORD=osipi/pi-password; docs/DEPLOYMENT.md). "
                "Nothing was submitted."
            )


@dataclass(frozen=True)
class RemoteRun:
    """What a remote run reported: each partition's result (by key), and the target's run metadata."""

    job: RemoteJob
    messages: Sequence[Any]
    metadata: dict[str, Any]

    @property
    def results(self) -> dict[str, Any]:
        return {m["partition"]: result_of(self.job, m) for m in self.messages if "partition" in m}


def library_spec(library: str) -> dict[str, Any]:
    """A Databricks library for ``library``: a wheel's path, or a PyPI requirement."""
    return {"whl": library} if library.endswith(".whl") else {"pypi": {"package": library}}


def compute_resources(server: ServerWiring) -> dict[str, ComputeResource]:
    """The server's ``compute`` resource when its ingestion runs outside the Dagster step; none in process."""
    settings = server.settings
    if server.runs_in_process:
        return {}
    databricks = settings.compute == ComputeTarget.DATABRICKS
    return {
        server.compute_resource_key: ComputeResource(
            target=settings.compute,
            databricks_host=settings.databricks_host,
            databricks_token=dg.EnvVar(settings.databricks_token_env_var)
            if databricks and settings.databricks_token_env_var
            else None,
            spark_version=settings.databricks_spark_version,
            node_type=settings.databricks_node_type,
            num_workers=settings.databricks_num_workers,
            library=settings.databricks_library,
            secrets=settings.databricks_secret_references,
            poll_interval_seconds=settings.databricks_poll_seconds,
        )
    }


def run_elsewhere(
    context: dg.AssetExecutionContext,
    server: ServerWiring,
    job: RemoteJob,
    spec: TableSpec,
    config: Mapping[str, Any],
    partition_metadata: PartitionMetadata,
    run_metadata: RunMetadata | None = None,
) -> dg.MaterializeResult:
    """Materialize the step's partitions on the server's compute target: each partition gets
    ``partition_metadata`` of its result, the run ``run_metadata`` of all of them (the asset's own)."""
    compute: ComputeResource = getattr(context.resources, server.compute_resource_key)
    lake = server.lake(context)
    if compute.target == ComputeTarget.DATABRICKS:
        _check_shared_root(lake.root)
    table = lake.table(spec.name)
    request = RemoteRequest(
        job=job,
        partitions=[_partition(job, key) for key in context.partition_keys],
        server=server.settings,
        client=_client_options(server.pi(context)),
        lake_root=lake.root,
        run_id=context.run.run_id,
        config=dict(config),
    )
    remote = compute.run(context, request)
    results = remote.results
    for key, result in results.items():
        context.add_asset_metadata(dict(partition_metadata(result, table)), partition_key=key)
    metadata = {**(run_metadata(list(results.values()), table) if run_metadata else {}), **remote.metadata}
    if compute.target == ComputeTarget.DATABRICKS:
        tables = [lake.table(name) for name in TABLE_SPECS]
        registered = register_tables(compute.workspace, server.settings.databricks_catalog, tables)
        context.log.info(
            "Unity Catalog: "
            + ", ".join(f"{r.name} ({'registered now' if r.created else 'registered'})" for r in registered)
        )
        metadata["unity_catalog_tables"] = dg.MetadataValue.json([r.name for r in registered])
    return dg.MaterializeResult(metadata=metadata)


def _workspace_client(host: str | None, token: str | None) -> WorkspaceClient:
    try:
        from databricks.sdk import WorkspaceClient
    except ImportError as exc:  # pragma: no cover - the test environment installs the extra
        raise dg.DagsterInvariantViolationError(
            "compute=databricks needs the databricks extra: pip install 'osipi-dagster[databricks]'."
        ) from exc
    return WorkspaceClient(host=host, token=token, auth_type="pat")


def _check_shared_root(root: str) -> None:
    # A folder of the Dagster machine would be a folder of the cluster's own disk there: the cluster would
    # not find the tag catalog, and what it wrote would vanish with it.
    if "://" not in root:
        raise dg.Failure(
            description=f"The lakehouse root {root} is a local folder: a Databricks job cluster cannot reach "
            "it. Set OSIPI_LAKE_ROOT to the object store both Dagster and the cluster reach (abfss://, "
            "s3://, gs://; docs/DEPLOYMENT.md). Nothing was submitted."
        )


def _client_options(pi: PIWebAPIResource) -> ClientOptions:
    # The resource's fields as resolved for this run, its secrets left out (ClientOptions has none).
    fields = {name: getattr(pi, name) for name in ClientOptions.model_fields if name != "read"}
    return ClientOptions.model_validate({**fields, "read": pi.read_options()})


def _partition(job: RemoteJob, key: str) -> Partition:
    if job == RemoteJob.TIMESERIES:
        day, shard = split_partition_key(key)
        return Partition(key=str(key), day=date.fromisoformat(day), shard=shard)
    return Partition(key=str(key), day=date.fromisoformat(str(key)))


def _remote_failure(request: RemoteRequest, messages: Sequence[Any], fallback: str) -> dg.Failure:
    errors = [m["error"] for m in messages if "error" in m]
    written = sum(1 for m in messages if "partition" in m)
    if not errors:
        return dg.Failure(
            description=f"The {request.job.value} run failed: {fallback}.",
            metadata={"partitions_written_before_failure": written},
        )
    error = errors[-1]
    metadata: dict[str, Any] = {"partitions_written_before_failure": written, "remote_error": error["type"]}
    if error["failed_points"]:
        metadata["failed_points"] = dg.MetadataValue.json(error["failed_points"])
    return dg.Failure(description=f"{error['type']}: {error['message']}", metadata=metadata)


class _RemembersMessages:
    """A message reader that keeps the Pipes handler, so the custom messages of a failed run (its error)
    can be read after the client raised."""

    _handler: dg.PipesMessageHandler | None = None

    @contextmanager
    def read_messages(self, handler: dg.PipesMessageHandler) -> Iterator[Any]:
        self._handler = handler
        with super().read_messages(handler) as params:  # type: ignore[misc]
            yield params

    def custom_messages(self) -> list[Any]:
        return list(self._handler.get_custom_messages()) if self._handler else []


class _TempFileMessageReader(_RemembersMessages, dg.PipesTempFileMessageReader):
    pass


def _dbfs_message_reader(workspace: WorkspaceClient, interval: float) -> _RemembersMessages:
    # Defined here: dagster-databricks is the optional `databricks` extra.
    from dagster_databricks.pipes import PipesDbfsMessageReader

    class _DbfsMessageReader(_RemembersMessages, PipesDbfsMessageReader):
        pass

    return _DbfsMessageReader(client=workspace, interval=interval)
