"""EventBridge Scheduler: the payload it delivers to a Lambda target for a ScheduleV2 event."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any

_CONTEXT_ATTRIBUTE = re.compile(
    r"<aws\.scheduler\.(schedule-arn|scheduled-time|execution-id|attempt-number)>"
)


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
