"""Tell ServiceNow how a job ended: the callback record gets its status, reason and a work note.

The notifier reads the jobs table's DynamoDB stream, filtered to a job's status changing to a terminal
one (PUBLISHED, FAILED, CANCELLED, or CHECKED for a dry run; template.yaml), so a crash never loses a
notification: the stream keeps the record and Lambda retries it (then bisects, then sends it to
NotifierDLQ). Each record hears the end exactly once:

- A delivery is noted on the job (`notifiedStatus`, `deliveries`); a record already noted is skipped.
- Before each PATCH the record is read: one that already shows this job's end (an earlier attempt
  PATCHed it and died before noting it) is not PATCHed again.
- One teller at a time: the stream's notifier and an operator's `ops notify` each take the job's
  `notify#` lease (store.claim_telling) before they read what is told. The other stands back: the
  stream's record is retried, the operator is told to try again. A teller whose attempt fails (say
  ServiceNow answers 503) lets go at once. The stream is one teller (its records of a job come in
  order, one at a time), so its own retry after a crash goes on at once; a lease left by a teller
  killed while holding it runs out after LEASE_SECONDS.

Progress (`callback.progress: true`): the records that asked also hear PUBLISHING when the job starts
publishing, so ServiceNow can hold changes while the publish window is open (docs/servicenow.md): the
request's and every joined request's, and a request that joins while the job is publishing when its
join's stream record comes. Progress never overwrites an end: it is told under the same lease (no
other teller tells the end meanwhile), and not to a record that already shows this job publishing or
ended (read first; on the stream, a job's PUBLISHING record comes before its end). Nothing is written
to the job for it: the job is still moving, and a write here would race the pipeline's conditional
writes (its version).

A job removed before it ended (the stream's REMOVE) tells its records FAILED, each read first.
"""

from __future__ import annotations

from collections.abc import Callable, Set
from enum import StrEnum
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger

from wfm_publish.clock import Clock
from wfm_publish.errors import CallbackRejected, NotifyContended, StaleJob, StoreError
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
STREAM_TELLER = "stream"  # the stream's notifier: a job's records reach it in order, one at a time
# How long a teller holds a job's records: longer than the notifier's 30 s timeout, and than ops'
# read and PATCH of a record (ServiceNowClient's timeouts: ~13 s each, ~40 s with a token).
LEASE_SECONDS = 90.0
PUBLISHING_OR_ENDED = frozenset({JobStatus.PUBLISHING.value, *(s.value for s in JobStatus if s.terminal)})


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
    if job.capacity is not None:
        # The chart is signed like every request: ServiceNow fetches it through the update set's script.
        note += (
            f"\nCapacity chart: GET /publishes/{job.job_id}/capacity with Accept: image/svg+xml "
            f"(in ServiceNow: new WfmPublish().capacity('{job.job_id}', true).text)."
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


class Notifier:
    def __init__(
        self,
        store: JobStore,
        servicenow: Callable[[], ServiceNowClient],
        clock: Clock,
        *,
        teller: str = STREAM_TELLER,
    ) -> None:
        """`teller`: who tells (the stream's notifier, or an operator's command: `ops:<id>`)."""
        self._store = store
        self._servicenow = servicenow
        self._clock = clock
        self._teller = teller

    def notify(self, image: Job, before: Job | None = None) -> Outcome:
        """Deliver the end of `image` (the job as the stream saw it; `before`, the image before that
        write) to every record that has not heard it yet. Raises when it must be retried (NotifyContended:
        another teller holds the job's records); each delivery is recorded as it is made."""
        if image.status is JobStatus.PUBLISHING:
            return self._progress(image, before)
        if not image.status.terminal:
            return Outcome.NOT_TERMINAL
        records = callbacks(image)
        if not records:
            logger.info("job ended without a callback", extra={"job_id": image.job_id})
            return Outcome.NO_CALLBACK
        holder = self._hold(image)  # before reading what is told: nobody tells between our read and PATCH
        try:
            return self._tell_end(image, records, holder)
        except NotifyContended:
            raise  # another teller holds it: nothing of ours to let go of
        except Exception:
            self._let_go(image)  # a failed attempt (ServiceNow down): the next teller need not wait
            raise

    def _tell_end(self, image: Job, records: list[tuple[str, Callback]], holder: str | None) -> Outcome:
        current = self._store.get_job(image.job_id) or image
        told = {REQUEST: current.notified_status, **current.deliveries}
        waiting = [(key, callback) for key, callback in records if told.get(key) is not image.status]
        if not waiting:
            logger.info("callback already delivered", extra={"job_id": image.job_id})
            return Outcome.ALREADY_NOTIFIED
        outcome = Outcome.DELIVERED
        for n, (key, callback) in enumerate(waiting):
            if n:
                holder = self._hold(image)  # renewed before each record: a long list outlasts no lease
            if holder is not None:
                raise NotifyContended(image.job_id, holder)
            try:
                if self._shows(callback, image.job_id, {image.status.value}):
                    logger.info("the record already shows this end", extra={"job_id": image.job_id})
                else:
                    self._servicenow().update_record(callback.table, callback.sys_id, callback_fields(image))
            except CallbackRejected as rejected:
                # Retrying cannot help (a wrong record, a refused account): say so loudly, note it on
                # the job, and let the stream move on rather than retry into the DLQ.
                self._refused(image, callback, rejected)
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

    def _hold(self, image: Job) -> str | None:
        """Take (or renew) the telling of the job's records. Returns the other teller holding it."""
        now = self._clock.now()
        return self._store.claim_telling(image.job_id, self._teller, now, LEASE_SECONDS, image.deadline_at)

    def _let_go(self, image: Job) -> None:
        """Give up our hold (a conditional delete: never another teller's); if even that fails, the
        lease runs out by itself."""
        try:
            self._store.release_telling(image.job_id, self._teller)
        except StoreError:
            logger.warning("could not let go of the callback records", extra={"job_id": image.job_id})

    def _shows(self, callback: Callback, job_id: str, statuses: Set[str]) -> bool:
        """The record already shows this job in one of `statuses`: an earlier attempt PATCHed it and
        died before noting it. Reading first makes each PATCH exactly once, work note included."""
        seen = self._servicenow().read_record(callback.table, callback.sys_id, [ID_FIELD, STATUS_FIELD])
        return seen.get(ID_FIELD) == job_id and seen.get(STATUS_FIELD) in statuses

    def _refused(self, image: Job, callback: Callback, rejected: CallbackRejected) -> None:
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

    def lost(self, image: Job) -> Outcome:
        """The job's record was removed before it ended (the stream's REMOVE). It must not pass unseen:
        an error for the alarm, and its records are told it failed (each read first: a retried record
        tells nothing twice; nothing can be noted on a job that is gone)."""
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
        records = callbacks(ended)
        for _, callback in records:
            try:
                if not self._shows(callback, ended.job_id, {JobStatus.FAILED.value}):
                    self._servicenow().update_record(callback.table, callback.sys_id, callback_fields(ended))
            except CallbackRejected as rejected:
                self._refused(ended, callback, rejected)
        return Outcome.DELIVERED if records else Outcome.NO_CALLBACK

    def _progress(self, image: Job, before: Job | None) -> Outcome:
        """Tell the records that asked that the publish started: on a move into PUBLISHING, every one
        of them (each read first: a re-entry after a 409 finds them told); on a write that kept the job
        PUBLISHING, the requests that joined in it."""
        asked = [(key, callback) for key, callback in callbacks(image) if callback.progress]
        if before is not None and before.status is JobStatus.PUBLISHING:
            known = {joiner.key for joiner in before.joiners}
            asked = [(key, callback) for key, callback in asked if key != REQUEST and key not in known]
        if not asked:
            return Outcome.NO_CALLBACK
        if self._hold(image) is not None:
            # Only an operator's `ops notify` holds it besides us, and only for a job that has ended:
            # its end is being told; progress now would come after it.
            return Outcome.ALREADY_NOTIFIED
        try:
            return self._tell_progress(image, asked)
        except Exception:
            self._let_go(image)
            raise

    def _tell_progress(self, image: Job, asked: list[tuple[str, Callback]]) -> Outcome:
        current = self._store.get_job(image.job_id)
        if current is not None and current.notified_status is not None:
            return Outcome.ALREADY_NOTIFIED  # its end was told: never overwritten
        delivered = False
        for _, callback in asked:
            try:
                if self._shows(callback, image.job_id, PUBLISHING_OR_ENDED):
                    continue
                self._servicenow().update_record(callback.table, callback.sys_id, progress_fields(image))
            except CallbackRejected as rejected:
                self._refused(image, callback, rejected)
                continue
            delivered = True
            logger.info("ServiceNow told the publish started", extra={"job_id": image.job_id})
        return Outcome.PROGRESS_DELIVERED if delivered else Outcome.ALREADY_NOTIFIED

    def _record(
        self, image: Job, key: str, callback: Callback, event: str = "servicenow notified", **detail: str
    ) -> None:
        """Note the delivery on the job; losing this write costs a retry one read of the record (it then
        shows this end and is not PATCHed again)."""
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
