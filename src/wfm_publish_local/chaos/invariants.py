"""The promises, checked on a world after its run (chaos.virtual.World), job by job, against the
simulator's log of the updates it applied (each attributed to the job whose worker posted it).

1. At most one update of ours applied per job; never two jobs for one key; a dry run posts none.
2. Every publishId ever answered exists and ends by its deadline plus one step.
3. No job is non-terminal with nothing in flight for longer than the watchdog bound (counted from
   when its step was due: a job waiting for a publishTime has nothing to do till then).
4. Each job ends with the truth: PUBLISHED iff its update was applied (and the schedule is published
   past its base; a schedule an earlier update already published may be published past it by
   another writer); CANCELLED never with its update applied; FAILED (or CHECKED) never with its
   update applied, unless the job says so (an update of ours "may" still land or have landed).
5. Each callback record's history, per job it asked about: any PUBLISHING first, then exactly one end,
   the job's, and nothing after; a record that asked for progress and was the job's when it first
   started publishing hears PUBLISHING; every record answered 202 hears the end; no record hears of a
   job it never asked about.
6. The same key always answers the same publishId, with the body that started or joined under it;
   another body, once one has won the key, 422; a 202 names a job of the schedule the request named.
7. No wait passes the deadline.
8. With telephony events, no job sits out a wait that counts on them (longer than polling would
   wait) after an event it had not seen was handled: it is woken (or was moved) before the wait is over.
9. A refused request (4xx) writes nothing; no request is refused 409 JOIN_CONFLICT for a job of another
   schedule (a claim left on its schedule, honoured).
10. Every status change of a job is announced on the bus (unless its batch went to the announcer's
    OnFailure queue), and nothing is announced that did not happen.
11. The weekly run's unit function answers every record (a failure is that record's, to come back):
    it never fails a whole batch on what Genesys answers.
12. At most one publish of a schedule is in flight at a time (dry runs aside).
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from typing import TYPE_CHECKING

from wfm_publish import scope
from wfm_publish.models import Job, JobStatus
from wfm_publish.waiting import check_interval
from wfm_publish.watchdog import STUCK_BOUND
from wfm_publish_local.chaos.faults import GONE

if TYPE_CHECKING:
    from wfm_publish_local.chaos.virtual import World

SAMPLING = 60.0  # the world samples "nothing in flight" once a minute
SAYS_MAY_LAND = re.compile(r"\bmay (still )?(apply|land|have)\b", re.IGNORECASE)
PROGRESS = JobStatus.PUBLISHING.value


def check(world: World) -> list[str]:
    jobs = world.jobs()
    checks = (
        one_update_per_job,
        every_answer_exists_and_ends,
        nothing_stuck,
        each_job_tells_the_truth,
        each_record_hears_once,
        same_key_same_answer,
        no_wait_past_the_deadline,
        no_wake_lost,
        refused_requests_write_nothing,
        every_change_announced,
        weekly_units_answered,
        one_publish_per_schedule,
    )
    out = [violation for rule in checks for violation in rule(world, jobs)]
    out += [f"[!] an actor raised {failure}" for failure in world.harness_failures]
    return out


def one_update_per_job(world: World, jobs: dict[str, Job]) -> list[str]:
    out = []
    by_key: dict[str, set[str]] = defaultdict(set)
    for job in jobs.values():
        if job.idempotency_key:
            by_key[job.idempotency_key].add(job.job_id)
    out += [
        f"[1] key {k} started {len(ids)} jobs: {sorted(ids)}" for k, ids in by_key.items() if len(ids) > 1
    ]
    for job_id, applied in world.applied_updates().items():
        found = jobs.get(job_id)
        if len(applied) > 1:
            out.append(f"[1] job {job_id} had {len(applied)} updates applied")
        if found is not None and found.request.dry_run:
            out.append(f"[1] dry run {job_id} had an update applied")
    return out


def every_answer_exists_and_ends(world: World, jobs: dict[str, Job]) -> list[str]:
    out = [
        f"[2] {a.key} was answered publishId {a.publish_id}, which does not exist"
        for a in world.answers
        if a.publish_id and a.publish_id not in jobs and a.publish_id not in world.removed
    ]
    for job in jobs.values():
        if not job.status.terminal:
            out.append(f"[2] job {job.job_id} never ended ({job.status.value})")
        elif world.ended_at.get(job.job_id, 0.0) > job.deadline_at + _step_bound() + _outage(
            world, job.deadline_at
        ):
            late = world.ended_at[job.job_id] - job.deadline_at
            out.append(f"[2] job {job.job_id} ended {late:.0f} s after its deadline")
    return out


def nothing_stuck(world: World, jobs: dict[str, Job]) -> list[str]:
    bound = STUCK_BOUND + SAMPLING + world.rates.skew + sum(b - a for a, b in world.outages)
    return [
        f"[3] job {job_id} had nothing in flight for {longest:.0f} s (bound {STUCK_BOUND:.0f} s)"
        for job_id, longest in world.longest_orphan.items()
        if longest > bound
    ]


def _outage(world: World, moment: float) -> float:
    """How long DynamoDB or SQS was down around `moment` (nothing moves then): the bounds stretch."""
    return sum(until - begun for begun, until in world.outages if until > moment - _step_bound())


def each_job_tells_the_truth(world: World, jobs: dict[str, Job]) -> list[str]:
    """PUBLISHED iff our update was applied; CANCELLED never with it; FAILED only if the job says so."""
    out = []
    applied = world.applied_updates()
    for job in jobs.values():
        ours = applied.get(job.job_id, [])
        status = job.status
        if status is JobStatus.PUBLISHED:
            # Already published when it began publishing (an earlier job's update): publishing again
            # changes nothing, so a schedule published past its base is the truth whoever moved it.
            published = world.published_since(job.schedule_id)
            again = published is not None and published <= world.publishing_since.get(job.job_id, 0.0)
            if not ours and not again:
                out.append(f"[4] job {job.job_id} PUBLISHED but no update of its was applied ({job.detail})")
            state = world.simulator.schedule_state(job.schedule_id)
            base = job.pending_base_version if job.pending_base_version is not None else job.base_version
            if not state["published"] or base is None or state["version"] <= base:
                out.append(f"[4] job {job.job_id} PUBLISHED but the schedule is {state} (our base {base})")
        elif ours and status is JobStatus.CANCELLED:
            out.append(f"[4] job {job.job_id} CANCELLED, but its update was applied")
        elif ours and status.terminal and not SAYS_MAY_LAND.search(job.detail or ""):
            reason = job.reason_code.value if job.reason_code else ""
            when = ours[0] - world.ended_at.get(job.job_id, ours[0])
            out.append(
                f"[4] job {job.job_id} {status.value} {reason} ({job.detail}), but its update was applied "
                f"({-when:.0f} s before it ended)"
                if when <= 0
                else f"[4] job {job.job_id} {status.value} {reason} ({job.detail}), but its update was "
                f"applied {when:.0f} s after it ended, and it did not say one might be"
            )
    return out


def each_record_hears_once(world: World, jobs: dict[str, Job]) -> list[str]:
    out = []
    asked: dict[tuple[str, str], set[str]] = defaultdict(set)
    # A job a person removed before it ended: its records hear FAILED (the notifier's REMOVE path).
    gone = {
        job_id: job.model_copy(update={"status": JobStatus.FAILED})
        for job_id, job in world.removed.items()
        if job_id not in jobs
    }
    jobs = jobs | gone
    for job in jobs.values():
        if not job.status.terminal:
            continue
        for callback in filter(None, [job.request.callback, *(j.callback for j in job.joiners)]):
            record = (callback.table, callback.sys_id)
            asked[record].add(job.job_id)
            out += _history(world, job, record, bool(callback.progress))
        for record in world.first_publishing.get(job.job_id, []):
            if record[1] == GONE or job.job_id in world.discarded_progress:
                continue
            heard = [(s, at) for jid, s, at in world.servicenow.records[record] if jid == job.job_id]
            handled = world.progress_handled.get(job.job_id, float("inf"))
            if any(at <= handled for s, at in heard if s != PROGRESS):
                continue  # its end was told before the notifier reached the start: never backwards
            if PROGRESS not in {s for s, _ in heard}:
                out.append(
                    f"[5] {_name(record)} asked for progress and never heard job {job.job_id} publishing"
                )
    out += every_request_is_told(world, jobs, asked)
    for record, patches in world.servicenow.records.items():
        strangers = {jid for jid, _, _ in patches} - asked[record]
        if strangers:
            out.append(f"[5] {_name(record)} was told about jobs it never asked for: {strangers}")
    return out


def _history(world: World, job: Job, record: tuple[str, str], progress: bool) -> list[str]:
    """The record's PATCHes about this job: PUBLISHING (only if it asked) any number of times, then the
    job's end exactly once, then nothing."""
    if record[1] == GONE:
        return []
    heard = [status for jid, status, _ in world.servicenow.records[record] if jid == job.job_id]
    ends = [s for s in heard if s != PROGRESS]
    wrong = None
    if not heard:
        wrong = f"never heard job {job.job_id} end"
    elif len(ends) > 1:
        wrong = f"heard job {job.job_id} end {len(ends)} times: {heard}"
    elif not ends or heard[-1] == PROGRESS:
        wrong = f"heard {heard} for job {job.job_id}: publishing after its end"
    elif ends[0] != job.status.value:
        wrong = f"heard {heard} for a job that ended {job.status.value}"
    elif PROGRESS in heard and not progress:
        wrong = f"heard {heard} but never asked for progress"
    return [f"[5] {_name(record)} {wrong}"] if wrong else []


def every_request_is_told(
    world: World, jobs: dict[str, Job], asked: dict[tuple[str, str], set[str]]
) -> list[str]:
    """Every request answered 202 with a callback (joined ones too) is told how its job ended."""
    out = []
    for answer in world.answers:
        job = jobs.get(answer.publish_id or "")
        if answer.status != 202 or answer.callback is None or job is None or not job.status.terminal:
            continue
        if job.job_id in asked[answer.callback]:
            continue  # checked already (by the job's own records, or another answer)
        asked[answer.callback].add(job.job_id)
        if answer.callback[1] == GONE:
            continue
        if not any(jid == job.job_id for jid, _, _ in world.servicenow.records[answer.callback]):
            out.append(f"[5] {_name(answer.callback)} (answered {job.job_id}) never heard it end")
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
        made = world.effects.get(answer.key, set())
        if made and answer.body not in made:
            out.append(
                f"[6] key {answer.key} with body {answer.body} answered 202 {answer.publish_id}, "
                f"a job started or joined under that key with body {sorted(made)}"
            )
        job = jobs.get(answer.publish_id)
        if job is not None and (
            job.schedule_id != answer.schedule_id or answer.answered_schedule != job.schedule_id
        ):
            out.append(
                f"[6] {answer.key}/{answer.body} for schedule {answer.schedule_id} was answered "
                f"{answer.publish_id} (scheduleId {answer.answered_schedule}), a job of {job.schedule_id}"
            )
    for answer in world.answers:
        accepted = first.get(answer.key)
        if (
            accepted
            and answer.began > won_at[answer.key]
            and answer.body != accepted[0]
            and answer.status not in {422, 502, 503}
        ):
            out.append(f"[6] key {answer.key} with another body answered {answer.status}, not 422")
    return out


def no_wait_past_the_deadline(world: World, jobs: dict[str, Job]) -> list[str]:
    # A step that began before the deadline and sends its next message, due at once, after it is no
    # wait: that message ends the job. Clock skew between workers counts twice (the wait is set by
    # one worker's clock, a hop by another's), and SQS delays are whole seconds.
    # Only the job's own messages: one whose ticket never became current (its write failed, or it was
    # another request's under the same key) does nothing when it arrives, however long it hops.
    for job_id, sent_at, due, ticket in world.sent:
        job = jobs.get(job_id)
        if job is None or ticket not in world.tickets:
            continue
        if due > sent_at and due > job.deadline_at + 1.0 + 2 * world.rates.skew:
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
                f"[8] job {job_id} waited {due - committed:.0f} s on telephony it read at "
                f"{at - world.start - (at - read_at):.1f}, though an event for {entity} at "
                f"{at - world.start:.1f} was handled before the wait was over"
            )
    return out


def refused_requests_write_nothing(world: World, jobs: dict[str, Job]) -> list[str]:
    out = [f"[9] {refusal}" for refusal in world.refusals]
    for answer in world.answers:  # a schedule's claim honoured for a job of another schedule
        if answer.code == "JOIN_CONFLICT" and answer.answered_schedule != answer.schedule_id:
            out.append(
                f"[9] {answer.key}/{answer.body} for {answer.schedule_id} was refused 409 JOIN_CONFLICT "
                f"naming job {answer.publish_id_cited}, of {answer.answered_schedule}"
            )
    return out


def every_change_announced(world: World, jobs: dict[str, Job]) -> list[str]:
    put = {(e["publishId"], e["version"]): e["status"] for e in world.eventbridge.put}
    happened = {(job_id, version): status for job_id, version, status in world.status_changes}
    out = [
        f"[10] job {job_id} became {status} at version {version}; nothing was announced"
        for (job_id, version), status in happened.items()
        if (job_id, version) not in put and (job_id, version) not in world.announce_discarded
    ]
    out += [
        f"[10] announced job {job_id} {status} at version {version}, which never happened"
        for (job_id, version), status in put.items()
        if happened.get((job_id, version)) != status
    ]
    return out


def weekly_units_answered(world: World, jobs: dict[str, Job]) -> list[str]:
    return [f"[11] the weekly unit function raised {raised}" for raised in dict.fromkeys(world.weekly_raised)]


def one_publish_per_schedule(world: World, jobs: dict[str, Job]) -> list[str]:
    return [f"[12] {overlap}" for overlap in world.overlaps]


def _name(record: tuple[str, str]) -> str:
    return f"{record[0]}/{record[1][:6]}"


def _step_bound() -> float:
    from wfm_publish_local.chaos.virtual import STEP_BOUND

    return STEP_BOUND
