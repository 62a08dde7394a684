"""Every job transition, on the default EventBridge bus, for whoever wants to see the publish window.

The announcer reads the jobs table's stream, filtered to a job item whose status changed (template.yaml),
and puts one event per change, shaped like an AWS service event:

    {"source": "wfm-publish", "detail-type": "Publish Job State Change",
     "detail": {"publishId", "scheduleId", "businessUnitId", "status", "previousStatus", "reasonCode",
                "at", "version"}}

A consumer matches on `source` and `detail.status` with an EventBridge rule (docs/servicenow.md). Delivery
is at least once: a retried stream batch can put an event again, so `publishId` + `version` (the job's
version after the change; every write bumps it) identifies a change for a consumer that must not act twice.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from wfm_publish.clock import iso
from wfm_publish.models import Job

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient

logger = Logger(child=True)

SOURCE = "wfm-publish"
DETAIL_TYPE = "Publish Job State Change"
PUT_LIMIT = 10  # entries per PutEvents call


def change(record: Mapping[str, Any], bus: str = "default") -> dict[str, Any] | None:
    """The PutEvents entry for one stream record, or None when its job's status did not change (the
    filter passes only changes; this holds without it too)."""
    dynamodb = record.get("dynamodb") or {}
    new, old = dynamodb.get("NewImage") or {}, dynamodb.get("OldImage") or {}
    if "doc" not in new:
        return None
    previous = old.get("status", {}).get("S")
    job = Job.model_validate_json(str(new["doc"]["S"]))
    if previous == job.status.value:
        return None
    detail = {
        "publishId": job.job_id,
        "scheduleId": job.schedule_id,
        "businessUnitId": job.business_unit_id,
        "status": job.status.value,
        "previousStatus": previous,
        "reasonCode": job.reason_code.value if job.reason_code else None,
        "at": iso(job.updated_at),
        "version": job.version,
    }
    return {
        "Source": SOURCE,
        "DetailType": DETAIL_TYPE,
        "Detail": json.dumps(detail),
        "Time": datetime.fromtimestamp(job.updated_at, UTC),  # the event's `time`: when it changed
        "EventBusName": bus,
    }


class Announcer:
    def __init__(self, events: EventBridgeClient, bus: str = "default") -> None:
        self._events = events
        self._bus = bus

    def announce(self, records: Sequence[Mapping[str, Any]]) -> list[str]:
        """Put the changes of `records` (stream records, in order). Returns the sequence numbers to
        retry: from the first record whose event was not accepted to the end of the batch, since Lambda
        retries a shard from its first failed record (the ones after it come again anyway)."""
        pending = [(r, change(r, self._bus)) for r in records]
        numbers = [str(r["dynamodb"]["SequenceNumber"]) for r in records]
        entries = [(i, e) for i, (_, e) in enumerate(pending) if e is not None]
        for start in range(0, len(entries), PUT_LIMIT):
            chunk = entries[start : start + PUT_LIMIT]
            failed_at = self._put([e for _, e in chunk])
            if failed_at is not None:
                first = chunk[failed_at][0]
                logger.warning("events not accepted; the stream retries them", extra={"from": first})
                return numbers[first:]
        return []

    def _put(self, entries: list[dict[str, Any]]) -> int | None:
        """Index of the first entry EventBridge did not accept, or None when it took them all."""
        from botocore.exceptions import BotoCoreError, ClientError

        from wfm_publish import metrics

        try:
            answer = self._events.put_events(Entries=entries)  # type: ignore[arg-type]
        except (ClientError, BotoCoreError):
            logger.exception("PutEvents failed")
            metrics.count(metrics.EVENTS_FAILED, len(entries))
            return 0
        results = answer.get("Entries", [])
        failed = [i for i, result in enumerate(results) if result.get("ErrorCode")]
        metrics.count(metrics.EVENTS_PUT, len(entries) - len(failed))
        if failed:
            metrics.count(metrics.EVENTS_FAILED, len(failed))
            return failed[0]
        return None
