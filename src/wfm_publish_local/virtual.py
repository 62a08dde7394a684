"""The pipeline in virtual time: the same core code, with hours of waiting taking no time.

Used by the benchmark and by tests that pin the pipeline's decisions step by step. The store keeps
DynamoDB's conditional semantics in memory; the queues keep SQS's delays, redelivery after the
visibility timeout and the DLQ at maxReceiveCount; Genesys is the simulator, reached through the
real client over an in-process transport.
"""

from __future__ import annotations

import copy
import heapq
import itertools
import json
import random
from dataclasses import dataclass, field
from typing import Any

import requests

from wfm_publish.clock import VirtualClock
from wfm_publish.errors import JobAlreadyExists, StaleJob
from wfm_publish.genesys import Credentials, GenesysClient
from wfm_publish.intake import Intake
from wfm_publish.models import Job, JobMessage
from wfm_publish.pipeline import Pipeline, Timing
from wfm_publish.queues import Queue, QueueSender
from wfm_publish.store import IdempotencyRecord, IdempotencyStatus, IdempotencyTaken
from wfm_publish_local.simulator.model import GenesysSimulator
from wfm_publish_local.simulator.transport import InProcessAdapter

VIRTUAL_BASE_URL = "http://genesys.virtual"


class MemoryJobStore:
    """The JobStore contract in memory: every write conditional, as in DynamoDB."""

    def __init__(self) -> None:
        self.jobs: dict[str, Job] = {}
        self.active: dict[str, str] = {}
        self.idempotency: dict[str, IdempotencyRecord] = {}
        self.writes = 0
        self.observations: dict[str, tuple[float, str]] = {}  # key -> (observedAt, JSON), as in the table
        self.observation_reads = 0
        self.observation_writes = 0

    def create_job(self, job: Job) -> None:
        if job.job_id in self.jobs:
            raise JobAlreadyExists(job.job_id)
        self.writes += 1
        self.jobs[job.job_id] = _stored(job)

    def get_job(self, job_id: str) -> Job | None:
        job = self.jobs.get(job_id)
        return _stored(job) if job else None

    def save_job(self, job: Job) -> Job:
        current = self.jobs.get(job.job_id)
        if current is None or current.version != job.version:
            raise StaleJob(job.job_id, _stored(current) if current else None)
        self.writes += 1
        moved = _stored(job.model_copy(update={"version": job.version + 1}))
        self.jobs[job.job_id] = moved
        return _stored(moved)

    def claim_schedule(self, schedule_id: str, job_id: str, now: float) -> str | None:
        holder = self.active.get(schedule_id)
        if holder is not None and holder in self.jobs and not self.jobs[holder].status.terminal:
            return holder
        self.active[schedule_id] = job_id
        return None

    def release_schedule(self, schedule_id: str, job_id: str) -> None:
        if self.active.get(schedule_id) == job_id:
            del self.active[schedule_id]

    def lock_idempotency(self, key: str, body_hash: str, now: float, lock_seconds: float) -> None:
        record = self.idempotency.get(key)
        if record is not None and not (
            record.status is IdempotencyStatus.IN_PROGRESS and record.locked_until < now
        ):
            raise IdempotencyTaken(record)
        self.idempotency[key] = IdempotencyRecord(
            key, IdempotencyStatus.IN_PROGRESS, body_hash, now + lock_seconds
        )

    def complete_idempotency(self, key: str, body_hash: str, response: dict[str, Any], now: float) -> None:
        self.idempotency[key] = IdempotencyRecord(key, IdempotencyStatus.COMPLETED, body_hash, 0.0, response)

    def release_idempotency(self, key: str) -> None:
        self.idempotency.pop(key, None)

    def get_observation(self, key: str) -> tuple[float, Any] | None:
        self.observation_reads += 1
        held = self.observations.get(key)
        return (held[0], json.loads(held[1])) if held else None

    def put_observation(self, key: str, observed_at: float, data: Any, ttl_seconds: float) -> bool:
        held = self.observations.get(key)
        if held is not None and held[0] >= observed_at:
            return False  # a newer observation is already there
        self.observations[key] = (observed_at, json.dumps(data))
        self.observation_writes += 1
        return True


def _stored(job: Job) -> Job:
    """A copy through the document DynamoDB stores (store.DynamoJobStore): as faithful as the table,
    and several times cheaper than a deep copy of a long timeline (the benchmark runs thousands)."""
    return Job.model_validate_json(job.model_dump_json(by_alias=True, exclude_none=True))


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


def virtual_client(simulator: GenesysSimulator, clock: VirtualClock) -> GenesysClient:
    """The real GenesysClient, reaching the simulator in-process on the virtual clock."""
    session = requests.Session()
    session.trust_env = False  # no proxies or .netrc to look up for an in-process transport
    session.mount(VIRTUAL_BASE_URL, InProcessAdapter(simulator))
    credentials = simulator.scenario.credentials
    return GenesysClient(
        VIRTUAL_BASE_URL,
        lambda: Credentials(credentials.client_id, credentials.client_secret),
        session=session,
        monotonic=clock.now,
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
        store: MemoryJobStore | None = None,  # a counting subclass (bench/meter.py) meters the table
    ) -> None:
        self.clock = clock
        self.simulator = simulator
        self.store = store or MemoryJobStore()
        self.queues = VirtualQueues(clock)
        sender = QueueSender(self.queues, clock)
        self.genesys = virtual_client(simulator, clock)
        self.intake = Intake(self.store, sender, clock, deadline_seconds=deadline_seconds)
        self.pipeline = Pipeline(self.store, sender, self.genesys, clock, timing, random.Random(seed))

    def run(self, job_id: str, *, limit: float = 24 * 3600.0) -> Job:
        """Deliver messages in time order until the job ends (or `limit` virtual seconds pass)."""
        stop_at = self.clock.now() + limit
        while (delivery := self.queues.next()) is not None:
            if delivery.due > stop_at:
                break
            self.clock.advance_to(delivery.due)
            try:
                self.pipeline.process(delivery.queue, JobMessage.model_validate_json(delivery.body))
            except Exception:  # what Lambda does with a failed record: redeliver it later
                self.queues.redeliver(delivery)
            job = self.store.jobs[job_id]
            if job.status.terminal:
                return copy.deepcopy(job)
        return copy.deepcopy(self.store.jobs[job_id])
