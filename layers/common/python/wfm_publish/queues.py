"""The one queue sender. SQS delays at most 900 s; longer waits travel as several hops."""

from __future__ import annotations

import math
from collections.abc import Callable
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from wfm_publish.errors import QueueError
from wfm_publish.models import JobMessage

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

    from wfm_publish.clock import Clock

MAX_DELAY = 900  # SQS DelaySeconds limit
# A message this close to its time is on time: clocks differ a little between SQS and Lambda. Under a
# second, because every leg is a whole number of seconds: a Retry-After of 901 s (900 + 1) must
# still wait its last second, not be taken 1 s early.
EARLY_TOLERANCE = 0.5


class Queue(StrEnum):
    VALIDATION = "validation"
    CONFLICT = "conflict"


class QueueTransport(Protocol):
    def send(self, queue: Queue, body: str, delay_seconds: int) -> None: ...


class QueueSender:
    def __init__(self, transport: QueueTransport, clock: Clock) -> None:
        self._transport = transport
        self._clock = clock

    def send(self, queue: Queue, message: JobMessage, delay: float = 0.0) -> None:
        """Deliver `message` after `delay` seconds; past 900 s it carries `notBefore` and hops."""
        delay = max(0.0, delay)
        if delay > MAX_DELAY:
            message = message.model_copy(update={"not_before": self._clock.now() + delay})
        else:
            message = message.model_copy(update={"not_before": None})
        self._transport.send(
            queue, message.model_dump_json(by_alias=True, exclude_none=True), _sqs_delay(delay)
        )

    def hop_if_early(self, queue: Queue, message: JobMessage) -> bool:
        """A message that arrived before its `notBefore` goes back for the rest of its wait."""
        if message.not_before is None:
            return False
        remaining = message.not_before - self._clock.now()
        if remaining <= EARLY_TOLERANCE:
            return False
        hop = message if remaining > MAX_DELAY else message.model_copy(update={"not_before": None})
        self._transport.send(
            queue, hop.model_dump_json(by_alias=True, exclude_none=True), _sqs_delay(remaining)
        )
        return True


def _sqs_delay(delay: float) -> int:
    # Round up: arriving a fraction early would cost a pointless extra read.
    return min(MAX_DELAY, math.ceil(delay))


class SqsTransport:
    def __init__(self, client: SQSClient, urls: dict[Queue, str]) -> None:
        self._sqs = client
        self._urls = urls

    def send(self, queue: Queue, body: str, delay_seconds: int) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        kwargs: dict[str, Any] = {
            "QueueUrl": self._urls[queue],
            "MessageBody": body,
            "DelaySeconds": delay_seconds,
        }
        try:
            self._sqs.send_message(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise QueueError(f"could not send to the {queue.value} queue: {exc}") from exc


class DeadLetters:
    """Reads the pipeline's dead-letter queues (SQS's receive and delete, nothing else)."""

    def __init__(self, client: SQSClient, urls: dict[Queue, str], *, hold_seconds: int = 300) -> None:
        self._sqs = client
        self._urls = urls
        self._hold = hold_seconds  # a message left in place stays out of this sweep's way this long

    def sweep(self, settle: Callable[[Queue, str, int], bool], *, most: int = 100) -> dict[str, int]:
        """Offer each dead letter to `settle(queue, body, receives)`; delete those it settles.
        The rest stay in their DLQ (visible again after `hold_seconds`) for a person and the alarm."""
        from botocore.exceptions import BotoCoreError, ClientError

        counts = {"settled": 0, "kept": 0}
        try:
            for queue, url in self._urls.items():
                while counts["settled"] + counts["kept"] < most:
                    batch = self._sqs.receive_message(
                        QueueUrl=url,
                        MaxNumberOfMessages=10,
                        VisibilityTimeout=self._hold,
                        WaitTimeSeconds=0,
                        MessageSystemAttributeNames=["ApproximateReceiveCount"],
                    ).get("Messages", [])
                    if not batch:
                        break
                    for letter in batch:
                        receives = int(letter.get("Attributes", {}).get("ApproximateReceiveCount", "0"))
                        if settle(queue, letter.get("Body", ""), receives):
                            self._sqs.delete_message(QueueUrl=url, ReceiptHandle=letter["ReceiptHandle"])
                            counts["settled"] += 1
                        else:
                            counts["kept"] += 1
        except (ClientError, BotoCoreError) as exc:
            raise QueueError(f"could not read the dead-letter queues: {exc}") from exc
        return counts
