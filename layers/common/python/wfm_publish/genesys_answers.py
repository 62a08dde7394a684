"""What a Genesys answer means: the body of a good one, or the typed error (errors.py) of a bad one,
with its error body and, for a 429, how long Genesys asks us to wait."""

from __future__ import annotations

import email.utils
import time
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from wfm_publish.errors import (
    GenesysConflict,
    GenesysError,
    GenesysForbidden,
    GenesysNotFound,
    GenesysRateLimited,
    GenesysRejected,
    GenesysServerError,
    GenesysUnauthorized,
)
from wfm_publish.models import GenesysErrorBody

if TYPE_CHECKING:
    import requests

__all__ = ["DEFAULT_RETRY_AFTER", "answer_body", "error_body", "retry_after"]

DEFAULT_RETRY_AFTER = 60.0  # a 429 with no usable Retry-After: wait a whole rate window


def answer_body(response: requests.Response, path: str) -> dict[str, Any]:
    """The body of a good answer, or the typed error for a bad one."""
    status = response.status_code
    if status < 300:
        if not response.content:
            return {}
        try:
            body = response.json()
        except ValueError as exc:
            raise GenesysServerError(
                f"{status} on {path}: the answer is not JSON", status=status, path=path
            ) from exc
        return body if isinstance(body, dict) else {"entities": body}
    error = error_body(response)
    summary = f"{status} on {path}: {(error.message if error else None) or response.reason}"
    kwargs: dict[str, Any] = {"status": status, "body": error, "path": path}
    if status == 409:
        raise GenesysConflict(summary, **kwargs)
    if status == 429:
        wait = retry_after(response.headers.get("Retry-After"), error)
        raise GenesysRateLimited(summary, retry_after=wait, **kwargs)
    if status == 401:
        raise GenesysUnauthorized(summary, **kwargs)
    if status == 403:
        raise GenesysForbidden(summary, **kwargs)
    if status == 404:
        raise GenesysNotFound(summary, **kwargs)
    if status >= 500 or status == 408:
        raise GenesysServerError(summary, **kwargs)
    if status >= 400:
        raise GenesysRejected(summary, **kwargs)
    raise GenesysError(summary, **kwargs)


def error_body(response: requests.Response) -> GenesysErrorBody | None:
    """The error body of a bad answer (its context id from the correlation header when it has none),
    or None when the body is not one (a proxy's HTML page)."""
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    try:
        error = GenesysErrorBody.model_validate(body)
    except ValidationError:
        return None
    if error.context_id is None:
        error.context_id = response.headers.get("ININ-Correlation-Id")
    return error


def retry_after(value: str | None, error: GenesysErrorBody | None = None) -> float:
    """Seconds to wait: the header (seconds or an HTTP date), else the body's retryAfter, else a minute."""
    for candidate in (value, (error.message_params or {}).get("retryAfter") if error else None):
        if candidate is None:
            continue
        text = str(candidate).strip()
        try:
            return max(1.0, float(text))
        except ValueError:
            pass
        try:
            moment = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            continue
        return max(1.0, moment.timestamp() - time.time())
    return DEFAULT_RETRY_AFTER
