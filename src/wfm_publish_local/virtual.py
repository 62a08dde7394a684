"""The pipeline in virtual time: the same core code, with hours of waiting taking no time.

Used by the benchmark and by tests that pin the pipeline's decisions step by step. The store keeps
DynamoDB's conditional semantics in memory; the queues keep SQS's delays, redelivery after the
visibility timeout and the DLQ at maxReceiveCount; Genesys is the simulator, reached through the
real client over an in-process transport.
"""

from __future__ import annotations

import dataclasses
import functools
import heapq
import itertools
import random
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from wfm_publish import wake
from wfm_publish.clock import VirtualClock
from wfm_publish.genesys import Credentials, GenesysClient
from wfm_publish.intake import Intake
from wfm_publish.models import Job, JobMessage
from wfm_publish.pipeline import NoOutcomes, Pipeline
from wfm_publish.queues import Queue, QueueSender
from wfm_publish.scope import TelephonyOptions
from wfm_publish.store import DynamoJobStore
from wfm_publish.store_items import job_from_item, job_item
from wfm_publish.waiting import Timing
from wfm_publish_local.memorydb import Index, MemoryDynamoDB
from wfm_publish_local.simulator.model import GenesysSimulator
from wfm_publish_local.simulator.notifications import DeliveredQueryBook
from wfm_publish_local.simulator.transport import InProcessAdapter

VIRTUAL_BASE_URL = "http://genesys.virtual"


JOBS_TABLE = "jobs"
TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"


@functools.cache
def _indexes() -> list[Index]:
    """The jobs table's indexes as template.yaml declares them (the one source of truth)."""
    from wfm_publish_local.template import Template

    out = []
    for index in Template.load(TEMPLATE).table.global_indexes:
        keys = {k["KeyType"]: k["AttributeName"] for k in index["KeySchema"]}
        out.append(Index(index["IndexName"], keys["HASH"], keys.get("RANGE")))
    return out


class MemoryJobStore(DynamoJobStore):
    """The one store (wfm_publish.store), over DynamoDB in memory: the same conditional writes."""

    def __init__(self, db: MemoryDynamoDB | None = None) -> None:
        self.db = db or MemoryDynamoDB({JOBS_TABLE: _indexes()})
        super().__init__(self.db, JOBS_TABLE)  # type: ignore[arg-type]
        self.observation_reads = 0
        self.observation_writes = 0

    @property
    def items(self) -> dict[str, dict[str, Any]]:
        return self.db.tables.setdefault(JOBS_TABLE, {})

    @property
    def jobs(self) -> _JobsView:
        """job id -> job, read and written as the table holds them (tests reach in through this)."""
        return _JobsView(self)

    @property
    def active(self) -> dict[str, str]:
        """schedule id -> the job id holding its claim."""
        return {
            pk.removeprefix("schedule#"): str(item["jobId"]["S"])
            for pk, item in self.items.items()
            if pk.startswith("schedule#")
        }

    @property
    def writes(self) -> int:
        return self.db.writes

    def get_observation(self, key: str) -> tuple[float, Any] | None:
        self.observation_reads += 1
        return super().get_observation(key)

    def put_observation(self, key: str, observed_at: float, data: Any, ttl_seconds: float) -> bool:
        stored = super().put_observation(key, observed_at, data, ttl_seconds)
        self.observation_writes += stored
        return stored


class _JobsView(MutableMapping[str, Job]):
    def __init__(self, store: MemoryJobStore) -> None:
        self._store = store

    def _pks(self) -> list[str]:
        return [pk for pk in self._store.items if pk.startswith("job#")]

    def __getitem__(self, job_id: str) -> Job:
        item = self._store.items.get(f"job#{job_id}")
        if item is None:
            raise KeyError(job_id)
        return job_from_item(item)

    def __setitem__(self, job_id: str, job: Job) -> None:
        self._store.items[f"job#{job_id}"] = job_item(job, "set-by-hand", self._store._retention)

    def __delitem__(self, job_id: str) -> None:
        del self._store.items[f"job#{job_id}"]

    def __iter__(self) -> Iterator[str]:
        return iter([pk.removeprefix("job#") for pk in self._pks()])

    def __len__(self) -> int:
        return len(self._pks())


@dataclass(order=True)
class _Delivery:
    due: float
    order: int
    queue: Queue = field(compare=False)
    body: str = field(compare=False)
    receives: int = field(compare=False, default=0)


class VirtualQueues:
    """SQS in virtual time: delays, redelivery after the visibility timeout, a DLQ at maxReceiveCount."""

    def __init__(
        self, clock: VirtualClock, *, visibility_timeout: float = 180.0, max_receive_count: int = 5
    ) -> None:
        self._clock = clock
        self._heap: list[_Delivery] = []
        self._order = itertools.count()
        self.visibility_timeout = visibility_timeout
        self.max_receive_count = max_receive_count
        self.sent: dict[Queue, int] = {Queue.VALIDATION: 0, Queue.CONFLICT: 0}
        self.dead_letters: list[tuple[Queue, str]] = []

    def send(self, queue: Queue, body: str, delay_seconds: int) -> None:
        self.sent[queue] += 1
        heapq.heappush(
            self._heap, _Delivery(self._clock.now() + delay_seconds, next(self._order), queue, body)
        )

    def next(self) -> _Delivery | None:
        return heapq.heappop(self._heap) if self._heap else None

    def next_due(self) -> float | None:
        return self._heap[0].due if self._heap else None

    def redeliver(self, delivery: _Delivery) -> None:
        delivery.receives += 1
        if delivery.receives >= self.max_receive_count:
            self.dead_letters.append((delivery.queue, delivery.body))
            return
        delivery.due = self._clock.now() + self.visibility_timeout
        heapq.heappush(self._heap, delivery)

    @property
    def messages_sent(self) -> int:
        return sum(self.sent.values())


def virtual_client(
    simulator: GenesysSimulator, clock: VirtualClock, queries: DeliveredQueryBook | None = None
) -> GenesysClient:
    """The real GenesysClient, reaching the simulator in-process on the virtual clock."""
    session = requests.Session()
    session.trust_env = False  # no proxies or .netrc to look up for an in-process transport
    session.mount(VIRTUAL_BASE_URL, InProcessAdapter(simulator))
    credentials = simulator.scenario.credentials
    # The org's notifications reach the client's pending queries as the genesys_events function would.
    if queries is None:
        queries = DeliveredQueryBook(simulator.notifier, simulator.pump, clock.now)
    return GenesysClient(
        VIRTUAL_BASE_URL,
        lambda: Credentials(credentials.client_id, credentials.client_secret),
        session=session,
        monotonic=clock.now,
        queries=queries,
        wall_clock=clock.now,
    )


class VirtualRun:
    """Intake, pipeline, store, queues and the simulator on one virtual clock."""

    def __init__(
        self,
        simulator: GenesysSimulator,
        clock: VirtualClock,
        timing: Timing | None = None,
        seed: int = 0,
        deadline_seconds: float = 8 * 3600.0,
        store: DynamoJobStore | None = None,
        events: bool = False,
        event_loss: float = 0.0,
        telephony: dict[str, Any] | None = None,
    ) -> None:
        """`events`: the org's notifications reach the pipeline (the EventBridge integration and the
        genesys_events function): update outcomes are read from them, and telephony events wake the
        jobs waiting on them (`timing.events` is then set). Without, only reads tell. `event_loss`:
        the share of telephony events that never arrive (drawn from the run's seed). `telephony`:
        TelephonyOptions fields (the functions' settings), e.g. `{"edge_call_capacity": 10}`."""
        if events:
            timing = dataclasses.replace(timing or Timing(), events=True)
        self.events = events
        self.event_loss = event_loss
        self._loss_rng = random.Random(seed + 7919)
        self._inbox: list[dict[str, Any]] = []
        self.events_delivered = 0
        self.events_lost = 0
        self.clock = clock
        self.simulator = simulator
        self.store = store or MemoryJobStore()
        self.queues = VirtualQueues(clock)
        sender = QueueSender(self.queues, clock)
        self.notifications = DeliveredQueryBook(simulator.notifier, simulator.pump, clock.now)
        self.genesys = virtual_client(simulator, clock, self.notifications)
        self.intake = Intake(self.store, sender, clock, deadline_seconds=deadline_seconds)
        self.pipeline = Pipeline(
            self.store,
            sender,
            self.genesys,
            clock,
            timing,
            random.Random(seed),
            options=TelephonyOptions(**(telephony or {})),
            outcomes=self.notifications if events else NoOutcomes(),
        )
        self.transitions = self.pipeline.transitions
        if events:
            # Held until the step that set them off has finished, as the events function runs apart.
            simulator.notifier.subscribe(self._inbox.append)

    def deliver_events(self) -> None:
        """The genesys_events function, for every telephony event sent so far (less those lost)."""
        while self._inbox:
            event = self._inbox.pop(0)
            if wake.telephony_entity(event) is None:
                continue  # outcomes and query results reach `notifications` directly
            if self._loss_rng.random() < self.event_loss:
                self.events_lost += 1
                continue
            self.events_delivered += 1
            wake.on_telephony(event, self.store, self.transitions, self.clock.now())

    def _events_until(self, moment: float) -> None:
        """Let the org's time-driven changes happen up to `moment`, each event delivered when sent."""
        while self.events and (due := self.simulator.next_due()) is not None:
            queued = self.queues.next_due()  # a message a wake just sent comes first
            if due > (moment if queued is None else min(moment, queued)):
                return
            self.clock.advance_to(max(self.clock.now(), due))
            self.simulator.pump()
            self.deliver_events()

    def run(self, job_id: str, *, limit: float = 24 * 3600.0) -> Job:
        """Deliver messages in time order until the job ends (or `limit` virtual seconds pass)."""
        stop_at = self.clock.now() + limit
        while True:
            self._events_until(stop_at)
            if (delivery := self.queues.next()) is None:
                break
            if delivery.due > stop_at:
                break
            self.clock.advance_to(max(self.clock.now(), delivery.due))
            try:
                self.pipeline.process(delivery.queue, JobMessage.model_validate_json(delivery.body))
            except Exception:  # what Lambda does with a failed record: redeliver it later
                self.queues.redeliver(delivery)
            self.deliver_events()
            job = self.job(job_id)
            if job.status.terminal:
                return job
        return self.job(job_id)

    def step(self) -> bool:
        """Deliver the next message, as the queue would, letting its failure through (a test wants to
        see it); False when none is left."""
        delivery = self.queues.next()
        if delivery is None:
            return False
        self.clock.advance_to(delivery.due)
        self.pipeline.process(delivery.queue, JobMessage.model_validate_json(delivery.body))
        return True

    def job(self, job_id: str) -> Job:
        job = self.store.get_job(job_id)
        if job is None:
            raise KeyError(job_id)
        return job
