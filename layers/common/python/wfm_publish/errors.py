"""Domain exceptions. Adapters turn transport errors into these; nothing else leaks past them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from wfm_publish.models import GenesysErrorBody, Job


class WfmPublishError(Exception):
    """Base of every error the core raises on purpose."""


class ConfigurationError(WfmPublishError):
    """The function's environment is missing or wrong; fix the deployment."""


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
