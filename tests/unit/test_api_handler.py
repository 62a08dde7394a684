"""The publish API's handler in-process: the answers that need a fault to happen (409 in progress, 503,
500), each with the problem body and the Retry-After the docs promise."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

from tests.support.handlers import loaded_handler
from wfm_publish.clock import SystemClock
from wfm_publish.errors import ConfigurationError, QueueError, RequestInProgress, StoreError
from wfm_publish.signature import signed_headers
from wfm_publish_local.demo import SERVICENOW_BODY
from wfm_publish_local.runner.function import LambdaContext

SECRET = "unit-secret"


class Raising:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def accept(self, *_: Any) -> Any:
        raise self.error


class FakeServices:
    def __init__(self, error: Exception) -> None:
        self.intake = Raising(error)
        self.clock = SystemClock()

    def signing_secrets(self) -> list[str]:
        return [SECRET]


@pytest.fixture
def app() -> Iterator[ModuleType]:
    with loaded_handler("publish_trigger") as module:
        yield module


def post(app: ModuleType, error: Exception, sent: dict[str, Any] = SERVICENOW_BODY) -> dict[str, Any]:
    app.services = lambda: FakeServices(error)  # type: ignore[attr-defined]
    body = json.dumps(sent)
    headers = {
        "Content-Type": "application/json",
        "Idempotency-Key": "k-1",
        **signed_headers(SECRET, "POST", "/publishes", body, time.time(), key="k-1"),
    }
    event = {
        "httpMethod": "POST",
        "path": "/publishes",
        "resource": "/publishes",
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "body": body,
        "isBase64Encoded": False,
        "requestContext": {
            "stage": "dev",
            "requestId": "r-1",
            "path": "/dev/publishes",
            "resourcePath": "/publishes",
        },
    }
    context = LambdaContext(
        "publish-trigger", 512, "arn:aws:lambda:us-east-1:123456789012:function:x", "r-1", 30
    )
    answer: dict[str, Any] = app.handler(event, context)
    return answer


@pytest.mark.parametrize(
    ("error", "status", "code", "retry_after"),
    [
        (
            RequestInProgress("a request with Idempotency-Key 'k-1' is in progress"),
            409,
            "REQUEST_IN_PROGRESS",
            True,
        ),
        (StoreError("DynamoDB ProvisionedThroughputExceededException"), 503, "UNAVAILABLE", True),
        (QueueError("SQS unreachable"), 503, "UNAVAILABLE", True),
        (ConfigurationError("JOBS_TABLE is not set"), 500, "MISCONFIGURED", False),
    ],
)
def test_faults_become_problem_answers(
    app: ModuleType, error: Exception, status: int, code: str, retry_after: bool
) -> None:
    answer = post(app, error)
    assert answer["statusCode"] == status
    body = json.loads(answer["body"])
    assert body["code"] == code and body["message"]
    headers = {k.lower(): v for k, v in (answer.get("headers") or {}).items()}
    multi = {k.lower(): v for k, v in (answer.get("multiValueHeaders") or {}).items()}
    assert ("retry-after" in headers or "retry-after" in multi) is retry_after
    assert "DynamoDB" not in body["message"] and "JOBS_TABLE" not in body["message"]  # internals stay in logs


def test_a_schedule_id_with_a_trailing_newline_is_a_400(app: ModuleType) -> None:
    """`^...$` with re.match let "sched-1\\n" through to intake (and into keys and Genesys paths)."""
    answer = post(
        app, AssertionError("intake must not be reached"), {**SERVICENOW_BODY, "scheduleId": "sched-1\n"}
    )
    assert answer["statusCode"] == 400, answer["body"]
    body = json.loads(answer["body"])
    assert body["code"] == "INVALID_REQUEST"
    assert [e["field"] for e in body["errors"]] == ["scheduleId"]
