"""Genesys Cloud notifications from the partner event bus (EventBridge rule) -> the jobs table, and
telephony events -> a readiness check at once for the jobs waiting on that Edge or trunk (wake.py).

One event per invocation. The body is never logged: a query result's downloadUrl is a signed URL,
as good as a credential until it expires. A malformed event is dropped (a retry would not mend it);
a table error raises, so EventBridge retries it (RetryPolicy in template.yaml).
"""

from __future__ import annotations

import gc

gc.disable()  # until the first answer: importing and building it allocate ~100k objects (coldstart.py)

from typing import Any

from aws_lambda_powertools import Logger

from wfm_publish import genesys_events, wake
from wfm_publish.coldstart import first_answer_uncollected
from wfm_publish.services import services

logger = Logger()


@first_answer_uncollected
@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    box = services()
    now = box.clock.now()
    woken = wake.on_telephony(event, box.store, box.transitions, now)
    if woken is not None:
        logger.info(
            "telephony event",
            extra={
                "topic": woken.topic,
                "entity_id": woken.entity_id,
                "woken": len(woken.woken),
                "skipped": woken.skipped,
                "event_id": event.get("id"),
            },
        )
        return {"topic": woken.topic, "entityId": woken.entity_id, "woken": woken.woken}
    handled = genesys_events.handle(event, box.store, now)
    logger.info(
        "genesys notification",
        extra={
            "topic": handled.topic,
            "operation_id": handled.operation_id,
            "recorded": handled.recorded,
            "event_id": event.get("id"),
        },
    )
    # A recorded schedule outcome is read by the job's confirm step (Pipeline._confirm).
    return {"topic": handled.topic, "operationId": handled.operation_id, "recorded": handled.recorded}
