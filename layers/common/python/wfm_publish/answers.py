"""What the publish API answers: its bodies (each a model the OpenAPI document names) and the views
built from a job, a cancel or an acceptance (functions/publish_trigger/app.py declares the routes)."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any, Protocol

from pydantic import ConfigDict, Field
from pydantic.alias_generators import to_camel

from wfm_publish.api import ApiProblem, ProblemCode
from wfm_publish.cancel import Cancelled
from wfm_publish.clock import iso
from wfm_publish.intake import Accepted, job_view
from wfm_publish.models import CapacityReport, Job, JobStatus, ReasonCode, ValidationMode, Wire


class PublishAccepted(Wire):
    publish_id: str
    status: JobStatus
    schedule_id: str
    joined: bool = Field(description="true: a job for this schedule was in flight; this is that job")


class Attempts(Wire):
    publish: int
    readiness_checks: int
    conflict_retries: int


class TimelineItem(Wire):
    at: str = Field(description="ISO-8601 UTC")
    event: str
    detail: dict[str, Any] | None = None
    times: int | None = Field(default=None, description="a repeated event: how often (its last detail shown)")
    until: str | None = Field(default=None, description="ISO-8601 UTC: a repeated event's last time")


class CallbackView(Wire):
    table: str
    sys_id: str
    notified: bool = Field(description="ServiceNow's record was updated with the job's end")
    notified_at: str | None = None


class JoinedView(Wire):
    joined_at: str
    callback: CallbackView | None = None


class PublishView(Wire):
    """GET /publishes/{publishId}. New fields may appear; clients ignore what they do not know."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")

    publish_id: str
    schedule_id: str
    business_unit_id: str | None = None
    week_id: str | None = None
    status: JobStatus
    dry_run: bool | None = Field(
        default=None, description="true: a dry run; it ends CHECKED, never publishes"
    )
    reason_code: ReasonCode | None = Field(default=None, description="set when the job ended")
    detail: str | None = Field(default=None, description="what happened, for a person")
    attempts: Attempts
    created_at: str
    updated_at: str
    deadline_at: str
    capacity: CapacityReport | None = Field(default=None, description="strict/deferred capacity check")
    callback: CallbackView | None = None
    joined: list[JoinedView] | None = Field(default=None, description="requests that joined this publish")
    timeline: list[TimelineItem]


class CancelAnswer(Wire):
    publish_id: str
    status: JobStatus
    reason_code: ReasonCode | None = None
    already_cancelled: bool = Field(description="true: it was cancelled before; nothing changed")


class SchedulePublish(Wire):
    """GET /schedules/{scheduleId}/publish: is the schedule's publish window open (a job in flight)?"""

    schedule_id: str
    in_flight: bool = Field(description="true: a publish of this schedule is running; hold changes to it")
    publish_id: str | None = Field(default=None, description="the job in flight (GET /publishes/{publishId})")
    status: JobStatus | None = Field(
        default=None, description="its state: QUEUED, WAITING, PUBLISHING, RETRYING"
    )
    since: str | None = Field(default=None, description="ISO-8601 UTC: when the publish was requested")
    updated_at: str | None = Field(default=None, description="ISO-8601 UTC: the job's last change")
    publish_time: str | None = Field(default=None, description="the request's earliest publish time, if any")


class ActiveJobs(Protocol):
    def active_job(self, schedule_id: str) -> tuple[str, float] | None: ...
    def get_job(self, job_id: str) -> Job | None: ...


def schedule_publish(store: ActiveJobs, schedule_id: str) -> SchedulePublish:
    """The schedule's active job, if it is still moving. Read only: two reads, never a write."""
    active = store.active_job(schedule_id)
    job = store.get_job(active[0]) if active is not None else None
    # No claim, a claim a moment before its job, a lost release, or a claim naming another schedule's
    # job (left by a start whose write failed): nothing of this schedule is in flight.
    if job is None or job.status.terminal or job.schedule_id != schedule_id:
        return SchedulePublish(schedule_id=schedule_id, in_flight=False)
    return SchedulePublish(
        schedule_id=schedule_id,
        in_flight=True,
        publish_id=job.job_id,
        status=job.status,
        since=_iso(job.created_at),
        updated_at=_iso(job.updated_at),
        publish_time=job.request.publish_time.isoformat() if job.request.publish_time else None,
    )


def accepted_answer(accepted: Accepted) -> tuple[PublishAccepted, dict[str, str]]:
    answer = PublishAccepted.model_validate(accepted.body)
    headers = {"Location": f"/publishes/{answer.publish_id}"}
    if accepted.replayed:
        headers["Idempotent-Replayed"] = "true"
    return answer, headers


def publish_view(job: Job | None, publish_id: str) -> dict[str, Any]:
    if job is None:
        raise ApiProblem(HTTPStatus.NOT_FOUND, ProblemCode.NOT_FOUND, f"no publish {publish_id}")
    view = job_view(job)
    callback = job.request.callback
    if callback is not None and "callback" not in view:
        view["callback"] = CallbackView(
            table=callback.table,
            sys_id=callback.sys_id,
            notified=job.notified_status is not None,
            notified_at=_iso(job.notified_at),
        ).wire()
    if job.joiners:
        view["joined"] = [
            JoinedView(
                joined_at=str(_iso(j.at)),
                callback=CallbackView(
                    table=j.callback.table,
                    sys_id=j.callback.sys_id,
                    notified=j.key in job.deliveries,
                )
                if j.callback
                else None,
            ).wire()
            for j in job.joiners
        ]
    return view


SVG = "image/svg+xml"


def capacity(
    job: Job | None, publish_id: str, accept: str | None, format_: str | None
) -> tuple[CapacityReport | str, dict[str, str]]:
    """GET /publishes/{publishId}/capacity: the job's report as JSON, or drawn as SVG when asked for
    (`wants_chart`), with the answer's headers; a 404 saying why when it has none."""
    if job is None:
        raise ApiProblem(HTTPStatus.NOT_FOUND, ProblemCode.NOT_FOUND, f"no publish {publish_id}")
    if job.capacity is None:
        raise ApiProblem(HTTPStatus.NOT_FOUND, ProblemCode.NO_CAPACITY_REPORT, _no_capacity(job))
    if not wants_chart(accept, format_):
        return job.capacity, {}
    return capacity_chart(job.capacity, job.job_id, job.schedule_id), {"Content-Type": SVG}


def wants_chart(accept: str | None, format_: str | None) -> bool:
    """`?format=svg` (or `json`) wins; else Accept's q-values, image/svg+xml against application/json.
    A tie (`*/*`, a browser's list) or no Accept at all: JSON, the API's own."""
    if format_:
        return format_ == "svg"
    svg = json = 0.0
    for part in (accept or "").split(","):
        media, *parameters = [p.strip() for p in part.split(";")]
        weight = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        media = media.lower()
        if media in (SVG, "image/*", "*/*"):
            svg = max(svg, weight)
        if media in ("application/json", "application/*", "*/*"):
            json = max(json, weight)
    return svg > json


def _no_capacity(job: Job) -> str:
    mode, ended = job.request.validation_mode, job.status.terminal
    where = f"publish {job.job_id} has no capacity report"
    if mode is ValidationMode.OFF and not job.request.dry_run:
        return f"{where}: it was sent with validationMode off, which never checks capacity"
    if ended:
        how = f"{job.status.value} ({job.reason_code.value})" if job.reason_code else job.status.value
        return f"{where}: it ended {how} before its capacity was checked"
    if mode is ValidationMode.DEFERRED and not job.request.dry_run:
        return (
            f"{where} yet: validationMode deferred checks capacity after the publish (it is "
            f"{job.status.value}); ask again once it has published"
        )
    return (
        f"{where} yet: capacity is checked once the schedule's telephony has settled (it is "
        f"{job.status.value}); ask again shortly"
    )


def capacity_chart(report: CapacityReport, job_id: str, schedule_id: str) -> str:
    """The report drawn (capacity_chart.chart), or a 404 when it keeps nothing to draw."""
    from wfm_publish import capacity_chart as drawing  # only when a chart is asked for

    week = report.week_start[:10]
    title = f"Outbound lines, schedule {schedule_id}, week of {week} ({report.time_zone}): publish {job_id}"
    try:
        return drawing.chart(report, title)
    except drawing.ChartUnavailable:
        raise ApiProblem(
            HTTPStatus.NOT_FOUND,
            ProblemCode.NO_CAPACITY_REPORT,
            f"the capacity report of publish {job_id} was made before its per-interval series were kept:"
            " there is nothing to draw; ask for it as application/json",
        ) from None


def cancel_answer(cancelled: Cancelled) -> CancelAnswer:
    job = cancelled.job
    return CancelAnswer(
        publish_id=job.job_id,
        status=job.status,
        reason_code=job.reason_code,
        already_cancelled=cancelled.already,
    )


def _iso(moment: float | None) -> str | None:
    return iso(moment) if moment is not None else None
