"""Every error the core raises on purpose, in one place: adapters turn transport errors into these, and
the edges (the API, the handlers) map them to answers; nothing else leaks past them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from wfm_publish.models import GenesysErrorBody, IdempotencyRecord, Job, Refusal


class WfmPublishError(Exception):
    """Base of every error the core raises on purpose."""


class ConfigurationError(WfmPublishError):
    """The function's environment is missing or wrong; fix the deployment."""


class SecretUnavailable(WfmPublishError):
    """Secrets Manager could not answer for a moment (throttled past botocore's retries, a 5xx, a timeout,
    no connection): the same read may well succeed shortly. Nothing is wrong with the deployment."""


# --- store ---------------------------------------------------------------------------------------


class StoreError(WfmPublishError):
    """DynamoDB refused or failed a call for a reason other than a condition."""


class JobAlreadyExists(WfmPublishError):
    def __init__(self, job_id: str) -> None:
        super().__init__(f"job {job_id} already exists")
        self.job_id = job_id


class StaleJob(WfmPublishError):
    """Another worker moved the job first: the caller's view of it is out of date."""

    def __init__(self, job_id: str, current: Job | None) -> None:
        super().__init__(f"job {job_id} was changed by another worker")
        self.job_id = job_id
        self.current = current


class JobEnded(WfmPublishError):
    """The job ended before the write that needed it alive (a join): start afresh."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"job {job_id} has ended")
        self.job_id = job_id


# --- Genesys Cloud -------------------------------------------------------------------------------


class GenesysError(WfmPublishError):
    """A Genesys Cloud call failed; `body` is the parsed Genesys error body when there was one."""

    def __init__(
        self, message: str, *, status: int | None = None, body: GenesysErrorBody | None = None, path: str = ""
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = body
        self.path = path

    def brief(self) -> dict[str, Any]:
        """What a person reading the job's timeline needs: status, Genesys codes, message, correlation id."""
        brief: dict[str, Any] = {"status": self.status}
        if self.body is not None:
            brief["codes"] = self.body.error_codes or [self.body.code]
            brief["message"] = self.body.message
            brief["correlationId"] = self.body.context_id
        else:
            brief["message"] = str(self)
        return {k: v for k, v in brief.items() if v is not None}

    def describe(self) -> dict[str, Any]:
        described: dict[str, Any] = {"status": self.status, "path": self.path, "message": str(self)}
        if self.body is not None:
            described["genesys"] = self.body.model_dump(by_alias=True, exclude_none=True)
        return described


class GenesysConflict(GenesysError):
    """409: the schedule moved (stale metadata.version), telephony is settling, or a publish is running."""


class GenesysRateLimited(GenesysError):
    """429: wait `retry_after` seconds. Costs nothing from the retry budget."""

    def __init__(self, message: str, *, retry_after: float, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class GenesysTransient(GenesysError):
    """5xx, a timeout or a dropped connection: worth another try after a backoff."""


class GenesysServerError(GenesysTransient):
    """5xx (or 408): Genesys failed the call; the same call may well succeed later."""


class GenesysTimeout(GenesysTransient):
    """No answer within the connect or read timeout. A write may or may not have been applied."""


class GenesysConnectionError(GenesysTransient):
    """The connection was refused, reset or dropped before an answer arrived."""


class GenesysPending(GenesysTransient):
    """An asynchronous answer (an agent-schedule query) is not ready yet: ask again later, don't sleep."""

    def __init__(self, message: str, *, operation_id: str, retry_after: float = 2.0, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.operation_id = operation_id
        self.retry_after = retry_after


class GenesysAuthError(GenesysError):
    """401/403 that a fresh token did not cure: the OAuth client or its roles are wrong."""


class GenesysUnauthorized(GenesysAuthError):
    """401 after one renewal, or the token endpoint refused the client credentials."""


class GenesysForbidden(GenesysAuthError):
    """403: the token is good but the OAuth client lacks the permission (or division) for the call."""


class GenesysNotFound(GenesysError):
    """404: the business unit, week, schedule or telephony entity does not exist."""


class GenesysRejected(GenesysError):
    """Any other 4xx: the request itself is wrong and retrying will not help."""


# --- the store ---------------------------------------------------------------------------------------


class IdempotencyTaken(WfmPublishError):
    """The key is already held; `record` is what holds it (the caller replays, refuses or waits)."""

    def __init__(self, record: IdempotencyRecord) -> None:
        super().__init__(f"idempotency key {record.key} is taken")
        self.record = record


# --- the queues --------------------------------------------------------------------------------------


class QueueError(WfmPublishError):
    """SQS refused or failed a send; the step raising it will be retried by redelivery."""


# --- intake (the publish API and the weekly run) -----------------------------------------------------


class IdempotencyKeyReused(WfmPublishError):
    """422: the key was first used with another body."""


class RequestInProgress(WfmPublishError):
    """409: the first request with this key is still being answered; retry shortly."""


class ScheduleBeingAccepted(RequestInProgress):
    """409: another request for this schedule is being accepted this moment; retry shortly (it will
    then join that job, which exists by then)."""


class JoinConflict(WfmPublishError):
    """409: a job for this schedule is in flight with other options; wait for it, or cancel it."""

    def __init__(self, message: str, job: Job, differences: list[str]) -> None:
        super().__init__(message)
        self.job = job
        self.differences = differences


# --- cancel ------------------------------------------------------------------------------------------


class PublishNotFound(WfmPublishError):
    """404: no job has this id (or it expired)."""


class CancelRefused(WfmPublishError):
    """409: the job already ended, or an update of it may be applied by Genesys."""

    def __init__(self, message: str, refusal: Refusal, job: Job) -> None:
        super().__init__(message)
        self.refusal = refusal
        self.job = job


class CancelContended(WfmPublishError):
    """The job kept moving under the cancel; the caller may retry (503)."""


# --- the API signature -------------------------------------------------------------------------------


class SignatureRejected(WfmPublishError):
    """401: the request is not signed, signed with another secret, for another request, or too long ago."""


# --- ServiceNow (the callback) -----------------------------------------------------------------------


class ServiceNowError(WfmPublishError):
    """ServiceNow could not be told; another try may succeed (`transient`)."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        transient: bool = True,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.transient = transient
        self.retry_after = retry_after


class CallbackRejected(ServiceNowError):
    """ServiceNow refused the callback for good (401 after a token renewal, 403, 404, another 4xx):
    another try gets the same answer. The record should be logged and dropped, not retried."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message, status=status, transient=False)


class NotifyContended(WfmPublishError):
    """Another teller (the stream's notifier, or `ops notify`) holds the telling of this job's callback
    records and has not noted them told yet: the stream retries the record; an operator runs the command
    again once the other is done, or once its lease has run out (a teller that died holding it)."""

    def __init__(self, job_id: str, holder: str) -> None:
        super().__init__(
            f"the callback records of publish {job_id} are being told by another notifier ({holder});"
            " try again in a minute"
        )
        self.job_id = job_id
        self.holder = holder
