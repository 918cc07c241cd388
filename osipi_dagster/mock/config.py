"""Every option of the mock, from the command line or ``MOCK_PI_*`` environment variables.

Each option has one environment variable (listed in ``ENV_VARS`` and docs/MOCK_SERVER.md); a command-line
flag wins over the variable, and the variable over the default.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime


@dataclass(frozen=True)
class FaultConfig:
    """Injected faults, all off by default. Rates are probabilities per request (or per sub-request)."""

    seed: int = 0  # the fault schedule is deterministic given this seed and the request order
    latency_ms: float = 0.0  # added to every response
    latency_jitter_ms: float = 0.0  # plus a uniform 0..jitter
    error_rate: float = 0.0  # 500/502/503/504 answers
    throttle_rate: float = 0.0  # 429 answers with Retry-After
    retry_after_s: int = 1
    drop_rate: float = 0.0  # the connection is closed without an answer
    timeout_rate: float = 0.0  # the answer is held for timeout_s before it is sent
    timeout_s: float = 5.0
    truncate_rate: float = 0.0  # a 2xx JSON body is cut short
    malformed_rate: float = 0.0  # a 2xx JSON body is replaced by an HTML page (not JSON at all)
    batch_fail_rate: float = 0.0  # a /batch sub-request answers 500 on its own
    value_error_rate: float = 0.0  # share of /streams and /streamsets values given per-value Errors
    web_exception_rate: float = 0.0  # a 2xx JSON answer carries a top-level WebException

    def any_enabled(self) -> bool:
        """Whether any fault can fire (latency counts as a fault)."""
        return any(getattr(self, f.name) > 0 for f in fields(self) if f.name.endswith(("_rate", "_ms")))

    def problem(self, as_flags: bool = False) -> str | None:
        """What is wrong with these fault settings, or None; ``as_flags`` names them as CLI options."""
        for f in fields(self):
            value = getattr(self, f.name)
            name = "--fault-" + f.name.replace("_", "-") if as_flags else f.name
            if f.name.endswith("_rate") and not 0 <= value <= 1:
                return f"{name} must be between 0 and 1 (got {value})"
            if f.name != "seed" and value < 0:
                return f"{name} must not be negative (got {value})"
        return None


@dataclass(frozen=True)
class MockConfig:
    """The mock PI Web API's configuration (see docs/MOCK_SERVER.md for each option)."""

    host: str = "127.0.0.1"
    port: int = 8010
    tags: int = 10_000
    seed: int = 1
    now: str | None = None  # ISO 8601; None = the real clock
    archive_days: float = 730.0  # data exist from now - archive_days (at start-up) onwards
    late_share: float = 0.05  # share of points that receive some values late
    sampling: str = "mixed"  # mixed: the unit template's 1 s/5 s/60 s/irregular; 1s: every point 1 Hz numeric
    af_databases: int = 1
    event_frame_days: float = 30.0  # event frames exist for this many days before now
    server_name: str = "PIMOCK"
    af_server_name: str = "AFMOCK"
    server_time_zone: str = "UTC"  # the zone of zone-less time strings and of t / y
    max_returned_items: int = 150_000  # MaxReturnedItemsPerCall
    auth: str = "none"  # none | basic | bearer (bearer also serves OIDC discovery + a token endpoint)
    users: str = "piuser:pipassword"  # Basic users, "user:password,user2:password2"
    token: str = "mock-static-token"  # the static bearer token
    client_id: str = "osipi-client"  # OIDC client credentials
    client_secret: str = "osipi-secret"
    token_ttl_s: float = 3600.0  # lifetime of issued OIDC tokens, in real (wall-clock) seconds
    csrf: bool = True  # reject POST/PUT/PATCH/DELETE without X-Requested-With
    csrf_status: int = 400  # the status of a CSRF rejection (undocumented by AVEVA: 400 or 403)
    rate_limit_max: int = 0  # RateLimitMaxRequests per client IP per rate_limit_duration_s; 0 = off
    rate_limit_duration_s: float = 1.0
    faults: FaultConfig = field(default_factory=FaultConfig)

    def fixed_now_ns(self) -> int | None:
        if self.now is None:
            return None
        moment = datetime.fromisoformat(self.now.replace("Z", "+00:00"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000

    def basic_users(self) -> dict[str, str]:
        pairs = (item.split(":", 1) for item in self.users.split(",") if ":" in item)
        return {user.strip(): password for user, password in pairs}


SAMPLINGS = ("mixed", "1s")  # the values of MockConfig.sampling

# Option name -> environment variable. The tag count keeps the name the docs have always used.
ENV_VARS = {f.name: f"MOCK_PI_{f.name.upper()}" for f in fields(MockConfig) if f.name != "faults"}
ENV_VARS["tags"] = "MOCK_PI_TAG_COUNT"
FAULT_ENV_VARS = {f.name: f"MOCK_PI_FAULT_{f.name.upper()}" for f in fields(FaultConfig)}


def _convert(kind: type, text: str):
    if kind is bool:
        if text.lower() not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            raise ValueError(f"expected a boolean, got {text!r}")
        return text.lower() in ("1", "true", "yes", "on")
    return kind(text)


def _type_of(cls, name: str) -> type:
    default = next(f for f in fields(cls) if f.name == name).default
    return str if default is None else type(default)


def parse_args(argv: list[str] | None = None, environ: dict[str, str] | None = None) -> MockConfig:
    """Build a ``MockConfig`` from ``argv`` over ``environ`` over the defaults; bad values exit with 2."""
    environ = os.environ if environ is None else environ
    parser = argparse.ArgumentParser(prog="osipi-mock", description="A faithful mock PI Web API server.")
    bad_env: dict[str, str] = {}  # a malformed variable is an error only if no flag overrides it
    for cls, env_vars, prefix in ((MockConfig, ENV_VARS, ""), (FaultConfig, FAULT_ENV_VARS, "fault-")):
        for name, env in env_vars.items():
            kind = _type_of(cls, name)
            dest = prefix + name
            raw = environ.get(env)
            value = None
            if raw is not None:
                try:
                    value = _convert(kind, raw)
                except ValueError as exc:
                    bad_env[dest] = (
                        f"environment variable {env}={raw!r} is not a valid {kind.__name__}: {exc}"
                    )
            default = next(f.default for f in fields(cls) if f.name == name)
            parser.add_argument(
                "--" + dest.replace("_", "-"),
                dest=dest,
                default=value,
                type=(lambda text: _convert(bool, text)) if kind is bool else kind,
                metavar="true|false" if kind is bool else name.upper(),
                help=f"env {env}; default {'the real clock' if name == 'now' else default}",
            )
    args = vars(parser.parse_args(argv))
    for dest, problem in bad_env.items():
        if args[dest] is None:
            parser.error(problem)
    faults = FaultConfig(**{n: args[f"fault-{n}"] for n in FAULT_ENV_VARS if args[f"fault-{n}"] is not None})
    main = {n: args[n] for n in ENV_VARS if args[n] is not None}
    config = MockConfig(faults=faults, **main)
    problem = validate(config)
    if problem:
        parser.error(problem)
    return config


def validate(config: MockConfig) -> str | None:
    """What is wrong with ``config``, or None."""
    if config.tags < 1:
        return f"--tags must be at least 1 (got {config.tags})"
    if config.auth not in ("none", "basic", "bearer"):
        return f"--auth must be none, basic or bearer (got {config.auth!r})"
    if config.sampling not in SAMPLINGS:
        return f"--sampling must be {' or '.join(SAMPLINGS)} (got {config.sampling!r})"
    if not 0 <= config.late_share <= 1:
        return f"--late-share must be between 0 and 1 (got {config.late_share})"
    if not 0 <= config.port <= 65535:
        return f"--port must be between 0 and 65535 (got {config.port})"
    if not 400 <= config.csrf_status <= 499:
        return f"--csrf-status must be a 4xx status (got {config.csrf_status})"
    if config.token_ttl_s <= 0:
        return f"--token-ttl-s must be positive (got {config.token_ttl_s})"
    if config.rate_limit_max < 0 or config.rate_limit_duration_s <= 0:
        return "--rate-limit-max must not be negative and --rate-limit-duration-s must be positive"
    if config.max_returned_items < 1:
        return f"--max-returned-items must be at least 1 (got {config.max_returned_items})"
    try:
        config.fixed_now_ns()
    except ValueError:
        return f"--now must be an ISO 8601 time such as 2025-01-06T12:00:00Z (got {config.now!r})"
    return config.faults.problem(as_flags=True)
