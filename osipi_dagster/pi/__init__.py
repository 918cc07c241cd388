"""A PI Web API client: discovery, notification rules, exact, resilient, fast bulk time-series reads into
Arrow, Stream Updates.

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
    ATTRIBUTE_FIELDS,
    ELEMENT_FIELDS,
    POINT_FIELDS,
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
from osipi_dagster.pi.notifications import NotificationRule, NotificationRuleSubscriber
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
    "ATTRIBUTE_FIELDS",
    "ELEMENT_FIELDS",
    "POINT_FIELDS",
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
    "NotificationRule",
    "NotificationRuleSubscriber",
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
