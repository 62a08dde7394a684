"""The watchdog: every job that is not ended has a step due (`Job.due_at`, the table's `due` index).
A job whose step is overdue by more than OVERDUE_AFTER may have nothing in flight that will move it:
its message was dropped as an orphan while a slow write committed its ticket, or lost with a crash
that left nothing to redeliver; or its message is only late, behind a backlog. So the watchdog sends
the job's current step again with its current ticket (Transitions.resend): a duplicate, harmless as
any SQS duplicate, that replaces a lost message without making a late one stale (a fresh ticket
would, and under a backlog would push the job to the back again and again). A job past its deadline
with no update of ours out is ended at once.

Bound: the sweep runs every SWEEP_MINUTES (template.yaml), so no job sits with nothing in flight for
longer than OVERDUE_AFTER + the sweep interval = STUCK_BOUND (7 minutes; documented: at most 10)
after its step was due. A job in quiet looks (waiting.QUIET_WINDOW) is due by its next write: its
chain of looks ends only through the DLQ, which the dead-letter sweep handles.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from aws_lambda_powertools import Logger

from wfm_publish.clock import Clock
from wfm_publish.errors import StaleJob
from wfm_publish.models import JobMessage, JobStatus, ReasonCode
from wfm_publish.store import JobStore
from wfm_publish.transitions import Transitions, may_still_land, move_on, step_for

logger = Logger(child=True)

OVERDUE_AFTER = 300.0  # longer than any step takes once its message is delivered (SQS, retries aside)
SWEEP_MINUTES = 2
STUCK_BOUND = OVERDUE_AFTER + SWEEP_MINUTES * 60
MOST_PER_SWEEP = 200


@dataclass
class Rescue:
    found: int = 0  # overdue in the index
    moved: int = 0  # its step sent again (or, past its deadline, ended)
    raced: int = 0  # moved by someone else meanwhile: nothing to do


def rescue_overdue(
    store: JobStore, transitions: Transitions, clock: Clock, *, overdue_after: float = OVERDUE_AFTER
) -> Rescue:
    now = clock.now()
    counts = Rescue()
    for job_id in store.overdue_jobs(now - overdue_after, MOST_PER_SWEEP):
        job = store.get_job(job_id)
        if job is None or job.status.terminal or (job.due_at or 0.0) >= now - overdue_after:
            continue  # the index lags the table: it moved on since
        counts.found += 1
        overdue = round(now - (job.due_at or now), 1)
        try:
            if now >= job.deadline_at and not may_still_land(job):
                # Past its deadline with nothing of ours out: end it here, rather than queue a step
                # behind a backlog that may be why it is late.
                transitions.finish(
                    job,
                    JobStatus.FAILED,
                    ReasonCode.DEADLINE_EXCEEDED,
                    f"the job's deadline passed while {job.status.value}, its step {overdue:.0f} s overdue",
                )
            else:
                transitions.resend(
                    job, step_for(job), "step sent again by the watchdog", overdueSeconds=overdue
                )
        except StaleJob:
            counts.raced += 1
            continue
        counts.moved += 1
        logger.warning("stuck job moved on", extra={"job_id": job_id, "overdue_seconds": overdue})
    return counts


class Redrive(StrEnum):
    MOVED = "moved"  # the job got a fresh message for its step
    OBSOLETE = "obsolete"  # the job ended, moved past the letter, or is gone: the letter does nothing
    RACED = "raced"  # the job moved while we looked: its new message carries it


def redrive_letter(store: JobStore, transitions: Transitions, message: JobMessage, receives: int) -> Redrive:
    """An operator's redrive of a dead letter: the job whose current message it is moves on with a fresh
    ticket (move_on). The letter itself is never sent again; whatever the outcome, it can go."""
    job = store.get_job(message.job_id)
    if job is None or job.status.terminal or job.ticket != message.ticket:
        return Redrive.OBSOLETE
    try:
        move_on(transitions, job, "redriven by an operator", step=message.step.value, receives=receives)
    except StaleJob:
        return Redrive.RACED
    logger.warning("dead letter redriven", extra={"job_id": job.job_id, "step": message.step.value})
    return Redrive.MOVED
