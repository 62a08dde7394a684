"""Cancel a job that has not published: one conditional write, so no step can publish after it.

Every pipeline step commits its next state with a write conditioned on the job's version, and a step
that is about to post an update to Genesys first commits PUBLISHING. So exactly one of these wins:

* the cancel commits CANCELLED first: the step's write fails (another worker moved the job), it posts
  nothing, and every message still in flight finds a terminal job and does nothing;
* the step commits PUBLISHING first: the cancel re-reads the job and answers 409 "publishing in
  progress"; the job then ends PUBLISHED (or FAILED) on its own and ServiceNow hears which.

A cancel is also refused whenever an update of this job may still be applied (transitions.
may_still_land): Genesys accepted it and it was never seen applied, or its answer was lost (a timeout,
a reset, a 5xx on the update), until the outcome is known. The answer must never say CANCELLED for a
schedule that ends up published.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_lambda_powertools import Logger

from wfm_publish.errors import CancelContended, CancelRefused, PublishNotFound, StaleJob
from wfm_publish.models import Job, JobStatus, ReasonCode, Refusal
from wfm_publish.store import JobStore
from wfm_publish.transitions import Transitions, may_still_land

logger = Logger(child=True)
ATTEMPTS = 5  # conditional-write races lost in a row before giving up (each one re-reads the job)


@dataclass(frozen=True)
class Cancelled:
    job: Job
    already: bool  # it was cancelled before this request: nothing was written


def cancel(
    store: JobStore, transitions: Transitions, publish_id: str, why: str = "cancelled by the caller"
) -> Cancelled:
    job = store.get_job(publish_id)
    for _ in range(ATTEMPTS):
        if job is None:
            raise PublishNotFound(f"no publish {publish_id}")
        if job.status is JobStatus.CANCELLED:
            # Our own earlier cancel may have ended it (a lost answer retried after the notifier wrote
            # the job, or a retry after freeing the schedule failed): free it now if the claim is still
            # this job's (a conditional delete: another job's claim is never touched).
            store.release_schedule(job.schedule_id, job.job_id)
            return Cancelled(job, already=True)
        _refuse_if_not_cancellable(job)
        try:
            saved = transitions.finish(
                job, JobStatus.CANCELLED, ReasonCode.CANCELLED, why, {"was": job.status.value}
            )
        except StaleJob as moved:
            job = moved.current or store.get_job(publish_id)
            continue
        return Cancelled(saved, already=False)
    raise CancelContended(f"publish {publish_id} kept changing; try the cancel again")


def _refuse_if_not_cancellable(job: Job) -> None:
    if job.status.terminal:
        raise CancelRefused(
            f"publish {job.job_id} already ended {job.status.value}", Refusal.ALREADY_ENDED, job
        )
    if may_still_land(job):
        raise CancelRefused(
            f"publish {job.job_id} has an update posted to Genesys whose outcome is not known yet: it may"
            " still be applied, so the job cannot be cancelled; it ends PUBLISHED or FAILED on its own and"
            " the callback says which",
            Refusal.PUBLISH_IN_PROGRESS,
            job,
        )
