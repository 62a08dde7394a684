"""The ServiceNow-facing API on the local stack, over HTTP: every answer code, signatures, idempotency,
joining, cancel, and that a refused request writes nothing."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.support.aws import written
from wfm_publish_local.client import SignedAuth
from wfm_publish_local.demo import SERVICENOW_BODY
from wfm_publish_local.embedded import EmbeddedStack

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack() -> Iterator[EmbeddedStack]:
    with EmbeddedStack(visibility_timeout=2, stream_retry_delay=0.02) as running:
        yield running


@pytest.fixture(autouse=True)
def fresh_org(stack: EmbeddedStack) -> None:
    stack.simulator.reset()
    stack.servicenow.reset()


def call(
    stack: EmbeddedStack,
    method: str,
    path: str,
    body: Any = None,
    *,
    key: str | None = "new",
    auth: Any = "signed",
    data: bytes | None = None,
    **headers: str,
) -> requests.Response:
    sent = dict(headers)
    if key is not None:
        sent.setdefault("Idempotency-Key", str(uuid.uuid4()) if key == "new" else key)
    return requests.request(
        method,
        f"{stack.api_url}{path}",
        json=body if data is None else None,
        data=data,
        headers=sent,
        auth=stack.auth if auth == "signed" else auth,
        timeout=15,
    )


def job(stack: EmbeddedStack, publish_id: str) -> dict[str, Any]:
    answer: dict[str, Any] = call(stack, "GET", f"/publishes/{publish_id}", key=None).json()
    return answer


QUICK = {**SERVICENOW_BODY, "validationMode": "off"}  # publishes at once (after one stale-version 409)
LATER = {**SERVICENOW_BODY, "publishTime": "2099-01-01T00:00:00Z"}


def later() -> dict[str, Any]:
    """A request that waits (publishTime an hour ahead), so nothing happens to it during the test."""
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    return {**SERVICENOW_BODY, "publishTime": when}


# ---------------------------------------------------------------- refusals (first: the table is empty)


def test_every_refusal_answers_its_code_and_writes_nothing(stack: EmbeddedStack) -> None:
    assert written(stack) == set()
    body = json.dumps(SERVICENOW_BODY).encode()
    refusals: list[tuple[requests.Response, int, str]] = [
        (call(stack, "POST", "/publishes", SERVICENOW_BODY, auth=None), 401, "SIGNATURE_REJECTED"),
        (
            call(stack, "POST", "/publishes", SERVICENOW_BODY, auth=SignedAuth("wrong")),
            401,
            "SIGNATURE_REJECTED",
        ),
        (
            call(stack, "POST", "/publishes", SERVICENOW_BODY, auth=SignedAuth(stack.hmac_secret, skew=-360)),
            401,
            "",
        ),
        (
            call(stack, "POST", "/publishes", SERVICENOW_BODY, auth=SignedAuth(stack.hmac_secret, skew=360)),
            401,
            "",
        ),
        (
            call(stack, "GET", f"/publishes/{uuid.uuid4().hex}", key=None, auth=None),
            401,
            "SIGNATURE_REJECTED",
        ),
        (call(stack, "POST", f"/publishes/{uuid.uuid4().hex}/cancel", key=None, auth=None), 401, ""),
        (
            call(stack, "POST", "/publishes", data=b'{"scheduleId":"' + b"x" * 70_000 + b'"}'),
            413,
            "BODY_TOO_LARGE",
        ),
        (call(stack, "POST", "/publishes", data=body, **{"Content-Type": "text/plain"}), 415, ""),
        (
            call(stack, "POST", "/publishes", data=b"scheduleId=s", **{"Content-Type": "application/json"}),
            415,
            "",
        ),
        (call(stack, "POST", "/publishes", SERVICENOW_BODY, key=None), 400, "IDEMPOTENCY_KEY_MISSING"),
        (call(stack, "POST", "/publishes", SERVICENOW_BODY, key="k" * 256), 400, "INVALID_REQUEST"),
        (call(stack, "POST", "/publishes", {"scheduleId": "s", "extra": 1}), 400, "INVALID_REQUEST"),
        (
            call(stack, "POST", "/publishes", {**SERVICENOW_BODY, "publishTime": "2023-10-27T14:00:00"}),
            400,
            "",
        ),
        (
            call(stack, "POST", "/publishes", {**SERVICENOW_BODY, "publishTime": "2123-10-27T14:00:00Z"}),
            400,
            "",
        ),
        (call(stack, "POST", "/publishes", [SERVICENOW_BODY]), 400, "INVALID_REQUEST"),
        (call(stack, "GET", f"/publishes/{'x' * 129}", key=None), 400, "INVALID_REQUEST"),
    ]
    for answer, status, code in refusals:
        assert answer.status_code == status, (answer.request.method, answer.request.url, answer.text)
        problem = answer.json()
        assert problem["message"]
        assert problem["code"] == code or not code
    assert written(stack) == set(), "a refused request wrote to the table"


def test_schema_errors_list_each_field_and_why(stack: EmbeddedStack) -> None:
    answer = call(
        stack,
        "POST",
        "/publishes",
        {
            "scheduleId": "",
            "validationMode": "loose",
            "publishTime": "2023-10-27T14:00:00",
            "telephonySync": {"retryCount": "3", "delayMs": -1},
            "callback": {"table": "change_request", "sysId": "not-a-sys-id"},
            "surprise": True,
        },
    )
    assert answer.status_code == 400
    problems = {e["field"]: e["problem"] for e in answer.json()["errors"]}
    assert set(problems) == {
        "scheduleId",
        "validationMode",
        "publishTime",
        "telephonySync.retryCount",
        "telephonySync.delayMs",
        "callback.sysId",
        "surprise",
    }
    assert "timezone" in problems["publishTime"].lower()
    assert "extra" in problems["surprise"].lower()
    assert written(stack) == set()


def test_a_clock_off_by_more_than_five_minutes_is_refused_and_says_why(stack: EmbeddedStack) -> None:
    answer = call(
        stack, "GET", f"/publishes/{uuid.uuid4().hex}", key=None, auth=SignedAuth(stack.hmac_secret, 301)
    )
    assert answer.status_code == 401
    assert "5 minutes" in answer.json()["message"]
    within = call(
        stack, "GET", f"/publishes/{uuid.uuid4().hex}", key=None, auth=SignedAuth(stack.hmac_secret, 240)
    )
    assert within.status_code == 404


def test_a_signed_get_replayed_on_the_cancel_route_is_refused(stack: EmbeddedStack) -> None:
    """Issue 9, case 7: a GET's signature headers (empty body) captured and sent on cancel, at once."""
    accepted = call(stack, "POST", "/publishes", later())
    assert accepted.status_code == 202, accepted.text
    publish_id = accepted.json()["publishId"]
    get = call(stack, "GET", f"/publishes/{publish_id}", key=None)
    assert get.status_code == 200
    captured = {k: get.request.headers[k] for k in ("X-Signature-Timestamp", "X-Signature")}
    replay = requests.post(f"{stack.api_url}/publishes/{publish_id}/cancel", headers=captured, timeout=15)
    assert replay.status_code == 401, replay.text
    assert replay.json()["code"] == "SIGNATURE_REJECTED"
    assert job(stack, publish_id)["status"] != "CANCELLED"
    query = requests.get(f"{stack.api_url}/publishes/{publish_id}?x=1", headers=captured, timeout=15)
    assert query.status_code == 401
    cancelled = call(stack, "POST", f"/publishes/{publish_id}/cancel", key=None)  # signed for itself
    assert cancelled.status_code == 200, cancelled.text


def test_a_captured_publish_replayed_under_a_new_key_starts_nothing(stack: EmbeddedStack) -> None:
    """A signed POST /publishes captured and sent again within the five minutes, under another
    Idempotency-Key once its job has ended: it started a second publish. The signature covers the key."""
    schedule = f"sched-replay-{uuid.uuid4().hex[:8]}"
    body = {**later(), "scheduleId": schedule}
    first = call(stack, "POST", "/publishes", body, key="replay-original")
    assert first.status_code == 202, first.text
    captured = first.request
    assert call(stack, "POST", f"/publishes/{first.json()['publishId']}/cancel", key=None).status_code == 200
    replayed = dict(captured.headers)
    for key in ("replay-other", "replay-original "):
        replayed["Idempotency-Key"] = key
        again = requests.post(captured.url, data=captured.body, headers=replayed, timeout=15)
        assert again.status_code == 401, again.text
        assert again.json()["code"] == "SIGNATURE_REJECTED"
    replayed.pop("Idempotency-Key")
    replayed["X-Request-Id"] = "replay-by-request-id"  # the key it stands in for is signed too
    again = requests.post(captured.url, data=captured.body, headers=replayed, timeout=15)
    assert again.status_code == 401, again.text
    # The capture as it was is a replay of the first answer, never a second job.
    same = requests.post(captured.url, data=captured.body, headers=dict(captured.headers), timeout=15)
    assert (same.status_code, same.json()["publishId"]) == (202, first.json()["publishId"])
    assert same.headers["Idempotent-Replayed"] == "true"
    window = call(stack, "GET", f"/schedules/{schedule}/publish", key=None).json()
    assert window["inFlight"] is False, window


# ---------------------------------------------------------------- accepted, replayed, joined


def test_a_request_is_accepted_replayed_and_a_reused_key_is_refused(stack: EmbeddedStack) -> None:
    key = f"snow-{uuid.uuid4()}"
    calls_before = sum(stack.genesys_stats()["calls"].values())
    body = later()
    first = call(stack, "POST", "/publishes", body, key=key)
    assert first.status_code == 202, first.text
    accepted = first.json()
    assert set(accepted) == {"publishId", "status", "scheduleId", "joined"}
    assert (accepted["status"], accepted["scheduleId"], accepted["joined"]) == ("QUEUED", "sched-demo", False)
    assert first.headers["Location"] == f"/publishes/{accepted['publishId']}"
    assert "Idempotent-Replayed" not in first.headers

    # The same request again, keys reordered and spaced differently: the same answer, marked a replay.
    again = call(
        stack,
        "POST",
        "/publishes",
        data=json.dumps(body, indent=2, sort_keys=True).encode(),
        key=key,
        **{"Content-Type": "application/json"},
    )
    assert (again.status_code, again.json()) == (202, accepted)
    assert again.headers["Idempotent-Replayed"] == "true"

    other = call(stack, "POST", "/publishes", {**body, "validationMode": "deferred"}, key=key)
    assert (other.status_code, other.json()["code"]) == (422, "IDEMPOTENCY_KEY_REUSED")
    # The caller's key, as sent: not the key as the table stores it (an internal prefix).
    assert f"Idempotency-Key {key!r}" in other.json()["message"], other.json()
    assert "api:" not in other.json()["message"]

    # Intake never calls Genesys: a Genesys outage cannot refuse a request.
    assert sum(stack.genesys_stats()["calls"].values()) == calls_before
    call(stack, "POST", f"/publishes/{accepted['publishId']}/cancel", key=None)


def test_a_request_for_a_schedule_in_flight_joins_it_with_its_callback(stack: EmbeddedStack) -> None:
    body = later()
    first = call(stack, "POST", "/publishes", body).json()
    joiner = {**body, "callback": {"table": "change_request", "sys_id": "b" * 32}}
    second = call(stack, "POST", "/publishes", joiner)
    assert second.status_code == 202
    assert second.json() == {**first, "joined": True}
    # X-Request-Id stands in for Idempotency-Key.
    by_request_id = call(stack, "POST", "/publishes", body, key=None, **{"X-Request-Id": "snow-42"})
    assert (by_request_id.status_code, by_request_id.json()["publishId"]) == (202, first["publishId"])
    # The joiner's record is kept: it hears how the job ends (tests/e2e/test_api_callbacks.py).
    view = call(stack, "GET", f"/publishes/{first['publishId']}", key=None).json()
    assert [j["callback"]["sysId"] for j in view["joined"]] == ["b" * 32]
    call(stack, "POST", f"/publishes/{first['publishId']}/cancel", key=None)


def test_a_request_with_other_options_does_not_join_the_job_in_flight(stack: EmbeddedStack) -> None:
    """A "publish now" must not silently join a job due an hour from now (issue 9, case 6)."""
    first = call(stack, "POST", "/publishes", later()).json()
    now = call(stack, "POST", "/publishes", {**SERVICENOW_BODY, "validationMode": "deferred"})
    assert now.status_code == 409
    problem = now.json()
    assert problem["code"] == "JOIN_CONFLICT" and problem["publishId"] == first["publishId"]
    assert {e["field"] for e in problem["errors"]} == {"publishTime", "validationMode"}
    call(stack, "POST", f"/publishes/{first['publishId']}/cancel", key=None)


# ---------------------------------------------------------------- status and cancel


def test_get_shows_status_attempts_and_timeline_and_404_for_unknown(stack: EmbeddedStack) -> None:
    publish_id = call(stack, "POST", "/publishes", QUICK).json()["publishId"]
    ended = stack.wait_for_publish(publish_id)
    assert ended["status"] == "PUBLISHED" and ended["reasonCode"] == "PUBLISHED"
    assert ended["attempts"]["publish"] >= 1 and set(ended["attempts"]) == {
        "publish",
        "readinessChecks",
        "conflictRetries",
    }
    assert ended["timeline"][0]["event"] == "accepted"
    assert all(e["at"].endswith("Z") for e in ended["timeline"])
    missing = call(stack, "GET", f"/publishes/{uuid.uuid4().hex}", key=None)
    assert (missing.status_code, missing.json()["code"]) == (404, "NOT_FOUND")
    # Cancel after the publish: refused, and says how it ended.
    refused = call(stack, "POST", f"/publishes/{publish_id}/cancel", key=None)
    assert refused.status_code == 409
    assert refused.json() | {"message": ""} == {
        "message": "",
        "code": "ALREADY_ENDED",
        "publishId": publish_id,
        "status": "PUBLISHED",
    }


def test_cancel_stops_a_waiting_job_idempotently_and_frees_the_schedule(stack: EmbeddedStack) -> None:
    publish_id = call(stack, "POST", "/publishes", later()).json()["publishId"]
    cancelled = call(stack, "POST", f"/publishes/{publish_id}/cancel", key=None)
    assert cancelled.status_code == 200
    assert cancelled.json() == {
        "publishId": publish_id,
        "status": "CANCELLED",
        "reasonCode": "CANCELLED",
        "alreadyCancelled": False,
    }
    again = call(stack, "POST", f"/publishes/{publish_id}/cancel", key=None)
    assert (again.status_code, again.json()["alreadyCancelled"]) == (200, True)
    shown = job(stack, publish_id)
    assert (shown["status"], shown["reasonCode"]) == ("CANCELLED", "CANCELLED")
    assert shown["timeline"][-1]["event"] == "cancelled"
    # The schedule is free: a new request starts a new job instead of joining the cancelled one.
    fresh = call(stack, "POST", "/publishes", later()).json()
    assert fresh["publishId"] != publish_id and fresh["joined"] is False
    call(stack, "POST", f"/publishes/{fresh['publishId']}/cancel", key=None)
    unknown = call(stack, "POST", f"/publishes/{uuid.uuid4().hex}/cancel", key=None)
    assert (unknown.status_code, unknown.json()["code"]) == (404, "NOT_FOUND")


def test_an_unknown_schedule_is_accepted_then_fails_schedule_not_found(stack: EmbeddedStack) -> None:
    body = {"scheduleId": "sched-nobody-has", "validationMode": "off", "telephonySync": {"delayMs": 0}}
    accepted = call(stack, "POST", "/publishes", body)
    assert accepted.status_code == 202
    ended = stack.wait_for_publish(accepted.json()["publishId"])
    assert (ended["status"], ended["reasonCode"]) == ("FAILED", "SCHEDULE_NOT_FOUND")
    assert ended["detail"]
