"""The one path that moves a job from state to state: the pipeline, cancel, the dead-letter sweep and
the watchdog all go through it.

A move sends the job's follow-up message first, carrying a fresh ticket, then commits the job with a
write conditioned on its version that makes that ticket current (docs/architecture.md). A message
whose ticket is not current is a duplicate or an orphan and does nothing; a crash between the send
and the commit leaves the original message to be redelivered; a commit that is slow or lost leaves a
job whose message was dropped, which the watchdog (`due_at`, the due index) finds and moves on.

No move waits past the job's deadline: its step then runs at the deadline and ends the job there.
"""

from __future__ import annotations

import math
import uuid
from typing import Any

from aws_lambda_powertools import Logger

from wfm_publish import waiting
from wfm_publish.clock import Clock
from wfm_publish.errors import JobEnded
from wfm_publish.models import GenesysErrorBody, Job, JobMessage, JobStatus, ReasonCode, Step
from wfm_publish.queues import Queue, QueueSender
from wfm_publish.store import JobStore

logger = Logger(child=True)


def new_ticket() -> str:
    return uuid.uuid4().hex


def bounded_delay(delay: float, now: float, deadline_at: float) -> float:
    """A wait as a queue delay: never negative, never past the deadline, whatever Genesys said
    (a Retry-After of a day, infinity, or not a number)."""
    if math.isnan(delay):
        delay = 0.0
    return waiting.within_deadline(min(max(0.0, delay), max(0.0, deadline_at - now)), now, deadline_at)


class Transitions:
    def __init__(self, store: JobStore, queues: QueueSender, clock: Clock) -> None:
        self.store = store
        self.queues = queues
        self.clock = clock

    def move(
        self,
        job: Job,
        status: JobStatus,
        step: Step,
        delay: float,
        event: str,
        /,
        *,
        queue: Queue = Queue.VALIDATION,
        conflict: GenesysErrorBody | None = None,
        changes: dict[str, Any] | None = None,
        write_by: float | None = None,
        **detail: Any,
    ) -> Job:
        """Send `step` after `delay` (bounded by the deadline), then commit `status` with its ticket.
        `write_by`: quiet looks may follow until then, so the job is due (for the watchdog) by then.
        Raises StaleJob when another worker moved the job first (its message then never counts)."""
        now = self.clock.now()
        delay = bounded_delay(delay, now, job.deadline_at)
        due_at = now + delay
        if write_by is not None:
            due_at = max(due_at, min(write_by, job.deadline_at))
        ticket = new_ticket()
        message = JobMessage(
            job_id=job.job_id, ticket=ticket, step=step, conflict=conflict, version=job.version + 1
        )
        self.queues.send(queue, message, delay)
        moved = {"status": status, "ticket": ticket, "step": step, "updated_at": now, "due_at": due_at}
        return self._commit(job, now, moved | (changes or {}), event, **detail)

    def look_again(self, job: Job, delay: float, quiet: int, looked_at: float) -> None:
        """A quiet look: the next readiness check after `delay`, with the job's current ticket, and no
        write (the job's last write made it due by then: `move(write_by=...)`). A duplicate of it,
        after a crash or an SQS redelivery, runs a second chain of looks until the next write gives the
        job a new ticket; each look is a read, so that costs reads, never a second publish."""
        now = self.clock.now()
        message = JobMessage(
            job_id=job.job_id,
            ticket=job.ticket,
            step=Step.VALIDATE,
            version=job.version,
            quiet=quiet,
            looked_at=looked_at,
        )
        self.queues.send(Queue.VALIDATION, message, bounded_delay(delay, now, job.deadline_at))

    def resend(self, job: Job, step: Step, event: str, /, **detail: Any) -> Job:
        """Send the job's current step again, with its current ticket: a duplicate, harmless as any SQS
        duplicate (whichever copy runs first moves the job; the other is stale then). The watchdog's
        rescue: a message only delayed in a backlog is not made stale, and a lost one is replaced."""
        now = self.clock.now()
        message = JobMessage(job_id=job.job_id, ticket=job.ticket, step=step, version=job.version + 1)
        self.queues.send(Queue.VALIDATION, message, 0.0)
        return self._commit(job, now, {"due_at": now, "step": step}, event, **detail)

    def note(self, job: Job, event: str, /, **detail: Any) -> Job:
        """Record what happened without moving the job: its ticket and its message stay as they are."""
        return self._commit(job, self.clock.now(), {}, event, **detail)

    def finish(
        self,
        job: Job,
        status: JobStatus,
        reason: ReasonCode,
        detail: str,
        extra: dict[str, Any] | None = None,
        /,
        **more: Any,
    ) -> Job:
        """End the job (a fresh ticket makes every message in flight stale), then free its schedule."""
        now = self.clock.now()
        ended = {
            "status": status,
            "reason_code": reason,
            "detail": detail,
            "ticket": new_ticket(),
            "updated_at": now,
            "due_at": None,
            "step": None,
        }
        event = status.value.lower()  # the timeline says "published", "failed", ...
        saved = self._commit(
            job, now, ended, event, reason=reason.value, detail=detail, **(extra or {}), **more
        )
        self.store.release_schedule(job.schedule_id, job.job_id)
        logger.info("job ended", extra={"job_id": job.job_id, "status": status.value, "reason": reason.value})
        return saved

    def _commit(self, job: Job, now: float, update: dict[str, Any], event: str, /, **detail: Any) -> Job:
        """The job's next version, `update` applied and `event` in its timeline, written only if
        nobody wrote since it was read (StaleJob otherwise)."""
        changed = job.model_copy(deep=True, update=update)
        changed.record(now, event, **detail)
        return self.store.save_job(changed)


def step_for(job: Job) -> Step:
    """The step that carries a job on: an update of ours may be out, so confirm it (a read); otherwise
    look at telephony again, which publishes when ready (a re-read of the schedule first notices an
    update of ours that landed)."""
    return Step.CONFIRM if job.status is JobStatus.PUBLISHING else Step.VALIDATE


def move_on(transitions: Transitions, job: Job, event: str, /, **detail: Any) -> Job:
    """Give a job that is not ended a fresh message for its next step, now, through the one transition
    path: the operator's DLQ redrive, and the dead-letter sweep for a job whose update may have landed
    (never a stale message sent again, whose ticket would do nothing). Raises StaleJob when the job
    moved meanwhile; JobEnded when it ended."""
    if job.status.terminal:
        raise JobEnded(job.job_id)
    step = step_for(job)
    # At the step's due time: now for an overdue job, later for a redriven letter whose job waits for
    # its publishTime (a hop of a long wait that kept failing).
    now = transitions.clock.now()
    delay = max(0.0, (job.due_at if job.due_at is not None else now) - now)
    return transitions.move(job, job.status, step, delay, event, queue=Queue.VALIDATION, **detail)


def may_still_land(job: Job) -> bool:
    """An update of this job was posted (or was being posted) and its outcome is not known: Genesys
    may still apply it. Nothing may say CANCELLED for such a job."""
    return job.status is JobStatus.PUBLISHING or job.pending_base_version is not None
