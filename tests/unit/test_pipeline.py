"""The pipeline's decisions, step by step in virtual time: the real core, the simulator in-process."""

from __future__ import annotations

from typing import Any

from tests.support.virtual import REQUEST, demo, edge_update, events, start
from wfm_publish.models import JobMessage, JobStatus, ReasonCode, Step
from wfm_publish.pipeline import Pipeline
from wfm_publish.queues import Queue
from wfm_publish.scope import TelephonyOptions


def test_waits_for_telephony_then_recovers_from_a_stale_version_409() -> None:
    run, job_id = start(demo())
    job = run.run(job_id)
    assert job.status is JobStatus.PUBLISHED
    assert events(job).index("telephony not settled") < events(job).index("publishing")
    assert "409 conflict" in events(job)
    assert job.publish_attempts == 2
    assert run.simulator.stats()["publishesApplied"] == {"sched-demo": 1}
    # The wait ended when the settle window closed: the first publish met no telephony 409.
    assert run.simulator.stats()["conflictsSent"]["telephony"] == 0


def test_a_duplicate_delivery_publishes_nothing_twice() -> None:
    run, job_id = start(demo(events=[]))
    queued = run.store.jobs[job_id]
    duplicate = JobMessage(job_id=job_id, ticket=queued.ticket, step=Step.VALIDATE)
    for _ in range(3):  # SQS delivers at least once: here, four times
        run.queues.send(Queue.VALIDATION, duplicate.model_dump_json(by_alias=True), 5)
    job = run.run(job_id)
    assert job.status is JobStatus.PUBLISHED
    assert run.simulator.stats()["publishesApplied"] == {"sched-demo": 1}
    assert job.publish_attempts == 1


def test_a_429_becomes_a_queue_delay_and_costs_no_attempt() -> None:
    fault = {
        "path": "/api/v2/workforcemanagement/businessunits/*/update",
        "method": "POST",
        "sequence": [429],
        "retryAfter": 7,
    }
    run, job_id = start(demo(events=[], faults=[fault]))
    job = run.run(job_id)
    assert job.status is JobStatus.PUBLISHED
    limited = next(e for e in job.timeline if e.event == "rate limited by Genesys")
    assert limited.detail["retryAfter"] == 7
    after = next(e for e in job.timeline if e.at > limited.at)
    assert after.at - limited.at >= 7  # waited on the queue, not in the function
    assert job.publish_attempts == 1


def test_a_5xx_backs_off_and_then_publishes() -> None:
    fault = {"path": "/api/v2/telephony/providers/edges/trunks", "sequence": [503, 503]}
    run, job_id = start(demo(events=[], faults=[fault]))
    job = run.run(job_id)
    assert job.status is JobStatus.PUBLISHED
    assert job.transient_failures == 2
    assert events(job).count("Genesys unavailable; backing off") == 2


def test_a_lost_update_operation_is_noticed_and_published_again() -> None:
    operation = {"type": "publishOperation", "scheduleId": "sched-demo", "failFirst": 1}
    run, job_id = start(demo(events=[operation]))
    job = run.run(job_id)
    assert job.status is JobStatus.PUBLISHED
    assert "update was not applied; validating again" in events(job)
    assert run.simulator.stats()["publishesApplied"] == {"sched-demo": 1}


def test_a_change_longer_than_the_deadline_fails_with_a_reason() -> None:
    change = edge_update(7200)
    run, job_id = start(demo(events=[change]), deadline_seconds=600)
    job = run.run(job_id)
    assert job.status is JobStatus.FAILED
    assert job.reason_code is ReasonCode.DEADLINE_EXCEEDED
    assert run.simulator.stats()["publishesApplied"] == {}


def test_an_unknown_schedule_fails_schedule_not_found() -> None:
    run, job_id = start(demo(), {**REQUEST, "scheduleId": "sched-nope"})
    job = run.run(job_id)
    assert job.status is JobStatus.FAILED
    assert job.reason_code is ReasonCode.SCHEDULE_NOT_FOUND


def test_validation_off_publishes_without_reading_telephony() -> None:
    run, job_id = start(demo(events=[]), {**REQUEST, "validationMode": "off"})
    job = run.run(job_id)
    assert job.status is JobStatus.PUBLISHED
    calls = run.simulator.stats()["calls"]
    assert not any("telephony" in route for route in calls)


def test_a_job_whose_message_reached_a_dlq_ends_failed_with_the_reason() -> None:
    run, job_id = start(demo(events=[]))
    current = run.store.jobs[job_id]
    stranded = JobMessage(job_id=job_id, ticket=current.ticket, step=Step.VALIDATE)
    assert run.pipeline.abandon(stranded, "the validate step failed 5 times")
    job = run.store.jobs[job_id]
    assert job.status is JobStatus.FAILED
    assert job.reason_code is ReasonCode.PROCESSING_FAILED
    assert job.detail == "the validate step failed 5 times"
    # Once ended, nothing ends it again.
    assert not run.pipeline.abandon(stranded, "again")


def test_a_message_that_arrives_before_its_write_comes_back_instead_of_being_dropped() -> None:
    """The follow-up message is sent a moment before the job's write: on another queue's consumer it
    can arrive first. It must wait for the write, not be taken for a stale duplicate."""
    run, job_id = start(demo(events=[]))
    queued = run.store.jobs[job_id]
    ahead = JobMessage(
        job_id=job_id, ticket="not-written-yet", step=Step.CONFLICT, version=queued.version + 1
    )
    sent_before = run.queues.messages_sent
    run.pipeline.process(Queue.CONFLICT, ahead)
    assert run.queues.messages_sent == sent_before + 1  # sent back for another look
    assert run.store.jobs[job_id] == queued  # and nothing else happened
    # A write that never happens (its worker died) leaves an orphan that gives up after a few looks.
    run.pipeline.process(Queue.CONFLICT, ahead.model_copy(update={"early": 5}))
    assert run.queues.messages_sent == sent_before + 1


def test_a_validation_message_that_beats_the_job_s_creation_waits_for_it() -> None:
    run, job_id = start(demo(events=[]))
    queued = run.store.jobs.pop(job_id)  # as if intake's write were still on its way
    first = JobMessage(job_id=job_id, ticket=queued.ticket, step=Step.VALIDATE, version=0)
    run.pipeline.process(Queue.VALIDATION, first)
    run.store.jobs[job_id] = queued  # the write lands
    job = run.run(job_id)
    assert job.status is JobStatus.PUBLISHED
    assert run.simulator.stats()["publishesApplied"] == {"sched-demo": 1}


def test_only_a_step_that_reads_genesys_builds_the_client_and_the_telephony_options() -> None:
    """services() hands the pipeline factories (a cold start without requests, the wire models and the
    telephony code): a stale message and a dead letter never call them; the steps that read do, once."""
    run, job_id = start(demo(events=[]))
    built: list[str] = []

    def client() -> Any:
        built.append("genesys")
        return run.genesys

    def options() -> TelephonyOptions:
        built.append("options")
        return TelephonyOptions()

    lazy = Pipeline(run.store, run.pipeline.queues, client, run.clock, run.pipeline.timing, options=options)
    run.pipeline = lazy
    stale = JobMessage(job_id=job_id, ticket="not-the-current-ticket", step=Step.VALIDATE)
    lazy.process(Queue.VALIDATION, stale)
    assert not lazy.abandon(stale, "a stale dead letter")
    assert built == []
    job = run.run(job_id)
    assert job.status is JobStatus.PUBLISHED
    assert sorted(built) == ["genesys", "options"]
