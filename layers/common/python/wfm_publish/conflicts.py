"""What a 409 means, decided from what can be read, and what the pipeline does about it (ConflictStep).

Genesys documents one cause of a 409 on a schedule update: `metadata.version` "prevents conflicts on
concurrent edits" (SDK `WfmVersionedEntityMetadata`), so an update based on a version that is no longer
current is refused. It documents no error codes for WFM 409s, so none is read here (the simulator
sends codes of its own; nothing depends on them, nor on a message's words). A 409 is decided from:

1. a fresh read of the schedule: an update of ours that may have landed and is now published past its
   base (done), or a version that moved since we read it (stale: re-read and publish now);
2. an update of ours that may still be running (its outcome not known): watch the schedule;
3. the telephony in the job's scope, read now: still changing, or changed within the settle window
   (wait for it, as validation does);
4. nothing that can be read explains it: wait and publish again, within the attempt budget
   (`telephonySync.retryCount`); past it, FAILED with the Genesys error body.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import TYPE_CHECKING

from wfm_publish import waiting
from wfm_publish.models import GenesysErrorBody, Job, JobStatus, ReasonCode, Step, TelephonyScope
from wfm_publish.queues import Queue
from wfm_publish.wake import AFTER_CONFLICT

if TYPE_CHECKING:
    from wfm_publish.clock import Clock
    from wfm_publish.genesys_wire import Schedule
    from wfm_publish.ports import PipelineGenesys
    from wfm_publish.readiness import Readiness
    from wfm_publish.scope import TelephonyOptions
    from wfm_publish.store import JobStore
    from wfm_publish.transitions import Transitions
    from wfm_publish.waiting import Timing


class ConflictKind(StrEnum):
    ALREADY_PUBLISHED = "already-published"  # an update of ours landed after all: done
    STALE_VERSION = "stale-version"  # the schedule moved since we read it: re-read and retry now
    TELEPHONY_SETTLING = "telephony-settling"  # the scope's telephony is changing: back to validation
    PUBLISH_IN_PROGRESS = "publish-in-progress"  # an update of ours may still be running: watch
    UNRECOGNISED = "unrecognised"  # nothing readable explains it: wait, publish again within the budget


def landed(schedule: Schedule, pending_base: int | None) -> bool:
    """Our update has been applied: an update of ours that Genesys accepted (or whose answer was lost)
    was based on `pending_base`, and the schedule is now published past that version.

    Without such an update there is nothing of ours to have landed: a schedule that was already
    published and then edited by someone else is published past our base too, and is not ours.
    """
    return pending_base is not None and schedule.published and schedule.metadata.version > pending_base


def classify(
    schedule: Schedule,
    base_version: int | None,
    *,
    pending_base: int | None = None,
    telephony: Callable[[], Readiness | None] = lambda: None,
) -> ConflictKind:
    """The kind of a 409 answered to an update based on `base_version`, given `schedule` read after it.

    `pending_base` is the base version of an earlier update of ours that may still land (None when
    every update of ours so far was refused outright or is known to have ended). `telephony` reads
    the scope's readiness now (None: the job watches no telephony); it is called only when the
    schedule itself does not explain the 409.
    """
    if landed(schedule, pending_base):
        return ConflictKind.ALREADY_PUBLISHED
    if base_version is not None and schedule.metadata.version != base_version:
        return ConflictKind.STALE_VERSION
    if pending_base is not None:
        return ConflictKind.PUBLISH_IN_PROGRESS
    seen = telephony()
    if seen is not None and not seen.ready:
        return ConflictKind.TELEPHONY_SETTLING
    return ConflictKind.UNRECOGNISED


def named_entities(body: GenesysErrorBody | None, scope: TelephonyScope | None) -> list[str]:
    """The Edges, trunks or trunk bases a 409 names (ErrorBody's `entityId`, its own or a detail's) that
    are in the job's scope, as readiness refs ("edge:<id>"): read first after the 409. A hint for what
    to look at, never what decides the kind."""
    if body is None or scope is None:
        return []
    kinds: dict[str, str] = {}
    for pool in scope.pools:
        kinds |= {e: "edge" for e in pool.edges} | {t: "trunk" for t in pool.trunks}
        kinds |= {b: "trunkBase" for b in pool.trunk_bases}
    named = [body.entity_id, *(str(d.get("entityId")) for d in body.details if d.get("entityId"))]
    return list(dict.fromkeys(f"{kinds[e]}:{e}" for e in named if e in kinds))


class ConflictStep:
    """The conflict step (mixed into pipeline.Pipeline): act on a 409 as `classify` reads it."""

    if TYPE_CHECKING:  # the Pipeline's parts and steps this one uses
        store: JobStore
        transitions: Transitions
        clock: Clock
        timing: Timing

        @property
        def genesys(self) -> PipelineGenesys: ...
        @property
        def options(self) -> TelephonyOptions: ...
        def _publish(self, job: Job, schedule: Schedule | None = None) -> None: ...
        def _landed(self, job: Job, schedule: Schedule) -> bool: ...

    def _resolve_conflict(self, job: Job, body: GenesysErrorBody | None) -> None:
        """A publish got 409 (status RETRYING), or we are watching an update of ours run (WAITING)."""
        bu, week = job.place()
        schedule = self.genesys.schedule(bu, week, job.schedule_id)
        now = self.clock.now()
        named = named_entities(body, job.scope)
        looked: list[Readiness] = []

        def telephony() -> Readiness | None:
            seen = self._telephony_now(job, named, now)
            looked.extend([seen] if seen is not None else [])
            return seen

        kind = classify(
            schedule, job.base_version, pending_base=job.pending_base_version, telephony=telephony
        )
        answered = job.status is JobStatus.RETRYING  # a fresh 409, not a second look at a running update
        retries = job.conflict_retries + (1 if answered else 0)
        job = job.model_copy(deep=True, update={"conflict_retries": retries})
        if answered or kind is not ConflictKind.PUBLISH_IN_PROGRESS:
            job.record(now, "conflict classified", kind=kind.value, scheduleVersion=schedule.metadata.version)
        if kind is ConflictKind.ALREADY_PUBLISHED:
            self._landed(job, schedule)
        elif kind is ConflictKind.STALE_VERSION:
            self._publish(job, schedule)  # from the version just read; the attempt budget bounds this
        elif kind is ConflictKind.TELEPHONY_SETTLING:
            self._wait_for_telephony(job, looked[0], named, now)
        elif kind is ConflictKind.PUBLISH_IN_PROGRESS:
            self._watch_our_update(job, body, now)
        else:
            self._unrecognised(job, body, named, now)

    def _telephony_now(self, job: Job, named: list[str], now: float) -> Readiness | None:
        """The scope's readiness read after the 409 (what Genesys named, if it named any, first)."""
        if job.scope is None:
            return None  # validationMode off: the job reads no telephony
        from wfm_publish import readiness
        from wfm_publish.observations import Observer

        return readiness.check(
            self.genesys,
            Observer(self.store, now, newer_than=job.updated_at),  # nothing read before the 409
            job.scope,
            list(dict.fromkeys([*named, *job.blocked_by])),
            now=now,
            settle_window=self.timing.settle_window,
            max_age=self.options.observation_max_age,
            max_calls_key=self.options.max_calls_key,
        )

    def _wait_for_telephony(self, job: Job, seen: Readiness, named: list[str], now: float) -> None:
        """The scope's telephony is changing after all: back to delayed validation, waiting as a
        readiness check that found it changing would."""
        delay = waiting.next_check_delay(
            seen, waited=now - (job.first_check_at or now), now=now, deadline_at=job.deadline_at
        )
        self.transitions.move(
            job,
            JobStatus.WAITING,
            Step.VALIDATE,
            delay,
            AFTER_CONFLICT,
            changes={
                "blocked_by": list(seen.blocked_by),
                "checked_at": seen.read_at if seen.read_at is not None else now,
            },
            kind=ConflictKind.TELEPHONY_SETTLING.value,
            named=named,
            **seen.summary(),
            nextCheckInSeconds=round(delay, 1),
        )

    def _unrecognised(self, job: Job, body: GenesysErrorBody | None, named: list[str], now: float) -> None:
        """Nothing we can read explains the 409 (Genesys documents no other cause; telephony outside
        what readiness can see, another writer's update still running): wait, then validate and
        publish again, as long as the attempt budget lasts. Past it: FAILED with what Genesys said."""
        if job.publish_attempts > job.request.telephony_sync.retry_count:
            detail = body.wire() if body else {}
            self.transitions.finish(
                job,
                JobStatus.FAILED,
                ReasonCode.CONFLICT_UNRESOLVED,
                f"Genesys answered 409 to {job.publish_attempts} publish attempts; the last: "
                f"{(body.message if body else None) or 'no detail'}",
                genesys=detail,
                attempts=job.publish_attempts,
            )
            return
        unexplained = sum(
            1
            for e in job.timeline
            if e.event == "conflict classified" and e.detail.get("kind") == ConflictKind.UNRECOGNISED.value
        )
        delay = waiting.after_unexplained_conflict(
            max(1, unexplained), self.timing.settle_window, now=now, deadline_at=job.deadline_at
        )
        self.transitions.move(
            job,
            JobStatus.WAITING,
            Step.VALIDATE,
            delay,
            AFTER_CONFLICT,
            changes={"blocked_by": list(dict.fromkeys([*named, *job.blocked_by]))},
            kind=ConflictKind.UNRECOGNISED.value,
            named=named,
            nextCheckInSeconds=round(delay, 1),
        )

    def _watch_our_update(self, job: Job, body: GenesysErrorBody | None, now: float) -> None:
        """An update of ours may still be running (its answer was lost, or it is still processing).
        Publishing again now would only earn another 409: watch the schedule (a cheap read) until it
        lands, or until it has run too long to wait for (it may be lost: then publish again)."""
        running = now - (job.publishing_since or now)
        if running >= self.timing.in_progress_limit:
            self.transitions.move(
                job,
                JobStatus.WAITING,
                Step.VALIDATE,
                0.0,
                "our update still not applied; publishing again",
                runningSeconds=round(running, 1),
            )
            return
        delay = waiting.in_progress_delay(
            running, self.timing.in_progress_wait, now=now, deadline_at=job.deadline_at
        )
        self.transitions.move(
            job,
            JobStatus.WAITING,
            Step.CONFLICT,
            delay,
            "our update is still running",
            queue=Queue.CONFLICT,
            conflict=body,
            runningSeconds=round(running, 1),
            nextLookInSeconds=round(delay, 1),
        )
