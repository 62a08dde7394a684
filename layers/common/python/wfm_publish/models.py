"""The request ServiceNow sends, the job it becomes, and the messages that carry the job between steps."""

from __future__ import annotations

import re
from datetime import date
from enum import StrEnum
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")


class Wire(BaseModel):
    """camelCase on the wire, snake_case in Python; unknown fields are an error, not a surprise."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    def wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class Lenient(Wire):
    """For what Genesys answers: new fields appear over time and must not break us."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


# --- the request ---------------------------------------------------------------------------------


class ValidationMode(StrEnum):
    STRICT = "strict"  # wait for readiness, check capacity, then publish
    DEFERRED = "deferred"  # wait for readiness, publish, then report capacity as a warning
    OFF = "off"  # publish at once


class TelephonySync(Wire):
    enabled: bool = True
    retry_count: int = Field(default=3, ge=0, le=20, description="conflict retries the job may spend")
    delay_ms: int = Field(
        default=5000, ge=0, le=86_400_000, description="delay before the first readiness check"
    )


class PublishRequest(Wire):
    """The ServiceNow REST message body, accepted verbatim (shared/DESIGN.md)."""

    schedule_id: str = Field(description="Genesys Cloud WFM schedule id")
    publish_time: AwareDatetime | None = Field(default=None, description="earliest time to publish")
    validation_mode: ValidationMode = ValidationMode.STRICT
    telephony_sync: TelephonySync = Field(default_factory=TelephonySync)
    business_unit_id: str | None = Field(default=None, description="resolved from Genesys when absent")
    week_id: date | None = Field(default=None, description="yyyy-MM-dd week start; resolved when absent")

    @field_validator("schedule_id", "business_unit_id")
    @classmethod
    def _genesys_id(cls, value: str | None) -> str | None:
        if value is not None and not _ID.match(value):
            raise ValueError("must be 1-128 letters, digits, '.', '_', ':' or '-'")
        return value


# --- the job -------------------------------------------------------------------------------------


class JobStatus(StrEnum):
    QUEUED = "QUEUED"  # accepted, waiting for its first validation
    WAITING = "WAITING"  # telephony not settled yet (or Genesys asked us to slow down)
    PUBLISHING = "PUBLISHING"  # the update is posted; waiting to see it applied
    RETRYING = "RETRYING"  # a 409 is being classified
    PUBLISHED = "PUBLISHED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def terminal(self) -> bool:
        return self in {JobStatus.PUBLISHED, JobStatus.FAILED, JobStatus.CANCELLED}


class ReasonCode(StrEnum):
    PUBLISHED = "PUBLISHED"
    ALREADY_PUBLISHED = "ALREADY_PUBLISHED"
    SCHEDULE_NOT_FOUND = "SCHEDULE_NOT_FOUND"
    CAPACITY_EXCEEDED = "CAPACITY_EXCEEDED"
    DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"
    RETRIES_EXHAUSTED = "RETRIES_EXHAUSTED"
    CONFLICT_UNRESOLVED = "CONFLICT_UNRESOLVED"
    GENESYS_REJECTED = "GENESYS_REJECTED"
    GENESYS_AUTH_FAILED = "GENESYS_AUTH_FAILED"
    CANCELLED = "CANCELLED"
    PROCESSING_FAILED = "PROCESSING_FAILED"  # a step kept failing and its message went to a DLQ


class TimelineEntry(Wire):
    at: float
    event: str
    detail: dict[str, Any] = Field(default_factory=dict)


TIMELINE_LIMIT = 200  # keeps a job item far below DynamoDB's 400 KB


class Job(Wire):
    job_id: str
    schedule_id: str
    business_unit_id: str | None = None
    week_id: str | None = None
    request: PublishRequest
    status: JobStatus = JobStatus.QUEUED
    reason_code: ReasonCode | None = None
    detail: str | None = None
    version: int = 0  # bumped by every write; writes are conditioned on it
    ticket: str  # the one queue message allowed to move the job
    created_at: float
    updated_at: float
    deadline_at: float
    first_check_at: float | None = None  # when the job first looked at telephony
    readiness_checks: int = 0
    publish_attempts: int = 0
    conflict_retries: int = 0
    transient_failures: int = 0
    base_version: int | None = None  # the schedule metadata.version our last publish was based on
    publishing_since: float | None = None
    operation_id: str | None = None
    idempotency_key: str | None = None
    timeline: list[TimelineEntry] = Field(default_factory=list)

    def record(self, at: float, event: str, /, **detail: Any) -> None:
        self.timeline.append(TimelineEntry(at=at, event=event, detail=detail))
        if len(self.timeline) > TIMELINE_LIMIT:
            # Keep how it started and what happened lately.
            self.timeline = self.timeline[:20] + self.timeline[-(TIMELINE_LIMIT - 20) :]


# --- messages between steps ----------------------------------------------------------------------


class Step(StrEnum):
    VALIDATE = "validate"  # is telephony settled? then publish
    CONFIRM = "confirm"  # has our published update been applied?
    CONFLICT = "conflict"  # a publish got 409: classify and act


class GenesysErrorBody(Lenient):
    """Genesys Cloud's error body (shared/GENESYS_API.md)."""

    message: str | None = None
    code: str | None = None
    status: int | None = None
    entity_id: str | None = None
    entity_name: str | None = None
    message_with_params: str | None = None
    message_params: dict[str, Any] | None = None
    context_id: str | None = None
    details: list[dict[str, Any]] = Field(default_factory=list)
    errors: list[dict[str, Any]] = Field(default_factory=list)

    @property
    def error_codes(self) -> list[str]:
        return [str(d["errorCode"]) for d in self.details if d.get("errorCode")]


class JobMessage(Wire):
    job_id: str
    ticket: str
    step: Step
    not_before: float | None = None  # set on waits longer than one SQS delay (900 s)
    conflict: GenesysErrorBody | None = None


def field_errors(exc: ValidationError) -> list[dict[str, str]]:
    """Each problem with a request, named by its field as the caller wrote it."""
    return [
        {"field": ".".join(str(part) for part in err["loc"]) or "body", "problem": err["msg"]}
        for err in exc.errors()
    ]
