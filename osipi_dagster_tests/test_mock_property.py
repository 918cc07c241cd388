"""Random paths, queries and methods thrown at the mock over real HTTP: never a 500, always PI's errors."""

from __future__ import annotations

from urllib.parse import quote

import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from osipi_dagster.mock.server import RunningMock

SEGMENTS = [
    "piwebapi", "system", "status", "userinfo", "versions", "configuration", "batch", "dataservers", "points",
    "search", "multiple", "enumerationsets", "enumerationvalues", "attributes", "streams", "streamsets",
    "recorded", "interpolated", "plot", "summary", "value", "end", "assetservers", "assetdatabases",
    "elements", "elementtemplates", "eventframes", "referencedelements", "F1DSFNSXRiGxGFWK8W4QiU6EXAUElNT0NL",
    "F1DPFNSXRiGxGFWK8W4QiU6EXAAQAAAAUElNT0NLXFBMQU5UMS5BUkVBMS5VTklUMDEuRklDMDEwMS5QVg", "I1DP", "F1Em",
    "P1DP", "..", "%00", "%ff", "admin", "clock", "info", ".well-known", "openid-configuration",
]  # fmt: skip
PARAMS = [
    "startTime", "endTime", "maxCount", "startIndex", "selectedFields", "webIdType", "nameFilter", "path",
    "webId", "timeZone", "boundaryType", "searchFullHierarchy", "searchMode", "severity", "intervals",
    "summaryType", "query", "templateName", "categoryName", "time", "interval", "sortOrder", "desiredUnits",
]  # fmt: skip
VALUES = [
    "*", "*-1d", "t", "y", "2025-01-06T00:00:00Z", "06-Jan-25 08:00:00", "-1", "0", "1", "150001", "1e9",
    "true", "nope", "Full", "IDOnly", "PathOnly", "\\\\PIMOCK\\Plant1*", "Items.Value;Items.Timestamp", "",
    "Overlapped", "Critical", "Average", "tag:=Plant1*", "*+1000y", "9999-12-31T23:59:59Z", "Europe/Paris",
]  # fmt: skip

segment = st.one_of(
    st.sampled_from(SEGMENTS), st.text(min_size=1, max_size=12).map(lambda s: quote(s, safe=""))
)
value = st.one_of(st.sampled_from(VALUES), st.text(max_size=20))


@settings(max_examples=400, deadline=None)
@given(
    segments=st.lists(segment, min_size=0, max_size=6),
    under_api=st.booleans(),
    query=st.lists(st.tuples(st.sampled_from(PARAMS), value), max_size=5),
    method=st.sampled_from(["GET", "GET", "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]),
)
def test_random_requests_never_answer_500(
    mock_pi: RunningMock, segments: list[str], under_api: bool, query: list[tuple[str, str]], method: str
) -> None:
    path = "/" + "/".join((["piwebapi"] if under_api else []) + segments)
    url = mock_pi.url + path + ("?" + "&".join(f"{k}={quote(v, safe='')}" for k, v in query) if query else "")
    headers = {"X-Requested-With": "property-test"} if method != "DELETE" else {}
    answer = requests.request(
        method, url, headers=headers, timeout=30, data=b"{}" if method == "POST" else None
    )
    assert answer.status_code < 500, (method, url, answer.status_code, answer.text[:300])
    if answer.status_code >= 400 and method != "HEAD":
        assert "Errors" in answer.json(), (method, url, answer.text[:300])


@settings(max_examples=150, deadline=None)
@given(
    body=st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.text(max_size=10)
        | st.sampled_from(["GET", "/piwebapi", "$.a"]),
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(
                st.sampled_from(
                    ["a", "b", "Method", "Resource", "ParentIds", "Parameters", "RequestTemplate", "Content"]
                ),
                children,
                max_size=5,
            )
        ),
        max_leaves=20,
    )
)
def test_random_batches_never_answer_500(mock_pi: RunningMock, body: object) -> None:
    answer = requests.post(mock_pi.api + "/batch", json=body, headers={"X-Requested-With": "t"}, timeout=30)
    assert answer.status_code in (207, 400), (body, answer.status_code, answer.text[:300])
    assert isinstance(answer.json(), dict)
