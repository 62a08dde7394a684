"""The org's static shape (who is where) and the telephony a schedule depends on.

Everything here is computed once from the scenario; time-driven state lives in model.py.
"""

from __future__ import annotations

from collections import defaultdict

from wfm_publish_local.simulator.scenario import (
    Agent,
    BusinessUnit,
    Campaign,
    Edge,
    ManagementUnit,
    OutboundRoute,
    Queue,
    Scenario,
    Schedule,
    Site,
    TelephonyChange,
    Trunk,
    TrunkBase,
)

EDGE_KINDS = frozenset({"softwareUpdate", "edgeNotActive"})


class Topology:
    """Indexes over the scenario: lookups by id and the edges between entities."""

    def __init__(self, scenario: Scenario) -> None:
        s = scenario
        self.scenario = s
        self.business_units: dict[str, BusinessUnit] = {b.id: b for b in s.business_units}
        self.management_units: dict[str, ManagementUnit] = {m.id: m for m in s.management_units}
        self.agents: dict[str, Agent] = {a.id: a for a in s.agents}
        self.schedules: dict[str, Schedule] = {x.id: x for x in s.schedules}
        self.queues: dict[str, Queue] = {q.id: q for q in s.queues}
        self.sites: dict[str, Site] = {x.id: x for x in s.sites}
        self.edges: dict[str, Edge] = {e.id: e for e in s.edges}
        self.trunk_bases: dict[str, TrunkBase] = {b.id: b for b in s.trunk_bases}
        self.trunks: dict[str, Trunk] = {t.id: t for t in s.trunks}
        self.campaigns: dict[str, Campaign] = {c.id: c for c in s.campaigns}
        self.changes: list[TelephonyChange] = [e for e in s.events if isinstance(e, TelephonyChange)]

        self.mus_by_bu: dict[str, list[str]] = defaultdict(list)
        for m in s.management_units:
            self.mus_by_bu[m.business_unit_id].append(m.id)
        self.queue_members: dict[str, list[str]] = {q.id: self._members(q) for q in s.queues}
        self.queues_of_agent: dict[str, set[str]] = defaultdict(set)
        for qid, members in self.queue_members.items():
            for a in members:
                self.queues_of_agent[a].add(qid)
        self.campaigns_by_queue: dict[str, list[Campaign]] = defaultdict(list)
        for c in s.campaigns:
            self.campaigns_by_queue[c.queue_id].append(c)
        self.edges_by_site: dict[str, list[Edge]] = defaultdict(list)
        self.edges_by_group: dict[str, list[Edge]] = defaultdict(list)
        for e in s.edges:
            self.edges_by_site[e.site_id].append(e)
            if e.edge_group_id:
                self.edges_by_group[e.edge_group_id].append(e)
        self.trunks_by_edge: dict[str, list[Trunk]] = defaultdict(list)
        self.trunks_by_site: dict[str, list[Trunk]] = defaultdict(list)  # cloud trunks: no Edge
        self.trunks_by_base: dict[str, list[Trunk]] = defaultdict(list)
        for t in s.trunks:
            if t.edge_id is not None:
                self.trunks_by_edge[t.edge_id].append(t)
                self.trunks_by_site[self.edges[t.edge_id].site_id].append(t)
            else:
                self.trunks_by_site[t.site_id or ""].append(t)
            self.trunks_by_base[t.trunk_base_id].append(t)
        self._scopes: dict[str, frozenset[str]] = {}
        # Parallel to self.changes (pydantic models are not hashable, so no dict keyed by change).
        self.change_targets: list[frozenset[str]] = [self._change_targets(c) for c in self.changes]

    def _members(self, q: Queue) -> list[str]:
        members = dict.fromkeys(q.members)  # keeps order, drops repeats
        for mu_id in q.member_management_unit_ids:
            members.update(dict.fromkeys(self.management_units[mu_id].agents))
        return list(members)

    def schedule_mu_ids(self, schedule: Schedule) -> list[str]:
        if schedule.management_unit_ids is not None:
            return list(schedule.management_unit_ids)
        return list(self.mus_by_bu.get(schedule.business_unit_id, []))

    def schedule_agents(self, schedule: Schedule) -> list[tuple[str, str]]:
        """(management unit id, agent id) for every agent the schedule covers."""
        return [(m, a) for m in self.schedule_mu_ids(schedule) for a in self.management_units[m].agents]

    def campaign_edges(self, campaign: Campaign) -> list[Edge]:
        if campaign.site_id is not None:
            return list(self.edges_by_site.get(campaign.site_id, []))
        return list(self.edges_by_group.get(campaign.edge_group_id or "", []))

    def site_routes(self, site: Site) -> list[OutboundRoute]:
        """The site's outbound routes; by default one over the trunk bases of the site's trunks."""
        if site.outbound_routes is not None:
            return list(site.outbound_routes)
        bases = list(dict.fromkeys(t.trunk_base_id for t in self.trunks_by_site.get(site.id, [])))
        return [
            OutboundRoute(
                id=f"route-{site.id}", name=f"{site.name or site.id} outbound", trunk_base_ids=bases
            )
        ]

    def campaign_trunks(self, campaign: Campaign) -> list[Trunk]:
        """The EXTERNAL trunks a campaign's calls go out through: a premises site's (or edge group's)
        Edges' trunks; a Cloud site's trunks of the trunk bases its enabled outbound routes name."""
        site = self.sites.get(campaign.site_id or "")
        if site is not None and site.cloud:
            bases = {b for r in self.site_routes(site) if r.enabled for b in r.trunk_base_ids}
            trunks = [t for t in self.trunks_by_site.get(site.id, []) if t.trunk_base_id in bases]
        else:
            trunks = [t for e in self.campaign_edges(campaign) for t in self.trunks_by_edge.get(e.id, [])]
        return [t for t in trunks if t.trunk_type == "EXTERNAL"]

    def schedule_scope(self, schedule_id: str) -> frozenset[str]:
        """Telephony the schedule depends on: agents -> queues -> campaigns on -> edges -> external trunks."""
        if schedule_id not in self._scopes:
            self._scopes[schedule_id] = self._compute_scope(schedule_id)
        return self._scopes[schedule_id]

    def _compute_scope(self, schedule_id: str) -> frozenset[str]:
        schedule = self.schedules[schedule_id]
        queues = {q for _, a in self.schedule_agents(schedule) for q in self.queues_of_agent.get(a, ())}
        scope: set[str] = set()
        for qid in sorted(queues):
            for campaign in self.campaigns_by_queue.get(qid, []):
                if campaign.campaign_status != "on":
                    continue
                scope.update(edge.id for edge in self.campaign_edges(campaign))
                for trunk in self.campaign_trunks(campaign):
                    scope.update((trunk.id, trunk.trunk_base_id))
        return frozenset(scope)

    def _change_targets(self, change: TelephonyChange) -> frozenset[str]:
        """Entities whose state the change shows: an edge's trunks go down with it, a base's trunks too."""
        targets = {change.entity_id}
        if change.kind in EDGE_KINDS:
            targets.update(t.id for t in self.trunks_by_edge.get(change.entity_id, []))
        elif change.kind == "trunkBaseResaved":
            targets.update(t.id for t in self.trunks_by_base.get(change.entity_id, []))
        return frozenset(targets)

    def entity_name(self, entity_id: str) -> str:
        for table in (self.edges, self.trunks, self.trunk_bases):
            entity = table.get(entity_id)
            if entity is not None:
                return entity.name or entity.id
        return entity_id

    def blocks(self, change: TelephonyChange, schedule_id: str) -> bool:
        return change.scope == "org" or change.entity_id in self.schedule_scope(schedule_id)
