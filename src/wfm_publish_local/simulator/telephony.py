"""How edges, trunks, trunk bases and sites look at time t, given the scenario's telephony changes."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

from wfm_publish.clock import iso
from wfm_publish_local.simulator.scenario import Edge, TelephonyChange, Trunk, TrunkBase
from wfm_publish_local.simulator.topology import EDGE_KINDS, Topology
from wfm_publish_local.simulator.wire import named

# Entities existed well before the simulator started: their dateModified is this long before t0.
BASE_AGE_SECONDS = 7 * 86400.0


@dataclass(frozen=True)
class Moment:
    t: float  # seconds since simulator start
    t0: float  # epoch of simulator start

    def at(self, t: float) -> str:
        return iso(self.t0 + t)


class TelephonyView:
    """Renders telephony entities at a moment; time only ever moves forward through the changes."""

    def __init__(self, topology: Topology, max_calls_key: str) -> None:
        self.topo = topology
        self.max_calls_key = max_calls_key

    def _changes_on(self, entity_id: str) -> list[TelephonyChange]:
        return [
            c
            for c, targets in zip(self.topo.changes, self.topo.change_targets, strict=True)
            if entity_id in targets
        ]

    @staticmethod
    def _active(changes: list[TelephonyChange], t: float) -> list[TelephonyChange]:
        return [c for c in changes if c.start <= t < c.end]

    @staticmethod
    def _last_moved(changes: list[TelephonyChange], t: float) -> float:
        """The last change boundary (start or end) already passed at t, else the entity's base age."""
        moved = -BASE_AGE_SECONDS
        for c in changes:
            for boundary in (c.start, c.end):
                if boundary <= t:
                    moved = max(moved, boundary)
        return moved

    def blocking_change(self, schedule_id: str, t: float, settle: float) -> TelephonyChange | None:
        """A change the schedule depends on that is in progress or ended less than `settle` ago."""
        for change in self.topo.changes:
            if change.start <= t < change.end + settle and self.topo.blocks(change, schedule_id):
                return change
        return None

    def edge(self, edge: Edge, m: Moment) -> dict[str, Any]:
        site = self.topo.sites[edge.site_id]
        own = [c for c in self._changes_on(edge.id) if c.kind in EDGE_KINDS]
        status, online, software, draining = (
            edge.status_code,
            edge.online_status,
            edge.software_status,
            edge.call_draining_state,
        )
        for c in self._active(own, m.t):
            if c.kind == "softwareUpdate":
                status, software, draining = "INITIALIZING", "IN_PROGRESS", "WAIT"
            else:
                status, online = "INITIALIZING", "OFFLINE"
        version = 1 + sum(1 for c in own if c.start <= m.t)
        # DomainEdgeSoftwareUpdateDto: the last update's execute window (stop once it has ended).
        software_status: dict[str, Any] = {"status": software}
        updates = [c for c in own if c.kind == "softwareUpdate" and c.start <= m.t]
        if updates:
            software_status["executeStartTime"] = m.at(updates[-1].start)
            if updates[-1].end <= m.t:
                software_status["executeStopTime"] = m.at(updates[-1].end)
        out: dict[str, Any] = {
            **named(edge),
            "state": "active",
            "statusCode": status,
            "onlineStatus": online,
            "softwareStatus": software_status,
            "callDrainingState": draining,
            "site": named(site),
            "version": version,
            "dateModified": m.at(self._last_moved(own, m.t)),
            "selfUri": f"/api/v2/telephony/providers/edges/{edge.id}",
        }
        if edge.edge_group_id:
            out["edgeGroup"] = {"id": edge.edge_group_id}
        return out

    def trunk_connected(self, trunk: Trunk, t: float) -> bool:
        if not (trunk.in_service and trunk.enabled and trunk.state == "active"):
            return False
        return not self._active(self._changes_on(trunk.id), t)

    def trunk(self, trunk: Trunk, m: Moment) -> dict[str, Any]:
        edge = self.topo.edges[trunk.edge_id]
        base = self.topo.trunk_bases[trunk.trunk_base_id]
        changes = self._changes_on(trunk.id)
        # Settings changes (a base resave, the trunk itself) move the trunk's version and dateModified;
        # an edge going down only moves its connection state.
        settings = [c for c in changes if c.kind not in EDGE_KINDS]
        connected = self.trunk_connected(trunk, m.t)
        moved = m.at(self._last_moved(changes, m.t))
        address = f"192.0.2.{1 + zlib.crc32(trunk.id.encode()) % 250}"
        # TrunkMetricsOptions / TrunkMetricsNetworkTypeIp: a trunk that is down says why in errorInfo.
        options: dict[str, Any] = {
            "proxyAddress": f"{address}:5060",
            "optionState": connected,
            "optionStateTime": moved,
        }
        ip: dict[str, Any] = {"address": address}
        if not connected:
            error = {"text": "SIP OPTIONS ping unanswered", "code": "trunk.options.failure"}
            options["errorInfo"] = ip["errorInfo"] = error
        out: dict[str, Any] = {
            **named(trunk),
            "state": trunk.state,
            "trunkType": trunk.trunk_type,
            "edge": named(edge),
            "trunkBase": named(base),
            "inService": trunk.in_service,
            "enabled": trunk.enabled,
            "connectedStatus": {
                "connected": connected,
                "connectedStateTime": moved,
            },
            "optionsStatus": [options],
            "registersStatus": [],
            "ipStatus": ip,
            "version": 1 + sum(1 for c in settings if c.kind == "trunkBaseResaved" and c.start <= m.t),
            "dateModified": m.at(self._last_moved(settings, m.t)),
            "selfUri": f"/api/v2/telephony/providers/edges/trunks/{trunk.id}",
        }
        if edge.edge_group_id:
            out["edgeGroup"] = {"id": edge.edge_group_id}
        return out

    def trunk_base(self, base: TrunkBase, m: Moment, with_properties: bool) -> dict[str, Any]:
        changes = [c for c in self._changes_on(base.id) if c.entity_id == base.id]
        trunk_type = next((t.trunk_type for t in self.topo.trunks_by_base.get(base.id, [])), "EXTERNAL")
        out: dict[str, Any] = {
            **named(base),
            "state": "active",
            "trunkType": trunk_type,
            "managed": False,
            "trunkMetabase": {"id": "external_sip_pcv_byoc_carrier.json"},
            "version": 1 + sum(1 for c in changes if c.start <= m.t),
            "dateModified": m.at(self._last_moved(changes, m.t)),
            "selfUri": f"/api/v2/telephony/providers/edges/trunkbasesettings/{base.id}",
        }
        if with_properties:
            out["properties"] = {
                "trunk_enabled": {"type": "boolean", "value": {"default": True, "instance": base.enabled}},
                self.max_calls_key: {
                    "type": "integer",
                    "value": {"default": None, "instance": base.max_concurrent_calls},
                },
            }
        return out

    def site(self, site_id: str) -> dict[str, Any]:
        site = self.topo.sites[site_id]
        return {
            **named(site),
            "state": site.state,
            "edges": [named(e) for e in self.topo.edges_by_site.get(site.id, [])],
            "mediaModel": site.media_model,
            "managed": site.managed,
            "selfUri": f"/api/v2/telephony/providers/edges/sites/{site.id}",
        }

    def trunk_metrics(self, trunk: Trunk, m: Moment) -> dict[str, Any]:
        up = self.trunk_connected(trunk, m.t)
        return {
            "trunk": {"id": trunk.id, "selfUri": f"/api/v2/telephony/providers/edges/trunks/{trunk.id}"},
            "eventTime": m.at(m.t),
            "calls": {
                "inboundCallCount": trunk.inbound_calls if up else 0,
                "outboundCallCount": trunk.outbound_calls if up else 0,
            },
        }
