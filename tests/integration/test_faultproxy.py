"""The fault proxy in front of moto server, with real boto3 clients: botocore's retries meet each fault
as they would on AWS, and the proxy counts what it injected."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.support.aws import aws_client
from wfm_publish_local.faultproxy import FaultKind, FaultPlan, FaultProxy, FaultRule, identify

pytestmark = pytest.mark.integration


def client(service: str, url: str, mode: str = "legacy") -> Any:
    """botocore's retry modes: legacy (boto3's default) and standard (what AWS_RETRY_MODE may pick)."""
    return aws_client(
        service,
        url,
        Config(retries={"mode": mode}, connect_timeout=2, read_timeout=5),  # type: ignore[typeddict-item]
    )


MODES = pytest.mark.parametrize("mode", ["legacy", "standard"])


@pytest.fixture
def table(moto_url: str) -> Iterator[str]:
    name = f"faults-{uuid.uuid4().hex[:8]}"
    dynamodb = client("dynamodb", moto_url)
    dynamodb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    yield name
    dynamodb.delete_table(TableName=name)


def items(moto_url: str, table: str) -> list[dict[str, Any]]:
    return list(client("dynamodb", moto_url).scan(TableName=table)["Items"])


def put(kind: FaultKind, limit: int | None = 1, **extra: Any) -> FaultRule:
    return FaultRule(kind, 1.0, "dynamodb", {"PutItem"}, limit=limit, **extra)


@MODES
def test_a_put_whose_answer_is_lost_after_commit_is_retried_and_the_item_exists_once(
    moto_url: str, table: str, mode: str
) -> None:
    with FaultProxy(moto_url, [put(FaultKind.LOST_AFTER_COMMIT)]) as proxy:
        client("dynamodb", proxy.url, mode).put_item(
            TableName=table, Item={"pk": {"S": "a"}, "n": {"N": "1"}}
        )
        assert proxy.counts() == {"lost_after_commit": {"dynamodb.PutItem": 1}}
        assert proxy.forwarded[("dynamodb", "PutItem")] == 2  # committed, then committed again by the retry
    assert items(moto_url, table) == [{"pk": {"S": "a"}, "n": {"N": "1"}}]


def test_a_conditional_put_whose_answer_was_lost_meets_its_own_first_attempt(
    moto_url: str, table: str
) -> None:
    """The hazard the store must handle: the retry of a committed conditional write fails its condition."""
    with FaultProxy(moto_url, [put(FaultKind.ERROR_AFTER_COMMIT)]) as proxy:
        with pytest.raises(ClientError) as caught:
            client("dynamodb", proxy.url).put_item(
                TableName=table, Item={"pk": {"S": "b"}}, ConditionExpression="attribute_not_exists(pk)"
            )
        assert caught.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
        assert proxy.counts() == {"error_after_commit": {"dynamodb.PutItem": 1}}
    assert items(moto_url, table) == [{"pk": {"S": "b"}}]


def test_a_5xx_before_forwarding_commits_nothing_and_the_retry_does(moto_url: str, table: str) -> None:
    with FaultProxy(moto_url, [put(FaultKind.ERROR_BEFORE, status=503)]) as proxy:
        client("dynamodb", proxy.url).put_item(
            TableName=table, Item={"pk": {"S": "c"}}, ConditionExpression="attribute_not_exists(pk)"
        )
        assert proxy.counts() == {"error_before": {"dynamodb.PutItem": 1}}
        assert proxy.forwarded[("dynamodb", "PutItem")] == 1
    assert items(moto_url, table) == [{"pk": {"S": "c"}}]


@MODES
@pytest.mark.parametrize("code", ["ProvisionedThroughputExceededException", "ThrottlingException"])
def test_a_throttled_dynamodb_call_is_retried(moto_url: str, table: str, code: str, mode: str) -> None:
    rules = [FaultRule(FaultKind.THROTTLE, 1.0, "dynamodb", {"GetItem"}, throttle_code=code, limit=2)]
    with (
        FaultProxy(moto_url, rules, seed=3)
        if False
        else FaultProxy(moto_url, FaultPlan(rules, seed=3)) as proxy
    ):
        dynamodb = client("dynamodb", proxy.url, mode)
        dynamodb.put_item(TableName=table, Item={"pk": {"S": "d"}})
        assert dynamodb.get_item(TableName=table, Key={"pk": {"S": "d"}})["Item"] == {"pk": {"S": "d"}}
        assert proxy.counts() == {"throttle": {"dynamodb.GetItem": 2}}
        assert proxy.forwarded[("dynamodb", "GetItem")] == 1


@MODES
def test_sqs_throttling_is_retried_and_a_send_whose_answer_is_lost_is_delivered_twice(
    moto_url: str, mode: str
) -> None:
    sqs_direct = client("sqs", moto_url)
    url = sqs_direct.create_queue(QueueName=f"faults-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    rules = [
        FaultRule(FaultKind.THROTTLE, 1.0, "sqs", {"SendMessage"}, limit=1),
        FaultRule(FaultKind.LOST_AFTER_COMMIT, 1.0, "sqs", {"SendMessage"}, limit=1),
    ]
    with FaultProxy(moto_url, rules) as proxy:
        sqs = client("sqs", proxy.url, mode)
        # throttled; the retry is committed and its answer lost; the next retry is committed again
        sqs.send_message(QueueUrl=url, MessageBody="one")
        sqs.send_message(QueueUrl=url, MessageBody="two")  # no fault left
        assert proxy.counts() == {
            "lost_after_commit": {"sqs.SendMessage": 1},
            "throttle": {"sqs.SendMessage": 1},
        }
    bodies = []
    while batch := sqs_direct.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
        bodies += [m["Body"] for m in batch]
        sqs_direct.delete_message_batch(
            QueueUrl=url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)],
        )
    assert sorted(bodies) == ["one", "one", "two"]


def test_a_request_faulted_max_in_a_row_times_goes_through(moto_url: str, table: str) -> None:
    with FaultProxy(moto_url, FaultPlan([put(FaultKind.ERROR_BEFORE, limit=None)], max_in_a_row=2)) as proxy:
        dynamodb = client("dynamodb", proxy.url)
        for key in ("e", "f"):
            dynamodb.put_item(TableName=table, Item={"pk": {"S": key}})
        assert proxy.counts() == {"error_before": {"dynamodb.PutItem": 4}}  # 2 per call, then through
    assert sorted(i["pk"]["S"] for i in items(moto_url, table)) == ["e", "f"]


def test_latency_is_added_and_counted(moto_url: str, table: str) -> None:
    rules = [FaultRule(FaultKind.LATENCY, 1.0, "dynamodb", {"DescribeTable"}, delay=0.3)]
    with FaultProxy(moto_url, FaultPlan(rules, seed=1)) as proxy:
        started = time.monotonic()
        client("dynamodb", proxy.url).describe_table(TableName=table)
        assert time.monotonic() - started >= 0.05  # uniform in 0..0.3 s; seed 1 draws well above 0.05
        assert proxy.counts() == {"latency": {"dynamodb.DescribeTable": 1}}
        assert "latency" in proxy.report() and "dynamodb.DescribeTable" in proxy.report()


def test_the_plan_is_reproducible_from_its_seed() -> None:
    rules = [FaultRule(kind, 0.3, "dynamodb") for kind in (FaultKind.THROTTLE, FaultKind.ERROR_BEFORE)]

    def draws(seed: int) -> list[str | None]:
        plan = FaultPlan(list(rules), seed=seed, max_in_a_row=100)
        out = []
        for i in range(200):
            rule, _ = plan.choose("dynamodb", "PutItem", str(i).encode())
            out.append(rule.kind.value if rule else None)
        return out

    assert draws(5) == draws(5)
    assert draws(5) != draws(6)
    assert 40 < sum(d is not None for d in draws(5)) < 120  # 1 - 0.7 * 0.7 = 51% of 200


def test_requests_are_identified_by_service_and_operation() -> None:
    assert identify({"X-Amz-Target": "DynamoDB_20120810.TransactWriteItems"}, b"") == (
        "dynamodb",
        "TransactWriteItems",
    )
    assert identify({"X-Amz-Target": "AmazonSQS.ReceiveMessage"}, b"") == ("sqs", "ReceiveMessage")
    assert identify({"X-Amz-Target": "DynamoDBStreams_20120810.GetRecords"}, b"") == (
        "dynamodbstreams",
        "GetRecords",
    )
    scoped = {"Authorization": "AWS4-HMAC-SHA256 Credential=testing/20261130/us-east-1/sqs/aws4_request, x"}
    assert identify(scoped, b"Action=SendMessage&QueueUrl=x") == ("sqs", "SendMessage")


def test_only_loopback_and_it_stops_by_itself(moto_url: str) -> None:
    for target in ("http://10.0.0.1:4566", "http://example.com:80", "https://127.0.0.1:4566"):
        with pytest.raises(ValueError, match=r"127\.0\.0\.1"):
            FaultProxy(target)
    proxy = FaultProxy(moto_url, lifetime=0.3).start()
    assert proxy.url.startswith("http://127.0.0.1:")
    requests.get(proxy.url, timeout=2)  # answered (moto's own answer, whatever it is)
    time.sleep(0.8)
    with pytest.raises(requests.ConnectionError):
        requests.get(proxy.url, timeout=2)
    proxy.stop()  # stopping again is harmless
