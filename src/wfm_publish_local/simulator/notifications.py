"""The notifications the simulated org would send through Genesys Cloud's Amazon EventBridge integration.

Each is an EventBridge event as the partner event bus delivers it, in the shape of Genesys' own sample
events (GenesysCloudBlueprints/aws-eventbridge-user-presence-update-blueprint, events/*.json):
`detail-type` = the topic's template (`v2.telephony.providers.edges.{id}`), `detail` =
{topicName (the concrete topic), version, eventBody, metadata, timestamp}. The simulator keeps every
one in order (`GET /__sim/notifications`) and hands each to its listeners (the local runner's
EventBridge stand-in, the virtual run).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from wfm_publish import genesys_events
from wfm_publish.clock import iso
from wfm_publish.genesys import MemoryQueryBook, OperationOutcome, PendingQuery

EVENT_SOURCE = "aws.partner/genesys.com/cloud/{org}/wfm-publish"
SCHEDULES_TOPIC = "v2.workforcemanagement.businessunits.{id}.schedules"
QUERY_RESULT_TOPIC = "v2.workforcemanagement.users.{id}.schedules.query"
EDGE_TOPIC = "v2.telephony.providers.edges.{id}"
EDGE_SOFTWARE_TOPIC = "v2.telephony.providers.edges.{id}.softwareupdate"
TRUNK_TOPIC = "v2.telephony.providers.edges.trunks.{id}"

NOTIFICATION_VERSION = "2"  # detail.version in Genesys' sample events
TELEPHONY_TOPICS = frozenset({EDGE_TOPIC, EDGE_SOFTWARE_TOPIC, TRUNK_TOPIC})

Listener = Callable[[dict[str, Any]], object]


def envelope_time(at: float) -> str:
    """2021-06-25T15:11:52Z: EventBridge's `time`, in whole seconds (the notification's own
    `timestamp` has the milliseconds)."""
    return datetime.fromtimestamp(int(at), UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class Notifier:
    def __init__(self, org_id: str, region: str = "us-east-1", account: str = "000000000000") -> None:
        self.source = EVENT_SOURCE.format(org=org_id)
        self.region = region
        self.account = account
        self.sent: list[dict[str, Any]] = []
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()

    def subscribe(self, listener: Listener) -> None:
        with self._lock:
            self._listeners.append(listener)

    def reset(self) -> None:
        self.sent = []

    def emit(
        self, topic: str, entity_id: str, body: dict[str, Any], at: float, event_id: str
    ) -> dict[str, Any]:
        """One event on `topic` (a template: `{id}` is `entity_id`), at epoch `at`."""
        name = topic.format(id=entity_id)
        event = {
            "version": "0",
            "id": event_id,
            "detail-type": topic,  # the template, as Genesys sends it
            "source": self.source,
            "account": self.account,
            "time": envelope_time(at),
            "region": self.region,
            "resources": [],
            "detail": {
                "topicName": name,
                "version": NOTIFICATION_VERSION,
                "eventBody": body,
                "metadata": {"CorrelationId": event_id},
                "timestamp": iso(at),
            },
        }
        self.sent.append(event)
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            listener(event)
        return event

    def since(self, after: int) -> list[dict[str, Any]]:
        """The events sent after the first `after` (a reader's cursor)."""
        return self.sent[after:]


class DeliveredQueryBook(MemoryQueryBook):
    """A MemoryQueryBook fed with the simulator's notifications as EventBridge and the genesys_events
    function would feed the table. The simulator applies time lazily, so it is let catch up (`pump`)
    before each read: a result due by now has been delivered by now."""

    def __init__(self, notifier: Notifier, pump: Callable[[], None], now: Callable[[], float]) -> None:
        super().__init__()
        self._pump = pump
        notifier.subscribe(lambda event: genesys_events.handle(event, self, now()))

    def pending_query(self, key: str) -> PendingQuery | None:
        self._pump()
        return super().pending_query(key)

    def operation_outcome(self, operation_id: str) -> OperationOutcome | None:
        self._pump()
        return super().operation_outcome(operation_id)
