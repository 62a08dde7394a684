"""Partial batch responses: Powertools' BatchProcessor semantics without importing it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from wfm_publish.batch import BatchFailed, partial_batch


def sqs(*bodies: str) -> dict[str, Any]:
    return {"Records": [{"messageId": f"m-{i}", "body": body} for i, body in enumerate(bodies)]}


def handle(seen: list[str]) -> Any:
    def run(record: Mapping[str, Any]) -> None:
        seen.append(record["body"])
        if record["body"].startswith("bad"):
            raise ValueError(f"cannot take {record['body']}")

    return run


def message_id(record: Mapping[str, Any]) -> str:
    return str(record["messageId"])


def test_only_the_records_that_raise_come_back_and_every_record_is_tried() -> None:
    seen: list[str] = []
    answer = partial_batch(sqs("a", "bad-b", "c", "bad-d"), handle(seen), message_id)
    assert seen == ["a", "bad-b", "c", "bad-d"]
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m-1"}, {"itemIdentifier": "m-3"}]}
    assert partial_batch(sqs("a"), handle([]), message_id) == {"batchItemFailures": []}


def test_a_batch_whose_every_record_failed_fails_the_invocation_with_each_traceback() -> None:
    with pytest.raises(BatchFailed) as failed:
        partial_batch(sqs("bad-a", "bad-b"), handle([]), message_id)
    text = str(failed.value)
    assert text.startswith("All records failed processing. 2 individual errors logged separately below.")
    assert "ValueError: cannot take bad-a" in text and "ValueError: cannot take bad-b" in text
    assert [str(e) for e in failed.value.errors] == ["cannot take bad-a", "cannot take bad-b"]


@pytest.mark.parametrize("event", [{}, {"Records": []}, {"Records": {"m-0": {}}}])
def test_an_event_without_records_is_not_a_batch(event: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="no Records"):
        partial_batch(event, handle([]), message_id)
