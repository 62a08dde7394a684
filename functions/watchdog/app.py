"""Every 2 minutes: jobs whose next step is overdue (nothing in flight will move them) -> moved on."""

import gc

gc.disable()  # until the first answer: importing and building it allocate ~100k objects (coldstart.py)

from dataclasses import asdict
from typing import Any

from aws_lambda_powertools import Logger

from wfm_publish import metrics
from wfm_publish.coldstart import first_answer_uncollected
from wfm_publish.services import services
from wfm_publish.watchdog import rescue_overdue

logger = Logger()


@first_answer_uncollected
@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, int]:
    wiring = services()
    found = rescue_overdue(wiring.store, wiring.transitions, wiring.clock)
    metrics.count(metrics.STUCK_JOBS, found.found)
    logger.info("watchdog swept", extra=asdict(found))
    return asdict(found)
