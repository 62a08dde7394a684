"""The steps a queued job goes through: validate (validation.py), publish, confirm, resolve a conflict
(conflicts.py).

Every transition sends its follow-up message first and then commits the job with a conditional
write that sets the message's fresh ticket (docs/architecture.md). A message whose ticket is not the
job's current one is a duplicate or an orphan and does nothing, so a redelivered message can never
publish twice, and a crash between the two leaves the original message to be redelivered.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from aws_lambda_powertools import Logger

from wfm_publish import conflicts, waiting
from wfm_publish.clock import Clock
from wfm_publish.conflicts import ConflictStep
from wfm_publish.errors import (
    GenesysAuthError,
    GenesysConflict,
    GenesysError,
    GenesysNotFound,
    GenesysRateLimited,
    GenesysTransient,
    StaleJob,
)
from wfm_publish.models import (
    Job,
    JobMessage,
    JobStatus,
    ReasonCode,
    Step,
)
from wfm_publish.queues import Queue, QueueSender
from wfm_publish.store import JobStore
from wfm_publish.transitions import Transitions, may_still_land, move_on
from wfm_publish.validation import ValidationStep
from wfm_publish.waiting import Timing

if TYPE_CHECKING:
    # Imported where a step needs them: a stale, early or confirmed message and the dead-letter sweep
    # never read telephony, and the Genesys client brings `requests` and the wire models.
    from wfm_publish.genesys_wire import OperationOutcome, Schedule
    from wfm_publish.ports import PipelineGenesys
    from wfm_publish.scope import TelephonyOptions

logger = Logger(child=True)


EARLY_LOOKS = 5  # a message that arrived before its job's write is sent back this often, at most
EARLY_WAIT = 1.0  # seconds before the first of those looks; each next one waits twice as long
UNDONE = frozenset({"Error", "Canceled"})  # an update that ended so applied nothing: it can no longer land


@runtime_checkable
class OutcomeSource(Protocol):
    """Where the outcome of an asynchronous schedule update is recorded: the jobs table (the
    genesys_events function writes it), or the virtual run's notifications."""

    def operation_outcome(self, operation_id: str) -> OperationOutcome | None: ...


class NoOutcomes:
    """No notifications reach this deployment: the re-read of the schedule is the only way to know."""

    def operation_outcome(self, operation_id: str) -> OperationOutcome | None:
        return None


class Pipeline(ValidationStep, ConflictStep):
    """The steps a queued job goes through: entry, publish and confirm here; validate in validation.py;
    a 409 in conflicts.py."""

    def __init__(
        self,
        store: JobStore,
        queues: QueueSender,
        genesys: PipelineGenesys | Callable[[], PipelineGenesys],
        clock: Clock,
        timing: Timing | None = None,
        rng: random.Random | None = None,
        options: TelephonyOptions | Callable[[], TelephonyOptions] | None = None,
        outcomes: OutcomeSource | None = None,
    ) -> None:
        """`genesys` and `options` may be factories, called at the first step that needs them."""
        self.store = store
        self.queues = queues
        self.transitions = Transitions(store, queues, clock)
        self._genesys = genesys
        self.clock = clock
        self.timing = timing or Timing()
        self.rng = rng or random.Random()
        self._options = options
        # The table holds what the genesys_events function recorded (nothing, without the integration).
        if outcomes is None:
            outcomes = store if isinstance(store, OutcomeSource) else NoOutcomes()
        self.outcomes = outcomes

    @property
    def genesys(self) -> PipelineGenesys:
        if callable(self._genesys):
            self._genesys = self._genesys()
        return self._genesys

    @genesys.setter
    def genesys(self, client: PipelineGenesys) -> None:
        self._genesys = client

    @property
    def options(self) -> TelephonyOptions:
        if self._options is None:
            from wfm_publish.scope import TelephonyOptions

            self._options = TelephonyOptions()
        elif callable(self._options):
            self._options = self._options()
        return self._options

    @options.setter
    def options(self, options: TelephonyOptions) -> None:
        self._options = options

    # --- entry point -------------------------------------------------------------------------------

    def process(self, queue: Queue, message: JobMessage) -> None:
        """Run the step `message` asks for. Raises only when the message should be redelivered."""
        if self.queues.hop_if_early(queue, message):
            return
        job = self.store.get_job(message.job_id)
        if _ahead_of(job, message):
            self._come_back(queue, message)
            return
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

    def _come_back(self, queue: Queue, message: JobMessage) -> None:
        """The write that sent this message is not visible yet (it follows the send by milliseconds):
        look again in a moment. A write that never happened (its worker died) leaves an orphan, which
        gives up after a few looks; the original message, redelivered, carries the job on."""
        if message.early >= EARLY_LOOKS:
            logger.warning("orphan message dropped", extra={"job_id": message.job_id, "step": message.step})
            return
        # 1, 2, 4, 8, 16 s: 31 s in all, longer than botocore's retries of a throttled write take.
        wait = EARLY_WAIT * 2**message.early
        self.queues.send(queue, message.model_copy(update={"early": message.early + 1}), wait)

    def _run(self, job: Job, message: JobMessage) -> None:
        try:
            if self.clock.now() >= job.deadline_at:
                self._at_deadline(job)
            elif message.step is Step.VALIDATE:
                self._validate(job, message.quiet, message.looked_at)
            elif message.step is Step.CONFIRM:
                self._confirm(job)
            else:
                self._resolve_conflict(job, message.conflict)
        except GenesysError as error:
            self._on_genesys_error(job, error, posted=job.status is JobStatus.PUBLISHING)

    def _at_deadline(self, job: Job) -> None:
        """The deadline has come: the job ends now. If an update of ours may still land, one look at
        the schedule first: published means PUBLISHED, whatever the clock says."""
        detail = f"the job's deadline passed while {job.status.value}"
        if may_still_land(job):
            bu, week = job.place()
            try:
                if self._landed(job, self.genesys.schedule(bu, week, job.schedule_id)):
                    return
            except GenesysError as error:
                detail += f" (the schedule could not be read: {error})"
            detail += "; an update of ours was posted and not seen applied: Genesys may still apply it"
        self.transitions.finish(job, JobStatus.FAILED, ReasonCode.DEADLINE_EXCEEDED, detail)

    def _on_genesys_error(self, job: Job, error: GenesysError, *, posted: bool = False) -> None:
        """`posted`: an update of ours is out and its outcome unknown. Then waiting is done by
        confirming (a read of the schedule), never by going back to validation: the job stays
        PUBLISHING, so nothing can cancel it while Genesys may still apply the update."""
        if posted and isinstance(error, GenesysRateLimited | GenesysTransient):
            wait = error.retry_after if isinstance(error, GenesysRateLimited) else None
            self.transitions.move(
                job,
                JobStatus.PUBLISHING,
                Step.CONFIRM,
                wait if wait is not None else waiting.backoff(job.transient_failures, self.rng),
                "update outcome unknown; confirming",
                changes={"transient_failures": job.transient_failures + (0 if wait is not None else 1)},
                **error.brief(),
            )
        elif isinstance(error, GenesysRateLimited):
            # Genesys says when: wait exactly that long; a refused publish costs nothing from the budget.
            attempts = job.publish_attempts - (1 if job.status is JobStatus.PUBLISHING else 0)
            self.transitions.move(
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
            self.transitions.finish(
                job, JobStatus.FAILED, ReasonCode.SCHEDULE_NOT_FOUND, str(error), error.describe()
            )
        elif isinstance(error, GenesysAuthError):
            self.transitions.finish(
                job, JobStatus.FAILED, ReasonCode.GENESYS_AUTH_FAILED, str(error), error.describe()
            )
        else:
            self.transitions.finish(
                job, JobStatus.FAILED, ReasonCode.GENESYS_REJECTED, str(error), error.describe()
            )

    # --- steps (validation: ValidationStep; a 409: ConflictStep) -------------------------------------

    def _publish(self, job: Job, schedule: Schedule | None = None) -> None:
        """Publish from `schedule` (read just now by the caller) or from a fresh read."""
        if job.request.dry_run:  # never reached by a dry run (it ends after its checks); a guard
            self.transitions.finish(job, JobStatus.CHECKED, ReasonCode.DRY_RUN, "dry run: nothing published")
            return
        bu, week = job.place()
        if schedule is None:
            schedule = self.genesys.schedule(bu, week, job.schedule_id)
        if self._landed(job, schedule):
            return
        if job.publish_attempts > job.request.telephony_sync.retry_count:
            self.transitions.finish(
                job,
                JobStatus.FAILED,
                ReasonCode.RETRIES_EXHAUSTED,
                f"{job.publish_attempts} publish attempts did not go through",
                attempts=job.publish_attempts,
            )
            return
        now = self.clock.now()
        # Restored if Genesys says no: an earlier update of ours that may still land stays the one pending.
        refused = {"pending_base_version": job.pending_base_version, "operation_id": job.operation_id}
        # The confirm message is queued before the update is posted: a crash mid-upload is noticed.
        # From here until Genesys answers, this update may land: its base is pending.
        job = self.transitions.move(
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
                "pending_base_version": schedule.metadata.version,
            },
            scheduleVersion=schedule.metadata.version,
            attempt=job.publish_attempts + 1,
        )
        try:
            operation = self.genesys.publish(bu, week, schedule)
        except GenesysConflict as conflict:
            self.transitions.move(
                job,
                JobStatus.RETRYING,
                Step.CONFLICT,
                0.0,
                "409 conflict",
                queue=Queue.CONFLICT,
                conflict=conflict.body,
                changes=refused,
                **conflict.brief(),
            )
            return
        except GenesysError as error:
            if isinstance(error, GenesysRateLimited) or _before_update(error):
                # Nothing was posted, or Genesys refused it before taking it: nothing of it can land.
                self._on_genesys_error(job.model_copy(update=refused), error)
            else:
                self._on_genesys_error(job, error, posted=True)  # it may have been applied
            return
        job = job.model_copy(update={"operation_id": operation.operation_id})
        self.transitions.note(
            job, "update accepted", status=operation.status, operationId=operation.operation_id
        )

    def _confirm(self, job: Job) -> None:
        # The notification first (a table read): it says how the update ended without a Genesys read.
        outcome = self.outcomes.operation_outcome(job.operation_id) if job.operation_id else None
        if outcome is not None and outcome.status == "Complete" and self._completed(job, outcome):
            return
        if outcome is not None and outcome.status in UNDONE:
            self._update_undone(job, outcome)
            return
        # No notification (lost, late, or no integration): the re-read, bounded by confirm_timeout.
        bu, week = job.place()
        schedule = self.genesys.schedule(bu, week, job.schedule_id)
        if self._landed(job, schedule):
            return
        now = self.clock.now()
        since = job.publishing_since or now
        if now - since < self.timing.confirm_timeout:
            delay = min(30.0, max(self.timing.confirm_first, (now - since)))
            self.transitions.move(
                job,
                JobStatus.PUBLISHING,
                Step.CONFIRM,
                delay,
                "update not applied yet",
                scheduleVersion=schedule.metadata.version,
                published=schedule.published,
            )
            return
        self.transitions.move(
            job,
            JobStatus.WAITING,
            Step.VALIDATE,
            0.0,
            "update was not applied; validating again",
            waitedSeconds=round(now - since, 1),
        )

    def _completed(self, job: Job, outcome: OperationOutcome) -> bool:
        """Genesys said our update is Complete: published, if the schedule it left is published past
        the update's base (as conflicts.landed asks of a read). Otherwise the read decides."""
        result = outcome.result or {}
        metadata = result.get("metadata")
        version = metadata.get("version") if isinstance(metadata, dict) else None
        base = job.pending_base_version
        if result.get("published") is not True or not isinstance(version, int) or base is None:
            return False
        if version <= base:
            return False
        return self._published(job, version, operationId=outcome.operation_id)

    def _update_undone(self, job: Job, outcome: OperationOutcome) -> None:
        """Our update ended Error or Canceled: nothing of it was applied and it can no longer land.
        Publish again from a fresh read within the attempt budget, else FAILED with what Genesys said."""
        now = self.clock.now()
        words = f"Genesys ended schedule update {outcome.operation_id} with status {outcome.status}"
        if outcome.status == "Error":
            words += " and no detail"  # Error carries nothing but the operation id
        cleared = job.model_copy(deep=True, update={"pending_base_version": None, "operation_id": None})
        if job.publish_attempts > job.request.telephony_sync.retry_count:
            self.transitions.finish(
                cleared,
                JobStatus.FAILED,
                ReasonCode.UPDATE_FAILED,
                f"{words}; {job.publish_attempts} publish attempts",
                operationId=outcome.operation_id,
                genesysStatus=outcome.status,
                attempts=job.publish_attempts,
            )
            return
        cleared.record(now, "update ended unapplied", operationId=outcome.operation_id, status=outcome.status)
        self._publish(cleared)

    def abandon(self, message: JobMessage, why: str) -> bool:
        """A message that kept failing reached its DLQ (the dead-letter sweep). Only the job's current
        message can do anything, like any other step. With nothing of ours out, the job ends FAILED
        (PROCESSING_FAILED) rather than wait forever. An update of ours may have landed
        (may_still_land): never FAILED without finding out, as the deadline path decides. Past the
        deadline, its own look ends the job; before it, one read of the schedule: landed, PUBLISHED;
        not (yet), or Genesys unreadable now, the job moves on with a fresh ticket to the step that
        finds out (move_on: confirm), which its deadline bounds. True: the letter did its work (the
        job ended or moved on); False: it was obsolete."""
        job = self.store.get_job(message.job_id)
        if job is None or job.status.terminal or job.ticket != message.ticket:
            return False
        try:
            if not may_still_land(job):
                step = {"step": message.step.value}
                self.transitions.finish(job, JobStatus.FAILED, ReasonCode.PROCESSING_FAILED, why, step)
            elif self.clock.now() >= job.deadline_at:
                self._at_deadline(job)
            else:
                self._find_out(job, message, why)
        except StaleJob:
            return False  # it moved on after all: not ours to end
        return True

    def _find_out(self, job: Job, message: JobMessage, why: str) -> None:
        """A dead letter's job whose update may have landed, before its deadline: read the schedule."""
        try:
            bu, week = job.place()
            if self._landed(job, self.genesys.schedule(bu, week, job.schedule_id)):
                return
            seen = "not applied yet"
        except GenesysError as error:
            seen = f"the schedule could not be read: {error}"
        move_on(
            self.transitions,
            job,
            "dead letter: moved on to find out whether the update landed",
            step=message.step.value,
            why=why,
            update=seen,
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
        """Our update is applied: the schedule is published past the base of an update of ours that
        may have landed (conflicts.landed). Someone else's edit of a published schedule is not."""
        if not conflicts.landed(schedule, job.pending_base_version):
            return False
        return self._published(job, schedule.metadata.version)

    def _published(self, job: Job, version: int, **detail: str) -> bool:
        """End the job PUBLISHED at `version` (after the deferred capacity check, if one is due)."""
        checked = self._deferred_capacity(job)
        if checked is None:
            return True  # published; the capacity check looks again shortly
        job = checked
        warning = f"; warning: {job.warnings[-1]}" if job.warnings else ""
        self.transitions.finish(
            job,
            JobStatus.PUBLISHED,
            ReasonCode.PUBLISHED,
            f"published at schedule version {version}{warning}",
            scheduleVersion=version,
            **detail,
        )
        return True

    def _retry_later(self, job: Job, failure: GenesysError) -> None:
        delay = waiting.backoff(job.transient_failures, self.rng)
        self.transitions.move(
            job,
            JobStatus.WAITING,
            Step.VALIDATE,
            delay,
            "Genesys unavailable; backing off",
            changes={"transient_failures": job.transient_failures + 1},
            **failure.brief(),
        )


def _ahead_of(job: Job | None, message: JobMessage) -> bool:
    """The message belongs to a version of the job not written yet (or to a job not created yet)."""
    if message.version is None:
        return False
    return job is None or (job.ticket != message.ticket and job.version < message.version)


def _before_update(error: GenesysError) -> bool:
    """The failure came before the update itself was posted (asking for the upload URL, uploading)."""
    return error.path.endswith("/uploadurl") or error.path == "upload"
