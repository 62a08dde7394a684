"""What a 409 means, read from the Genesys error body and a fresh read of the schedule, and what the
pipeline does about it (ConflictStep).

The body says why this update was refused (`details[].errorCode`; Genesys does not publish its WFM
codes, so the ones below are the simulator's, scenarios/README.md, and a body without a known code
is read from its message). The fresh read says what the schedule looks like now: whether an update
of ours landed after all, and whether its version moved since we read it.
"""

from __future__ import annotations

import re
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
    from wfm_publish.transitions import Transitions
    from wfm_publish.waiting import Timing

STALE_CODE = "wfm.schedule.version.mismatch"
TELEPHONY_CODE = "wfm.schedule.telephony.provisioning.in.progress"
IN_PROGRESS_CODE = "wfm.schedule.update.in.progress"

# Whole words only: "edge" must not match "knowledge", nor "sip" "gossip".
_TELEPHONY_WORDS = re.compile(r"\b(telephony|trunks?|edges?|provisioning|sip)\b")
_IN_PROGRESS_WORDS = re.compile(r"\b(in[ ._-]progress|still processing|already running)\b")
_VERSION_WORDS = re.compile(r"\b(version|modified by someone else|concurrent(ly)? modified)\b")


class ConflictKind(StrEnum):
    ALREADY_PUBLISHED = "already-published"  # an update of ours landed after all: done
    STALE_VERSION = "stale-version"  # the schedule moved since we read it: re-read and retry now
    TELEPHONY_SETTLING = "telephony-settling"  # back to delayed validation
    PUBLISH_IN_PROGRESS = "publish-in-progress"  # another update is running: watch the schedule
    UNKNOWN = "unknown"  # nothing we know how to cure: fail with the Genesys error


def landed(schedule: Schedule, pending_base: int | None) -> bool:
    """Our update has been applied: an update of ours that Genesys accepted (or whose answer was lost)
    was based on `pending_base`, and the schedule is now published past that version.

    Without such an update there is nothing of ours to have landed: a schedule that was already
    published and then edited by someone else is published past our base too, and is not ours.
    """
    return pending_base is not None and schedule.published and schedule.metadata.version > pending_base


def classify(
    body: GenesysErrorBody | None,
    schedule: Schedule,
    base_version: int | None,
    *,
    pending_base: int | None = None,
) -> ConflictKind:
    """The kind of a 409 answered to an update based on `base_version`, given `schedule` read after it.

    `pending_base` is the base version of an earlier update of ours that may still land (None when
    every update of ours so far was refused outright).
    """
    if landed(schedule, pending_base):
        return ConflictKind.ALREADY_PUBLISHED
    moved = base_version is not None and schedule.metadata.version != base_version
    said = _stated(body)
    if said is ConflictKind.PUBLISH_IN_PROGRESS and moved:
        # Once the other update is applied the version moves: then it is simply a stale read.
        return ConflictKind.STALE_VERSION
    if said is not None:
        return said
    return ConflictKind.STALE_VERSION if moved else ConflictKind.UNKNOWN


# The body's own code first (in this order: Genesys checks the version first), then its words.
_BY_CODE = (
    (STALE_CODE, ConflictKind.STALE_VERSION),
    (TELEPHONY_CODE, ConflictKind.TELEPHONY_SETTLING),
    (IN_PROGRESS_CODE, ConflictKind.PUBLISH_IN_PROGRESS),
)
_BY_WORDS = (
    (_TELEPHONY_WORDS, ConflictKind.TELEPHONY_SETTLING),
    (_IN_PROGRESS_WORDS, ConflictKind.PUBLISH_IN_PROGRESS),
    (_VERSION_WORDS, ConflictKind.STALE_VERSION),
)


def _stated(body: GenesysErrorBody | None) -> ConflictKind | None:
    """What the error body says the conflict is, if it says."""
    if body is None:
        return None
    codes = set(body.error_codes)
    for code, kind in _BY_CODE:
        if code in codes:
            return kind
    text = " ".join([*codes, body.code or "", body.message or "", body.message_with_params or ""]).lower()
    for words, kind in _BY_WORDS:
        if words.search(text):
            return kind
    return None


def named_entities(body: GenesysErrorBody | None, scope: TelephonyScope | None) -> list[str]:
    """The Edges, trunks or trunk bases a telephony 409 names that are in the job's scope, as
    readiness refs ("edge:<id>"), so the next check re-reads them first."""
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
        transitions: Transitions
        clock: Clock
        timing: Timing

        @property
        def genesys(self) -> PipelineGenesys: ...
        def _publish(self, job: Job, schedule: Schedule | None = None) -> None: ...
        def _landed(self, job: Job, schedule: Schedule) -> bool: ...

    def _resolve_conflict(self, job: Job, body: GenesysErrorBody | None) -> None:
        """A publish got 409 (status RETRYING), or we are watching another update run (WAITING)."""
        bu, week = job.place()
        schedule = self.genesys.schedule(bu, week, job.schedule_id)
        kind = classify(body, schedule, job.base_version, pending_base=job.pending_base_version)
        now = self.clock.now()
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
            # Readiness saw it settled, Genesys did not: back to delayed validation, after a wait.
            delay = waiting.after_telephony_conflict(
                retries, self.timing.settle_window, now=now, deadline_at=job.deadline_at
            )
            # What Genesys named goes first in the next check, so it is not taken as settled again.
            named = named_entities(body, job.scope)
            blocked = list(dict.fromkeys([*named, *job.blocked_by]))
            self.transitions.move(
                job,
                JobStatus.WAITING,
                Step.VALIDATE,
                delay,
                AFTER_CONFLICT,
                changes={"blocked_by": blocked},
                kind=kind.value,
                named=named,
            )
        elif kind is ConflictKind.PUBLISH_IN_PROGRESS:
            self._watch_other_update(job, body, now)
        else:
            detail = body.wire() if body else {}
            self.transitions.finish(
                job,
                JobStatus.FAILED,
                ReasonCode.CONFLICT_UNRESOLVED,
                f"Genesys answered 409: {(body.message if body else None) or 'no detail'}",
                genesys=detail,
            )

    def _watch_other_update(self, job: Job, body: GenesysErrorBody | None, now: float) -> None:
        """Another update of the schedule is running. Publishing again now would only earn another
        409: watch the schedule (a cheap read) until its version moves (the other update applied:
        then it is a stale read, re-read and publish), or it has run too long to wait for."""
        running = now - (job.publishing_since or now)
        if running >= self.timing.in_progress_limit:
            self.transitions.move(
                job,
                JobStatus.WAITING,
                Step.VALIDATE,
                0.0,
                "other update still running; publishing again",
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
            "another update is running",
            queue=Queue.CONFLICT,
            conflict=body,
            runningSeconds=round(running, 1),
            nextLookInSeconds=round(delay, 1),
        )
