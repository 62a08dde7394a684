"""WeeklyQueue -> one business unit's week, its schedule, its job (the weekly run, fanned out)."""

from typing import Any

from aws_lambda_powertools import Logger

from wfm_publish.services import services
from wfm_publish.weekly import take_units

logger = Logger()


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    records = [(r["messageId"], r["body"]) for r in event.get("Records", [])]
    return take_units(services(), records)
