"""The SQS event source: one thread per mapping; ReceiveMessage, the SQS batch event, and Lambda's
rules for what gets deleted (ReportBatchItemFailures: all but the listed records; an exception:
nothing). And a look at a queue without taking from it: its messages (`peek`), its counts (`depth`)."""

from __future__ import annotations

import base64
import hashlib
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from wfm_publish_local.runner.eventsource import PollingThread, batch_item_failures
from wfm_publish_local.runner.function import LocalFunction
from wfm_publish_local.specs import SqsEvent

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageTypeDef

log = logging.getLogger(__name__)


def _message_attributes(message: MessageTypeDef) -> dict[str, Any]:
    """SQS ReceiveMessage attributes -> the lowerCamel shape Lambda's SQS records carry."""
    out: dict[str, Any] = {}
    for name, value in (message.get("MessageAttributes") or {}).items():
        binary = value.get("BinaryValue")
        out[name] = {
            "stringValue": value.get("StringValue"),
            "binaryValue": base64.b64encode(binary).decode("ascii") if binary is not None else None,
            "stringListValues": list(value.get("StringListValues") or []),
            "binaryListValues": [
                base64.b64encode(b).decode("ascii") for b in value.get("BinaryListValues") or []
            ],
            "dataType": value.get("DataType"),
        }
        out[name] = {k: v for k, v in out[name].items() if v is not None}
    return out


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def sqs_event(
    messages: Sequence[MessageTypeDef], queue_arn: str, region: str = "us-east-1"
) -> dict[str, Any]:
    """The event Lambda's SQS event source mapping delivers for a batch of received messages."""
    records: list[dict[str, Any]] = []
    for message in messages:
        body = message.get("Body", "")
        record: dict[str, Any] = {
            "messageId": message.get("MessageId", ""),
            "receiptHandle": message.get("ReceiptHandle", ""),
            "body": body,
            "attributes": dict(message.get("Attributes") or {}),
            "messageAttributes": _message_attributes(message),
            "md5OfBody": message.get("MD5OfBody") or _md5(body),
            "eventSource": "aws:sqs",
            "eventSourceARN": queue_arn,
            "awsRegion": region,
        }
        if "MD5OfMessageAttributes" in message:
            record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
        records.append(record)
    return {"Records": records}


class SqsPoller(PollingThread):
    """One SQS event source mapping: a thread that receives batches and invokes the function."""

    def __init__(
        self,
        function: LocalFunction,
        source: SqsEvent,
        *,
        client: SQSClient,
        queue_url: str,
        queue_arn: str,
        region: str = "us-east-1",
        wait_seconds: int = 1,
    ) -> None:
        self.function = function
        self.source = source
        self.client = client
        self.queue_url = queue_url
        self.queue_arn = queue_arn
        self.region = region
        self.wait_seconds = wait_seconds
        self.batches = 0
        self.redeliveries = 0  # records received before (ApproximateReceiveCount > 1)
        super().__init__(f"sqs-{function.logical_id}-{source.name}")

    def _poll(self) -> None:
        messages = self._receive_batch()
        if not messages:
            return
        with self._busy:
            if not self._stop.is_set():
                self.process(messages)

    def _receive(self, count: int, wait: int) -> list[MessageTypeDef]:
        response = self.client.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=max(1, min(10, count)),
            WaitTimeSeconds=wait,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        return list(response.get("Messages", []))

    def _receive_batch(self) -> list[MessageTypeDef]:
        """Up to BatchSize messages. With a batching window Lambda keeps gathering until the batch is
        full or the window closes; locally it stops early as soon as the queue has nothing more."""
        messages = self._receive(self.source.batch_size, self.wait_seconds)
        if not messages or self.source.maximum_batching_window <= 0:
            return messages
        window_ends = time.monotonic() + self.source.maximum_batching_window
        while len(messages) < self.source.batch_size and time.monotonic() < window_ends:
            more = self._receive(self.source.batch_size - len(messages), 0)
            if not more:
                break
            messages += more
        return messages

    def process(self, messages: Sequence[MessageTypeDef]) -> None:
        """Invoke the function with one batch and delete what Lambda would delete."""
        self.batches += 1
        self.redeliveries += sum(
            1 for m in messages if int((m.get("Attributes") or {}).get("ApproximateReceiveCount", "1")) > 1
        )
        event = sqs_event(messages, self.queue_arn, self.region)
        ids = [m.get("MessageId", "") for m in messages]
        try:
            result = self.function.invoke(event)
        except Exception:
            log.exception(
                "%s failed; the whole batch of %d stays on the queue", self.function.logical_id, len(ids)
            )
            return
        keep: set[str] = set()
        if self.source.report_batch_item_failures:
            failed = batch_item_failures(result, ids)
            if failed is None:
                log.error(
                    "%s returned an invalid batchItemFailures response; the whole batch stays: %r",
                    self.function.logical_id,
                    result,
                )
                return
            keep = failed
        done = [m for m in messages if m.get("MessageId", "") not in keep]
        for start in range(0, len(done), 10):
            chunk = done[start : start + 10]
            self.client.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m.get("ReceiptHandle", "")} for i, m in enumerate(chunk)
                ],
            )


def peek(client: SQSClient, queue_url: str) -> list[dict[str, Any]]:
    """The visible messages of a queue, left on it. Each peek counts as a receive (SQS has no other
    way to read), so on a queue with a RedrivePolicy it moves messages towards the DLQ."""
    seen: list[dict[str, Any]] = []
    handles: list[str] = []
    while True:
        response = client.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            VisibilityTimeout=30,
            WaitTimeSeconds=0,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        batch = response.get("Messages", [])
        if not batch:
            break
        for message in batch:
            handles.append(message.get("ReceiptHandle", ""))
            seen.append(
                {
                    "messageId": message.get("MessageId"),
                    "body": message.get("Body", ""),
                    "attributes": dict(message.get("Attributes") or {}),
                    "messageAttributes": dict(message.get("MessageAttributes") or {}),
                }
            )
    for start in range(0, len(handles), 10):
        client.change_message_visibility_batch(
            QueueUrl=queue_url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": 0}
                for i, h in enumerate(handles[start : start + 10])
            ],
        )
    return seen


def depth(client: SQSClient, queue_url: str) -> dict[str, int]:
    """visible / in_flight / delayed message counts (SQS's approximate numbers)."""
    attrs = client.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=[
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ],
    )["Attributes"]
    return {
        "visible": int(attrs.get("ApproximateNumberOfMessages", 0)),
        "in_flight": int(attrs.get("ApproximateNumberOfMessagesNotVisible", 0)),
        "delayed": int(attrs.get("ApproximateNumberOfMessagesDelayed", 0)),
    }
