"""Issue 9's cases, each pinned on the real core in virtual time (the store over DynamoDB in memory,
the simulator behind the real client). tests/unit/test_chaos.py runs the seeded fault schedules that
found them; tests/integration/test_store.py pins the store's side against moto over HTTP."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.support.faults import FaultyDynamoDB, on_item
from tests.support.virtual import (
    REQUEST,
    SCHEDULE,
    UPDATE,
    accept,
    applied_once,
    fault,
    quiet_demo,
    start,
    virtual_run,
)
from tests.support.virtual import quiet_demo as demo
from wfm_publish.cancel import cancel
from wfm_publish.errors import CancelRefused, IdempotencyKeyReused, JobEnded, StoreError
from wfm_publish.intake import LOCK_SECONDS, job_id_for
from wfm_publish.models import JobMessage, JobStatus, PublishRequest, ReasonCode, Refusal, Step
from wfm_publish.watchdog import OVERDUE_AFTER, Redrive, move_on, redrive_letter, rescue_overdue
from wfm_publish_local.memorydb import MemoryDynamoDB
from wfm_publish_local.virtual import JOBS_TABLE, MemoryJobStore, VirtualRun, _indexes


def test_an_update_whose_answer_was_lost_cannot_be_cancelled_and_ends_published() -> None:
    """Case 3: the update is applied, its answer times out. Cancel must not say CANCELLED."""
    lost = fault(UPDATE, ["pass"], "POST", latencySeconds=120)  # applied, answered after the timeout
    run, job_id = start(demo(faults=[lost]))
    while not any(e.event == "update outcome unknown; confirming" for e in run.job(job_id).timeline):
        assert run.step()
    assert run.job(job_id).status is JobStatus.PUBLISHING  # not WAITING: its outcome is unknown
    with pytest.raises(CancelRefused) as refused:
        cancel(run.store, run.transitions, job_id)
    assert refused.value.refusal is Refusal.PUBLISH_IN_PROGRESS
    assert run.run(job_id).status is JobStatus.PUBLISHED
    assert applied_once(run)


@pytest.mark.parametrize("retry_after", ["86400", "inf"])
def test_no_retry_after_holds_a_job_past_its_deadline(retry_after: str) -> None:
    """Case 9: Retry-After of a day (or infinity) on a job with deadlineSeconds 600."""
    always = fault("/api/v2/workforcemanagement/*", [429] * 1000, "GET", retryAfter=1)
    run, job_id = start(demo(faults=[always]), {**REQUEST, "deadlineSeconds": 600})
    adapter = run.genesys._session.get_adapter("http://genesys.virtual")  # type: ignore[attr-defined]
    answer = adapter.simulator.handle

    def with_retry_after(*args: Any, **kwargs: Any) -> Any:
        response = answer(*args, **kwargs)
        if response.status == 429:
            response.headers["Retry-After"] = retry_after
        return response

    adapter.simulator.handle = with_retry_after
    deadline = run.job(job_id).deadline_at
    job = run.run(job_id)
    assert (job.status, job.reason_code) == (JobStatus.FAILED, ReasonCode.DEADLINE_EXCEEDED)
    assert deadline <= job.updated_at <= deadline + 2  # it ends at its deadline, not a day later


def test_a_job_whose_message_was_lost_is_moved_on_by_the_watchdog() -> None:
    """Case 5: the job's write committed, its message is gone (dropped as an orphan, or lost)."""
    run, job_id = start(demo())
    while run.queues.next() is not None:  # every message of the job is lost
        pass
    run.clock.advance(OVERDUE_AFTER - 1)
    assert rescue_overdue(run.store, run.transitions, run.clock).found == 0  # not overdue yet
    run.clock.advance(10)
    assert rescue_overdue(run.store, run.transitions, run.clock).moved == 1
    job = run.run(job_id)
    assert job.status is JobStatus.PUBLISHED
    assert any(e.event == "step sent again by the watchdog" for e in job.timeline)
    assert applied_once(run)


def test_a_crashed_request_cannot_leave_its_key_to_another_body() -> None:
    """Case 8: the first request died holding the key; after its lock expires, the same key with
    another body is still a 422, and the original request's retry is still accepted."""
    run, _ = start(demo())
    first = PublishRequest.model_validate(REQUEST)
    token_holder = "key-crashed"
    run.store.lock_idempotency(
        token_holder, "hash-of-first", "dead-token", run.clock.now(), LOCK_SECONDS, 9e9
    )
    run.clock.advance(LOCK_SECONDS + 1)
    other = PublishRequest.model_validate({**REQUEST, "validationMode": "off"})
    with pytest.raises(IdempotencyKeyReused):
        run.intake.accept(other, token_holder)
    assert first  # (the first body's own retry is covered by the chaos seeds: same key, same job)


def test_a_retry_whose_first_answer_was_lost_gets_the_same_job_even_after_it_ended() -> None:
    """Case 1: the job was created and queued, the key's record was lost, the job published. The
    retry with the same key must not start a second job (it would publish twice)."""
    run, job_id = start(demo())
    assert run.run(job_id).status is JobStatus.PUBLISHED
    run.store.items.pop("idem#key-1")  # the key's record never made it
    again = run.intake.accept(PublishRequest.model_validate(REQUEST), "key-1")
    assert again.body["publishId"] == job_id
    while run.step():
        pass
    assert applied_once(run)


def test_a_redriven_dead_letter_moves_its_job_on_once_and_a_stale_one_does_nothing() -> None:
    """Issue 11: `ops dlq redrive`. The letter that is the job's current message moves the job on with
    a fresh ticket (the watchdog's move_on), never by being sent again; every other letter is obsolete."""
    run, job_id = start(demo())
    letter = run.queues.next()  # the job's first message: it "failed 5 times" and sits in the DLQ
    assert letter is not None
    message = JobMessage.model_validate_json(letter.body)
    stale = message.model_copy(update={"ticket": "an-older-ticket"})
    assert redrive_letter(run.store, run.transitions, stale, 5) is Redrive.OBSOLETE
    assert run.queues.next() is None  # nothing sent for it
    assert redrive_letter(run.store, run.transitions, message, 5) is Redrive.MOVED
    moved = run.job(job_id)
    assert moved.ticket != message.ticket and moved.timeline[-1].event == "redriven by an operator"
    assert moved.timeline[-1].detail == {"step": "validate", "receives": 5}
    # The same letter again (a second operator, a retried command): its ticket is stale now.
    assert redrive_letter(run.store, run.transitions, message, 5) is Redrive.OBSOLETE
    job = run.run(job_id)
    assert job.status is JobStatus.PUBLISHED
    assert applied_once(run)
    assert redrive_letter(run.store, run.transitions, message, 5) is Redrive.OBSOLETE  # ended


def test_move_on_confirms_a_publishing_job_rather_than_validating_it() -> None:
    """An update of ours may be out: the next step is a read of the schedule (CONFIRM), never a
    second publish; an ended job is not moved at all."""
    run, job_id = start(demo(events=[]))
    while run.job(job_id).status is not JobStatus.PUBLISHING:
        assert run.step()
    while run.queues.next() is not None:  # its confirm message is lost
        pass
    job = move_on(run.transitions, run.job(job_id), "moved on by the watchdog")
    delivery = run.queues.next()
    assert delivery is not None and JobMessage.model_validate_json(delivery.body).step.value == "confirm"
    assert JobMessage.model_validate_json(delivery.body).ticket == job.ticket
    run.pipeline.process(delivery.queue, JobMessage.model_validate_json(delivery.body))
    ended = run.run(job_id)
    assert ended.status is JobStatus.PUBLISHED and applied_once(run)
    with pytest.raises(JobEnded):
        move_on(run.transitions, ended, "too late")


def test_the_watchdog_never_makes_a_message_late_in_a_backlog_stale() -> None:
    """A message only delayed (a backlog) keeps its ticket: the watchdog sends a duplicate of it, so
    whichever copy comes first carries the job; a fresh ticket would send it to the back again."""
    run, job_id = start(demo())
    late = run.queues.next()  # the job's message, stuck in a backlog
    assert late is not None
    run.clock.advance(OVERDUE_AFTER + 10)
    assert rescue_overdue(run.store, run.transitions, run.clock).moved == 1
    assert run.job(job_id).ticket == JobMessage.model_validate_json(late.body).ticket
    run.pipeline.process(late.queue, JobMessage.model_validate_json(late.body))  # the late one still counts
    assert run.job(job_id).status is not JobStatus.QUEUED
    assert run.run(job_id).status is JobStatus.PUBLISHED
    assert applied_once(run)


def test_the_watchdog_ends_a_job_stuck_past_its_deadline_at_once() -> None:
    run, job_id = start(demo(), {**REQUEST, "deadlineSeconds": 60})
    while run.queues.next() is not None:  # every message lost
        pass
    run.clock.advance(OVERDUE_AFTER + 10)
    assert rescue_overdue(run.store, run.transitions, run.clock).moved == 1
    job = run.job(job_id)
    assert (job.status, job.reason_code) == (JobStatus.FAILED, ReasonCode.DEADLINE_EXCEEDED)


def test_a_retry_of_a_request_that_joined_a_job_which_then_ended_answers_that_job() -> None:
    """The chaos stack's seed 5: a request joined a job in flight (its callback with it), then died
    before its key's record was written. The joined job was cancelled and told that callback. The
    retry must answer the job it joined, not start one of its own, whose end would tell the same
    callback a second state."""
    run, first_id = start(demo())
    joiner = {**REQUEST, "callback": {"table": "change_request", "sysId": "c" * 32}}
    store = run.store

    def died(*_: object, **__: object) -> None:
        raise RuntimeError("the worker died before the key's record was written")

    store.complete_idempotency = died  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        run.intake.accept(PublishRequest.model_validate(joiner), "key-joiner")
    del store.complete_idempotency  # the store as it is again
    assert [j.key for j in run.job(first_id).joiners] == ["key-joiner"]
    cancel(run.store, run.transitions, first_id)
    retry = run.intake.accept(PublishRequest.model_validate(joiner), "key-joiner")
    assert retry.body["publishId"] == first_id and retry.body["joined"] is True
    assert retry.body["status"] == "CANCELLED"
    assert [j.job_id for j in run.store.jobs.values()] == [first_id]  # no second job


def failing_store() -> tuple[MemoryJobStore, FaultyDynamoDB]:
    """The one store over DynamoDB in memory, through a client whose writes can be made to fail."""
    db = FaultyDynamoDB(MemoryDynamoDB({JOBS_TABLE: _indexes()}))
    return MemoryJobStore(db), db  # type: ignore[arg-type]


def for_schedule(schedule_id: str, **more: Any) -> PublishRequest:
    return PublishRequest.model_validate({**REQUEST, "scheduleId": schedule_id, **more})


def test_a_key_refused_for_another_body_leaves_nothing_behind() -> None:
    """Case 3: key K starts a job for schedule A, its key's record fails to write (503). K again with a
    body for schedule B is a 422 that writes nothing: no claim on B naming A's job, which every later
    request for B would join."""
    store, db = failing_store()
    run = virtual_run(quiet_demo(), store=store)
    db.arm("put_item", on_item("idem#", status="COMPLETED"), "error")
    with pytest.raises(StoreError):
        run.intake.accept(for_schedule("sched-a"), "key-k")
    job_a = job_id_for("key-k")
    assert run.job(job_a).schedule_id == "sched-a"
    items, writes = copy.deepcopy(store.items), store.writes
    with pytest.raises(IdempotencyKeyReused):
        run.intake.accept(for_schedule("sched-b"), "key-k")
    assert store.writes == writes and store.items == items  # a refused request writes nothing
    assert store.active_job("sched-b") is None
    later = run.intake.accept(for_schedule("sched-b"), "key-later").body
    assert later["publishId"] != job_a and later["joined"] is False  # B gets a job of its own
    # The first body, sent again, still meets its own job.
    assert run.intake.accept(for_schedule("sched-a"), "key-k").body["publishId"] == job_a


def test_a_key_that_joined_a_job_is_refused_with_another_body_on_every_path() -> None:
    """Case 4: key K joins job X, then its key's record fails to write. K sent again with another body
    is a 422 (not a 202 naming X, stored under the new body); the same body still answers X."""
    store, db = failing_store()
    run = virtual_run(quiet_demo(), store=store)
    first = accept(run)
    joiner = {**REQUEST, "callback": {"table": "change_request", "sysId": "c" * 32}}
    db.arm("put_item", on_item("idem#", status="COMPLETED"), "error")
    with pytest.raises(StoreError):
        run.intake.accept(PublishRequest.model_validate(joiner), "key-joiner")
    assert [j.key for j in run.job(first).joiners] == ["key-joiner"]
    items, writes = copy.deepcopy(store.items), store.writes
    for other in ({**joiner, "validationMode": "off"}, {**joiner, "scheduleId": "sched-other"}):
        with pytest.raises(IdempotencyKeyReused):
            run.intake.accept(PublishRequest.model_validate(other), "key-joiner")
    assert store.writes == writes and store.items == items
    again = run.intake.accept(PublishRequest.model_validate(joiner), "key-joiner").body
    assert (again["publishId"], again["joined"]) == (first, True)


DEAD_LETTER_AFTER = 5 * 190.0  # five receives, each after the queue's visibility timeout


def confirm_letter(run: VirtualRun, job_id: str) -> JobMessage:
    """The job's update is posted; its confirm message keeps failing (a DynamoDB or SQS outage) and
    reaches the DLQ: taken from the queue, as SQS's redrive would."""
    while not any(e.event == "update accepted" for e in run.job(job_id).timeline):
        assert run.step()
    letter = run.queues.next()
    assert letter is not None
    message = JobMessage.model_validate_json(letter.body)
    assert message.step is Step.CONFIRM and message.ticket == run.job(job_id).ticket
    run.clock.advance(DEAD_LETTER_AFTER)
    return message


def test_a_dead_letter_whose_update_landed_ends_published_not_failed() -> None:
    """Case 2: Genesys applied the update; the confirm message went to the DLQ. The sweep must find
    out (a read of the schedule) before saying FAILED: it ends PUBLISHED."""
    run, job_id = start(demo())
    message = confirm_letter(run, job_id)
    assert run.pipeline.abandon(message, "the confirm step failed 5 times")
    job = run.job(job_id)
    assert (job.status, job.reason_code) == (JobStatus.PUBLISHED, ReasonCode.PUBLISHED)
    assert applied_once(run)
    assert not run.pipeline.abandon(message, "again")  # the letter's ticket is stale now


def test_a_dead_letter_whose_schedule_cannot_be_read_moves_its_job_on_and_the_job_still_ends() -> None:
    """Case 2: Genesys cannot be read at the sweep (a 503): not FAILED, the job is moved on to confirm
    with a fresh ticket, and ends PUBLISHED when the confirm reads the schedule."""
    at = DEAD_LETTER_AFTER  # simulator seconds around the sweep
    unreadable = {"path": SCHEDULE, "method": "GET", "status": 503, "after": at, "before": at + 10}
    run, job_id = start(demo(faults=[unreadable]))
    message = confirm_letter(run, job_id)
    assert run.pipeline.abandon(message, "the confirm step failed 5 times")
    moved = run.job(job_id)
    assert moved.status is JobStatus.PUBLISHING and moved.ticket != message.ticket
    assert moved.timeline[-1].event == "dead letter: moved on to find out whether the update landed"
    run.clock.advance(10)
    job = run.run(job_id)
    assert (job.status, job.reason_code) == (JobStatus.PUBLISHED, ReasonCode.PUBLISHED)
    assert applied_once(run)


def test_a_dead_letter_past_the_deadline_decides_as_the_deadline_does() -> None:
    """Case 2: the letter comes after the job's deadline: one look at the schedule, as the deadline
    path takes; the update landed, so PUBLISHED, whatever the clock says."""
    run, job_id = start(demo(), {**REQUEST, "deadlineSeconds": 600})
    message = confirm_letter(run, job_id)
    assert run.clock.now() > run.job(job_id).deadline_at
    assert run.pipeline.abandon(message, "the confirm step failed 5 times")
    assert run.job(job_id).status is JobStatus.PUBLISHED
    assert applied_once(run)


def test_a_dead_letter_past_the_deadline_that_cannot_find_out_still_ends_the_job() -> None:
    """Past the deadline with the schedule unreadable: the job ends now (FAILED, DEADLINE_EXCEEDED,
    saying Genesys may still apply the update), as the deadline path ends it: every job ends."""
    at = DEAD_LETTER_AFTER
    unreadable = {"path": SCHEDULE, "method": "GET", "status": 503, "after": at, "before": at + 10}
    run, job_id = start(demo(faults=[unreadable]), {**REQUEST, "deadlineSeconds": 600})
    message = confirm_letter(run, job_id)
    assert run.pipeline.abandon(message, "the confirm step failed 5 times")
    job = run.job(job_id)
    assert (job.status, job.reason_code) == (JobStatus.FAILED, ReasonCode.DEADLINE_EXCEEDED)
    assert job.detail is not None and "may still apply it" in job.detail


def test_a_claim_left_by_a_failed_start_never_makes_another_schedule_s_job_joinable() -> None:
    """Key K starts a job for schedule A: its claim is written, the job's write fails (503) and never
    lands. K is then free (nothing of its job exists), and starts a job for schedule B. A request for A
    must not join that job (the claim on A still names its id): it gets a job of its own."""
    store, db = failing_store()
    run = virtual_run(quiet_demo(), store=store)
    db.arm("put_item", on_item("job#"), "error")
    with pytest.raises(StoreError):
        run.intake.accept(for_schedule("sched-a"), "key-k")
    assert store.active_job("sched-a") is not None  # its write may have landed: the claim stays
    job_b = run.intake.accept(for_schedule("sched-b"), "key-k").body
    assert job_b["publishId"] == job_id_for("key-k")
    for_a = run.intake.accept(for_schedule("sched-a"), "key-a").body
    assert for_a["publishId"] != job_b["publishId"] and for_a["joined"] is False
    assert for_a["scheduleId"] == "sched-a"
    assert run.job(for_a["publishId"]).schedule_id == "sched-a"
