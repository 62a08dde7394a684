"""The request ServiceNow sends, the job it becomes, and the messages that carry the job between steps."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

# Anchored for the OpenAPI document (JSON Schema regex); matched with fullmatch, since Python's `$` also
# matches before a final newline ("sched-1\n" would pass `match`). pydantic's own `pattern=` checks use
# the Rust engine, where `$` is the end of the text.
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")


class Wire(BaseModel):
    """camelCase on the wire, snake_case in Python; unknown fields are an error, not a surprise.

    defer_build: a model's validator is built when it first validates or dumps, not at import. Every
    function imports this module and the wire models, few use most of them (the events function one
    notice, a sweep that finds nothing none): ~12 ms of a cold start."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", defer_build=True
    )

    def wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class Lenient(Wire):
    """For what Genesys answers: new fields appear over time and must not break us."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", defer_build=True
    )


# --- the request ---------------------------------------------------------------------------------


class ValidationMode(StrEnum):
    STRICT = "strict"  # wait for readiness, check capacity, then publish
    DEFERRED = "deferred"  # wait for readiness, publish, then report capacity as a warning
    OFF = "off"  # publish at once


def json_integer(value: Any) -> Any:
    """As in JSON Schema: 3 and 3.0 are integers; "3" and true are not (pydantic's lax mode takes them)."""
    if isinstance(value, bool | str):
        raise ValueError("must be a JSON integer")
    return value


class TelephonySync(Wire):
    enabled: bool = Field(default=True, strict=True)  # JSON true/false, not "true" or 1
    retry_count: int = Field(default=3, ge=0, le=20, description="conflict retries the job may spend")
    delay_ms: int = Field(
        default=5000, ge=0, le=86_400_000, description="delay before the first readiness check"
    )

    @field_validator("retry_count", "delay_ms", mode="before")
    @classmethod
    def _json_integer(cls, value: Any) -> Any:
        return json_integer(value)


class Callback(Wire):
    """The ServiceNow record to update when the job ends (PATCH /api/now/table/{table}/{sys_id}), and
    when its publish starts if `progress` is true."""

    table: str = Field(pattern=r"^[a-z][a-z0-9_]{0,79}$", description="ServiceNow table, e.g. change_request")
    sys_id: str = Field(pattern=r"^[0-9a-f]{32}$", description="the record's sys_id (32 hex digits)")
    # None when absent (not False): the idempotency hash of a request that does not name it stays as it was.
    progress: bool | None = Field(
        default=None,
        strict=True,  # JSON true/false, not "true" or 1
        description="true: the record also hears PUBLISHING when the publish starts (the publish window "
        "opens), before the job's end; absent or false: only the end",
    )


PUBLISH_TIME_HORIZON_DAYS = 366


class PublishRequest(Wire):
    """The ServiceNow REST message body, accepted verbatim (docs/servicenow.md)."""

    schedule_id: str = Field(
        description="Genesys Cloud WFM schedule id", json_schema_extra={"pattern": _ID.pattern}
    )
    publish_time: AwareDatetime | None = Field(
        default=None, description="earliest time to publish, with a zone; at most 366 days ahead"
    )
    validation_mode: ValidationMode = ValidationMode.STRICT
    telephony_sync: TelephonySync = Field(default_factory=TelephonySync)
    business_unit_id: str | None = Field(
        default=None,
        description="resolved from Genesys when absent",
        json_schema_extra={"pattern": _ID.pattern},
    )
    week_id: date | None = Field(default=None, description="yyyy-MM-dd week start; resolved when absent")
    callback: Callback | None = Field(default=None, description="ServiceNow record updated when the job ends")
    deadline_seconds: int | None = Field(
        default=None,
        ge=60,
        le=7 * 86_400,
        description="give up after this many seconds from publishTime (or now); may only shorten the "
        "configured deadline (JOB_DEADLINE_SECONDS, default 8 h)",
    )
    # None when absent (not False), as for callback.progress: existing requests' idempotency hashes stay.
    dry_run: bool | None = Field(
        default=None,
        strict=True,  # JSON true/false, not "true" or 1
        description="true: check only (scope, telephony readiness, capacity, whatever validationMode says),"
        " never publish; the job ends CHECKED with the capacity report. It takes no claim on the schedule:"
        " it never blocks or joins a real publish",
    )

    @field_validator("schedule_id", "business_unit_id")
    @classmethod
    def _genesys_id(cls, value: str | None) -> str | None:
        if value is not None and not _ID.fullmatch(value):
            raise ValueError("must be 1-128 letters, digits, '.', '_', ':' or '-'")
        return value

    @field_validator("deadline_seconds", mode="before")
    @classmethod
    def _deadline_integer(cls, value: Any) -> Any:
        return json_integer(value)

    @field_validator("publish_time", "week_id", mode="before")
    @classmethod
    def _text_on_the_wire(cls, value: Any) -> Any:
        # Lax mode reads a number as a unix time; the contract is an ISO-8601 string.
        if value is None or isinstance(value, str | date):
            return value
        raise ValueError("must be an ISO-8601 string")

    @field_validator("publish_time")
    @classmethod
    def _within_horizon(cls, value: datetime | None) -> datetime | None:
        # A time years ahead is a typo ("2033" for "2023"): it would hold the schedule for years.
        if value is not None and value.timestamp() > time.time() + PUBLISH_TIME_HORIZON_DAYS * 86_400:
            raise ValueError(f"must be at most {PUBLISH_TIME_HORIZON_DAYS} days ahead")
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
    CHECKED = "CHECKED"  # a dry run's end: checked, never published (reason DRY_RUN or CAPACITY_EXCEEDED)

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATUSES


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
    UPDATE_FAILED = "UPDATE_FAILED"  # Genesys ended every update of ours Error or Canceled
    DRY_RUN = "DRY_RUN"  # a dry run passed every check (JobStatus.CHECKED)


# Every list of terminal statuses (template.yaml's stream filters, the store's conditions) is this one;
# tests/unit/test_template.py holds the template's filters to it.
TERMINAL_STATUSES = frozenset({JobStatus.PUBLISHED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.CHECKED})


class TimelineEntry(Wire):
    at: float
    event: str
    detail: dict[str, Any] = Field(default_factory=dict)
    # A repeated event (COALESCED) is one entry: how often it happened, the last time, the last detail.
    times: int | None = None  # None: once
    until: float | None = None


TIMELINE_LIMIT = 200  # keeps a job item far below DynamoDB's 400 KB
# The look at telephony that found it still changing, repeated for as long as a change lasts: counted
# in one entry ("telephony not settled x 87, 10:02-15:58", the last blockers), so a job item and each
# write of it stay the same size however long the wait.
NOT_SETTLED = "telephony not settled"
COALESCED = frozenset({NOT_SETTLED})


# --- the telephony a schedule depends on, and whether its trunks can carry it ----------------------


class ScopePool(Wire):
    """A site or edge group that campaigns dial through: its Edges, their EXTERNAL trunks, trunk bases."""

    key: str  # "site:<id>" or "edgeGroup:<id>": also the shared observation's key
    kind: str  # "site" | "edgeGroup"
    id: str
    name: str | None = None
    # A site's Site.mediaModel: "Premises" (Edges on site: BYOC Premises) or "Cloud" (BYOC Cloud,
    # Genesys Cloud Voice: trunks found through the site's outbound routes). None: an edge group.
    media_model: str | None = None
    edges: list[str] = Field(default_factory=list)
    trunks: list[str] = Field(default_factory=list)
    trunk_bases: list[str] = Field(default_factory=list)

    def rests_on(self) -> str:
        """What readiness reads for this pool, in words (the job's scope says it)."""
        if self.media_model == "Cloud":
            return (
                f"{self.key}: a Cloud media site; its outbound routes' trunks and trunk bases"
                f" ({len(self.trunks)} trunks, {len(self.edges)} cloud media Edges)"
            )
        if not self.edges:
            return f"{self.key}: no Edges listed, so no trunks: nothing to wait for and no lines"
        return f"{self.key}: {len(self.edges)} Edges and their {len(self.trunks)} EXTERNAL trunks"


class ScopeCampaign(Wire):
    id: str
    name: str | None = None
    dialing_mode: str
    queue_id: str | None = None
    pool: str  # ScopePool.key
    max_calls_per_agent: int | None = None
    outbound_line_count: int | None = None
    agents: int = 0  # the schedule's agents among its queue's members when the scope was computed


class TelephonyScope(Wire):
    """Computed once per job: schedule agents -> queues -> campaigns `on` -> sites / edge groups ->
    Edges -> EXTERNAL trunks -> trunk bases. Only this telephony can hold the job's publish."""

    computed_at: float
    agents: int
    management_units: list[str] = Field(default_factory=list)
    week_count: int = 1
    campaigns: list[ScopeCampaign] = Field(default_factory=list)
    pools: list[ScopePool] = Field(default_factory=list)

    def brief(self) -> dict[str, Any]:
        return {
            "agents": self.agents,
            "campaigns": [c.id for c in self.campaigns],
            "pools": [p.key for p in self.pools],
            "edges": sum(len(p.edges) for p in self.pools),
            "trunks": sum(len(p.trunks) for p in self.pools),
            "readsFrom": [p.rests_on() for p in self.pools],
        }


class CampaignLoad(Wire):
    """One campaign's part of the lines needed in an interval."""

    campaign_id: str
    name: str | None = None
    dialing_mode: str
    agents: int
    lines_per_agent: int
    lines: int


class CapacityOverflow(Wire):
    """Consecutive 15-minute intervals over capacity in one site / edge group."""

    pool: str
    label: str  # e.g. "Mon 23 Oct 12:00-13:00 Europe/London (11:00-12:00 UTC)"
    start: str  # ISO in the business unit's zone
    end: str
    start_utc: str
    end_utc: str
    intervals: int
    lines_needed: int  # the peak within the range
    lines_available: int
    peak_at: str  # ISO (business unit's zone) of the first interval at the peak
    campaigns: list[CampaignLoad] = Field(default_factory=list)  # behind the peak


class PoolCapacity(Wire):
    """How the lines available to one site / edge group were worked out, and its peak need."""

    pool: str
    name: str | None = None
    lines_available: int | None  # None: no limit could be read, none applied (see the report's notes)
    # Which bound decided: "lineDistribution" (the dialer's maxOutboundLineCount), "trunks" (Σ Max
    # Calls), "edges" (premises Edges' configured capacity), or "none".
    bound: str = "lineDistribution"
    max_outbound_line_count: int | None = None  # the line distribution's
    trunk_max_concurrent_calls: int | None = (
        None  # Σ Max Calls over the trunks that carry calls, if all limited
    )
    trunk_max_calls: str | None = (
        None  # "limited" | "unlimited" | "unreadable" | "none" (no trunk carries calls)
    )
    edge_capacity: int | None = None  # premises Edges carrying calls times the configured capacity per Edge
    max_line_utilization: float
    reserved_lines: int = 0  # agentless campaigns outside this schedule
    peak_needed: int = 0
    peak_at: str | None = None
    intervals_over: int = 0
    needed_runs: str | None = Field(
        default=None,
        description="lines needed in every interval from weekStart, run-length encoded: `lines*intervals` "
        "(`*1` left out) joined by commas, e.g. `0*32,9*18,18*14` (what the chart draws; absent in "
        "reports made before it was kept)",
    )


class CapacityReport(Wire):
    ok: bool
    summary: str
    time_zone: str
    week_start: str
    interval_minutes: int = 15
    intervals_checked: int
    intervals_over: int = 0
    pools: list[PoolCapacity] = Field(default_factory=list)
    over: list[CapacityOverflow] = Field(default_factory=list)  # bounded: see `more_over`
    more_over: int = 0  # ranges over capacity not listed in `over`
    notes: list[str] = Field(default_factory=list)
    checked_at: float | None = None

    def brief(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "intervalsChecked": self.intervals_checked,
            "intervalsOver": self.intervals_over,
            "peaks": {p.pool: f"{p.peak_needed}/{p.lines_available}" for p in self.pools},
        }


class Step(StrEnum):
    VALIDATE = "validate"  # is telephony settled? then publish
    CONFIRM = "confirm"  # has our published update been applied?
    CONFLICT = "conflict"  # a publish got 409: classify and act


class Joiner(Wire):
    """A request that joined a job in flight: its key, and the record to tell how the job ended."""

    key: str
    callback: Callback | None = None
    at: float


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
    checked_at: float | None = None  # when the last readiness check read telephony
    publish_attempts: int = 0
    conflict_retries: int = 0
    transient_failures: int = 0
    base_version: int | None = None  # the schedule metadata.version our last publish was based on
    publishing_since: float | None = None
    operation_id: str | None = None
    # The base version of an update of ours that Genesys accepted, or whose answer was lost: it may
    # still land. None while every update of ours so far was refused outright (conflicts.landed).
    pending_base_version: int | None = None
    idempotency_key: str | None = None
    notified_status: JobStatus | None = None  # the terminal status the request's callback was told about
    notified_at: float | None = None
    # When the job's next step is due (the delay of the message in flight): the watchdog's index.
    due_at: float | None = None
    step: Step | None = None  # what the message in flight runs (None: ended, or written before this field)
    # Requests that joined this job (their callbacks hear its end too). Kept in an item attribute of
    # its own, beside the document, so a join never races a pipeline step's write (store.add_joiner).
    joiners: list[Joiner] = Field(default_factory=list, exclude=True)
    deliveries: dict[str, JobStatus] = Field(default_factory=dict)  # joiner key -> status it was told
    scope: TelephonyScope | None = None  # computed on the first validation, reused after
    blocked_by: list[str] = Field(default_factory=list)  # "edge:<id>", "trunk:<id>": re-read these first
    capacity: CapacityReport | None = None  # strict: checked before publishing; deferred: after
    warnings: list[str] = Field(default_factory=list)  # e.g. deferred capacity over: still PUBLISHED
    timeline: list[TimelineEntry] = Field(default_factory=list)

    def record(self, at: float, event: str, /, **detail: Any) -> None:
        last = self.timeline[-1] if self.timeline else None
        if last is not None and last.event == event and event in COALESCED:
            self.timeline[-1] = last.model_copy(
                update={"times": (last.times or 1) + 1, "until": at, "detail": detail}
            )
            return
        self.timeline.append(TimelineEntry(at=at, event=event, detail=detail))
        self._trim()

    def place(self) -> tuple[str, str]:
        """(business unit, week) of the job's schedule; GenesysNotFound while it is not located."""
        if not self.business_unit_id or not self.week_id:
            from wfm_publish.errors import GenesysNotFound

            raise GenesysNotFound(f"schedule {self.schedule_id} has no business unit or week yet", status=404)
        return self.business_unit_id, self.week_id

    def recount(self, looks: int, until: float | None) -> None:
        """Count `looks` more of the last entry's event (quiet looks that wrote nothing), the last at
        `until`."""
        last = self.timeline[-1] if self.timeline else None
        if looks > 0 and last is not None and last.event in COALESCED:
            again = {"times": (last.times or 1) + looks, "until": until or last.until}
            self.timeline[-1] = last.model_copy(update=again)

    def _trim(self) -> None:
        if len(self.timeline) > TIMELINE_LIMIT:
            # Keep how it started and what happened lately.
            self.timeline = self.timeline[:20] + self.timeline[-(TIMELINE_LIMIT - 20) :]


# --- messages between steps ----------------------------------------------------------------------


class GenesysErrorBody(Lenient):
    """Genesys Cloud's error body (docs/genesys-api.md)."""

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
    # The job's version once the write that sent this message commits. The message is sent a moment
    # before that write, so it can arrive first: a job still below this version has not caught up yet.
    version: int | None = None
    early: int = 0  # how often it arrived before its write and was sent back
    # Looks at telephony since the job's last write that found the same blockers: a quiet look sends
    # the next one with the same ticket and writes nothing; the next write counts them.
    quiet: int = 0
    looked_at: float | None = None  # when the quiet look that sent this one read telephony
    not_before: float | None = None  # set on waits longer than one SQS delay (900 s)
    conflict: GenesysErrorBody | None = None


def field_errors(exc: ValidationError) -> list[dict[str, str]]:
    """Each problem with a request, named by its field as the caller wrote it."""
    return [
        {"field": ".".join(str(part) for part in err["loc"]) or "body", "problem": err["msg"]}
        for err in exc.errors()
    ]


# --- idempotency and cancel: what the store reads back and what a refused cancel says ---------------


class IdempotencyStatus(StrEnum):
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"


@dataclass(frozen=True)
class IdempotencyRecord:
    """`idem#<key>` as the store reads it back (store_items lays it out)."""

    key: str
    status: IdempotencyStatus
    body_hash: str
    locked_until: float
    response: dict[str, Any] | None = None
    token: str = ""


class Refusal(StrEnum):
    """Why a cancel is refused (cancel.py)."""

    ALREADY_ENDED = "ALREADY_ENDED"
    PUBLISH_IN_PROGRESS = "PUBLISH_IN_PROGRESS"
