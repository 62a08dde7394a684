"""Quiet looks (issue 12): polling a change that lasts, a job writes once per QUIET_WINDOW, not once
per look; the looks in between send the next one with the same ticket and write nothing."""

from __future__ import annotations

from tests.support.virtual import demo, edge_update, start
from wfm_publish.models import NOT_SETTLED, JobMessage, JobStatus
from wfm_publish.waiting import QUIET_MARGIN, QUIET_WINDOW
from wfm_publish.watchdog import rescue_overdue
from wfm_publish_local.virtual import VirtualRun

SIX_HOURS = 6 * 3600.0


def counting_job_writes(run: VirtualRun) -> list[str]:
    written: list[str] = []
    run.store.db.on_write.append(lambda _table, _old, new: written.append(new["pk"]["S"]) if new else None)
    return written


def test_a_six_hour_change_writes_the_job_once_per_quiet_window() -> None:
    run, job_id = start(demo(events=[edge_update(SIX_HOURS)]))
    written = counting_job_writes(run)
    job = run.run(job_id)
    assert job.status is JobStatus.PUBLISHED
    assert job.readiness_checks > 150  # it looked every ~2 minutes all along ...
    assert (
        written.count(f"job#{job_id}") <= SIX_HOURS / (QUIET_WINDOW - QUIET_MARGIN) + 8
    )  # ... wrote ~15 times
    [waits] = [e for e in job.timeline if e.event == NOT_SETTLED]
    assert waits.times == job.readiness_checks - 1  # every look is counted, quiet or not
    assert run.simulator.stats()["publishesApplied"] == {"sched-demo": 1}


def test_the_watchdog_leaves_a_job_in_quiet_looks_alone() -> None:
    run, job_id = start(demo(events=[edge_update(SIX_HOURS)]))
    written = counting_job_writes(run)
    rescued = 0
    for _ in range(60):  # two hours of looks, the watchdog sweeping after each
        assert run.step()
        rescued += rescue_overdue(run.store, run.transitions, run.clock).moved
    job = run.job(job_id)
    assert job.status is JobStatus.WAITING and written.count(f"job#{job_id}") < 10  # most looks were quiet
    assert job.due_at is not None and job.due_at > run.clock.now()  # due by its next write
    assert rescued == 0


def test_a_duplicated_quiet_look_costs_reads_never_a_second_publish() -> None:
    run, job_id = start(demo(events=[edge_update(600)]))
    while True:  # up to the first quiet look in the queue
        delivery = run.queues.next()
        assert delivery is not None
        run.queues.send(delivery.queue, delivery.body, int(delivery.due - run.clock.now()))  # back in place
        if JobMessage.model_validate_json(delivery.body).quiet:
            break
        assert run.step()
    # SQS delivers it twice (or a crash before its delete lets it come again): two chains of looks.
    run.queues.send(delivery.queue, delivery.body, int(delivery.due - run.clock.now()))
    job = run.run(job_id)
    assert job.status is JobStatus.PUBLISHED
    assert run.simulator.stats()["publishesApplied"] == {"sched-demo": 1}
    assert job.publish_attempts == 1
