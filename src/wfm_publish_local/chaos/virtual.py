"""Seeded fault schedules in virtual time, through the real core: intake, the pipeline, the one store
(over DynamoDB in memory), the queue sender, the notifier, cancel, the watchdog and the dead-letter
sweep, with the Genesys Cloud simulator behind the real client.

One seed is one world: a schedule, a telephony change, maybe another writer and failing publish
operations, a handful of ServiceNow requests (duplicates, joiners, a reused key, cancels at random
moments), all drawn by plan.py, and faults at every boundary:

- DynamoDB: an answer lost after the commit (botocore sends the same request again), an error after
  the commit, a 5xx before it, a write throttled for seconds (other workers run meanwhile);
- SQS: an error after the message was sent, a duplicate, a 5xx before; redelivery after the
  visibility timeout (a lost delete), jittered delays (reordering);
- a worker crash between any two side effects (`Crash`: the delivery comes back after the visibility
  timeout, as from a Lambda that died);
- Genesys: a dropped connection or timeout before the call, an answer lost after it was applied, 429s
  with any Retry-After (a day, infinity, negative, a date in the past), update operations that end
  `Error`;
- clock skew between workers.

Concurrency is modelled by re-entrance: a slow write runs the world forward (other deliveries, other
requests) before it commits. After the run, `invariants.check` holds the world to the product's
promises (docs/chaos.md).
"""

from __future__ import annotations

import copy
import heapq
import itertools
import random
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests

from wfm_publish import genesys_events, wake
from wfm_publish.cancel import cancel
from wfm_publish.clock import VirtualClock
from wfm_publish.errors import (
    CancelContended,
    CancelRefused,
    IdempotencyKeyReused,
    JoinConflict,
    PublishNotFound,
    RequestInProgress,
    WfmPublishError,
)
from wfm_publish.genesys import Credentials, GenesysClient
from wfm_publish.intake import Intake
from wfm_publish.models import NOT_SETTLED, JobMessage, JobStatus, PublishRequest
from wfm_publish.notifier import Notifier
from wfm_publish.pipeline import Pipeline
from wfm_publish.queues import Queue, QueueSender
from wfm_publish.store import DynamoJobStore
from wfm_publish.store_items import job_from_item
from wfm_publish.waiting import Timing
from wfm_publish.watchdog import STUCK_BOUND, rescue_overdue
from wfm_publish_local.chaos.faults import (
    Crash,
    FakeServiceNow,
    FaultyDynamoDB,
    FaultyGenesys,
    FaultyTransport,
    Rates,
    SkewedClock,
)
from wfm_publish_local.chaos.plan import plan_requests, plan_scenario
from wfm_publish_local.memorydb import MemoryDynamoDB
from wfm_publish_local.simulator import GenesysSimulator, parse_scenario
from wfm_publish_local.virtual import JOBS_TABLE, VIRTUAL_BASE_URL, _indexes

VISIBILITY_TIMEOUT = 180.0
EVENT_LOST = 0.05  # Genesys notifications that never arrive: the re-read and the safety poll cover them
MAX_RECEIVES = 5
WATCHDOG_EVERY = 120.0
DEAD_LETTERS_EVERY = 300.0
STREAM_RETRY = 1.0
STREAM_ATTEMPTS = 20
SERVICENOW_RETRIES = 8  # ServiceNow's REST message retries a 5xx / lost answer this often
STEP_BOUND = STUCK_BOUND + MAX_RECEIVES * VISIBILITY_TIMEOUT  # "its deadline plus one step"


@dataclass(order=True)
class _Entry:
    due: float
    order: int
    action: Callable[[], None] = field(compare=False)
    kind: str = field(compare=False, default="")
    ticket: str | None = field(compare=False, default=None)


@dataclass
class Answer:
    at: float
    key: str
    body: str  # which body this key was sent with ("a", "b")
    status: int
    publish_id: str | None = None
    code: str | None = None
    callback: tuple[str, str] | None = None  # the record this request asked to be told


class World:
    def __init__(self, seed: int, rates: Rates | None = None) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.rates = rates or Rates()
        self.clock = VirtualClock()
        self.worker_clock = SkewedClock(self.clock)
        self.agenda: list[_Entry] = []
        self.order = itertools.count()
        self.depth = 0
        self.counts: Counter[str] = Counter()
        self.trace: list[str] = []
        self.live: Counter[str] = Counter()  # tickets of messages on the agenda or being handled
        self.dead_letters: list[tuple[Queue, str]] = []
        self.sent: list[tuple[str, float, float]] = []  # (job id, sent at, due) of every message sent
        self.answers: list[Answer] = []
        self.cancelled: set[str] = set()
        self.ended_at: dict[str, float] = {}
        self.orphan_since: dict[str, float] = {}
        self.longest_orphan: dict[str, float] = {}
        self.patch_crashes: Counter[tuple[str, str]] = Counter()
        self.last_patch: tuple[str, str] | None = None
        self.undelivered: list[str] = []
        self.requests_open = 0
        # For invariant 8 (events worlds): when each job was written, its waits on telephony (job id,
        # committed at, read telephony at, due at), and each telephony event handled (entity id,
        # stamped at, handled by).
        self.job_writes: defaultdict[str, list[float]] = defaultdict(list)
        self.telephony_waits: list[tuple[str, float, float, float]] = []
        self.telephony_heard: list[tuple[str, float, float]] = []
        self.pump_at: float | None = None  # when the simulator is next pumped (events worlds)

        self.raw = plan_scenario(self.rng, seed)
        self.simulator = GenesysSimulator(parse_scenario(self.raw), self.clock)
        self.db = MemoryDynamoDB({JOBS_TABLE: _indexes()})
        self.db.on_write.append(self._on_write)
        self.store = DynamoJobStore(FaultyDynamoDB(self.db, self), JOBS_TABLE)  # type: ignore[arg-type]
        sender = QueueSender(FaultyTransport(self), self.worker_clock)
        session = requests.Session()
        session.trust_env = False
        session.mount(VIRTUAL_BASE_URL, FaultyGenesys(self.simulator, self))
        credentials = self.simulator.scenario.credentials
        genesys = GenesysClient(
            VIRTUAL_BASE_URL,
            lambda: Credentials(credentials.client_id, credentials.client_secret),
            session=session,
            monotonic=self.clock.now,
        )
        # Half the worlds have Genesys notifications: update outcomes recorded by the events
        # function and read by the confirm step, telephony events waking jobs. Drawn apart from `rng`
        # so the other half keep the fault schedules they always had.
        self.events = random.Random(seed ^ 0x5EED).random() < 0.5
        self.latency = random.Random(seed ^ 0x5_1A7E)  # its own draws: the other faults stay as they were
        timing = Timing(settle_window=self.simulator.scenario.settle_window_seconds, events=self.events)
        self.pipeline = Pipeline(self.store, sender, genesys, self.worker_clock, timing, random.Random(seed))
        self.transitions = self.pipeline.transitions
        if self.events:
            self.simulator.notifier.subscribe(self._on_genesys_event)
        self.intake = Intake(self.store, sender, self.worker_clock, deadline_seconds=8 * 3600.0)
        self.servicenow = FakeServiceNow(self)
        self.notifier = Notifier(self.store, lambda: self.servicenow, self.clock)  # type: ignore[arg-type,return-value]

    # --- running ---------------------------------------------------------------------------------------

    def run(self, limit: float = 12 * 3600.0) -> World:
        plan_requests(self)
        self.at(WATCHDOG_EVERY, self._watchdog, "watchdog")
        self.at(DEAD_LETTERS_EVERY, self._sweep, "dead letters")
        self.at(60.0, self._sample, "sample")
        if self.events:
            self._keep_genesys_time()
        stop = self.clock.now() + limit
        while self.agenda and self.agenda[0].due <= stop and self._busy():
            self._step()
        return self

    def _busy(self) -> bool:
        if self.requests_open or self.dead_letters:
            return True
        if any(e.kind in {"delivery", "stream", "request", "cancel"} for e in self.agenda):
            return True
        return any(not job.status.terminal for job in self.jobs().values())

    def _step(self) -> None:
        entry = heapq.heappop(self.agenda)
        self.clock.advance_to(entry.due)
        if entry.ticket:
            self.live[entry.ticket] -= 1
        entry.action()
        if self.events:
            self._keep_genesys_time()

    def _keep_genesys_time(self) -> None:
        """The org's changes happen when they are due, not at our next request: their events go out
        then (the simulator applies time lazily, on a request or a pump)."""
        due = self.simulator.next_due()
        if due is not None and due != self.pump_at:
            self.pump_at = due
            # A moment after: `due` is a sum at the epoch's scale, where a float rounds to ~1e-7 s.
            self.at(max(0.0, due - self.clock.now()) + 0.001, self.simulator.pump, "genesys clock")

    def run_meanwhile(self, seconds: float) -> None:
        """A slow call: the world goes on for `seconds` (other workers' work) before it returns."""
        if self.depth >= 2:
            self.clock.advance(seconds)
            return
        self.depth += 1
        try:
            until = self.clock.now() + seconds
            while self.agenda and self.agenda[0].due <= until:
                self._step()
            self.clock.advance_to(until)
        finally:
            self.depth -= 1

    def at(self, delay: float, action: Callable[[], None], kind: str, ticket: str | None = None) -> None:
        if ticket:
            self.live[ticket] += 1
        heapq.heappush(self.agenda, _Entry(self.clock.now() + delay, next(self.order), action, kind, ticket))

    def roll(self, rate: float) -> bool:
        return rate > 0 and self.rng.random() < rate

    def count(self, what: str) -> None:
        self.counts[what] += 1
        self.note(what)

    def note(self, what: str) -> None:
        self.trace.append(f"{self.clock.now() - 1_700_000_000.0:9.1f}  {what}")

    def maybe_crash(self, where: str) -> None:
        if self.roll(self.rates.crash):
            self.count("worker crash")
            self.note(f"  (crashed {where})")
            raise Crash(where)

    # --- queues ------------------------------------------------------------------------------------------

    def enqueue(self, queue: Queue, body: str, delay: float, receives: int) -> None:
        message = JobMessage.model_validate_json(body)
        jitter = self.rng.uniform(0.0, 0.5)
        if not message.early:  # a look back for a write not visible yet waits on the table, not the job
            self.sent.append((message.job_id, self.clock.now(), self.clock.now() + delay))
        self.at(
            delay + jitter,
            lambda: self._deliver(queue, body, receives + 1),
            "delivery",
            ticket=message.ticket,
        )

    def _deliver(self, queue: Queue, body: str, receives: int) -> None:
        message = JobMessage.model_validate_json(body)
        self.note(f"deliver {message.step.value} #{receives} {message.ticket[:6]}")
        self.live[message.ticket] += 1  # being handled
        self.worker_clock.offset = self.rng.uniform(-self.rates.skew, self.rates.skew)
        try:
            self.pipeline.process(queue, message)
        except (Crash, Exception) as failure:  # what Lambda does with a failed record
            self.note(f"  step failed: {type(failure).__name__}: {failure}")
            self._redeliver(queue, body, receives)
            return
        finally:
            self.live[message.ticket] -= 1
            self.worker_clock.offset = 0.0
        if self.roll(self.rates.sqs_redeliver):
            self.count("sqs redelivery after the visibility timeout")
            self._redeliver(queue, body, receives)

    def _redeliver(self, queue: Queue, body: str, receives: int) -> None:
        if receives >= MAX_RECEIVES:
            self.count("message to the DLQ")
            self.dead_letters.append((queue, body))
            return
        ticket = JobMessage.model_validate_json(body).ticket
        self.at(VISIBILITY_TIMEOUT, lambda: self._deliver(queue, body, receives + 1), "delivery", ticket)

    def _sweep(self) -> None:
        kept = []
        for queue, body in self.dead_letters:
            try:
                self.pipeline.abandon(
                    JobMessage.model_validate_json(body), f"its message went to the {queue} DLQ"
                )
            except (Crash, Exception):
                kept.append((queue, body))
        self.dead_letters = kept
        self.at(DEAD_LETTERS_EVERY, self._sweep, "dead letters")

    def _watchdog(self) -> None:
        try:
            found = rescue_overdue(self.store, self.transitions, self.clock)
            if found.found:
                self.count("watchdog rescue")
        except (Crash, Exception) as failure:
            self.note(f"watchdog failed: {failure}")
        self.at(WATCHDOG_EVERY, self._watchdog, "watchdog")

    # --- ServiceNow's side -----------------------------------------------------------------------------

    def ask(self, delay: float, key: str, body_name: str, body: dict[str, Any], tries: int = 0) -> None:
        self.requests_open += 1
        self.at(delay, lambda: self._request(key, body_name, body, tries), "request")

    def _request(self, key: str, body_name: str, body: dict[str, Any], tries: int) -> None:
        self.requests_open -= 1
        self.worker_clock.offset = self.rng.uniform(-self.rates.skew, self.rates.skew)
        try:
            accepted = self.intake.accept(PublishRequest.model_validate(body), key)
            answer = Answer(self.clock.now(), key, body_name, 202, accepted.body["publishId"])
        except Crash:
            answer = Answer(self.clock.now(), key, body_name, 502, code="crash")
        except IdempotencyKeyReused:
            answer = Answer(self.clock.now(), key, body_name, 422, code="IDEMPOTENCY_KEY_REUSED")
        except JoinConflict:
            answer = Answer(self.clock.now(), key, body_name, 409, code="JOIN_CONFLICT")
        except RequestInProgress:  # this key, or this schedule, is being answered: retry shortly
            answer = Answer(self.clock.now(), key, body_name, 409, code="REQUEST_IN_PROGRESS")
        except WfmPublishError as failed:  # storage or the queue: 503, retry with the same key
            answer = Answer(self.clock.now(), key, body_name, 503, code=type(failed).__name__)
        finally:
            self.worker_clock.offset = 0.0
        callback = body.get("callback")
        if callback is not None:
            answer.callback = (callback["table"], callback["sysId"])
        self.answers.append(answer)
        self.note(f"request {key}/{body_name} -> {answer.status} {answer.publish_id or answer.code}")
        retry = answer.status in {502, 503} or answer.code == "REQUEST_IN_PROGRESS"
        if retry and tries < SERVICENOW_RETRIES:
            self.ask(self.rng.uniform(2.0, 15.0), key, body_name, body, tries + 1)

    def cancel_one(self) -> None:
        """ServiceNow cancels one of the publishes it was answered (any, at random)."""
        ids = [a.publish_id for a in self.answers if a.publish_id]
        if not ids:
            return
        publish_id = self.rng.choice(ids)
        try:
            done = cancel(self.store, self.transitions, publish_id)
            self.cancelled.add(publish_id)
            self.note(f"cancel {publish_id[:6]} -> CANCELLED (already: {done.already})")
        except (CancelRefused, CancelContended, PublishNotFound) as refused:
            self.note(f"cancel {publish_id[:6]} -> {type(refused).__name__}")
        except (Crash, Exception) as failure:
            self.note(f"cancel {publish_id[:6]} failed: {failure}")

    # --- Genesys notifications (EventBridge -> GenesysEventsFunction) --------------------------------------

    def _on_genesys_event(self, event: dict[str, Any]) -> None:
        """The partner bus: a moment later, at least once (sometimes twice), in no set order; a few lost."""
        if self.roll(EVENT_LOST):
            self.count("genesys event lost")
            return
        copies = 2 if self.roll(self.rates.sqs_duplicate) else 1
        for _ in range(copies):
            self.at(self.rng.uniform(0.1, 3.0), lambda: self._genesys_event(event, 1), "genesys event")

    def _genesys_event(self, event: dict[str, Any], attempt: int) -> None:
        """GenesysEventsFunction: a failure is retried by the rule's RetryPolicy, up to 8 more times."""
        now = self.worker_clock.now()
        try:
            woken = wake.on_telephony(event, self.store, self.transitions, now)
            if woken is None:
                genesys_events.handle(event, self.store, now)
            else:
                at = wake.event_time(event, now)
                self.telephony_heard.append((woken.entity_id, at, self.clock.now()))
                if woken.woken:
                    self.count("job woken by a telephony event")
        except (Crash, Exception) as failure:
            self.note(f"genesys event failed ({type(failure).__name__}); EventBridge retries")
            if attempt <= 8:
                self.at(30.0 * attempt, lambda: self._genesys_event(event, attempt + 1), "genesys event")

    # --- the stream and the notifier -------------------------------------------------------------------

    def _on_write(self, table: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        if new is None or not str(new["pk"]["S"]).startswith("job#"):
            return
        if self.events:
            self._note_job_write(new)
        ended = new["status"]["S"] in {s.value for s in JobStatus if s.terminal}
        was = old is not None and old["status"]["S"] in {s.value for s in JobStatus if s.terminal}
        if ended and not was:
            job = job_from_item(new)
            self.ended_at[job.job_id] = self.clock.now()
            self.note(f"job {job.job_id[:6]} ended {job.status.value} {job.reason_code}: {job.detail}")
            image = copy.deepcopy(new)
            self.at(0.5, lambda: self._notify(image, 1), "stream")

    def _note_job_write(self, item: dict[str, Any]) -> None:
        job_id = str(item["pk"]["S"]).removeprefix("job#")
        self.job_writes[job_id].append(self.clock.now())
        if item["status"]["S"] != JobStatus.WAITING.value:
            return
        job = job_from_item(item)
        if job.timeline[-1].event == NOT_SETTLED and job.checked_at is not None and job.due_at:
            self.telephony_waits.append((job_id, self.clock.now(), job.checked_at, job.due_at))

    def _notify(self, image: dict[str, Any], attempt: int) -> None:
        try:
            self.notifier.notify(job_from_item(image))
        except (Crash, Exception) as failure:
            if self.last_patch is not None:
                self.patch_crashes[self.last_patch] += 1  # patched, then died before noting it
                self.last_patch = None
            if attempt >= STREAM_ATTEMPTS:
                self.undelivered.append(str(image["pk"]["S"]))
                return
            self.note(f"notifier failed ({failure}); the stream retries")
            self.at(STREAM_RETRY, lambda: self._notify(image, attempt + 1), "stream")

    # --- what the world looks like ---------------------------------------------------------------------

    def jobs(self) -> dict[str, Any]:
        return {
            pk.removeprefix("job#"): job_from_item(item)
            for pk, item in self.db.tables.get(JOBS_TABLE, {}).items()
            if pk.startswith("job#")
        }

    def _sample(self) -> None:
        """Every minute: which jobs have nothing in flight that will move them, since when."""
        now = self.clock.now()
        for job_id, job in self.jobs().items():
            if job.status.terminal or self.live[job.ticket] > 0 or self._dead(job.ticket):
                self.orphan_since.pop(job_id, None)
                continue
            since = self.orphan_since.setdefault(job_id, max(now, job.due_at or now))
            self.longest_orphan[job_id] = max(self.longest_orphan.get(job_id, 0.0), now - since)
        if self._busy():
            self.at(60.0, self._sample, "sample")

    def _dead(self, ticket: str) -> bool:
        return any(JobMessage.model_validate_json(body).ticket == ticket for _, body in self.dead_letters)
