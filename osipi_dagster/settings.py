"""The connector's settings: one validated model per PI server and one for the lakehouse.

A setting has one definition here (type, default, bounds, description). The values come from a component's
YAML (``defs/<site>/defs.yaml``, see ``osipi_dagster.defs.pi_server``), from Python (tests, the demo), or,
for the embedded default server and the lakehouse, from ``OSIPI_*`` environment variables: this module is
the only place that reads the environment (docs/CONFIGURATION.md lists every variable). Nothing is read at
import time; the code location reads the environment once, while Dagster loads its definitions.

Errors name what is wrong and, for environment settings, the variable. Secrets are never held here: a
server's password, token or client secret is named by the environment variable that holds it, and Dagster
resolves that ``dg.EnvVar`` at run time, so neither the UI nor a log ever shows the value.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import date
from enum import StrEnum
from typing import Annotated, Any, TypeVar
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from osipi_dagster.lake.errors import UnsafeStorageOptionsError
from osipi_dagster.lake.tables import commit_safe_options
from osipi_dagster.pi.options import ReadMode

DEFAULT_PI_BASE_URL = "http://127.0.0.1:8010/piwebapi"  # the embedded mock (`make mock`)
DEFAULT_SERVER = "default"  # the server whose assets and tables carry no prefix (the embedded default)
MAX_TAG_SHARDS = 100  # two-digit shard keys (osipi_dagster.ingest.shards)

M = TypeVar("M", bound=BaseModel)


class AuthMode(StrEnum):
    """How the connector authenticates to PI Web API."""

    ANONYMOUS = "anonymous"
    BASIC = "basic"
    BEARER = "bearer"
    OIDC = "oidc"  # OAuth client credentials against the identity provider PI Web API announces
    KERBEROS = "kerberos"  # the optional extra `kerberos`


class CheckSeverity(StrEnum):
    """What a failed asset check means: ``error`` blocks the partition's downstream assets (their automation
    waits for the check to pass), ``warn`` only shows it."""

    WARN = "warn"
    ERROR = "error"


class AFSeverity(StrEnum):
    """AF's event frame severities, lowest first."""

    NONE = "None"
    INFORMATION = "Information"
    WARNING = "Warning"
    MINOR = "Minor"
    MAJOR = "Major"
    CRITICAL = "Critical"


class ComputeTarget(StrEnum):
    """Where ``pi_timeseries`` and ``pi_event_frames`` run the ingestion core."""

    IN_PROCESS = "in_process"  # the Dagster step itself (the default)
    SUBPROCESS = "subprocess"  # a separate Python process on the same machine, through Dagster Pipes
    DATABRICKS = "databricks"  # a one-time job run on a new Databricks cluster, through Dagster Pipes


class SettingsError(ValueError):
    """Settings that cannot work; the message names each setting (or variable) and what to do."""


def _ascii_whole_number(value: Any) -> Any:
    # pydantic accepts "1_000", "+3", "12.0" and non-ASCII digits as integers: a typo must not pass.
    if isinstance(value, str):
        text = value.strip()
        if not re.fullmatch(r"[0-9]+", text):
            raise ValueError("must be a whole number written with the digits 0-9")
        return int(text)
    return value


def _flag(value: Any) -> Any:
    if isinstance(value, str) and value.strip().lower() not in _FLAG_WORDS:
        raise ValueError("must be true or false (also accepted: 1/0, yes/no, on/off)")
    return value.strip() if isinstance(value, str) else value


_FLAG_WORDS = frozenset({"true", "false", "1", "0", "yes", "no", "on", "off", "t", "f", "y", "n"})


def _comma_list(value: Any) -> Any:
    if isinstance(value, str):
        return tuple(item.strip() for item in value.split(",") if item.strip())
    return value


def _lower_case(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


WholeNumber = Annotated[int, BeforeValidator(_ascii_whole_number)]
Severity = Annotated[CheckSeverity, BeforeValidator(_lower_case)]
Share = Annotated[float, Field(ge=0.0, le=1.0)]
Flag = Annotated[bool, BeforeValidator(_flag)]


def _af_severity(value: Any) -> Any:
    # AF spells severities capitalised; accept any case.
    if isinstance(value, str):
        return next((s for s in AFSeverity if s.value.casefold() == value.strip().casefold()), value)
    return value


AlarmSeverity = Annotated[AFSeverity, BeforeValidator(_af_severity)]
Patterns = Annotated[tuple[str, ...], BeforeValidator(_comma_list)]

# What Dagster accepts as an asset owner (its own check, dagster._core.utils.is_valid_email, is private).
_OWNER = re.compile(r"team:\S+|[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,7}")


def _owners(value: Any) -> Any:
    items = _comma_list(value)
    if isinstance(items, list | tuple):
        wrong = [item for item in items if not isinstance(item, str) or not _OWNER.fullmatch(item.strip())]
        if wrong:
            raise ValueError(
                f"every owner must be an e-mail address or a team name prefixed team: (e.g. "
                f"plant-data@example.com, team:process-engineering); not {', '.join(map(repr, wrong))}"
            )
        return tuple(item.strip() for item in items)
    return items


Owners = Annotated[tuple[str, ...], BeforeValidator(_owners)]

# ENV_VAR=scope/key: the variable the remote side reads, and the Databricks secret that fills it.
_SECRET_REFERENCE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=([A-Za-z0-9_.-]{1,128})/([A-Za-z0-9_.-]{1,128})$")


def _secret_references(value: Any) -> Any:
    items = _comma_list(value)
    if isinstance(items, list | tuple):
        for item in items:
            if not isinstance(item, str) or not _SECRET_REFERENCE.match(item.strip()):
                # Never echo the item: a value pasted here by mistake may be the secret itself.
                raise ValueError(
                    "every item must be ENV_VAR=scope/key (a Databricks secret scope and key, e.g. "
                    "OSIPI_PI_PASSWORD=osipi/pi-password), never a secret's value"
                )
        return tuple(item.strip() for item in items)
    return items


SecretReferences = Annotated[tuple[str, ...], BeforeValidator(_secret_references)]


class PIServerSettings(BaseModel):
    """One PI Web API (a PI Data Archive and its AF server) and the tags read from it."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    name: str = Field(
        default=DEFAULT_SERVER,
        pattern=r"^[a-z][a-z0-9_]{0,30}$",
        description="The server's name in the project: lower-case letters, digits and underscores. Every "
        "server but 'default' prefixes its asset keys, tables, schedules and resource key with it.",
    )
    base_url: str = Field(
        default=DEFAULT_PI_BASE_URL, description="The PI Web API root, https://host/piwebapi."
    )
    auth: AuthMode = Field(
        default=AuthMode.ANONYMOUS, description="anonymous, basic, bearer, oidc or kerberos."
    )
    username: str | None = Field(default=None, description="Basic auth user (DOMAIN\\user).")
    password_env_var: str | None = Field(
        default=None, description="The environment variable holding the Basic password."
    )
    token_env_var: str | None = Field(
        default=None, description="The environment variable holding a static bearer token."
    )
    client_id: str | None = Field(default=None, description="OIDC client-credentials client id.")
    client_secret_env_var: str | None = Field(
        default=None, description="The environment variable holding the OIDC client secret."
    )
    verify_tls: Flag = Field(default=True, description="Verify the server's TLS certificate.")
    ca_bundle: str | None = Field(default=None, description="A CA bundle file to verify TLS with.")
    read_mode: ReadMode = Field(default=ReadMode.STREAMSETS, description="How recorded values are read.")
    compress: Flag = Field(default=True, description="Ask for gzip; turn off on loopback or a fast LAN.")
    max_in_flight: WholeNumber = Field(
        default=4, ge=1, description="Requests to the server at once from one step's process."
    )
    max_requests_per_second: float = Field(
        default=0.0, ge=0.0, description="Requests sent to the server per second from one process (0: none)."
    )
    data_server: str | None = Field(default=None, description="The Data Archive's name; default: the first.")
    start_date: date = Field(
        default=date(2024, 1, 1), description="The first daily partition (UTC) of the time series."
    )
    tag_shards: WholeNumber = Field(
        default=16, ge=1, le=MAX_TAG_SHARDS, description="Tag shards: a point's shard is a hash of its id."
    )
    asset_owners: Owners = Field(
        default=(),
        description="The owners of every asset of the server, shown in the UI and used to filter the "
        "catalog: e-mail addresses or team names prefixed `team:`; none by default.",
    )
    overlap_minutes: WholeNumber = Field(
        default=60, ge=0, description="The open day is re-read from each point's watermark minus this."
    )
    close_day_hour: WholeNumber = Field(
        default=3, ge=0, le=23, description="The UTC hour at which yesterday is read whole again."
    )
    point_include: Patterns = Field(default=("*",), description="Point-name patterns to read (PI wildcards).")
    point_exclude: Patterns = Field(default=(), description="Point-name patterns to skip.")
    af_templates: Patterns = Field(
        default=(), description="Only points referenced from elements of these AF templates (or derived)."
    )
    af_attribute_names: Patterns = Field(
        default=(), description="Only points referenced by AF attributes with these names."
    )
    stream_updates: Flag = Field(
        default=True,
        description="Follow PI by its stream updates (pi_timeseries_sensor); false for a PI Web API without "
        "them (before 2019): the open-day and close-day schedules keep the lake current instead.",
    )
    sensor_interval_seconds: WholeNumber = Field(
        default=60, ge=5, description="How often pi_timeseries_sensor reads PI's stream updates."
    )
    sensor_max_runs_per_tick: WholeNumber = Field(
        default=20, ge=1, description="The most runs one sensor tick requests (the rest wait for the next)."
    )
    catalog_sensor_minutes: WholeNumber = Field(
        default=15, ge=1, description="How often pi_catalog_sensor refreshes the tag catalog."
    )
    event_frames_sensor_minutes: WholeNumber = Field(
        default=5, ge=1, description="How often pi_event_frames_sensor compares recent event frames with PI."
    )
    event_frames_lookback_days: WholeNumber = Field(
        default=7, ge=1, description="How far back pi_event_frames_sensor looks for frames that changed."
    )
    alarm_webhook_url_env_var: str | None = Field(
        default=None,
        description="The environment variable holding the alert webhook URL (Slack-compatible; a secret). "
        "Unset: no pi_alarm_alerts_sensor.",
    )
    alarm_alert_min_severity: AlarmSeverity = Field(
        default=AFSeverity.MAJOR,
        description="The lowest AF severity pi_alarm_alerts_sensor posts: None, Information, Warning, Minor, "
        "Major or Critical.",
    )
    alarm_alert_sensor_seconds: WholeNumber = Field(
        default=60, ge=10, description="How often pi_alarm_alerts_sensor looks for new alarms."
    )
    alarm_alert_lookback_hours: WholeNumber = Field(
        default=24,
        ge=1,
        description="Alarms reaching the lake later than this after they started are not posted.",
    )
    alarm_operators: WholeNumber = Field(
        default=1,
        ge=1,
        description="Operators sharing this server's alarms (gold.pi_alarm_summary's alarms per operator).",
    )
    new_point_lookback_days: WholeNumber = Field(
        default=30, ge=0, description="How many closed days of history a point new in the catalog is given."
    )
    clock_skew_tolerance_minutes: WholeNumber = Field(
        default=5, ge=0, description="Values stamped this far after the PI server's now are clock skew."
    )
    reconciliation_days: WholeNumber = Field(
        default=7, ge=1, description="How many closed days the nightly reconciliation compares with PI."
    )
    catalog_max_removed_share: float = Field(
        default=0.10,
        ge=0.0,
        le=1.0,
        description="A catalog refresh that would mark more than this share of the active points deleted "
        "(or all of them) fails unless the removal is confirmed in the run config; so does an AF refresh "
        "that would remove more than this share of the elements or attributes, and a notification-rules "
        "refresh that would remove more than this share of the rules.",
    )
    vacuum_retention_hours: WholeNumber = Field(
        default=168,
        ge=1,
        description="pi_lake_maintenance_job deletes the files each of the server's tables stopped using "
        "more than this many hours ago (Delta VACUUM): time travel reaches back this far, and no reader or "
        "writer may run longer.",
    )

    # Asset checks of pi_timeseries (docs/OPERATIONS.md, "Checks"). ERROR for what means the lake itself is
    # wrong (duplicated rows, a changed table layout): downstream must not read it. WARN for what the lake
    # faithfully holds of the source (bad values, quiet interfaces, odd volumes, a source clock ahead): a
    # fact worth seeing, which re-reading would not change.
    check_null_or_bad_max_share: Share = Field(
        default=0.05, description="Check null_or_bad_values: the most values that may be null or bad."
    )
    check_null_or_bad_severity: Severity = Field(default=CheckSeverity.WARN, description="warn or error.")
    check_freshness_minutes: WholeNumber = Field(
        default=60,
        ge=1,
        description="Check freshness: today, a point is late when its newest value is older than this or "
        "than three of its typical intervals, whichever is longer.",
    )
    check_freshness_severity: Severity = Field(default=CheckSeverity.WARN, description="warn or error.")
    check_volume_max_z: float = Field(
        default=3.0,
        gt=0,
        description="Check volume: the largest |z-score| of a partition's row count against the same "
        "shard's 14 previous days.",
    )
    check_volume_severity: Severity = Field(default=CheckSeverity.WARN, description="warn or error.")
    check_good_quality_min_share: Share = Field(
        default=0.90,
        description="Check good_quality: the least share of values PI flags Good, not Questionable.",
    )
    check_good_quality_severity: Severity = Field(default=CheckSeverity.WARN, description="warn or error.")
    check_duplicates_max_share: Share = Field(
        default=0.01, description="Check duplicates: the most rows that may repeat an identical row."
    )
    check_duplicates_severity: Severity = Field(default=CheckSeverity.ERROR, description="warn or error.")
    check_schema_severity: Severity = Field(default=CheckSeverity.ERROR, description="warn or error.")
    check_clock_skew_severity: Severity = Field(default=CheckSeverity.WARN, description="warn or error.")
    compute: ComputeTarget = Field(
        default=ComputeTarget.IN_PROCESS,
        description="Where pi_timeseries and pi_event_frames run: in_process (the Dagster step), subprocess "
        "(a separate process on this machine) or databricks (a job run on a new Databricks cluster), the "
        "last two through Dagster Pipes.",
    )
    databricks_host: str | None = Field(
        default=None, description="The Databricks workspace URL, https://<workspace>.cloud.databricks.com."
    )
    databricks_token_env_var: str | None = Field(
        default=None,
        description="The environment variable holding the Databricks token Dagster submits job runs with "
        "(never sent to the cluster).",
    )
    databricks_catalog: str = Field(
        default="main",
        pattern=r"^[a-z][a-z0-9_]{0,254}$",
        description="The Unity Catalog catalog the tables are registered in, as <catalog>.<schema>.<table>.",
    )
    databricks_spark_version: str = Field(
        default="15.4.x-scala2.12", min_length=1, description="The Databricks Runtime of the job cluster."
    )
    databricks_node_type: str | None = Field(
        default=None, description="The job cluster's node type (e.g. Standard_D4ds_v5, m6i.xlarge)."
    )
    databricks_num_workers: WholeNumber = Field(
        default=0, ge=0, description="Workers of the job cluster; 0: a single node, where the ingestion runs."
    )
    databricks_library: str | None = Field(
        default=None,
        description="The connector installed on the cluster: a wheel (dbfs:/..., /Workspace/..., "
        "/Volumes/... ending in .whl) or a PyPI requirement (osipi-dagster==0.1.0).",
    )
    databricks_secrets: SecretReferences = Field(
        default=(),
        description="The environment of the job cluster that holds secrets, as ENV_VAR=scope/key Databricks "
        "secret references: every secret variable the PI server and the lake need there.",
    )
    databricks_poll_seconds: float = Field(
        default=5.0, gt=0, le=300, description="How often Dagster polls the Databricks job run."
    )

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, value: str) -> str:
        return check_base_url(value)

    @field_validator("databricks_host")
    @classmethod
    def _check_databricks_host(cls, value: str | None) -> str | None:
        return None if value is None else check_base_url(value)

    @model_validator(mode="after")
    def _check_databricks_target(self) -> PIServerSettings:
        if self.compute != ComputeTarget.DATABRICKS:
            return self
        needed = {
            "databricks_host": "OSIPI_DATABRICKS_HOST",
            "databricks_token_env_var": "OSIPI_DATABRICKS_TOKEN",
            "databricks_node_type": "OSIPI_DATABRICKS_NODE_TYPE",
            "databricks_library": "OSIPI_DATABRICKS_LIBRARY",
        }
        missing = [f"{name} ({variable})" for name, variable in needed.items() if not getattr(self, name)]
        if missing:
            raise ValueError(f"compute=databricks needs {', '.join(missing)}: set them (docs/DEPLOYMENT.md)")
        return self

    @property
    def databricks_secret_references(self) -> dict[str, str]:
        """Environment variable -> the Databricks secret reference ``{{secrets/scope/key}}`` that fills it."""
        references = {}
        for item in self.databricks_secrets:
            match = _SECRET_REFERENCE.match(item)
            assert match is not None, item  # checked when the settings were built
            variable, scope, key = match.groups()
            references[variable] = f"{{{{secrets/{scope}/{key}}}}}"
        return references

    @property
    def secret_env_vars(self) -> dict[str, str]:
        """The PI secrets this server reads: setting -> the environment variable that holds it."""
        names = {
            "password": self.password_env_var,
            "token": self.token_env_var,
            "client_secret": self.client_secret_env_var,
        }
        return {setting: name for setting, name in names.items() if name}

    @property
    def is_default(self) -> bool:
        return self.name == DEFAULT_SERVER

    @property
    def key_prefix(self) -> list[str]:
        """The asset key prefix: none for the default server, ``[name]`` for the others."""
        return [] if self.is_default else [self.name]

    @property
    def table_prefix(self) -> str:
        """Put before the server's table names in the lakehouse (``bronze.site_b__pi_timeseries``)."""
        return "" if self.is_default else f"{self.name}__"

    def qualified(self, name: str) -> str:
        """A Dagster name (resource key, schedule, group) made unique to this server."""
        return name if self.is_default else f"{self.name}__{name}"


def check_base_url(value: str) -> str:
    """``value`` if it is an http(s) URL with a host and no credentials; otherwise a clear error that never
    repeats a password."""
    text = value.strip()
    try:
        parts = urlsplit(text)
        host = parts.hostname
    except ValueError:
        parts, host = None, None
    if parts is None or parts.scheme.lower() not in ("http", "https") or not host:
        raise ValueError(
            "must be an http:// or https:// URL with a host, e.g. https://pi.example.com/piwebapi"
        )
    if parts.username is not None or parts.password is not None:
        raise ValueError(
            "must not embed credentials (user:password@): they would be stored in clear in every run's "
            "configuration. Remove them and use auth=basic with a username and the password in an "
            "environment variable (OSIPI_PI_AUTH, OSIPI_PI_USERNAME, OSIPI_PI_PASSWORD)"
        )
    return text.rstrip("/")


class LakeSettings(BaseModel):
    """Where the Delta tables live."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    root: str = Field(
        default="data/lakehouse", description="A folder, or an s3://, abfss:// or gs:// URI.", min_length=1
    )


class PipesTransport(StrEnum):
    """How the Pipes entry point finds its context and sends its messages."""

    LOCAL = "local"  # Dagster's defaults: a temporary file for each (the subprocess target)
    DBFS = "dbfs"  # files on DBFS, through the cluster's DBFS mount (the databricks target)


class RemoteSettings(BaseModel):
    """The environment of the Pipes entry point (``python -m osipi_dagster.pipes``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    transport: PipesTransport = Field(
        default=PipesTransport.LOCAL, description="local (a subprocess) or dbfs (a Databricks job run)."
    )
    dbfs_mount: str = Field(
        default="/dbfs", min_length=1, description="Where the cluster mounts DBFS (Databricks: /dbfs)."
    )


class StreamSettings(BaseModel):
    """``osipi-stream``: PI channels into ``bronze.pi_timeseries_live`` (docs/STREAMING.md)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    commit_seconds: float = Field(default=1.0, gt=0, description="Commit the buffer at least this often.")
    commit_values: WholeNumber = Field(
        default=100_000, ge=1, description="Commit sooner once the buffer holds this many values."
    )
    lookback_seconds: float = Field(
        default=600.0,
        ge=0,
        description="A gap is read from each point's last committed value minus this (late values).",
    )
    app_id: str = Field(
        default="osipi-stream",
        pattern=r"^[A-Za-z0-9_.:-]{1,100}$",
        description="The stream's Delta transaction id: one per stream writing the table.",
    )
    max_url_length: WholeNumber = Field(
        default=4096, ge=256, description="The longest channel URL; points are split over channels."
    )
    heartbeat_rate: WholeNumber = Field(
        default=5, ge=0, description="PI's heartbeatRate: polls without data before an empty message."
    )
    idle_timeout_seconds: float = Field(
        default=30.0, gt=0, description="A channel silent this long (no heartbeat either) is reopened."
    )
    stale_seconds: WholeNumber = Field(
        default=120, ge=1, description="pi_timeseries_live_sensor alerts when no commit is this recent."
    )
    compact_every: WholeNumber = Field(
        default=200,
        ge=0,
        description="Compact the small files of the live table after this many micro-batches (0: never).",
    )
    max_buffered_values: WholeNumber = Field(
        default=400_000,
        ge=1,
        description="Values held uncommitted at most: reading from the channels pauses at this many.",
    )


class DemoSettings(BaseModel):
    """`make demo`'s size (the tests run it smaller)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    points: WholeNumber = Field(default=2000, ge=1, description="Points of each demo mock server.")


# Environment variable -> setting, for each model read from the environment. The secrets are not values:
# a set variable becomes the name the server's `*_env_var` setting points at.
PI_SERVER_VARIABLES: dict[str, str] = {
    "OSIPI_PI_BASE_URL": "base_url",
    "OSIPI_PI_AUTH": "auth",
    "OSIPI_PI_USERNAME": "username",
    "OSIPI_PI_CLIENT_ID": "client_id",
    "OSIPI_PI_VERIFY_TLS": "verify_tls",
    "OSIPI_PI_CA_BUNDLE": "ca_bundle",
    "OSIPI_PI_READ_MODE": "read_mode",
    "OSIPI_PI_COMPRESS": "compress",
    "OSIPI_PI_MAX_IN_FLIGHT": "max_in_flight",
    "OSIPI_PI_MAX_REQUESTS_PER_SECOND": "max_requests_per_second",
    "OSIPI_PI_DATA_SERVER": "data_server",
    "OSIPI_START_DATE": "start_date",
    "OSIPI_TAG_SHARDS": "tag_shards",
    "OSIPI_ASSET_OWNERS": "asset_owners",
    "OSIPI_OVERLAP_MINUTES": "overlap_minutes",
    "OSIPI_CLOSE_DAY_HOUR": "close_day_hour",
    "OSIPI_POINT_INCLUDE": "point_include",
    "OSIPI_POINT_EXCLUDE": "point_exclude",
    "OSIPI_AF_TEMPLATES": "af_templates",
    "OSIPI_AF_ATTRIBUTE_NAMES": "af_attribute_names",
    "OSIPI_CATALOG_MAX_REMOVED_SHARE": "catalog_max_removed_share",
    "OSIPI_VACUUM_RETENTION_HOURS": "vacuum_retention_hours",
    "OSIPI_PI_STREAM_UPDATES": "stream_updates",
    "OSIPI_SENSOR_INTERVAL_SECONDS": "sensor_interval_seconds",
    "OSIPI_SENSOR_MAX_RUNS_PER_TICK": "sensor_max_runs_per_tick",
    "OSIPI_CATALOG_SENSOR_MINUTES": "catalog_sensor_minutes",
    "OSIPI_NEW_POINT_LOOKBACK_DAYS": "new_point_lookback_days",
    "OSIPI_EVENT_FRAMES_SENSOR_MINUTES": "event_frames_sensor_minutes",
    "OSIPI_EVENT_FRAMES_LOOKBACK_DAYS": "event_frames_lookback_days",
    "OSIPI_ALARM_ALERT_MIN_SEVERITY": "alarm_alert_min_severity",
    "OSIPI_ALARM_ALERT_SENSOR_SECONDS": "alarm_alert_sensor_seconds",
    "OSIPI_ALARM_ALERT_LOOKBACK_HOURS": "alarm_alert_lookback_hours",
    "OSIPI_ALARM_OPERATORS": "alarm_operators",
    "OSIPI_CLOCK_SKEW_TOLERANCE_MINUTES": "clock_skew_tolerance_minutes",
    "OSIPI_RECONCILIATION_DAYS": "reconciliation_days",
    "OSIPI_CHECK_NULL_OR_BAD_MAX_SHARE": "check_null_or_bad_max_share",
    "OSIPI_CHECK_NULL_OR_BAD_SEVERITY": "check_null_or_bad_severity",
    "OSIPI_CHECK_FRESHNESS_MINUTES": "check_freshness_minutes",
    "OSIPI_CHECK_FRESHNESS_SEVERITY": "check_freshness_severity",
    "OSIPI_CHECK_VOLUME_MAX_Z": "check_volume_max_z",
    "OSIPI_CHECK_VOLUME_SEVERITY": "check_volume_severity",
    "OSIPI_CHECK_GOOD_QUALITY_MIN_SHARE": "check_good_quality_min_share",
    "OSIPI_CHECK_GOOD_QUALITY_SEVERITY": "check_good_quality_severity",
    "OSIPI_CHECK_DUPLICATES_MAX_SHARE": "check_duplicates_max_share",
    "OSIPI_CHECK_DUPLICATES_SEVERITY": "check_duplicates_severity",
    "OSIPI_CHECK_SCHEMA_SEVERITY": "check_schema_severity",
    "OSIPI_CHECK_CLOCK_SKEW_SEVERITY": "check_clock_skew_severity",
    "OSIPI_COMPUTE": "compute",
    "OSIPI_DATABRICKS_HOST": "databricks_host",
    "OSIPI_DATABRICKS_CATALOG": "databricks_catalog",
    "OSIPI_DATABRICKS_SPARK_VERSION": "databricks_spark_version",
    "OSIPI_DATABRICKS_NODE_TYPE": "databricks_node_type",
    "OSIPI_DATABRICKS_NUM_WORKERS": "databricks_num_workers",
    "OSIPI_DATABRICKS_LIBRARY": "databricks_library",
    "OSIPI_DATABRICKS_SECRETS": "databricks_secrets",
    "OSIPI_DATABRICKS_POLL_SECONDS": "databricks_poll_seconds",
}
PI_SERVER_SECRETS: dict[str, str] = {
    "OSIPI_PI_PASSWORD": "password_env_var",
    "OSIPI_PI_TOKEN": "token_env_var",
    "OSIPI_PI_CLIENT_SECRET": "client_secret_env_var",
    "OSIPI_DATABRICKS_TOKEN": "databricks_token_env_var",
    "OSIPI_ALARM_WEBHOOK_URL": "alarm_webhook_url_env_var",
}
LAKE_VARIABLES: dict[str, str] = {"OSIPI_LAKE_ROOT": "root"}
# Variables delta-rs reads itself that decide whether concurrent commits to S3 are safe: read here only so an
# unsafe value is refused, naming it, when the code location loads rather than trusted at the first commit.
LAKE_COMMIT_SAFETY_VARIABLES = (
    "AWS_S3_ALLOW_UNSAFE_RENAME",
    "AWS_CONDITIONAL_PUT",
    "AWS_S3_LOCKING_PROVIDER",
)
DEMO_VARIABLES: dict[str, str] = {"OSIPI_DEMO_POINTS": "points"}
STREAM_VARIABLES: dict[str, str] = {
    f"OSIPI_STREAM_{name.upper()}": name for name in StreamSettings.model_fields
}
# Read by the Pipes entry point (python -m osipi_dagster.pipes) on the side that runs the ingestion.
REMOTE_VARIABLES: dict[str, str] = {
    "OSIPI_PIPES_TRANSPORT": "transport",
    "OSIPI_PIPES_DBFS_MOUNT": "dbfs_mount",
}


def pi_server_from_env(environ: Mapping[str, str] | None = None, **overrides: Any) -> PIServerSettings:
    """The embedded default server from ``OSIPI_*`` variables; ``overrides`` (settings given explicitly, e.g.
    by a component's YAML) win over the environment."""
    env = os.environ if environ is None else environ
    values = _values(env, PI_SERVER_VARIABLES)
    values |= {setting: name for name, setting in PI_SERVER_SECRETS.items() if env.get(name)}
    return _build(PIServerSettings, {**values, **overrides}, PI_SERVER_VARIABLES, set(overrides))


def lake_from_env(environ: Mapping[str, str] | None = None) -> LakeSettings:
    """The lakehouse from ``OSIPI_LAKE_ROOT``; an object-store root is refused when the environment holds a
    delta-rs setting that makes concurrent commits unsafe (``LAKE_COMMIT_SAFETY_VARIABLES``)."""
    env = os.environ if environ is None else environ
    settings = _build(LakeSettings, _values(env, LAKE_VARIABLES), LAKE_VARIABLES, set())
    try:
        commit_safe_options(
            settings.root, {name: env[name] for name in LAKE_COMMIT_SAFETY_VARIABLES if name in env}
        )
    except UnsafeStorageOptionsError as error:
        raise SettingsError(f"Invalid LakeSettings (see docs/CONFIGURATION.md): {error}") from None
    return settings


def demo_from_env(environ: Mapping[str, str] | None = None) -> DemoSettings:
    """`make demo`'s size from ``OSIPI_DEMO_POINTS``."""
    env = os.environ if environ is None else environ
    return _build(DemoSettings, _values(env, DEMO_VARIABLES), DEMO_VARIABLES, set())


def stream_from_env(environ: Mapping[str, str] | None = None) -> StreamSettings:
    """``osipi-stream``'s settings from ``OSIPI_STREAM_*``."""
    env = os.environ if environ is None else environ
    return _build(StreamSettings, _values(env, STREAM_VARIABLES), STREAM_VARIABLES, set())


def remote_from_env(environ: Mapping[str, str] | None = None) -> RemoteSettings:
    """The Pipes entry point's settings from ``OSIPI_PIPES_*``."""
    env = os.environ if environ is None else environ
    return _build(RemoteSettings, _values(env, REMOTE_VARIABLES), REMOTE_VARIABLES, set())


def secret_from_env(variable: str, environ: Mapping[str, str] | None = None) -> str:
    """The value of the secret held by ``variable`` (on the side that runs the ingestion remotely, where
    Dagster does not resolve ``dg.EnvVar``); a clear error, never a value, when it is unset."""
    env = os.environ if environ is None else environ
    value = env.get(variable, "")
    if not value:
        raise SettingsError(
            f"The environment variable {variable} is not set where the ingestion runs: the PI server's "
            "settings name it for a secret. On Databricks, map it to a secret in OSIPI_DATABRICKS_SECRETS "
            "(docs/DEPLOYMENT.md)."
        )
    return value


def dagster_home() -> str | None:
    """``DAGSTER_HOME``, where the Dagster instance lives (``make`` sets it to ./.dagster_home)."""
    return os.environ.get("DAGSTER_HOME") or None


def environment_with(overrides: Mapping[str, str]) -> dict[str, str]:
    """This process's environment with ``overrides``: for a child process (``make ui``'s dagster dev)."""
    return {**os.environ, **overrides}


def _values(env: Mapping[str, str], variables: Mapping[str, str]) -> dict[str, str]:
    # An empty variable counts as unset (a common way to "unset" in .env files and CI settings).
    return {setting: env[name] for name, setting in variables.items() if env.get(name, "").strip()}


# Settings whose wrong value is not repeated in an error: it may hold a credential pasted by mistake.
_UNQUOTED = frozenset({"base_url", "databricks_host", "databricks_secrets"})


def _build(model: type[M], values: dict[str, Any], variables: Mapping[str, str], explicit: set[str]) -> M:
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        by_setting = {setting: name for name, setting in variables.items()}
        lines = []
        for error in exc.errors():
            setting = str(error["loc"][0]) if error["loc"] else "?"
            source = setting if setting in explicit else by_setting.get(setting, setting)
            shown = values.get(setting)
            quoted = "" if shown is None or setting in _UNQUOTED else f"={shown!r}"
            message = error["msg"].removeprefix("Value error, ")
            # A check of several settings together (no location) names them in its message.
            lines.append(f"{source}{quoted}: {message}" if error["loc"] else message)
        raise SettingsError(
            f"Invalid {model.__name__} (see docs/CONFIGURATION.md): " + "; ".join(lines)
        ) from None
