"""Is the telephony a schedule depends on settled? Read from Edge fields, trunk state and recency.

Trunks have no "provisioning in progress" field (shared/GENESYS_API.md): readiness is every Edge
ACTIVE, ONLINE, with no software update running and no call draining, every trunk active, in
service and connected, and nothing in scope changed within the settle window.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from wfm_publish.genesys import Edge, Trunk

EDGE_SOFTWARE_SETTLED = {None, "SUCCEEDED", "NONE", "IDLE", "COMPLETE", "COMPLETED"}


class TelephonyReader(Protocol):
    def edge(self, edge_id: str) -> Edge: ...
    def trunks(self, *, edge_id: str | None = None, trunk_type: str = "EXTERNAL") -> list[Trunk]: ...


@dataclass(frozen=True)
class Observation:
    kind: str  # "edge" or "trunk"
    id: str
    name: str | None
    problems: tuple[str, ...]
    changed_at: float | None

    @property
    def healthy(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class Readiness:
    observations: tuple[Observation, ...]
    settle_window: float
    now: float
    blockers: tuple[str, ...] = field(default=())
    settles_at: float | None = None  # all healthy, but a recent change: ready at this moment

    @property
    def ready(self) -> bool:
        return not self.blockers

    def summary(self) -> dict[str, Any]:
        summary: dict[str, Any] = {
            "ready": self.ready,
            "checked": {"edges": self._count("edge"), "trunks": self._count("trunk")},
        }
        if self.blockers:
            summary["blockers"] = list(self.blockers)
        if self.settles_at is not None:
            summary["settlesInSeconds"] = round(max(0.0, self.settles_at - self.now), 1)
        return summary

    def _count(self, kind: str) -> int:
        return sum(1 for o in self.observations if o.kind == kind)


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
    problems = []
    if (trunk.state or "").lower() != "active":
        problems.append(f"state {trunk.state}")
    if trunk.in_service is False:
        problems.append("not in service")
    connected = trunk.connected_status.connected if trunk.connected_status else None
    if connected is False:
        problems.append("not connected")
    return Observation("trunk", trunk.id, trunk.name, tuple(problems), _epoch(trunk.date_modified))


def judge(observations: list[Observation], now: float, settle_window: float) -> Readiness:
    blockers = [f"{o.kind} {o.name or o.id}: {', '.join(o.problems)}" for o in observations if not o.healthy]
    settles_at = None
    if not blockers:
        recent = [
            o.changed_at
            for o in observations
            if o.changed_at is not None and now - o.changed_at < settle_window
        ]
        if recent:
            settles_at = max(recent) + settle_window
            blockers.append(f"changed {round(now - max(recent), 1)} s ago; settle window {settle_window:g} s")
    return Readiness(tuple(observations), settle_window, now, tuple(blockers), settles_at)


def assess(reader: TelephonyReader, now: float, settle_window: float) -> Readiness:
    """Read the outbound trunks and their Edges, and judge whether they are settled."""
    trunks = reader.trunks(trunk_type="EXTERNAL")
    edge_ids = sorted({t.edge.id for t in trunks if t.edge})
    observations = [observe_edge(reader.edge(e)) for e in edge_ids] + [observe_trunk(t) for t in trunks]
    return judge(observations, now, settle_window)


def _epoch(stamp: str | None) -> float | None:
    if not stamp:
        return None
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
