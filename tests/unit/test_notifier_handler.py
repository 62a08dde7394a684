"""The notifier function's handler: each stream record is processed (and its job counted) once, even when
an earlier record of the batch fails and Lambda retries the shard from it."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.support.handlers import loaded_handler
from wfm_publish.models import Job
from wfm_publish.notifier import Outcome
from wfm_publish_local.runner.function import LambdaContext

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = json.loads((ROOT / "events" / "ddb_stream_job_ended.json").read_text())["Records"][0]


class FakeNotifier:
    def __init__(self, failing: set[str]) -> None:
        self.failing = failing
        self.seen: list[str] = []

    def notify(self, job: Job, before: Job | None = None) -> Outcome:
        self.seen.append(job.job_id)
        if job.job_id in self.failing:
            raise ConnectionError("ServiceNow is down")
        return Outcome.DELIVERED


class FakeServices:
    def __init__(self, notifier: FakeNotifier) -> None:
        self.notifier = notifier


@pytest.fixture
def app() -> Iterator[ModuleType]:
    with loaded_handler("notifier") as module:
        yield module


def record(job_id: str, sequence: int) -> dict[str, Any]:
    out = copy.deepcopy(SAMPLE)
    doc = json.loads(out["dynamodb"]["NewImage"]["doc"]["S"])
    doc["jobId"] = job_id
    out["dynamodb"]["NewImage"]["doc"]["S"] = json.dumps(doc)
    out["dynamodb"]["SequenceNumber"] = str(sequence)
    return out


def run(app: ModuleType, notifier: FakeNotifier, records: list[dict[str, Any]]) -> Any:
    app.services = lambda: FakeServices(notifier)  # type: ignore[attr-defined]
    context = LambdaContext("notifier", 512, "arn:aws:lambda:us-east-1:123456789012:function:n", "r-1", 30)
    return app.handler({"Records": records}, context)


def emitted(out: str) -> list[str]:
    names = []
    for line in out.splitlines():
        if line.startswith('{"_aws"'):
            emf = json.loads(line)
            for metric in emf["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
                values = emf[metric["Name"]]
                names += [metric["Name"]] * (len(values) if isinstance(values, list) else 1)
    return names


def test_records_after_a_failed_one_wait_for_the_retry(
    app: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    notifier = FakeNotifier(failing={"b"})
    answer = run(app, notifier, [record("a", 1), record("b", 2), record("c", 3)])
    assert notifier.seen == ["a", "b"]  # c is not attempted: Lambda retries from b, c with it
    assert answer == {"batchItemFailures": [{"itemIdentifier": "2"}, {"itemIdentifier": "3"}]}
    names = emitted(capsys.readouterr().out)
    assert names.count("CallbacksDelivered") == 1 and names.count("CallbacksFailed") == 1
    assert names.count("JobsEnded") == 2  # a's end, by Status+Reason and by Status; b's not yet

    notifier.failing.clear()  # the retry, from b
    assert run(app, notifier, [record("b", 2), record("c", 3)]) == {"batchItemFailures": []}
    names = emitted(capsys.readouterr().out)
    assert names.count("JobsEnded") == 4 and names.count("CallbacksDelivered") == 2
    assert notifier.seen == ["a", "b", "b", "c"]
