"""Feeds an SQS batch to the pipeline, reporting only the records that must come back."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from wfm_publish.models import JobMessage
from wfm_publish.queues import Queue
from wfm_publish.services import services


def consume(queue: Queue, event: dict[str, Any], context: Any) -> dict[str, Any]:
    """A record that raises is reported as a batch item failure: SQS redelivers it after the
    visibility timeout, and after maxReceiveCount it lands in the queue's DLQ."""

    def handle(record: SQSRecord) -> None:
        # A body that is not a job message raises here: a poison message, bound for the DLQ.
        services().pipeline.process(queue, JobMessage.model_validate_json(record.body))

    processor = BatchProcessor(event_type=EventType.SQS)
    return dict(
        process_partial_response(event=event, record_handler=handle, processor=processor, context=context)
    )


def settle_dead_letters(source: str, event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Messages that failed maxReceiveCount times: their jobs end FAILED with the reason, so no job
    is silently dropped. A body that is not a job message stays in the DLQ (and its alarm fires)."""

    def handle(record: SQSRecord) -> None:
        message = JobMessage.model_validate_json(record.body)
        receives = record.attributes.approximate_receive_count
        why = f"the {message.step.value} step failed {receives} times; its message reached the {source} DLQ"
        services().pipeline.abandon(message, why)

    processor = BatchProcessor(event_type=EventType.SQS)
    return dict(
        process_partial_response(event=event, record_handler=handle, processor=processor, context=context)
    )
