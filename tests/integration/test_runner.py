"""The local runner over a real moto server: API Gateway proxy events, SQS batches with partial
failures and a DLQ, DelaySeconds, EventBridge Scheduler input. Uses the fixture template and the tiny
functions in tests/fixtures/runner/."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from wfm_publish_local.runner.crash import CrashPlan
from wfm_publish_local.stack import LocalStack

pytestmark = pytest.mark.integration

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "runner"
TEMPLATE = FIXTURE / "template.yaml"


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    """API front + functions; no SQS polling (the SQS tests start their own stacks)."""
    with LocalStack(TEMPLATE, poll=[]) as running:
        yield running


@pytest.fixture
def sqs_stack() -> Iterator[LocalStack]:
    """Fast redelivery (visibility_timeout=1); polling is started by the test once its messages are
    on the queue, so the first batch holds them all."""
    with LocalStack(TEMPLATE, visibility_timeout=1, poll=[]) as running:
        yield running


def _item(stack: LocalStack, message_id: str) -> dict[str, Any] | None:
    found = stack.client("dynamodb").get_item(
        TableName=stack.table_name, Key={"pk": {"S": f"msg#{message_id}"}}
    )
    return found.get("Item")


def _attempts(stack: LocalStack, message_id: str) -> int:
    item = _item(stack, message_id)
    return int(item["attempts"]["N"]) if item else 0


# ---------------------------------------------------------------- API Gateway front


def test_post_becomes_a_rest_proxy_event_and_the_answer_goes_back(stack: LocalStack) -> None:
    response = requests.post(
        f"{stack.api_url}/items?x=1&x=2&y=",
        json={"scheduleId": "s-1"},
        headers={"Idempotency-Key": "key-1", "X-Multi": "a"},
        timeout=10,
    )
    assert response.status_code == 201
    # headers and multiValueHeaders of the proxy response both reach the client
    assert response.headers["X-Single"] == "one"
    assert response.raw.headers.getlist("Set-Cookie") == ["a=1", "b=2"]
    echo = response.json()
    event = echo["event"]
    assert event["resource"] == "/items"
    assert event["path"] == "/items"
    assert event["httpMethod"] == "POST"
    assert event["pathParameters"] is None
    assert event["stageVariables"] is None
    assert event["headers"]["Idempotency-Key"] == "key-1"
    assert event["multiValueHeaders"]["Idempotency-Key"] == ["key-1"]
    assert event["headers"]["X-Forwarded-For"] == "127.0.0.1"
    assert event["headers"]["X-Forwarded-Proto"] == "http"
    assert event["headers"]["X-Amzn-Trace-Id"].startswith("Root=1-")
    assert event["queryStringParameters"] == {"x": "2", "y": ""}
    assert event["multiValueQueryStringParameters"] == {"x": ["1", "2"], "y": [""]}
    assert json.loads(event["body"]) == {"scheduleId": "s-1"}
    assert event["isBase64Encoded"] is False
    context = event["requestContext"]
    assert context["stage"] == "dev"  # PublishApi-style StageName: !Ref Stage
    assert context["httpMethod"] == "POST"
    assert context["resourcePath"] == "/items"
    assert context["path"] == "/dev/items"
    assert context["identity"]["sourceIp"] == "127.0.0.1"
    assert context["requestId"] == response.headers["x-amzn-RequestId"]
    assert isinstance(context["requestTimeEpoch"], int)
    lambda_context = echo["context"]
    assert lambda_context["function_name"].startswith("wfm-publish-local-ApiFunction")
    assert lambda_context["memory_limit_in_mb"] == 256
    assert lambda_context["invoked_function_arn"].endswith(":function:" + lambda_context["function_name"])
    assert lambda_context["aws_request_id"]
    assert 0 < lambda_context["remaining_ms"] <= 10_000
    assert echo["layer"] == "fixture-layer"  # the layer's ContentUri is on sys.path


def test_chunked_request_body(stack: LocalStack) -> None:
    response = requests.post(f"{stack.api_url}/items", data=iter([b'{"a":', b" 1}"]), timeout=10)
    assert response.status_code == 201
    assert json.loads(response.json()["event"]["body"]) == {"a": 1}


def test_path_parameters_and_resource(stack: LocalStack) -> None:
    response = requests.get(f"{stack.api_url}/items/job-42", timeout=10)
    assert response.status_code == 200
    event = response.json()["event"]
    assert event["resource"] == "/items/{itemId}"
    assert event["pathParameters"] == {"itemId": "job-42"}
    assert event["body"] is None
    assert event["queryStringParameters"] is None


def test_unknown_route_is_403_missing_authentication_token(stack: LocalStack) -> None:
    for method, path in (("GET", "/nope"), ("DELETE", "/items"), ("GET", "/items/a/b")):
        response = requests.request(method, f"{stack.api_url}{path}", timeout=10)
        assert response.status_code == 403, (method, path)
        assert response.json() == {"message": "Missing Authentication Token"}


def test_handler_exception_or_malformed_answer_is_502(stack: LocalStack) -> None:
    before = stack.errors["ApiFunction"]
    response = requests.post(f"{stack.api_url}/special/boom", timeout=10)
    assert response.status_code == 502
    assert response.json() == {"message": "Internal server error"}
    assert stack.errors["ApiFunction"] == before + 1
    response = requests.get(f"{stack.api_url}/special/malformed", timeout=10)
    assert response.status_code == 502
    assert response.json() == {"message": "Internal server error"}


def test_base64_answer_is_decoded(stack: LocalStack) -> None:
    response = requests.put(f"{stack.api_url}/special/binary", data=b"\xff\xfe", timeout=10)
    assert response.status_code == 200
    assert response.content == b"\x00\x01\xfe\xff"
    assert response.headers["Content-Type"] == "application/octet-stream"


def test_environment_is_resolved_from_the_template(stack: LocalStack) -> None:
    env = requests.get(f"{stack.api_url}/items/x", timeout=10).json()["env"]
    assert env["TABLE_NAME"] == stack.table_name
    assert env["WORK_QUEUE_URL"] == stack.queue_url("WorkQueue")
    assert env["SECRET_ID"] == stack.secret_arn("FixtureSecret")
    assert env["GREETING"] == "hello, dev"  # !Sub with a parameter default
    assert env["MODE"] == "lenient"  # !If on a condition
    assert os.environ["AWS_ENDPOINT_URL"] == stack.endpoint_url
    secret = stack.client("secretsmanager").get_secret_value(SecretId=stack.secret_arn("FixtureSecret"))
    generated = json.loads(secret["SecretString"])
    assert generated["clientId"] == "set-me"
    assert generated["clientSecret"]


def test_fire_schedule_delivers_the_input(stack: LocalStack) -> None:
    before = stack.invocations["ApiFunction"]
    result = stack.fire_schedule("ApiFunction")
    scheduled = result["scheduled"]
    assert {k: scheduled[k] for k in ("source", "businessUnitIds", "weeksAhead")} == {
        "source": "weekly",
        "businessUnitIds": "all",
        "weeksAhead": 1,
    }
    assert scheduled["at"].endswith("Z")  # <aws.scheduler.scheduled-time> filled in
    assert stack.invocations["ApiFunction"] == before + 1


def test_overrides_and_the_environment_is_restored() -> None:
    saved = os.environ.get("AWS_ENDPOINT_URL")
    with LocalStack(
        TEMPLATE,
        parameter_overrides={"Stage": "prod", "Greeting": "hi"},
        environment_overrides={"EXTRA": "1"},
        secret_values={"FixtureSecret": '{"clientId":"c","clientSecret":"s"}'},
        poll=[],
    ) as prod:
        echo = requests.get(f"{prod.api_url}/items/x", timeout=10).json()
        assert echo["env"]["GREETING"] == "hi, prod"
        assert echo["env"]["MODE"] == "strict"
        assert echo["event"]["requestContext"]["stage"] == "prod"
        assert os.environ["EXTRA"] == "1"
        secret = prod.client("secretsmanager").get_secret_value(SecretId=prod.secret_arn("FixtureSecret"))
        assert json.loads(secret["SecretString"]) == {"clientId": "c", "clientSecret": "s"}
    assert "EXTRA" not in os.environ
    assert os.environ.get("AWS_ENDPOINT_URL") == saved


# ---------------------------------------------------------------- SQS event source


def test_partial_batch_failure_deletes_the_others_and_the_failure_reaches_the_dlq(
    sqs_stack: LocalStack,
) -> None:
    stack = sqs_stack
    sqs = stack.client("sqs")
    sqs.send_message_batch(
        QueueUrl=stack.queue_url("WorkQueue"),
        Entries=[
            {"Id": "1", "MessageBody": json.dumps({"id": "ok-1"})},
            {"Id": "2", "MessageBody": json.dumps({"id": "bad", "fail": True})},
            {
                "Id": "3",
                "MessageBody": json.dumps({"id": "ok-2"}),
                "MessageAttributes": {"kind": {"DataType": "String", "StringValue": "test"}},
            },
        ],
    )
    stack.start_polling("WorkerFunction")
    dead = stack.wait_until(
        lambda: stack.dlq_messages("WorkQueue"), timeout=10, message="a message in WorkDLQ"
    )
    assert [json.loads(m["body"])["id"] for m in dead] == ["bad"]
    # maxReceiveCount is 2: the failing record was delivered twice, then moved to the DLQ
    assert _attempts(stack, "bad") == 2
    # the others were in the same batch, processed once and deleted, not redelivered
    assert _attempts(stack, "ok-1") == 1
    assert _attempts(stack, "ok-2") == 1
    first = json.loads(_item(stack, "ok-1")["lastRecord"]["S"])  # type: ignore[index]
    assert int(_item(stack, "ok-1")["batchSize"]["N"]) == 3  # type: ignore[index]
    assert first["eventSource"] == "aws:sqs"
    assert first["eventSourceARN"] == stack.queue_arn("WorkQueue")
    assert first["awsRegion"] == "us-east-1"
    assert first["md5OfBody"]
    assert first["receiptHandle"]
    assert set(first["attributes"]) >= {
        "ApproximateReceiveCount",
        "SentTimestamp",
        "SenderId",
        "ApproximateFirstReceiveTimestamp",
    }
    tagged = json.loads(_item(stack, "ok-2")["lastRecord"]["S"])  # type: ignore[index]
    assert tagged["messageAttributes"]["kind"] == {
        "stringValue": "test",
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": "String",
    }
    bad = json.loads(_item(stack, "bad")["lastRecord"]["S"])  # type: ignore[index]
    assert bad["attributes"]["ApproximateReceiveCount"] == "2"
    assert stack.queue_depth("WorkQueue") == {"visible": 0, "in_flight": 0, "delayed": 0}
    assert stack.invocations["WorkerFunction"] == 2


def test_an_exception_keeps_the_whole_batch(sqs_stack: LocalStack) -> None:
    stack = sqs_stack
    sqs = stack.client("sqs")
    sqs.send_message_batch(
        QueueUrl=stack.queue_url("WorkQueue"),
        Entries=[
            {"Id": "1", "MessageBody": json.dumps({"id": "fine"})},
            {"Id": "2", "MessageBody": json.dumps({"id": "raises", "raise": True})},
        ],
    )
    stack.start_polling()
    stack.wait_until(lambda: _attempts(stack, "fine") >= 2, timeout=10, message="the batch redelivered")
    # "fine" succeeded but shared its batch with an exception: Lambda deleted nothing
    assert stack.errors["WorkerFunction"] >= 1


def test_delay_seconds_is_honoured(sqs_stack: LocalStack) -> None:
    stack = sqs_stack
    stack.start_polling("WorkerFunction")
    sent = time.time()
    stack.client("sqs").send_message(
        QueueUrl=stack.queue_url("WorkQueue"), MessageBody=json.dumps({"id": "later"}), DelaySeconds=2
    )
    time.sleep(1.0)
    assert _attempts(stack, "later") == 0
    assert stack.queue_depth("WorkQueue")["delayed"] == 1
    stack.wait_until(lambda: _attempts(stack, "later") == 1, timeout=6, message="the delayed message")
    seen = float(_item(stack, "later")["seenAt"]["S"])  # type: ignore[index]
    assert seen - sent >= 2.0


def test_stop_stops_the_pollers(sqs_stack: LocalStack) -> None:
    stack = sqs_stack
    stack.start_polling()
    pollers = list(stack.sources.sqs)
    assert pollers
    assert all(p.running for p in pollers)
    started = time.monotonic()
    stack.stop_polling()
    assert time.monotonic() - started < 2
    assert stack.sources.sqs == []
    stack.wait_until(lambda: not any(p.running for p in pollers), timeout=3, message="poller threads ended")


def test_a_stack_restarts_with_fresh_resources() -> None:
    stack = LocalStack(TEMPLATE, poll=[])
    with stack:
        first = stack.queue_url("WorkQueue")
        endpoint = stack.endpoint_url
    assert os.environ.get("AWS_ENDPOINT_URL") != endpoint
    with stack:
        assert stack.queue_url("WorkQueue") != first
        assert requests.get(f"{stack.api_url}/items/x", timeout=10).status_code == 200


# ---------------------------------------------------------------- worker crashes (issue 9)


def test_a_crashed_invocation_is_a_dead_lambda_its_record_comes_back_and_reaches_the_dlq() -> None:
    """Every invocation dies at point 1 or 2: before its AWS call (nothing written) or after it (the
    write committed, nothing after it). Either way the record comes back after the visibility
    timeout, and after maxReceiveCount (2) receives it is in the DLQ."""
    plan = CrashPlan({"WorkerFunction": 1.0}, seed=4, most_points=2)
    with LocalStack(TEMPLATE, visibility_timeout=1, poll=[], crash=plan) as stack:
        stack.client("sqs").send_message(
            QueueUrl=stack.queue_url("WorkQueue"), MessageBody=json.dumps({"id": "doomed"})
        )
        stack.client("sqs").list_queues()  # the test's own calls never die
        stack.start_polling("WorkerFunction")
        dead = stack.wait_until(lambda: stack.dlq_messages("WorkQueue"), timeout=15, message="the DLQ")
        assert [json.loads(m["body"])["id"] for m in dead] == ["doomed"]
        assert stack.invocations["WorkerFunction"] == stack.errors["WorkerFunction"] == 2
        assert plan.crashes == {"WorkerFunction": 2} and sum(plan.points.values()) == 2
        assert _attempts(stack, "doomed") == plan.points["after"]  # a death after the call kept its write
        assert stack.redeliveries["WorkerFunction"] == 1
    # the hook leaves with the stack: the session's clients made later never die
    assert not plan._installed


def test_crash_rates_are_checked() -> None:
    with pytest.raises(ValueError, match=r"within 0\.\.1"):
        CrashPlan({"WorkerFunction": 1.5})
