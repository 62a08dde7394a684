"""EventBridge Scheduler: a function's ScheduleV2 event, and the payload it delivers to the function."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any

from wfm_publish_local.specs import FunctionSpec, ScheduleEvent

_CONTEXT_ATTRIBUTE = re.compile(
    r"<aws\.scheduler\.(schedule-arn|scheduled-time|execution-id|attempt-number)>"
)


def schedule_event(spec: FunctionSpec, name: str | None = None) -> ScheduleEvent:
    """The function's schedule event called `name`, or its only one (KeyError for none or several)."""
    events = [e for e in spec.schedule_events if name in (None, e.name)]
    if not events:
        raise KeyError(f"{spec.logical_id} has no schedule event {name or ''}".rstrip())
    if len(events) > 1:
        raise KeyError(
            f"{spec.logical_id} has several schedule events: name one of {[e.name for e in events]}"
        )
    return events[0]


def schedule_input(
    raw_input: str | None,
    *,
    schedule_arn: str,
    scheduled_time: datetime | None = None,
    attempt: int = 1,
) -> Any:
    """The payload EventBridge Scheduler delivers to a Lambda target: its Input, parsed, with the
    scheduler context attributes (<aws.scheduler.scheduled-time>, …) filled in; {} without Input."""
    if raw_input is None:
        return {}
    moment = (scheduled_time or datetime.now(UTC)).astimezone(UTC)
    values = {
        "schedule-arn": schedule_arn,
        "scheduled-time": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "execution-id": str(uuid.uuid4()),
        "attempt-number": str(attempt),
    }
    return json.loads(_CONTEXT_ATTRIBUTE.sub(lambda m: values[m.group(1)], raw_input))
