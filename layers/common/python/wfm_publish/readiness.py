"""Is the telephony a schedule depends on settled? Read from Edge fields, trunk state and recency.

Trunks have no "provisioning in progress" field (docs/genesys-api.md): readiness is every Edge
ACTIVE, ONLINE, with no software update running and no call draining, every trunk active, in
service and connected, and nothing in scope changed within the settle window.

Only the job's telephony scope is read (`scope.py`: the sites / edge groups its outbound campaigns
dial through), so a change elsewhere in the org never holds a publish. Reads are kept cheap:

- A waiting job remembers what blocked it (`Job.blocked_by`) and re-reads those entities first, one
  at a time, stopping at the first that is still unhealthy: a job waiting on an Edge update costs one
  read per check. Only once they all look healthy is the whole scope read again (and the settle
  window judged on it).
- Observations are shared between jobs through the job table (observations.py): jobs that look at
  the same site within `max_age` seconds reuse one read.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial
from typing import Any, Protocol

from aws_lambda_powertools import Logger

from wfm_publish.errors import GenesysNotFound
from wfm_publish.genesys_wire import MAX_CONCURRENT_CALLS_KEY, Edge, Trunk, TrunkBaseSettings
from wfm_publish.models import ScopePool, TelephonyScope
from wfm_publish.observations import OBSERVATION_MAX_AGE, Observer

logger = Logger(child=True)

EDGE_SOFTWARE_SETTLED = {None, "SUCCEEDED", "NONE", "IDLE", "COMPLETE", "COMPLETED"}
BLOCKERS_SHOWN = 5  # the timeline lists this many blockers, then "... and N more"
KIND_ORDER = {"edge": 0, "trunkBase": 1, "trunk": 2}  # an Edge down takes its trunks with it


class TelephonyReader(Protocol):
    def edges(self, *, site_id: str | None = None, edge_group_id: str | None = None) -> list[Edge]: ...
    def edge(self, edge_id: str) -> Edge: ...
    def trunks(self, *, edge_id: str | None = None, trunk_type: str | None = "EXTERNAL") -> list[Trunk]: ...
    def trunk(self, trunk_id: str) -> Trunk: ...
    def trunk_base_settings(self, trunk_base_id: str) -> TrunkBaseSettings: ...


# --- what one read saw ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Observation:
    kind: str  # "edge", "trunk" or "trunkBase"
    id: str
    name: str | None
    problems: tuple[str, ...]
    changed_at: float | None
    trunk_base: str | None = None  # a trunk's trunk base
    edge: str | None = None  # a trunk's Edge
    max_calls: int | None = None  # a trunk base's Max Concurrent Calls
    counted: bool = True  # False: disabled (not provisioning, carries no calls): neither blocks nor counts

    @property
    def healthy(self) -> bool:
        return not self.problems

    @property
    def ref(self) -> str:
        return f"{self.kind}:{self.id}"

    def describe(self) -> str:
        return f"{_KIND_NAMES.get(self.kind, self.kind)} {self.name or self.id}: {', '.join(self.problems)}"

    def doc(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "id": self.id,
            "name": self.name,
            "problems": list(self.problems),
            "changedAt": self.changed_at,
            "trunkBase": self.trunk_base,
            "edge": self.edge,
            "maxCalls": self.max_calls,
            "counted": self.counted,
        }

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Observation:
        return cls(
            kind=str(doc["kind"]),
            id=str(doc["id"]),
            name=doc.get("name"),
            problems=tuple(doc.get("problems") or ()),
            changed_at=doc.get("changedAt"),
            trunk_base=doc.get("trunkBase"),
            edge=doc.get("edge"),
            max_calls=doc.get("maxCalls"),
            counted=bool(doc.get("counted", True)),
        )


_KIND_NAMES = {"edge": "edge", "trunk": "trunk", "trunkBase": "trunk base"}


def observe_edge(edge: Edge) -> Observation:
    problems = []
    if edge.status_code != "ACTIVE":
        problems.append(f"statusCode {edge.status_code}")
    if edge.online_status != "ONLINE":
        problems.append(f"onlineStatus {edge.online_status}")
    software = edge.software_status.status if edge.software_status else None
    if software not in EDGE_SOFTWARE_SETTLED:
        problems.append(f"softwareStatus {software}")
    if edge.call_draining_state not in (None, "NONE"):
        problems.append(f"callDrainingState {edge.call_draining_state}")
    return Observation("edge", edge.id, edge.name, tuple(problems), _epoch(edge.date_modified))


def observe_trunk(trunk: Trunk) -> Observation:
    base = trunk.trunk_base.id if trunk.trunk_base else None
    edge = trunk.edge.id if trunk.edge else None
    if trunk.enabled is False:
        # Switched off on purpose: not a provisioning change to wait for, and no lines to count.
        return Observation("trunk", trunk.id, trunk.name, (), None, base, edge, counted=False)
    problems = []
    if (trunk.state or "").lower() != "active":
        problems.append(f"state {trunk.state}")
    if trunk.in_service is False:
        problems.append("not in service")
    connected = trunk.connected_status.connected if trunk.connected_status else None
    if connected is False:
        problems.append("not connected")
    # A trunk that just (re)connected has changed too, even when its settings did not.
    moments = [_epoch(trunk.date_modified)]
    if trunk.connected_status:
        moments.append(_epoch(trunk.connected_status.connected_state_time))
    known = [m for m in moments if m is not None]
    changed = max(known) if known else None
    return Observation("trunk", trunk.id, trunk.name, tuple(problems), changed, base, edge)


def observe_trunk_base(base: TrunkBaseSettings, max_calls_key: str = MAX_CONCURRENT_CALLS_KEY) -> Observation:
    problems = []
    if base.state is not None and base.state.lower() != "active":
        problems.append(f"state {base.state}")
    enabled = base.property_value("trunk_enabled")
    return Observation(
        "trunkBase",
        base.id,
        base.name,
        tuple(problems),
        _epoch(base.date_modified),
        max_calls=base.max_concurrent_calls(max_calls_key),
        counted=enabled is not False,
    )


@dataclass(frozen=True)
class PoolSnapshot:
    """One site's or edge group's Edges, their EXTERNAL trunks and the trunk bases, as read at once."""

    pool: str
    name: str | None
    observations: tuple[Observation, ...]

    def ids(self, kind: str) -> list[str]:
        return [o.id for o in self.observations if o.kind == kind]

    def trunk_lines(self) -> int | None:
        """Max Concurrent Calls summed over the healthy, enabled trunks (None: no trunk base says)."""
        bases = {o.id: o for o in self.observations if o.kind == "trunkBase"}
        if not any(b.max_calls is not None for b in bases.values()):
            return None
        total = 0
        for trunk in self.observations:
            if trunk.kind != "trunk" or not trunk.counted or not trunk.healthy:
                continue
            base = bases.get(trunk.trunk_base or "")
            if base is not None and base.counted and base.max_calls is not None:
                total += base.max_calls
        return total

    def doc(self) -> dict[str, Any]:
        return {"pool": self.pool, "name": self.name, "observations": [o.doc() for o in self.observations]}

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> PoolSnapshot:
        return cls(
            str(doc["pool"]),
            doc.get("name"),
            tuple(Observation.from_doc(o) for o in doc.get("observations") or ()),
        )


def read_pool(
    reader: TelephonyReader, kind: str, pool_id: str, max_calls_key: str = MAX_CONCURRENT_CALLS_KEY
) -> PoolSnapshot:
    """Every Edge of a site / edge group, their EXTERNAL trunks and those trunks' bases: 1 + E + B reads."""
    edges = reader.edges(site_id=pool_id) if kind == "site" else reader.edges(edge_group_id=pool_id)
    observations = [observe_edge(e) for e in edges]
    trunks = [t for e in edges for t in reader.trunks(edge_id=e.id, trunk_type="EXTERNAL")]
    observations += [observe_trunk(t) for t in trunks if (t.trunk_type or "EXTERNAL").upper() == "EXTERNAL"]
    for base_id in dict.fromkeys(t.trunk_base.id for t in trunks if t.trunk_base):
        try:
            observations.append(observe_trunk_base(reader.trunk_base_settings(base_id), max_calls_key))
        except GenesysNotFound:
            logger.warning("trunk base not found; its lines are not counted", extra={"trunk_base": base_id})
    name = None
    if edges:
        owner = edges[0].site if kind == "site" else edges[0].edge_group
        name = owner.name if owner else None
    return PoolSnapshot(f"{kind}:{pool_id}", name, tuple(observations))


def pool_snapshot(
    reader: TelephonyReader,
    observer: Observer,
    kind: str,
    pool_id: str,
    *,
    max_age: float,
    max_calls_key: str = MAX_CONCURRENT_CALLS_KEY,
) -> PoolSnapshot:
    doc = observer.get(
        f"{kind}:{pool_id}",
        max_age,
        lambda: read_pool(reader, kind, pool_id, max_calls_key).doc(),
        state=True,
    )
    return PoolSnapshot.from_doc(doc)


def read_entity(
    reader: TelephonyReader, ref: str, max_calls_key: str = MAX_CONCURRENT_CALLS_KEY
) -> Observation | None:
    """One Edge, trunk or trunk base by its ref ("edge:<id>"); None when it no longer exists."""
    kind, _, entity_id = ref.partition(":")
    try:
        if kind == "edge":
            return observe_edge(reader.edge(entity_id))
        if kind == "trunk":
            return observe_trunk(reader.trunk(entity_id))
        if kind == "trunkBase":
            return observe_trunk_base(reader.trunk_base_settings(entity_id), max_calls_key)
    except GenesysNotFound:
        return None
    return None


# --- judging -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Readiness:
    observations: tuple[Observation, ...]
    settle_window: float
    now: float
    blockers: tuple[str, ...] = field(default=())
    settles_at: float | None = None  # all healthy, but a recent change: ready at this moment
    blocked_by: tuple[str, ...] = ()  # refs of the unhealthy entities: re-read these first next time
    rechecked: tuple[str, ...] = ()  # refs re-read on their own (the cheap path)
    reads: int = 0  # Genesys calls this check made
    shared: int = 0  # observations reused from other jobs
    snapshots: tuple[PoolSnapshot, ...] = ()  # the full read, when there was one
    # When the oldest state this check judged was read (an observation reused from another job is as
    # old as its read): a telephony event after it may not be reflected (wake.py).
    read_at: float | None = None

    @property
    def ready(self) -> bool:
        return not self.blockers

    def summary(self) -> dict[str, Any]:
        summary: dict[str, Any] = {"ready": self.ready, "checked": self._counts()}
        if self.blockers:
            shown = list(self.blockers[:BLOCKERS_SHOWN])
            if len(self.blockers) > BLOCKERS_SHOWN:
                shown.append(f"... and {len(self.blockers) - BLOCKERS_SHOWN} more")
            summary["blockers"] = shown
        if self.settles_at is not None:
            summary["settlesInSeconds"] = round(max(0.0, self.settles_at - self.now), 1)
        if self.rechecked:
            summary["rechecked"] = list(self.rechecked)
        summary["reads"] = self.reads
        if self.shared:
            summary["sharedObservations"] = self.shared
        return summary

    def _counts(self) -> dict[str, int]:
        counts = {"edges": self._count("edge"), "trunks": self._count("trunk")}
        if self._count("trunkBase"):
            counts["trunkBases"] = self._count("trunkBase")
        return counts

    def _count(self, kind: str) -> int:
        return sum(1 for o in self.observations if o.kind == kind)


def judge(observations: Iterable[Observation], now: float, settle_window: float) -> Readiness:
    seen = [o for o in observations if o.counted]
    unhealthy = sorted((o for o in seen if not o.healthy), key=lambda o: KIND_ORDER.get(o.kind, 9))
    blockers = [o.describe() for o in unhealthy]
    settles_at = None
    if not blockers:
        recent = [
            o.changed_at for o in seen if o.changed_at is not None and now - o.changed_at < settle_window
        ]
        if recent:
            settles_at = max(recent) + settle_window
            blockers.append(f"changed {round(now - max(recent), 1)} s ago; settle window {settle_window:g} s")
    return Readiness(
        tuple(observations), settle_window, now, tuple(blockers), settles_at, blocked_by=roots(unhealthy)
    )


def roots(unhealthy: Iterable[Observation]) -> tuple[str, ...]:
    """What to re-read next time: the unhealthy Edges, and unhealthy trunks on healthy Edges (a trunk
    is down with its Edge: while the Edge is down, the Edge alone says so)."""
    unhealthy = list(unhealthy)
    edges_down = {o.id for o in unhealthy if o.kind == "edge"}
    picked = [o for o in unhealthy if not (o.kind == "trunk" and o.edge in edges_down)]
    return tuple(o.ref for o in sorted(picked, key=lambda o: KIND_ORDER.get(o.kind, 9)))


def check(
    reader: TelephonyReader,
    observer: Observer,
    scope: TelephonyScope,
    blocked_by: Iterable[str],
    *,
    now: float,
    settle_window: float,
    max_age: float = OBSERVATION_MAX_AGE,
    max_calls_key: str = MAX_CONCURRENT_CALLS_KEY,
) -> Readiness:
    """Is the job's telephony scope settled? The entities that blocked it last time are re-read first,
    one at a time; the whole scope is read only once they all look healthy."""
    calls_before = _calls(reader)
    shared_before = observer.shared
    remaining = list(blocked_by)
    rechecked: list[str] = []
    while remaining:
        ref = remaining[0]
        doc = observer.get(ref, max_age, partial(_entity_doc, reader, ref, max_calls_key), state=True)
        rechecked.append(ref)
        seen = Observation.from_doc(doc) if doc else None
        if seen is not None and seen.counted and not seen.healthy:
            return Readiness(
                (seen,),
                settle_window,
                now,
                (seen.describe(),),
                blocked_by=tuple(remaining),
                rechecked=tuple(rechecked),
                reads=_calls(reader) - calls_before,
                shared=observer.shared - shared_before,
                read_at=min(observer.read_at(r) for r in rechecked),
            )
        remaining.pop(0)
    snapshots = tuple(
        pool_snapshot(
            reader,
            observer,
            p.kind,
            p.id,
            max_age=max_age,
            max_calls_key=max_calls_key,
        )
        for p in scope.pools
    )
    judged = judge([o for s in snapshots for o in s.observations], now, settle_window)
    keys = rechecked + [f"{p.kind}:{p.id}" for p in scope.pools]
    return replace(
        judged,
        rechecked=tuple(rechecked),
        reads=_calls(reader) - calls_before,
        shared=observer.shared - shared_before,
        snapshots=snapshots,
        read_at=min((observer.read_at(k) for k in keys), default=now),
    )


def scope_pool_from(pool: ScopePool, snapshot: PoolSnapshot) -> ScopePool:
    """The scope's pool with the Edges, trunks and trunk bases a full read found in it."""
    return pool.model_copy(
        update={
            "name": pool.name or snapshot.name,
            "edges": snapshot.ids("edge"),
            "trunks": snapshot.ids("trunk"),
            "trunk_bases": snapshot.ids("trunkBase"),
        }
    )


def _entity_doc(reader: TelephonyReader, ref: str, max_calls_key: str) -> dict[str, Any] | None:
    seen = read_entity(reader, ref, max_calls_key)
    return seen.doc() if seen else None


def _calls(reader: object) -> int:
    calls = getattr(reader, "calls_made", 0)
    return calls if isinstance(calls, int) else 0


def _epoch(stamp: str | None) -> float | None:
    if not stamp:
        return None
    with contextlib.suppress(ValueError):
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    return None
