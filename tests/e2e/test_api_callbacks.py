"""ServiceNow hears how every job ends: the notifier, fed by the jobs table's stream on the local stack,
PATCHes the callback record; a crash is retried from the stream; what cannot be delivered ends in
NotifierDLQ. The ServiceNow stand-in records what it received."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from wfm_publish_local.demo import SERVICENOW_BODY
from wfm_publish_local.embedded import EmbeddedStack

pytestmark = pytest.mark.e2e
TABLE = "change_request"


@pytest.fixture(scope="module")
def stack() -> Iterator[EmbeddedStack]:
    with EmbeddedStack(visibility_timeout=2, stream_retry_delay=0.02) as running:
        yield running


@pytest.fixture(autouse=True)
def fresh(stack: EmbeddedStack) -> None:
    stack.simulator.reset()
    stack.servicenow.reset()


def sys_id() -> str:
    return uuid.uuid4().hex  # 32 hex digits, like a ServiceNow sys_id


def get(stack: EmbeddedStack, publish_id: str) -> dict[str, Any]:
    answer: dict[str, Any] = requests.get(
        f"{stack.api_url}/publishes/{publish_id}", auth=stack.auth, timeout=15
    ).json()
    return answer


def unknown_schedule(record: str) -> dict[str, Any]:
    """Fails fast: SCHEDULE_NOT_FOUND on its first step."""
    return {
        "scheduleId": f"sched-{uuid.uuid4().hex[:8]}",
        "validationMode": "off",
        "telephonySync": {"delayMs": 0},
        "callback": {"table": TABLE, "sysId": record},
    }


@pytest.mark.parametrize("end", ["PUBLISHED", "FAILED", "CANCELLED"])
def test_the_callback_record_hears_each_end(stack: EmbeddedStack, end: str) -> None:
    record = sys_id()
    if end == "PUBLISHED":
        body = {**SERVICENOW_BODY, "validationMode": "off", "callback": {"table": TABLE, "sysId": record}}
        publish_id = stack.accept(body)["publishId"]
    elif end == "FAILED":
        publish_id = stack.accept(unknown_schedule(record))["publishId"]
    else:
        later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
        body = {**SERVICENOW_BODY, "publishTime": later, "callback": {"table": TABLE, "sysId": record}}
        publish_id = stack.accept(body)["publishId"]
        cancelled = requests.post(
            f"{stack.api_url}/publishes/{publish_id}/cancel", auth=stack.auth, timeout=15
        )
        assert cancelled.status_code == 200
    (update,) = stack.servicenow.wait_for_updates(1, table=TABLE, sys_id=record, timeout=60)
    job = stack.wait_for_publish(publish_id, lambda j: j.get("callback", {}).get("notified"))
    assert job["status"] == end
    assert update.method == "PATCH" and update.path == f"/api/now/table/{TABLE}/{record}"
    assert update.body is not None
    assert update.body["u_wfm_publish_status"] == end
    assert update.body["u_wfm_publish_reason"] == job["reasonCode"]
    assert update.body["u_wfm_publish_id"] == publish_id
    assert update.body["work_notes"].startswith(f"wfm-publish: schedule {job['scheduleId']} {end}")
    assert job["callback"]["table"] == TABLE and job["callback"]["notifiedAt"]
    assert job["timeline"][-1]["event"] == "servicenow notified"
    time.sleep(1)  # the notifier's own write passes the stream filter by: no second PATCH
    assert len(stack.servicenow.updates(sys_id=record)) == 1


def test_a_notifier_crash_is_retried_from_the_stream_and_delivered(stack: EmbeddedStack) -> None:
    record = sys_id()
    stack.servicenow.fail_next(1, status=503)
    stack.servicenow.fail_next(1, drop=True)  # the connection dies with no answer
    publish_id = stack.accept(unknown_schedule(record))["publishId"]
    (update,) = stack.servicenow.wait_for_updates(1, sys_id=record, timeout=60)
    assert update.body is not None and update.body["u_wfm_publish_status"] == "FAILED"
    attempts = [r.status for r in stack.servicenow.received if r.sys_id == record]
    assert attempts == [503, 0, 200]  # 0: dropped
    job = stack.wait_for_publish(publish_id, lambda j: j.get("callback", {}).get("notified"))
    assert job["reasonCode"] == "SCHEDULE_NOT_FOUND"


def test_a_callback_that_cannot_be_delivered_ends_in_the_dlq(stack: EmbeddedStack) -> None:
    assert stack.stack is not None
    record = sys_id()
    stack.servicenow.fail_next(50, status=500)
    publish_id = stack.accept(unknown_schedule(record))["publishId"]
    dead = stack.stack.wait_until(
        lambda: stack.stack.peek_messages("NotifierDLQ"),  # type: ignore[union-attr]
        timeout=60,
        interval=0.5,
        message="the undeliverable callback to reach NotifierDLQ",
    )
    (message,) = dead
    failure = json.loads(message["body"])
    assert failure["requestContext"]["condition"] == "RetryAttemptsExhausted"
    info = failure["DDBStreamBatchInfo"]
    assert info["batchSize"] == 1
    assert info["streamArn"] == stack.stack.attributes[("JobsTable", "StreamArn")]
    retries = stack.stack.template.functions["NotifierFunction"].stream_events[0].maximum_retry_attempts
    attempts = [r for r in stack.servicenow.received if r.sys_id == record]
    assert len(attempts) == retries + 1  # the first try and every retry, then it gave up
    job = get(stack, publish_id)
    assert job["status"] == "FAILED" and job["callback"]["notified"] is False
