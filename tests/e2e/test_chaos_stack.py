"""Issue 9 on the real local stack, small: 30 jobs behind the fault proxy, with worker crashes, Genesys
faults, duplicates, joiners, reused keys and cancels; every invariant holds (`make chaos-stack` runs
1,000). Then the same evidence, doctored one way at a time, must fail the invariant it breaks: the
checks are not vacuous."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable

import pytest

from wfm_publish.models import JobStatus
from wfm_publish_local.chaos.stack.checks import Evidence, check
from wfm_publish_local.chaos.stack.options import ChaosOptions
from wfm_publish_local.chaos.stack.run import Outcome, Table, report, run
from wfm_publish_local.chaos.stack.traffic import Answer, Client
from wfm_publish_local.demo import SERVICENOW_BODY
from wfm_publish_local.embedded import EmbeddedStack
from wfm_publish_local.runner.crash import CrashPlan

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def outcome() -> Outcome:
    # No deadline jobs: their deadline is at least 60 s, longer than this run should take.
    # API deaths included: the one that once published twice (an intake that died between its job's
    # write and the key's record) now meets its own job on the retry (intake.job_id_for).
    options = ChaosOptions(
        jobs=30, seed=5, deadline_jobs=0, timeout=150, crash_rate=0.08, api_crash_rate=0.02
    )
    ran = run(options, echo=print)
    report(ran, echo=print)
    return ran


@pytest.mark.timeout(240)
def test_thirty_jobs_under_faults_and_crashes_keep_every_invariant(outcome: Outcome) -> None:
    assert outcome.ok, "\n".join(f"({v.invariant}) {v.message}" for v in outcome.violations)
    figures = outcome.figures
    assert figures.jobs >= 30
    assert sum(figures.aws_faults.values()) > 0 and figures.genesys_faults["injected"] > 0
    assert figures.by_status.get("PUBLISHED", 0) >= 20  # faults slow jobs down; they still publish
    assert figures.answers.get("other-body 422", 0) + figures.answers.get("duplicate 202", 0) > 0


def _published(evidence: Evidence) -> str:
    """A job that ended PUBLISHED, its schedule's only job."""
    schedules = Counter(job.schedule_id for job in evidence.jobs.values())
    return next(
        j
        for j, job in evidence.jobs.items()
        if job.status is JobStatus.PUBLISHED and schedules[job.schedule_id] == 1
    )


def _applied_twice(e: Evidence) -> None:
    e.applied[e.jobs[_published(e)].schedule_id] += 1


def _two_jobs_one_key(e: Evidence) -> None:
    job = e.jobs[_published(e)]
    e.jobs["copy"] = job.model_copy(update={"job_id": "copy"})


def _answered_not_ended(e: Evidence) -> None:
    publish_id = next(iter(e.views))
    e.views[publish_id] = (200, {"status": "WAITING"})


def _left_waiting(e: Evidence) -> None:
    job_id = _published(e)
    e.jobs[job_id] = e.jobs[job_id].model_copy(update={"status": JobStatus.WAITING})


def _cancelled_but_applied(e: Evidence) -> None:
    job_id = _published(e)
    e.jobs[job_id] = e.jobs[job_id].model_copy(update={"status": JobStatus.CANCELLED})


def _told_another_end(e: Evidence) -> None:
    callback = e.jobs[_published(e)].request.callback
    assert callback is not None
    e.told[(callback.table, callback.sys_id)] = ["PUBLISHED", "FAILED"]


def _key_answered_two_ids(e: Evidence) -> None:
    first = next(a for a in e.answers if a.kind == "first" and a.status == 202)
    e.answers.append(dataclasses.replace(first, kind="duplicate", publish_id="another", attempts=[]))


def _reused_key_accepted(e: Evidence) -> None:
    first = next(a for a in e.answers if a.kind == "first" and a.status == 202)
    e.answers.append(Answer("other-body", first.key, first.schedule_id, None, status=202))


def _ended_late(e: Evidence) -> None:
    job_id = _published(e)
    job = e.jobs[job_id]
    e.jobs[job_id] = job.model_copy(update={"updated_at": job.deadline_at + 3600})


@pytest.mark.parametrize(
    ("invariant", "doctor"),
    [
        (1, _applied_twice),
        (1, _two_jobs_one_key),
        (2, _answered_not_ended),
        (3, _left_waiting),
        (4, _cancelled_but_applied),
        (5, _told_another_end),
        (6, _key_answered_two_ids),
        (6, _reused_key_accepted),
        (7, _ended_late),
    ],
)
def test_a_broken_invariant_is_found(
    outcome: Outcome, invariant: int, doctor: Callable[[Evidence], None]
) -> None:
    e = outcome.evidence
    doctored = Evidence(
        jobs=dict(e.jobs),
        answers=list(e.answers),
        views=dict(e.views),
        applied=dict(e.applied),
        schedules=dict(e.schedules),
        told={k: list(v) for k, v in e.told.items()},
    )
    doctor(doctored)
    found = check(outcome.options, doctored)
    assert invariant in {v.invariant for v in found}, found


@pytest.mark.timeout(120)
def test_a_retry_after_the_api_died_past_the_job_write_publishes_once() -> None:
    """Found by this run (seed 11): two jobs and two publishes for one request, before job ids derived
    from the key. The first API invocation dies right after its 4th AWS call (create_job's PutItem:
    lock, claim, send, write); the caller retries the same key and body, as ServiceNow does after a
    502."""
    plan = CrashPlan({}, script={"PublishTriggerFunction": [8]})
    body = {
        **SERVICENOW_BODY,
        "validationMode": "off",
        "callback": {"table": "change_request", "sysId": "a" * 32},
    }
    with EmbeddedStack(visibility_timeout=3, crash=plan) as stack:
        stack.simulator.reset()
        client = Client(stack.api_url, stack.auth, patience=60)
        answer = client.publish("first", "one-request", body)
        assert answer.attempts[0][0] == 502 and plan.crashes["PublishTriggerFunction"] == 1
        assert answer.status == 202, answer.brief()
        stack.wait_for_publish(str(answer.publish_id), timeout=30)
        assert stack.stack is not None
        jobs = Table(stack.stack.endpoint_url, stack.stack.table_name).jobs()
        assert [j.idempotency_key for j in jobs.values()] == ["api:one-request"]
        assert stack.simulator.stats()["publishesApplied"] == {"sched-demo": 1}
