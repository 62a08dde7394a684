"""Seeded fault schedules in virtual time, through the real core: intake, the pipeline, the one store
(over DynamoDB in memory, TTL included), the queue sender, the table's stream with the notifier
function and the announcer, cancel, the watchdog, the dead-letter sweep, the telephony events
function and an operator's commands, with the Genesys Cloud simulator behind the real client.

One seed is one world (plan.py): up to three schedules in two business units sharing Edges, telephony
changes of every kind, other writers and failing publish operations; ServiceNow records that send,
retry after failures (while others land), send again with another body under the same key, join,
conflict, ask for progress, wait for a publishTime, dry-run and cancel; and faults at every boundary
(faults.py):

- DynamoDB: an answer lost after the commit (botocore sends the same request again, at once or after
  others have written), an error after the commit, a 5xx before it, a write throttled for seconds, an
  outage of minutes;
- SQS: an error after the message was sent, a duplicate (maybe taken by two workers at once), a 5xx
  before; redelivery after the visibility timeout, jittered delays, a DLQ after 5 receives, an outage;
- a worker crash between any two side effects (the delivery comes back after the visibility timeout;
  a stream batch is retried whole);
- Genesys: a dropped connection, an answer lost after it was applied, 429s with any Retry-After,
  update operations that end `Error` or `Canceled`, slow answers;
- ServiceNow: 5xx and 429, a PATCH applied whose answer is lost, slow answers, records that are gone;
- EventBridge: PutEvents failing, entries refused;
- clock skew: every actor has its own.

Actors run one after another, re-entrant at a slow call (the world goes on meanwhile), or several at
once, switching at every outside call (actors.py). After the run, `invariants.check` holds the world to
the promises, job by job, against the simulator's log of the updates it applied.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import random
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from wfm_publish import genesys_events, wake
from wfm_publish.announcer import Announcer
from wfm_publish.cancel import cancel
from wfm_publish.clock import VirtualClock
from wfm_publish.consumer import sweep_dead_letters
from wfm_publish.errors import (
    CancelContended,
    CancelRefused,
    IdempotencyKeyReused,
    JoinConflict,
    PublishNotFound,
    QueueError,
    RequestInProgress,
    WfmPublishError,
)
from wfm_publish.genesys import Credentials, GenesysClient
from wfm_publish.intake import Intake, job_id_for
from wfm_publish.models import NOT_SETTLED, Job, JobMessage, JobStatus, PublishRequest
from wfm_publish.notifier import Notifier
from wfm_publish.pipeline import Pipeline
from wfm_publish.queues import Queue, QueueSender
from wfm_publish.store import DynamoJobStore
from wfm_publish.store_items import job_from_item
from wfm_publish.waiting import Timing
from wfm_publish.watchdog import OVERDUE_AFTER, STUCK_BOUND, redrive_letter, rescue_overdue
from wfm_publish.weekly import DynamoRunLog, Weekly, fan_out, take_units
from wfm_publish_local.chaos.actors import Actor, Interleaver
from wfm_publish_local.chaos.faults import (
    HOP_FAULTS,
    Crash,
    DirectSession,
    FakeEventBridge,
    FakeServiceNow,
    FaultyDynamoDB,
    FaultyGenesys,
    FaultyTransport,
    FaultyWeeklyQueue,
    Rates,
    SkewedClock,
)
from wfm_publish_local.chaos.plan import Record, plan_requests, plan_scenario
from wfm_publish_local.chaos.stream import Stream, invoke_notifier
from wfm_publish_local.memorydb import MemoryDynamoDB
from wfm_publish_local.simulator import GenesysSimulator, parse_scenario
from wfm_publish_local.virtual import JOBS_TABLE, VIRTUAL_BASE_URL, _indexes

VISIBILITY_TIMEOUT = 180.0
EVENT_LOST = 0.05  # Genesys notifications that never arrive: the re-read and the safety poll cover them
MAX_RECEIVES = 5
WATCHDOG_EVERY = 120.0
DEAD_LETTERS_EVERY = 300.0
TTL_EVERY = 600.0  # DynamoDB removes expired items in the background, some time after they expire
SERVICENOW_RETRIES = 8  # ServiceNow's REST message retries a 5xx / lost answer this often
STEP_BOUND = STUCK_BOUND + MAX_RECEIVES * VISIBILITY_TIMEOUT  # "its deadline plus one step"
TOGETHER = 1.0  # actors due within this long of each other may be picked up at once
GROUP_MOST = 3
# While any of these is on the agenda, the world goes on.
WORK = frozenset({"delivery", "request", "cancel", "operator", "weekly"})
# The actors that may be picked up together.
GROUPED = frozenset(
    {"delivery", "request", "stream", "cancel", "watchdog", "genesys event", "operator", "sweep", "weekly"}
)
ANSWER_LOST = 0.03  # the API answered, ServiceNow never got it (a timeout): it sends the same again
OUTAGE_SECONDS = (600.0, 2400.0)
WEEKLY_DUE = "2023-11-14T22:00:00Z"  # the weekly event's scheduledTime: a moment before the world starts
WEEKLY_STARTS_PER_MINUTE = 34.0  # template.yaml's WeeklyStartsPerMinute default
RUNAWAY = 60_000  # actions in one world: far more than any world takes (a few thousand)
_TERMINAL = frozenset(s.value for s in JobStatus if s.terminal)


class _Entry:
    """Something due on the world's agenda: by when, then by the order it was put there."""

    __slots__ = ("action", "due", "kind", "order", "ticket")

    def __init__(
        self, due: float, order: int, action: Callable[[], None], kind: str = "", ticket: str | None = None
    ) -> None:
        self.due, self.order, self.action, self.kind, self.ticket = due, order, action, kind, ticket

    def __lt__(self, other: _Entry) -> bool:
        return self.due < other.due or (self.due == other.due and self.order < other.order)


@dataclass
class Attempt:
    """One request as the API took it: which record, which body, what it wrote, what it answered."""

    number: int
    key: str
    body: str
    schedule_id: str
    began: int  # the world's write count when it began
    # pk -> the item as it was before this request's first write of it
    first_old: dict[str, dict[str, Any] | None] = field(default_factory=dict)


@dataclass
class Answer:
    at: float
    key: str
    body: str  # which body this key was sent with ("a", "b")
    status: int
    publish_id: str | None = None
    code: str | None = None
    callback: tuple[str, str] | None = None  # the record this request asked to be told
    schedule_id: str = ""  # the schedule the request named
    answered_schedule: str | None = None  # the scheduleId the 202 named
    attempt: int = 0
    began: float = 0.0  # when the request reached the API (`at`: when it was answered)
    publish_id_cited: str | None = None  # the job in flight a 409 JOIN_CONFLICT named


class World:
    def __init__(self, seed: int, rates: Rates | None = None) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.rates = rates or Rates()
        self.clock = VirtualClock()
        self.start = self.clock.now()
        self.actors = Interleaver(random.Random(seed ^ 0xAC7025))
        self.worker_clock = SkewedClock(self)
        self.agenda: list[_Entry] = []
        self.order = itertools.count()
        self.depth = 0
        self.crash_in: int | None = None  # a scripted crash, this many outside calls from now
        self.counts: Counter[str] = Counter()
        self._trace: list[tuple[float, str]] = []
        self.live: Counter[str] = Counter()  # tickets of messages on the agenda or being handled
        self.dead_letters: list[tuple[Queue, str, int]] = []
        # (job id, sent at, due, ticket) of every message sent
        self.sent: list[tuple[str, float, float, str]] = []
        self.tickets: set[str] = set()  # every ticket a job's write made current
        self.answers: list[Answer] = []
        self.attempts: list[Attempt] = []
        self._books()

        self._wire()

    def _books(self) -> None:
        """What the world keeps for the invariants."""
        self.records: list[Record] = []
        self.refusals: list[str] = []  # a refused request that left something written
        # key -> the bodies that started or joined a job under it
        self.effects: defaultdict[str, set[str]] = defaultdict(set)
        self.updates: dict[str, str | None] = {}  # Genesys operation id -> the job whose actor posted it
        self.harness_failures: list[str] = []
        self.ended_at: dict[str, float] = {}
        self.first_publishing: dict[str, list[tuple[str, str]]] = {}  # job -> progress records it had then
        self.publishing_since: dict[str, float] = {}  # job -> when it first moved into PUBLISHING
        self.discarded_progress: set[str] = set()  # jobs whose PUBLISHING record went to NotifierDLQ
        # job -> when the notifier was done with its first PUBLISHING record
        self.progress_handled: dict[str, float] = {}
        self.status_changes: list[tuple[str, int, str]] = []  # (job, version, status) the announcer must tell
        self.announce_discarded: set[tuple[str, int]] = set()
        self.overlaps: list[str] = []  # a second publish of a schedule begun while one was in flight
        self.removed: dict[str, Job] = {}  # jobs a person deleted before they ended, as they were
        self.weekly_raised: list[str] = []  # what the weekly unit function raised instead of answering
        self.weekly_lost: list[str] = []  # the weekly run's event or unit messages given up on (its DLQs)
        self.orphan_since: dict[str, float] = {}
        self.longest_orphan: dict[str, float] = {}
        self.requests_open = 0
        self.open_work = 0  # agenda entries of WORK kinds
        self.running_jobs: set[str] = set()  # job items not ended
        self._messages: dict[str, JobMessage] = {}  # queue bodies, read once
        self.writes = 0
        # pk -> (the write's number, the request attempt that made it, if one did)
        self.pk_writes: defaultdict[str, list[tuple[int, int | None]]] = defaultdict(list)
        self.outage: tuple[str, float] | None = None  # (service, until)
        self.outages: list[tuple[float, float]] = []  # (from, until) of every outage
        self.ttl_lag = 0.0
        # For invariant 8 (events worlds): when each job was written, its waits on telephony (job id,
        # committed at, read telephony at, due at), and each telephony event handled (entity id,
        # stamped at, handled by).
        self.job_writes: defaultdict[str, list[float]] = defaultdict(list)
        self.telephony_waits: list[tuple[str, float, float, float]] = []
        self.telephony_heard: list[tuple[str, float, float]] = []
        self.pump_at: float | None = None  # when the simulator is next pumped (events worlds)
        self._jobs_cache: dict[str, tuple[dict[str, Any], Job]] = {}

    def _wire(self) -> None:
        """The org, and the real core wired to the world's boundaries."""
        self.raw, self.settings = plan_scenario(self.rng, self.seed)
        self.events = self.settings.events
        self.simulator = GenesysSimulator(parse_scenario(self.raw), self.clock)
        self.db = MemoryDynamoDB({JOBS_TABLE: _indexes()})
        self.db.on_write.append(self._on_write)
        self.store = DynamoJobStore(FaultyDynamoDB(self.db, self), JOBS_TABLE)  # type: ignore[arg-type]
        sender = QueueSender(FaultyTransport(self), self.worker_clock)
        session = DirectSession(FaultyGenesys(self.simulator, self))
        credentials = self.simulator.scenario.credentials
        genesys = GenesysClient(
            VIRTUAL_BASE_URL,
            lambda: Credentials(credentials.client_id, credentials.client_secret),
            session=session,
            monotonic=self.clock.now,
        )
        self.latency = random.Random(
            self.seed ^ 0x5_1A7E
        )  # its own draws: the other faults stay as they were
        timing = Timing(settle_window=self.simulator.scenario.settle_window_seconds, events=self.events)
        self.pipeline = Pipeline(
            self.store, sender, genesys, self.worker_clock, timing, random.Random(self.seed)
        )
        self.transitions = self.pipeline.transitions
        if self.events:
            self.simulator.notifier.subscribe(self._on_genesys_event)
        self.intake = Intake(
            self.store, sender, self.worker_clock, deadline_seconds=self.settings.deadline_seconds
        )
        self.servicenow = FakeServiceNow(self)
        self.notifier = Notifier(self.store, lambda: self.servicenow, self.worker_clock)  # type: ignore[arg-type,return-value]
        self.eventbridge = FakeEventBridge(self)
        announcer = Announcer(self.eventbridge)  # type: ignore[arg-type]
        self.weekly = Weekly(
            self.worker_clock,
            genesys,
            self.intake,
            FaultyWeeklyQueue(self),
            DynamoRunLog(FaultyDynamoDB(self.db, self), JOBS_TABLE),  # type: ignore[arg-type]
            WEEKLY_STARTS_PER_MINUTE,
        )
        self.stream = Stream(self)
        self.stream.add("notifier", "NotifierFunction", lambda records: invoke_notifier(self, records))
        self.stream.add(
            "announcer",
            "AnnouncerFunction",
            lambda records: {
                "batchItemFailures": [{"itemIdentifier": n} for n in announcer.announce(records)]
            },
        )

    # --- running ---------------------------------------------------------------------------------------

    def run(self, limit: float | None = None) -> World:
        """Plan the world and run it until nothing is left to do (or `limit` virtual seconds)."""
        self.begin()
        return self.go(limit)

    def begin(self) -> None:
        """ServiceNow's records and the periodic actors on the agenda; nothing run yet."""
        plan_requests(self)
        self.ttl_lag = self.rng.uniform(0.0, 3600.0)
        self.at(WATCHDOG_EVERY, self._watchdog, "watchdog")
        self.at(DEAD_LETTERS_EVERY, self._sweep, "sweep")
        self.at(TTL_EVERY, self._expire, "ttl")
        self.at(60.0, self._sample, "sample")
        if self.events:
            self._keep_genesys_time()

    def go(self, limit: float | None = None) -> World:
        """Run the agenda in time order until nothing is left to do."""
        if limit is None:
            limit = self.settings.deadline_seconds + 4 * 3600.0
        stop = self.clock.now() + limit
        while self.agenda and self.agenda[0].due <= stop and self._busy():
            self._step()
            if next(self.order) > RUNAWAY:
                self.harness_failures.append(
                    f"the world ran away: {RUNAWAY} actions by {self.clock.now() - self.start:.0f} s"
                )
                break
        self.simulator.pump()
        return self

    def _busy(self) -> bool:
        return bool(
            self.requests_open or self.dead_letters or self.running_jobs or self.stream.busy or self.open_work
        )

    def _step(self) -> None:
        entry = heapq.heappop(self.agenda)
        if entry.kind in GROUPED and self.depth == 0 and not self.actors.grouped:
            together = self._together(entry)
            if len(together) > 1:
                self._run_together(together)
                return
        self._run_entry(entry)

    def _run_entry(self, entry: _Entry) -> None:
        self.clock.advance_to(entry.due)
        if entry.ticket:
            self.live[entry.ticket] -= 1
        if entry.kind in WORK:
            self.open_work -= 1
        entry.action()
        if self.events:
            self._keep_genesys_time()

    def _run_together(self, together: list[_Entry]) -> None:
        self.clock.advance_to(max(e.due for e in together))
        for member in together:
            if member.ticket:
                self.live[member.ticket] -= 1
            if member.kind in WORK:
                self.open_work -= 1
        self.count(f"{len(together)} actors at once")
        self.note("together: " + ", ".join(e.kind for e in together))
        self.actors.run([e.action for e in together], self.depth)
        self._harness_failed()
        if self.events:
            self._keep_genesys_time()

    def step_scripted(self, pick: int, among: int = 1) -> None:
        """Run one actor as a script says (tests/unit/test_chaos_interleavings.py): the `pick`-th of the
        next four due, at its own time (those due before it wait: late, as SQS may be); with `among`
        over 1, it and the next ones due run at once."""
        near = [heapq.heappop(self.agenda) for _ in range(min(4, len(self.agenda)))]
        if not near:
            return
        chosen = [near.pop(pick % len(near))]
        while near and len(chosen) < among:
            chosen.append(near.pop(0))
        for entry in near:
            heapq.heappush(self.agenda, entry)
        if len(chosen) > 1:
            self._run_together(chosen)
        else:
            self._run_entry(chosen[0])

    def _together(self, entry: _Entry) -> list[_Entry]:
        """The entry, and the next actors due with it if they are picked up at once: always a twin (an
        SQS duplicate due at the same moment, taken by two pollers), else at `rates.concurrent`."""
        near: list[_Entry] = []
        while self.agenda and self.agenda[0].due <= entry.due + TOGETHER and len(near) < 6:
            near.append(heapq.heappop(self.agenda))
        twin = any(e.ticket and e.ticket == entry.ticket and e.due == entry.due for e in near)
        chosen = [entry]
        if twin or self.roll(self.rates.concurrent):
            for e in near:
                if e.kind in GROUPED and len(chosen) < GROUP_MOST:
                    chosen.append(e)
        for e in near:
            if e not in chosen:
                heapq.heappush(self.agenda, e)
        return chosen

    def _harness_failed(self) -> None:
        while self.actors.failures:
            failure = self.actors.failures.pop()
            self.harness_failures.append(f"{type(failure).__name__}: {failure}")

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
        if kind in WORK:
            self.open_work += 1
        heapq.heappush(self.agenda, _Entry(self.clock.now() + delay, next(self.order), action, kind, ticket))

    @contextmanager
    def acting(self, name: str, *, job_id: str | None = None, request: int | None = None) -> Iterator[Actor]:
        """Work done by one actor, with its own clock skew."""
        actor = Actor(name, self.rng.uniform(-self.rates.skew, self.rates.skew), job_id, request)
        self.actors.push(actor)
        try:
            yield actor
        finally:
            self.actors.pop()

    def boundary(self, service: str) -> None:
        """An outside call: another actor of a group may run first; an outage may begin; a scripted
        crash (`crash_in`: this many calls from now) happens."""
        self.actors.switch(self.depth)
        if self.crash_in is not None:
            self.crash_in -= 1
            if self.crash_in < 0:
                self.crash_in = None
                self.count("worker crash")
                raise Crash(f"scripted, before a {service} call")
        if self.outage is None and not self.outages and self.roll(self.rates.outage):
            what = self.rng.choice(["dynamodb", "dynamodb", "sqs"])
            until = self.clock.now() + self.rng.uniform(*OUTAGE_SECONDS)
            self.outage = (what, until)
            self.outages.append((self.clock.now(), until))
            self.count(f"{what} outage")
            self.note(f"{what} unavailable for {until - self.clock.now():.0f} s")

    def stream_lag(self) -> float:
        """How far the stream's reader is behind (its iterator age): mostly nothing, sometimes seconds."""
        if self.roll(self.rates.stream_lag):
            self.count("stream reader behind")
            return self.rng.uniform(1.0, 10.0)
        return 0.0

    def down(self, service: str) -> bool:
        if self.outage is None:
            return False
        what, until = self.outage
        if self.clock.now() >= until:
            self.outage = None
            return False
        return what == service

    def roll(self, rate: float) -> bool:
        return rate > 0 and self.rng.random() < rate

    def count(self, what: str) -> None:
        self.counts[what] += 1
        self.note(what)

    def note(self, what: str) -> None:
        self._trace.append((self.clock.now(), what))

    @property
    def trace(self) -> list[str]:
        """What happened, a line each: seconds since the world began, and what."""
        return [f"{at - self.start:9.1f}  {what}" for at, what in self._trace]

    def maybe_crash(self, where: str, scale: float = 1.0) -> None:
        if self.roll(self.rates.crash * scale):
            self.count("worker crash")
            self.note(f"  (crashed {where})")
            raise Crash(where)

    # --- queues ------------------------------------------------------------------------------------------

    def message(self, body: str) -> JobMessage:
        """A queue body read as the consumer reads it (once per body: the pipeline never changes one)."""
        message = self._messages.get(body)
        if message is None:
            message = self._messages[body] = JobMessage.model_validate_json(body)
        return message

    def enqueue(self, queue: Queue, body: str, delay: float, jitter: float, receives: int = 0) -> None:
        message = self.message(body)
        if not message.early:  # a look back for a write not visible yet waits on the table, not the job
            self.sent.append((message.job_id, self.clock.now(), self.clock.now() + delay, message.ticket))
        self.at(
            delay + jitter,
            lambda: self._deliver(queue, body, receives + 1),
            "delivery",
            ticket=message.ticket,
        )

    def _deliver(self, queue: Queue, body: str, receives: int) -> None:
        message = self.message(body)
        self.note(f"deliver {message.job_id[:6]} {message.step.value} #{receives} {message.ticket[:6]}")
        self.live[message.ticket] += 1  # being handled
        try:
            with self.acting(f"worker {message.step.value}", job_id=message.job_id):
                self.pipeline.process(queue, message)
        except (Crash, Exception) as failure:  # what Lambda does with a failed record
            self.note(f"  step failed: {type(failure).__name__}: {failure}")
            self._redeliver(queue, body, receives)
            return
        finally:
            self.live[message.ticket] -= 1
        hop = message.not_before is not None and message.not_before > self.clock.now() + 1.0
        if self.roll(self.rates.sqs_redeliver * (HOP_FAULTS if hop else 1.0)):
            self.count("sqs redelivery after the visibility timeout")
            self._redeliver(queue, body, receives)

    def _redeliver(self, queue: Queue, body: str, receives: int) -> None:
        if receives >= MAX_RECEIVES:
            self.count("message to the DLQ")
            self.dead_letters.append((queue, body, receives))
            return
        ticket = self.message(body).ticket
        self.at(VISIBILITY_TIMEOUT, lambda: self._deliver(queue, body, receives + 1), "delivery", ticket)

    def _sweep(self) -> None:
        """DeadLettersFunction: the real sweep over the DLQs (letters with their receive counts)."""
        if not self.dead_letters:  # it would receive nothing
            self.at(DEAD_LETTERS_EVERY, self._sweep, "sweep")
            return
        self.counts["dead-letter sweep with letters"] += 1
        try:
            with self.acting("dead letters"):
                sweep_dead_letters(self.pipeline, _DeadLetters(self))  # type: ignore[arg-type]
        except (Crash, Exception) as failure:
            self.note(f"dead-letter sweep failed: {type(failure).__name__}")
        self.at(DEAD_LETTERS_EVERY, self._sweep, "sweep")

    def _watchdog(self) -> None:
        if not self._overdue():  # nothing it could find: its query would come back empty
            self.at(WATCHDOG_EVERY, self._watchdog, "watchdog")
            return
        try:
            with self.acting("watchdog"):
                found = rescue_overdue(self.store, self.transitions, self.worker_clock)
            if found.found:
                self.count("watchdog rescue")
        except (Crash, Exception) as failure:
            self.note(f"watchdog failed: {failure}")
        self.at(WATCHDOG_EVERY, self._watchdog, "watchdog")

    def _overdue(self) -> bool:
        """Some job not ended is overdue as the watchdog reads the due index (its clock skewed)."""
        before = self.clock.now() + self.rates.skew - OVERDUE_AFTER
        items = self.db.tables.get(JOBS_TABLE, {})
        return any(
            float(items[pk].get("dueAt", {}).get("N", "inf")) < before
            for pk in self.running_jobs
            if pk in items
        )

    def _expire(self) -> None:
        """DynamoDB's TTL: items past their `expiresAt` are removed, some time after (the world's lag)."""
        removed = self.db.expire(JOBS_TABLE, self.clock.now() - self.ttl_lag)
        if removed:
            self.counts["items removed by TTL"] += removed
            self.note(f"TTL removed {removed} item(s)")
        if self._busy():
            self.at(TTL_EVERY, self._expire, "ttl")

    # --- ServiceNow's side -----------------------------------------------------------------------------

    def plan_record(self, record: Record, at: float, sends: int = 1) -> None:
        self.records.append(record)
        self.plan_send(record, 0, at)
        for _ in range(sends - 1):  # ServiceNow sends it again (a duplicate), maybe at once
            self.plan_send(record, 0, self.rng.choice([at, at + self.rng.uniform(0.0, 60.0)]))

    def plan_send(self, record: Record, body: int, at: float, tries: int = 0) -> None:
        self.requests_open += 1
        self.at(at, lambda: self._request(record, body, tries), "request")

    def _request(self, record: Record, index: int, tries: int) -> None:
        self.requests_open -= 1
        body = record.bodies[index]
        request = PublishRequest.model_validate(body.wire)
        attempt = Attempt(len(self.attempts), record.key, body.name, request.schedule_id, self.writes)
        self.attempts.append(attempt)
        answer = Answer(self.clock.now(), record.key, body.name, 0, schedule_id=request.schedule_id)
        answer.attempt, answer.began = attempt.number, self.clock.now()
        try:
            with self.acting(f"request {record.key}/{body.name}", request=attempt.number):
                accepted = self.intake.accept(request, record.key)
            answer.status, answer.publish_id = 202, accepted.body["publishId"]
            answer.answered_schedule = accepted.body.get("scheduleId")
        except Crash:
            answer.status, answer.code = 502, "crash"
        except IdempotencyKeyReused:
            answer.status, answer.code = 422, "IDEMPOTENCY_KEY_REUSED"
        except JoinConflict as conflict:
            answer.status, answer.code = 409, "JOIN_CONFLICT"
            answer.publish_id_cited = conflict.job.job_id
            answer.answered_schedule = conflict.job.schedule_id
        except RequestInProgress:  # this key, or this schedule, is being answered: retry shortly
            answer.status, answer.code = 409, "REQUEST_IN_PROGRESS"
        except WfmPublishError as failed:  # storage or the queue: 503, retry with the same key
            answer.status, answer.code = 503, type(failed).__name__
        answer.at = self.clock.now()
        if request.callback is not None:
            answer.callback = (request.callback.table, request.callback.sys_id)
        self.answers.append(answer)
        self.note(f"request {record.key}/{body.name} -> {answer.status} {answer.publish_id or answer.code}")
        if 400 <= answer.status < 500:
            self._refused_wrote_nothing(attempt, answer)
        lost = answer.status == 202 and self.roll(ANSWER_LOST)
        if lost:
            self.count("api answer lost")
        retry = lost or answer.status in {502, 503} or answer.code == "REQUEST_IN_PROGRESS"
        if retry and tries < SERVICENOW_RETRIES:
            # A person may edit the record before it goes again: the same key, another body.
            edited = (
                answer.status != 202 and index + 1 < len(record.bodies) and self.roll(record.edit_on_failure)
            )
            if edited:
                self.count("record edited, sent again under its key")
            self.plan_send(record, index + 1 if edited else index, self.rng.uniform(2.0, 15.0), tries + 1)

    def _refused_wrote_nothing(self, attempt: Attempt, answer: Answer) -> None:
        """A refused request writes nothing: every item it wrote is as it was before, unless another
        actor wrote it since."""
        for pk, before in attempt.first_old.items():
            if any(a != attempt.number for _, a in self.pk_writes[pk] if _ >= attempt.began):
                continue
            now = self.db.tables.get(JOBS_TABLE, {}).get(pk)
            if now is None and (pk == f"idem#{attempt.key}" or _names(before, job_id_for(attempt.key))):
                continue  # its own key's lock or claim, released (a leftover of an earlier try)
            if now != before:
                self.refusals.append(
                    f"{answer.key}/{answer.body} answered {answer.status} {answer.code} but left {pk} "
                    f"{'written' if before is None else 'changed'}: {_brief(now)}"
                )

    def cancel_one(self, tries: int = 0, publish_id: str | None = None) -> None:
        """ServiceNow cancels one of the publishes it was answered (any, at random); a lost answer is
        asked again a little later."""
        if publish_id is None:
            ids = [a.publish_id for a in self.answers if a.publish_id]
            if not ids:
                return
            publish_id = self.rng.choice(ids)
        self.counts["cancel"] += 1
        try:
            with self.acting("cancel"):
                done = cancel(self.store, self.transitions, publish_id)
            self.note(f"cancel {publish_id[:6]} -> CANCELLED (already: {done.already})")
        except (CancelRefused, CancelContended, PublishNotFound) as refused:
            self.note(f"cancel {publish_id[:6]} -> {type(refused).__name__}")
        except (Crash, Exception) as failure:
            self.note(f"cancel {publish_id[:6]} failed: {type(failure).__name__}")
            if tries < 3:
                self.at(self.rng.uniform(2.0, 30.0), lambda: self.cancel_one(tries + 1, publish_id), "cancel")

    def operator(self) -> None:
        """An operator's commands on the running system: `ops notify` on an ended job (racing the stream
        notifier), `ops cancel`, `ops dlq redrive` on a dead letter."""
        what = self.rng.choice(["notify", "notify", "cancel", "redrive", "remove"])
        if what == "redrive" and self.dead_letters:
            queue, body, receives = self.dead_letters.pop(0)
            self.counts["ops dlq redrive"] += 1
            try:
                with self.acting("ops dlq redrive"):
                    redrive_letter(
                        self.store, self.transitions, JobMessage.model_validate_json(body), receives
                    )
            except (Crash, Exception) as failure:
                self.note(f"ops dlq redrive failed: {type(failure).__name__}")
                self.dead_letters.append((queue, body, receives))
            return
        ids = sorted({a.publish_id for a in self.answers if a.publish_id})
        if not ids:
            return
        publish_id = self.rng.choice(ids)
        if what == "cancel":
            self.cancel_one(publish_id=publish_id)
        elif what == "remove":
            self.remove_job(publish_id)
        else:
            self.ops_notify(publish_id)

    def remove_job(self, publish_id: str) -> None:
        """A person deletes a job item that has not ended (the console, a script): the stream's REMOVE,
        which the notifier must tell its records about (FAILED), once."""
        item = self.db.tables.get(JOBS_TABLE, {}).get(f"job#{publish_id}")
        if item is None or item["status"]["S"] in _TERMINAL:
            return
        self.count("job removed by a person")
        self.removed[publish_id] = job_from_item(item)
        self.db.delete_item(TableName=JOBS_TABLE, Key={"pk": {"S": f"job#{publish_id}"}})

    def ops_notify(self, publish_id: str, tries: int = 0) -> None:
        """`wfm-publish ops notify`: the notifier on the job as the table holds it (ended jobs only).
        `tries`: the runbook's, after the NotifierDLQ alarm: the person tries again until it works."""
        self.counts["ops notify"] += 1
        try:
            with self.acting("ops notify"):
                job = self.store.get_job(publish_id)
                if job is not None and job.status.terminal:
                    self.notifier.notify(job)
                    self.note(f"ops notify {publish_id[:6]}")
        except (Crash, Exception) as failure:
            self.note(f"ops notify {publish_id[:6]} failed: {type(failure).__name__}")
            if 0 < tries < 8:
                again = self.rng.uniform(600.0, 1800.0)
                self.at(again, lambda: self.ops_notify(publish_id, tries + 1), "operator")

    def on_done(self, mapping: str, record: dict[str, Any]) -> None:
        """A stream record its mapping is done with: for the notifier, when a job's first PUBLISHING was
        handled (a record told its end before then rightly hears no PUBLISHING after)."""
        image = record["dynamodb"].get("NewImage") or {}
        if mapping == "notifier" and image.get("status", {}).get("S") == JobStatus.PUBLISHING.value:
            job_id = str(record["dynamodb"]["Keys"]["pk"]["S"]).removeprefix("job#")
            self.progress_handled.setdefault(job_id, self.clock.now())

    def on_discarded(self, mapping: str, records: list[dict[str, Any]]) -> None:
        """A stream batch went to its OnFailure queue: the alarm fires; for the notifier's, an operator
        runs `ops notify` on each job a while later (docs/runbook.md, NotifierDLQAlarm)."""
        for record in records:
            image = record["dynamodb"].get("NewImage") or record["dynamodb"].get("OldImage") or {}
            job_id = str(record["dynamodb"]["Keys"]["pk"]["S"]).removeprefix("job#")
            status = image.get("status", {}).get("S")
            if mapping == "announcer":
                self.announce_discarded.add((job_id, int(image.get("version", {}).get("N", "0"))))
            elif status == JobStatus.PUBLISHING.value:
                self.discarded_progress.add(job_id)
            else:
                self.at(
                    self.rng.uniform(600.0, 1800.0), functools.partial(self.ops_notify, job_id, 1), "operator"
                )

    # --- the weekly run (EventBridge Scheduler -> the fan-out -> WeeklyQueue -> WeeklyUnitFunction) ---------

    def weekly_run(self, attempt: int = 1) -> None:
        """The scheduled event, delivered to the fan-out (the scheduler retries a failure, and may
        deliver the same event twice)."""
        event = {"source": "weekly", "businessUnitIds": "all", "weeksAhead": 1, "scheduledTime": WEEKLY_DUE}
        self.counts["weekly run fan-out"] += 1
        try:
            with self.acting("weekly fan-out"):
                fan_out(self.weekly, event)
            self.note("weekly run fanned out")
        except (Crash, Exception) as failure:
            self.note(f"weekly fan-out failed: {type(failure).__name__}")
            if attempt < 5:
                self.at(60.0 * attempt, lambda: self.weekly_run(attempt + 1), "weekly")
            else:
                self.weekly_lost.append("the fan-out")

    def weekly_message(self, body: str, delay: float, receives: int = 0) -> None:
        self.at(delay + self.rng.uniform(0.0, 0.5), lambda: self._weekly_unit(body, receives + 1), "weekly")

    def _weekly_unit(self, body: str, receives: int) -> None:
        """WeeklyUnitFunction on a batch of one; a failed record comes back after the visibility timeout,
        and after 5 receives goes to WeeklyDLQ."""
        self.counts["weekly unit message handled"] += 1
        try:
            with self.acting("weekly unit"):
                failed = take_units(self.weekly, [("m", body)])["batchItemFailures"]
        except Crash:
            self.note("weekly unit died")
            failed = [{"itemIdentifier": "m"}]
        except Exception as failure:  # take_units answers each record: a raise fails the whole batch
            self.note(f"weekly unit raised {type(failure).__name__}: {failure}")
            self.weekly_raised.append(f"{type(failure).__name__}: {failure}")
            failed = [{"itemIdentifier": "m"}]
        if failed:
            if receives >= MAX_RECEIVES:
                self.count("weekly message to its DLQ")
                self.weekly_lost.append(body)
            else:
                self.at(VISIBILITY_TIMEOUT, lambda: self._weekly_unit(body, receives + 1), "weekly")

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
        try:
            with self.acting("genesys events"):
                now = self.worker_clock.now()
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

    def update_posted(self, operation_id: Any) -> None:
        """Genesys took an update (a 200 with its operation id): whose is it?"""
        actor = self.actors.current
        job_id = actor.job_id if actor is not None else None
        if job_id is None:
            self.harness_failures.append(f"update {operation_id} posted by {actor}, not a job's worker")
        self.updates[str(operation_id)] = job_id

    def applied_updates(self) -> dict[str, list[float]]:
        """The updates of each job that Genesys applied (or will: still processing, not failing), and
        when."""
        org = self.simulator.org
        out: defaultdict[str, list[float]] = defaultdict(list)
        for operation_id, job_id in self.updates.items():
            op = org.operations.get(operation_id)
            if op is None or job_id is None:
                continue
            if op.status == "Complete" or (op.status == "Processing" and not op.fail and not op.cancel):
                out[job_id].append(org.t0 + op.done_at)
        return out

    def published_since(self, schedule_id: str) -> float | None:
        """When an update (anyone's) first left the schedule published, if one did."""
        org = self.simulator.org
        done = [
            org.t0 + op.done_at
            for op in org.operations.values()
            if op.schedule_id == schedule_id
            and op.status == "Complete"
            and op.payload.get("published") is True
        ]
        return min(done) if done else None

    # --- the table's writes: the stream, and what the invariants need --------------------------------------

    def _on_write(self, table: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        image = new if new is not None else old
        assert image is not None
        pk = str(image["pk"]["S"])
        self.writes += 1
        actor = self.actors.current
        attempt = actor.request if actor is not None else None
        self.pk_writes[pk].append((self.writes, attempt))
        if attempt is not None:
            self.attempts[attempt].first_old.setdefault(pk, old)
            self._note_effect(pk, old, new, self.attempts[attempt])
        if not pk.startswith("job#"):
            return
        self.stream.written(old, new)
        if new is None or new["status"]["S"] in _TERMINAL:
            self.running_jobs.discard(pk)
        else:
            self.running_jobs.add(pk)
        if new is None:
            return
        job_id = pk.removeprefix("job#")
        status = new["status"]["S"]
        self.tickets.add(new["ticket"]["S"])
        was = old["status"]["S"] if old is not None else None
        if status != was:
            self.status_changes.append((job_id, int(new["version"]["N"]), status))
        if old is None:
            self._one_in_flight(job_id, new)
        if self.events:
            self._note_job_write(job_id, new)
        if status == JobStatus.PUBLISHING.value and job_id not in self.first_publishing:
            self.publishing_since[job_id] = self.clock.now()
            job = job_from_item(new)
            self.first_publishing[job_id] = [
                (c.table, c.sys_id)
                for c in [job.request.callback, *(j.callback for j in job.joiners)]
                if c and c.progress
            ]
        if status in _TERMINAL and was not in _TERMINAL:
            self.ended_at[job_id] = self.clock.now()
            self.note(f"job {job_id[:6]} ended {status}")

    def _one_in_flight(self, job_id: str, item: dict[str, Any]) -> None:
        """A new job: no other publish of its schedule may be in flight (dry runs aside)."""
        job = job_from_item(item)
        if job.request.dry_run:
            return
        items = self.db.tables.get(JOBS_TABLE, {})
        for pk in self.running_jobs:
            other = self._jobs_cache.get(pk)
            if pk == f"job#{job_id}" or pk not in items:
                continue
            if other is None or other[0] is not items[pk]:
                other = (items[pk], job_from_item(items[pk]))
                self._jobs_cache[pk] = other
            if other[1].schedule_id == job.schedule_id and not other[1].request.dry_run:
                running = other[1].job_id
                self.overlaps.append(
                    f"job {job_id} began publishing {job.schedule_id} while {running} was in flight"
                )

    def _note_effect(
        self, pk: str, old: dict[str, Any] | None, new: dict[str, Any] | None, attempt: Attempt
    ) -> None:
        """What a request started or joined under its key, and with which body."""
        if new is None:
            return
        if pk.startswith("joined#"):
            self.effects[pk.removeprefix("joined#")].add(attempt.body)
        elif pk.startswith("job#") and old is None:
            self.effects[attempt.key].add(attempt.body)
        elif pk.startswith("job#"):
            before = set((old or {}).get("joiners", {}).get("M", {}))
            after = set(new.get("joiners", {}).get("M", {}))
            for key in after - before:
                self.effects[key].add(attempt.body)

    def _note_job_write(self, job_id: str, item: dict[str, Any]) -> None:
        self.job_writes[job_id].append(self.clock.now())
        if item["status"]["S"] != JobStatus.WAITING.value:
            return
        job = job_from_item(item)
        last = job.timeline[-1]
        if last.event == NOT_SETTLED and job.checked_at is not None and job.due_at:
            # Its next check: the wait it wrote (a polling job's due time is its quiet looks' bound).
            wait = last.detail.get("nextCheckInSeconds")
            due = self.clock.now() + float(wait) if isinstance(wait, int | float) else job.due_at
            self.telephony_waits.append((job_id, self.clock.now(), job.checked_at, due))

    # --- what the world looks like ---------------------------------------------------------------------

    def _job_items(self) -> dict[str, dict[str, Any]]:
        return {pk: item for pk, item in self.db.tables.get(JOBS_TABLE, {}).items() if pk.startswith("job#")}

    def jobs(self) -> dict[str, Job]:
        out = {}
        for pk, item in self._job_items().items():
            cached = self._jobs_cache.get(pk)
            if cached is None or cached[0] is not item:
                cached = (item, job_from_item(item))
                self._jobs_cache[pk] = cached
            out[pk.removeprefix("job#")] = cached[1]
        return out

    def _sample(self) -> None:
        """Every minute: which jobs have nothing in flight that will move them, since when."""
        now = self.clock.now()
        dead = {self.message(body).ticket for _, body, _ in self.dead_letters}
        items = self.db.tables.get(JOBS_TABLE, {})
        for job_id in [j for j in self.orphan_since if f"job#{j}" not in self.running_jobs]:
            del self.orphan_since[job_id]
        for pk in self.running_jobs:
            item = items[pk]
            job_id = pk.removeprefix("job#")
            ticket = item["ticket"]["S"]
            if self.live[ticket] > 0 or ticket in dead:
                self.orphan_since.pop(job_id, None)
                continue
            due = float(item["dueAt"]["N"]) if "dueAt" in item else now
            since = self.orphan_since.setdefault(job_id, max(now, due))
            self.longest_orphan[job_id] = max(self.longest_orphan.get(job_id, 0.0), now - since)
        if self._busy():
            self.at(60.0, self._sample, "sample")


class _DeadLetters:
    """The validation and conflict DLQs as `consumer.sweep_dead_letters` reads them (SQS's receive and
    delete): each letter with its receive count; an SQS outage fails the sweep."""

    def __init__(self, world: World) -> None:
        self.world = world

    def sweep(self, settle: Callable[[Queue, str, int], bool], *, most: int = 100) -> dict[str, int]:
        w = self.world
        counts = {"settled": 0, "kept": 0}
        for letter in list(w.dead_letters)[:most]:
            w.boundary("sqs")
            if w.down("sqs"):
                raise QueueError("could not read the dead-letter queues: injected outage")
            queue, body, receives = letter
            if settle(queue, body, receives):
                w.boundary("sqs")
                if letter in w.dead_letters:
                    w.dead_letters.remove(letter)
                counts["settled"] += 1
            else:
                counts["kept"] += 1
        return counts


def _names(item: dict[str, Any] | None, job_id: str) -> bool:
    return item is not None and item.get("jobId", {}).get("S") == job_id


def _brief(item: dict[str, Any] | None) -> str:
    if item is None:
        return "(removed)"
    return ", ".join(f"{k}={next(iter(v.values()))!s:.40}" for k, v in item.items() if k not in {"doc", "pk"})
