"""Feeds an SQS batch to the pipeline, reporting only the records that must come back."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from pydantic import ValidationError

from wfm_publish.batch import partial_batch
from wfm_publish.models import JobMessage
from wfm_publish.queues import DeadLetters, Queue

if TYPE_CHECKING:
    from wfm_publish.pipeline import Pipeline

logger = Logger(child=True)

# The Genesys read timeout (wfm_publish.genesys.DEFAULT_TIMEOUT; not imported here, which would pull
# requests into every cold start): a step that makes three slow reads takes about three of these.
GENESYS_READ_TIMEOUT_SECONDS = 10.0
STEP_MARGIN_SECONDS = 3 * GENESYS_READ_TIMEOUT_SECONDS


class RecordNotStarted(Exception):
    """Raised for a record left alone because the invocation is close to its timeout: reported as a
    batch item failure, so SQS redelivers it after the visibility timeout."""


def consume(pipeline: Pipeline, queue: Queue, event: dict[str, Any], context: Any) -> dict[str, Any]:
    """A record that raises is reported as a batch item failure: SQS redelivers it after the
    visibility timeout, and after maxReceiveCount it lands in the queue's DLQ.

    A record is started only while enough time remains to finish it: a batch that ran into the
    function's timeout would fail as a whole (every record redelivered, the finished ones too, and the
    one cut mid-step left to its ticket). The margin is the longest a step takes (STEP_MARGIN_SECONDS),
    at most half the time the invocation had when it began: a short-timeout function still runs a few
    records per batch, and the first record always starts (else a batch could never make progress).
    A record handed back uses one of its maxReceiveCount receives."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    margin_ms = STEP_MARGIN_SECONDS * 1000
    if callable(remaining):
        margin_ms = min(margin_ms, remaining() / 2)
    started = 0
    stopped_at: int | None = None

    def handle(record: Mapping[str, Any]) -> None:
        nonlocal started, stopped_at
        if stopped_at is not None or (callable(remaining) and remaining() < margin_ms):
            # Once one record is left, every later one is too: the batch keeps its order.
            if stopped_at is None:
                stopped_at = started
                logger.warning(
                    "near the function timeout: leaving the rest of the batch for redelivery",
                    extra={"started": started, "remaining_ms": remaining() if callable(remaining) else None},
                )
            raise RecordNotStarted(f"not started: under {margin_ms:.0f} ms of the invocation remained")
        started += 1
        # A body that is not a job message raises here: a poison message, bound for the DLQ.
        pipeline.process(queue, JobMessage.model_validate_json(record["body"]))

    return partial_batch(event, handle, lambda record: str(record["messageId"]))


def sweep_dead_letters(pipeline: Pipeline, dead_letters: DeadLetters) -> dict[str, int]:
    """Messages that failed maxReceiveCount times: each job whose current message it is is settled by
    `Pipeline.abandon`, so no job waits forever and ServiceNow hears of it: FAILED (PROCESSING_FAILED,
    with the step and the count) when nothing of ours is out; when an update of ours may have landed,
    found out first (PUBLISHED, moved on to confirm, or past its deadline ended as the deadline
    decides). A letter whose job already moved on (or ended) is obsolete and goes. A body that is not a
    job message stays in its DLQ for a person (the DLQ alarm fires)."""

    def settle(queue: Queue, body: str, receives: int) -> bool:
        try:
            message = JobMessage.model_validate_json(body)
        except ValidationError:
            logger.error("unreadable dead letter kept", extra={"queue": queue.value, "body": body[:200]})
            return False
        step, dlq = message.step.value, queue.value
        why = f"the {step} step failed {receives} times; its message went to the {dlq} DLQ"
        settled = pipeline.abandon(message, why)
        logger.warning("dead letter settled", extra={"job_id": message.job_id, "job_settled_now": settled})
        return True

    counts = dead_letters.sweep(settle)
    logger.info("dead letters swept", extra=counts)
    return counts
