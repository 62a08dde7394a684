"""GET /schedules/{scheduleId}/publish, from the store: is the schedule's publish window open?"""

from __future__ import annotations

import time

from wfm_publish.answers import schedule_publish
from wfm_publish.models import Job, JobStatus, PublishRequest, ReasonCode
from wfm_publish_local.virtual import MemoryJobStore


def job(status: JobStatus = JobStatus.WAITING) -> Job:
    now = time.time()
    return Job(
        job_id="job-1",
        schedule_id="sched-1",
        request=PublishRequest(schedule_id="sched-1"),
        status=status,
        ticket="t",
        created_at=now - 60,
        updated_at=now,
        deadline_at=now + 3600,
    )


def test_no_claim_means_no_publish_in_flight() -> None:
    answer = schedule_publish(MemoryJobStore(), "sched-1")
    assert answer.wire() == {"scheduleId": "sched-1", "inFlight": False}


def test_the_active_job_its_state_and_since_when() -> None:
    store = MemoryJobStore()
    assert store.claim_schedule("sched-1", "job-1", time.time(), time.time() + 3600) is None
    store.create_job(job(JobStatus.PUBLISHING))
    answer = schedule_publish(store, "sched-1").wire()
    assert answer["inFlight"] is True
    assert (answer["publishId"], answer["status"]) == ("job-1", "PUBLISHING")
    assert answer["since"].endswith("Z") and answer["updatedAt"] >= answer["since"]
    assert store.active_job("other") is None


def test_a_claim_left_by_an_ended_job_is_not_a_publish_in_flight() -> None:
    """The release can be lost (a crash after the job's end): the job's own status decides."""
    store = MemoryJobStore()
    store.claim_schedule("sched-1", "job-1", time.time(), time.time() + 3600)
    ended = job(JobStatus.FAILED).model_copy(update={"reason_code": ReasonCode.DEADLINE_EXCEEDED})
    store.create_job(ended)
    assert schedule_publish(store, "sched-1").in_flight is False


def test_a_claim_a_moment_before_its_job_is_written_is_not_in_flight_yet() -> None:
    store = MemoryJobStore()
    store.claim_schedule("sched-1", "job-1", time.time(), time.time() + 3600)
    assert schedule_publish(store, "sched-1").in_flight is False


def test_a_claim_naming_another_schedule_s_job_shows_no_publish() -> None:
    """A claim left on sched-2 by a start whose job write failed, its key then used for sched-1: the
    window of sched-2 is not that job's."""
    store = MemoryJobStore()
    assert store.claim_schedule("sched-2", "job-1", time.time(), time.time() + 3600) is None
    store.create_job(job(JobStatus.WAITING))  # job-1 is sched-1's
    assert schedule_publish(store, "sched-2").wire() == {"scheduleId": "sched-2", "inFlight": False}
