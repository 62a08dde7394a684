"""Validation and conflict DLQs -> end each stranded job FAILED with the reason (never silently dropped)."""

from typing import Any

from aws_lambda_powertools import Logger

from wfm_publish.consumer import settle_dead_letters

logger = Logger()


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    source = (event.get("Records") or [{}])[0].get("eventSourceARN", "").rsplit(":", 1)[-1] or "unknown"
    return settle_dead_letters(source, event, context)
