"""Feeds an SQS batch to the pipeline, reporting only the records that must come back."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from pydantic import ValidationError

from wfm_publish.models import JobMessage
from wfm_publish.queues import Queue
from wfm_publish.services import services

logger = Logger(child=True)


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


def sweep_dead_letters() -> dict[str, int]:
    """Messages that failed maxReceiveCount times: each job whose current message it is ends FAILED
    (PROCESSING_FAILED, with the step and the count), so no job waits forever and ServiceNow hears of
    it. A letter whose job already moved on (or ended) is obsolete and goes. A body that is not a job
    message stays in its DLQ for a person (the DLQ alarm fires)."""
    pipeline = services().pipeline

    def settle(queue: Queue, body: str, receives: int) -> bool:
        try:
            message = JobMessage.model_validate_json(body)
        except ValidationError:
            logger.error("unreadable dead letter kept", extra={"queue": queue.value, "body": body[:200]})
            return False
        step, dlq = message.step.value, queue.value
        why = f"the {step} step failed {receives} times; its message went to the {dlq} DLQ"
        ended = pipeline.abandon(message, why)
        logger.warning("dead letter settled", extra={"job_id": message.job_id, "job_ended_now": ended})
        return True

    counts = services().dead_letters.sweep(settle)
    logger.info("dead letters swept", extra=counts)
    return counts
