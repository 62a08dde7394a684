"""Every few minutes: the validation and conflict DLQs -> each stranded job ends FAILED with the reason."""

from typing import Any

from aws_lambda_powertools import Logger

from wfm_publish.consumer import sweep_dead_letters

logger = Logger()


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, int]:
    return sweep_dead_letters()
