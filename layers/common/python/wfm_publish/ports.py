"""Genesys as the core uses it, as Protocols the one adapter (`genesys.GenesysClient`) satisfies: what
readiness reads, what a scope reads on top, what capacity reads on top of that, and what the pipeline's
steps call besides. Their own module, below readiness, scope, capacity and the pipeline, which all
name them; imported for types only (services.py wires the client, and mypy holds it to them there)."""

from __future__ import annotations

from typing import Any, Protocol

from wfm_publish.genesys_wire import (
    AgentSchedule,
    Campaign,
    Edge,
    LineDistribution,
    OutboundRoute,
    OutboundSettings,
    Schedule,
    Site,
    Trunk,
    TrunkBaseSettings,
    UpdateOperation,
)


class TelephonyReader(Protocol):
    def edges(self, *, site_id: str | None = None, edge_group_id: str | None = None) -> list[Edge]: ...
    def edge(self, edge_id: str) -> Edge: ...
    def trunks(
        self,
        *,
        edge_id: str | None = None,
        trunk_type: str | None = "EXTERNAL",
        trunk_base_id: str | None = None,
    ) -> list[Trunk]: ...
    def trunk(self, trunk_id: str) -> Trunk: ...
    def trunk_base_settings(self, trunk_base_id: str) -> TrunkBaseSettings: ...
    def outbound_routes(self, site_id: str) -> list[OutboundRoute]: ...


class ScopeReader(TelephonyReader, Protocol):
    def schedule(
        self, bu_id: str, week_id: str, schedule_id: str, *, with_agents: bool = False
    ) -> Schedule: ...
    def campaigns(self) -> list[Campaign]: ...
    def queue_members(self, queue_id: str) -> list[str]: ...
    def site(self, site_id: str) -> Site: ...


class CapacityReader(ScopeReader, Protocol):
    def business_unit(self, bu_id: str) -> dict[str, Any]: ...
    def agent_schedules(
        self, bu_id: str, week_id: str, schedule_id: str, management_unit_id: str
    ) -> list[AgentSchedule]: ...
    def line_distribution(self, campaign_id: str) -> LineDistribution: ...
    def outbound_settings(self) -> OutboundSettings: ...


class PipelineGenesys(CapacityReader, Protocol):
    """What the steps call on Genesys: the readers of scope, readiness and capacity (CapacityReader
    holds them all), locating and publishing the schedule, and the calls made (the timeline's reads)."""

    @property
    def calls_made(self) -> int: ...
    def resolve_schedule(self, schedule_id: str) -> tuple[str, str]: ...
    def publish(self, bu_id: str, week_id: str, schedule: Schedule) -> UpdateOperation: ...
