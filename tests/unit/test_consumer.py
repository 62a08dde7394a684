"""The SQS consumer: records are not started when the invocation is close to its timeout; those are
handed back as batch item failures (SQS redelivers them), the others are processed as usual."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from wfm_publish import consumer
from wfm_publish.genesys import DEFAULT_TIMEOUT
from wfm_publish.models import JobMessage, Step
from wfm_publish.queues import Queue


@dataclass
class FakeContext:
    """A Lambda context on a fake clock: each step the pipeline runs moves it forward."""

    timeout_ms: int
    elapsed_ms: int = 0

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self.timeout_ms - self.elapsed_ms)


@dataclass
class FakePipeline:
    context: FakeContext
    step_ms: int
    processed: list[str] = field(default_factory=list)

    def process(self, queue: Queue, message: JobMessage) -> None:
        self.context.elapsed_ms += self.step_ms
        self.processed.append(message.job_id)


class FakeServices:
    def __init__(self, pipeline: FakePipeline) -> None:
        self.pipeline = pipeline


def batch(count: int, poison: set[int] | None = None) -> dict[str, Any]:
    records = []
    for i in range(count):
        body = (
            "not a job message"
            if i in (poison or set())
            else json.dumps({"jobId": f"job-{i}", "ticket": f"t-{i}", "step": Step.VALIDATE.value})
        )
        records.append(
            {
                "messageId": f"m-{i}",
                "receiptHandle": f"r-{i}",
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:validation",
                "awsRegion": "us-east-1",
            }
        )
    return {"Records": records}


def run(
    monkeypatch: pytest.MonkeyPatch, context: FakeContext | None, step_ms: int, event: dict[str, Any]
) -> tuple[list[str], list[str]]:
    pipeline = FakePipeline(context or FakeContext(10**9), step_ms)
    monkeypatch.setattr(consumer, "services", lambda: FakeServices(pipeline))
    answer = consumer.consume(Queue.VALIDATION, event, context)
    failed = [f["itemIdentifier"] for f in answer["batchItemFailures"]]
    return pipeline.processed, failed


def test_the_margin_is_three_genesys_reads() -> None:
    assert 3 * DEFAULT_TIMEOUT[1] == consumer.STEP_MARGIN_SECONDS


def test_records_not_started_near_the_timeout_are_handed_back(monkeypatch: pytest.MonkeyPatch) -> None:
    # 30 s function: the margin is capped at half of it (15 s). Steps of 6 s: 30 -> 24 -> 18 -> 12 s left.
    processed, failed = run(monkeypatch, FakeContext(30_000), 6_000, batch(10))
    assert processed == ["job-0", "job-1", "job-2"]
    assert failed == [f"m-{i}" for i in range(3, 10)]


def test_a_long_timeout_keeps_the_full_margin(monkeypatch: pytest.MonkeyPatch) -> None:
    # 900 s function (a margin of 30 s), 100 s steps: the 10th record would start with 0 s left.
    # With 120 s steps the 8th starts with 60 s left; the 9th would with 0.
    processed, failed = run(monkeypatch, FakeContext(900_000), 100_000, batch(10))
    assert len(processed) == 9 and failed == ["m-9"]
    processed, failed = run(monkeypatch, FakeContext(900_000), 120_000, batch(10))
    assert len(processed) == 8 and failed == ["m-8", "m-9"]


def test_the_margin_is_at_most_half_the_invocation_so_the_first_record_starts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 1 s left when invoked (a margin of 0.5 s, not 30 s): the first record runs, then 0.4 s is left.
    processed, failed = run(monkeypatch, FakeContext(1_000), 600, batch(3))
    assert processed == ["job-0"]
    assert failed == ["m-1", "m-2"]


def test_with_time_to_spare_every_record_runs_and_poison_still_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    processed, failed = run(monkeypatch, FakeContext(30_000), 100, batch(5, poison={2}))
    assert processed == ["job-0", "job-1", "job-3", "job-4"]
    assert failed == ["m-2"]
    processed, failed = run(monkeypatch, None, 100, batch(3))  # no context (a direct call): no limit
    assert processed == ["job-0", "job-1", "job-2"] and failed == []
