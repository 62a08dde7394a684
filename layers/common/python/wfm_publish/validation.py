"""The validate step (mixed into pipeline.Pipeline): is the schedule's telephony settled, and does
capacity allow it? Then publish. Locates the schedule, computes the telephony scope once per job (and
watches its entities for telephony events), reads readiness through the shared observations, waits
by the wait strategy (quiet looks while polling), checks capacity before (strict) or after (deferred)
publishing, and ends a dry run with its report.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from wfm_publish import waiting
from wfm_publish.errors import GenesysError, GenesysRateLimited, GenesysTransient
from wfm_publish.models import (
    NOT_SETTLED,
    CapacityReport,
    Job,
    JobStatus,
    ReasonCode,
    Step,
    TelephonyScope,
    ValidationMode,
)
from wfm_publish.observations import Observer
from wfm_publish.waiting import QUIET_MARGIN, QUIET_WINDOW

if TYPE_CHECKING:
    import random

    from wfm_publish.clock import Clock
    from wfm_publish.genesys_wire import Schedule
    from wfm_publish.ports import PipelineGenesys
    from wfm_publish.readiness import Readiness
    from wfm_publish.scope import TelephonyOptions
    from wfm_publish.store import JobStore
    from wfm_publish.transitions import Transitions
    from wfm_publish.waiting import Timing

DEFERRED_CAPACITY_TRIES = 5  # deferred mode: a capacity check Genesys keeps refusing ends as a warning


class ValidationStep:
    if TYPE_CHECKING:  # the Pipeline's parts and steps this one uses
        store: JobStore
        transitions: Transitions
        clock: Clock
        timing: Timing
        rng: random.Random

        @property
        def genesys(self) -> PipelineGenesys: ...
        @property
        def options(self) -> TelephonyOptions: ...
        def _publish(self, job: Job, schedule: Schedule | None = None) -> None: ...
        def _locate(self, job: Job) -> Job: ...
        def _on_genesys_error(self, job: Job, error: GenesysError, *, posted: bool = False) -> None: ...

    def _validate(self, job: Job, quiet: int = 0, looked_at: float | None = None) -> None:
        """`quiet`: looks since the job's last write that wrote nothing, the last at `looked_at`
        (JobMessage.quiet)."""
        from wfm_publish import scope

        now = self.clock.now()
        job = self._locate(job)
        mode = job.request.validation_mode
        dry_run = bool(job.request.dry_run)
        if mode is ValidationMode.OFF and not dry_run:
            self._publish(job)  # no wait, no telephony read, no capacity check
            return
        # Every read below goes through the observations other jobs made a moment ago. Telephony state
        # none older than the move that sent this step (wake.py counts on it), or the quiet look before
        # it; a first look may take any that is fresh, as it polls again soon whatever it sees (the
        # watch is written after its reads: `_settled`).
        first = job.scope is None
        newer_than = None if first else max(job.updated_at, looked_at or 0.0)
        observer = Observer(self.store, now, newer_than=newer_than)
        telephony = job.scope
        watched_at = None
        if telephony is None:  # once per job: the scope is stable, later checks reuse it
            calls = self.genesys.calls_made
            telephony = self._scope(job, observer)
            job = job.model_copy(deep=True, update={"scope": telephony})
            job.record(
                now, "telephony scope", **scope.describe(telephony), reads=self.genesys.calls_made - calls
            )
            if self.timing.events:  # an event from now on finds the job
                self.store.watch(job.job_id, scope.entities(telephony), job.deadline_at)
                watched_at = self.clock.now()
        try:
            if job.request.telephony_sync.enabled:
                settled = self._settled(job, telephony, observer, now, watched_at, quiet, looked_at)
                if settled is None:
                    return  # sent back to wait
                job = settled
            # A dry run checks capacity whatever the mode: the report is what it is for.
            if (mode is ValidationMode.STRICT or dry_run) and job.capacity is None:
                report = self._capacity(job, telephony, observer)
                job = job.model_copy(deep=True, update={"capacity": report})
                if dry_run:
                    reason = ReasonCode.DRY_RUN if report.ok else ReasonCode.CAPACITY_EXCEEDED
                    self.transitions.finish(job, JobStatus.CHECKED, reason, f"dry run: {report.summary}")
                    return
                if not report.ok:
                    self.transitions.finish(
                        job, JobStatus.FAILED, ReasonCode.CAPACITY_EXCEEDED, report.summary
                    )
                    return
                job.record(self.clock.now(), "capacity checked", summary=report.summary, **report.brief())
        except GenesysError as error:
            self._on_genesys_error(job, error)  # keeps the scope: the next look reuses it
            return
        self._publish(job)

    def _scope(self, job: Job, observer: Observer) -> TelephonyScope:
        from wfm_publish import scope

        bu, week = job.place()
        return scope.compute(self.genesys, observer, bu, week, job.schedule_id, self.options)

    def _settled(
        self,
        job: Job,
        telephony: TelephonyScope,
        observer: Observer,
        now: float,
        watched_at: float | None = None,
        quiet: int = 0,
        looked_at: float | None = None,
    ) -> Job | None:
        """The job with this readiness check recorded, or None when it was sent back to wait.
        `watched_at`: when this step started watching the scope's entities (its first check).

        Polling (no telephony events), a look that finds the same blockers as the job's last write is
        quiet: it sends the next look and writes nothing, as long as the job's due time (the bound its
        last write set) covers that next look. So a job writes once per QUIET_WINDOW while a change
        lasts, not once per look; the write counts the quiet looks."""
        from wfm_publish import readiness

        seen = readiness.check(
            self.genesys,
            observer,
            telephony,
            job.blocked_by,
            now=now,
            settle_window=self.timing.settle_window,
            max_age=self.options.observation_max_age,
            max_calls_key=self.options.max_calls_key,
        )
        first_check_at = job.first_check_at or now
        if quiet:
            job = job.model_copy(deep=True)
            job.recount(quiet, looked_at)
        changes = {
            "first_check_at": first_check_at,
            "readiness_checks": job.readiness_checks + 1 + quiet,
            "blocked_by": list(seen.blocked_by),
            # When the state judged was read: an event after this wakes the job (wake.py).
            "checked_at": seen.read_at if seen.read_at is not None else now,
        }
        if not seen.ready:
            # Events stand in for polling only for what was read once they could find the job (a
            # change between a read made before the watch and the watch itself wakes nobody), and only
            # for changes an event announced: an integration that delivers no telephony topic (not
            # documented either way for a client-credentials one) must not leave the job waiting on
            # events that never come.
            watched = seen.read_at is None or watched_at is None or seen.read_at >= watched_at
            changing = seen.settles_at is None  # else readiness knows when it settles: no event to wait for
            trusted = self.timing.events and watched and changing and self._announced(seen)
            delay = waiting.next_check_delay(
                seen,
                waited=now - first_check_at,
                now=now,
                deadline_at=job.deadline_at,
                poll=self.timing.safety_poll if trusted else None,
            )
            polling = not trusted and changing
            heard: dict[str, Any] = (
                {"events": "trusted" if trusted else "not heard: polling"}
                if self.timing.events and changing
                else {}
            )
            same = job.readiness_checks > 0 and list(seen.blocked_by) == job.blocked_by
            if polling and same and job.due_at is not None and now + delay + QUIET_MARGIN <= job.due_at:
                self.transitions.look_again(job, delay, quiet + 1, now)
                return None
            self.transitions.move(
                job,
                JobStatus.WAITING,
                Step.VALIDATE,
                delay,
                NOT_SETTLED,
                changes=changes,
                write_by=now + QUIET_WINDOW if polling else None,
                **seen.summary(),
                **heard,
                nextCheckInSeconds=round(delay, 1),
            )
            return None
        settled = job.model_copy(deep=True, update=changes)
        settled.record(now, "telephony settled", **seen.summary())
        return settled

    def _announced(self, seen: Readiness) -> bool:
        """Every Edge and trunk holding the job has had a telephony event since its current state began
        (`heard#`, by Genesys' clock, within CLOCK_MARGIN): its next change will wake the job too. Else
        the integration is silent for it (topics not delivered, or this one lost): poll, until events
        are heard again. A trunk base has no topic: a job held by one polls."""
        from wfm_publish.wake import CLOCK_MARGIN

        holding = [o for o in seen.observations if o.ref in seen.blocked_by]
        if not holding or any(o.kind not in ("edge", "trunk") for o in holding):
            return False
        heard = self.store.heard([o.id for o in holding])
        return all(
            o.id in heard and (o.changed_at is None or heard[o.id] >= o.changed_at - CLOCK_MARGIN)
            for o in holding
        )

    def _capacity(self, job: Job, telephony: TelephonyScope, observer: Observer) -> CapacityReport:
        from wfm_publish import capacity

        bu, week = job.place()
        return capacity.assess(
            self.genesys,
            observer,
            telephony,
            business_unit_id=bu,
            week_id=week,
            schedule_id=job.schedule_id,
            options=self.options,
        )

    def _deferred_capacity(self, job: Job) -> Job | None:
        """validationMode deferred: the schedule is published; check capacity now and attach what it
        finds. An interval over capacity is a warning here, never a failure: the job ends PUBLISHED.
        None: Genesys asked for a moment (429, 5xx, a query still processing): look again later."""
        if job.request.validation_mode is not ValidationMode.DEFERRED or job.capacity is not None:
            return job

        now = self.clock.now()
        observer = Observer(self.store, now)
        try:
            telephony = job.scope or self._scope(job, observer)
            report = self._capacity(job, telephony, observer)
        except (GenesysTransient, GenesysRateLimited) as error:
            if job.transient_failures < DEFERRED_CAPACITY_TRIES and now < job.deadline_at:
                wait = getattr(error, "retry_after", None) or waiting.backoff(
                    job.transient_failures, self.rng
                )
                self.transitions.move(
                    job,
                    JobStatus.PUBLISHING,
                    Step.CONFIRM,
                    waiting.within_deadline(float(wait), now, job.deadline_at),
                    "published; capacity check deferred",
                    changes={"transient_failures": job.transient_failures + 1},
                    **error.brief(),
                )
                return None
            return _capacity_unchecked(job, error, now)
        except GenesysError as error:
            return _capacity_unchecked(job, error, now)
        warnings = list(job.warnings)
        if not report.ok:
            warnings.append(f"{ReasonCode.CAPACITY_EXCEEDED.value}: {report.summary}")
        checked = job.model_copy(
            deep=True, update={"scope": telephony, "capacity": report, "warnings": warnings}
        )
        checked.record(now, "capacity checked after publishing", summary=report.summary, **report.brief())
        return checked


def _capacity_unchecked(job: Job, error: GenesysError, now: float) -> Job:
    warned = job.model_copy(deep=True, update={"warnings": [*job.warnings, f"capacity not checked: {error}"]})
    warned.record(now, "capacity not checked", **error.brief())
    return warned
