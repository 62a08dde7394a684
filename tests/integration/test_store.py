"""Conditional writes against DynamoDB (moto server over HTTP): two workers can never both move a job."""

from __future__ import annotations

import uuid

import pytest

from wfm_publish.errors import IdempotencyTaken, JobAlreadyExists, StaleJob
from wfm_publish.models import IdempotencyStatus, Job, JobStatus, PublishRequest
from wfm_publish.store import DynamoJobStore

NOW = 1_700_000_000.0
LATER = NOW + 3600


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
    assert store.claim_schedule("sched-busy", first.job_id, NOW, LATER) is None
    assert store.claim_schedule("sched-busy", second.job_id, NOW, LATER) == first.job_id


def test_a_schedule_whose_job_ended_can_be_claimed_again(store: DynamoJobStore) -> None:
    ended, fresh = a_job("sched-ended"), a_job("sched-ended")
    store.create_job(ended.model_copy(update={"status": JobStatus.PUBLISHED}))
    assert store.claim_schedule("sched-ended", ended.job_id, NOW, LATER) is None
    # The release was lost (a crash after the job ended): the next job still gets the schedule.
    assert store.claim_schedule("sched-ended", fresh.job_id, NOW, LATER) is None
    store.release_schedule("sched-ended", ended.job_id)  # not the holder any more: changes nothing
    assert store.claim_schedule("sched-ended", a_job().job_id, NOW, LATER) == fresh.job_id


def test_a_claim_whose_job_is_being_written_is_respected_then_expires(store: DynamoJobStore) -> None:
    in_flight, late = a_job("sched-racing"), a_job("sched-racing")
    assert store.claim_schedule("sched-racing", in_flight.job_id, NOW, LATER) is None  # job not written yet
    assert store.claim_schedule("sched-racing", late.job_id, NOW + 1, LATER) == in_flight.job_id
    # A claim whose job never got written (the intake died) does not hold the schedule forever.
    assert store.claim_schedule("sched-racing", late.job_id, NOW + 120, LATER) is None


def test_idempotency_key_is_locked_then_completed(store: DynamoJobStore) -> None:
    key = f"key-{uuid.uuid4()}"
    store.lock_idempotency(key, "hash-a", "tok-1", NOW, 30, LATER)
    with pytest.raises(IdempotencyTaken) as taken:
        store.lock_idempotency(key, "hash-a", "tok-2", NOW + 1, 30, LATER)
    assert taken.value.record.status is IdempotencyStatus.IN_PROGRESS

    store.complete_idempotency(key, "hash-a", "tok-1", {"publishId": "p1"}, LATER)
    with pytest.raises(IdempotencyTaken) as replay:
        store.lock_idempotency(key, "hash-b", "tok-3", NOW + 3, 30, LATER)
    assert replay.value.record.status is IdempotencyStatus.COMPLETED
    assert replay.value.record.body_hash == "hash-a"
    assert replay.value.record.response == {"publishId": "p1"}


def test_a_lock_left_by_a_crashed_request_expires(store: DynamoJobStore) -> None:
    key = f"key-{uuid.uuid4()}"
    store.lock_idempotency(key, "hash-a", "tok-1", NOW, 30, LATER)
    store.lock_idempotency(key, "hash-a", "tok-2", NOW + 31, 30, LATER)  # no error: the old lock ran out


# --- a write that lands while its answer is lost (issue 9, case 1) ---------------------------------------
# botocore re-sends a request whose answer it did not get (a read timeout, a reset, a 5xx after the
# commit). Here botocore's own retry machinery re-sends the very same request once after it landed,
# which is what production sees: the retry meets our own write and fails its condition.


def answer_lost_once(store: DynamoJobStore, operation: str) -> list[int]:
    """The next `operation` call lands on moto, then botocore sends it again (as after a lost answer)."""
    retried: list[int] = []

    def retry_once(attempts: int, **_: object) -> float | None:
        if attempts == 1 and not retried:
            retried.append(attempts)
            return 0.0  # botocore: "retry after 0 s"
        return None

    store._db.meta.events.register(f"needs-retry.dynamodb.{operation}", retry_once)
    return retried


def test_a_created_job_whose_answer_was_lost_is_created_not_refused(store: DynamoJobStore) -> None:
    job = a_job()
    retried = answer_lost_once(store, "PutItem")
    store.create_job(job)  # the retry fails attribute_not_exists on our own item: still a success
    assert retried == [1]
    assert store.get_job(job.job_id) == job
    with pytest.raises(JobAlreadyExists):
        store.create_job(job.model_copy(update={"ticket": "someone else"}))  # another writer is refused


def test_a_state_change_whose_answer_was_lost_is_ours_not_stale(store: DynamoJobStore) -> None:
    job = a_job()
    store.create_job(job)
    retried = answer_lost_once(store, "UpdateItem")
    moved = store.save_job(job.model_copy(update={"status": JobStatus.PUBLISHING, "ticket": "t1"}))
    assert retried == [1]
    assert (moved.version, moved.status) == (1, JobStatus.PUBLISHING)
    stored = store.get_job(job.job_id)
    assert stored is not None and (stored.version, stored.ticket) == (1, "t1")


def test_a_claim_whose_answer_was_lost_is_held_not_joined(store: DynamoJobStore) -> None:
    job = a_job("sched-lost")
    retried = answer_lost_once(store, "PutItem")
    assert store.claim_schedule("sched-lost", job.job_id, NOW, LATER) is None  # ours, not "held by" us
    assert retried == [1]
    assert store.active_job("sched-lost") is not None
    assert store.active_job("sched-lost")[0] == job.job_id  # type: ignore[index]


def test_a_lock_whose_answer_was_lost_is_ours(store: DynamoJobStore) -> None:
    key = f"key-{uuid.uuid4()}"
    retried = answer_lost_once(store, "PutItem")
    store.lock_idempotency(key, "hash-a", "tok-1", NOW, 30, LATER)  # no IdempotencyTaken from ourselves
    assert retried == [1]


def test_an_expired_lock_is_not_taken_over_with_another_body(store: DynamoJobStore) -> None:
    key = f"key-{uuid.uuid4()}"
    store.lock_idempotency(key, "hash-a", "tok-1", NOW, 30, LATER)
    with pytest.raises(IdempotencyTaken) as taken:
        store.lock_idempotency(key, "hash-b", "tok-2", NOW + 31, 30, LATER)  # crashed first request
    assert taken.value.record.body_hash == "hash-a"  # intake answers 422, always


def test_releasing_a_key_never_removes_another_requests_lock(store: DynamoJobStore) -> None:
    key = f"key-{uuid.uuid4()}"
    store.lock_idempotency(key, "hash-a", "tok-1", NOW, 30, LATER)
    store.lock_idempotency(key, "hash-a", "tok-2", NOW + 31, 30, LATER)  # a retry took the expired lock
    store.release_idempotency(key, "tok-1")  # the first request gives up late: not its lock any more
    with pytest.raises(IdempotencyTaken) as taken:
        store.lock_idempotency(key, "hash-a", "tok-3", NOW + 32, 30, LATER)
    assert taken.value.record.token == "tok-2"


def test_a_job_lives_until_its_deadline_plus_retention(store: DynamoJobStore) -> None:
    """TTL counts from the last moment the item is needed: a publishTime weeks ahead is not deleted
    before its first look (issue 9, case 4)."""
    job = a_job().model_copy(update={"deadline_at": NOW + 60 * 86_400})  # due in two months
    store.create_job(job)
    item = store._get(f"job#{job.job_id}")
    assert item is not None
    assert int(item["expiresAt"]["N"]) == int(NOW + 60 * 86_400 + 30 * 86_400)


def test_overdue_jobs_come_from_the_due_index(store: DynamoJobStore) -> None:
    late = a_job().model_copy(update={"due_at": NOW - 900})
    on_time = a_job().model_copy(update={"due_at": NOW + 60})
    ended = a_job().model_copy(update={"due_at": NOW - 900, "status": JobStatus.PUBLISHED})
    for job in (late, on_time, ended):
        store.create_job(job)
    assert store.overdue_jobs(NOW - 300) == [late.job_id]  # ended jobs leave the index


def test_a_join_is_noted_beside_the_job_and_never_on_an_ended_one(store: DynamoJobStore) -> None:
    from wfm_publish.errors import JobEnded
    from wfm_publish.models import Callback, Joiner

    job = a_job()
    store.create_job(job)
    joiner = Joiner(key="k2", callback=Callback(table="change_request", sys_id="a" * 32), at=NOW)
    store.add_joiner(job.job_id, joiner)
    stored = store.get_job(job.job_id)
    assert stored is not None and stored.joiners == [joiner]
    # A pipeline step that read the job before the join still commits: the join bumps no version.
    store.save_job(job.model_copy(update={"status": JobStatus.PUBLISHED}))
    with pytest.raises(JobEnded):
        store.add_joiner(job.job_id, joiner.model_copy(update={"key": "k3"}))
    ended = store.get_job(job.job_id)
    assert ended is not None and [j.key for j in ended.joiners] == ["k2"]


def test_jobs_by_status_come_from_the_status_index_newest_first_page_by_page(store: DynamoJobStore) -> None:
    jobs = [a_job().model_copy(update={"created_at": NOW + i}) for i in range(5)]
    for job in jobs:
        store.create_job(job)
    other = a_job().model_copy(update={"status": JobStatus.WAITING})
    store.create_job(other)
    newest_first = [j.job_id for j in reversed(jobs)]
    assert store.jobs_by_status(JobStatus.QUEUED) == newest_first
    assert store.jobs_by_status(JobStatus.QUEUED, most=2) == newest_first[:2]
    assert list(store.iter_jobs_by_status(JobStatus.QUEUED, page=2)) == newest_first  # three pages
    assert store.jobs_by_status(JobStatus.QUEUED, since=NOW + 3) == newest_first[:2]
    assert store.jobs_by_status(JobStatus.WAITING) == [other.job_id]


def test_a_join_is_refused_on_a_job_ended_checked(store: DynamoJobStore) -> None:
    """The condition names every terminal status (CHECKED, a dry run's end, included)."""
    from wfm_publish.errors import JobEnded
    from wfm_publish.models import Callback, Joiner

    job = a_job()
    store.create_job(job)
    store.save_job(job.model_copy(update={"status": JobStatus.CHECKED}))
    with pytest.raises(JobEnded):
        store.add_joiner(job.job_id, Joiner(key="k2", callback=Callback(table="t", sys_id="a" * 32), at=NOW))


class ReleasedBetweenLookAndTakeover(DynamoJobStore):
    """The holder's release lands between our "is it still active?" look and our takeover put."""

    def _still_active(self, schedule_id: str, holder: str, claimed_at: float, now: float) -> bool:
        self.release_schedule("sched-phantom", holder)
        return False


def test_a_claim_released_under_a_takeover_is_taken_not_joined(store: DynamoJobStore) -> None:
    """Case 2: the takeover's condition then fails on a missing item. It must not answer our own id
    as "the job in flight" (a phantom join): it claims the schedule afresh."""
    ended, fresh = a_job("sched-phantom"), a_job("sched-phantom")
    store.create_job(ended.model_copy(update={"status": JobStatus.PUBLISHED}))
    assert store.claim_schedule("sched-phantom", ended.job_id, NOW, LATER) is None
    racing = ReleasedBetweenLookAndTakeover(store._db, store._table)
    assert racing.claim_schedule("sched-phantom", fresh.job_id, NOW, LATER) is None
    assert store.active_job("sched-phantom") is not None
    assert store.active_job("sched-phantom")[0] == fresh.job_id  # type: ignore[index]


def test_a_watch_lists_each_job_once_and_forgets_the_ones_removed(store: DynamoJobStore) -> None:
    # The same ADD twice (a retried step) lists the job once; DELETE of the last id removes the set.
    entity = f"edge-{uuid.uuid4().hex[:8]}"
    store.watch("job-a", [entity, entity], NOW)
    store.watch("job-a", [entity], NOW)
    store.watch("job-b", [entity, "trunk-x"], NOW)
    assert store.watchers(entity) == ["job-a", "job-b"]
    store.unwatch(entity, ["job-a"])
    assert store.watchers(entity) == ["job-b"]
    store.unwatch(entity, ["job-b", "job-never-there"])
    assert store.watchers(entity) == []
    assert store.watchers("edge-nobody-watches") == []


def test_a_watch_only_ever_lives_longer(store: DynamoJobStore) -> None:
    """Case 6: two jobs watch one Edge; the one with the shorter deadline never shortens the other's
    watch (its TTL), whatever the order: with deadlines over a day apart the longer one would lose its
    wake-up."""
    entity = f"edge-{uuid.uuid4().hex[:6]}"
    long_deadline, short_deadline = NOW + 7 * 86_400, NOW + 3600

    def expires() -> int:
        item = store._db.get_item(TableName=store._table, Key={"pk": {"S": f"watch#{entity}"}})["Item"]
        return int(item["expiresAt"]["N"])

    store.watch("job-long", [entity], long_deadline)
    first = expires()
    assert first >= long_deadline + 86_400  # a day after the job's deadline
    store.watch("job-short", [entity], short_deadline)
    assert expires() == first
    assert store.watchers(entity) == ["job-long", "job-short"]  # the shorter job is still added
    store.watch("job-longer", [entity], long_deadline + 86_400)
    assert expires() == first + 86_400  # a longer one lengthens it
