"""A stack's event sources: the SQS and DynamoDB stream mappings of its functions, and the relays
feeding its partner buses; started per function, stopped together."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from wfm_publish_local.runner.eventbridge import EventRelay
from wfm_publish_local.runner.function import LocalFunction
from wfm_publish_local.runner.sqs import SqsPoller
from wfm_publish_local.runner.streams import StreamPoller
from wfm_publish_local.specs import StreamEvent
from wfm_publish_local.template import TemplateError

__all__ = ["EventSources", "StackResources"]


class StackResources(Protocol):
    """What the mappings need of the stack: clients for its endpoint, its queues and streams."""

    @property
    def attributes(self) -> Mapping[tuple[str, str], str]: ...

    def client(self, service: str) -> Any: ...

    def queue_url(self, logical_id: str) -> str: ...

    def queue_arn(self, logical_id: str) -> str: ...


class EventSources:
    """The pollers running for a stack's functions (SQS: `sqs_concurrency` per mapping, as Lambda runs
    several batches of one queue at once) and the relays it was given."""

    def __init__(
        self,
        stack: StackResources,
        *,
        region: str,
        sqs_concurrency: int,
        stream_poll_interval: float,
        stream_retry_delay: float,
    ) -> None:
        self.stack = stack
        self.region = region
        self.sqs_concurrency = sqs_concurrency
        self.stream_poll_interval = stream_poll_interval
        self.stream_retry_delay = stream_retry_delay
        self.sqs: list[SqsPoller] = []
        self.streams: list[StreamPoller] = []
        self.relays: list[EventRelay] = []

    def start(self, functions: Iterable[LocalFunction]) -> None:
        """Start the SQS and stream event sources of these functions, unless they already run."""
        running = {p.function.logical_id for p in self.sqs} | {p.function.logical_id for p in self.streams}
        for function in functions:
            if function.logical_id in running:
                continue
            for stream in function.spec.stream_events:
                self._start_stream_poller(function, stream)
            for source in function.spec.sqs_events:
                for _ in range(self.sqs_concurrency):
                    poller = SqsPoller(
                        function,
                        source,
                        client=self.stack.client("sqs"),
                        queue_url=self.stack.queue_url(source.queue),
                        queue_arn=self.stack.queue_arn(source.queue),
                        region=self.region,
                    )
                    poller.start()
                    self.sqs.append(poller)

    def add_relay(self, relay: EventRelay) -> None:
        """A relay, started by its owner, stopped with the pollers."""
        self.relays.append(relay)

    def stop(self) -> None:
        """Stop every poller and relay (the batch in hand is finished first)."""
        pollers: list[SqsPoller | StreamPoller | EventRelay] = [*self.sqs, *self.streams, *self.relays]
        # Ask them all first, so they wind down together rather than one after another.
        for poller in pollers:
            poller.request_stop()
        for poller in pollers:
            poller.stop()
        self.sqs = []
        self.streams = []
        self.relays = []

    def redeliveries(self) -> dict[str, int]:
        """SQS records delivered again (received before), per function logical id."""
        counts: dict[str, int] = {}
        for poller in self.sqs:
            lid = poller.function.logical_id
            counts[lid] = counts.get(lid, 0) + poller.redeliveries
        return counts

    def _start_stream_poller(self, function: LocalFunction, source: StreamEvent) -> None:
        stream_arn = self.stack.attributes.get((source.table, "StreamArn"))
        if not stream_arn:
            raise TemplateError(
                f"{function.logical_id}.{source.name}: {source.table} has no StreamSpecification"
            )
        on_failure = None
        if source.on_failure is not None:
            dlq_url = self.stack.queue_url(source.on_failure)
            sqs = self.stack.client("sqs")

            def on_failure(record: dict[str, Any]) -> None:
                sqs.send_message(QueueUrl=dlq_url, MessageBody=json.dumps(record))

        poller = StreamPoller(
            function,
            source,
            client=self.stack.client("dynamodbstreams"),
            stream_arn=stream_arn,
            on_failure=on_failure,
            region=self.region,
            poll_interval=self.stream_poll_interval,
            retry_delay=self.stream_retry_delay,
        )
        poller.start()
        self.streams.append(poller)
