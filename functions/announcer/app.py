"""The jobs table's stream (a job item whose status changed) -> one event per change on the default
EventBridge bus (source wfm-publish, detail-type "Publish Job State Change")."""

from __future__ import annotations

import gc

gc.disable()  # until the first answer: importing and building it allocate ~100k objects (coldstart.py)

from typing import Any

from aws_lambda_powertools import Logger

from wfm_publish import metrics
from wfm_publish.coldstart import first_answer_uncollected
from wfm_publish.services import services

logger = Logger()


@first_answer_uncollected
@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    # ReportBatchItemFailures: Lambda retries from the first failed record (OnFailure: AnnouncerDLQ).
    failed = services().announcer.announce(event.get("Records", []))
    return {"batchItemFailures": [{"itemIdentifier": number} for number in failed]}
