"""The invariants, checked on the evidence a run gathered: the jobs, every answer, the callbacks,
the Genesys updates."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from wfm_publish.models import Job, JobStatus
from wfm_publish_local.chaos.stack.options import ChaosOptions
from wfm_publish_local.chaos.stack.traffic import Answer, Client
from wfm_publish_local.embedded import EmbeddedStack


@dataclass
class Violation:
    invariant: int
    message: str
    trace: list[str] = field(default_factory=list)


def trace(job: Job | None, answers: Sequence[Answer] = (), last: int = 12) -> list[str]:
    lines: list[str] = []
    if job is not None:
        lines.append(
            f"job {job.job_id} schedule {job.schedule_id} key {job.idempotency_key} {job.status.value}"
            f" {job.reason_code.value if job.reason_code else ''} base {job.base_version}"
            f" attempts {job.publish_attempts}: {job.detail or ''}"[:300]
        )
        events = job.timeline if len(job.timeline) <= last + 3 else job.timeline[:3] + job.timeline[-last:]
        for event in events:
            detail = json.dumps(event.detail, default=str)[:200] if event.detail else ""
            lines.append(f"  +{event.at - job.created_at:7.2f}s {event.event} {detail}")
    lines += [
        f"  answer +{a.sent_at - (job.created_at if job else a.sent_at):.2f}s: {a.brief()}"[:300]
        for a in answers[:6]
    ]
    return lines


@dataclass
class Evidence:
    """What the invariants are checked on, gathered once every job has ended: the jobs table, every
    answer, a GET of every publishId answered, what Genesys applied and holds, what each callback
    record was told (in order)."""

    jobs: dict[str, Job]
    answers: list[Answer]
    views: dict[str, tuple[int, dict[str, Any]]]
    applied: dict[str, int]
    schedules: dict[str, dict[str, Any]]
    told: dict[tuple[str, str], list[str]]


def gather(jobs: dict[str, Job], answers: list[Answer], embedded: EmbeddedStack, client: Client) -> Evidence:
    told: dict[tuple[str, str], list[str]] = defaultdict(list)
    for update in embedded.servicenow.updates():
        if update.table and update.sys_id:
            told[(update.table, update.sys_id)].append(str((update.body or {}).get("u_wfm_publish_status")))
    answered = sorted({a.publish_id for a in answers if a.publish_id and a.kind != "cancel"})
    return Evidence(
        jobs=jobs,
        answers=list(answers),
        views={publish_id: client.get(publish_id) for publish_id in answered},
        applied=dict(embedded.simulator.stats()["publishesApplied"]),
        schedules={s: embedded.simulator.schedule_state(s) for s in {j.schedule_id for j in jobs.values()}},
        told=dict(told),
    )


def expected_callbacks(job: Job) -> list[tuple[str, str]]:
    own = [job.request.callback] if job.request.callback else []
    return [(c.table, c.sys_id) for c in own + [j.callback for j in job.joiners if j.callback]]


def check(options: ChaosOptions, evidence: Evidence) -> list[Violation]:  # noqa: C901, PLR0912, PLR0915
    """The seven invariants, in the issue's order (one block each)."""
    found: list[Violation] = []
    jobs, answers, applied = evidence.jobs, evidence.answers, evidence.applied
    by_schedule: dict[str, list[Job]] = defaultdict(list)
    by_key: dict[str, list[Job]] = defaultdict(list)
    for job in jobs.values():
        by_schedule[job.schedule_id].append(job)
        if job.idempotency_key is not None:
            by_key[job.idempotency_key].append(job)
    answers_by_key: dict[str, list[Answer]] = defaultdict(list)
    for answer in answers:
        answers_by_key[answer.key].append(answer)

    # (1) at most one update of ours applied per job; never two jobs for one key
    for sid, count in sorted(applied.items()):
        published = [j for j in by_schedule.get(sid, []) if j.status is JobStatus.PUBLISHED]
        if count > len(published):
            found.append(
                Violation(
                    1,
                    f"schedule {sid}: {count} updates applied, {len(published)} job(s) ended PUBLISHED",
                    [line for j in by_schedule.get(sid, []) for line in trace(j)],
                )
            )
    for key, held in sorted(by_key.items()):
        if len(held) > 1:
            held.sort(key=lambda j: j.created_at)
            said = answers_by_key.get(key.removeprefix("api:"), [])  # the API keeps keys as api:<key>
            first = held[0].created_at
            lines = [line for j in held for line in trace(j)]
            lines += [
                f"  job {j.job_id} created +{j.created_at - first:.1f}s after the first" for j in held[1:]
            ]
            lines += [f"  answer sent +{a.sent_at - first:.1f}s: {a.brief()}"[:300] for a in said]
            found.append(Violation(1, f"idempotency key {key}: {len(held)} jobs", lines))

    # (2) every publishId answered exists and ended
    answered = {a.publish_id: a for a in answers if a.publish_id and a.kind != "cancel"}
    for publish_id, answer in sorted(answered.items()):
        status, view = evidence.views.get(publish_id, (0, {}))
        if status != 200:
            found.append(
                Violation(
                    2, f"publish {publish_id} answered to {answer.key}: GET {status}", trace(None, [answer])
                )
            )
        elif not JobStatus(view["status"]).terminal:
            found.append(
                Violation(
                    2, f"publish {publish_id} still {view['status']}", trace(jobs.get(publish_id), [answer])
                )
            )

    # (3) nothing left without an end (the watchdog's bound is long past by now)
    for job in jobs.values():
        if not job.status.terminal:
            overdue = time.time() - (job.due_at or job.updated_at)
            found.append(
                Violation(
                    3,
                    f"job {job.job_id} still {job.status.value}, due {overdue:.0f} s ago"
                    f" (bound {options.stuck_bound:.0f} s)",
                    trace(job),
                )
            )

    # (4) CANCELLED: nothing of it applied; PUBLISHED: the schedule is published past the job's base
    for job in jobs.values():
        state = evidence.schedules[job.schedule_id]
        if (
            job.status is JobStatus.CANCELLED
            and len(by_schedule[job.schedule_id]) == 1
            and applied.get(job.schedule_id, 0)
        ):
            found.append(
                Violation(
                    4,
                    f"job {job.job_id} CANCELLED but {applied[job.schedule_id]} update(s) applied",
                    trace(job),
                )
            )
        if job.status is JobStatus.PUBLISHED and (
            not state["published"] or job.base_version is None or state["version"] <= job.base_version
        ):
            found.append(
                Violation(
                    4,
                    f"job {job.job_id} PUBLISHED but schedule {job.schedule_id} is"
                    f" published={state['published']}"
                    f" at version {state['version']} (job base {job.base_version})",
                    trace(job),
                )
            )
    for answer in answers:
        if answer.kind == "cancel" and answer.status == 200 and answer.publish_id:
            target = jobs.get(answer.publish_id)
            if target is None or target.status is not JobStatus.CANCELLED:
                found.append(
                    Violation(
                        4,
                        f"cancel of {answer.publish_id} answered 200,"
                        f" job ended {target and target.status.value}",
                        trace(target, [answer]),
                    )
                )

    # (5) every callback record got the job's end, and never another end
    for job in jobs.values():
        if not job.status.terminal:
            continue
        for table, sys_id in expected_callbacks(job):
            told = evidence.told.get((table, sys_id), [])
            statuses = set(told)
            if not told:
                found.append(
                    Violation(
                        5,
                        f"callback {table}/{sys_id} of job {job.job_id} never told {job.status.value}",
                        trace(job),
                    )
                )
            elif statuses != {job.status.value}:
                found.append(
                    Violation(
                        5,
                        f"callback {table}/{sys_id} of job {job.job_id} ({job.status.value})"
                        f" told {sorted(statuses)}",
                        trace(job),
                    )
                )
    for answer in answers:  # a request answered with a job: its callback hears that job's end
        if answer.status != 202 or not answer.callback or not answer.publish_id:
            continue
        answered_job = jobs.get(answer.publish_id)
        if (
            answered_job is not None
            and answered_job.status.terminal
            and answer.callback not in expected_callbacks(answered_job)
        ):
            found.append(
                Violation(
                    5,
                    f"{answer.kind} {answer.key} answered {answer.publish_id},"
                    " its callback is not on the job",
                    trace(answered_job, [answer]),
                )
            )

    # (6) the same key and body: always the same publishId; another body: 422
    for key, said in sorted(answers_by_key.items()):
        same = [a for a in said if a.kind in ("first", "duplicate", "joiner")]
        ids = {a.publish_id for a in same if a.status == 202}
        if len(ids) > 1:
            found.append(
                Violation(
                    6, f"key {key} answered {len(ids)} publishIds: {sorted(map(str, ids))}", trace(None, said)
                )
            )
        for a in same:
            if a.status != 202:
                found.append(
                    Violation(6, f"{a.kind} with key {key} answered {a.status}, not 202", trace(None, [a]))
                )
        for a in said:
            if a.kind == "other-body" and a.status != 422:
                found.append(
                    Violation(
                        6,
                        f"key {key} reused with another body answered {a.status}, not 422",
                        trace(None, [a]),
                    )
                )

    # (7) every job ended by its deadline plus one step
    for job in jobs.values():
        if job.status.terminal and job.updated_at > job.deadline_at + options.deadline_slack:
            late = job.updated_at - job.deadline_at
            found.append(Violation(7, f"job {job.job_id} ended {late:.0f} s after its deadline", trace(job)))
    return found
