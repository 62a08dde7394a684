"""The simulated org's state and its time: schedules, uploads and operations, the plan of
time-driven events (telephony changes, other writers' edits, operations ending), what it logs and
counts, and the notifications it sends.

No threads and no sleeping: what is due is applied by `advance()` from `clock.now()`, at the start of
each request, so a virtual clock drives hours of scenario in no time.
"""

from __future__ import annotations

import heapq
import itertools
import random
import uuid
from collections import Counter, defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from wfm_publish.clock import Clock
from wfm_publish_local.simulator import notifications as topics
from wfm_publish_local.simulator.notifications import Notifier
from wfm_publish_local.simulator.outbound import OutboundView
from wfm_publish_local.simulator.scenario import PublishOperation, Scenario, TelephonyChange, WriterEdit
from wfm_publish_local.simulator.telephony import BASE_AGE_SECONDS, Moment, TelephonyView
from wfm_publish_local.simulator.topology import Topology
from wfm_publish_local.simulator.wire import SimResponse, json_response

REQUESTS_KEPT = 10_000


@dataclass
class ScheduleState:
    """The mutable part of a schedule; times are t (seconds since simulator start)."""

    version: int
    published: bool
    description: str
    date_modified: float
    modified_by: str
    uploads_requested: int = 0
    agent_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    agent_versions: dict[str, int] = field(default_factory=dict)


@dataclass
class Upload:
    key: str
    schedule_id: str
    content_length: int
    payload: dict[str, Any] | None = None
    consumed: bool = False


@dataclass
class Operation:
    id: str
    kind: str  # "Update" or "AgentSchedulesQuery"
    schedule_id: str
    done_at: float
    business_unit_id: str = ""
    status: str = "Processing"  # then Complete, Error or Canceled
    client_id: str = ""
    payload: dict[str, Any] = field(default_factory=dict)
    fail: bool = False
    cancel: bool = False
    result: dict[str, Any] | None = None
    download_url: str | None = None


class Org:
    """One org served from a scenario; `t` is seconds since the simulator started (or was reset)."""

    def __init__(self, scenario: Scenario, clock: Clock) -> None:
        self.scenario = scenario
        self.clock = clock
        self.topology = Topology(scenario)
        self.telephony = TelephonyView(self.topology, scenario.telephony.max_concurrent_calls_key)
        self.outbound = OutboundView(self.topology, self.telephony, scenario.outbound_settings)
        # What the org would send to EventBridge; listeners must not call back into the simulator.
        self.notifier = Notifier(f"org-{scenario.name}")
        self.reset()

    def reset(self) -> None:
        """Restart the clock and the org's state from the scenario."""
        s = self.scenario
        self.t0 = self.clock.now()
        self.ids = random.Random(s.seed)
        self.seq = itertools.count()
        self.pending: list[tuple[float, int, Callable[[float], None]]] = []
        self.schedules = {
            x.id: ScheduleState(x.version, x.published, x.description, -BASE_AGE_SECONDS, x.created_by)
            for x in s.schedules
        }
        self.uploads: dict[str, Upload] = {}
        self.operations: dict[str, Operation] = {}
        self.active_update: dict[str, str] = {}
        self.triggers: dict[str, list[WriterEdit]] = defaultdict(list)
        self.calls: Counter[str] = Counter()
        # The latest API requests as received (method, path, query, body): what a test checks was asked.
        self.requests: deque[tuple[str, str, dict[str, list[str]], bytes]] = deque(maxlen=REQUESTS_KEPT)
        self.conflicts: Counter[str] = Counter({"stale": 0, "telephony": 0, "inProgress": 0})
        self.applied: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()
        self.counts: Counter[str] = Counter()
        self.events: list[dict[str, Any]] = []
        self.fail_left = {e.schedule_id: e.fail_first for e in s.events if isinstance(e, PublishOperation)}
        self.cancel_left = {
            e.schedule_id: e.cancel_first for e in s.events if isinstance(e, PublishOperation)
        }
        self.notifier.reset()
        self.durations = {
            e.schedule_id: e.duration_seconds
            for e in s.events
            if isinstance(e, PublishOperation) and e.duration_seconds is not None
        }
        for ev in s.events:
            self.plan(ev)

    def plan(self, ev: TelephonyChange | WriterEdit | PublishOperation) -> None:
        if isinstance(ev, TelephonyChange):
            what = f"{ev.kind} on {ev.entity_id}" + (" (org-wide)" if ev.scope == "org" else "")
            self.at(ev.start, partial(self.log, kind="telephonyChangeStarted", detail=what))
            self.at(ev.start, partial(self.notify_telephony, ev))
            self.at(ev.end, partial(self.log, kind="telephonyChangeEnded", detail=what))
            self.at(ev.end, partial(self.notify_telephony, ev))
            settled = ev.end + self.scenario.settle_window_seconds
            self.at(settled, partial(self.log, kind="telephonySettled", detail=what))
        elif isinstance(ev, WriterEdit):
            if ev.at is not None:
                self.at(ev.at, partial(self.writer_edit, ev))
            else:
                self.triggers[ev.schedule_id].append(ev)

    def at(self, t: float, action: Callable[[float], None]) -> None:
        heapq.heappush(self.pending, (t, next(self.seq), action))

    def elapsed(self) -> float:
        """t: seconds since the simulator started (or was reset)."""
        return self.clock.now() - self.t0

    def advance(self) -> float:
        """Apply every time-driven action due by now; answers the current t."""
        now = self.elapsed()
        while self.pending and self.pending[0][0] <= now:
            t, _, action = heapq.heappop(self.pending)
            action(t)
        return now

    def moment(self, t: float) -> Moment:
        return Moment(t, self.t0)

    def log(self, t: float, kind: str, detail: str) -> None:
        self.events.append({"t": round(t, 3), "kind": kind, "detail": detail})

    def new_id(self) -> str:
        return str(uuid.UUID(int=self.ids.getrandbits(128), version=4))

    def writer_edit(self, ev: WriterEdit, t: float) -> None:
        state = self.schedules[ev.schedule_id]
        state.version += 1
        state.date_modified = t
        state.modified_by = ev.by
        self.log(t, "writerEdit", f"{ev.by} moved {ev.schedule_id} to version {state.version}")

    def notify(self, topic: str, entity_id: str, body: dict[str, Any], t: float) -> None:
        """Send a notification, if the org's integration delivers its topic (`notifications`)."""
        sends = self.scenario.notifications
        delivered = {
            topics.SCHEDULES_TOPIC: sends.schedules,
            topics.QUERY_RESULT_TOPIC: sends.query_results,
        }.get(topic, sends.telephony if topic in topics.TELEPHONY_TOPICS else True)
        if delivered:
            self.notifier.emit(topic, entity_id, body, self.t0 + t, self.new_id())

    def notify_telephony(self, change: TelephonyChange, t: float) -> None:
        """What the org says at a change's start or end: its Edge (and software update), its trunks."""
        m = self.moment(t)
        index = next(i for i, c in enumerate(self.topology.changes) if c is change)
        for entity_id in sorted(self.topology.change_targets[index]):
            if entity_id in self.topology.edges:
                edge = self.telephony.edge(self.topology.edges[entity_id], m)
                self.notify(
                    topics.EDGE_TOPIC, entity_id, {"id": entity_id, "onlineStatus": edge["onlineStatus"]}, t
                )
                if change.kind == "softwareUpdate":
                    software = {k: v for k, v in edge["softwareStatus"].items() if k != "version"}
                    self.notify(topics.EDGE_SOFTWARE_TOPIC, entity_id, {"id": entity_id, **software}, t)
            elif entity_id in self.topology.trunks:
                trunk = self.telephony.trunk(self.topology.trunks[entity_id], m)
                body = {
                    k: trunk[k]
                    for k in ("id", "connectedStatus", "optionsStatus", "registersStatus", "ipStatus")
                }
                self.notify(topics.TRUNK_TOPIC, entity_id, body, t)

    def ok(self, payload: Any, status: int = 200) -> SimResponse:
        return json_response(status, payload, {"ININ-Correlation-Id": self.new_id()})

    def stats(self, t: float) -> dict[str, Any]:
        return {
            "t": round(t, 3),
            "calls": dict(sorted(self.calls.items())),
            "tokensIssued": self.counts["tokensIssued"],
            "rateLimited": self.counts["rateLimited"],
            "conflictsSent": dict(self.conflicts),
            "publishesApplied": dict(self.applied),
            "publishesFailed": dict(self.failed),
            "faultsInjected": self.counts["faultsInjected"],
            "connectionsDropped": self.counts["connectionsDropped"],
            "events": [dict(e) for e in self.events],
        }

    def schedule_state(self, schedule_id: str) -> dict[str, Any]:
        """The schedule as the org holds it now (for tests and the benchmark)."""
        st = self.schedules[schedule_id]
        return {
            "id": schedule_id,
            "version": st.version,
            "published": st.published,
            "description": st.description,
            "modifiedBy": st.modified_by,
            "dateModified": self.moment(0).at(st.date_modified),
            "updateInProgress": schedule_id in self.active_update,
        }
