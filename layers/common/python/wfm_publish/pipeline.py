"""The steps a queued job goes through: validate, publish, confirm, resolve a conflict.

Every transition sends its follow-up message first and then commits the job with a conditional
write that sets the message's fresh ticket (docs/architecture.md). A message whose ticket is not the
job's current one is a duplicate or an orphan and does nothing, so a redelivered message can never
publish twice, and a crash between the two leaves the original message to be redelivered.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools import Logger

from wfm_publish import conflicts, readiness, waiting
from wfm_publish.clock import Clock
from wfm_publish.conflicts import ConflictKind
from wfm_publish.errors import (
    GenesysAuthError,
    GenesysConflict,
    GenesysError,
    GenesysNotFound,
    GenesysRateLimited,
    GenesysTransient,
    StaleJob,
)
from wfm_publish.genesys import GenesysClient, Schedule
from wfm_publish.models import GenesysErrorBody, Job, JobMessage, JobStatus, ReasonCode, Step, ValidationMode
from wfm_publish.queues import Queue, QueueSender
from wfm_publish.store import JobStore

logger = Logger(child=True)


@dataclass(frozen=True)
class Timing:
    settle_window: float = 30.0
    confirm_first: float = 2.0  # first look at the schedule after posting the update
    confirm_timeout: float = 180.0  # an update not applied by then is treated as lost
    in_progress_wait: float = 5.0  # another writer's update is running


def new_ticket() -> str:
    return uuid.uuid4().hex


class Pipeline:
    def __init__(
        self,
        store: JobStore,
        queues: QueueSender,
        genesys: GenesysClient,
        clock: Clock,
        timing: Timing | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.queues = queues
        self.genesys = genesys
        self.clock = clock
        self.timing = timing or Timing()
        self.rng = rng or random.Random()

    # --- entry point -------------------------------------------------------------------------------

    def process(self, queue: Queue, message: JobMessage) -> None:
        """Run the step `message` asks for. Raises only when the message should be redelivered."""
        if self.queues.hop_if_early(queue, message):
            return
        job = self.store.get_job(message.job_id)
        if job is None:
            logger.warning("message for an unknown job dropped", extra={"job_id": message.job_id})
            return
        if job.status.terminal or job.ticket != message.ticket:
            logger.info(
                "duplicate or superseded message ignored", extra={"job_id": job.job_id, "step": message.step}
            )
            return
        try:
            self._run(job, message)
        except StaleJob:
            logger.info("another worker moved the job first", extra={"job_id": job.job_id})

    def _run(self, job: Job, message: JobMessage) -> None:
        try:
            if message.step is Step.VALIDATE:
                self._validate(job)
            elif message.step is Step.CONFIRM:
                self._confirm(job)
            else:
                self._resolve_conflict(job, message.conflict)
        except GenesysError as error:
            self._on_genesys_error(job, error)

    def _on_genesys_error(self, job: Job, error: GenesysError) -> None:
        if isinstance(error, GenesysRateLimited):
            # Genesys says when: wait exactly that long; a refused publish costs nothing from the budget.
            attempts = job.publish_attempts - (1 if job.status is JobStatus.PUBLISHING else 0)
            self._move(
                job,
                JobStatus.WAITING,
                Step.VALIDATE,
                error.retry_after,
                "rate limited by Genesys",
                changes={"publish_attempts": attempts},
                retryAfter=error.retry_after,
            )
        elif isinstance(error, GenesysTransient):
            self._retry_later(job, error)
        elif isinstance(error, GenesysNotFound):
            self._finish(job, JobStatus.FAILED, ReasonCode.SCHEDULE_NOT_FOUND, str(error), error.describe())
        elif isinstance(error, GenesysAuthError):
            self._finish(job, JobStatus.FAILED, ReasonCode.GENESYS_AUTH_FAILED, str(error), error.describe())
        else:
            self._finish(job, JobStatus.FAILED, ReasonCode.GENESYS_REJECTED, str(error), error.describe())

    # --- steps ---------------------------------------------------------------------------------------

    def _validate(self, job: Job) -> None:
        now = self.clock.now()
        if now >= job.deadline_at:
            self._finish(
                job,
                JobStatus.FAILED,
                ReasonCode.DEADLINE_EXCEEDED,
                "telephony did not settle before the job's deadline",
            )
            return
        job = self._locate(job)
        request = job.request
        if request.validation_mode is not ValidationMode.OFF and request.telephony_sync.enabled:
            seen = readiness.assess(self.genesys, now, self.timing.settle_window)
            first_check_at = job.first_check_at or now
            if not seen.ready:
                delay = waiting.next_check_delay(
                    seen, waited=now - first_check_at, now=now, deadline_at=job.deadline_at
                )
                self._move(
                    job,
                    JobStatus.WAITING,
                    Step.VALIDATE,
                    delay,
                    "telephony not settled",
                    changes={"first_check_at": first_check_at, "readiness_checks": job.readiness_checks + 1},
                    **seen.summary(),
                    nextCheckInSeconds=round(delay, 1),
                )
                return
            job = job.model_copy(
                deep=True,
                update={"first_check_at": first_check_at, "readiness_checks": job.readiness_checks + 1},
            )
            job.record(now, "telephony settled", **seen.summary())
        self._publish(job)

    def _publish(self, job: Job) -> None:
        bu, week = _where(job)
        schedule = self.genesys.schedule(bu, week, job.schedule_id)
        if self._landed(job, schedule):
            return
        if job.publish_attempts > job.request.telephony_sync.retry_count:
            self._finish(
                job,
                JobStatus.FAILED,
                ReasonCode.RETRIES_EXHAUSTED,
                f"{job.publish_attempts} publish attempts did not go through",
                attempts=job.publish_attempts,
            )
            return
        now = self.clock.now()
        # The confirm message is queued before the update is posted: a crash mid-upload is noticed.
        job = self._move(
            job,
            JobStatus.PUBLISHING,
            Step.CONFIRM,
            self.timing.confirm_first,
            "publishing",
            changes={
                "base_version": schedule.metadata.version,
                "publish_attempts": job.publish_attempts + 1,
                "publishing_since": now,
                "operation_id": None,
            },
            scheduleVersion=schedule.metadata.version,
            attempt=job.publish_attempts + 1,
        )
        try:
            operation = self.genesys.publish(bu, week, schedule)
        except GenesysConflict as conflict:
            self._move(
                job,
                JobStatus.RETRYING,
                Step.CONFLICT,
                0.0,
                "409 conflict",
                queue=Queue.CONFLICT,
                conflict=conflict.body,
                **conflict.brief(),
            )
            return
        except GenesysError as error:
            self._on_genesys_error(job, error)  # with the job as it is now: PUBLISHING
            return
        job = job.model_copy(deep=True, update={"operation_id": operation.operation_id})
        job.record(
            self.clock.now(), "update accepted", status=operation.status, operationId=operation.operation_id
        )
        self.store.save_job(job)

    def _confirm(self, job: Job) -> None:
        bu, week = _where(job)
        schedule = self.genesys.schedule(bu, week, job.schedule_id)
        if self._landed(job, schedule):
            return
        now = self.clock.now()
        since = job.publishing_since or now
        if now - since < self.timing.confirm_timeout:
            delay = min(30.0, max(self.timing.confirm_first, (now - since)))
            self._move(
                job,
                JobStatus.PUBLISHING,
                Step.CONFIRM,
                delay,
                "update not applied yet",
                scheduleVersion=schedule.metadata.version,
                published=schedule.published,
            )
            return
        self._move(
            job,
            JobStatus.WAITING,
            Step.VALIDATE,
            0.0,
            "update was not applied; validating again",
            waitedSeconds=round(now - since, 1),
        )

    def _resolve_conflict(self, job: Job, body: GenesysErrorBody | None) -> None:
        bu, week = _where(job)
        schedule = self.genesys.schedule(bu, week, job.schedule_id)
        kind = conflicts.classify(body, schedule, job.base_version)
        now = self.clock.now()
        job = job.model_copy(deep=True, update={"conflict_retries": job.conflict_retries + 1})
        job.record(now, "conflict classified", kind=kind.value, scheduleVersion=schedule.metadata.version)
        if kind is ConflictKind.ALREADY_PUBLISHED:
            self._landed(job, schedule)
        elif kind is ConflictKind.STALE_VERSION:
            self._publish(job)  # re-reads the version; the attempt budget bounds this
        elif kind in (ConflictKind.TELEPHONY_SETTLING, ConflictKind.PUBLISH_IN_PROGRESS):
            delay = self.timing.in_progress_wait
            if kind is ConflictKind.TELEPHONY_SETTLING:
                delay = max(delay, self.timing.settle_window)
            self._move(
                job,
                JobStatus.WAITING,
                Step.VALIDATE,
                min(delay, max(0.0, job.deadline_at - now)),
                "waiting after conflict",
                kind=kind.value,
            )
        else:
            detail = body.wire() if body else {}
            self._finish(
                job,
                JobStatus.FAILED,
                ReasonCode.CONFLICT_UNRESOLVED,
                f"Genesys answered 409: {(body.message if body else None) or 'no detail'}",
                genesys=detail,
            )

    # --- helpers ---------------------------------------------------------------------------------------

    def _locate(self, job: Job) -> Job:
        if job.business_unit_id and job.week_id:
            return job
        bu, week = self.genesys.resolve_schedule(job.schedule_id)
        located = job.model_copy(deep=True, update={"business_unit_id": bu, "week_id": week})
        located.record(self.clock.now(), "schedule located", businessUnitId=bu, weekId=week)
        return located

    def _landed(self, job: Job, schedule: Schedule) -> bool:
        """Our update is applied: the schedule is published past the version we published from."""
        if (
            job.base_version is None
            or not schedule.published
            or schedule.metadata.version <= job.base_version
        ):
            return False
        self._finish(
            job,
            JobStatus.PUBLISHED,
            ReasonCode.PUBLISHED,
            f"published at schedule version {schedule.metadata.version}",
            scheduleVersion=schedule.metadata.version,
        )
        return True

    def _retry_later(self, job: Job, failure: GenesysError) -> None:
        delay = waiting.backoff(job.transient_failures, self.rng)
        delay = min(delay, max(0.0, job.deadline_at - self.clock.now()))
        self._move(
            job,
            JobStatus.WAITING,
            Step.VALIDATE,
            delay,
            "Genesys unavailable; backing off",
            changes={"transient_failures": job.transient_failures + 1},
            **failure.brief(),
        )

    def _move(
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
        **detail: Any,
    ) -> Job:
        now = self.clock.now()
        ticket = new_ticket()
        self.queues.send(
            queue, JobMessage(job_id=job.job_id, ticket=ticket, step=step, conflict=conflict), delay
        )
        moved = job.model_copy(
            deep=True, update={"status": status, "ticket": ticket, "updated_at": now, **(changes or {})}
        )
        moved.record(now, event, **detail)
        return self.store.save_job(moved)

    def _finish(
        self,
        job: Job,
        status: JobStatus,
        reason: ReasonCode,
        detail: str,
        extra: dict[str, Any] | None = None,
        /,
        **more: Any,
    ) -> Job:
        now = self.clock.now()
        ended = job.model_copy(
            deep=True,
            update={
                "status": status,
                "reason_code": reason,
                "detail": detail,
                "ticket": new_ticket(),
                "updated_at": now,
            },
        )
        ended.record(now, status.value.lower(), reason=reason.value, detail=detail, **(extra or {}), **more)
        saved = self.store.save_job(ended)
        self.store.release_schedule(job.schedule_id, job.job_id)
        logger.info("job ended", extra={"job_id": job.job_id, "status": status.value, "reason": reason.value})
        return saved


def _where(job: Job) -> tuple[str, str]:
    if not job.business_unit_id or not job.week_id:
        raise GenesysNotFound(f"schedule {job.schedule_id} has no business unit or week yet", status=404)
    return job.business_unit_id, job.week_id
