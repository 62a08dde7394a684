"""The jobs table's stream (a job's status became PUBLISHED, FAILED or CANCELLED) -> ServiceNow."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord

from wfm_publish.services import services
from wfm_publish.store import job_from_item

logger = Logger()


def _notify(record: DynamoDBRecord) -> None:
    # A record that raises is reported by its sequence number: Lambda retries from it (bisecting
    # the batch), and after MaximumRetryAttempts sends it to NotifierDLQ.
    change = record.dynamodb
    if record.raw_event.get("eventName") == "REMOVE":
        services().notifier.lost(job_from_item((change.old_image if change else None) or {}))
        return
    services().notifier.notify(job_from_item((change.new_image if change else None) or {}))


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    processor = BatchProcessor(event_type=EventType.DynamoDBStreams)
    return dict(
        process_partial_response(event=event, record_handler=_notify, processor=processor, context=context)
    )
