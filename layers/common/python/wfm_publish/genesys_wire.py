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
    "SITE_OUTBOUND_ROUTES",
    "TRUNK",
    "TRUNKS",
    "TRUNK_BASES",
    "TRUNK_BASE_SETTINGS",
    "TRUNK_METRICS",
    "UNANSWERED",
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
    "MaxCalls",
    "OperationOutcome",
    "OutboundRoute",
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
SITE_OUTBOUND_ROUTES = SITE + "/outboundroutes"
CAMPAIGNS = "/api/v2/outbound/campaigns"
CAMPAIGN = CAMPAIGNS + "/{campaignId}"
LINE_DISTRIBUTION = CAMPAIGN + "/linedistribution"
OUTBOUND_SETTINGS = "/api/v2/outbound/settings"
QUEUE_MEMBERS = "/api/v2/routing/queues/{queueId}/members"
OAUTH = "/oauth/token"

# Genesys does not document the trunk-base property key of "Max Calls" / "Max Concurrent Calls": it is
# configuration (TRUNK_MAX_CALLS_PROPERTY); this default is the simulator's.
MAX_CONCURRENT_CALLS_KEY = "trunk_max_concurrent_calls"
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


OPERATION_ENDS = frozenset({"Complete", "Error", "Canceled"})


@dataclass(frozen=True)
class OperationOutcome:
    """What the schedules topic said about one asynchronous operation (the latest that counts): kept by
    the genesys_events function, read by the confirm step."""

    operation_id: str
    status: str  # Processing | Complete | Error | Canceled
    event_type: str | None
    business_unit_id: str | None
    result: dict[str, Any] | None
    at: float

    @property
    def ended(self) -> bool:
        return self.status in OPERATION_ENDS

    def supersedes(self, held: OperationOutcome | None) -> bool:
        """Whether this may replace what is recorded: nothing yet, or Processing replaced by an end.
        An end is final: a duplicate or a late Processing never moves it."""
        return held is None or (not held.ended and self.ended)


class QueryResultNotice(Lenient):
    """The eventBody of `v2.workforcemanagement.users.{id}.schedules.query`
    (WfmBuScheduleQueryResultTopicBuScheduleSearchResultNotification): where a query's result is."""

    operation_id: str
    business_unit_id: str | None = None
    download_url: str | None = None


class SoftwareStatus(Lenient):
    """DomainEdgeSoftwareUpdateDto: "Details about an in-progress or recently in-progress Edge software
    upgrade. This node appears only if a software upgrade was recently initiated for this Edge" (SDK
    `Edge.softwareStatus`). `status` is one of NONE, INIT, IN_PROGRESS, EXPIRED, EXCEPTION, ABORTED,
    FAILED, SUCCEEDED, DELETE: a node that is still there may describe an update that ended days ago."""

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
    """A trunk instance (SDK model `Trunk`). Two switches that read alike and are not:

    - `inService`: "True if this trunk is in-service. This comes from the trunk_enabled property of the
      referenced trunk base": an admin's switch (Admin > Telephony > Trunks, the trunk's State).
    - `enabled`: "True if the Edge used by this trunk is in-service": the Edge's state, not the trunk's.
    """

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

    @property
    def switched_off(self) -> bool:
        """An admin switched it off (its trunk base's trunk_enabled): on purpose, not a change to wait for."""
        return self.in_service is False

    @property
    def edge_out_of_service(self) -> bool:
        """Its Edge is out of service: it carries no calls until the Edge is back."""
        return self.enabled is False


class TrunkCalls(Lenient):
    inbound_call_count: int = 0
    outbound_call_count: int = 0

    @property
    def total(self) -> int:
        return self.inbound_call_count + self.outbound_call_count


@dataclass(frozen=True)
class MaxCalls:
    """A trunk base's maximum concurrent calls, as Genesys' "Configure maximum call settings" describes
    it (https://help.mypurecloud.com/articles/configure-maximum-call-settings/): on BYOC Premises
    (External SIP) "Max Calls", where 0 means unlimited (bounded by the Edges' own concurrent call
    capacity); on BYOC Cloud (BYOC Carrier, BYOC PBX) "Max Concurrent Calls", Unlimited (the default,
    and Genesys' recommendation) or Limited to a value. `limit` None: no limit, or none could be read."""

    limit: int | None
    state: str  # "limited" | "unlimited" | "unreadable"
    why: str | None = None  # unreadable: what was missing

    @classmethod
    def limited(cls, limit: int) -> MaxCalls:
        return cls(limit, "limited")

    @classmethod
    def unlimited(cls) -> MaxCalls:
        return cls(None, "unlimited")

    @classmethod
    def unreadable(cls, why: str) -> MaxCalls:
        return cls(None, "unreadable", why)


class TrunkBaseSettings(Lenient):
    """SDK model `TrunkBase`, from `GET /api/v2/telephony/providers/edges/trunkbasesettings/{id}`:
    "Managed properties will not be returned unless the user is assigned the internal:trunk:edit
    permission" (the SDK's `get_telephony_providers_edges_trunkbasesetting`), so a managed base (Genesys
    Cloud Voice) may answer without the property that holds its Max Calls."""

    id: str
    name: str | None = None
    state: str | None = None
    trunk_type: str | None = None
    version: int | None = None
    date_modified: str | None = None
    managed: bool | None = None
    trunk_metabase: Ref | None = None
    properties: dict[str, Any] = Field(default_factory=dict)

    def property_value(self, key: str) -> Any:
        """`properties[key].value.instance`, or None when the property or its instance is absent."""
        prop = self.properties.get(key)
        value = prop.get("value") if isinstance(prop, dict) else None
        return value.get("instance") if isinstance(value, dict) else None

    @property
    def switched_off(self) -> bool:
        """`trunk_enabled` false: every trunk of this base is out of service by an admin's choice."""
        return self.property_value("trunk_enabled") is False

    def max_calls(self, key: str = MAX_CONCURRENT_CALLS_KEY) -> MaxCalls:
        """The base's Max Calls under the configured property key: 0 is unlimited; a property that is
        absent (hidden on a managed base, or another key in this org) is unreadable, never zero lines."""
        if key not in self.properties:
            hidden = (
                " (a managed trunk base: its properties need internal:trunk:edit)" if self.managed else ""
            )
            return MaxCalls.unreadable(f"no property {key!r}{hidden}")
        value = self.property_value(key)
        if value is None:
            return MaxCalls.unreadable(f"{key!r} has no value")
        if isinstance(value, bool):
            return MaxCalls.unreadable(f"{key!r} is a boolean")
        try:
            limit = int(value)
        except (TypeError, ValueError):
            return MaxCalls.unreadable(f"{key!r} is not a number")
        return MaxCalls.unlimited() if limit <= 0 else MaxCalls.limited(limit)


class Site(Lenient):
    id: str
    name: str | None = None
    state: str | None = None
    edges: list[Ref] = Field(default_factory=list)
    media_model: str | None = None
    managed: bool | None = None


class OutboundRoute(Lenient):
    """SDK model `OutboundRouteBase` (`GET …/sites/{siteId}/outboundroutes`): how a site's calls leave.
    `externalTrunkBases`: "Trunk base settings of trunkType EXTERNAL" that the route sends calls to. On a
    Cloud media site (BYOC Cloud, Genesys Cloud Voice) there may be no premises Edge at all: these trunk
    bases and their trunks are the telephony its campaigns dial through."""

    id: str
    name: str | None = None
    state: str | None = None
    enabled: bool | None = None
    external_trunk_bases: list[Ref] = Field(default_factory=list)


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


UNANSWERED = "Unanswered"  # PendingQuery.status of a key whose query result never came


@dataclass(frozen=True)
class PendingQuery:
    """An agent-schedule query Genesys answered `Processing`; its result comes by notification."""

    operation_id: str
    started_at: float  # epoch seconds
    # then Complete | Error | Canceled, from the query result notification; "Unanswered": it never came
    status: str = "Processing"
    download_url: str | None = None


class QueryBook(Protocol):
    """Where pending queries live: the jobs table in Lambda (any container may collect a query another
    one started), memory in a single process."""

    def pending_query(self, key: str) -> PendingQuery | None: ...
    def begin_query(self, key: str, operation_id: str, started_at: float) -> PendingQuery: ...
    def end_query(self, key: str) -> None: ...
    def mark_unanswered(self, key: str, at: float) -> None: ...
