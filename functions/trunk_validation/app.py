"""Validation queue (delayed) -> is telephony settled? -> publish, or wait again."""

from typing import Any

from aws_lambda_powertools import Logger

from wfm_publish.consumer import consume
from wfm_publish.queues import Queue

logger = Logger()


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return consume(Queue.VALIDATION, event, context)
