"""Issue 9's promises, checked on a world after its run (chaos.virtual.World).

1. At most one update of ours applied per job, and never two jobs for one request; a dry run posts none.
2. Every publishId ever answered exists and ends terminal by its deadline plus one step.
3. No job is non-terminal with nothing in flight for longer than the watchdog bound (counted from
   when its step was due: a job waiting for a publishTime weeks ahead has nothing to do till then).
4. CANCELLED means no update of that job was applied; PUBLISHED means the schedule is published at a
   version that includes ours.
5. Each callback record gets the job's terminal state exactly once, and never another.
6. The same key with the same body always answers the same publishId; with another body, 422.
7. No wait passes the deadline.
8. With telephony events, no job sits out a wait that counts on them (longer than polling would
   wait) after an event it had not seen was handled: it is woken (or was moved) before the wait is over.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import TYPE_CHECKING

from wfm_publish import scope
from wfm_publish.models import Job, JobStatus
from wfm_publish.waiting import check_interval
from wfm_publish.watchdog import STUCK_BOUND

if TYPE_CHECKING:
    from wfm_publish_local.chaos.virtual import World

SAMPLING = 60.0  # the world samples "nothing in flight" once a minute


def check(world: World) -> list[str]:
    jobs = world.jobs()
    checks = (
        one_update_per_job,
        every_answer_exists_and_ends,
        nothing_stuck,
        cancelled_and_published_tell_the_truth,
        each_record_hears_once,
        same_key_same_answer,
        no_wait_past_the_deadline,
        no_wake_lost,
    )
    return [violation for rule in checks for violation in rule(world, jobs)]


def _applied(world: World) -> int:
    return sum(world.simulator.stats()["publishesApplied"].values())


def _accounted(jobs: dict[str, Job]) -> int:
    """Updates the jobs may have applied: one per PUBLISHED job, and at most one per job that ended
    FAILED at its deadline with an update out (Genesys may have applied it after)."""
    published = sum(j.status is JobStatus.PUBLISHED for j in jobs.values())
    uncertain = sum(
        j.status is JobStatus.FAILED and j.pending_base_version is not None for j in jobs.values()
    )
    return published + uncertain


def one_update_per_job(world: World, jobs: dict[str, Job]) -> list[str]:
    out = []
    by_key: dict[str, set[str]] = defaultdict(set)
    for job in jobs.values():
        if job.idempotency_key:
            by_key[job.idempotency_key].add(job.job_id)
    out += [
        f"[1] key {k} started {len(ids)} jobs: {sorted(ids)}" for k, ids in by_key.items() if len(ids) > 1
    ]
    if _applied(world) > _accounted(jobs):
        out.append(
            f"[1] {_applied(world)} updates applied, more than the jobs account for ({_accounted(jobs)})"
        )
    out += [
        f"[1] dry run {j.job_id} {j.status.value} after {j.publish_attempts} publish attempt(s)"
        for j in jobs.values()
        if j.request.dry_run and (j.publish_attempts or j.status is JobStatus.PUBLISHED)
    ]
    return out


def every_answer_exists_and_ends(world: World, jobs: dict[str, Job]) -> list[str]:
    out = [
        f"[2] {a.key} was answered publishId {a.publish_id}, which does not exist"
        for a in world.answers
        if a.publish_id and a.publish_id not in jobs
    ]
    for job in jobs.values():
        if not job.status.terminal:
            out.append(f"[2] job {job.job_id} never ended ({job.status.value})")
        elif world.ended_at.get(job.job_id, 0.0) > job.deadline_at + _step_bound():
            late = world.ended_at[job.job_id] - job.deadline_at
            out.append(f"[2] job {job.job_id} ended {late:.0f} s after its deadline")
    return out


def nothing_stuck(world: World, jobs: dict[str, Job]) -> list[str]:
    bound = STUCK_BOUND + SAMPLING + world.rates.skew
    return [
        f"[3] job {job_id} had nothing in flight for {longest:.0f} s (bound {STUCK_BOUND:.0f} s)"
        for job_id, longest in world.longest_orphan.items()
        if longest > bound
    ]


def cancelled_and_published_tell_the_truth(world: World, jobs: dict[str, Job]) -> list[str]:
    out = []
    state = world.simulator.schedule_state("sched-demo")
    for job in jobs.values():
        if job.status is not JobStatus.PUBLISHED:
            continue
        base = job.pending_base_version if job.pending_base_version is not None else job.base_version
        if not state["published"] or base is None or state["version"] <= base:
            out.append(f"[4] job {job.job_id} PUBLISHED but the schedule is {state} (our base {base})")
    cancelled = any(j.status is JobStatus.CANCELLED for j in jobs.values())
    if cancelled and _applied(world) > _accounted(jobs):
        out.append("[4] an update was applied for a CANCELLED job")
    return out


def each_record_hears_once(world: World, jobs: dict[str, Job]) -> list[str]:
    out = []
    asked: dict[tuple[str, str], set[str]] = defaultdict(set)
    for job in jobs.values():
        if not job.status.terminal:
            continue
        for callback in filter(None, [job.request.callback, *(j.callback for j in job.joiners)]):
            record = (callback.table, callback.sys_id)
            asked[record].add(job.job_id)
            heard = [status for jid, status in world.servicenow.records[record] if jid == job.job_id]
            name = f"{callback.table}/{callback.sys_id[:6]}"
            if not heard:
                out.append(f"[5] {name} never heard job {job.job_id} end")
            elif any(status != job.status.value for status in heard):
                out.append(f"[5] {name} heard {heard} for a job that ended {job.status.value}")
            elif len(heard) > 1:
                out.append(f"[5] {name} heard job {job.job_id} end {len(heard)} times")
    out += every_request_is_told(world, jobs, asked)
    for record, patches in world.servicenow.records.items():
        strangers = {jid for jid, _ in patches} - asked[record]
        if strangers:
            out.append(f"[5] {record[0]}/{record[1][:6]} was told about jobs it never asked for: {strangers}")
    if world.undelivered:
        out.append(f"[5] the stream gave up on {world.undelivered}")
    return out


def every_request_is_told(
    world: World, jobs: dict[str, Job], asked: dict[tuple[str, str], set[str]]
) -> list[str]:
    """Every request answered 202 with a callback (joined ones too) is told how its job ended."""
    out = []
    for answer in world.answers:
        job = jobs.get(answer.publish_id or "")
        if answer.status != 202 or answer.callback is None or job is None or not job.status.terminal:
            continue
        asked[answer.callback].add(job.job_id)
        if not any(jid == job.job_id for jid, _ in world.servicenow.records[answer.callback]):
            name = f"{answer.callback[0]}/{answer.callback[1][:6]}"
            out.append(f"[5] {name} (answered {job.job_id}) never heard it end")
    return out


def same_key_same_answer(world: World, jobs: dict[str, Job]) -> list[str]:
    out = []
    first: dict[str, tuple[str, str]] = {}  # key -> (body, publishId) of its first 202
    won_at: dict[str, float] = {}  # key -> when a body first won it (before, another body may try)
    for answer in sorted(world.answers, key=lambda a: a.at):
        if answer.status != 202 or not answer.publish_id:
            continue
        body, publish_id = first.setdefault(answer.key, (answer.body, answer.publish_id))
        won_at.setdefault(answer.key, answer.at)
        if (answer.body, answer.publish_id) != (body, publish_id):
            then = f"{answer.publish_id} ({answer.body})"
            out.append(f"[6] key {answer.key} answered {publish_id} ({body}), then {then}")
    for answer in world.answers:
        accepted = first.get(answer.key)
        if (
            accepted
            and answer.at > won_at[answer.key]
            and answer.body != accepted[0]
            and answer.status not in {422, 502, 503}
        ):
            out.append(f"[6] key {answer.key} with another body answered {answer.status}, not 422")
    return out


def no_wait_past_the_deadline(world: World, jobs: dict[str, Job]) -> list[str]:
    # A step that began before the deadline and sends its next message, due at once, after it is no
    # wait: that message ends the job. Clock skew between workers counts twice (the wait is set by
    # one worker's clock, a hop by another's), and SQS delays are whole seconds.
    for job_id, sent_at, due in world.sent:
        job = jobs.get(job_id)
        if job is not None and due > sent_at and due > job.deadline_at + 1.0 + 2 * world.rates.skew:
            return [
                f"[7] job {job_id} was sent a message due {due - job.deadline_at:.0f} s after its deadline"
            ]
    return []


def no_wake_lost(world: World, jobs: dict[str, Job]) -> list[str]:
    """A wait on telephony longer than polling would wait (committed at c, telephony read at r, due at
    d: a wait that counts on events) sat out to its end while an event for an entity of the job's
    scope, stamped after r, was handled well before d: a lost wake. r is a worker's clock, off by up
    to the skew: only events surely after the read count."""
    out = []
    polling = check_interval(math.inf, world.simulator.scenario.settle_window_seconds)
    for job_id, committed, read_at, due in world.telephony_waits:
        job = jobs.get(job_id)
        if job is None or job.scope is None or due - committed <= polling + world.rates.skew:
            continue
        if any(committed < w < due - 1.0 for w in world.job_writes[job_id]):
            continue  # moved on (woken, rescued, ended) before the wait was over
        watched = set(scope.entities(job.scope))
        missed = [
            (entity, at)
            for entity, at, handled in world.telephony_heard
            if entity in watched and at > read_at + world.rates.skew and handled < due - 5.0
        ]
        if missed:
            entity, at = missed[0]
            out.append(
                f"[8] job {job_id} waited {due - committed:.0f} s on telephony it read at {read_at:.1f}, "
                f"though an event for {entity} at {at:.1f} was handled before the wait was over"
            )
    return out


def _step_bound() -> float:
    from wfm_publish_local.chaos.virtual import STEP_BOUND

    return STEP_BOUND
