"""Genesys Cloud notifications, as its Amazon EventBridge integration delivers them.

An event's `detail` is {topicName, version, eventBody, metadata, timestamp}: `topicName` is the concrete
topic (ids filled in), while `detail-type` is the topic's template (`v2.users.{id}.presence`), as
Genesys' own EventBridge blueprints show (GenesysCloudBlueprints/aws-eventbridge-user-presence-update-
blueprint, events/UserPresenceChange.json). So the topic is read from `detail.topicName` only: the
template names no entity. Two topics are recorded, both by operation id:

- `v2.workforcemanagement.users.{id}.schedules.query`: an agent-schedule query that answered
  `Processing` has its result at `downloadUrl`; the client collects it on its next call, whichever
  container that is (`GenesysClient.agent_schedules`).
- `v2.workforcemanagement.businessunits.{id}.schedules`: how a schedule update ended (Complete,
  Error, Canceled). `operation_outcome(store, operation_id)` reads it back; the job transition it
  drives belongs to the pipeline (the integrator wires it there).

Delivery is at least once and unordered: every write is conditional, so a duplicate, or a
`Processing` arriving after the outcome, changes nothing. Other topics are ignored here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import ValidationError

from wfm_publish.genesys_wire import OperationOutcome, QueryResultNotice, ScheduleNotice

SCHEDULES_TOPIC = re.compile(r"^v2\.workforcemanagement\.businessunits\.([^.]+)\.schedules$")
QUERY_RESULT_TOPIC = re.compile(r"^v2\.workforcemanagement\.users\.([^.]+)\.schedules\.query$")


class EventSink(Protocol):
    """Where notifications are recorded (the jobs table, or memory in one process)."""

    def record_query_result(self, operation_id: str, download_url: str | None, at: float) -> bool: ...
    def record_operation(self, outcome: OperationOutcome) -> bool: ...


@dataclass(frozen=True)
class Handled:
    topic: str
    operation_id: str | None = None
    recorded: bool = False  # False: ignored, a duplicate, or older than what is recorded


def topic_of(event: dict[str, Any]) -> str:
    """The concrete topic of an EventBridge event from Genesys (`detail.topicName`); "" if it has none
    (`detail-type` is the topic's template: it cannot say which entity changed)."""
    detail = event.get("detail")
    return str((detail if isinstance(detail, dict) else {}).get("topicName") or "")


def handle(event: dict[str, Any], sink: EventSink, now: float) -> Handled:
    """Record one EventBridge event from the Genesys partner bus. Never raises on a bad body: a
    malformed notification is logged by the caller and dropped (a retry would not fix it)."""
    raw = event.get("detail")
    detail: dict[str, Any] = raw if isinstance(raw, dict) else {}
    topic = topic_of(event)
    body = detail.get("eventBody")
    if not isinstance(body, dict):
        return Handled(topic)
    try:
        if QUERY_RESULT_TOPIC.match(topic):
            notice = QueryResultNotice.model_validate(body)
            done = sink.record_query_result(notice.operation_id, notice.download_url, now)
            return Handled(topic, notice.operation_id, done)
        if bu := SCHEDULES_TOPIC.match(topic):
            update = ScheduleNotice.model_validate(body)
            outcome = OperationOutcome(
                update.operation_id, update.status, update.event_type, bu.group(1), update.result, now
            )
            return Handled(topic, update.operation_id, sink.record_operation(outcome))
    except ValidationError:
        return Handled(topic)
    return Handled(topic)
