"""The jobs table's stream (a job ended, or was written while PUBLISHING) -> ServiceNow,
and the job's outcome metrics."""

from __future__ import annotations

import gc

gc.disable()  # until the first answer: importing and building it allocate ~100k objects (coldstart.py)

from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools import Logger

from wfm_publish import metrics
from wfm_publish.batch import partial_batch
from wfm_publish.coldstart import first_answer_uncollected
from wfm_publish.models import JobStatus
from wfm_publish.notifier import Outcome
from wfm_publish.services import services
from wfm_publish.store_items import job_from_item

logger = Logger()


class EarlierRecordFailed(Exception):
    """Not attempted: Lambda retries the shard from the first failed record, this one included."""


def handle_batch(event: dict[str, Any], context: Any) -> dict[str, Any]:
    failed = False

    def notify(record: Mapping[str, Any]) -> None:
        # A record that raises is reported by its sequence number: Lambda retries from it (bisecting
        # the batch), and after MaximumRetryAttempts sends it to NotifierDLQ. The records after it come
        # again with it, so they are not attempted now: each record is processed, and counted, once.
        nonlocal failed
        change = record.get("dynamodb") or {}
        if failed:
            raise EarlierRecordFailed(str(change.get("SequenceNumber") or ""))
        # The images as the stream holds them ({"S": …}): job_from_item reads that shape.
        if record.get("eventName") == "REMOVE":  # a job removed before it ended
            services().notifier.lost(job_from_item(change.get("OldImage") or {}))
            return
        job = job_from_item(change.get("NewImage") or {})
        # A write that kept the job PUBLISHING tells only the requests that joined in it: it needs the
        # image before the write (read only then: every other record needs one image).
        old = change.get("OldImage") if job.status is JobStatus.PUBLISHING else None
        before = job_from_item(old) if old and "doc" in old else None
        try:
            outcome = services().notifier.notify(job, before)
        except Exception:
            failed = True
            metrics.count(metrics.CALLBACKS_FAILED)
            raise
        if outcome is Outcome.DELIVERED:
            metrics.count(metrics.CALLBACKS_DELIVERED, Kind="end")
        elif outcome is Outcome.PROGRESS_DELIVERED:
            metrics.count(metrics.CALLBACKS_DELIVERED, Kind="progress")
        if job.status.terminal:
            metrics.job_ended(job)  # once per job: only when its end record is done

    # Reported by sequence number: Lambda retries the shard from the first failed record.
    return partial_batch(event, notify, lambda record: str(record["dynamodb"]["SequenceNumber"]))


@first_answer_uncollected
@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return handle_batch(event, context)
