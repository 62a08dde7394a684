"""What Genesys Cloud answers, as the client reads it: route templates and wire models.

No `requests` here: readiness, scope and capacity read these models without the HTTP stack. Every
field is an official field of the model its route answers (docs/genesys-models.json, from the SDK;
tests/unit/test_genesys_wire.py holds each alias to it). Lenient: new fields must not break us.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import Field, ValidationError

from wfm_publish.errors import GenesysServerError
from wfm_publish.models import Lenient

__all__ = [
    "AGENT_SCHEDULES_QUERY",
    "BUSINESS_UNIT",
    "CAMPAIGN",
    "CAMPAIGNS",
    "EDGE",
    "EDGES",
    "LINE_DISTRIBUTION",
    "MAX_CONCURRENT_CALLS_KEY",
    "OAUTH",
    "OUTBOUND_SETTINGS",
    "QUERY_RESULT_TOPIC",
    "QUEUE_MEMBERS",
    "SCHEDULE",
    "SCHEDULES",
    "SCHEDULES_TOPIC",
    "SITE",
    "SITES",
    "TRUNK",
    "TRUNKS",
    "TRUNK_BASES",
    "TRUNK_BASE_SETTINGS",
    "TRUNK_METRICS",
    "UPDATE",
    "UPLOAD_URL",
    "WFM",
    "Activity",
    "AgentSchedule",
    "Campaign",
    "ConnectedStatus",
    "Edge",
    "IdRef",
    "LineDistribution",
    "LinesAllocated",
    "LinesReserved",
    "OutboundSettings",
    "PendingQuery",
    "QueryBook",
    "QueryResultNotice",
    "Ref",
    "Schedule",
    "ScheduleAgent",
    "ScheduleManagementUnit",
    "ScheduleMetadata",
    "ScheduleNotice",
    "Shift",
    "Site",
    "SoftwareStatus",
    "Trunk",
    "TrunkBaseSettings",
    "TrunkCalls",
    "UpdateOperation",
    "agent_schedules_of",
]

# Route templates: the path of every call is one of these with its ids filled in (logged as `route`).
WFM = "/api/v2/workforcemanagement/businessunits"
BUSINESS_UNIT = WFM + "/{buId}"
SCHEDULES = BUSINESS_UNIT + "/weeks/{weekId}/schedules"
SCHEDULE = SCHEDULES + "/{scheduleId}"
AGENT_SCHEDULES_QUERY = SCHEDULE + "/agentschedules/query"
UPDATE = SCHEDULE + "/update"
UPLOAD_URL = UPDATE + "/uploadurl"
EDGES = "/api/v2/telephony/providers/edges"
EDGE = EDGES + "/{edgeId}"
TRUNKS = EDGES + "/trunks"
TRUNK = TRUNKS + "/{trunkId}"
TRUNK_METRICS = TRUNKS + "/metrics"
TRUNK_BASES = EDGES + "/trunkbasesettings"
TRUNK_BASE_SETTINGS = TRUNK_BASES + "/{trunkBaseId}"
SITES = EDGES + "/sites"
SITE = SITES + "/{siteId}"
CAMPAIGNS = "/api/v2/outbound/campaigns"
CAMPAIGN = CAMPAIGNS + "/{campaignId}"
LINE_DISTRIBUTION = CAMPAIGN + "/linedistribution"
OUTBOUND_SETTINGS = "/api/v2/outbound/settings"
QUEUE_MEMBERS = "/api/v2/routing/queues/{queueId}/members"
OAUTH = "/oauth/token"

MAX_CONCURRENT_CALLS_KEY = "trunk_max_concurrent_calls"  # the simulator's key; configuration in prod
# Asynchronous outcomes arrive on notification topics (Genesys's EventBridge integration).
SCHEDULES_TOPIC = "v2.workforcemanagement.businessunits.{id}.schedules"
QUERY_RESULT_TOPIC = "v2.workforcemanagement.users.{id}.schedules.query"


class Ref(Lenient):
    """A DomainEntityRef (or a fuller entity read for its id and name)."""

    id: str
    name: str | None = None


class IdRef(Lenient):
    """A reference without a name: UserReference, ManagementUnitReference, WorkPlanReference."""

    id: str


class ScheduleMetadata(Lenient):
    version: int
    date_modified: str | None = None
    modified_by: IdRef | None = None


class ScheduleAgent(Lenient):
    """An agent of a management unit in a schedule: a UserReference `{id}`."""

    id: str | None = None

    @property
    def user_id(self) -> str | None:
        return self.id


class ScheduleManagementUnit(Lenient):
    management_unit: IdRef
    agent_count: int | None = None
    agents: list[ScheduleAgent] = Field(default_factory=list)

    @property
    def agent_ids(self) -> list[str]:
        return [a.user_id for a in self.agents if a.user_id]


class Schedule(Lenient):
    id: str
    week_date: str | None = None
    week_count: int | None = None
    description: str | None = None
    published: bool = False
    metadata: ScheduleMetadata
    management_units: list[ScheduleManagementUnit] = Field(default_factory=list)
    # The metadata exactly as read: the publish upload sends it back untouched (the version in it
    # is what Genesys compares to detect a concurrent edit).
    raw_metadata: dict[str, Any] = Field(default_factory=dict, exclude=True)

    @classmethod
    def from_wire(cls, body: dict[str, Any]) -> Schedule:
        schedule = cls.model_validate(body)
        schedule.raw_metadata = json.loads(json.dumps(body.get("metadata") or {}))  # a deep copy
        return schedule

    @property
    def agent_ids(self) -> list[str]:
        """Every agent of the schedule's management units (needs `with_agents=True`)."""
        return list(dict.fromkeys(a for mu in self.management_units for a in mu.agent_ids))


class UpdateOperation(Lenient):
    status: str
    operation_id: str | None = None


class Activity(Lenient):
    start_date: str
    length_minutes: int
    activity_code_id: str | None = None
    paid: bool | None = None
    description: str | None = None


class Shift(Lenient):
    id: str | None = None
    start_date: str
    length_minutes: int
    activities: list[Activity] = Field(default_factory=list)


class AgentSchedule(Lenient):
    user: IdRef
    shifts: list[Shift] = Field(default_factory=list)
    work_plan: IdRef | None = None


class ScheduleNotice(Lenient):
    """The eventBody of `v2.workforcemanagement.businessunits.{id}.schedules`
    (WfmBuScheduleTopicBuScheduleNotification): how an asynchronous schedule operation ended."""

    operation_id: str
    status: str  # Processing | Complete | Canceled | Error
    event_type: str | None = None  # Update | Import | Copy | Delete
    result: dict[str, Any] | None = None  # the schedule's metadata when Complete


class QueryResultNotice(Lenient):
    """The eventBody of `v2.workforcemanagement.users.{id}.schedules.query`
    (WfmBuScheduleQueryResultTopicBuScheduleSearchResultNotification): where a query's result is."""

    operation_id: str
    business_unit_id: str | None = None
    download_url: str | None = None


class SoftwareStatus(Lenient):
    """DomainEdgeSoftwareUpdateDto: the Edge's software update, if any."""

    status: str | None = None
    execute_start_time: str | None = None
    execute_stop_time: str | None = None


class Edge(Lenient):
    id: str
    name: str | None = None
    state: str | None = None
    status_code: str | None = None
    online_status: str | None = None
    software_status: SoftwareStatus | None = None
    call_draining_state: str | None = None
    date_modified: str | None = None
    version: int | None = None
    site: Ref | None = None
    edge_group: Ref | None = None


class ConnectedStatus(Lenient):
    connected: bool | None = None
    connected_state_time: str | None = None


class Trunk(Lenient):
    id: str
    name: str | None = None
    state: str | None = None
    trunk_type: str | None = None
    in_service: bool | None = None
    enabled: bool | None = None
    connected_status: ConnectedStatus | None = None
    date_modified: str | None = None
    version: int | None = None
    edge: Ref | None = None
    edge_group: Ref | None = None
    trunk_base: Ref | None = None


class TrunkCalls(Lenient):
    inbound_call_count: int = 0
    outbound_call_count: int = 0

    @property
    def total(self) -> int:
        return self.inbound_call_count + self.outbound_call_count


class TrunkBaseSettings(Lenient):
    id: str
    name: str | None = None
    state: str | None = None
    trunk_type: str | None = None
    version: int | None = None
    date_modified: str | None = None
    properties: dict[str, Any] = Field(default_factory=dict)

    def property_value(self, key: str) -> Any:
        """`properties[key].value.instance`, or None when the property or its instance is absent."""
        prop = self.properties.get(key)
        value = prop.get("value") if isinstance(prop, dict) else None
        return value.get("instance") if isinstance(value, dict) else None

    def max_concurrent_calls(self, key: str = MAX_CONCURRENT_CALLS_KEY) -> int | None:
        """The trunk base's Max Concurrent Calls (the property key is configuration)."""
        value = self.property_value(key)
        if isinstance(value, bool) or value is None:
            return None
        try:
            return int(value)
        except (TypeError, ValueError):
            return None


class Site(Lenient):
    id: str
    name: str | None = None
    state: str | None = None
    edges: list[Ref] = Field(default_factory=list)
    media_model: str | None = None
    managed: bool | None = None


class Campaign(Lenient):
    id: str
    name: str | None = None
    dialing_mode: str | None = None
    campaign_status: str | None = None
    queue: Ref | None = None  # agentless campaigns have none
    edge_group: Ref | None = None
    site: Ref | None = None
    outbound_line_count: int | None = None
    max_calls_per_agent: int | None = None
    version: int | None = None


class LinesReserved(Lenient):
    """CampaignOutboundLinesReservation: lines an agentless campaign holds."""

    campaign: Ref
    lines_reserved: int | None = None


class LinesAllocated(Lenient):
    """CampaignOutboundLinesAllocation: lines a campaign is given dynamically."""

    campaign: Ref
    lines_assigned: int | None = None


class LineDistribution(Lenient):
    """CampaignOutboundLinesDistribution: the outbound lines of the campaign's site or edge group."""

    max_outbound_line_count: int | None = None
    max_line_utilization: float | None = None
    available_outbound_lines: int | None = None
    reserved_lines: int | None = None
    campaigns_with_reserved_lines: list[LinesReserved] = Field(default_factory=list)
    campaigns_with_dynamically_allocated_lines: list[LinesAllocated] = Field(default_factory=list)


class OutboundSettings(Lenient):
    max_line_utilization: float | None = None
    max_calls_per_agent: int | None = None


def agent_schedules_of(result: dict[str, Any]) -> list[AgentSchedule]:
    """The agent schedules of a query result (BuAgentSchedulesQueryResponse)."""
    try:
        return [AgentSchedule.model_validate(e) for e in result.get("agentSchedules") or []]
    except ValidationError as exc:
        raise GenesysServerError(f"unreadable agent schedules: {exc.error_count()} problems") from exc


# --- pending agent-schedule queries ---------------------------------------------------------------


@dataclass(frozen=True)
class PendingQuery:
    """An agent-schedule query Genesys answered `Processing`; its result comes by notification."""

    operation_id: str
    started_at: float  # epoch seconds
    status: str = "Processing"  # then Complete | Error | Canceled, from the query result notification
    download_url: str | None = None


class QueryBook(Protocol):
    """Where pending queries live: the jobs table in Lambda (any container may collect a query another
    one started), memory in a single process."""

    def pending_query(self, key: str) -> PendingQuery | None: ...
    def begin_query(self, key: str, operation_id: str, started_at: float) -> PendingQuery: ...
    def end_query(self, key: str) -> None: ...
