"""Cancel: one conditional write, so no step publishes after it, and an honest 409 when it is too late."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import virtual
from tests.support.faults import FaultyDynamoDB, on_item
from wfm_publish.cancel import cancel
from wfm_publish.errors import CancelRefused, PublishNotFound, StoreError
from wfm_publish.models import Job, JobStatus, ReasonCode, Refusal
from wfm_publish.notifier import Notifier
from wfm_publish.queues import QueueSender
from wfm_publish.transitions import Transitions
from wfm_publish_local.memorydb import MemoryDynamoDB
from wfm_publish_local.virtual import JOBS_TABLE, MemoryJobStore, VirtualRun, _indexes


def start(**changes: Any) -> tuple[VirtualRun, str]:
    """demo.yaml, with the top-level keys given replaced, and the demo's request accepted."""
    return virtual.start(virtual.demo(**changes))


def test_a_queued_job_is_cancelled_and_its_messages_do_nothing() -> None:
    run, job_id = start()
    done = cancel(run.store, run.transitions, job_id)
    assert (done.job.status, done.job.reason_code, done.already) == (
        JobStatus.CANCELLED,
        ReasonCode.CANCELLED,
        False,
    )
    assert "sched-demo" not in run.store.active  # the schedule is free for a new request
    while run.step():
        pass
    job = run.store.jobs[job_id]
    assert job.status is JobStatus.CANCELLED
    assert run.simulator.stats()["publishesApplied"] == {}
    assert sum(run.simulator.stats()["calls"].values()) == 0  # the message found a terminal job


def test_cancelling_twice_is_idempotent_and_writes_nothing() -> None:
    run, job_id = start()
    cancel(run.store, run.transitions, job_id)
    writes = run.store.writes
    again = cancel(run.store, run.transitions, job_id)
    assert again.already and again.job.status is JobStatus.CANCELLED
    assert run.store.writes == writes


def test_an_unknown_job_is_not_found() -> None:
    with pytest.raises(PublishNotFound):
        cancel(MemoryJobStore(), None, "nope")  # type: ignore[arg-type]


def test_a_published_job_cannot_be_cancelled() -> None:
    run, job_id = start()
    assert run.run(job_id).status is JobStatus.PUBLISHED
    with pytest.raises(CancelRefused) as caught:
        cancel(run.store, run.transitions, job_id)
    assert caught.value.refusal is Refusal.ALREADY_ENDED


def test_a_cancel_that_meets_a_publish_in_progress_says_so_and_the_job_publishes() -> None:
    run, job_id = start(events=[])  # no telephony change, no other writer: straight to publishing
    while run.store.jobs[job_id].status is not JobStatus.PUBLISHING:
        assert run.step()
    with pytest.raises(CancelRefused) as caught:
        cancel(run.store, run.transitions, job_id)
    assert caught.value.refusal is Refusal.PUBLISH_IN_PROGRESS
    assert run.run(job_id).status is JobStatus.PUBLISHED  # what the 409 told the caller to expect
    assert run.simulator.stats()["publishesApplied"] == {"sched-demo": 1}


class CancelBetweenReadAndWrite(MemoryJobStore):
    """A cancel that lands after a pipeline step read the job and before it wrote its next state."""

    def __init__(self, run: VirtualRun) -> None:
        super().__init__(run.store.db)  # the same table
        self.transitions = Transitions(run.store, QueueSender(run.queues, run.clock), run.clock)
        self.armed_for: str | None = None
        self.cancelled: Job | None = None

    def get_job(self, job_id: str) -> Job | None:
        job = super().get_job(job_id)
        if job_id == self.armed_for:
            self.armed_for = None
            self.cancelled = cancel(self, self.transitions, job_id).job
        return job


def test_a_cancel_that_wins_the_race_stops_the_publish() -> None:
    run, job_id = start(events=[])
    store = CancelBetweenReadAndWrite(run)
    run.pipeline.store = store
    store.armed_for = job_id  # the validation step reads the job, then the cancel commits
    while run.step():
        pass
    assert store.cancelled is not None
    assert run.store.jobs[job_id].status is JobStatus.CANCELLED
    # The step's conditional write lost: it never posted the update.
    assert run.simulator.stats()["publishesApplied"] == {}
    assert not any(key.endswith("/update") for key in run.simulator.stats()["calls"])


def test_an_update_genesys_accepted_but_never_confirmed_blocks_the_cancel() -> None:
    run, job_id = start(events=[])
    job = run.store.jobs[job_id]
    # Back to validation after the confirmation timed out: the update (base version 3) may still land.
    run.store.jobs[job_id] = job.model_copy(
        update={"status": JobStatus.WAITING, "pending_base_version": 3, "operation_id": "op-1"}
    )
    with pytest.raises(CancelRefused) as caught:
        cancel(run.store, run.transitions, job_id)
    assert caught.value.refusal is Refusal.PUBLISH_IN_PROGRESS


class Records:
    """ServiceNow's callback records, in memory: what the notifier PATCHed, in order."""

    def __init__(self) -> None:
        self.patches: list[tuple[str, str]] = []

    def read_record(self, table: str, sys_id: str, fields: list[str]) -> dict[str, str]:
        return {}

    def update_record(self, table: str, sys_id: str, fields: dict[str, str]) -> dict[str, str]:
        self.patches.append((fields["u_wfm_publish_id"], fields["u_wfm_publish_status"]))
        return {"sys_id": sys_id}


def test_a_cancel_whose_answer_was_lost_still_frees_the_schedule_after_the_notifier_wrote() -> None:
    """Case 7: the CANCELLED write lands, its answer is lost; the notifier notes the callback on the job
    before botocore sends the write again, which then fails its condition on the notifier's write: the
    cancel finds the job cancelled. The schedule's claim, ours, must still go."""
    db = FaultyDynamoDB(MemoryDynamoDB({JOBS_TABLE: _indexes()}))
    store = MemoryJobStore(db)  # type: ignore[arg-type]
    run = virtual.virtual_run(virtual.demo(), store=store)
    body = {**virtual.REQUEST, "callback": {"table": "change_request", "sysId": "c" * 32}}
    job_id = virtual.accept(run, body)
    assert store.active_job("sched-demo") is not None
    records = Records()
    notifier = Notifier(store, lambda: records, run.clock)  # type: ignore[arg-type, return-value]

    def notifier_writes() -> None:  # the stream's record of the end, told and noted meanwhile
        ended = store.get_job(job_id)
        assert ended is not None and ended.status is JobStatus.CANCELLED
        notifier.notify(ended)

    db.arm("update_item", on_item("job#"), "lost_answer", meanwhile=notifier_writes)
    done = cancel(store, run.transitions, job_id)
    assert done.job.status is JobStatus.CANCELLED
    assert records.patches == [(job_id, "CANCELLED")]
    assert store.active_job("sched-demo") is None  # freed: the next request starts its own job


def test_a_cancel_retried_after_its_release_failed_frees_the_schedule() -> None:
    """The cancel committed, freeing the schedule failed (503 to the caller); the caller's retry
    answers already cancelled, and frees the schedule this time."""
    db = FaultyDynamoDB(MemoryDynamoDB({JOBS_TABLE: _indexes()}))
    store = MemoryJobStore(db)  # type: ignore[arg-type]
    run = virtual.virtual_run(virtual.demo(), store=store)
    job_id = virtual.accept(run)
    db.arm("delete_item", on_item("schedule#"), "error")
    with pytest.raises(StoreError):
        cancel(store, run.transitions, job_id)
    assert store.active_job("sched-demo") is not None
    again = cancel(store, run.transitions, job_id)
    assert again.already and again.job.status is JobStatus.CANCELLED
    assert store.active_job("sched-demo") is None
    # Someone else's claim is never freed by a cancel of ours.
    other = virtual.accept(run, key="key-2")
    assert store.active_job("sched-demo") == (other, store.active_job("sched-demo")[1])  # type: ignore[index]
    cancel(store, run.transitions, job_id)
    assert store.active_job("sched-demo") is not None
