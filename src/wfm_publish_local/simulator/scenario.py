"""The scenario file: the org a simulator serves and the events it plays (see scenarios/README.md).

Keys are camelCase like the Genesys wire format; unknown keys are rejected so a typo in a scenario
fails loudly instead of silently changing nothing.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
DayOfWeek = Literal["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
ShortDay = Literal["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
TelephonyKind = Literal["softwareUpdate", "edgeNotActive", "trunkDisconnected", "trunkBaseResaved"]
DialingMode = Literal["agentless", "preview", "power", "predictive", "progressive", "external"]
CampaignStatus = Literal["on", "stopping", "off", "complete", "invalid", "forced_off", "forced_stopping"]

_WORKDAYS: tuple[int | ShortDay, ...] = (0, 1, 2, 3, 4)
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    def _exactly_one(self, what: str, first: str, second: str) -> None:
        """Of the two fields (snake_case names), one is set and the other is not."""
        if (getattr(self, first) is None) == (getattr(self, second) is None):
            raise ValueError(f"{what} needs exactly one of {to_camel(first)} or {to_camel(second)}")


class Credentials(_Model):
    client_id: str = "local-client"
    client_secret: str = "local-secret"  # noqa: S105 - the documented local default
    # Token lifetime in seconds (Genesys allows 5 min to 48 h per OAuth client, default 24 h).
    expires_in: int = Field(default=86400, ge=1)
    # Permissions of the OAuth client's role beyond what every route needs. Only one changes an answer
    # here: `internal:trunk:edit`, without which a managed trunk base's properties are not returned.
    permissions: list[str] = Field(default_factory=list)


class Division(_Model):
    id: str = "division-home"
    name: str = "Home"


class BusinessUnit(_Model):
    id: str
    name: str = ""
    time_zone: str = "UTC"
    start_day_of_week: DayOfWeek = "Monday"
    division: Division = Field(default_factory=Division)

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA time zone {value!r}") from exc
        return value


class Agent(_Model):
    id: str
    name: str = ""


class ManagementUnit(_Model):
    id: str
    name: str = ""
    business_unit_id: str
    agents: list[str] = Field(default_factory=list)


class Activity(_Model):
    offset_minutes: int = Field(default=0, ge=0)
    length_minutes: int = Field(gt=0)
    activity_code_id: str = "0"
    description: str = ""
    counts_as_paid_time: bool = True


class ShiftGroup(_Model):
    """A compact shift pattern for many agents: the same shift on the listed days of each week."""

    # Who works it: explicit agents, a management unit's agents, or (neither) every schedule agent.
    agents: list[str] | None = None
    management_unit_id: str | None = None
    # Day offsets from the schedule's week date (0 = first day) or weekday names (every week).
    days: list[int | ShortDay] = Field(default_factory=lambda: list(_WORKDAYS))
    start: str = "09:00"  # business-unit local time
    length_minutes: int = Field(default=480, gt=0, le=1440)
    # Agent i starts (i mod staggerSlots) * staggerMinutes later, so big groups do not all start at once.
    stagger_minutes: int = Field(default=0, ge=0)
    stagger_slots: int = Field(default=1, ge=1)
    activities: list[Activity] | None = None
    work_plan_id: str = "workplan-standard"

    @field_validator("start")
    @classmethod
    def _hhmm(cls, value: str) -> str:
        if not _HHMM.match(value):
            raise ValueError(f"start must be HH:MM (24 h), got {value!r}")
        return value


class Schedule(_Model):
    id: str
    business_unit_id: str
    week_id: dt.date  # yyyy-MM-dd, on the business unit's start day of week
    week_count: int = Field(default=1, ge=1, le=6)
    version: int = Field(default=1, ge=1)
    published: bool = False
    description: str = ""
    # Management units in the schedule; default: every management unit of the business unit.
    management_unit_ids: list[str] | None = None
    shifts: list[ShiftGroup] = Field(default_factory=list)
    created_by: str = "user-scheduler"
    short_term_forecast_id: str | None = None


class Queue(_Model):
    id: str
    name: str = ""
    members: list[str] = Field(default_factory=list)
    # Shorthand: every agent of these management units is a member too.
    member_management_unit_ids: list[str] = Field(default_factory=list)


# What a site's telephony is, as Genesys sells it: BYOC Premises (Edges on site, External SIP trunks
# whose Max Calls 0 means unlimited), BYOC Cloud (no premises Edges; BYOC Carrier / PBX trunks whose Max
# Concurrent Calls is Unlimited or Limited) or Genesys Cloud Voice (Genesys' own carrier: Cloud media,
# managed trunk bases). An org with sites of several kinds is a hybrid.
SiteKind = Literal["byocPremises", "byocCloud", "genesysCloudVoice"]
_MEDIA_OF_KIND = {"byocPremises": "Premises", "byocCloud": "Cloud", "genesysCloudVoice": "Cloud"}


class OutboundRoute(_Model):
    """A site's outbound route: the EXTERNAL trunk bases its calls go out through."""

    id: str
    name: str = ""
    trunk_base_ids: list[str]
    enabled: bool = True


class Site(_Model):
    id: str
    name: str = ""
    state: Literal["active", "inactive", "deleted"] = "active"
    kind: SiteKind | None = None  # default: from mediaModel (Cloud: byocCloud), else byocPremises
    media_model: Literal["Premises", "Cloud"] | None = None  # default: from kind
    managed: bool | None = None  # default: a Genesys Cloud Voice site is managed
    # Default: one route over the trunk bases of the site's trunks (its Edges' trunks, or its cloud trunks).
    outbound_routes: list[OutboundRoute] | None = None
    # The line distribution's maxOutboundLineCount for campaigns here. Default: the sum of the site's
    # trunks' Max Calls, an unlimited trunk counting UNLIMITED_TRUNK_LINES.
    max_outbound_line_count: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _kind_and_media(self) -> Site:
        if self.kind is None:
            self.kind = "byocCloud" if self.media_model == "Cloud" else "byocPremises"
        media = _MEDIA_OF_KIND[self.kind]
        if self.media_model is not None and self.media_model != media:
            raise ValueError(f"a {self.kind} site has mediaModel {media}, not {self.media_model}")
        self.media_model = media  # type: ignore[assignment]
        if self.managed is None:
            self.managed = self.kind == "genesysCloudVoice"
        return self

    @property
    def cloud(self) -> bool:
        return self.media_model == "Cloud"


class Edge(_Model):
    id: str
    name: str = ""
    site_id: str
    edge_group_id: str | None = None
    status_code: str = "ACTIVE"
    online_status: Literal["ONLINE", "OFFLINE"] = "ONLINE"
    # Taken out of service by an admin: its trunks answer `enabled: false` ("True if the Edge used by
    # this trunk is in-service") and carry no calls.
    in_service: bool = True
    # softwareStatus "appears only if a software upgrade was recently initiated": absent by default.
    # An update that ended (SUCCEEDED, FAILED, EXPIRED, ...) ended at softwareUpdateAt (t, negative for
    # before the start: -259200 is three days earlier); an INIT one starts executing then.
    software_status: (
        Literal[
            "NONE", "INIT", "IN_PROGRESS", "EXPIRED", "EXCEPTION", "ABORTED", "FAILED", "SUCCEEDED", "DELETE"
        ]
        | None
    ) = None
    software_update_at: float | None = None
    call_draining_state: str = "NONE"


class TrunkBase(_Model):
    id: str
    name: str = ""
    # Max Calls (BYOC Premises) / Max Concurrent Calls (BYOC Cloud): 0 is unlimited; null: the property
    # holds no value.
    max_concurrent_calls: int | None = Field(default=100, ge=0)
    enabled: bool = True  # the `trunk_enabled` property: false switches every trunk of the base off
    # A managed base (Genesys Cloud Voice) answers its properties only to a client with internal:trunk:edit.
    managed: bool = False
    metabase: str | None = None  # trunkMetabase id; default by kind (managed: external_sip_pcv_aws.json)


class Trunk(_Model):
    """A trunk instance. Its `inService` comes from its base's `enabled` (trunk_enabled) and its
    `enabled` from its Edge's `inService`, as Genesys' Trunk model describes them."""

    id: str
    name: str = ""
    edge_id: str | None = None  # a premises trunk runs on an Edge ...
    site_id: str | None = None  # ... a cloud trunk (BYOC Cloud, Genesys Cloud Voice) on none: its site
    trunk_base_id: str
    trunk_type: Literal["EXTERNAL", "PHONE", "EDGE"] = "EXTERNAL"
    state: Literal["active", "inactive", "deleted"] = "active"
    # What /trunks/metrics reports for it.
    inbound_calls: int = Field(default=0, ge=0)
    outbound_calls: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _one_place(self) -> Trunk:
        self._exactly_one("a trunk", "edge_id", "site_id")
        return self


class Campaign(_Model):
    id: str
    name: str = ""
    dialing_mode: DialingMode = "predictive"
    campaign_status: CampaignStatus = "on"
    queue_id: str
    site_id: str | None = None
    edge_group_id: str | None = None
    outbound_line_count: int | None = Field(default=None, ge=0)
    max_calls_per_agent: int | None = Field(default=None, ge=1)
    version: int = Field(default=1, ge=1)

    @field_validator("campaign_status", mode="before")
    @classmethod
    def _yaml_booleans(cls, value: Any) -> Any:
        # YAML 1.1 reads a bare `on`/`off` as a boolean.
        if isinstance(value, bool):
            return "on" if value else "off"
        return value

    @model_validator(mode="after")
    def _one_place(self) -> Campaign:
        self._exactly_one("a campaign", "site_id", "edge_group_id")
        return self


class OutboundSettings(_Model):
    max_line_utilization: float = Field(default=0.9, ge=0.0, le=1.0)
    max_calls_per_agent: int = Field(default=4, ge=1)
    abandon_seconds: float = Field(default=2.0, ge=0)
    compliance_abandon_rate_denominator: Literal["ALL_CALLS", "CALLS_THAT_REACHED_QUEUE"] = "ALL_CALLS"


class Telephony(_Model):
    # The trunk-base property that holds "Max Concurrent Calls" (Genesys does not document the key).
    max_concurrent_calls_key: str = "trunk_max_concurrent_calls"


class Notifications(_Model):
    """Which notification topics the org's Amazon EventBridge integration delivers. Whether Genesys
    sends the telephony and per-user query topics to a client-credentials integration is not
    documented: an org that sends none of them is a real possibility."""

    schedules: bool = True  # v2.workforcemanagement.businessunits.{id}.schedules
    query_results: bool = True  # v2.workforcemanagement.users.{id}.schedules.query
    telephony: bool = True  # v2.telephony.providers.edges.{id}[.softwareupdate], ...edges.trunks.{id}


class TelephonyChange(_Model):
    type: Literal["telephonyChange"]
    kind: TelephonyKind
    # An edge id (softwareUpdate, edgeNotActive), trunk id (trunkDisconnected) or trunk base id.
    entity_id: str
    start: float = Field(ge=0)
    end: float = Field(ge=0)
    # entity: blocks the schedules whose telephony scope holds the entity; org: blocks every publish.
    scope: Literal["entity", "org"] = "entity"

    @model_validator(mode="after")
    def _ordered(self) -> TelephonyChange:
        if self.end < self.start:
            raise ValueError(f"end ({self.end}) is before start ({self.start})")
        return self


class WriterEdit(_Model):
    type: Literal["writerEdit"]
    schedule_id: str
    at: float | None = Field(default=None, ge=0)
    trigger: Literal["beforeFirstUpdate"] | None = None
    by: str = "user-other-writer"

    @model_validator(mode="after")
    def _when(self) -> WriterEdit:
        self._exactly_one("a writerEdit", "at", "trigger")
        return self


class PublishOperation(_Model):
    type: Literal["publishOperation"]
    schedule_id: str
    duration_seconds: float | None = Field(default=None, ge=0)
    # The first N update operations on this schedule end status Error with nothing applied ...
    fail_first: int = Field(default=0, ge=0)
    # ... and the next M end status Canceled (nothing applied either).
    cancel_first: int = Field(default=0, ge=0)


Event = Annotated[TelephonyChange | WriterEdit | PublishOperation, Field(discriminator="type")]


class RateLimit(_Model):
    enabled: bool = True
    requests_per_minute: int = Field(default=300, ge=1)
    window: Literal["sliding", "fixed"] = "sliding"


class Fault(_Model):
    """Injected trouble on the requests whose path matches a glob (`*` also matches `/`)."""

    path: str
    method: str | None = None
    status: int | None = Field(default=None, ge=400, le=599)
    probability: float = Field(default=1.0, ge=0.0, le=1.0)
    # One entry per matching request, in order: a status code, "pass" (answer normally) or "drop".
    sequence: list[int | Literal["pass", "drop"]] | None = None
    latency_seconds: float = Field(default=0.0, ge=0)
    drop: bool = False
    retry_after: int = Field(default=1, ge=0)  # Retry-After on injected 429s
    after: float | None = None  # active from this t (seconds since start)
    before: float | None = None  # active until this t

    @model_validator(mode="after")
    def _does_something(self) -> Fault:
        if self.status is None and self.sequence is None and not self.drop and self.latency_seconds == 0:
            raise ValueError("a fault needs status, sequence, drop or latencySeconds")
        return self


class Generate(_Model):
    """A big org made from a few numbers; the same seed always gives the same org."""

    seed: int = 1
    business_units: int = Field(default=0, ge=0)
    management_units_per_business_unit: int = Field(default=1, ge=1)
    agents_per_management_unit: int = Field(default=10, ge=1)
    campaigns: int = Field(default=0, ge=0)
    sites: int = Field(default=1, ge=1)
    edges_per_site: int = Field(default=1, ge=1)
    external_trunks_per_edge: int = Field(default=2, ge=1)
    max_concurrent_calls: tuple[int, int] = (50, 300)  # inclusive range per trunk base
    week_id: dt.date = dt.date(2023, 10, 23)  # a Monday: generated business units start on Monday
    time_zones: list[str] = Field(
        default_factory=lambda: ["UTC", "Europe/London", "America/New_York", "America/Chicago"]
    )
    published_share: float = Field(default=0.2, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _campaigns_need_queues(self) -> Generate:
        if self.campaigns and not self.business_units:
            raise ValueError("campaigns need businessUnits: generated campaigns dial the generated queues")
        return self

    @field_validator("week_id")
    @classmethod
    def _monday(cls, value: dt.date) -> dt.date:
        if value.weekday() != 0:
            raise ValueError(f"{value} is a {WEEKDAYS[value.weekday()]}; generated weeks start on Monday")
        return value


class Scenario(_Model):
    name: str = "scenario"
    description: str = ""
    seed: int = 0
    # The org's "today" for weeks/recent (default: the clock's date), so old week ids stay recent.
    today: dt.date | None = None
    credentials: Credentials = Field(default_factory=Credentials)
    settle_window_seconds: float = Field(default=30.0, ge=0)
    # What a 409 says. "detailed": the simulator's own codes and messages (Genesys documents none);
    # "bare": status and "Conflict" only, as any undocumented 409 may read: nothing may depend on more.
    conflict_bodies: Literal["detailed", "bare"] = "detailed"
    publish_duration_seconds: float = Field(default=1.0, ge=0)
    # Agent schedule queries over this many agents answer Processing and are downloaded later.
    async_agent_query_over: int | None = Field(default=None, ge=0)
    # ... or answer Complete at once with a downloadUrl instead of the result (a large result).
    download_agent_query_over: int | None = Field(default=None, ge=0)
    async_query_seconds: float = Field(default=1.0, ge=0)
    business_units: list[BusinessUnit] = Field(default_factory=list)
    management_units: list[ManagementUnit] = Field(default_factory=list)
    agents: list[Agent] = Field(default_factory=list)
    schedules: list[Schedule] = Field(default_factory=list)
    queues: list[Queue] = Field(default_factory=list)
    sites: list[Site] = Field(default_factory=list)
    edges: list[Edge] = Field(default_factory=list)
    trunk_bases: list[TrunkBase] = Field(default_factory=list)
    trunks: list[Trunk] = Field(default_factory=list)
    campaigns: list[Campaign] = Field(default_factory=list)
    outbound_settings: OutboundSettings = Field(default_factory=OutboundSettings)
    telephony: Telephony = Field(default_factory=Telephony)
    notifications: Notifications = Field(default_factory=Notifications)
    events: list[Event] = Field(default_factory=list)
    rate_limit: RateLimit = Field(default_factory=RateLimit)
    faults: list[Fault] = Field(default_factory=list)
    generate: Generate | None = None
