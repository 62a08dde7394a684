"""ServiceNow (API Gateway) and the weekly EventBridge schedule -> intake -> the validation queue.

The routes are declared on wfm_publish.router, not on Powertools' event_handler: importing that package
cost this function ~30-50 ms of its cold start. The OpenAPI document comes from the same declarations
(`app.resolver()`, `make openapi`)."""

from __future__ import annotations

import gc

gc.disable()  # until the first answer: importing and building it allocate ~100k objects (coldstart.py)

from typing import Annotated, Any, Literal

from aws_lambda_powertools import Logger

from wfm_publish import answers, api, metrics
from wfm_publish.answers import CancelAnswer, PublishAccepted, PublishView, SchedulePublish
from wfm_publish.cancel import cancel
from wfm_publish.coldstart import first_answer_uncollected
from wfm_publish.models import CapacityReport, PublishRequest
from wfm_publish.router import Answer, Body, Header, Path, Query, Router
from wfm_publish.services import services

logger = Logger()
app = Router()
api.install(app)

PublishId = Annotated[str, Path(min_length=1, max_length=128, description="publishId from the 202")]
ScheduleId = Annotated[
    str,
    Path(
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$",
        description="Genesys Cloud WFM schedule id",
    ),
]
Key = Annotated[str, Header(alias="Idempotency-Key", min_length=1, max_length=255, description=api.KEY_DOC)]
AcceptHeader = Annotated[
    str | None, Header(alias="Accept", description="image/svg+xml: the chart; application/json (default)")
]
CapacityFormat = Annotated[
    Literal["json", "svg"] | None,
    Query(alias="format", description="svg: the chart, json: the report (wins over Accept)"),
]


@app.post(
    "/publishes",
    operation_id="createPublish",
    summary="Publish a schedule (idempotent: same key and body replay the first answer)",
    responses=api.responses(
        (202, "Accepted, or joined the job in flight", PublishAccepted),
        *(400, 409, 413, 415, 422),
        headers={
            "Location": "/publishes/{publishId}",
            "Idempotent-Replayed": "true: a replay of the first answer",
        },
        links=("getPublish", "cancelPublish"),
    ),
)
def create_publish(
    request: Annotated[PublishRequest, Body()], idempotency_key: Key
) -> Answer[PublishAccepted]:
    accepted = api.accept(services().intake, request, idempotency_key)
    answer, headers = answers.accepted_answer(accepted)
    outcome = "replayed" if accepted.replayed else "joined" if answer.joined else "accepted"
    metrics.count(metrics.PUBLISH_REQUESTS, Outcome=outcome)
    return Answer(202, answer, headers)


@app.get(
    "/publishes/<publishId>",
    operation_id="getPublish",
    summary="A publish: status, reason, attempts, timeline, capacity report, callback",
    responses=api.responses((200, "The publish", PublishView), 400, 404),
)
def get_publish(publishId: PublishId) -> PublishView:
    return PublishView.model_validate(answers.publish_view(services().store.get_job(publishId), publishId))


@app.get(
    "/publishes/<publishId>/capacity",
    operation_id="getPublishCapacity",
    summary="A publish's capacity report: as JSON, or drawn (image/svg+xml: lines needed against lines "
    "available per pool and 15-minute interval, the intervals over the limit marked)",
    responses=api.responses(
        (200, "The capacity report (JSON), or its chart (SVG)", CapacityReport),
        400,
        404,
        media={answers.SVG: "the chart: per pool, lines needed and available per interval, overs marked"},
    ),
)
def get_publish_capacity(
    publishId: PublishId, accept: AcceptHeader = None, format_: CapacityFormat = None
) -> Answer[CapacityReport | str]:
    body, headers = answers.capacity(services().store.get_job(publishId), publishId, accept, format_)
    return Answer(200, body, headers)


@app.post(
    "/publishes/<publishId>/cancel",
    operation_id="cancelPublish",
    summary="Cancel a publish that has not published (idempotent)",
    responses=api.responses((200, "Cancelled (or already was)", CancelAnswer), 400, 404, 409),
)
def cancel_publish(publishId: PublishId) -> CancelAnswer:
    return answers.cancel_answer(cancel(services().store, services().transitions, publishId))


@app.get(
    "/schedules/<scheduleId>/publish",
    operation_id="getSchedulePublish",
    summary="Is a publish of this schedule in flight? Which job, its state, since when",
    responses=api.responses((200, "The schedule's publish window", SchedulePublish), 400, 404),
)
def get_schedule_publish(scheduleId: ScheduleId) -> SchedulePublish:
    return answers.schedule_publish(services().store, scheduleId)


@first_answer_uncollected
@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if "httpMethod" not in event:  # the weekly schedule: one WeeklyQueue message per business unit
        from wfm_publish.weekly import Weekly, fan_out

        s = services()
        weekly = Weekly(
            s.clock, s.genesys, s.intake, s.weekly_queue, s.weekly_runs, s.weekly_starts_per_minute
        )
        return fan_out(weekly, event, only=s.weekly_business_units)
    try:
        api.guard(event, services().signing_secrets, services().clock.now())  # 401, 413, 415
    except api.ApiProblem as refused:
        return refused.proxy()
    return app.resolve(event)
