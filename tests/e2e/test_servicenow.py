"""ServiceNow's side, installed from the update set `make servicenow` builds, against the local stack over
HTTP: the Publish WFM schedule button publishes a schedule end to end through the script include and the
REST message (signed by the script, sent as real HTTP), the callbacks reach the change request through
the Table API as the callback account (its access controls checked), and the hold rule holds availability
updates exactly while GET /schedules/{id}/publish says the window is open.

The instance is tests/support/servicenow.py: the update set's scripts in Duktape (ES5) with stand-ins for
ServiceNow's APIs; the ServiceNow stand-in the local stack calls back hands each update to it."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support.servicenow import Instance
from wfm_publish_local.embedded import EmbeddedStack
from wfm_publish_local.servicenow_set import build

pytestmark = pytest.mark.e2e
SCHEDULE = "sched-demo"  # the demo org's: an Edge update keeps it waiting for telephony some seconds
BUTTON = "Publish WFM schedule"
HOLD = "wfm-publish: hold availability updates while publishing"
RELEASE = "wfm-publish: release held availability updates"
RECONCILE = "wfm-publish: reconcile missed callbacks"
IN_FLIGHT = {"QUEUED", "WAITING", "PUBLISHING", "RETRYING"}
ENDED = {"PUBLISHED", "FAILED", "CANCELLED"}


@pytest.fixture(scope="module")
def stack() -> Iterator[EmbeddedStack]:
    with EmbeddedStack(visibility_timeout=2, stream_retry_delay=0.02) as running:
        yield running


@pytest.fixture
def instance(stack: EmbeddedStack) -> Iterator[Instance]:
    """The update set installed and set up as docs/servicenow.md says: the properties' values, the
    example rules adapted (their table exists) and activated, the callback account holding its role."""
    installed = Instance(build())
    installed.set_property("wfm_publish.base_url", stack.api_url)
    installed.set_property("wfm_publish.api_key", "local-api-key")  # the local stack does not check it
    installed.set_property("wfm_publish.hmac_secret", stack.hmac_secret)
    installed.define_table("u_wfm_availability", ["u_schedule_id", "u_state"])
    installed.activate("sys_script", HOLD)
    installed.activate("sys_script", RELEASE)

    def table_api(table: str, sys_id: str, fields: dict[str, Any]) -> None:
        installed.table_api_update(table, sys_id, fields, ("wfm_publish_callback",))

    stack.servicenow.on_update = table_api
    yield installed
    stack.servicenow.on_update = None
    assert installed.denied == [], "the callback account wrote only what its access controls grant"
    assert all(200 <= sent.status < 300 for sent in installed.sent), installed.sent


def eventually(check: Callable[[], bool], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {timeout:g} s")
        time.sleep(0.2)


def window(instance: Instance) -> dict[str, Any]:
    """GET /schedules/{scheduleId}/publish, asked by ServiceNow's own script."""
    answer: dict[str, Any] = instance.run("new WfmPublish().window(dukpy.schedule)", schedule=SCHEDULE)
    assert answer["status"] == 200, answer
    return dict(answer["body"])


def press(instance: Instance, change: str) -> dict[str, str]:
    with instance.session("jo", "wfm_publish_admin"):
        instance.ui_action(BUTTON, change)
    return instance.get("change_request", change)


def test_the_button_publishes_the_schedule_and_updates_are_held_exactly_while_the_window_is_open(
    stack: EmbeddedStack, instance: Instance
) -> None:
    stack.simulator.reset()  # the Edge update starts again: the publish waits for telephony a while
    change = instance.insert("change_request", u_wfm_schedule_id=SCHEDULE, short_description="Week 43")
    record = press(instance, change)
    publish_id = record["u_wfm_publish_id"]
    assert record["u_wfm_publish_status"] == "QUEUED" and publish_id, "the hold starts with the request"
    assert (
        "info",
        f"wfm-publish accepted the publish of schedule {SCHEDULE}: {publish_id}.",
    ) in instance.messages

    opened = window(instance)
    assert (opened["inFlight"], opened["publishId"]) == (True, publish_id)
    held = instance.insert("u_wfm_availability", u_schedule_id=SCHEDULE, u_state="ready")
    other = instance.insert("u_wfm_availability", u_schedule_id="sched-other", u_state="ready")
    assert instance.get("u_wfm_availability", held)["u_state"] == "held"
    assert instance.get("u_wfm_availability", other)["u_state"] == "ready"
    press(instance, change)  # pressed again while in flight: says so, sends nothing
    assert len(instance.sent) == 2 and "already being published" in instance.messages[-1][1]

    # wfm-publish calls back through the Table API: PUBLISHING, then how it ended; the release rule runs
    eventually(lambda: instance.get("change_request", change)["u_wfm_publish_status"] in ENDED)
    record = instance.get("change_request", change)
    assert (record["u_wfm_publish_status"], record["u_wfm_publish_reason"]) == ("PUBLISHED", "PUBLISHED")
    assert record["work_notes"].startswith(f"wfm-publish: schedule {SCHEDULE} PUBLISHED")
    assert instance.get("u_wfm_availability", held)["u_state"] == "ready", "released when the window closed"
    assert window(instance)["inFlight"] is False
    later = instance.insert("u_wfm_availability", u_schedule_id=SCHEDULE, u_state="ready")
    assert instance.get("u_wfm_availability", later)["u_state"] == "ready"
    told = [u.body for u in stack.servicenow.updates(table="change_request", sys_id=change)]
    assert [t["u_wfm_publish_status"] for t in told if t] == ["PUBLISHING", "PUBLISHED"]

    status = instance.run("new WfmPublish().status(dukpy.id)", id=publish_id)
    assert (status["status"], status["body"]["status"], status["body"]["scheduleId"]) == (
        200,
        "PUBLISHED",
        SCHEDULE,
    )


def test_a_cancel_closes_the_window_and_the_job_reconciles_a_missed_callback(
    stack: EmbeddedStack, instance: Instance
) -> None:
    in_an_hour = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    create, opened, cancelled, closed = instance.run(
        "var wfm = new WfmPublish();"
        "var created = wfm.create(dukpy.request, dukpy.key);"
        "[created, wfm.window(dukpy.schedule), wfm.cancel(created.body.publishId),"
        " wfm.window(dukpy.schedule)]",
        request={"scheduleId": SCHEDULE, "publishTime": in_an_hour},
        key=str(uuid.uuid4()),
        schedule=SCHEDULE,
    )
    assert (create["status"], create["body"]["status"]) == (202, "QUEUED")
    assert opened["body"]["inFlight"] is True and opened["body"]["publishId"] == create["body"]["publishId"]
    assert (cancelled["status"], cancelled["body"]["status"]) == (200, "CANCELLED")
    assert closed["body"]["inFlight"] is False

    stack.servicenow.on_update = None  # from now on ServiceNow does not hear the callbacks
    change = instance.insert("change_request", u_wfm_schedule_id=SCHEDULE)
    publish_id = press(instance, change)["u_wfm_publish_id"]
    held = instance.insert("u_wfm_availability", u_schedule_id=SCHEDULE, u_state="ready")
    stack.wait_for_publish(publish_id, timeout=90)
    eventually(lambda: not window(instance)["inFlight"])
    assert instance.get("change_request", change)["u_wfm_publish_status"] in IN_FLIGHT, "no callback arrived"
    assert instance.get("u_wfm_availability", held)["u_state"] == "held"

    instance.run_job(RECONCILE)
    record = instance.get("change_request", change)
    assert record["u_wfm_publish_status"] in ENDED and record["u_wfm_publish_reason"]
    assert instance.get("u_wfm_availability", held)["u_state"] == "ready"
    sent = len(instance.sent)
    instance.run_job(RECONCILE)  # nothing in flight any more: nothing to ask
    assert len(instance.sent) == sent
