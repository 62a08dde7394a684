"""Every few minutes: the validation and conflict DLQs -> each stranded job settled (sweep_dead_letters):
FAILED with the reason, or, when an update of ours may have landed, found out first."""

import gc

gc.disable()  # until the first answer: importing and building it allocate ~100k objects (coldstart.py)

from typing import Any

from aws_lambda_powertools import Logger

from wfm_publish import metrics
from wfm_publish.coldstart import first_answer_uncollected
from wfm_publish.consumer import sweep_dead_letters
from wfm_publish.services import services

logger = Logger()


@first_answer_uncollected
@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, int]:
    wiring = services()
    counts = sweep_dead_letters(wiring.pipeline, wiring.dead_letters)
    metrics.count(metrics.DEAD_LETTERS_SETTLED, counts.get("settled", 0))
    metrics.count(metrics.DEAD_LETTERS_KEPT, counts.get("kept", 0))
    return counts
