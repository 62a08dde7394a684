"""EventBridge: rules on a partner bus invoking functions (asynchronously, with Lambda's retries), a
relay feeding such a bus, and the capture of what the functions put on the default bus."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from wfm_publish_local.runner.eventsource import PollingThread
from wfm_publish_local.runner.function import LocalFunction
from wfm_publish_local.runner.patterns import filter_matches

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

log = logging.getLogger(__name__)


# EventBridge -> Lambda is an asynchronous invoke: Lambda retries a failed one twice.
EVENTBRIDGE_ATTEMPTS = 3


class EventRelay(PollingThread):
    """A partner event bus's events, read from their source (`fetch(cursor)` -> (the events after
    the first `cursor`, how many there are in all)) and handed to `deliver` in order; the cursor
    moves past each one delivered (`deliver` does EventBridge's retries itself)."""

    def __init__(
        self,
        name: str,
        fetch: Callable[[int], tuple[list[dict[str, Any]], int]],
        deliver: Callable[[dict[str, Any]], object],
        poll_interval: float = 0.1,
    ) -> None:
        super().__init__(f"events-{name}")
        self._fetch = fetch
        self._deliver = deliver
        self._interval = poll_interval
        self.cursor = 0
        self.delivered = 0

    def _poll(self) -> None:
        events, total = self._fetch(self.cursor)
        if total < self.cursor:  # the source started over (the simulator was reset)
            self.cursor = 0
            events, total = self._fetch(0)
        with self._busy:
            for event in events:
                if self._stop.is_set():
                    return
                self._deliver(event)
                self.cursor += 1
                self.delivered += 1
        self._stop.wait(self._interval)


def rule_targets(
    functions: Iterable[LocalFunction], bus: str, event: Mapping[str, Any], resolve: Callable[[Any], str]
) -> list[LocalFunction]:
    """The functions whose EventBridgeRule on `bus` matches the event."""
    return [
        f
        for f in functions
        for rule in f.spec.rule_events
        if resolve(rule.event_bus) == bus and filter_matches(rule.pattern, event)
    ]


def invoke_async(function: LocalFunction, event: Any) -> bool:
    """An asynchronous invoke with Lambda's retries: True when an attempt succeeded."""
    for attempt in range(EVENTBRIDGE_ATTEMPTS):
        try:
            function.invoke(event)
        except Exception:
            log.warning("%s failed on an EventBridge event (attempt %d)", function.logical_id, attempt + 1)
            continue
        return True
    return False


class EventCapture:
    """What the functions put on an EventBridge bus of the moto server: a rule matching every event,
    targeting a queue of its own, read (and emptied) by `events()`; what was read is kept, in order."""

    RULE = "wfm-publish-local-capture"

    def __init__(
        self, events_client: Any, sqs_client: SQSClient, queue_name: str, bus: str = "default"
    ) -> None:
        self._events = events_client
        self._sqs = sqs_client
        self.bus = bus
        self.queue_url = sqs_client.create_queue(QueueName=queue_name)["QueueUrl"]
        arn = sqs_client.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])
        events_client.put_rule(
            Name=self.RULE,
            EventBusName=bus,
            EventPattern=json.dumps({"source": [{"prefix": ""}]}),
            State="ENABLED",
        )
        events_client.put_targets(
            Rule=self.RULE,
            EventBusName=bus,
            Targets=[{"Id": "capture", "Arn": arn["Attributes"]["QueueArn"]}],
        )
        self.seen: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def events(self, source: str | None = None, detail_type: str | None = None) -> list[dict[str, Any]]:
        """Every event put so far (as EventBridge delivers it to a target), oldest first."""
        with self._lock:
            while True:
                batch = self._sqs.receive_message(
                    QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
                ).get("Messages", [])
                if not batch:
                    break
                for message in batch:
                    self.seen.append(json.loads(message.get("Body", "{}")))
                    self._sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
            return [
                e
                for e in self.seen
                if source in (None, e.get("source")) and detail_type in (None, e.get("detail-type"))
            ]
