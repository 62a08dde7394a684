"""Tell ServiceNow how a job ended: the callback record gets its status, reason and a work note.

The notifier reads the jobs table's DynamoDB stream, filtered to a job's status changing to a terminal
one (PUBLISHED, FAILED, CANCELLED, or CHECKED for a dry run; template.yaml), so a crash never loses a
notification: the stream keeps the record and Lambda retries it (then bisects, then sends it to
NotifierDLQ). A delivery is recorded on the job
(`notifiedStatus`), so a redelivered record does not PATCH twice unless the crash came between the
PATCH and that write: the same fields are set again and one more work note is added.

Progress (`callback.progress: true`): the record also hears PUBLISHING when the job first starts
publishing, so ServiceNow can hold changes while the publish window is open (docs/servicenow.md). The
stream filter passes every move into PUBLISHING; only the first (the image's timeline holds one
"publishing" entry) is told, and nothing is written to the job: the job is still moving, and a write
here would race the pipeline's conditional writes (its version) and strand the job.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger

from wfm_publish.clock import Clock
from wfm_publish.errors import CallbackRejected, StaleJob, StoreError
from wfm_publish.models import Callback, Job, JobStatus, ReasonCode
from wfm_publish.store import JobStore

if TYPE_CHECKING:
    from wfm_publish.servicenow import ServiceNowClient

logger = Logger(child=True)

STATUS_FIELD = "u_wfm_publish_status"
REASON_FIELD = "u_wfm_publish_reason"
ID_FIELD = "u_wfm_publish_id"
NOTE_FIELD = "work_notes"
NOTE_LIMIT = 4000
RECORD_ATTEMPTS = 3
REQUEST = "request"  # the request's own callback, beside joined requests' keys


class Outcome(StrEnum):
    DELIVERED = "delivered"
    NO_CALLBACK = "no callback"
    ALREADY_NOTIFIED = "already notified"
    NOT_TERMINAL = "not terminal"
    REJECTED = "rejected"  # ServiceNow refused for good (403, 404, a refused account): not retried
    PROGRESS_DELIVERED = "progress delivered"


def callback_fields(job: Job) -> dict[str, str]:
    """What the callback record gets: custom fields and a work note a person can read."""
    attempts = (
        f"{job.publish_attempts} publish attempt(s), {job.readiness_checks} telephony check(s), "
        f"{job.conflict_retries} conflict retr{'y' if job.conflict_retries == 1 else 'ies'}"
    )
    reason = job.reason_code.value if job.reason_code else job.status.value
    note = (
        f"wfm-publish: schedule {job.schedule_id} {job.status.value} ({reason}). "
        f"{job.detail or ''}\n{attempts}. "
        f"Publish id {job.job_id}: GET /publishes/{job.job_id} has the timeline."
    )
    return {
        STATUS_FIELD: job.status.value,
        REASON_FIELD: reason,
        ID_FIELD: job.job_id,
        NOTE_FIELD: note[:NOTE_LIMIT],
    }


def callbacks(job: Job) -> list[tuple[str, Callback]]:
    """Every record to tell: the request's own callback, then each joined request's (by its key)."""
    own = [(REQUEST, job.request.callback)] if job.request.callback else []
    return own + [(j.key, j.callback) for j in job.joiners if j.callback is not None]


def progress_fields(job: Job) -> dict[str, str]:
    """What the callback record gets when the publish starts: PUBLISHING, with a note saying what to hold."""
    note = (
        f"wfm-publish: schedule {job.schedule_id} PUBLISHING (attempt {job.publish_attempts}). "
        "Hold availability and schedule changes for it until this record shows PUBLISHED, FAILED or "
        f"CANCELLED. Publish id {job.job_id}: GET /publishes/{job.job_id} has the timeline."
    )
    return {
        STATUS_FIELD: job.status.value,
        REASON_FIELD: job.status.value,
        ID_FIELD: job.job_id,
        NOTE_FIELD: note[:NOTE_LIMIT],
    }


def first_publishing(job: Job) -> bool:
    """The image is the job's first move into PUBLISHING (a 409 or a rate limit can bring it back there).
    A timeline trimmed past TIMELINE_LIMIT may have lost the first entry: that can repeat the notice
    (the same fields set again), never lose it."""
    return sum(1 for entry in job.timeline if entry.event == "publishing") <= 1


class Notifier:
    def __init__(self, store: JobStore, servicenow: Callable[[], ServiceNowClient], clock: Clock) -> None:
        self._store = store
        self._servicenow = servicenow
        self._clock = clock

    def notify(self, image: Job) -> Outcome:
        """Deliver the end of `image` (the job as the stream saw it) to every record that has not
        heard it yet. Raises when it must be retried; each delivery is recorded as it is made."""
        if image.status is JobStatus.PUBLISHING:
            return self._progress(image)
        if not image.status.terminal:
            return Outcome.NOT_TERMINAL
        records = callbacks(image)
        if not records:
            logger.info("job ended without a callback", extra={"job_id": image.job_id})
            return Outcome.NO_CALLBACK
        current = self._store.get_job(image.job_id) or image
        told = {REQUEST: current.notified_status, **current.deliveries}
        waiting = [(key, callback) for key, callback in records if told.get(key) is not image.status]
        if not waiting:
            logger.info("callback already delivered", extra={"job_id": image.job_id})
            return Outcome.ALREADY_NOTIFIED
        outcome = Outcome.DELIVERED
        for key, callback in waiting:
            try:
                if self._already_told(image, callback):
                    logger.info("the record already shows this end", extra={"job_id": image.job_id})
                else:
                    self._servicenow().update_record(callback.table, callback.sys_id, callback_fields(image))
            except CallbackRejected as rejected:
                # Retrying cannot help (a wrong record, a refused account): say so loudly, note it on
                # the job, and let the stream move on rather than retry into the DLQ.
                logger.error(
                    "ServiceNow refused the callback for good",
                    extra={
                        "job_id": image.job_id,
                        "table": callback.table,
                        "sys_id": callback.sys_id,
                        "status": image.status.value,
                        "problem": str(rejected),
                    },
                )
                self._record(
                    image, key, callback, event="servicenow refused the callback", problem=str(rejected)
                )
                outcome = Outcome.REJECTED
                continue
            logger.info(
                "ServiceNow notified",
                extra={"job_id": image.job_id, "status": image.status.value, "table": callback.table},
            )
            self._record(image, key, callback)
        return outcome

    def _already_told(self, image: Job, callback: Callback) -> bool:
        """The record already shows this job's end: an earlier attempt PATCHed it and died before
        noting it on the job. Reading first makes the delivery exactly once, work note included."""
        seen = self._servicenow().read_record(callback.table, callback.sys_id, [ID_FIELD, STATUS_FIELD])
        return seen.get(ID_FIELD) == image.job_id and seen.get(STATUS_FIELD) == image.status.value

    def lost(self, image: Job) -> Outcome:
        """The job's record was removed before it ended (the stream's REMOVE). It must not pass unseen:
        an error for the alarm, and its records are told it failed."""
        logger.error(
            "a job was removed before it ended", extra={"job_id": image.job_id, "status": image.status.value}
        )
        ended = image.model_copy(
            update={
                "status": JobStatus.FAILED,
                "reason_code": ReasonCode.PROCESSING_FAILED,
                "detail": f"the job's record was removed while it was {image.status.value}",
            }
        )
        for _, callback in callbacks(ended):
            self._servicenow().update_record(callback.table, callback.sys_id, callback_fields(ended))
        return Outcome.DELIVERED if callbacks(ended) else Outcome.NO_CALLBACK

    def _progress(self, image: Job) -> Outcome:
        callback = image.request.callback
        if callback is None or not callback.progress:
            return Outcome.NO_CALLBACK
        if not first_publishing(image):
            return Outcome.ALREADY_NOTIFIED
        current = self._store.get_job(image.job_id)
        if current is not None and current.notified_status is not None:
            return Outcome.ALREADY_NOTIFIED  # a late retry: the record already heard the end
        self._servicenow().update_record(callback.table, callback.sys_id, progress_fields(image))
        logger.info("ServiceNow told the publish started", extra={"job_id": image.job_id})
        return Outcome.PROGRESS_DELIVERED

    def _record(
        self, image: Job, key: str, callback: Callback, event: str = "servicenow notified", **detail: str
    ) -> None:
        """Note the delivery on the job; losing this write only risks one repeated PATCH."""
        for _ in range(RECORD_ATTEMPTS):
            job = self._store.get_job(image.job_id)
            if job is None or job.status is not image.status:
                return
            now = self._clock.now()
            if key == REQUEST:
                noted = job.model_copy(
                    deep=True, update={"notified_status": image.status, "notified_at": now}
                )
            else:
                noted = job.model_copy(
                    deep=True, update={"deliveries": {**job.deliveries, key: image.status}}
                )
            noted.record(now, event, table=callback.table, sysId=callback.sys_id, **detail)
            try:
                self._store.save_job(noted)
                return
            except StaleJob:
                continue
            except StoreError:
                logger.exception("could not record the delivery", extra={"job_id": image.job_id})
                return
        logger.warning("the job kept changing; delivery not recorded", extra={"job_id": image.job_id})
