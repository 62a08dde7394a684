"""Telephony events wake the jobs waiting on them (issue 10), in virtual time: the simulator sends
the Edge, software-update and trunk events as its org would, the events function's wake runs on each."""

from __future__ import annotations

from typing import Any

from tests.support.virtual import demo, edge_update, start
from wfm_publish import readiness, wake
from wfm_publish.clock import iso
from wfm_publish.models import NOT_SETTLED, Job, JobStatus
from wfm_publish.waiting import Timing
from wfm_publish_local.virtual import MemoryJobStore, VirtualRun

EDGE = "edge-demo-1"
CHANGE = edge_update(600, entity_id=EDGE)


def edge_event(entity_id: str, at: float, event_id: str = "ev-1") -> dict[str, Any]:
    topic = f"v2.telephony.providers.edges.{entity_id}"
    return {
        "id": event_id,
        "detail-type": topic,
        "time": iso(at),
        "detail": {"topicName": topic, "eventBody": {"id": entity_id, "onlineStatus": "ONLINE"}},
    }


def waiting(run: VirtualRun, job_id: str) -> None:
    """Run the first check only: the job is then waiting on telephony, its safety poll far off."""
    run.run(job_id, limit=5)
    job = run.job(job_id)
    assert job.status is JobStatus.WAITING and job.timeline[-1].event == NOT_SETTLED


def test_a_telephony_event_wakes_a_waiting_job_and_the_check_follows_at_once() -> None:
    run, job_id = start(demo(events=[CHANGE]), events=True)
    job = run.run(job_id)
    assert job.status is JobStatus.PUBLISHED
    woken = next(e for e in job.timeline if e.event == wake.WOKEN)
    checks = [e for e in job.timeline if e.event == NOT_SETTLED and e.at >= woken.at]
    assert checks and checks[0].at == woken.at  # the check ran the moment the event came
    assert woken.at - job.created_at == 600  # the request came at the change's start, t = 0
    accepted = [e["t"] for e in run.simulator.stats()["events"] if e["kind"] == "updateAccepted"]
    settle = run.simulator.scenario.settle_window_seconds
    assert len(accepted) == 1 and 0 <= accepted[0] - (600 + settle) <= 2  # overshoot near zero
    assert job.readiness_checks <= 4  # no polling through the change: checks at 0, 600, 630
    assert run.simulator.stats()["publishesApplied"] == {"sched-demo": 1}


def test_without_events_the_same_change_is_found_by_polling() -> None:
    run, job_id = start(demo(events=[CHANGE]))
    job = run.run(job_id)
    assert job.status is JobStatus.PUBLISHED
    assert wake.WOKEN not in [e.event for e in job.timeline]
    assert job.readiness_checks > 4


def test_a_duplicate_and_a_stale_event_do_nothing() -> None:
    run, job_id = start(demo(events=[CHANGE]), events=True)
    waiting(run, job_id)
    before = run.job(job_id)
    sent = run.queues.messages_sent
    assert before.checked_at is not None
    # Stale: the change it reports happened before the job's last check read telephony.
    stale = wake.on_telephony(
        edge_event(EDGE, before.checked_at - 10), run.store, run.transitions, run.clock.now()
    )
    assert stale is not None and stale.woken == [] and stale.skipped == {job_id: "checked after the event"}
    assert run.job(job_id).version == before.version and run.queues.messages_sent == sent
    # Fresh: woken once, with a check due at once.
    run.clock.advance(60)
    fresh = edge_event(EDGE, run.clock.now() - 1, "ev-2")
    first = wake.on_telephony(fresh, run.store, run.transitions, run.clock.now())
    assert first is not None and first.woken == [job_id]
    woken = run.job(job_id)
    assert woken.due_at == run.clock.now() and run.queues.messages_sent == sent + 1
    # The same event again (at least once delivery), and an earlier one: the check the wake sent reads
    # after both, so nothing.
    for again in (fresh, edge_event("trunk-demo-1", run.clock.now() - 2, "ev-3")):
        twice = wake.on_telephony(again, run.store, run.transitions, run.clock.now())
        assert twice is not None and twice.woken == []
    assert run.job(job_id).version == woken.version and run.queues.messages_sent == sent + 1


def test_an_entity_outside_the_scope_wakes_nothing_and_ended_jobs_leave_the_watch() -> None:
    run, job_id = start(demo(events=[CHANGE]), events=True)
    waiting(run, job_id)
    other = wake.on_telephony(edge_event("edge-elsewhere", run.clock.now()), run.store, run.transitions, 0)
    assert other is not None and other.woken == [] and other.skipped == {}
    assert job_id in run.store.watchers(EDGE)
    run.run(job_id)
    assert run.job(job_id).status is JobStatus.PUBLISHED
    late = wake.on_telephony(
        edge_event(EDGE, run.clock.now() + 1), run.store, run.transitions, run.clock.now()
    )
    assert late is not None and late.skipped == {job_id: "ended"}
    assert run.store.watchers(EDGE) == []  # pruned


def test_events_lengthen_the_poll_to_the_safety_interval() -> None:
    run, job_id = start(demo(events=[CHANGE]), events=True)
    waiting(run, job_id)
    job = run.job(job_id)
    assert job.due_at is not None and job.due_at - (job.checked_at or 0) == Timing().safety_poll


def test_the_three_telephony_topics_name_their_entity() -> None:
    def topic(name: str) -> dict[str, Any]:
        return {"detail-type": name, "detail": {"topicName": name}}

    assert wake.telephony_entity(topic("v2.telephony.providers.edges.e-1")) == (
        "v2.telephony.providers.edges.e-1",
        "e-1",
    )
    assert wake.telephony_entity(topic("v2.telephony.providers.edges.e-1.softwareupdate"))[1] == "e-1"  # type: ignore[index]
    assert wake.telephony_entity(topic("v2.telephony.providers.edges.trunks.t-1"))[1] == "t-1"  # type: ignore[index]
    assert wake.telephony_entity(topic("v2.workforcemanagement.businessunits.bu.schedules")) is None


def test_an_integration_that_delivers_no_telephony_event_is_polled_not_trusted() -> None:
    """Whether EventBridge carries the telephony topics for a client-credentials integration is not
    documented. A job waits the safety poll only on a change an event announced (`heard#`): with every
    event lost it polls, and finds the settled telephony as polling alone would."""
    polled_run, polled_id = start(demo(events=[CHANGE]))
    polled = polled_run.run(polled_id)
    run, job_id = start(demo(events=[CHANGE]), events=True, event_loss=1.0)
    job = run.run(job_id)
    assert job.status is JobStatus.PUBLISHED
    assert run.events_delivered == 0 and run.events_lost > 0
    assert wake.WOKEN not in [e.event for e in job.timeline]
    waits = [e for e in job.timeline if e.event == NOT_SETTLED]
    assert waits and all(e.detail["events"] == "not heard: polling" for e in waits)
    assert job.checked_at == polled.checked_at  # looked when polling looks: the same overshoot
    assert run.simulator.stats()["publishesApplied"] == {"sched-demo": 1}


def test_a_change_an_event_announced_is_left_to_the_events() -> None:
    run, job_id = start(demo(events=[CHANGE]), events=True)
    waiting(run, job_id)
    job = run.job(job_id)
    assert job.timeline[-1].detail["events"] == "trusted"
    assert run.store.heard([EDGE])[EDGE] == job.created_at  # the update's start event, at t = 0


def test_events_heard_only_before_the_change_began_do_not_vouch_for_it() -> None:
    run, job_id = start(demo(events=[edge_update(600, start=100, entity_id=EDGE)]), events=True)
    run.store.hear(EDGE, run.clock.now() - 3600)  # an event an hour earlier: the integration worked then
    run.deliver_events = lambda: None  # type: ignore[method-assign]  # nothing from now on
    run.clock.advance(101)
    run.simulator.pump()
    waiting(run, job_id)
    assert run.job(job_id).timeline[-1].detail["events"] == "not heard: polling"


SHORT_CHANGE = edge_update(7, entity_id=EDGE)


class ChangeEndsMidStep(MemoryJobStore):
    """The store, with the Edge's update ending (and its events handled: the events function runs apart
    from the pipeline) once, at a moment of a step a subclass picks."""

    run: VirtualRun
    done = False

    def end_the_change(self, created_at: float) -> None:
        if not self.done:
            self.done = True
            self.run.clock.advance_to(created_at + SHORT_CHANGE["end"] + 1)
            self.run.simulator.pump()
            self.run.deliver_events()


class ChangeEndsBeforeTheCheckCommits(ChangeEndsMidStep):
    """... between the first check's read of telephony and that check's write."""

    def save_job(self, job: Job) -> Job:
        if job.timeline[-1].event == NOT_SETTLED:
            self.end_the_change(job.created_at)
        return super().save_job(job)


class ChangeEndsBeforeTheWatch(ChangeEndsMidStep):
    """... between the first check's read of the scope and its watch on the scope's entities (the
    event then finds no job)."""

    def watch(self, job_id: str, entity_ids: list[str], until: float) -> None:
        job = self.get_job(job_id)
        assert job is not None
        self.end_the_change(job.created_at)
        super().watch(job_id, entity_ids, until)


def test_an_event_during_a_check_that_read_before_it_wakes_the_job_again() -> None:
    store = ChangeEndsBeforeTheCheckCommits()
    run, job_id = start(demo(events=[SHORT_CHANGE]), events=True, store=store)
    store.run = run
    job = run.run(job_id, limit=600)
    assert store.done and run.events_delivered > 0
    # Not left to the safety poll (2,400 s): the check that read before the event was made stale and
    # another one read the settled Edge.
    assert job.status is JobStatus.PUBLISHED, [e.event for e in job.timeline]
    assert wake.WOKEN in [e.event for e in job.timeline]
    assert run.simulator.stats()["publishesApplied"] == {"sched-demo": 1}


def test_a_check_on_another_jobs_older_read_is_woken_by_an_event_after_that_read() -> None:
    run, job_id = start(demo(events=[SHORT_CHANGE]), events=True)
    # Another job on the same site read it at t = 3, during the update, and shared what it saw.
    t0 = run.job(job_id).created_at
    run.clock.advance_to(t0 + 3)
    seen = readiness.read_pool(run.genesys, "site", "site-demo").doc()
    run.store.put_observation("site:site-demo", run.clock.now(), seen, 3600)
    # The job's first check (t = 5 + a moment) reuses that read; the update ends at t = 7, and its
    # event comes after the check.
    run.clock.advance_to(t0 + 7.5)
    assert run.step()
    job = run.job(job_id)
    assert job.timeline[-1].event == NOT_SETTLED and job.checked_at == t0 + 3
    run.simulator.pump()
    run.deliver_events()
    assert run.job(job_id).timeline[-1].event == wake.WOKEN
    assert run.run(job_id, limit=600).status is JobStatus.PUBLISHED


def test_a_change_before_the_watch_is_found_by_polling_not_left_to_the_safety_poll() -> None:
    store = ChangeEndsBeforeTheWatch()
    run, job_id = start(demo(events=[SHORT_CHANGE]), events=True, store=store)
    store.run = run
    job = run.run(job_id, limit=600)
    assert store.done and run.events_delivered > 0
    assert job.status is JobStatus.PUBLISHED, [e.event for e in job.timeline]
    first = next(e for e in job.timeline if e.event == NOT_SETTLED)
    assert first.detail["nextCheckInSeconds"] < Timing().safety_poll


def test_a_check_that_knows_when_telephony_settles_waits_for_that_not_for_events() -> None:
    """Inside the settle window readiness knows the moment: the wait is exactly that, whatever the
    events, so the check neither reads heard# nor says anything of them."""
    run, job_id = start(demo(events=[CHANGE]), events=True)
    job = run.run(job_id)
    assert job.status is JobStatus.PUBLISHED
    settling = [e for e in job.timeline if e.event == NOT_SETTLED and "settlesInSeconds" in e.detail]
    assert settling and all("events" not in e.detail for e in settling)
