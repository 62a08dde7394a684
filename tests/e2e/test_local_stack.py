"""The whole product on the local stack, over HTTP: API front, moto server, pollers, the simulator.
Every request is signed as ServiceNow signs it (stack.auth); tests/e2e/test_api*.py cover the API itself."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from wfm_publish.store import DynamoJobStore
from wfm_publish_local.demo import SERVICENOW_BODY
from wfm_publish_local.embedded import EmbeddedStack

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack() -> Iterator[EmbeddedStack]:
    # A short visibility timeout so a failing message comes back (and reaches its DLQ) in seconds.
    with EmbeddedStack(visibility_timeout=2) as running:
        yield running


@pytest.fixture(autouse=True)
def fresh_org(stack: EmbeddedStack) -> None:
    stack.simulator.reset()  # scenario time and state start with each test


def post(stack: EmbeddedStack, body: Any, key: str | None = None, **headers: str) -> requests.Response:
    sent = {"Idempotency-Key": key or str(uuid.uuid4()), **headers}
    return requests.post(f"{stack.api_url}/publishes", json=body, headers=sent, auth=stack.auth, timeout=10)


def test_the_servicenow_payload_is_published_after_a_409_on_the_first_attempt(stack: EmbeddedStack) -> None:
    answer = post(stack, SERVICENOW_BODY)
    assert answer.status_code == 202, answer.text
    assert answer.headers["Location"] == f"/publishes/{answer.json()['publishId']}"
    job = stack.wait_for_publish(answer.json()["publishId"])
    assert job["status"] == "PUBLISHED", job
    events = [entry["event"] for entry in job["timeline"]]
    assert "telephony not settled" in events
    assert events.index("409 conflict") < events.index("published")
    stats = stack.genesys_stats()
    assert stats["publishesApplied"] == {"sched-demo": 1}
    assert stats["conflictsSent"]["stale"] == 1
    assert stats["conflictsSent"]["telephony"] == 0  # it waited; it did not publish into the change


def test_a_duplicate_sqs_delivery_publishes_nothing_twice(stack: EmbeddedStack) -> None:
    body = {**SERVICENOW_BODY, "telephonySync": {"enabled": True, "retryCount": 3, "delayMs": 3000}}
    publish_id = post(stack, body).json()["publishId"]
    assert stack.stack is not None
    store = DynamoJobStore(stack.stack.client("dynamodb"), stack.stack.table_name)
    queued = store.get_job(publish_id)
    assert queued is not None
    # SQS delivers at least once: the same validation message arrives three more times.
    duplicate = json.dumps({"jobId": publish_id, "ticket": queued.ticket, "step": "validate"})
    sqs = stack.stack.client("sqs")
    for _ in range(3):
        sqs.send_message(
            QueueUrl=stack.stack.queue_url("ValidationQueue"), MessageBody=duplicate, DelaySeconds=3
        )
    sent_at = time.monotonic()
    job = stack.wait_for_publish(publish_id)
    assert job["status"] == "PUBLISHED"
    # The duplicates are due 3 s after they were sent: let them come and be handled. (Counting the
    # queue's delayed messages would also count other tests' superseded safety polls: the stack is
    # shared by this module, and with telephony events on a superseded poll waits for minutes.)
    time.sleep(max(0.0, sent_at + 5 - time.monotonic()))
    stack.stack.wait_until(
        lambda: stack.stack.queue_depth("ValidationQueue")["visible"] == 0,  # type: ignore[union-attr]
        timeout=15,
    )
    time.sleep(1)
    assert stack.genesys_stats()["publishesApplied"] == {"sched-demo": 1}
    assert stack.stack.dlq_messages("ValidationQueue") == []


def test_a_poison_message_ends_in_the_dlq(stack: EmbeddedStack) -> None:
    assert stack.stack is not None
    sqs = stack.stack.client("sqs")
    sqs.send_message(QueueUrl=stack.stack.queue_url("ConflictQueue"), MessageBody="this is not a job message")
    dead = stack.stack.wait_until(
        lambda: [
            m for m in stack.stack.dlq_messages("ConflictQueue") if m["body"] == "this is not a job message"
        ],  # type: ignore[union-attr]
        timeout=40,
        interval=1,
        message="the poison message to reach ConflictDLQ",
    )
    assert len(dead) == 1


def test_the_same_key_replays_and_another_body_is_refused(stack: EmbeddedStack) -> None:
    key = f"replay-{uuid.uuid4()}"
    body = {**SERVICENOW_BODY, "validationMode": "off"}
    first = post(stack, body, key)
    again = post(stack, body, key)
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()
    assert again.headers.get("Idempotent-Replayed") == "true"
    other = post(stack, {**body, "validationMode": "strict"}, key)
    assert other.status_code == 422
    stack.wait_for_publish(first.json()["publishId"])


def test_a_second_request_for_a_schedule_in_flight_joins_it(stack: EmbeddedStack) -> None:
    first = post(stack, SERVICENOW_BODY).json()
    second = post(stack, SERVICENOW_BODY).json()
    assert second["publishId"] == first["publishId"]
    assert second["joined"] is True
    stack.wait_for_publish(first["publishId"])


def test_bad_input_is_refused_naming_each_field_and_writes_nothing(stack: EmbeddedStack) -> None:
    answer = post(stack, {"scheduleId": "", "validationMode": "loose", "extra": 1})
    assert answer.status_code == 400
    fields = {e["field"] for e in answer.json()["errors"]}
    assert {"scheduleId", "validationMode", "extra"} <= fields
    no_key = requests.post(f"{stack.api_url}/publishes", json=SERVICENOW_BODY, auth=stack.auth, timeout=10)
    assert no_key.status_code == 400
    assert "Idempotency-Key" in no_key.json()["message"]
    missing = requests.get(f"{stack.api_url}/publishes/{uuid.uuid4().hex}", auth=stack.auth, timeout=10)
    assert missing.status_code == 404


def test_a_job_whose_message_died_in_the_dlq_ends_failed_and_garbage_stays(stack: EmbeddedStack) -> None:
    assert stack.stack is not None
    local = stack.stack
    # A job that will not look at telephony for a day: its message is on the queue, far away.
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat().replace("+00:00", "Z")
    publish_id = post(stack, {**SERVICENOW_BODY, "publishTime": later}).json()["publishId"]
    queued = DynamoJobStore(local.client("dynamodb"), local.table_name).get_job(publish_id)
    assert queued is not None
    # Its current message failed five times and went to the DLQ; next to it, a body nobody can read.
    sqs, dlq = local.client("sqs"), local.queue_url("ValidationDLQ")
    letter = json.dumps({"jobId": publish_id, "ticket": queued.ticket, "step": "validate"})
    sqs.send_message(QueueUrl=dlq, MessageBody=letter)
    sqs.send_message(QueueUrl=dlq, MessageBody="not a job message")

    swept = local.fire_schedule("DeadLettersFunction")

    # Settled: our job's letter. Kept: the unreadable one (and any an earlier test left in ConflictDLQ).
    assert swept["settled"] == 1 and swept["kept"] >= 1
    job = requests.get(f"{stack.api_url}/publishes/{publish_id}", auth=stack.auth, timeout=10).json()
    assert job["status"] == "FAILED"
    assert job["reasonCode"] == "PROCESSING_FAILED"
    assert "validate step failed" in job["detail"]
    depth = local.queue_depth("ValidationDLQ")
    assert depth["visible"] + depth["in_flight"] == 1  # the unreadable one stays for a person
