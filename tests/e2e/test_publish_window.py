"""The publish window others can see, on the local stack: GET /schedules/{scheduleId}/publish, every job
transition on the default EventBridge bus, progress callbacks, and the metrics the functions print."""

from __future__ import annotations

import itertools
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
SCHEDULE = SERVICENOW_BODY["scheduleId"]


@pytest.fixture(scope="module")
def stack() -> Iterator[EmbeddedStack]:
    with EmbeddedStack(visibility_timeout=2, stream_retry_delay=0.02) as running:
        yield running


def window(stack: EmbeddedStack, schedule: str = SCHEDULE) -> requests.Response:
    return requests.get(f"{stack.api_url}/schedules/{schedule}/publish", auth=stack.auth, timeout=15)


def job_events(
    stack: EmbeddedStack, publish_id: str, until: str, timeout: float = 20
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        mine = [e["detail"] for e in stack.events() if e["detail"]["publishId"] == publish_id]
        if any(d["status"] == until for d in mine) or time.monotonic() > deadline:
            return mine
        time.sleep(0.2)


def test_the_window_is_open_while_a_publish_is_in_flight(stack: EmbeddedStack) -> None:
    closed = window(stack).json()
    assert (closed["scheduleId"], closed["inFlight"], closed.get("publishId")) == (SCHEDULE, False, None)
    later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    publish_id = stack.accept({**SERVICENOW_BODY, "publishTime": later})["publishId"]
    answer = window(stack)
    assert answer.status_code == 200
    body = answer.json()
    assert body["inFlight"] is True and body["publishId"] == publish_id
    assert body["status"] in {"QUEUED", "WAITING"} and body["since"] and body["publishTime"]
    cancelled = requests.post(f"{stack.api_url}/publishes/{publish_id}/cancel", auth=stack.auth, timeout=15)
    assert cancelled.status_code == 200
    assert window(stack).json()["inFlight"] is False
    # ... and every move of that job was put on the bus, AWS-service-event style
    details = job_events(stack, publish_id, until="CANCELLED")
    assert details[0]["status"] == "QUEUED" and details[0]["previousStatus"] is None
    assert details[-1]["status"] == "CANCELLED" and details[-1]["reasonCode"] == "CANCELLED"
    (event,) = [e for e in stack.events() if e["detail"] == details[-1]]
    assert (event["source"], event["detail-type"]) == ("wfm-publish", "Publish Job State Change")


def test_the_window_route_is_signed_and_checks_its_id(stack: EmbeddedStack) -> None:
    unsigned = requests.get(f"{stack.api_url}/schedules/{SCHEDULE}/publish", timeout=15)
    assert unsigned.status_code == 401 and unsigned.json()["code"] == "SIGNATURE_REJECTED"
    bad = window(stack, "no%20spaces")
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "path:scheduleId"


def test_progress_callbacks_events_and_metrics_follow_a_publish(stack: EmbeddedStack) -> None:
    stack.simulator.reset()
    record = uuid.uuid4().hex
    callback = {"table": TABLE, "sysId": record, "progress": True}
    publish_id = stack.accept({**SERVICENOW_BODY, "validationMode": "off", "callback": callback})["publishId"]
    job = stack.wait_for_publish(publish_id, lambda j: j.get("callback", {}).get("notified"), timeout=60)
    assert job["status"] == "PUBLISHED"
    started, ended = stack.servicenow.wait_for_updates(2, table=TABLE, sys_id=record, timeout=30)
    assert started.body is not None and started.body["u_wfm_publish_status"] == "PUBLISHING"
    assert ended.body is not None and ended.body["u_wfm_publish_status"] == "PUBLISHED"
    time.sleep(1)
    assert len(stack.servicenow.updates(sys_id=record)) == 2  # each state once

    details = job_events(stack, publish_id, until="PUBLISHED")
    statuses = [d["status"] for d in details]
    assert statuses[0] == "QUEUED" and statuses[-1] == "PUBLISHED" and "PUBLISHING" in statuses
    for before, after in itertools.pairwise(details):
        assert after["previousStatus"] == before["status"] != after["status"]  # changes only, in order

    def metric(name: str, **dimensions: str) -> list[float]:
        return stack.metric_totals().get((name, tuple(sorted(dimensions.items()))), [])

    deadline = time.monotonic() + 10
    while not metric("JobsEnded", Status="PUBLISHED") and time.monotonic() < deadline:
        time.sleep(0.1)  # the notifier prints its metrics as its invocation ends
    assert sum(metric("PublishRequests", Outcome="accepted")) >= 1
    assert sum(metric("JobsEnded", Status="PUBLISHED")) >= 1
    assert sum(metric("CallbacksDelivered", Kind="progress")) >= 1
    assert metric("TimeToPublish") and all(v >= 0 for v in metric("TimeToPublish"))
    assert sum(metric("EventsPut")) >= len(details)
    json.dumps(stack.events())  # what a test reads is plain JSON


def test_a_request_that_joins_a_publish_hears_its_progress_too(stack: EmbeddedStack) -> None:
    """A joined request whose callback asked for progress hears PUBLISHING, then the end, as the
    request it joined does: through the table's stream, its filter and the notifier, on the local stack."""
    stack.simulator.reset()
    soon = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 5))
    body = {**SERVICENOW_BODY, "validationMode": "off", "publishTime": soon}
    own, joined = uuid.uuid4().hex, uuid.uuid4().hex
    first = stack.accept({**body, "callback": {"table": TABLE, "sysId": own, "progress": True}})
    second = stack.accept({**body, "callback": {"table": TABLE, "sysId": joined, "progress": True}})
    assert (second["publishId"], second["joined"]) == (first["publishId"], True)
    for record in (own, joined):
        started, ended = stack.servicenow.wait_for_updates(2, table=TABLE, sys_id=record, timeout=60)
        assert started.body is not None and started.body["u_wfm_publish_status"] == "PUBLISHING"
        assert ended.body is not None and ended.body["u_wfm_publish_status"] == "PUBLISHED"
    time.sleep(1)
    assert [len(stack.servicenow.updates(sys_id=record)) for record in (own, joined)] == [2, 2]
