"""A PI Web API client: discovery, exact, resilient, fast bulk time-series reads into Arrow, Stream Updates.

No Dagster here: the package only needs requests, msgspec, numpy and pyarrow.
"""

from __future__ import annotations

from osipi_dagster.contract import RECORDED_SCHEMA, SUMMARY_SCHEMA
from osipi_dagster.pi.auth import (
    Anonymous,
    BasicAuth,
    BearerAuth,
    KerberosAuth,
    OIDCClientCredentials,
    PIAuth,
)
from osipi_dagster.pi.client import PIWebAPIClient
from osipi_dagster.pi.discovery import (
    AssetDatabase,
    AssetServer,
    Attribute,
    DataServer,
    Element,
    EnumerationSet,
    EnumerationValue,
    EventFrame,
    Point,
)
from osipi_dagster.pi.errors import (
    MissingExtraError,
    PIAuthenticationError,
    PIConfigurationError,
    PIConnectionError,
    PIPagingError,
    PIResponseError,
    PIWebAPIError,
)
from osipi_dagster.pi.recorded import ReadCancelledError, StreamFailure, StreamRead
from osipi_dagster.pi.transport import RetryPolicy
from osipi_dagster.pi.updates import (
    UPDATE_EVENTS_SCHEMA,
    RegistrationRefusedError,
    UpdateRegistration,
    UpdatesLostError,
    UpdatesRead,
)

__all__ = [
    "RECORDED_SCHEMA",
    "SUMMARY_SCHEMA",
    "UPDATE_EVENTS_SCHEMA",
    "Anonymous",
    "AssetDatabase",
    "AssetServer",
    "Attribute",
    "BasicAuth",
    "BearerAuth",
    "DataServer",
    "Element",
    "EnumerationSet",
    "EnumerationValue",
    "EventFrame",
    "KerberosAuth",
    "MissingExtraError",
    "OIDCClientCredentials",
    "PIAuth",
    "PIAuthenticationError",
    "PIConfigurationError",
    "PIConnectionError",
    "PIPagingError",
    "PIResponseError",
    "PIWebAPIClient",
    "PIWebAPIError",
    "Point",
    "ReadCancelledError",
    "RegistrationRefusedError",
    "RetryPolicy",
    "StreamFailure",
    "StreamRead",
    "UpdateRegistration",
    "UpdatesLostError",
    "UpdatesRead",
]
