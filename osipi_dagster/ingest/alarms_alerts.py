"""Alarm alerts: which alarms of ``silver.pi_alarms`` are new, the Slack-compatible message for each, and
posting messages to a webhook.

Exactly once: :class:`AlertCursor` holds a floor (alarms that started before it are never posted) and the
WebIds of the alarms posted since it. An alarm is new when it started at or after the floor, is not in the
cursor and has a severity at or above the threshold; each is posted once, oldest first, and the cursor is
advanced per message, so a webhook failing half-way re-posts nothing already posted. The floor moves up to
``lookback`` before the newest alarm's start (PI's clock) so the cursor stays small; an alarm that reaches the
lake more than ``lookback`` after newer alarms is never posted. A sensor's first tick posts nothing already in
the lake.

The webhook URL is a secret (Slack's carries its token in the path): it is never part of a message, an
exception or a log line here.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import parse_qsl, urlsplit

import pyarrow.compute as pc
import pyarrow.dataset as ds
import requests

from osipi_dagster.ingest.alarms_criteria import severity_level
from osipi_dagster.lake import LakeTable

POST_TIMEOUT_SECONDS = 10.0
# Shorter parts of a webhook URL ("services", "api") are not secrets, and removing them would garble answers.
_SECRET_MIN_LENGTH = 6
_ALARM_COLUMNS = [
    "web_id",
    "name",
    "rule_name",
    "element_path",
    "severity",
    "severity_level",
    "start_time",
    "end_time",
    "is_acknowledged",
    "acknowledged_by",
]


class WebhookError(RuntimeError):
    """The webhook did not take a message (the message names no URL)."""


@dataclass
class AlertCursor:
    """Alarms starting before ``floor`` are never posted; ``posted`` holds the WebIds posted since.
    Asset check executions (Dagster's ids) up to ``checks_after`` are done with; ``checks_posted`` holds the
    later ones already handled (an earlier one may still be running)."""

    floor: datetime
    posted: set[str] = field(default_factory=set)
    checks_after: int = 0
    checks_posted: set[int] = field(default_factory=set)

    def to_json(self) -> str:
        return json.dumps(
            {
                "floor": self.floor.isoformat(),
                "posted": sorted(self.posted),
                "checks_after": self.checks_after,
                "checks_posted": sorted(self.checks_posted),
            }
        )

    @classmethod
    def from_json(cls, text: str) -> AlertCursor:
        """A cursor written by :meth:`to_json`; ValueError naming the problem for anything else."""
        try:
            data = json.loads(text)
            return cls(
                datetime.fromisoformat(data["floor"]),
                set(data["posted"]),
                int(data["checks_after"]),
                {int(i) for i in data["checks_posted"]},
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(
                f"The alarm alert cursor is not one this sensor wrote ({exc}); reset the sensor's cursor."
            ) from exc

    @classmethod
    def first(cls, alarms: LakeTable, *, now: datetime, checks_after: int) -> AlertCursor:
        """The cursor of a sensor's first tick: the alarms already in the lake count as posted (a sensor
        turned on does not post the history), so its floor is the newest alarm's start (``now`` for an
        empty table), on PI's clock like the alarms."""
        newest = _newest_start(alarms)
        if newest is None:
            return cls(now, set(), checks_after)
        at_newest = {row["web_id"] for row in _alarms_since(alarms, newest, 0)}
        return cls(newest, at_newest, checks_after)

    def advanced(self, alarms: LakeTable, lookback: timedelta) -> AlertCursor:
        """The cursor with its floor moved up to ``lookback`` before the newest alarm's start (PI's clock,
        not this host's), forgetting the WebIds that started before it."""
        newest = _newest_start(alarms)
        floor = self.floor if newest is None else max(self.floor, newest - lookback)
        if floor == self.floor:
            return self
        kept = {row["web_id"] for row in _alarms_since(alarms, floor, 0) if row["web_id"] in self.posted}
        return AlertCursor(floor, kept, self.checks_after, self.checks_posted)


def _newest_start(alarms: LakeTable) -> datetime | None:
    if not alarms.exists():
        return None
    starts = alarms.load().to_pyarrow_table(columns=["start_time"]).column("start_time")
    return pc.max(starts).as_py() if len(starts) else None


def new_alarms(alarms: LakeTable, cursor: AlertCursor, min_severity: str) -> list[dict]:
    """The alarms to post: started at or after the cursor's floor, not posted yet, severity at or above
    ``min_severity``; oldest first."""
    found = _alarms_since(alarms, cursor.floor, severity_level(min_severity))
    return sorted(
        (row for row in found if row["web_id"] not in cursor.posted),
        key=lambda row: (row["start_time"], row["web_id"]),
    )


def _alarms_since(alarms: LakeTable, floor: datetime, min_level: int) -> list[dict]:
    if not alarms.exists():
        return []
    wanted = (ds.field("start_time") >= floor) & (ds.field("severity_level") >= min_level)
    return alarms.load().to_pyarrow_table(columns=_ALARM_COLUMNS, filters=wanted).to_pylist()


def alarm_message(alarm: dict, server: str) -> dict[str, object]:
    """A Slack-compatible message (``text``, and ``blocks`` for clients that show them) for one alarm."""
    state = "active" if alarm["end_time"] is None else f"cleared {alarm['end_time']:%Y-%m-%d %H:%M:%S} UTC"
    acknowledged = f", acknowledged by {alarm['acknowledged_by']}" if alarm["is_acknowledged"] else ""
    text = (
        f":rotating_light: {alarm['severity']} alarm on PI server {server}: {alarm['name']} "
        f"({alarm['rule_name']}) at {alarm['element_path'] or 'an unknown element'}, started "
        f"{alarm['start_time']:%Y-%m-%d %H:%M:%S} UTC, {state}{acknowledged}."
    )
    return _message(text)


def check_failure_message(asset: str, check: str, partition: str | None, description: str | None) -> dict:
    """A Slack-compatible message for a failed ERROR-severity asset check."""
    where = f" (partition {partition})" if partition else ""
    text = f":x: ERROR asset check {check} failed on {asset}{where}: {description or 'no description'}."
    return _message(text)


def _message(text: str) -> dict[str, object]:
    return {"text": text, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]}


def post_message(
    session: requests.Session, url: str, message: dict, *, timeout: float = POST_TIMEOUT_SECONDS
) -> None:
    """POST ``message`` as JSON to the webhook ``url``.

    Raises:
        WebhookError: the webhook was unreachable or answered other than 2xx; the message names the
            status (and the answer's first 200 characters, without any part of the URL), never the URL.
    """
    try:
        answer = session.post(url, json=message, timeout=timeout)
    except requests.RequestException as exc:
        raise WebhookError(f"The alert webhook could not be reached ({type(exc).__name__}).") from None
    if not 200 <= answer.status_code < 300:
        raise WebhookError(
            f"The alert webhook answered HTTP {answer.status_code}: {_scrub(answer.text[:200], url)!r}."
        )


def _scrub(text: str, url: str) -> str:
    """``text`` without any part of ``url`` that may be secret: the URL, its path segments and query
    values (a server may echo its token alone)."""
    parts = urlsplit(url)
    secrets = [url, *parts.path.split("/"), *(value for _, value in parse_qsl(parts.query))]
    for secret in sorted((s for s in secrets if len(s) >= _SECRET_MIN_LENGTH), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def post_all(
    session: requests.Session, url: str, messages: Sequence[tuple[str, dict]], posted: set[str]
) -> WebhookError | None:
    """Post each ``(id, message)`` in turn, adding each id to ``posted`` once the webhook took it; stop at the
    first failure and return it (the ids not posted stay out of ``posted`` for the next try)."""
    for message_id, message in messages:
        try:
            post_message(session, url, message)
        except WebhookError as exc:
            return exc
        posted.add(message_id)
    return None
