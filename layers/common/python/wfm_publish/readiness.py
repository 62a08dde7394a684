"""Is the telephony a schedule depends on settled? Read from Edge fields, trunk state and recency.

Trunks have no "provisioning in progress" field: readiness is every Edge ACTIVE, ONLINE, with no
software update running and no call draining, every trunk active and connected, and nothing in scope
changed within the settle window. Each field means what Genesys' own description says (the SDK's
models, docs/genesys-fields.md has the table):

- `Trunk.inService` "comes from the trunk_enabled property of the referenced trunk base": false is an
  admin's switch, on purpose. Such a trunk neither holds a publish nor carries calls.
- `Trunk.enabled` is "True if the Edge used by this trunk is in-service": false means the trunk carries
  no calls while its Edge is out (counted as unavailable, named in the report); the Edge's own fields
  say whether the Edge is changing.
- `Edge.softwareStatus` "appears only if a software upgrade was recently initiated": only an update
  that runs now (INIT, IN_PROGRESS) holds a publish. One that ended (SUCCEEDED, FAILED, EXPIRED,
  ABORTED, EXCEPTION, DELETE, NONE) last week is not a change in progress; its end counts as a change
  for the settle window. An update initiated for later (its executeStartTime ahead) holds nothing yet.

Only the job's telephony scope is read (`scope.py`: the sites / edge groups its outbound campaigns
dial through), so a change elsewhere in the org never holds a publish. A Cloud media site (BYOC
Cloud, Genesys Cloud Voice) may have no premises Edge: its trunks are found through the site's
outbound routes (their EXTERNAL trunk bases). Reads are kept cheap:

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
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from wfm_publish.errors import GenesysNotFound
from wfm_publish.genesys_wire import (
    MAX_CONCURRENT_CALLS_KEY,
    Edge,
    MaxCalls,
    Trunk,
    TrunkBaseSettings,
)
from wfm_publish.models import ScopePool, TelephonyScope
from wfm_publish.observations import OBSERVATION_MAX_AGE, Observer

if TYPE_CHECKING:
    from wfm_publish.ports import TelephonyReader

logger = Logger(child=True)

# DomainEdgeSoftwareUpdateDto.status: the values that mean an update is running now. Every other
# documented value (NONE, SUCCEEDED, FAILED, EXPIRED, ABORTED, EXCEPTION, DELETE) is an update that is
# over; a value Genesys does not document yet holds nothing (it may not mean "running").
EDGE_SOFTWARE_RUNNING = frozenset({"INIT", "IN_PROGRESS"})
CLOUD = "Cloud"  # Site.mediaModel of a Cloud media site (else "Premises")
BLOCKERS_SHOWN = 5  # the timeline lists this many blockers, then "... and N more"
KIND_ORDER = {"edge": 0, "trunkBase": 1, "trunk": 2}  # an Edge down takes its trunks with it
SWITCHED_OFF = "switched off by an admin"
EDGE_OUT = "its Edge is out of service"


# --- what one read saw ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Observation:
    kind: str  # "edge", "trunk" or "trunkBase"
    id: str
    name: str | None
    problems: tuple[str, ...]  # why it holds a publish: it is changing, or not healthy
    changed_at: float | None
    trunk_base: str | None = None  # a trunk's trunk base
    edge: str | None = None  # a trunk's Edge
    max_calls: MaxCalls | None = None  # a trunk base's Max Calls
    # Why it carries no calls although nothing about it is changing (an admin switched it off, its
    # Edge is out of service): its lines do not count, and the report says why.
    unavailable: str | None = None
    # False: switched off on purpose by an admin. Its state and its changes hold nothing.
    watched: bool = True

    @property
    def healthy(self) -> bool:
        return not self.problems

    @property
    def carries(self) -> bool:
        """Its lines count: healthy, and nothing keeps it from carrying calls."""
        return self.healthy and self.unavailable is None

    @property
    def ref(self) -> str:
        return f"{self.kind}:{self.id}"

    def describe(self) -> str:
        return f"{_KIND_NAMES.get(self.kind, self.kind)} {self.name or self.id}: {', '.join(self.problems)}"

    def doc(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "kind": self.kind,
            "id": self.id,
            "name": self.name,
            "problems": list(self.problems),
            "changedAt": self.changed_at,
            "trunkBase": self.trunk_base,
            "edge": self.edge,
            "unavailable": self.unavailable,
            "watched": self.watched,
        }
        if self.max_calls is not None:
            doc["maxCalls"] = {"limit": self.max_calls.limit, "state": self.max_calls.state}
            if self.max_calls.why:
                doc["maxCalls"]["why"] = self.max_calls.why
        return doc

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Observation:
        calls = doc.get("maxCalls")
        return cls(
            kind=str(doc["kind"]),
            id=str(doc["id"]),
            name=doc.get("name"),
            problems=tuple(doc.get("problems") or ()),
            changed_at=doc.get("changedAt"),
            trunk_base=doc.get("trunkBase"),
            edge=doc.get("edge"),
            max_calls=(
                MaxCalls(calls.get("limit"), str(calls.get("state")), calls.get("why"))
                if isinstance(calls, dict)
                else None
            ),
            unavailable=doc.get("unavailable"),
            watched=bool(doc.get("watched", True)),
        )


_KIND_NAMES = {"edge": "edge", "trunk": "trunk", "trunkBase": "trunk base"}


def observe_edge(edge: Edge, now: float | None = None) -> Observation:
    problems = []
    if edge.status_code != "ACTIVE":
        problems.append(f"statusCode {edge.status_code}")
    if edge.online_status != "ONLINE":
        problems.append(f"onlineStatus {edge.online_status}")
    software = edge.software_status
    moments = [_epoch(edge.date_modified)]
    if software is not None:
        status = (software.status or "").upper()
        starts = _epoch(software.execute_start_time)
        scheduled = status == "INIT" and starts is not None and now is not None and starts > now
        if status in EDGE_SOFTWARE_RUNNING and not scheduled:
            problems.append(f"softwareStatus {software.status}")
        elif status not in EDGE_SOFTWARE_RUNNING:
            moments.append(_epoch(software.execute_stop_time))  # an update that ended: when it ended
    if edge.call_draining_state not in (None, "NONE"):
        problems.append(f"callDrainingState {edge.call_draining_state}")
    return Observation("edge", edge.id, edge.name, tuple(problems), _latest(moments))


def observe_trunk(trunk: Trunk) -> Observation:
    base = trunk.trunk_base.id if trunk.trunk_base else None
    edge = trunk.edge.id if trunk.edge else None
    if trunk.switched_off:
        # Switched off on purpose (its base's trunk_enabled): not a change to wait for, no lines to count.
        return Observation(
            "trunk", trunk.id, trunk.name, (), None, base, edge, unavailable=SWITCHED_OFF, watched=False
        )
    # A trunk that just (re)connected has changed too, even when its settings did not.
    moments = [_epoch(trunk.date_modified)]
    if trunk.connected_status:
        moments.append(_epoch(trunk.connected_status.connected_state_time))
    changed = _latest(moments)
    problems = []
    if (trunk.state or "").lower() != "active":
        problems.append(f"state {trunk.state}")
    if trunk.edge_out_of_service:
        # Down with its Edge: the Edge's own fields say whether that is a change in progress.
        return Observation(
            "trunk", trunk.id, trunk.name, tuple(problems), changed, base, edge, unavailable=EDGE_OUT
        )
    connected = trunk.connected_status.connected if trunk.connected_status else None
    if connected is False:
        problems.append("not connected")
    return Observation("trunk", trunk.id, trunk.name, tuple(problems), changed, base, edge)


def observe_trunk_base(base: TrunkBaseSettings, max_calls_key: str = MAX_CONCURRENT_CALLS_KEY) -> Observation:
    if base.switched_off:
        return Observation(
            "trunkBase",
            base.id,
            base.name,
            (),
            None,
            max_calls=base.max_calls(max_calls_key),
            unavailable=SWITCHED_OFF,
            watched=False,
        )
    problems = []
    if base.state is not None and base.state.lower() != "active":
        problems.append(f"state {base.state}")
    return Observation(
        "trunkBase",
        base.id,
        base.name,
        tuple(problems),
        _epoch(base.date_modified),
        max_calls=base.max_calls(max_calls_key),
    )


@dataclass(frozen=True)
class TrunkLines:
    """What a pool's trunks can carry at once: the sum of their bases' Max Calls, unless one of them is
    unlimited (then the trunks set no bound) or could not be read (named, and no bound either)."""

    limit: int | None  # None: the trunks set no bound
    state: str  # "limited" | "unlimited" | "unreadable" | "none" (no trunk carries calls)
    carrying: int = 0  # trunks whose lines count
    unreadable: tuple[str, ...] = ()  # trunk bases whose Max Calls could not be read, and why
    unavailable: tuple[str, ...] = ()  # trunks that carry nothing now, and why


@dataclass(frozen=True)
class PoolSnapshot:
    """One site's or edge group's Edges, their EXTERNAL trunks and the trunk bases, as read at once."""

    pool: str
    name: str | None
    observations: tuple[Observation, ...]
    media: str | None = None  # the site's mediaModel ("Premises" | "Cloud"); None for an edge group

    def ids(self, kind: str) -> list[str]:
        return [o.id for o in self.observations if o.kind == kind]

    def trunk_lines(self) -> TrunkLines:
        """Max Calls summed over the trunks that carry calls (0 on a base is unlimited)."""
        bases = {o.id: o for o in self.observations if o.kind == "trunkBase"}
        trunks = [o for o in self.observations if o.kind == "trunk"]
        unavailable = tuple(
            f"{o.name or o.id}: {o.unavailable or ', '.join(o.problems)}" for o in trunks if not o.carries
        )
        total, unlimited, unreadable, carrying = 0, False, {}, 0
        for trunk in trunks:
            base = bases.get(trunk.trunk_base or "")
            if not trunk.carries or (base is not None and not base.carries):
                continue
            carrying += 1
            calls = base.max_calls if base is not None else None
            if calls is None or calls.state == "unreadable":
                name = (base.name or base.id) if base is not None else (trunk.trunk_base or "?")
                why = calls.why if calls is not None and calls.why else "trunk base not read"
                unreadable[name] = f"{name}: {why}"
            elif calls.state == "unlimited":
                unlimited = True
            else:
                total += calls.limit or 0
        if not carrying:
            return TrunkLines(None, "none", 0, (), unavailable)
        if unlimited:
            return TrunkLines(None, "unlimited", carrying, tuple(unreadable.values()), unavailable)
        if unreadable:
            return TrunkLines(None, "unreadable", carrying, tuple(unreadable.values()), unavailable)
        return TrunkLines(total, "limited", carrying, (), unavailable)

    def edges_carrying(self) -> int:
        """Edges that carry calls: healthy, and not out of service (which only their trunks say)."""
        out = {o.edge for o in self.observations if o.kind == "trunk" and o.unavailable == EDGE_OUT}
        return sum(1 for o in self.observations if o.kind == "edge" and o.carries and o.id not in out)

    def doc(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "pool": self.pool,
            "name": self.name,
            "observations": [o.doc() for o in self.observations],
        }
        if self.media is not None:
            doc["media"] = self.media
        return doc

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> PoolSnapshot:
        return cls(
            str(doc["pool"]),
            doc.get("name"),
            tuple(Observation.from_doc(o) for o in doc.get("observations") or ()),
            doc.get("media"),
        )


def read_pool(
    reader: TelephonyReader,
    kind: str,
    pool_id: str,
    max_calls_key: str = MAX_CONCURRENT_CALLS_KEY,
    *,
    media: str | None = None,
    now: float | None = None,
) -> PoolSnapshot:
    """Every Edge of a site / edge group (cloud media Edges included), their EXTERNAL trunks and those
    trunks' bases: 1 + E + B reads. A Cloud media site's trunks come from its outbound routes' trunk
    bases instead (its Edges, if it lists any, are Genesys' own): 2 + B + B reads."""
    edges = reader.edges(site_id=pool_id) if kind == "site" else reader.edges(edge_group_id=pool_id)
    observations = [observe_edge(e, now) for e in edges]
    if kind == "site" and media == CLOUD:
        routes = [r for r in reader.outbound_routes(pool_id) if r.enabled is not False]
        bases = dict.fromkeys(b.id for r in routes for b in r.external_trunk_bases)
        trunks = [t for b in bases for t in reader.trunks(trunk_base_id=b, trunk_type="EXTERNAL")]
    else:
        trunks = [t for e in edges for t in reader.trunks(edge_id=e.id, trunk_type="EXTERNAL")]
    trunks = list({t.id: t for t in trunks}.values())
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
    return PoolSnapshot(f"{kind}:{pool_id}", name, tuple(observations), media)


def pool_snapshot(
    reader: TelephonyReader,
    observer: Observer,
    kind: str,
    pool_id: str,
    *,
    max_age: float,
    max_calls_key: str = MAX_CONCURRENT_CALLS_KEY,
    media: str | None = None,
) -> PoolSnapshot:
    doc = observer.get(
        f"{kind}:{pool_id}",
        max_age,
        lambda: read_pool(reader, kind, pool_id, max_calls_key, media=media, now=observer.now).doc(),
        state=True,
    )
    return PoolSnapshot.from_doc(doc)


def read_entity(
    reader: TelephonyReader, ref: str, max_calls_key: str = MAX_CONCURRENT_CALLS_KEY, now: float | None = None
) -> Observation | None:
    """One Edge, trunk or trunk base by its ref ("edge:<id>"); None when it no longer exists."""
    kind, _, entity_id = ref.partition(":")
    try:
        if kind == "edge":
            return observe_edge(reader.edge(entity_id), now)
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
        unavailable = [
            f"{_KIND_NAMES[o.kind]} {o.name or o.id}: {o.unavailable}"
            for o in self.observations
            if o.unavailable
        ]
        if unavailable:  # carry no calls, hold nothing: said, so nobody wonders where their lines went
            summary["unavailable"] = unavailable[:BLOCKERS_SHOWN]
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
    seen = [o for o in observations if o.watched]
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
        doc = observer.get(ref, max_age, partial(_entity_doc, reader, ref, max_calls_key, now), state=True)
        rechecked.append(ref)
        seen = Observation.from_doc(doc) if doc else None
        if seen is not None and seen.watched and not seen.healthy:
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
            media=p.media_model,
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
            "media_model": pool.media_model or snapshot.media,
        }
    )


def _entity_doc(
    reader: TelephonyReader, ref: str, max_calls_key: str, now: float | None
) -> dict[str, Any] | None:
    seen = read_entity(reader, ref, max_calls_key, now)
    return seen.doc() if seen else None


def _calls(reader: object) -> int:
    calls = getattr(reader, "calls_made", 0)
    return calls if isinstance(calls, int) else 0


def _latest(moments: Iterable[float | None]) -> float | None:
    known = [m for m in moments if m is not None]
    return max(known) if known else None


def _epoch(stamp: str | None) -> float | None:
    if not stamp:
        return None
    with contextlib.suppress(ValueError):
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    return None
