"""The publish API's edge: its problems (one shape for every refusal), the checks made before any route
runs, and how the routes' errors become answers. What it answers is in answers.py; the parts of the
OpenAPI document the routes do not say, in wfm_publish_local.openapi (never on the Lambda's path).

The handler (functions/publish_trigger/app.py) declares the routes with these models on
wfm_publish.router, so the OpenAPI document (docs/openapi.json) is generated from the code (through
`Router.resolver()`: Powertools' validating resolver, never imported by the Lambda). Every refusal has
the same shape:

    {"message": "what is wrong and what to do", "code": "SIGNATURE_REJECTED", "errors": [...]}

Order of the checks, each before anything else is read: the signature (401), the body's size (413),
its content type and JSON syntax (415); then the route's own validation (400 listing each field).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from enum import StrEnum
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from pydantic import Field

from wfm_publish import request_body
from wfm_publish.errors import (
    CancelContended,
    CancelRefused,
    ConfigurationError,
    IdempotencyKeyReused,
    JoinConflict,
    PublishNotFound,
    QueueError,
    RequestInProgress,
    ScheduleBeingAccepted,
    SecretUnavailable,
    SignatureRejected,
    StoreError,
)
from wfm_publish.models import JobStatus, Wire
from wfm_publish.router import Reply, RequestValidationError, ResponseValidationError, Router
from wfm_publish.signature import verify

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse

    from wfm_publish.intake import Accepted, Intake
    from wfm_publish.models import PublishRequest

logger = Logger(child=True)

MAX_BODY_BYTES = 64 * 1024
KEY_DOC = (
    "One key per request (e.g. the change number and an attempt id). The same key with the same body "
    "replays the first answer; with another body it is a 422. X-Request-Id is accepted in its place."
)
JSON = "application/json"
API_KEY_PREFIX = "api:"  # beside wfm_publish.weekly.KEY_PREFIX ("weekly:"): one key space, no overlap


class ProblemCode(StrEnum):
    INVALID_REQUEST = "INVALID_REQUEST"  # 400: the body or a header breaks the schema
    IDEMPOTENCY_KEY_MISSING = "IDEMPOTENCY_KEY_MISSING"  # 400
    SIGNATURE_REJECTED = "SIGNATURE_REJECTED"  # 401
    NOT_FOUND = "NOT_FOUND"  # 404
    NO_CAPACITY_REPORT = "NO_CAPACITY_REPORT"  # 404: the publish has no capacity report (the message: why)
    REQUEST_IN_PROGRESS = "REQUEST_IN_PROGRESS"  # 409: the first request with this key is running
    ALREADY_ENDED = "ALREADY_ENDED"  # 409: cancel of a job that ended
    PUBLISH_IN_PROGRESS = "PUBLISH_IN_PROGRESS"  # 409: cancel lost to a publish
    JOIN_CONFLICT = "JOIN_CONFLICT"  # 409: a publish of the schedule is in flight with other options
    BODY_TOO_LARGE = "BODY_TOO_LARGE"  # 413
    UNSUPPORTED_MEDIA_TYPE = "UNSUPPORTED_MEDIA_TYPE"  # 415: not application/json, or not JSON
    IDEMPOTENCY_KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"  # 422
    MISCONFIGURED = "MISCONFIGURED"  # 500: the deployment is wrong (never the caller)
    INTERNAL = "INTERNAL"  # 500: an answer broke its own schema (a bug)
    UNAVAILABLE = "UNAVAILABLE"  # 503: storage or queue failed; retry with the same key


# --- problem bodies and keys -----------------------------------------------------------------------


class FieldProblem(Wire):
    field: str = Field(description="the field as the caller wrote it, e.g. telephonySync.delayMs")
    problem: str


class ProblemBody(Wire):
    message: str
    code: ProblemCode
    errors: list[FieldProblem] | None = Field(default=None, description="400: each field and why")
    publish_id: str | None = None
    status: JobStatus | None = Field(default=None, description="409 on cancel: the job's status")


KEY_MISSING = (
    "the Idempotency-Key header is required (X-Request-Id is accepted in its place):"
    " send the same key when you retry the same request"
)


def idempotency_key(key: str) -> str:
    """The key as intake stores it: API keys live apart from the weekly run's `weekly:<bu>:<week>`, so
    no request can take (or replay) a weekly run's key, whatever it sends."""
    return f"{API_KEY_PREFIX}{key}"


def accept(intake: Intake, request: PublishRequest, key: str) -> Accepted:
    """The request through intake under the caller's key; a refusal that names the key names it as the
    caller sent it, never as the table stores it."""
    try:
        return intake.accept(request, idempotency_key(key))
    except IdempotencyKeyReused:
        raise ApiProblem(
            HTTPStatus.UNPROCESSABLE_ENTITY,
            ProblemCode.IDEMPOTENCY_KEY_REUSED,
            f"Idempotency-Key {key!r} was already used with a different body:"
            " use a new key for a new request",
        ) from None
    except ScheduleBeingAccepted:
        raise
    except RequestInProgress:
        raise _retry_after(
            ApiProblem(
                HTTPStatus.CONFLICT,
                ProblemCode.REQUEST_IN_PROGRESS,
                f"a request with Idempotency-Key {key!r} is in progress; retry in a few seconds",
            )
        ) from None


# --- problems ----------------------------------------------------------------------------------------


class ApiProblem(Exception):
    def __init__(
        self,
        http_status: HTTPStatus,
        code: ProblemCode,
        message: str,
        errors: list[FieldProblem] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.body = ProblemBody(message=message, code=code, errors=errors, **extra)
        self.headers: dict[str, str] = {}

    def proxy(self) -> dict[str, Any]:
        """The Lambda proxy answer, for refusals made before the resolver runs."""
        return {
            "statusCode": self.http_status.value,
            "headers": {"Content-Type": JSON, **self.headers},
            "body": json.dumps(self.body.wire()),
            "isBase64Encoded": False,
        }


def guard(event: dict[str, Any], secrets: Callable[[], Sequence[str]], now: float) -> None:
    """The checks before routing: signature (401), size (413), content type and JSON (415), a JSON
    object (400); and X-Request-Id standing in for a missing Idempotency-Key."""
    raw = _raw_body(event)
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    try:
        verify(
            secrets(),
            headers,
            str(event.get("httpMethod") or ""),
            # The path the resolver routes on (no stage; API Gateway's and the local front's alike).
            str(event.get("path") or "/"),
            _query(event),
            raw,
            now,
        )
    except SignatureRejected as rejected:
        raise ApiProblem(HTTPStatus.UNAUTHORIZED, ProblemCode.SIGNATURE_REJECTED, str(rejected)) from None
    except ConfigurationError as exc:  # no secret, or it cannot be read: refuse everything
        raise _misconfigured(exc) from None
    except SecretUnavailable as exc:  # Secrets Manager throttled or failed for a moment: retry
        raise _secret_unavailable(exc) from None
    if len(raw) > MAX_BODY_BYTES:
        raise ApiProblem(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            ProblemCode.BODY_TOO_LARGE,
            f"the body is {len(raw)} bytes; the limit is {MAX_BODY_BYTES}",
        )
    _key_from_request_id(event, headers)
    if not raw:
        _as_read(event, None)  # GET, cancel: no body, so no type to hold it to
        return
    try:
        parsed, text = request_body.read_json(raw, headers.get("content-type", ""))
    except request_body.UnreadableBody as exc:
        raise ApiProblem(
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE, ProblemCode.UNSUPPORTED_MEDIA_TYPE, str(exc)
        ) from None
    except request_body.InvalidBody as exc:
        raise _invalid_fields([FieldProblem(field=f, problem=p) for f, p in exc.problems]) from None
    if not isinstance(parsed, dict):
        # Checked here: Powertools' validation would read a one-element array as its element.
        raise _invalid_fields([FieldProblem(field="body", problem="must be a JSON object")])
    _as_read(event, text)


def _as_read(event: dict[str, Any], text: str | None) -> None:
    """The routes see the body as read: its text (decoded, no byte order mark) as application/json, so
    any case, parameters, charset or +json type the guard accepted reads the same past it; no body, and
    no content type, when there is none (a route that needs one says the body is missing)."""
    if text is not None:
        event["body"], event["isBase64Encoded"] = text, False
    for field in ("headers", "multiValueHeaders"):
        given = event.get(field)
        if given is None:
            continue
        kept = {k: v for k, v in given.items() if str(k).lower() != "content-type"}
        if text is not None:
            kept["Content-Type"] = JSON if field == "headers" else [JSON]
        event[field] = kept


def _invalid_fields(problems: list[FieldProblem]) -> ApiProblem:
    return ApiProblem(
        HTTPStatus.BAD_REQUEST,
        ProblemCode.INVALID_REQUEST,
        "the request is not valid: see errors for each field and why",
        errors=problems,
    )


def _query(event: dict[str, Any]) -> dict[str, list[str]]:
    """The query as API Gateway passed it: every value (multiValue...) when given, else the last one."""
    multi = event.get("multiValueQueryStringParameters")
    if isinstance(multi, dict):
        return {str(k): [str(v) for v in (vs or [])] for k, vs in multi.items()}
    single = event.get("queryStringParameters") or {}
    return {str(k): [str(v)] for k, v in single.items()}


def _key_from_request_id(event: dict[str, Any], headers: dict[str, str]) -> None:
    """X-Request-Id stands in for a missing Idempotency-Key (ServiceNow REST messages often send one)."""
    if "idempotency-key" in headers or not headers.get("x-request-id"):
        return
    event["headers"] = {**(event.get("headers") or {}), "Idempotency-Key": headers["x-request-id"]}
    if event.get("multiValueHeaders") is not None:
        event["multiValueHeaders"] = {
            **event["multiValueHeaders"],
            "Idempotency-Key": [headers["x-request-id"]],
        }


def _raw_body(event: dict[str, Any]) -> bytes:
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            return str(body).encode()
    return str(body).encode("utf-8", errors="surrogateescape")


def field_problems(errors: Sequence[Any]) -> list[FieldProblem]:
    """The route's validation errors (pydantic's, located as Powertools located them) as {field,
    problem}: the field as the caller wrote it."""
    problems = []
    for error in errors:
        loc = [str(part) for part in error.get("loc", ())]
        if loc[:1] == ["body"]:
            loc = loc[1:]
        elif loc[:1] in (["header"], ["path"], ["query"]):
            loc = [f"{loc[0]}:{HEADER_NAMES.get('.'.join(loc[1:]).lower(), '.'.join(loc[1:]))}"]
        field = ".".join(loc) or "body"
        problem = str(error.get("msg", "invalid"))
        if field == KEY_FIELD and error.get("type") == "missing":
            problem = "required (X-Request-Id is accepted in its place)"
        problems.append(FieldProblem(field=field, problem=problem))
    return problems


HEADER_NAMES = {"idempotency-key": "Idempotency-Key"}
KEY_FIELD = "header:Idempotency-Key"


def install(app: Router) -> None:
    """One exception handler per kind of refusal, so the routes only call the core."""

    def answer(problem: ApiProblem) -> Reply:
        return Reply(problem.http_status.value, json.dumps(problem.body.wire()), problem.headers)

    def on(kind: type[Exception], make: Callable[[Any], ApiProblem]) -> None:
        app.exception_handler(kind)(lambda exc: answer(make(exc)))

    on(ApiProblem, lambda p: p)
    app.not_found(  # a path API Gateway routed here but no route takes (odd characters in the id)
        lambda _: answer(ApiProblem(HTTPStatus.NOT_FOUND, ProblemCode.NOT_FOUND, "no such resource"))
    )
    on(RequestValidationError, lambda exc: _invalid(exc.errors()))
    on(
        RequestInProgress,
        lambda exc: _retry_after(
            ApiProblem(HTTPStatus.CONFLICT, ProblemCode.REQUEST_IN_PROGRESS, f"{exc}; retry in a few seconds")
        ),
    )
    on(
        JoinConflict,
        lambda exc: ApiProblem(
            HTTPStatus.CONFLICT,
            ProblemCode.JOIN_CONFLICT,
            str(exc),
            errors=[
                FieldProblem(field=f, problem="differs from the publish in flight") for f in exc.differences
            ],
            publish_id=exc.job.job_id,
            status=exc.job.status,
        ),
    )
    on(PublishNotFound, lambda exc: ApiProblem(HTTPStatus.NOT_FOUND, ProblemCode.NOT_FOUND, str(exc)))
    on(
        CancelRefused,
        lambda exc: ApiProblem(
            HTTPStatus.CONFLICT,
            ProblemCode(exc.refusal.value),
            str(exc),
            publish_id=exc.job.job_id,
            status=exc.job.status,
        ),
    )
    on(
        CancelContended,
        lambda exc: _retry_after(
            ApiProblem(HTTPStatus.SERVICE_UNAVAILABLE, ProblemCode.UNAVAILABLE, str(exc))
        ),
    )
    on(ResponseValidationError, _broken_answer)
    on(StoreError, _unavailable)
    on(QueueError, _unavailable)
    on(ConfigurationError, _misconfigured)
    on(SecretUnavailable, _secret_unavailable)


def _invalid(errors: Sequence[Any]) -> ApiProblem:
    problems = field_problems(errors)
    if all(p.field == KEY_FIELD for p in problems) and all(e.get("type") == "missing" for e in errors):
        return ApiProblem(HTTPStatus.BAD_REQUEST, ProblemCode.IDEMPOTENCY_KEY_MISSING, KEY_MISSING, problems)
    return ApiProblem(
        HTTPStatus.BAD_REQUEST,
        ProblemCode.INVALID_REQUEST,
        "the request is not valid: see errors for each field and why",
        errors=problems,
    )


def _retry_after(problem: ApiProblem, seconds: int = 2) -> ApiProblem:
    problem.headers["Retry-After"] = str(seconds)
    return problem


def _unavailable(exc: Exception) -> ApiProblem:
    logger.exception("storage or queue failed")
    return _retry_after(
        ApiProblem(
            HTTPStatus.SERVICE_UNAVAILABLE,
            ProblemCode.UNAVAILABLE,
            "the request could not be stored; retry with the same Idempotency-Key",
        )
    )


def _secret_unavailable(exc: Exception) -> ApiProblem:
    logger.warning("a secret could not be read for a moment", extra={"problem": str(exc)})
    return _retry_after(
        ApiProblem(
            HTTPStatus.SERVICE_UNAVAILABLE,
            ProblemCode.UNAVAILABLE,
            "the service could not check the request's signature for a moment: retry shortly"
            " (with the same Idempotency-Key)",
        )
    )


def _broken_answer(exc: Exception) -> ApiProblem:
    logger.error("an answer did not match its schema", extra={"problem": str(exc)})
    return ApiProblem(HTTPStatus.INTERNAL_SERVER_ERROR, ProblemCode.INTERNAL, "the answer could not be built")


def _misconfigured(exc: Exception) -> ApiProblem:
    logger.error("the deployment is misconfigured", extra={"problem": str(exc)})
    return ApiProblem(
        HTTPStatus.INTERNAL_SERVER_ERROR, ProblemCode.MISCONFIGURED, "the service is misconfigured"
    )


# --- the OpenAPI document's parts that the routes do not say ---------------------------------------------


PROBLEM_DESCRIPTIONS: dict[int, str] = {
    400: "The body breaks the schema (each field and why in `errors`), or no Idempotency-Key; or JSON no "
    "request can be: a key twice in one object, nesting over 32 levels, a number over 100 characters, "
    "NaN or Infinity (each named in `errors`).",
    401: "Missing or wrong signature (another secret, or signed for another method, path, query, "
    "Idempotency-Key or body), a v1 or v2 signature, or X-Signature-Timestamp more than 5 minutes off.",
    404: "No publish with this id (or it expired after JobTtlDays); or an id with characters no route takes. "
    "Capacity: NO_CAPACITY_REPORT, the publish has no capacity report (yet); the message says why.",
    409: "POST: the first request with this Idempotency-Key, or another for this schedule, is still being "
    "answered (REQUEST_IN_PROGRESS: retry shortly); or a publish of this schedule is in flight with "
    "other options (JOIN_CONFLICT: `publishId` names it, `errors` the options that differ). "
    "Cancel: the job already ended (ALREADY_ENDED) or is publishing (PUBLISH_IN_PROGRESS).",
    413: "The body is over 64 KiB.",
    415: "Content-Type is not JSON (application/json or application/*+json, any case), a charset not "
    "read (UTF-8; UTF-16/32 with a byte order mark or a declared charset), a body invalid in its "
    "encoding, or not JSON. The message names which.",
    422: "The Idempotency-Key was first used with another body.",
    500: "The deployment is misconfigured (MISCONFIGURED), or a bug (INTERNAL).",
    503: "Storage, the queue or Secrets Manager failed for a moment: retry after Retry-After with the "
    "same Idempotency-Key.",
}


def responses(
    ok: tuple[int, str, type[Wire]],
    *problems: int,
    headers: dict[str, str] | None = None,
    links: tuple[str, ...] = (),
    media: dict[str, str] | None = None,
) -> dict[int, OpenAPIResponse]:
    """The `responses` a route declares: its answer (with `headers` described, `links` to the
    operations that take its publishId, and other `media` types it may be given in, each a string
    described) and its problems."""
    status, description, model = ok
    content: dict[str, Any] = {JSON: {"model": model}}
    for media_type, text in (media or {}).items():
        content[media_type] = {"schema": {"type": "string", "description": text}}
    answer: OpenAPIResponse = {"description": description, "content": content}
    if headers:
        answer["headers"] = {
            name: {"description": text, "schema": {"type": "string"}} for name, text in headers.items()
        }
    if links:
        answer["links"] = {
            operation[0].upper() + operation[1:]: {
                "operationId": operation,
                "parameters": {"publishId": "$response.body#/publishId"},
            }
            for operation in links
        }
    out: dict[int, OpenAPIResponse] = {status: answer}
    for code in sorted({401, 500, 503, *problems}):
        out[code] = {"description": PROBLEM_DESCRIPTIONS[code], "content": {JSON: {"model": ProblemBody}}}
    return out
