"""WeeklyQueue -> one business unit's week, its schedule, its job (the weekly run, fanned out)."""

import gc

gc.disable()  # until the first answer: importing and building it allocate ~100k objects (coldstart.py)

from typing import Any

from aws_lambda_powertools import Logger

from wfm_publish.coldstart import first_answer_uncollected
from wfm_publish.services import services
from wfm_publish.weekly import Weekly, take_units

logger = Logger()


@first_answer_uncollected
@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    records = [(r["messageId"], r["body"]) for r in event.get("Records", [])]
    s = services()
    weekly = Weekly(s.clock, s.genesys, s.intake, s.weekly_queue, s.weekly_runs, s.weekly_starts_per_minute)
    return take_units(weekly, records)
