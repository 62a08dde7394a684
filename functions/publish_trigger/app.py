"""ServiceNow (API Gateway) and the weekly EventBridge schedule -> intake -> the validation queue."""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from pydantic import ValidationError

from wfm_publish.intake import IdempotencyKeyReused, RequestInProgress, job_view
from wfm_publish.models import PublishRequest, field_errors
from wfm_publish.services import services

logger = Logger()
app = APIGatewayRestResolver()
MAX_BODY_BYTES = 64 * 1024


class Problem(Exception):
    def __init__(self, status: HTTPStatus, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.extra = status, extra


@app.exception_handler(Problem)  # type: ignore[untyped-decorator]
def _answer_problem(problem: Problem) -> Response[str]:
    body = {"message": str(problem), **problem.extra}
    return Response(problem.status.value, "application/json", json.dumps(body))


def _parse(raw: str, content_type: str) -> PublishRequest:
    if len(raw.encode()) > MAX_BODY_BYTES:
        raise Problem(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body is over {MAX_BODY_BYTES} bytes")
    if "json" not in content_type.lower():
        raise Problem(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "send Content-Type: application/json")
    try:
        return PublishRequest.model_validate_json(raw)
    except ValidationError as exc:
        raise Problem(
            HTTPStatus.BAD_REQUEST, "the request body is not valid", errors=field_errors(exc)
        ) from exc


@app.post("/publishes")
def create_publish() -> Response[str]:
    headers = {k.lower(): v for k, v in (app.current_event.headers or {}).items()}
    key = headers.get("idempotency-key") or headers.get("x-request-id")
    if not key:
        raise Problem(HTTPStatus.BAD_REQUEST, "the Idempotency-Key header is required")
    request = _parse(app.current_event.body or "", headers.get("content-type", ""))
    try:
        accepted = services().intake.accept(request, key)
    except IdempotencyKeyReused as exc:
        raise Problem(HTTPStatus.UNPROCESSABLE_ENTITY, str(exc)) from exc
    except RequestInProgress as exc:
        raise Problem(HTTPStatus.CONFLICT, str(exc)) from exc
    answer_headers = {"Location": f"/publishes/{accepted.body['publishId']}"}
    if accepted.replayed:
        answer_headers["Idempotent-Replayed"] = "true"
    return Response(
        HTTPStatus.ACCEPTED.value, "application/json", json.dumps(accepted.body), headers=answer_headers
    )


@app.get("/publishes/<publish_id>")
def get_publish(publish_id: str) -> Response[str]:
    job = services().store.get_job(publish_id)
    if job is None:
        raise Problem(HTTPStatus.NOT_FOUND, f"no publish {publish_id}")
    return Response(HTTPStatus.OK.value, "application/json", json.dumps(job_view(job)))


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if "httpMethod" in event:
        return app.resolve(event, context)
    from wfm_publish.weekly import start_weekly

    return start_weekly(services(), event)
