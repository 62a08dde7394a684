"""Telephony events wake the jobs waiting on them.

Genesys Cloud sends an event when an Edge, an Edge's software update or a trunk changes
(docs/architecture.md, "Genesys Cloud as it really is"). The jobs whose telephony scope holds that
entity are listed in its `watch#<entityId>` item (written when each job's scope is computed:
store.watch), so finding them is one read per event. Each such job that waits on telephony is moved,
through the one transition path, to a readiness check at once: the check then sees the change (and when
its settle window closes) without waiting for the next poll.

Delivery is at least once and unordered, so an event does nothing to a job that has seen it:
- its last check read telephony after the event's time (`checked_at`, the time of the oldest state it
  judged: an observation another job read is as old as that read), or
- its check is due or running, sent by a move after the event's time (every check reads nothing older
  than the move that sent it: observations.Observer's `newer_than`), or by a wake for this event or a
  later one.
Our clock and Genesys' may differ: an event stamped within CLOCK_MARGIN before a read still wakes.
A check that is due or running but was sent before the event may have read before it: the job is
moved again, which makes that check's commit stale and sends a check that reads after the event.
An event also does nothing to a job that is not waiting on telephony (publishing, confirming, backing
off from Genesys) or has ended (then it is pruned from the watch item).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aws_lambda_powertools import Logger

from wfm_publish.errors import StaleJob
from wfm_publish.genesys_events import topic_of
from wfm_publish.models import NOT_SETTLED, Job, JobStatus, Step
from wfm_publish.store import DynamoJobStore
from wfm_publish.transitions import Transitions

logger = Logger(child=True)

# The trunk topic first: `edges.trunks.{id}` is not an Edge.
TELEPHONY_TOPICS = (
    re.compile(r"^v2\.telephony\.providers\.edges\.trunks\.([^.]+)$"),
    re.compile(r"^v2\.telephony\.providers\.edges\.([^.]+)\.softwareupdate$"),
    re.compile(r"^v2\.telephony\.providers\.edges\.([^.]+)$"),
)
WOKEN = "woken by a telephony event"
# The timeline events of a job waiting on telephony (the pipeline's moves). Defined here (and in
# models) so the events function does not import the pipeline (readiness, capacity, the Genesys client).
AFTER_CONFLICT = "waiting after conflict"
# Genesys stamps an event with its clock, a check with ours: an event stamped less than this before a
# read may have come after it (the clocks differ), so it still wakes the job.
CLOCK_MARGIN = 5.0


@dataclass
class Wake:
    topic: str
    entity_id: str
    woken: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # job id -> why not


def telephony_entity(event: dict[str, Any]) -> tuple[str, str] | None:
    """(topic, entity id) of a telephony event, or None for any other topic."""
    topic = topic_of(event)
    for pattern in TELEPHONY_TOPICS:
        if found := pattern.match(topic):
            return topic, found.group(1)
    return None


def event_time(event: dict[str, Any], now: float) -> float:
    """When the change happened: the notification's own `detail.timestamp` (milliseconds), else the
    envelope's `time` (whole seconds); `now` if neither says."""
    detail = event.get("detail")
    stamps = [(detail if isinstance(detail, dict) else {}).get("timestamp"), event.get("time")]
    for stamp in stamps:
        try:
            return datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp()
        except ValueError:
            continue
    return now


def has_seen(job: Job, at: float, now: float) -> bool | None:
    """Do the job's telephony reads see a change made at `at`? Its due or running check sees what came
    before the move that sent it, its last check what came before its read. None: the job is not
    waiting on telephony."""
    if job.status not in (JobStatus.QUEUED, JobStatus.WAITING) or job.step not in (Step.VALIDATE, None):
        return None
    last = job.timeline[-1] if job.timeline else None
    if job.due_at is None or job.due_at <= now:  # a check is due or running
        woken_for = last.detail.get("eventAt") if last is not None and last.event == WOKEN else None
        if isinstance(woken_for, int | float) and woken_for >= at:
            return True  # sent for this event or a later one (both stamped by Genesys' clock)
        return job.updated_at >= at + CLOCK_MARGIN
    if last is not None and last.event == NOT_SETTLED:
        read_at = job.checked_at if job.checked_at is not None else job.updated_at
        return read_at >= at + CLOCK_MARGIN
    if last is not None and last.event == AFTER_CONFLICT:
        return job.updated_at >= at + CLOCK_MARGIN  # a 409 for telephony: its time
    return None  # backing off from Genesys: its next check is due soon and reads anew


def on_telephony(
    event: dict[str, Any], store: DynamoJobStore, transitions: Transitions, now: float
) -> Wake | None:
    """Wake the jobs watching the event's entity. None: not a telephony event."""
    found = telephony_entity(event)
    if found is None:
        return None
    topic, entity_id = found
    at = event_time(event, now)
    store.hear(entity_id, at)  # events flow for this entity: jobs waiting on it may trust them
    wake = Wake(topic, entity_id)
    for job_id in store.watchers(entity_id):
        wake.skipped[job_id] = _wake_one(job_id, store, transitions, topic, entity_id, at, now)
        if wake.skipped[job_id] == "woken":
            wake.woken.append(job_id)
            del wake.skipped[job_id]
    store.unwatch(entity_id, [j for j, why in wake.skipped.items() if why == "ended"])
    return wake


def _wake_one(
    job_id: str,
    store: DynamoJobStore,
    transitions: Transitions,
    topic: str,
    entity_id: str,
    at: float,
    now: float,
) -> str:
    for _ in range(2):  # once more if a step committed between our read and our write
        job = store.get_job(job_id)
        if job is None or job.status.terminal:
            return "ended"
        seen = has_seen(job, at, now)
        if seen is None:
            return "not waiting on telephony"
        if seen:
            return "checked after the event"
        try:
            transitions.move(
                job, JobStatus.WAITING, Step.VALIDATE, 0.0, WOKEN, topic=topic, entityId=entity_id, eventAt=at
            )
        except StaleJob:
            continue
        logger.info("job woken by a telephony event", extra={"job_id": job_id, "entity_id": entity_id})
        return "woken"
    return "moved meanwhile"
