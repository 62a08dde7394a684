"""Genesys Cloud notifications from the partner event bus (EventBridge rule) -> the jobs table.

One event per invocation. The body is never logged: a query result's downloadUrl is a signed URL,
as good as a credential until it expires. A malformed event is dropped (a retry would not mend it);
a table error raises, so EventBridge retries it (RetryPolicy in template.yaml).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

from wfm_publish import genesys_events
from wfm_publish.services import services

logger = Logger()


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    box = services()
    handled = genesys_events.handle(event, box.store, box.clock.now())
    logger.info(
        "genesys notification",
        extra={
            "topic": handled.topic,
            "operation_id": handled.operation_id,
            "recorded": handled.recorded,
            "event_id": event.get("id"),
        },
    )
    # For the integrator: a recorded schedule outcome (store.operation_outcome(operation_id)) is where
    # the job waiting on that operation is finished or advanced, through the job-transition path.
    return {"topic": handled.topic, "operationId": handled.operation_id, "recorded": handled.recorded}
