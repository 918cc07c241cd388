"""Dagster resources: the PI Web API client (one per PI server) and the Delta lakehouse (one per project).

PI secrets (password, bearer token, OIDC client secret) are ``dg.EnvVar`` references (:func:`pi_resource`),
so the Dagster UI shows the variable's name, never its value; object-store keys come from delta-rs's own
environment variables, or a storage config built in code with ``dg.EnvVar``. Neither resource's repr shows a
secret.
"""

from __future__ import annotations

import dagster as dg
from dagster_deltalake import AzureConfig, GcsConfig, LocalConfig, S3Config
from pydantic import Field, PrivateAttr, field_validator

from osipi_dagster.lake import Lakehouse, LakeTable
from osipi_dagster.pi import (
    Anonymous,
    BasicAuth,
    BearerAuth,
    KerberosAuth,
    OIDCClientCredentials,
    PIAuth,
    PIWebAPIClient,
)
from osipi_dagster.pi.options import DEFAULT_CLIENT, DEFAULT_READ, ReadMode, ReadOptions
from osipi_dagster.settings import AuthMode, PIServerSettings, check_base_url

SECRET_FIELDS = frozenset({"password", "token", "client_secret"})


class PIWebAPIResource(dg.ConfigurableResource):
    """A PI Web API: where it is, how to authenticate, and how hard to read it.

    One client (one pooled HTTP session) is opened per process that executes steps, and closed with it:
    once per run, shared by its steps, since they run in its run worker (defs/executor.py). TLS
    certificates are verified unless `verify_tls` is false; `ca_bundle` names a private CA's bundle.
    """

    base_url: str = Field(description="The PI Web API root, e.g. https://pi.example.com/piwebapi.")
    auth: AuthMode = Field(
        default=AuthMode.ANONYMOUS, description="anonymous, basic, bearer, oidc or kerberos."
    )
    username: str | None = Field(default=None, description="Basic auth user (DOMAIN\\user).")
    password: str | None = Field(default=None, description="Basic auth password: use an EnvVar.")
    token: str | None = Field(default=None, description="Static bearer token: use an EnvVar.")
    client_id: str | None = Field(default=None, description="OIDC client-credentials client id.")
    client_secret: str | None = Field(default=None, description="OIDC client secret: use an EnvVar.")
    verify_tls: bool = Field(default=True, description="Verify the server's TLS certificate.")
    ca_bundle: str | None = Field(default=None, description="A CA bundle file to verify TLS with.")
    timeout_s: float = Field(default=DEFAULT_CLIENT.timeout, gt=0, description="Timeout of GET requests.")
    post_timeout_s: float = Field(
        default=DEFAULT_CLIENT.post_timeout, gt=0, description="Timeout of POST (batch) requests."
    )
    max_retries: int = Field(
        default=DEFAULT_CLIENT.max_retries,
        ge=0,
        description="Retries of transient failures (5xx, 429, drops).",
    )
    backoff_base_s: float = Field(
        default=DEFAULT_CLIENT.backoff_base_s,
        ge=0,
        description="The retries' backoff factor: waits double per retry, jittered.",
    )
    backoff_max_s: float = Field(
        default=DEFAULT_CLIENT.backoff_max_s, ge=0, description="Longest retry delay."
    )
    max_count_limit: int = Field(
        default=DEFAULT_CLIENT.max_count_limit, ge=1, description="The server's MaxReturnedItemsPerCall."
    )
    pool_size: int = Field(default=DEFAULT_CLIENT.pool_size, ge=1, description="HTTP connections kept open.")
    max_in_flight: int = Field(
        default=DEFAULT_CLIENT.max_in_flight,
        ge=1,
        description="Requests to the server at once from one step's process, every read of it together "
        "(times the pi_webapi pool limit: the bound across runs).",
    )
    max_requests_per_second: float = Field(
        default=DEFAULT_CLIENT.max_requests_per_second,
        ge=0,
        description="Requests sent to the server per second from one step's process; 0: no limit.",
    )
    compress: bool = Field(
        default=DEFAULT_CLIENT.compress, description="Ask for gzip; turn off on loopback or a fast LAN."
    )
    read_mode: ReadMode = Field(default=DEFAULT_READ.mode, description="How recorded values are read.")
    values_per_request: int = Field(
        default=DEFAULT_READ.values_per_request, ge=1, description="Values asked per HTTP request."
    )
    streams_per_request: int = Field(
        default=DEFAULT_READ.streams_per_request, ge=1, description="Streams per streamset or batch request."
    )
    concurrency: int = Field(
        default=DEFAULT_READ.concurrency, ge=1, description="Requests in flight at once per read."
    )
    data_server: str | None = Field(default=None, description="The Data Archive's name; default: the first.")
    stream_updates: bool = Field(
        default=True,
        description="The server offers stream updates (PI Web API 2019 and later): pi_timeseries_sensor "
        "follows it by them; when false, the open-day and close-day schedules do.",
    )

    _client: PIWebAPIClient | None = PrivateAttr(default=None)

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, value: str) -> str:
        # An EnvVar is checked once Dagster resolves it, when the resource is built for a run.
        return value if isinstance(value, dg.EnvVar) else check_base_url(value)

    def __repr_args__(self):
        # A resolved EnvVar is a plain string here: never let a repr (logs, tracebacks) show a secret.
        for name, value in super().__repr_args__():
            yield name, ("***" if name in SECRET_FIELDS and value else value)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._client = PIWebAPIClient(
            self.base_url,
            auth=self._auth(),
            verify=self.ca_bundle or self.verify_tls,
            timeout=self.timeout_s,
            post_timeout=self.post_timeout_s,
            max_retries=self.max_retries,
            backoff_base_s=self.backoff_base_s,
            backoff_max_s=self.backoff_max_s,
            pool_size=self.pool_size,
            max_count_limit=self.max_count_limit,
            compress=self.compress,
            max_in_flight=self.max_in_flight,
            max_requests_per_second=self.max_requests_per_second,
        )

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    @property
    def client(self) -> PIWebAPIClient:
        """The step's client (opened by Dagster before the step runs)."""
        if self._client is None:
            raise dg.DagsterInvariantViolationError(
                "PIWebAPIResource.client is only available inside a step: Dagster opens it for the step."
            )
        return self._client

    def read_options(self) -> ReadOptions:
        """How this server's recorded values are read."""
        return ReadOptions(
            mode=self.read_mode,
            values_per_request=self.values_per_request,
            streams_per_request=self.streams_per_request,
            concurrency=self.concurrency,
        )

    def _auth(self) -> PIAuth:
        required = {
            "basic": ("username", "password"),
            "bearer": ("token",),
            "oidc": ("client_id", "client_secret"),
        }.get(self.auth, ())
        missing = [name for name in required if not getattr(self, name)]
        if missing:
            raise dg.DagsterInvalidConfigError(
                f"PIWebAPIResource auth={self.auth!r} needs {', '.join(missing)}: set them (secrets through "
                "dg.EnvVar, see docs/CONFIGURATION.md).",
                [],
                None,
            )
        if self.auth == "basic":
            return BasicAuth(self.username or "", self.password or "")
        if self.auth == "bearer":
            return BearerAuth(self.token or "")
        if self.auth == "oidc":
            return OIDCClientCredentials(self.client_id or "", self.client_secret or "")
        if self.auth == "kerberos":
            return KerberosAuth()
        return Anonymous()


class DeltaLakehouseResource(dg.ConfigurableResource):
    """The Delta Lake table root: a local folder (the embedded default) or an object store.

    Tables are addressed as `<schema>.<table>`: `bronze.pi_timeseries` lives under
    `<root>/bronze/pi_timeseries`. Object stores take dagster-deltalake's storage config classes, or
    delta-rs's own environment variables (`AWS_*`, `AZURE_*`, `GOOGLE_*`). On S3 every commit is a
    conditional write; a config that would make concurrent commits unsafe (`S3Config(allow_unsafe_rename=
    True)`) fails the step before anything is read (`osipi_dagster.lake.tables.commit_safe_options`).
    """

    root: str = Field(default="data/lakehouse", description="A folder, or s3://, abfss://, gs:// URI.")
    storage: AzureConfig | S3Config | LocalConfig | GcsConfig = Field(
        default_factory=LocalConfig, discriminator="provider", description="Object-store settings."
    )

    def __repr_args__(self):
        # The storage config holds object-store keys (resolved EnvVars here): show only which provider.
        for name, value in super().__repr_args__():
            yield name, (f"<{value.provider} storage config>" if name == "storage" else value)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # An unwritable folder fails here, naming it, rather than later as a missing upstream table.
        self.lakehouse().require_writable()

    def lakehouse(self, table_prefix: str = "") -> Lakehouse:
        """The tables of one PI server (its ``table_prefix``; none for the default server)."""
        return Lakehouse(self.root, storage_options=self.storage.str_dict(), table_prefix=table_prefix)

    def table(self, name: str) -> LakeTable:
        """The default server's table ``<schema>.<table>`` (it need not exist yet)."""
        return self.lakehouse().table(name)


def pi_resource(server: PIServerSettings) -> PIWebAPIResource:
    """The ``pi`` resource of ``server``; its secrets are ``dg.EnvVar`` references, resolved at run time."""
    secret = dg.EnvVar
    return PIWebAPIResource(
        base_url=server.base_url,
        auth=server.auth,
        username=server.username,
        password=server.password_env_var and secret(server.password_env_var),
        token=server.token_env_var and secret(server.token_env_var),
        client_id=server.client_id,
        client_secret=server.client_secret_env_var and secret(server.client_secret_env_var),
        verify_tls=server.verify_tls,
        ca_bundle=server.ca_bundle,
        read_mode=server.read_mode,
        compress=server.compress,
        max_in_flight=server.max_in_flight,
        max_requests_per_second=server.max_requests_per_second,
        data_server=server.data_server,
        stream_updates=server.stream_updates,
    )
