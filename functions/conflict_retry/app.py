"""Conflict queue -> classify the 409 -> retry now, wait for telephony, or finish."""

import gc

gc.disable()  # until the first answer: importing and building it allocate ~100k objects (coldstart.py)

from typing import Any

from aws_lambda_powertools import Logger

from wfm_publish.coldstart import first_answer_uncollected
from wfm_publish.consumer import consume
from wfm_publish.queues import Queue
from wfm_publish.services import services

logger = Logger()


@first_answer_uncollected
@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return consume(services().pipeline, Queue.CONFLICT, event, context)
