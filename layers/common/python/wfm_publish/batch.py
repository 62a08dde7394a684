"""Partial batch responses (ReportBatchItemFailures) for SQS and DynamoDB stream batches.

A plain loop over `Records` with the semantics of Powertools' BatchProcessor, which the consumer and
the notifier used before: each record that raises is a batch item failure, and a batch whose every
record failed raises (the invocation fails, the batch comes back whole). Not the utility itself:
importing it and its event data classes cost each of those functions ~35 ms of its cold start.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any


class BatchFailed(Exception):
    """Every record of the batch failed: the invocation fails and the batch comes back whole, as with
    Powertools' BatchProcessingError (same message; its text holds each record's traceback)."""

    def __init__(self, errors: Sequence[Exception]) -> None:
        super().__init__(
            f"All records failed processing. {len(errors)} individual errors logged separately below."
        )
        self.errors = list(errors)

    def __str__(self) -> str:
        return "\n".join(
            [f"{super().__str__()}\n", *("".join(traceback.format_exception(e)) for e in self.errors)]
        )


def partial_batch(
    event: Mapping[str, Any],
    handle: Callable[[Mapping[str, Any]], None],
    identifier: Callable[[Mapping[str, Any]], str],
) -> dict[str, Any]:
    """`handle` each of the event's records in order; those that raise are reported by `identifier`
    (SQS: the message id; a DynamoDB stream: the sequence number), so only they come back. All failed:
    BatchFailed. No records at all is not a batch event (Lambda never sends one): a ValueError."""
    records = event.get("Records")
    if not records or not isinstance(records, list):
        raise ValueError("Unexpected batch event type: no Records")
    errors: list[Exception] = []
    failed: list[dict[str, str]] = []
    for record in records:
        try:
            handle(record)
        except Exception as error:
            errors.append(error)
            failed.append({"itemIdentifier": identifier(record)})
    if errors and len(errors) == len(records):
        raise BatchFailed(errors)
    return {"batchItemFailures": failed}
