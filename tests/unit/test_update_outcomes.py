"""Asynchronous update outcomes (issue 10): the pipeline's confirm step reads how Genesys ended the
update (the schedules topic), in virtual time, with the simulator's notifications delivered."""

from __future__ import annotations

from typing import Any

from tests.support.virtual import demo, events, start
from wfm_publish.models import JobStatus, ReasonCode

SID = "sched-demo"


def operation(**more: Any) -> dict[str, Any]:
    return {"type": "publishOperation", "scheduleId": SID, "durationSeconds": 3} | more


def test_complete_confirms_the_publish_from_the_notification() -> None:
    run, job_id = start(demo(events=[operation()]), events=True)
    job = run.run(job_id)
    assert job.status is JobStatus.PUBLISHED
    assert run.simulator.stats()["publishesApplied"] == {SID: 1}
    ended = job.timeline[-1]
    assert ended.detail["operationId"]  # confirmed by the notification, not by a read
    read = run.genesys.schedule("bu-demo", "2023-10-23", SID)
    assert ended.detail["scheduleVersion"] == read.metadata.version


def test_error_then_success_publishes_again_from_a_fresh_read() -> None:
    run, job_id = start(demo(events=[operation(failFirst=1)]), events=True)
    job = run.run(job_id)
    assert job.status is JobStatus.PUBLISHED
    assert job.publish_attempts == 2
    undone = next(e for e in job.timeline if e.event == "update ended unapplied")
    assert undone.detail["status"] == "Error"
    # Noticed from the notification at once, not after the 180 s confirm timeout.
    assert "update was not applied; validating again" not in events(job)
    assert job.timeline[-1].at - undone.at < 30
    assert run.simulator.stats()["publishesApplied"] == {SID: 1}


def test_error_exhausting_the_budget_fails_with_the_operation_id() -> None:
    run, job_id = start(demo(events=[operation(failFirst=10)]), events=True)
    job = run.run(job_id)
    assert job.status is JobStatus.FAILED
    assert job.reason_code is ReasonCode.UPDATE_FAILED
    retries = job.request.telephony_sync.retry_count
    assert job.publish_attempts == retries + 1
    failed = job.timeline[-1]
    assert failed.detail["operationId"] in (job.detail or "")
    assert failed.detail["genesysStatus"] == "Error"
    assert job.pending_base_version is None  # nothing of ours can land any more
    assert "publishesApplied" not in run.simulator.stats() or not run.simulator.stats()["publishesApplied"]


def test_canceled_is_retried_within_the_budget() -> None:
    run, job_id = start(demo(events=[operation(cancelFirst=2)]), events=True)
    job = run.run(job_id)
    assert job.status is JobStatus.PUBLISHED
    assert job.publish_attempts == 3
    statuses = [e.detail["status"] for e in job.timeline if e.event == "update ended unapplied"]
    assert statuses == ["Canceled", "Canceled"]
    assert run.simulator.stats()["publishesApplied"] == {SID: 1}


def test_without_notifications_the_re_read_still_notices_a_failed_update() -> None:
    run, job_id = start(demo(events=[operation(failFirst=1)]))
    job = run.run(job_id)
    assert job.status is JobStatus.PUBLISHED
    assert "update was not applied; validating again" in events(job)
    assert run.simulator.stats()["publishesApplied"] == {SID: 1}
