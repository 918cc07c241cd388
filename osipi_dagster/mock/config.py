"""Every option of the mock, from the command line or ``MOCK_PI_*`` environment variables.

``MockConfig`` and ``FaultConfig`` are pydantic dataclasses: every value is checked (and text converted)
whenever one is built, by a test, by ``dataclasses.replace`` or by :func:`parse_args`, and a bad value is a
``pydantic.ValidationError`` naming the field. :func:`parse_args` feeds them the command line over the
environment over the defaults; each option has one environment variable (``ENV_VARS``, ``FAULT_ENV_VARS``,
docs/MOCK_SERVER.md), and a bad value exits with status 2 and a message naming the flag or the variable it
came from.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import field, fields
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import Field, TypeAdapter, ValidationError, field_validator
from pydantic.dataclasses import dataclass

# Constrained types; each description is the end of the message that rejects a value: "--tags must be ...".
Rate = Annotated[float, Field(ge=0, le=1, description="must be between 0 and 1")]
NotNegativeFloat = Annotated[float, Field(ge=0, description="must not be negative")]
NotNegativeInt = Annotated[int, Field(ge=0, description="must not be negative")]
Positive = Annotated[float, Field(gt=0, description="must be positive")]
AtLeastOne = Annotated[int, Field(ge=1, description="must be at least 1")]
Port = Annotated[int, Field(ge=0, le=65535, description="must be between 0 and 65535")]
Sampling = Annotated[Literal["mixed", "1s"], Field(description="must be mixed or 1s")]
Auth = Annotated[Literal["none", "basic", "bearer"], Field(description="must be none, basic or bearer")]
ClientErrorStatus = Annotated[int, Field(ge=400, le=499, description="must be a 4xx status")]


@dataclass(frozen=True)
class FaultConfig:
    """Injected faults, all off by default. Rates are probabilities per request (or per sub-request)."""

    seed: int = 0  # the fault schedule is deterministic given this seed and the request order
    latency_ms: NotNegativeFloat = 0.0  # added to every response
    latency_jitter_ms: NotNegativeFloat = 0.0  # plus a uniform 0..jitter
    error_rate: Rate = 0.0  # 500/502/503/504 answers
    throttle_rate: Rate = 0.0  # 429 answers with Retry-After
    retry_after_s: NotNegativeInt = 1
    drop_rate: Rate = 0.0  # the connection is closed without an answer
    timeout_rate: Rate = 0.0  # the answer is held for timeout_s before it is sent
    timeout_s: NotNegativeFloat = 5.0
    truncate_rate: Rate = 0.0  # a 2xx JSON body is cut short
    malformed_rate: Rate = 0.0  # a 2xx JSON body is replaced by an HTML page (not JSON at all)
    batch_fail_rate: Rate = 0.0  # a /batch sub-request answers 500 on its own
    value_error_rate: Rate = 0.0  # share of /streams and /streamsets values given per-value Errors
    web_exception_rate: Rate = 0.0  # a 2xx JSON answer carries a top-level WebException
    channel_close_after: NotNegativeInt = 0  # a channel closes (1001 Going Away) after this many messages
    channel_drop_rate: Rate = 0.0  # per channel message: the connection is aborted instead (no close frame)
    channel_stall_rate: Rate = 0.0  # per channel poll: the channel sends nothing for channel_stall_s
    channel_stall_s: NotNegativeFloat = 30.0
    channel_repeat_rate: Rate = (
        0.0  # per channel message: sent again channel_repeat_s later (a repeating server)
    )
    channel_repeat_s: NotNegativeFloat = 1.0

    def any_enabled(self) -> bool:
        """Whether any fault can fire (latency counts as a fault)."""
        return any(getattr(self, f.name) > 0 for f in fields(self) if f.name.endswith(("_rate", "_ms")))


@dataclass(frozen=True)
class MockConfig:
    """The mock PI Web API's configuration (see docs/MOCK_SERVER.md for each option)."""

    host: str = "127.0.0.1"
    port: Port = 8010  # 0 = a free port
    tags: AtLeastOne = 10_000
    seed: int = 1
    now: str | None = None  # ISO 8601; None = the real clock
    clock_speed: NotNegativeFloat = 0.0  # > 0: the clock runs this many seconds a second, from now (or real)
    archive_days: float = 730.0  # data exist from now - archive_days (at start-up) onwards
    late_share: Rate = 0.05  # share of points that receive some values late
    edit_share: Rate = 0.001  # share of points whose past values get one generated edit or delete per hour
    sampling: Sampling = "mixed"  # mixed: the unit template's 1 s/5 s/60 s/irregular; 1s: all 1 Hz numeric
    af_databases: int = 1
    event_frame_days: float = 30.0  # event frames exist for this many days before now
    server_name: str = "PIMOCK"
    af_server_name: str = "AFMOCK"
    server_time_zone: str = "UTC"  # the zone of zone-less time strings and of t / y
    max_returned_items: AtLeastOne = 150_000  # MaxReturnedItemsPerCall
    auth: Auth = "none"  # bearer also serves OIDC discovery and a token endpoint
    users: str = "piuser:pipassword"  # Basic users, "user:password,user2:password2"
    token: str = "mock-static-token"  # the static bearer token
    client_id: str = "osipi-client"  # OIDC client credentials
    client_secret: str = "osipi-secret"
    token_ttl_s: Positive = 3600.0  # lifetime of issued OIDC tokens, in real (wall-clock) seconds
    csrf: bool = True  # reject POST/PUT/PATCH/DELETE without X-Requested-With
    csrf_status: ClientErrorStatus = 400  # the status of a CSRF rejection (undocumented by AVEVA: 400 or 403)
    rate_limit_max: NotNegativeInt = 0  # RateLimitMaxRequests per IP per rate_limit_duration_s; 0 = off
    rate_limit_duration_s: Positive = 1.0
    updates_cache_minutes: Positive = 15.0  # a stream-updates cache unused this long (mock clock) expires
    channel_poll_ms: Positive = 500.0  # how often a channel looks for values that became visible
    faults: FaultConfig = field(default_factory=FaultConfig)

    @field_validator("now")
    @classmethod
    def _is_a_time(cls, now: str | None) -> str | None:
        if now is not None:
            _parse_now(now)
        return now

    def fixed_now_ns(self) -> int | None:
        """The fixed clock's start in ns since the epoch, or None for the real clock."""
        return None if self.now is None else _parse_now(self.now)

    def basic_users(self) -> dict[str, str]:
        """The Basic users, name -> password."""
        pairs = (item.split(":", 1) for item in self.users.split(",") if ":" in item)
        return {user.strip(): password for user, password in pairs}


def _parse_now(text: str) -> int:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError("must be an ISO 8601 time such as 2025-01-06T12:00:00Z") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000


# Option name -> environment variable. The tag count keeps the name the docs have always used.
ENV_VARS = {f.name: f"MOCK_PI_{f.name.upper()}" for f in fields(MockConfig) if f.name != "faults"}
ENV_VARS["tags"] = "MOCK_PI_TAG_COUNT"
FAULT_ENV_VARS = {f.name: f"MOCK_PI_FAULT_{f.name.upper()}" for f in fields(FaultConfig)}


_CONSTRAINT_ERRORS = {"greater_than", "greater_than_equal", "less_than_equal", "literal_error", "value_error"}


def problem(error: ValidationError, config_class: type, name_of: dict[tuple, str]) -> str:
    """The first problem of ``error`` (raised building ``config_class``), e.g. ``--tags must be at least 1
    (got 0)``; the field is named by ``name_of`` (keyed by its pydantic location, e.g. ``("faults",
    "error_rate")``), else by its name."""
    first = error.errors()[0]
    location = tuple(first["loc"])
    name = name_of.get(location, ".".join(str(part) for part in location))
    if first["type"] not in _CONSTRAINT_ERRORS:
        return f"{name} is not valid: {first['msg']} (got {first['input']!r})"
    owner = FaultConfig if len(location) > 1 else config_class
    requirement = owner.__pydantic_fields__[str(location[-1])].description  # type: ignore[attr-defined]
    return f"{name} {requirement or first['msg'].removeprefix('Value error, ')} (got {first['input']!r})"


def boolean(text: str) -> bool:
    """A flag's boolean (true/false, yes/no, on/off, 1/0)."""
    try:
        return TypeAdapter(bool).validate_python(text)
    except ValidationError:
        raise ValueError(text) from None


def parse_args(argv: list[str] | None = None, environ: dict[str, str] | None = None) -> MockConfig:
    """Build a ``MockConfig`` from ``argv`` over ``environ`` over the defaults; bad values exit with 2.

    Flags are converted by argparse, variables by the config's own validation, which then checks both."""
    environ = os.environ if environ is None else environ
    parser = argparse.ArgumentParser(prog="osipi-mock", description="A faithful mock PI Web API server.")
    options = [((name,), name, env, MockConfig) for name, env in ENV_VARS.items()]
    options += [(("faults", name), f"fault-{name}", env, FaultConfig) for name, env in FAULT_ENV_VARS.items()]
    for _, dest, env, cls in options:
        name = dest.removeprefix("fault-")
        default = next(f.default for f in fields(cls) if f.name == name)
        kind = str if default is None else type(default)
        parser.add_argument(
            "--" + dest.replace("_", "-"),
            dest=dest,
            type=boolean if kind is bool else kind,
            metavar="true|false" if kind is bool else name.upper(),
            help=f"env {env}; default {'the real clock' if name == 'now' else default}",
        )
    args = vars(parser.parse_args(argv))
    values: dict = {"faults": {}}
    name_of: dict[tuple, str] = {}
    for location, dest, env, _ in options:
        flag = args[dest]
        value = flag if flag is not None else environ.get(env)
        if value is None:
            continue
        (values["faults"] if location[0] == "faults" else values)[location[-1]] = value
        name_of[location] = (
            "--" + dest.replace("_", "-") if flag is not None else f"environment variable {env}"
        )
    try:
        return MockConfig(**values)
    except ValidationError as error:
        parser.error(problem(error, MockConfig, name_of))
