"""The simulator's notifications reach GenesysEventsFunction through the local runner, as the partner
event bus delivers them to its rule, and land in the jobs table by operation id."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from wfm_publish.store import DynamoJobStore
from wfm_publish_local.demo import SERVICENOW_BODY
from wfm_publish_local.embedded import EmbeddedStack

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def stack() -> Iterator[EmbeddedStack]:
    with EmbeddedStack() as running:
        yield running


def test_the_update_outcome_of_a_publish_is_recorded_from_its_notification(stack: EmbeddedStack) -> None:
    assert stack.stack is not None
    assert "GenesysEventsFunction" in stack.stack.functions  # the bus is set: the rule exists
    publish_id = stack.accept(SERVICENOW_BODY)["publishId"]
    assert stack.wait_for_publish(publish_id)["status"] == "PUBLISHED"
    store = DynamoJobStore(stack.stack.client("dynamodb"), stack.stack.table_name)
    job = store.get_job(publish_id)
    assert job is not None and job.operation_id
    outcome = stack.stack.wait_until(lambda: store.operation_outcome(str(job.operation_id)), timeout=10)
    assert (outcome.status, outcome.event_type, outcome.business_unit_id) == ("Complete", "Update", "bu-demo")
    assert outcome.result is not None and outcome.result["published"] is True
    # Every notification the org sent was handed to the rule (telephony ones wake jobs: wake.py).
    sent = requests.get(stack.simulator_server.url + "/__sim/notifications", timeout=5).json()["total"]
    relay = stack.stack.sources.relays[0]
    stack.stack.wait_until(lambda: relay.delivered >= sent, timeout=10)
    assert stack.stack.invocations["GenesysEventsFunction"] >= 1


def test_a_check_that_saw_the_edge_updating_is_woken_by_the_change_end(stack: EmbeddedStack) -> None:
    """With the bus, a check that finds telephony changing waits the 40-minute safety poll: the job
    publishes within the test's minute only because the change's end event woke it. (A job's first
    check reads its scope before its watch exists, so it polls again soon; the request asks for that
    first check at once, so the next one still sees the Edge updating, after the watch.)"""
    assert stack.stack is not None
    stack.simulator.reset()  # the demo's Edge update runs again from t = 0 (0..8 s)
    body = {**SERVICENOW_BODY, "telephonySync": {**SERVICENOW_BODY["telephonySync"], "delayMs": 0}}
    publish_id = stack.accept(body)["publishId"]
    assert stack.wait_for_publish(publish_id)["status"] == "PUBLISHED"
    store = DynamoJobStore(stack.stack.client("dynamodb"), stack.stack.table_name)
    job = store.get_job(publish_id)
    assert job is not None
    events = [e.event for e in job.timeline]
    polls = [i for i, e in enumerate(job.timeline) if e.detail.get("nextCheckInSeconds", 0) >= 2000]
    assert polls, f"no check saw the Edge updating after the watch: {job.timeline}"
    assert events[polls[0] + 1] == "woken by a telephony event", events
    assert publish_id in store.watchers("edge-demo-1")  # listed when its scope was computed


def test_without_a_bus_there_is_no_events_function() -> None:
    from wfm_publish_local.stack import LocalStack

    with LocalStack(poll=[]) as bare:
        assert "GenesysEventsFunction" not in bare.functions
        assert {"TrunkValidationFunction", "NotifierFunction"} <= set(bare.functions)


def test_a_duplicate_or_late_notification_changes_nothing(stack: EmbeddedStack) -> None:
    assert stack.stack is not None
    event = json.loads((ROOT / "events" / "genesys_schedule_update.json").read_text())
    first = stack.stack.invoke("GenesysEventsFunction", event)
    again = stack.stack.invoke("GenesysEventsFunction", event)  # delivered twice
    late = copy.deepcopy(event)
    late["detail"]["eventBody"]["status"] = "Processing"  # sent before the Error, arrived after it
    stale = stack.stack.invoke("GenesysEventsFunction", late)
    assert (first["recorded"], again["recorded"], stale["recorded"]) == (True, False, False)
    store = DynamoJobStore(stack.stack.client("dynamodb"), stack.stack.table_name)
    held = store.operation_outcome("op-sample-1")
    assert held is not None and held.status == "Error"
