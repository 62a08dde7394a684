"""How edges, trunks, trunk bases and sites look at time t, given the scenario's telephony changes."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

from wfm_publish.clock import iso
from wfm_publish_local.simulator.scenario import Edge, OutboundRoute, Site, TelephonyChange, Trunk, TrunkBase
from wfm_publish_local.simulator.topology import EDGE_KINDS, Topology
from wfm_publish_local.simulator.wire import named

# Entities existed well before the simulator started: their dateModified is this long before t0.
BASE_AGE_SECONDS = 7 * 86400.0
# The permission without which a managed trunk base's properties are not returned (the SDK's
# get_telephony_providers_edges_trunkbasesetting: "Managed properties will not be returned unless the
# user is assigned the internal:trunk:edit permission").
SEE_MANAGED = "internal:trunk:edit"
METABASE_BYOC_CARRIER = "external_sip_pcv_byoc_carrier.json"  # "Generic BYOC Carrier"
METABASE_CLOUD_VOICE = "external_sip_pcv_aws.json"  # "PureCloud Voice - AWS": Genesys Cloud Voice


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
        out: dict[str, Any] = {
            **named(edge),
            "state": "active",
            "statusCode": status,
            "onlineStatus": online,
            "callDrainingState": draining,
            "site": named(site),
            "version": version,
            "dateModified": m.at(self._last_moved(own, m.t)),
            "selfUri": f"/api/v2/telephony/providers/edges/{edge.id}",
        }
        # DomainEdgeSoftwareUpdateDto, only while an update is recent: the last update's execute window.
        updates = [c for c in own if c.kind == "softwareUpdate" and c.start <= m.t]
        if updates:
            window = {"status": software or "SUCCEEDED", "executeStartTime": m.at(updates[-1].start)}
            if updates[-1].end <= m.t:
                window["executeStopTime"] = m.at(updates[-1].end)
            out["softwareStatus"] = window
        elif software is not None:  # the scenario's own, from before the start
            stamp = "executeStartTime" if software == "INIT" else "executeStopTime"
            out["softwareStatus"] = {"status": software}
            if edge.software_update_at is not None:
                out["softwareStatus"][stamp] = m.at(edge.software_update_at)
        if edge.edge_group_id:
            out["edgeGroup"] = {"id": edge.edge_group_id}
        return out

    def edge_in_service(self, trunk: Trunk) -> bool:
        """Trunk.enabled: "True if the Edge used by this trunk is in-service" (a cloud trunk has none)."""
        return trunk.edge_id is None or self.topo.edges[trunk.edge_id].in_service

    def trunk_connected(self, trunk: Trunk, t: float) -> bool:
        base = self.topo.trunk_bases[trunk.trunk_base_id]
        if not (base.enabled and self.edge_in_service(trunk) and trunk.state == "active"):
            return False
        return not self._active(self._changes_on(trunk.id), t)

    def trunk(self, trunk: Trunk, m: Moment) -> dict[str, Any]:
        edge = self.topo.edges[trunk.edge_id] if trunk.edge_id else None
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
            "trunkBase": named(base),
            "inService": base.enabled,  # "comes from the trunk_enabled property of the referenced trunk base"
            "enabled": self.edge_in_service(trunk),
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
        if edge is not None:
            out["edge"] = named(edge)
            if edge.edge_group_id:
                out["edgeGroup"] = {"id": edge.edge_group_id}
        return out

    def trunk_base(self, base: TrunkBase, m: Moment, permissions: frozenset[str]) -> dict[str, Any]:
        """TrunkBase with its properties, as the API answers by default; a managed base's properties
        only to a client with internal:trunk:edit."""
        changes = [c for c in self._changes_on(base.id) if c.entity_id == base.id]
        trunk_type = next((t.trunk_type for t in self.topo.trunks_by_base.get(base.id, [])), "EXTERNAL")
        metabase = base.metabase or (METABASE_CLOUD_VOICE if base.managed else METABASE_BYOC_CARRIER)
        out: dict[str, Any] = {
            **named(base),
            "state": "active",
            "trunkType": trunk_type,
            "managed": base.managed,
            "trunkMetabase": {"id": metabase},
            "version": 1 + sum(1 for c in changes if c.start <= m.t),
            "dateModified": m.at(self._last_moved(changes, m.t)),
            "selfUri": f"/api/v2/telephony/providers/edges/trunkbasesettings/{base.id}",
            "properties": {},
        }
        if not base.managed or SEE_MANAGED in permissions:
            out["properties"] = {
                "trunk_enabled": {"type": "boolean", "value": {"default": True, "instance": base.enabled}},
                self.max_calls_key: {
                    "type": "integer",
                    "value": {"default": 0, "instance": base.max_concurrent_calls},
                },
            }
        return out

    def outbound_route(self, site: Site, route: OutboundRoute) -> dict[str, Any]:
        """OutboundRouteBase: where the site's calls go out."""
        return {
            **named(route),
            "state": "active",
            "enabled": route.enabled,
            "classificationTypes": ["National", "International"],
            "distribution": "SEQUENTIAL",
            "externalTrunkBases": [
                {
                    **named(self.topo.trunk_bases[b]),
                    "selfUri": f"/api/v2/telephony/providers/edges/trunkbasesettings/{b}",
                }
                for b in route.trunk_base_ids
            ],
            "version": 1,
            "selfUri": f"/api/v2/telephony/providers/edges/sites/{site.id}/outboundroutes/{route.id}",
        }

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
