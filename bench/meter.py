"""What a run costs to operate, counted in virtual time: the table's read and write units (item sizes
included), SQS requests, Lambda invocations and their modelled durations, log bytes, Genesys calls.

`Engine` drives the core code as AWS would: each SQS-fed function is an event source with the
template's BatchSize and ScalingConfig.MaximumConcurrency (that many invocations at once, each busy for
its modelled duration), fed by queues with SQS's delays, visibility timeout and maxReceiveCount; Genesys
is the simulator (its rate limit included) through the real client, on one token.

Durations are a model, not a measurement (nothing here waits on a network): an invocation lasts
BASE_MS, plus RECORD_MS per record, plus the calls it made at the latencies below, typical from a
Lambda function in the same region (Genesys Cloud's public API from AWS: ~150 ms a call).
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import math
import random
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from wfm_publish.clock import VirtualClock
from wfm_publish.models import Job, JobMessage
from wfm_publish.queues import Queue
from wfm_publish.waiting import Timing
from wfm_publish.weekly import MemoryRunLog, take_units
from wfm_publish_local.memorydb import Index, MemoryDynamoDB
from wfm_publish_local.simulator import GenesysSimulator, Scenario
from wfm_publish_local.template import Template
from wfm_publish_local.virtual import JOBS_TABLE, MemoryJobStore, VirtualRun, _Delivery, _indexes

Item = dict[str, Any]

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "template.yaml"

# --- the duration model (milliseconds) ---------------------------------------------------------------
BASE_MS = 4.0  # handler, Powertools' logger, event parsing
RECORD_MS = 1.0  # per SQS record (model validation)
GENESYS_MS = 150.0  # one Genesys Cloud API call
TOKEN_MS = 250.0  # an OAuth token (client credentials), once per container
DYNAMODB_MS = 6.0
SQS_MS = 8.0
SECRETS_MS = 30.0
SERVICENOW_MS = 250.0  # the notifier's Table API PATCH
PUT_EVENTS_MS = 20.0  # the announcer's PutEvents
# Lambda's own log lines per invocation (START, END, REPORT with the X-Ray segment) and the fields
# Powertools adds to each line from the Lambda context (function name, ARN, request id, memory, cold start).
PLATFORM_LOG_BYTES = 420
CONTEXT_LOG_BYTES = 230


# --- DynamoDB item sizes and capacity units ----------------------------------------------------------


def attribute_size(name: str, value: dict[str, Any]) -> int:
    """DynamoDB's item size rules: the name's UTF-8 bytes plus the value's (a number: its significant
    digits / 2 + 1)."""
    ((kind, raw),) = value.items()
    if kind == "S":
        body = len(str(raw).encode())
    elif kind == "N":
        digits = str(raw).replace("-", "").replace(".", "").strip("0") or "0"
        body = math.ceil(len(digits) / 2) + 1
    elif kind == "BOOL":
        body = 1
    else:
        body = len(json.dumps(raw).encode())
    return len(name.encode()) + body


def item_size(item: dict[str, dict[str, Any]]) -> int:
    return sum(attribute_size(name, value) for name, value in item.items())


@dataclass
class TableMeter:
    reads: int = 0
    read_units: float = 0.0
    writes: int = 0
    write_units: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)  # write units per item kind (pk prefix)
    job_writes: Counter[str] = field(default_factory=Counter)  # job id -> writes of its item
    job_write_units: Counter[str] = field(default_factory=Counter)
    job_sizes: dict[str, int] = field(default_factory=dict)  # job id -> its item's size now
    stream_records: int = 0  # every write that changed an item lands on the table's stream
    status_changes: int = 0  # job items whose status changed: the announcer's events

    def read(self, size: int, *, consistent: bool = True) -> None:
        self.reads += 1
        units = max(1, math.ceil(size / 4096))  # 4 KB a unit; eventually consistent: half
        self.read_units += units if consistent else units / 2

    def write(self, pk: str, old: int, new: int, *, changed: bool = True, index_units: int = 0) -> int:
        # A write costs the larger of the old and new item, 1 KB a unit; a failed condition still costs.
        units = max(1, math.ceil(max(old, new) / 1024)) + index_units
        kind = pk.split("#", 1)[0]
        self.writes += 1
        self.write_units += units
        self.by_kind[kind] += units
        self.stream_records += int(changed)
        if kind == "job":
            job_id = pk.split("#", 1)[1]
            self.job_writes[job_id] += 1
            self.job_write_units[job_id] += units
            if changed:
                self.job_sizes[job_id] = new
        return units


class MeteredDynamoDB(MemoryDynamoDB):
    """DynamoDB in memory, every call metered as DynamoDB bills it: item sizes from the items held."""

    def __init__(self, indexes: dict[str, list[Index]] | None = None) -> None:
        super().__init__(indexes)
        self.meter = TableMeter()

    def get_item(self, *, TableName: str, Key: Item, **kwargs: Any) -> dict[str, Any]:
        answer = super().get_item(TableName=TableName, Key=Key, **kwargs)
        self.meter.read(item_size(answer.get("Item") or {}), consistent=bool(kwargs.get("ConsistentRead")))
        return answer

    def query(self, *, TableName: str, KeyConditionExpression: str, **kwargs: Any) -> dict[str, Any]:
        answer = super().query(TableName=TableName, KeyConditionExpression=KeyConditionExpression, **kwargs)
        # A query bills the items it read together (4 KB a unit); indexes are eventually consistent.
        self.meter.read(sum(item_size(i) for i in answer.get("Items", [])), consistent=False)
        return answer

    def put_item(self, *, TableName: str, Item: Item, **kwargs: Any) -> dict[str, Any]:
        return self._metered(
            TableName,
            Item,
            lambda: super(MeteredDynamoDB, self).put_item(TableName=TableName, Item=Item, **kwargs),
        )

    def update_item(
        self, *, TableName: str, Key: Item, UpdateExpression: str, **kwargs: Any
    ) -> dict[str, Any]:
        return self._metered(
            TableName,
            Key,
            lambda: super(MeteredDynamoDB, self).update_item(
                TableName=TableName, Key=Key, UpdateExpression=UpdateExpression, **kwargs
            ),
        )

    def delete_item(self, *, TableName: str, Key: Item, **kwargs: Any) -> dict[str, Any]:
        return self._metered(
            TableName,
            Key,
            lambda: super(MeteredDynamoDB, self).delete_item(TableName=TableName, Key=Key, **kwargs),
        )

    def _metered(self, table: str, key: Item, call: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        pk = str(key["pk"]["S"])
        old = self.tables.get(table, {}).get(pk)
        old_size = item_size(old) if old else 0
        try:
            answer = call()
        except ClientError:
            self.meter.write(pk, old_size, old_size, changed=False)
            raise
        new = self.tables.get(table, {}).get(pk)
        if pk.startswith("job#") and new is not None and (old or {}).get("status") != new.get("status"):
            self.meter.status_changes += 1
        index_units = sum(_index_writes(i, old, new) for i in self.indexes.get(table, []))
        self.meter.write(pk, old_size, item_size(new) if new else 0, index_units=index_units)
        return answer


def _index_writes(index: Index, old: Item | None, new: Item | None) -> int:
    """KEYS_ONLY index entries (~100 bytes): written when the item's index keys appear, change or go."""

    def keys(item: Item | None) -> tuple[Any, ...] | None:
        if item is None or index.hash_key not in item:
            return None
        if index.range_key is not None and index.range_key not in item:
            return None
        return (item[index.hash_key], item.get(index.range_key or ""))

    before, after = keys(old), keys(new)
    if before == after:
        return 0
    return int(before is not None) + int(after is not None)


def metered_store() -> MemoryJobStore:
    """The one store (MemoryJobStore: DynamoJobStore over DynamoDB in memory), on a metered table."""
    return MemoryJobStore(MeteredDynamoDB({JOBS_TABLE: _indexes()}))


def table_meter(store: MemoryJobStore) -> TableMeter:
    db = store.db
    assert isinstance(db, MeteredDynamoDB)
    return db.meter


# --- log bytes ---------------------------------------------------------------------------------------


class LogMeter(logging.Handler):
    """Bytes the functions would send to CloudWatch Logs: each record as Powertools formats it."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

        self.setFormatter(LambdaPowertoolsFormatter())
        self.bytes = 0
        self.lines = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.lines += 1
        self.bytes += len(self.format(record).encode()) + 1 + CONTEXT_LOG_BYTES


@contextmanager
def metered_logs() -> Iterator[LogMeter]:
    """Count INFO and above from every wfm_publish logger (the template's LogLevel), printing nothing.

    Every logger's own handlers are set aside meanwhile, and every record goes up to the meter: a
    local stack started earlier in this process leaves Powertools loggers that print to stdout."""
    meter = LogMeter()
    root = logging.getLogger()
    saved_level, saved_handlers, saved_disable = root.level, root.handlers[:], logging.root.manager.disable
    logging.disable(logging.NOTSET)
    root.handlers = [meter]
    root.setLevel(logging.INFO)
    others = [lg for lg in logging.root.manager.loggerDict.values() if isinstance(lg, logging.Logger)]
    saved = [(lg, lg.handlers[:], lg.propagate, lg.level) for lg in others]
    for lg in others:
        lg.handlers = []
        lg.propagate = True
        if "wfm_publish" in lg.name or lg.name in {"wfm-publish", "service_undefined"}:
            lg.setLevel(logging.INFO)  # the core at the template's INFO, whatever set it otherwise
        elif lg.name.startswith(("urllib3", "botocore", "boto3")):
            lg.setLevel(logging.WARNING)
    try:
        yield meter
    finally:
        for lg, handlers, propagate, level in saved:
            lg.handlers, lg.propagate = handlers, propagate
            lg.setLevel(level)
        root.handlers = saved_handlers
        root.setLevel(saved_level)
        logging.disable(saved_disable)


# --- invocations and event sources -------------------------------------------------------------------


@dataclass
class Invocation:
    function: str
    records: int
    duration_ms: float
    genesys_calls: int


@dataclass
class Source:
    """One SQS event source mapping: its queue's messages, and its function's concurrent invocations."""

    function: str
    queue: str
    batch_size: int
    concurrency: int
    slots: list[float] = field(default_factory=list)  # when each concurrent invocation is free again
    heap: list[tuple[float, int, Any]] = field(default_factory=list)

    def next_start(self) -> float | None:
        return max(min(self.slots), self.heap[0][0]) if self.heap else None


def event_sources(template: Template) -> dict[str, tuple[str, int, int]]:
    """queue logical id -> (function, BatchSize, MaximumConcurrency) from template.yaml."""
    out = {}
    for lid, spec in template.functions.items():
        events = spec.properties.get("Events") or {}
        for source in spec.sqs_events:
            props = events[source.name]["Properties"]
            concurrency = int((props.get("ScalingConfig") or {}).get("MaximumConcurrency", 1000))
            out[source.queue] = (lid, source.batch_size, concurrency)
    return out


QUEUE_IDS = {Queue.VALIDATION: "ValidationQueue", Queue.CONFLICT: "ConflictQueue"}


class WeeklyHeapQueue:
    """WeeklyQueue for the engine: SendMessageBatch requests counted, messages due after their delay."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.requests = 0
        self.messages = 0

    def send_batch(self, entries: Sequence[tuple[str, int]]) -> None:
        self.requests += 1  # one request per batch: ten small bodies stay far below 64 KB
        for body, delay in entries:
            self.messages += 1
            self._engine.push("WeeklyQueue", self._engine.clock.now() + delay, [body, 0])


class Engine:
    def __init__(
        self,
        scenario: Scenario,
        start: float,
        *,
        timing: Timing | None = None,
        seed: int = 0,
        starts_per_minute: float | None = None,
        deadline_seconds: float = 8 * 3600.0,
    ) -> None:
        template = Template.load(TEMPLATE)
        self.template = template
        self.clock = VirtualClock(start)
        self.simulator = GenesysSimulator(scenario, self.clock)
        self.store = metered_store()
        self.table = table_meter(self.store)
        self.run = VirtualRun(
            self.simulator, self.clock, timing, seed, deadline_seconds=deadline_seconds, store=self.store
        )
        self.genesys = self.run.genesys
        self.intake = self.run.intake
        self.weekly_queue = WeeklyHeapQueue(self)
        self.weekly_runs = MemoryRunLog()
        default = float(template.parameters["WeeklyStartsPerMinute"].default or 30)
        self.weekly_starts_per_minute = starts_per_minute or default
        self.sources = {
            queue: Source(function, queue, batch, concurrency, [start] * concurrency)
            for queue, (function, batch, concurrency) in event_sources(template).items()
        }
        self.memory_mb = {lid: spec.memory_size for lid, spec in template.functions.items()}
        self.invocations: list[Invocation] = []
        self.sqs_receives = 0  # ReceiveMessage requests that returned a batch
        self.sqs_deletes = 0  # DeleteMessageBatch requests
        self.secrets_calls = 0
        self.eventbridge_events = 0
        self.dead_letters = 0
        self._order = itertools.count()
        self._rng = random.Random(seed)

    # the WeeklyParts the fan-out and the per-unit function take
    @property
    def parts(self) -> Engine:
        return self

    def push(self, queue: str, due: float, payload: Any) -> None:
        heapq.heappush(self.sources[queue].heap, (due, next(self._order), payload))

    def _collect(self) -> None:
        """Move what the pipeline sent (VirtualQueues) onto the event sources' queues."""
        while (delivery := self.run.queues.next()) is not None:
            self.push(QUEUE_IDS[delivery.queue], delivery.due, delivery)

    def invoke(self, function: str, work: Callable[[], Any], *, records: int = 0) -> Any:
        """Run one invocation of `function`, metering what it did into its modelled duration."""
        table, calls, tokens = self.table, self.genesys.calls_made, self.genesys.tokens_fetched
        ops = table.reads + table.writes
        sends = self.run.queues.messages_sent + self.weekly_queue.requests
        result = work()
        genesys_calls = self.genesys.calls_made - calls
        new_tokens = self.genesys.tokens_fetched - tokens
        self.secrets_calls += new_tokens  # the Genesys client reads its secret when it fetches a token
        duration = (
            BASE_MS
            + RECORD_MS * records
            + GENESYS_MS * genesys_calls
            + (TOKEN_MS + SECRETS_MS) * new_tokens
            + DYNAMODB_MS * (table.reads + table.writes - ops)
            + SQS_MS * (self.run.queues.messages_sent + self.weekly_queue.requests - sends)
        )
        self.invocations.append(Invocation(function, records, duration, genesys_calls))
        return result

    def step(self) -> bool:
        """Start the next invocation any event source can start; False when every queue is empty."""
        self._collect()
        ready = [(start, queue) for queue, s in self.sources.items() if (start := s.next_start()) is not None]
        if not ready:
            return False
        start, queue = min(ready)
        source = self.sources[queue]
        self.clock.advance_to(start)
        batch: list[Any] = []
        while source.heap and source.heap[0][0] <= self.clock.now() and len(batch) < source.batch_size:
            batch.append(heapq.heappop(source.heap)[2])
        self.sqs_receives += 1
        slot = source.slots.index(min(source.slots))
        before = len(self.invocations)
        if queue == "WeeklyQueue":
            self.invoke(source.function, lambda: self._weekly(batch), records=len(batch))
        else:
            self.invoke(source.function, lambda: self._pipeline(batch), records=len(batch))
        self.sqs_deletes += 1
        source.slots[slot] = self.clock.now() + self.invocations[before].duration_ms / 1000
        return True

    def _pipeline(self, batch: list[_Delivery]) -> None:
        for delivery in batch:
            try:
                self.run.pipeline.process(delivery.queue, JobMessage.model_validate_json(delivery.body))
            except Exception:  # Lambda's partial batch failure: back after the visibility timeout
                before = len(self.run.queues.dead_letters)
                self.run.queues.redeliver(delivery)
                self.dead_letters += len(self.run.queues.dead_letters) - before

    def _weekly(self, batch: list[list[Any]]) -> None:
        records = [(str(i), str(body)) for i, (body, _) in enumerate(batch)]
        answer = take_units(self, records)
        for failure in answer["batchItemFailures"]:
            body, receives = batch[int(failure["itemIdentifier"])]
            if receives + 1 >= self.run.queues.max_receive_count:
                self.dead_letters += 1
            else:
                self.push(
                    "WeeklyQueue", self.clock.now() + self.run.queues.visibility_timeout, [body, receives + 1]
                )

    def drain(self, *, limit: float = 48 * 3600.0) -> None:
        stop_at = self.clock.now() + limit
        while self.clock.now() <= stop_at and self.step():
            pass

    def announce(self) -> None:
        """The stream-fed announcer: one invocation and one EventBridge event per job status change
        (its filter passes nothing else). Counted unbatched: one job's changes are seconds to hours apart;
        a weekly run's would share batches of 10, so that case is an upper bound."""
        for _ in range(self.table.status_changes):
            self.invocations.append(
                Invocation("AnnouncerFunction", 1, BASE_MS + RECORD_MS + PUT_EVENTS_MS, 0)
            )
        self.eventbridge_events += self.table.status_changes

    def notify(self, job: Job) -> None:
        """The stream-fed notifier, for a job that ended: its filter passes nothing else."""
        from wfm_publish.notifier import Notifier

        servicenow = _ServiceNow()
        notifier = Notifier(self.store, lambda: servicenow, self.clock)  # type: ignore[arg-type, return-value]
        self.invoke("NotifierFunction", lambda: notifier.notify(job), records=1)
        self.invocations[-1].duration_ms += SERVICENOW_MS * servicenow.patches


class _ServiceNow:
    """ServiceNow's Table API as the notifier sees it: every call answered, and counted."""

    def __init__(self) -> None:
        self.patches = 0

    def update_record(self, table: str, sys_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        self.patches += 1
        return {"sys_id": sys_id}

    def read_record(self, table: str, sys_id: str, fields: list[str]) -> dict[str, Any]:
        self.patches += 1  # the notifier reads the record first (a GET, priced as a PATCH here)
        return {}
