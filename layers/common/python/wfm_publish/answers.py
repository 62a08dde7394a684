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
from wfm_publish.models import CapacityReport, Job, JobStatus, ReasonCode, Wire


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
