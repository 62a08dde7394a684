"""Accept a publish request once: idempotency key, one active job per schedule, then queue it."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from wfm_publish.clock import Clock, iso
from wfm_publish.errors import WfmPublishError
from wfm_publish.models import Job, JobMessage, JobStatus, PublishRequest, Step, ValidationMode
from wfm_publish.queues import Queue, QueueSender
from wfm_publish.store import IdempotencyStatus, IdempotencyTaken, JobStore

LOCK_SECONDS = 30.0  # a request still "in progress" after this was lost with its Lambda


class IdempotencyKeyReused(WfmPublishError):
    """422: the key was first used with another body."""


class RequestInProgress(WfmPublishError):
    """409: the first request with this key is still being answered; retry shortly."""


@dataclass(frozen=True)
class Accepted:
    body: dict[str, Any]
    replayed: bool = False
    headers: dict[str, str] = field(default_factory=dict)


def body_hash(request: PublishRequest) -> str:
    """The same request sent with other whitespace or key order is the same body."""
    canonical = json.dumps(request.wire(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class Intake:
    def __init__(
        self, store: JobStore, queues: QueueSender, clock: Clock, *, deadline_seconds: float
    ) -> None:
        self._store = store
        self._queues = queues
        self._clock = clock
        self._deadline_seconds = deadline_seconds

    def accept(self, request: PublishRequest, idempotency_key: str) -> Accepted:
        digest = body_hash(request)
        now = self._clock.now()
        try:
            self._store.lock_idempotency(idempotency_key, digest, now, LOCK_SECONDS)
        except IdempotencyTaken as taken:
            record = taken.record
            if record.body_hash and record.body_hash != digest:
                raise IdempotencyKeyReused(
                    f"Idempotency-Key {idempotency_key!r} was already used with a different body"
                ) from taken
            if record.status is IdempotencyStatus.COMPLETED and record.response is not None:
                return Accepted(record.response, replayed=True)
            raise RequestInProgress(
                f"a request with Idempotency-Key {idempotency_key!r} is in progress"
            ) from taken
        try:
            answer = self._start_or_join(request, idempotency_key, now)
            self._store.complete_idempotency(idempotency_key, digest, answer, now)
        except Exception:
            self._store.release_idempotency(idempotency_key)  # let the caller's retry start afresh
            raise
        return Accepted(answer)

    def _start_or_join(self, request: PublishRequest, key: str, now: float) -> dict[str, Any]:
        job_id = uuid.uuid4().hex
        active = self._store.claim_schedule(request.schedule_id, job_id, now)
        if active is not None:
            current = self._store.get_job(active)
            status = current.status.value if current else JobStatus.QUEUED.value
            return {"publishId": active, "status": status, "scheduleId": request.schedule_id, "joined": True}
        try:
            job = self._new_job(job_id, request, key, now)
            # Queue first, then write: a message for a job that never got written is dropped on arrival.
            message = JobMessage(job_id=job_id, ticket=job.ticket, step=Step.VALIDATE, version=job.version)
            self._queues.send(Queue.VALIDATION, message, first_delay(request, now))
            self._store.create_job(job)
        except Exception:
            self._store.release_schedule(request.schedule_id, job_id)
            raise
        return {
            "publishId": job_id,
            "status": job.status.value,
            "scheduleId": request.schedule_id,
            "joined": False,
        }

    def _new_job(self, job_id: str, request: PublishRequest, key: str, now: float) -> Job:
        start = max(now, request.publish_time.timestamp() if request.publish_time else now)
        job = Job(
            job_id=job_id,
            schedule_id=request.schedule_id,
            business_unit_id=request.business_unit_id,
            week_id=request.week_id.isoformat() if request.week_id else None,
            request=request,
            ticket=uuid.uuid4().hex,
            created_at=now,
            updated_at=now,
            deadline_at=start + job_deadline(request, self._deadline_seconds),
            idempotency_key=key,
        )
        job.record(now, "accepted", firstCheckInSeconds=round(first_delay(request, now), 1))
        return job


def job_deadline(request: PublishRequest, configured: float) -> float:
    """Seconds the job may take from its start: the configured deadline, or the request's if shorter."""
    if request.deadline_seconds is None:
        return configured
    return min(configured, float(request.deadline_seconds))


def first_delay(request: PublishRequest, now: float) -> float:
    """Wait for publishTime, and give telephony the caller's delayMs before the first look."""
    until_publish_time = max(0.0, request.publish_time.timestamp() - now) if request.publish_time else 0.0
    sync = request.telephony_sync
    settling = (
        sync.delay_ms / 1000 if sync.enabled and request.validation_mode is not ValidationMode.OFF else 0.0
    )
    return max(until_publish_time, settling)


def job_view(job: Job) -> dict[str, Any]:
    """What GET /publishes/{publishId} answers: readable by a person and by ServiceNow."""
    view: dict[str, Any] = {
        "publishId": job.job_id,
        "scheduleId": job.schedule_id,
        "businessUnitId": job.business_unit_id,
        "weekId": job.week_id,
        "status": job.status.value,
        "reasonCode": job.reason_code.value if job.reason_code else None,
        "detail": job.detail,
        "attempts": {
            "publish": job.publish_attempts,
            "readinessChecks": job.readiness_checks,
            "conflictRetries": job.conflict_retries,
        },
        "createdAt": iso(job.created_at),
        "updatedAt": iso(job.updated_at),
        "deadlineAt": iso(job.deadline_at),
        **telephony_view(job),
        "timeline": [
            {"at": iso(e.at), "event": e.event, **({"detail": e.detail} if e.detail else {})}
            for e in job.timeline
        ],
    }
    return {k: v for k, v in view.items() if v is not None}


def telephony_view(job: Job) -> dict[str, Any]:
    """The telephony scope the job watches, and the capacity report (issue 4): bounded, for a person."""
    view: dict[str, Any] = {}
    if job.scope is not None:
        view["telephonyScope"] = {
            "agents": job.scope.agents,
            "campaigns": [
                {"id": c.id, "name": c.name, "dialingMode": c.dialing_mode, "agents": c.agents, "via": c.pool}
                for c in job.scope.campaigns
            ],
            "sites": [
                {"pool": p.key, "name": p.name, "edges": p.edges, "trunks": p.trunks} for p in job.scope.pools
            ],
        }
    if job.blocked_by and not job.status.terminal:
        view["waitingOn"] = job.blocked_by
    if job.capacity is not None:
        view["capacity"] = job.capacity.wire()
    if job.warnings:
        view["warnings"] = job.warnings
    return view
