"""The jobs table's stream in a chaos world, and its two readers, as Lambda runs them.

Every write of a `job#` item is a stream record (INSERT, MODIFY or REMOVE, with both images, in
order). Each reader is an event source mapping from template.yaml (its FilterCriteria, BatchSize,
MaximumBatchingWindowInSeconds, BisectBatchOnFunctionError, MaximumRetryAttempts,
MaximumRecordAgeInSeconds, ReportBatchItemFailures), driven in virtual time with the same rules as the
local stack's poller (runner/streams.py): one batch in hand per shard; a function error bisects the
batch (no retry spent), a batch of one is retried; a partial failure retries from the first failed
record; past the retries or the age the records go to the OnFailure queue. Records that arrive while
a batch is in hand wait for the next one, so a slow or failing batch gathers the records behind it:
the notifier then sees a job's PUBLISHING and its end in one batch.

The notifier runs as the function does: functions/notifier/app.py's `handle_batch`, the batch loop and
all. The announcer is `Announcer.announce` (its handler is that one call).
"""

from __future__ import annotations

import functools
import gc
import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import TYPE_CHECKING, Any

from wfm_publish_local.runner.eventsource import batch_item_failures
from wfm_publish_local.runner.patterns import filter_matches
from wfm_publish_local.specs import StreamEvent

if TYPE_CHECKING:
    from wfm_publish_local.chaos.virtual import World

FUNCTIONS = Path(__file__).resolve().parents[3] / "functions"
RETRY_DELAY = 1.0  # Lambda retries a failed stream batch with a growing pause ...
RETRY_DELAY_CAP = 60.0  # ... of at most a minute


@functools.cache
def stream_events() -> dict[str, StreamEvent]:
    """The table stream's event source mappings, by function: template.yaml's."""
    from wfm_publish_local.template import Template
    from wfm_publish_local.virtual import TEMPLATE

    return {
        logical_id: spec.stream_events[0]
        for logical_id, spec in Template.load(TEMPLATE).functions.items()
        if spec.stream_events
    }


@functools.cache
def notifier_handler() -> ModuleType:
    """functions/notifier/app.py, loaded once per process as Lambda loads it."""
    spec = importlib.util.spec_from_file_location("_chaos_notifier_app", FUNCTIONS / "notifier" / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    gc.enable()  # the handler holds the collector until its first answer (coldstart.py)
    return module


def invoke_notifier(world: World, records: list[dict[str, Any]]) -> Any:
    """The notifier function on one batch, its services the world's."""
    from wfm_publish import services

    services._services = SimpleNamespace(notifier=world.notifier)  # type: ignore[assignment]
    try:
        return notifier_handler().handle_batch({"Records": records}, None)
    finally:
        services._services = None


@dataclass
class _Segment:
    records: list[dict[str, Any]]
    retries: int = 0
    invocations: int = 0


@dataclass
class Mapping:
    """One event source mapping on the stream, in virtual time."""

    world: World
    name: str
    spec: StreamEvent
    invoke: Callable[[list[dict[str, Any]]], Any]
    pending: list[dict[str, Any]] = field(default_factory=list)  # passed the filter, not in a batch yet
    segments: list[_Segment] = field(default_factory=list)  # the batch in hand (bisected: its parts)
    scheduled: bool = False
    batches: int = 0
    discarded: list[dict[str, Any]] = field(default_factory=list)

    def offer(self, record: dict[str, Any]) -> None:
        if self.spec.filters and not any(filter_matches(p, record) for p in self.spec.filters):
            return
        self.pending.append(record)
        if not self.scheduled and not self.segments:
            self._schedule(float(self.spec.maximum_batching_window) + self.world.stream_lag())

    @property
    def busy(self) -> bool:
        return bool(self.pending or self.segments or self.scheduled)

    def _schedule(self, delay: float) -> None:
        self.scheduled = True
        self.world.at(delay, self._poll, "stream")

    def _poll(self) -> None:
        self.scheduled = False
        if not self.segments:
            if not self.pending:
                return
            size = self.spec.batch_size
            self.segments = [_Segment(self.pending[:size])]
            del self.pending[:size]
        segment = self.segments[0]
        segment.invocations += 1
        self.batches += 1
        self.world.counts[f"{self.name} batch"] += 1
        if self.name == "notifier" and _start_and_end(segment.records):
            self.world.count("notifier batch holding a job's PUBLISHING and its end")
        outcome, failed_from = self._run(segment.records)
        done = (
            segment.records
            if outcome == "ok"
            else segment.records[:failed_from]
            if outcome == "partial"
            else []
        )
        for record in done:
            self.world.on_done(self.name, record)
        if outcome == "ok":
            self.segments.pop(0)
        elif outcome == "error" and self.spec.bisect_on_error and len(segment.records) > 1:
            middle = len(segment.records) // 2  # splitting costs no retry
            self.segments[0:1] = [
                _Segment(segment.records[:middle], segment.retries),
                _Segment(segment.records[middle:], segment.retries),
            ]
            self._schedule(0.0)
            return
        else:
            segment.records = segment.records[failed_from:]
            segment.retries += 1
            if self._give_up(segment):
                self.segments.pop(0)
            else:
                self._schedule(min(RETRY_DELAY_CAP, RETRY_DELAY * 2 ** (segment.retries - 1)))
                return
        if self.segments or self.pending:
            self._schedule(0.0)

    def _run(self, records: list[dict[str, Any]]) -> tuple[str, int]:
        """("ok", 0), ("partial", index of the first failed record) or ("error", 0), as Lambda reads
        the invocation (runner/streams.py)."""
        world = self.world
        try:
            with world.acting(self.name):
                result = self.invoke(records)
        except BaseException as failure:  # the function died or raised: the batch failed
            world.note(f"{self.name} batch of {len(records)} failed: {type(failure).__name__}")
            return "error", 0
        numbers = [r["dynamodb"]["SequenceNumber"] for r in records]
        failed = batch_item_failures(result, numbers)
        if failed is None:
            return "error", 0
        if not failed:
            return "ok", 0
        return "partial", min(numbers.index(n) for n in failed)

    def _give_up(self, segment: _Segment) -> bool:
        limit = self.spec.maximum_retry_attempts
        age = self.spec.maximum_record_age
        oldest = float(segment.records[0]["dynamodb"]["ApproximateCreationDateTime"])
        condition = None
        if limit >= 0 and segment.retries > limit:
            condition = "RetryAttemptsExhausted"
        elif age >= 0 and self.world.clock.now() - oldest > age:
            condition = "RecordAgeExceeded"
        if condition is None:
            return False
        self.world.count(f"{self.name} batch discarded to its OnFailure queue")
        self.discarded.extend(segment.records)
        self.world.on_discarded(self.name, segment.records)
        return True


def _start_and_end(records: list[dict[str, Any]]) -> bool:
    """The batch holds a job's move into PUBLISHING and, after it, that job's end."""
    publishing: set[str] = set()
    for record in records:
        image = record["dynamodb"].get("NewImage") or {}
        pk, status = record["dynamodb"]["Keys"]["pk"]["S"], image.get("status", {}).get("S")
        if status == "PUBLISHING":
            publishing.add(pk)
        elif pk in publishing:
            return True
    return False


class Stream:
    """The table's stream: every write of a job item, in order, offered to each mapping."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.sequence = 0
        self.mappings: list[Mapping] = []

    def add(self, name: str, logical_id: str, invoke: Callable[[list[dict[str, Any]]], Any]) -> Mapping:
        mapping = Mapping(self.world, name, stream_events()[logical_id], invoke)
        self.mappings.append(mapping)
        return mapping

    def written(self, old: dict[str, Any] | None, new: dict[str, Any] | None) -> dict[str, Any]:
        self.sequence += 1
        image = new if new is not None else old
        assert image is not None
        change: dict[str, Any] = {
            "Keys": {"pk": image["pk"]},
            "SequenceNumber": f"{self.sequence:021d}",
            "ApproximateCreationDateTime": int(self.world.clock.now()),
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        }
        if new is not None:
            change["NewImage"] = new  # the table never changes a stored item in place: no copy needed
        if old is not None:
            change["OldImage"] = old
        name = "INSERT" if old is None else "REMOVE" if new is None else "MODIFY"
        record = {"eventName": name, "eventSource": "aws:dynamodb", "dynamodb": change}
        if (
            name == "MODIFY"
            and old is not None
            and new is not None
            and old.get("status") == new.get("status")
        ):
            return record  # no mapping's filter passes a write that keeps the status (template.yaml)
        for mapping in self.mappings:
            mapping.offer(record)
        return record

    @property
    def busy(self) -> bool:
        return any(m.busy for m in self.mappings)
