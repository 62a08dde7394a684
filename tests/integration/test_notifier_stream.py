"""The local DynamoDB stream event source (runner.StreamPoller) on moto server's real stream: Lambda's
filtering, batches, bisect on error, partial batch failures, retries and the OnFailure record."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from wfm_publish_local.runner.patterns import filter_matches
from wfm_publish_local.runner.streams import StreamPoller
from wfm_publish_local.specs import StreamEvent
from wfm_publish_local.template import Template

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TERMINAL_FILTER = Template.load(ROOT / "template.yaml").functions["NotifierFunction"].stream_events[0].filters


class FakeFunction:
    """Stands in for a LocalFunction: records each batch and answers as `behaviour` says."""

    logical_id = "NotifierFunction"
    arn = "arn:aws:lambda:us-east-1:123456789012:function:notifier"

    def __init__(self, behaviour: Callable[[list[dict[str, Any]]], Any] | None = None) -> None:
        self.batches: list[list[str]] = []
        self.behaviour = behaviour or (lambda records: {"batchItemFailures": []})

    def invoke(self, event: dict[str, Any]) -> Any:
        records = event["Records"]
        self.batches.append([r["dynamodb"]["Keys"]["pk"]["S"] for r in records])
        return self.behaviour(records)


def source(**changes: Any) -> StreamEvent:
    values: dict[str, Any] = {
        "name": "JobEnded",
        "table": "JobsTable",
        "starting_position": "TRIM_HORIZON",
        "batch_size": 10,
        "maximum_batching_window": 0,
        "maximum_retry_attempts": 2,
        "maximum_record_age": -1,
        "bisect_on_error": True,
        "function_response_types": ("ReportBatchItemFailures",),
        "on_failure": "NotifierDLQ",
        "filters": (),
    }
    return StreamEvent(**(values | changes))


@pytest.fixture
def table(moto_url: str) -> Iterator[tuple[Any, str]]:
    db = boto3.client("dynamodb", endpoint_url=moto_url)
    name = f"jobs-{uuid.uuid4().hex[:8]}"
    description = db.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )["TableDescription"]
    yield db, description["LatestStreamArn"]


def poller(
    moto_url: str, stream_arn: str, function: FakeFunction, failures: list[dict[str, Any]], **changes: Any
) -> StreamPoller:
    streams = boto3.client("dynamodbstreams", endpoint_url=moto_url)
    made = StreamPoller(
        function,  # type: ignore[arg-type]
        source(**changes),
        client=streams,
        stream_arn=stream_arn,
        on_failure=failures.append,
        retry_delay=0.0,
    )
    made._refresh_shards()
    return made


def put(db: Any, name: str, pk: str, status: str) -> None:
    db.put_item(TableName=name, Item={"pk": {"S": pk}, "status": {"S": status}})


def table_name(stream_arn: str) -> str:
    return stream_arn.split(":table/")[1].split("/", maxsplit=1)[0]


# ---------------------------------------------------------------- filters


def record(event: str, pk: str, new: str | None, old: str | None) -> dict[str, Any]:
    image: dict[str, Any] = {"Keys": {"pk": {"S": pk}}}
    if new is not None:
        image["NewImage"] = {"pk": {"S": pk}, "status": {"S": new}}
    if old is not None:
        image["OldImage"] = {"pk": {"S": pk}, "status": {"S": old}}
    return {"eventName": event, "dynamodb": image}


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (record("MODIFY", "job#1", "PUBLISHED", "PUBLISHING"), True),
        (record("MODIFY", "job#1", "FAILED", "WAITING"), True),
        (record("MODIFY", "job#1", "CANCELLED", "QUEUED"), True),
        (record("MODIFY", "job#1", "PUBLISHED", "PUBLISHED"), False),  # the notifier's own note
        (record("MODIFY", "job#1", "WAITING", "QUEUED"), False),
        (record("MODIFY", "job#1", "PUBLISHING", "WAITING"), True),  # progress callbacks
        (record("MODIFY", "job#1", "PUBLISHING", "RETRYING"), True),  # again: told records are skipped
        (record("MODIFY", "job#1", "PUBLISHING", "PUBLISHING"), True),  # a join while publishing
        (record("INSERT", "job#1", "QUEUED", None), False),
        (record("REMOVE", "job#1", None, "PUBLISHED"), False),  # TTL of an ended job: as it should
        (record("REMOVE", "job#1", None, "WAITING"), True),  # a job removed before it ended: never unseen
        (record("MODIFY", "idem#k", "COMPLETED", "IN_PROGRESS"), False),
        (record("MODIFY", "schedule#s", "FAILED", "QUEUED"), False),  # not a job item
        (record("REMOVE", "schedule#s", None, "QUEUED"), False),
    ],
)
def test_the_templates_filter_passes_a_job_becoming_terminal_or_publishing_or_removed_unended(
    event: dict[str, Any], expected: bool
) -> None:
    assert any(filter_matches(pattern, event) for pattern in TERMINAL_FILTER) is expected


def test_filter_operators() -> None:
    assert filter_matches({"a": [{"exists": False}]}, {})
    assert not filter_matches({"a": [{"exists": True}]}, {})
    assert filter_matches({"a": [{"suffix": ".json"}]}, {"a": "x.json"})
    assert filter_matches({"a": [{"numeric": [">", 1, "<=", 3]}]}, {"a": 3})
    assert not filter_matches({"a": [{"numeric": [">", 1, "<=", 3]}]}, {"a": 4})
    assert filter_matches({"a": [{"anything-but": {"prefix": "x"}}]}, {"a": "yes"})
    assert filter_matches({"a": [{"equals-ignore-case": "ABC"}]}, {"a": "abc"})
    assert filter_matches({"a": [None]}, {"a": None})
    assert not filter_matches({"a": [{"anything-but": ["x"]}]}, {})  # a missing field matches nothing


# ---------------------------------------------------------------- delivery


def test_real_format_records_pass_the_filter_in_order(moto_url: str, table: tuple[Any, str]) -> None:
    db, arn = table
    name = table_name(arn)
    put(db, name, "job#a", "QUEUED")
    put(db, name, "idem#k", "COMPLETED")
    put(db, name, "job#a", "PUBLISHING")
    put(db, name, "job#a", "PUBLISHED")
    put(db, name, "job#a", "PUBLISHED")  # noted on the job afterwards
    seen: list[dict[str, Any]] = []

    def keep(records: list[dict[str, Any]]) -> dict[str, Any]:
        seen.extend(records)
        return {"batchItemFailures": []}

    failures: list[dict[str, Any]] = []
    stream = poller(moto_url, arn, FakeFunction(keep), failures, filters=TERMINAL_FILTER)
    assert stream.poll_once() == 5
    progress, only = seen  # into PUBLISHING (progress callbacks), then the end
    assert progress["dynamodb"]["NewImage"]["status"] == {"S": "PUBLISHING"}
    assert only["eventName"] == "MODIFY" and only["eventSource"] == "aws:dynamodb"
    assert only["eventSourceARN"] == arn
    assert only["dynamodb"]["NewImage"]["status"] == {"S": "PUBLISHED"}
    assert only["dynamodb"]["OldImage"]["status"] == {"S": "PUBLISHING"}
    assert isinstance(only["dynamodb"]["ApproximateCreationDateTime"], int)
    assert stream.filtered_out == 3 and failures == []
    assert stream.poll_once() == 0  # the iterator moved on: nothing is delivered twice


def test_a_crash_is_retried_and_then_delivered(moto_url: str, table: tuple[Any, str]) -> None:
    db, arn = table
    put(db, table_name(arn), "job#a", "PUBLISHED")
    crashes = [RuntimeError("ServiceNow 503"), RuntimeError("connection dropped")]

    def flaky(records: list[dict[str, Any]]) -> dict[str, Any]:
        if crashes:
            raise crashes.pop(0)
        return {"batchItemFailures": []}

    failures: list[dict[str, Any]] = []
    function = FakeFunction(flaky)
    poller(moto_url, arn, function, failures).poll_once()
    assert function.batches == [["job#a"]] * 3
    assert failures == []


def test_bisect_isolates_a_poisoned_record_and_its_coordinates_go_to_the_dlq(
    moto_url: str, table: tuple[Any, str]
) -> None:
    db, arn = table
    for key in ("job#1", "job#2", "job#3", "job#4"):
        put(db, table_name(arn), key, "FAILED")

    def poisoned(records: list[dict[str, Any]]) -> dict[str, Any]:
        if any(r["dynamodb"]["Keys"]["pk"]["S"] == "job#3" for r in records):
            raise RuntimeError("cannot deliver job#3")
        return {"batchItemFailures": []}

    failures: list[dict[str, Any]] = []
    function = FakeFunction(poisoned)
    poller(moto_url, arn, function, failures).poll_once()
    assert function.batches == [
        ["job#1", "job#2", "job#3", "job#4"],
        ["job#1", "job#2"],  # splitting costs no retry
        ["job#3", "job#4"],
        ["job#3"],
        ["job#3"],  # retry 1
        ["job#3"],  # retry 2 = MaximumRetryAttempts
        ["job#4"],
    ]
    (failure,) = failures
    info = failure["DDBStreamBatchInfo"]
    assert info["batchSize"] == 1 and info["streamArn"] == arn
    assert info["startSequenceNumber"] == info["endSequenceNumber"]
    assert failure["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert failure["requestContext"]["functionArn"] == FakeFunction.arn
    json.dumps(failure)  # what goes to the SQS destination


def test_a_partial_failure_retries_from_the_first_failed_record(
    moto_url: str, table: tuple[Any, str]
) -> None:
    db, arn = table
    for key in ("job#1", "job#2", "job#3"):
        put(db, table_name(arn), key, "CANCELLED")
    answers = [True]

    def second_fails_once(records: list[dict[str, Any]]) -> dict[str, Any]:
        if answers and len(records) == 3:
            answers.pop()
            return {"batchItemFailures": [{"itemIdentifier": records[1]["dynamodb"]["SequenceNumber"]}]}
        return {"batchItemFailures": []}

    failures: list[dict[str, Any]] = []
    function = FakeFunction(second_fails_once)
    poller(moto_url, arn, function, failures).poll_once()
    assert function.batches == [["job#1", "job#2", "job#3"], ["job#2", "job#3"]]
    assert failures == []


def test_an_invalid_partial_answer_fails_the_whole_batch(moto_url: str, table: tuple[Any, str]) -> None:
    db, arn = table
    put(db, table_name(arn), "job#1", "FAILED")
    failures: list[dict[str, Any]] = []
    function = FakeFunction(
        lambda records: {"batchItemFailures": [{"itemIdentifier": "not-a-sequence-number"}]}
    )
    poller(moto_url, arn, function, failures, maximum_retry_attempts=1).poll_once()
    assert function.batches == [["job#1"], ["job#1"]]
    assert len(failures) == 1


def test_the_sample_event_is_what_the_filter_passes_and_carries_the_job() -> None:
    from wfm_publish.models import Job

    event = json.loads((ROOT / "events" / "ddb_stream_job_ended.json").read_text())
    (sample,) = event["Records"]
    pattern = TERMINAL_FILTER[0]
    assert filter_matches(pattern, sample)
    job = Job.model_validate_json(sample["dynamodb"]["NewImage"]["doc"]["S"])
    assert job.status.value == sample["dynamodb"]["NewImage"]["status"]["S"] == "PUBLISHED"
    assert job.request.callback is not None
