"""Accept a publish request once: idempotency key, one active job per schedule, then queue it."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from wfm_publish.clock import Clock, iso
from wfm_publish.errors import (
    IdempotencyKeyReused,
    IdempotencyTaken,
    JobAlreadyExists,
    JobEnded,
    JoinConflict,
    RequestInProgress,
    ScheduleBeingAccepted,
)
from wfm_publish.models import (
    IdempotencyStatus,
    Job,
    JobMessage,
    Joiner,
    PublishRequest,
    Step,
    ValidationMode,
)
from wfm_publish.queues import Queue, QueueSender
from wfm_publish.store import JobStore
from wfm_publish.store_items import JoinNote

LOCK_SECONDS = 30.0  # a request still "in progress" after this was lost with its Lambda
JOIN_ROUNDS = 3  # a job that keeps ending under a join this often: the caller retries
# What a request that joins a job in flight must agree on with it: the callback may differ (it is
# told the outcome too); any of these differing is another request, refused with 409.
JOIN_MUST_MATCH = ("publish_time", "validation_mode", "telephony_sync", "deadline_seconds")
JOIN_MUST_MATCH_IF_GIVEN = ("business_unit_id", "week_id")


@dataclass(frozen=True)
class Accepted:
    body: dict[str, Any]
    replayed: bool = False
    headers: dict[str, str] = field(default_factory=dict)


def body_hash(request: PublishRequest) -> str:
    """The same request sent with other whitespace or key order is the same body."""
    canonical = json.dumps(request.wire(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def join_differences(running: PublishRequest, joining: PublishRequest) -> list[str]:
    """The options on which a joining request disagrees with the job in flight (camelCase names)."""
    different = [name for name in JOIN_MUST_MATCH if getattr(running, name) != getattr(joining, name)] + [
        name
        for name in JOIN_MUST_MATCH_IF_GIVEN
        if getattr(joining, name) is not None and getattr(running, name) not in {None, getattr(joining, name)}
    ]
    fields = PublishRequest.model_fields
    return [fields[name].alias or name for name in different]


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
        # What this key already did, read before anything is written: a request refused here writes
        # nothing (a lock taken and released could stay behind, and refuse the key's own body later).
        earlier = Earlier(
            self._store.get_job(job_id_for(idempotency_key)), self._store.joined(idempotency_key)
        )
        if earlier.other_body(digest):
            raise IdempotencyKeyReused(
                f"Idempotency-Key {idempotency_key!r} was already used with a different body"
            )
        token = uuid.uuid4().hex  # this request's mark on the key's lock
        deadline_at = start_of(request, now) + job_deadline(request, self._deadline_seconds)
        try:
            self._store.lock_idempotency(idempotency_key, digest, token, now, LOCK_SECONDS, deadline_at)
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
            answer = self._start_or_join(request, idempotency_key, now, deadline_at, earlier)
            self._store.complete_idempotency(idempotency_key, digest, token, answer, deadline_at)
        except IdempotencyTaken as taken:
            # We were slow: a retry of this request took over our expired lock. Its answer stands if
            # it gave one; else ours, which names the same job (the key's, job_id_for).
            record = taken.record
            if record.status is IdempotencyStatus.COMPLETED and record.response is not None:
                return Accepted(record.response, replayed=True)
            return Accepted(answer)
        except Exception:
            self._store.release_idempotency(idempotency_key, token)  # let the caller's retry start afresh
            raise
        return Accepted(answer)

    def _start_or_join(
        self, request: PublishRequest, key: str, now: float, deadline_at: float, earlier: Earlier
    ) -> dict[str, Any]:
        job_id = job_id_for(key)
        if earlier.job is not None:
            # This request was accepted before (its answer, or the key's record, was lost): the job its
            # key names is the answer, however far it got. Never a second job, nor a claim, for it.
            return _started_answer(earlier.job)
        if request.dry_run:
            # A dry run publishes nothing: it takes no claim, so it never blocks or joins a real publish.
            return self._start(job_id, request, key, now, deadline_at)
        joined = self._joined_before(key, earlier.joined)
        if joined is not None:
            return joined
        for _ in range(JOIN_ROUNDS):
            active = self._store.claim_schedule(request.schedule_id, job_id, now, deadline_at)
            if active is None:
                return self._start(job_id, request, key, now, deadline_at)
            joined = self._join(active, request, key, now)
            if joined is not None:
                return joined
        raise ScheduleBeingAccepted(f"schedule {request.schedule_id} is changing hands; retry shortly")

    def _start(
        self, job_id: str, request: PublishRequest, key: str, now: float, deadline_at: float
    ) -> dict[str, Any]:
        job = self._new_job(job_id, request, key, now, deadline_at)
        # Queue first, then write: a message for a job not written yet comes back for another look.
        message = JobMessage(job_id=job_id, ticket=job.ticket, step=Step.VALIDATE, version=job.version)
        try:
            self._queues.send(Queue.VALIDATION, message, first_delay(request, now))
        except Exception:
            # Nothing of this job exists: free the schedule at once. (After a failed write the claim
            # stays: that write may still land, and a retry must then join it, not start another.)
            if not request.dry_run:
                self._store.release_schedule(request.schedule_id, job_id)
            raise
        try:
            self._store.create_job(job)
        except JobAlreadyExists:
            # Written since this request looked (accept's first read): a request with the same key,
            # whose job is the answer if it has our body. With another body, the claim just taken here
            # names a job of another schedule: it goes, before the refusal.
            earlier = self._store.get_job(job_id)
            if earlier is None or body_hash(earlier.request) != body_hash(request):
                if not request.dry_run and (earlier is None or earlier.schedule_id != request.schedule_id):
                    self._store.release_schedule(request.schedule_id, job_id)
                raise IdempotencyKeyReused(
                    f"Idempotency-Key {key!r} was already used with a different body"
                ) from None
            job = earlier
        return _started_answer(job)

    def _join(self, active: str, request: PublishRequest, key: str, now: float) -> dict[str, Any] | None:
        """Join the job in flight, keeping this request's callback. None: it ended meanwhile."""
        current = self._store.get_job(active)
        if current is None:
            # Its intake claimed the schedule a moment ago and has not written it yet: a join may only
            # answer a job that exists, so the caller comes back in a moment.
            raise ScheduleBeingAccepted(
                f"another request for schedule {request.schedule_id} is being accepted; retry shortly"
            )
        if current.status.terminal:
            return None
        differences = join_differences(current.request, request)
        if differences:
            raise JoinConflict(
                f"publish {active} of schedule {request.schedule_id} is in flight with other "
                f"{', '.join(differences)}: wait for it to end, or cancel it, then send this request again",
                current,
                differences,
            )
        told = [current.request.callback, *(j.callback for j in current.joiners)]
        if request.callback is not None and key != current.idempotency_key and request.callback not in told:
            # Noted first, with the body: a retry of this request finds the join it made (_joined_before);
            # the key with another body is refused.
            self._store.note_join(key, active, current.deadline_at, body_hash(request))
            try:
                self._store.add_joiner(active, Joiner(key=key, callback=request.callback, at=now))
            except JobEnded:
                return None
        return _joined_answer(current, request.schedule_id)

    def _joined_before(self, key: str, note: JoinNote | None) -> dict[str, Any] | None:
        """This request's earlier attempt joined a job (its answer lost): that join is the answer, even
        once the job has ended; its callback hears that job's end, and no other."""
        job = self._store.get_job(note.job_id) if note is not None else None
        if job is None or key not in {j.key for j in job.joiners}:
            return None  # it noted the join and died before making it
        return _joined_answer(job, job.schedule_id)

    def _new_job(self, job_id: str, request: PublishRequest, key: str, now: float, deadline_at: float) -> Job:
        job = Job(
            job_id=job_id,
            schedule_id=request.schedule_id,
            business_unit_id=request.business_unit_id,
            week_id=request.week_id.isoformat() if request.week_id else None,
            request=request,
            ticket=uuid.uuid4().hex,
            created_at=now,
            updated_at=now,
            deadline_at=deadline_at,
            due_at=now + first_delay(request, now),
            step=Step.VALIDATE,
            idempotency_key=key,
        )
        job.record(now, "accepted", firstCheckInSeconds=round(first_delay(request, now), 1))
        return job


@dataclass(frozen=True)
class Earlier:
    """What a key already did before this request: the job it started (its id derives from the key),
    the join it noted."""

    job: Job | None
    joined: JoinNote | None

    def other_body(self, digest: str) -> bool:
        """The key was used with another body: its job's, or the one its join was noted with."""
        if self.job is not None and body_hash(self.job.request) != digest:
            return True
        return self.joined is not None and self.joined.body_hash not in {"", digest}


def _started_answer(job: Job) -> dict[str, Any]:
    return {
        "publishId": job.job_id,
        "status": job.status.value,
        "scheduleId": job.schedule_id,
        "joined": False,
    }


def _joined_answer(job: Job, schedule_id: str) -> dict[str, Any]:
    return {"publishId": job.job_id, "status": job.status.value, "scheduleId": schedule_id, "joined": True}


def job_id_for(key: str) -> str:
    """The job a request's key names. Derived, not drawn: a retry whose first answer (or the key's
    record) was lost meets the job it already started instead of starting another."""
    return hashlib.sha256(f"job:{key}".encode()).hexdigest()[:32]


def start_of(request: PublishRequest, now: float) -> float:
    """When the job may start: its publishTime, or now."""
    return max(now, request.publish_time.timestamp() if request.publish_time else now)


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
        **({"dryRun": True} if job.request.dry_run else {}),
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
            | ({"times": e.times, "until": iso(e.until)} if e.until is not None else {})
            for e in job.timeline
        ],
    }
    return {k: v for k, v in view.items() if v is not None}


def telephony_view(job: Job) -> dict[str, Any]:
    """The telephony scope the job watches, and the capacity report: bounded, for a person."""
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
