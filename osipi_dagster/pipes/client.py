"""The PI Web API client on the side that runs the ingestion remotely.

The Dagster side builds its client in ``PIWebAPIResource`` from resolved ``dg.EnvVar`` secrets; here the
secrets come from this process's environment, under the variable names the server's settings give (on
Databricks, filled from secret references by the cluster).
"""

from __future__ import annotations

from osipi_dagster.pi import (
    Anonymous,
    BasicAuth,
    BearerAuth,
    KerberosAuth,
    OIDCClientCredentials,
    PIAuth,
    PIWebAPIClient,
)
from osipi_dagster.pipes.request import ClientOptions
from osipi_dagster.settings import AuthMode, PIServerSettings, secret_from_env


def open_client(options: ClientOptions, server: PIServerSettings) -> PIWebAPIClient:
    """A client configured like the step's ``pi`` resource, its secrets read from the environment."""
    return PIWebAPIClient(
        options.base_url,
        auth=_auth(options, server),
        verify=options.ca_bundle or options.verify_tls,
        timeout=options.timeout_s,
        post_timeout=options.post_timeout_s,
        max_retries=options.max_retries,
        backoff_base_s=options.backoff_base_s,
        backoff_max_s=options.backoff_max_s,
        pool_size=options.pool_size,
        max_count_limit=options.max_count_limit,
        compress=options.compress,
    )


def _auth(options: ClientOptions, server: PIServerSettings) -> PIAuth:
    secrets = server.secret_env_vars
    if options.auth == AuthMode.BASIC:
        return BasicAuth(options.username or "", secret_from_env(_named(secrets, "password", options.auth)))
    if options.auth == AuthMode.BEARER:
        return BearerAuth(secret_from_env(_named(secrets, "token", options.auth)))
    if options.auth == AuthMode.OIDC:
        secret = secret_from_env(_named(secrets, "client_secret", options.auth))
        return OIDCClientCredentials(options.client_id or "", secret)
    if options.auth == AuthMode.KERBEROS:
        return KerberosAuth()
    return Anonymous()


def _named(secrets: dict[str, str], setting: str, auth: AuthMode) -> str:
    if setting not in secrets:
        raise ValueError(
            f"auth={auth.value} needs the server's {setting}_env_var: the ingestion runs outside Dagster, "
            "which reads the secret from that environment variable (docs/CONFIGURATION.md)."
        )
    return secrets[setting]
