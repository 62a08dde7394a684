"""Conditional writes against DynamoDB (moto server over HTTP): two workers can never both move a job."""

from __future__ import annotations

import uuid

import pytest

from wfm_publish.errors import JobAlreadyExists, StaleJob
from wfm_publish.models import Job, JobStatus, PublishRequest
from wfm_publish.store import DynamoJobStore, IdempotencyStatus, IdempotencyTaken

NOW = 1_700_000_000.0


def a_job(schedule_id: str = "sched-1") -> Job:
    return Job(
        job_id=uuid.uuid4().hex,
        schedule_id=schedule_id,
        request=PublishRequest(schedule_id=schedule_id),
        ticket="t0",
        created_at=NOW,
        updated_at=NOW,
        deadline_at=NOW + 3600,
    )


def test_a_job_is_created_once(store: DynamoJobStore) -> None:
    job = a_job()
    store.create_job(job)
    with pytest.raises(JobAlreadyExists):
        store.create_job(job)
    assert store.get_job(job.job_id) == job


def test_a_state_change_from_a_stale_read_is_refused(store: DynamoJobStore) -> None:
    job = a_job()
    store.create_job(job)
    first_reader = store.get_job(job.job_id)
    second_reader = store.get_job(job.job_id)
    assert first_reader is not None and second_reader is not None

    moved = store.save_job(first_reader.model_copy(update={"status": JobStatus.WAITING, "ticket": "t1"}))
    assert moved.version == 1

    with pytest.raises(StaleJob) as refused:
        store.save_job(second_reader.model_copy(update={"status": JobStatus.PUBLISHING, "ticket": "t2"}))
    # The refusal says who won, read from the failed condition itself.
    assert refused.value.current is not None
    assert refused.value.current.ticket == "t1"
    stored = store.get_job(job.job_id)
    assert stored is not None and stored.status is JobStatus.WAITING and stored.version == 1


def test_one_active_job_per_schedule(store: DynamoJobStore) -> None:
    first, second = a_job("sched-busy"), a_job("sched-busy")
    store.create_job(first)
    assert store.claim_schedule("sched-busy", first.job_id, NOW) is None
    assert store.claim_schedule("sched-busy", second.job_id, NOW) == first.job_id


def test_a_schedule_whose_job_ended_can_be_claimed_again(store: DynamoJobStore) -> None:
    ended, fresh = a_job("sched-ended"), a_job("sched-ended")
    store.create_job(ended.model_copy(update={"status": JobStatus.PUBLISHED}))
    assert store.claim_schedule("sched-ended", ended.job_id, NOW) is None
    # The release was lost (a crash after the job ended): the next job still gets the schedule.
    assert store.claim_schedule("sched-ended", fresh.job_id, NOW) is None
    store.release_schedule("sched-ended", ended.job_id)  # not the holder any more: changes nothing
    assert store.claim_schedule("sched-ended", a_job().job_id, NOW) == fresh.job_id


def test_a_claim_whose_job_is_being_written_is_respected_then_expires(store: DynamoJobStore) -> None:
    in_flight, late = a_job("sched-racing"), a_job("sched-racing")
    assert store.claim_schedule("sched-racing", in_flight.job_id, NOW) is None  # job not written yet
    assert store.claim_schedule("sched-racing", late.job_id, NOW + 1) == in_flight.job_id
    # A claim whose job never got written (the intake died) does not hold the schedule forever.
    assert store.claim_schedule("sched-racing", late.job_id, NOW + 120) is None


def test_idempotency_key_is_locked_then_completed(store: DynamoJobStore) -> None:
    key = f"key-{uuid.uuid4()}"
    store.lock_idempotency(key, "hash-a", NOW, 30)
    with pytest.raises(IdempotencyTaken) as taken:
        store.lock_idempotency(key, "hash-a", NOW + 1, 30)
    assert taken.value.record.status is IdempotencyStatus.IN_PROGRESS

    store.complete_idempotency(key, "hash-a", {"publishId": "p1"}, NOW + 2)
    with pytest.raises(IdempotencyTaken) as replay:
        store.lock_idempotency(key, "hash-b", NOW + 3, 30)
    assert replay.value.record.status is IdempotencyStatus.COMPLETED
    assert replay.value.record.body_hash == "hash-a"
    assert replay.value.record.response == {"publishId": "p1"}


def test_a_lock_left_by_a_crashed_request_expires(store: DynamoJobStore) -> None:
    key = f"key-{uuid.uuid4()}"
    store.lock_idempotency(key, "hash-a", NOW, 30)
    store.lock_idempotency(key, "hash-a", NOW + 31, 30)  # no error: the old lock ran out
