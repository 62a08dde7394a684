"""A thin `requests` client for the Genesys Cloud paths this product uses (shared/GENESYS_API.md).

The official SDK costs seconds and ~200 MB at import, and sleeps through 429s inside the call; here
a 429 becomes a typed error the pipeline turns into a queue delay. One client lives for the life of
a Lambda container (`services()`): one session (pooled connections) and one token, renewed early.
"""

from __future__ import annotations

import base64
import email.utils
import gzip
import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import requests
from aws_lambda_powertools import Logger
from pydantic import Field, ValidationError
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from wfm_publish.config import GENESYS_API_HOSTS, genesys_base_url
from wfm_publish.errors import (
    GenesysConflict,
    GenesysConnectionError,
    GenesysError,
    GenesysForbidden,
    GenesysNotFound,
    GenesysPending,
    GenesysRateLimited,
    GenesysRejected,
    GenesysServerError,
    GenesysTimeout,
    GenesysTransient,
    GenesysUnauthorized,
)
from wfm_publish.models import GenesysErrorBody, Lenient

logger = Logger(child=True)

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
TRUNK_BASE_SETTINGS = EDGES + "/trunkbasesettings/{trunkBaseId}"
SITE = EDGES + "/sites/{siteId}"
CAMPAIGNS = "/api/v2/outbound/campaigns"
CAMPAIGN = CAMPAIGNS + "/{campaignId}"
LINE_DISTRIBUTION = CAMPAIGN + "/linedistribution"
OUTBOUND_SETTINGS = "/api/v2/outbound/settings"
QUEUE_MEMBERS = "/api/v2/routing/queues/{queueId}/members"
OAUTH = "/oauth/token"
# The simulator's stand-in for the v2.workforcemanagement.businessunits.{buId}.schedules topic.
SIM_OPERATION = "/__sim/operations/{operationId}"

TOKEN_EARLY_RENEWAL = 300.0  # renew at most this long before expiry ...
TOKEN_EARLY_FRACTION = 0.1  # ... or a tenth of the lifetime, whichever is shorter (5 min tokens)
DEFAULT_TIMEOUT = (3.05, 10.0)  # connect, read: well inside a Lambda's timeout
UPLOAD_TIMEOUT = (3.05, 30.0)  # a big gzip body to the upload URL
POOL_SIZE = 10  # connections kept per host: one container makes one call at a time, a few hosts
MAX_PAGES = 1000  # a runaway pager (pageCount that never ends) stops here
METRICS_BATCH = 50  # trunk ids per /trunks/metrics call, so the URL stays short
PENDING_QUERY_MAX_AGE = 600.0  # an async query not seen finished by then is asked again
DEFAULT_RETRY_AFTER = 60.0  # a 429 with no usable Retry-After: wait a whole rate window
MAX_CONCURRENT_CALLS_KEY = "trunk_max_concurrent_calls"  # the simulator's key; configuration in prod

_GENESYS_HOSTS = frozenset(GENESYS_API_HOSTS.values())


# --- what Genesys answers (lenient: new fields must not break us) ------------------------------------


class Ref(Lenient):
    id: str
    name: str | None = None


class ScheduleMetadata(Lenient):
    version: int
    date_modified: str | None = None
    modified_by: Ref | None = None


class ScheduleAgent(Lenient):
    """An agent of a management unit in a schedule: `{id}` (UserReference) or `{user: {id}}`."""

    id: str | None = None
    user: Ref | None = None

    @property
    def user_id(self) -> str | None:
        return self.user.id if self.user else self.id


class ScheduleManagementUnit(Lenient):
    management_unit: Ref
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
    counts_as_paid_time: bool | None = None
    description: str | None = None


class Shift(Lenient):
    id: str | None = None
    start_date: str
    length_minutes: int
    activities: list[Activity] = Field(default_factory=list)


class AgentSchedule(Lenient):
    user: Ref
    shifts: list[Shift] = Field(default_factory=list)
    work_plan: Ref | None = None


class OperationNotice(Lenient):
    """What the schedules notification topic says about an asynchronous operation."""

    operation_id: str
    status: str
    event_type: str | None = None
    download_url: str | None = None
    result: dict[str, Any] | None = None


class SoftwareStatus(Lenient):
    status: str | None = None
    date_upgrade_started: str | None = None


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


class CampaignLines(Lenient):
    campaign: Ref
    dialing_mode: str | None = None
    max_calls_per_agent: int | None = None
    allocated_lines: int | None = None


class LineDistribution(Lenient):
    max_outbound_line_count: int | None = None
    max_line_utilization: float | None = None
    available_outbound_lines: int | None = None
    reserved_lines: int | None = None
    campaigns: list[CampaignLines] = Field(default_factory=list)


class OutboundSettings(Lenient):
    max_line_utilization: float | None = None
    max_calls_per_agent: int | None = None


# --- credentials and token ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Credentials:
    client_id: str
    client_secret: str = field(repr=False)

    def __repr__(self) -> str:  # never print the secret, even by accident
        return f"Credentials(client_id={self.client_id!r}, client_secret='***')"

    __str__ = __repr__


@dataclass
class _Token:
    value: str = field(repr=False)
    renew_at: float  # monotonic: renew from here on, before Genesys would refuse it

    def __repr__(self) -> str:
        return f"_Token(value='***', renew_at={self.renew_at})"


@dataclass(frozen=True)
class _PendingQuery:
    operation_id: str
    since: float


def renew_margin(lifetime: float) -> float:
    """How long before expiry a token is renewed: 5 minutes, or a tenth of a short lifetime."""
    return min(TOKEN_EARLY_RENEWAL, TOKEN_EARLY_FRACTION * max(0.0, lifetime))


def login_url(base_url: str) -> str:
    """The OAuth host of an API base URL: `api.` becomes `login.`; any other host is its own login host."""
    parts = urlsplit(base_url.rstrip("/"))
    host = parts.hostname or ""
    if host.startswith("api."):
        netloc = parts.netloc.replace(host, "login." + host[len("api.") :], 1)
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    return base_url.rstrip("/")


def new_session() -> requests.Session:
    """One pooled session per container. Only a failed connect is retried here (the request never left,
    e.g. a pooled socket that died while the container was frozen); every other retry is the pipeline's."""
    session = requests.Session()
    # read=False (not 0): a read timeout then surfaces as ReadTimeout, not a ConnectionError wrapping it.
    retry = Retry(
        total=1, connect=1, read=False, status=0, redirect=0, other=0, respect_retry_after_header=False
    )
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=POOL_SIZE, max_retries=retry)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


class GenesysClient:
    def __init__(
        self,
        base_url: str,
        credentials: Callable[[], Credentials],
        *,
        session: requests.Session | None = None,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        monotonic: Callable[[], float] = time.monotonic,
        operations: Callable[[str], OperationNotice | None] | None = None,
        page_size: int = 100,
    ) -> None:
        """`operations` reads the schedules notification topic (by operation id); without it, a client
        pointed at anything but a real Genesys host reads the simulator's `/__sim/operations/{id}`."""
        self.base_url = base_url.rstrip("/")
        self.login_url = login_url(self.base_url)
        self._credentials = credentials
        self._session = session or new_session()
        self._timeout = timeout
        self._monotonic = monotonic
        self._operations = operations
        self._simulated = urlsplit(self.base_url).hostname not in _GENESYS_HOSTS
        self._token: _Token | None = None
        self._token_lock = threading.Lock()
        self._pending: dict[tuple[str, ...], _PendingQuery] = {}
        self.page_size = page_size  # entities per page of a paged listing (Genesys allows up to 100+)
        # Operational counters (cheap, per container): tokens fetched, renewals forced by a 401, calls.
        self.tokens_fetched = 0
        self.renewals_on_401 = 0
        self.calls_made = 0

    @classmethod
    def for_region(
        cls,
        credentials: Callable[[], Credentials],
        *,
        region: str | None = None,
        base_url: str | None = None,
        **kwargs: Any,
    ) -> GenesysClient:
        """By Genesys region name (`eu-west-1`) or an explicit base URL, which wins."""
        return cls(genesys_base_url(region, base_url), credentials, **kwargs)

    # --- WFM ---------------------------------------------------------------------------------------

    def business_units(self) -> list[Ref]:
        return [Ref.model_validate(e) for e in self._entities(WFM)]

    def business_unit(self, bu_id: str) -> dict[str, Any]:
        return self._call("GET", BUSINESS_UNIT, {"buId": bu_id}, params={"expand": "settings"})

    def schedules(self, bu_id: str, week_id: str) -> list[dict[str, Any]]:
        """The schedules of a week (`week_id` a yyyy-MM-dd start date, or `recent` = ±26 weeks)."""
        return list(self._entities(SCHEDULES, {"buId": bu_id, "weekId": week_id}))

    def schedule(self, bu_id: str, week_id: str, schedule_id: str, *, with_agents: bool = False) -> Schedule:
        params = {"expand": "managementUnits.agents"} if with_agents else None
        ids = {"buId": bu_id, "weekId": week_id, "scheduleId": schedule_id}
        return Schedule.from_wire(self._call("GET", SCHEDULE, ids, params=params))

    def resolve_schedule(
        self, schedule_id: str, *, week_id: str | None = None, business_unit_id: str | None = None
    ) -> tuple[str, str]:
        """The business unit and week of a bare schedule id.

        `weeks/recent` spans ±26 weeks of the org's today (Genesys decides what today is, so a virtual
        clock or a scenario's `today` needs nothing here). A week or business unit the caller already
        knows narrows the search. A business unit this client may not read (403) is skipped; if every
        one was refused, that is an auth failure, not a missing schedule.
        """
        bu_ids = [business_unit_id] if business_unit_id else [bu.id for bu in self.business_units()]
        refused: list[GenesysForbidden] = []
        for bu_id in bu_ids:
            try:
                entries = self.schedules(bu_id, week_id or "recent")
            except GenesysForbidden as exc:
                refused.append(exc)
                continue
            except GenesysRejected:
                if week_id is None:
                    raise
                continue  # the week does not start on this business unit's start day
            for entry in entries:
                if entry.get("id") == schedule_id and entry.get("weekDate"):
                    return bu_id, str(entry["weekDate"])[:10]
        if refused and len(refused) == len(bu_ids):
            raise refused[0]
        raise GenesysNotFound(
            f"schedule {schedule_id} is in no business unit's {week_id or 'recent'} weeks",
            status=404,
            path=SCHEDULES,
        )

    def agent_schedules(
        self, bu_id: str, week_id: str, schedule_id: str, management_unit_id: str
    ) -> list[AgentSchedule]:
        """The agents' shifts in one management unit of a schedule.

        Genesys may answer `Processing` with an operationId; the result is then downloaded from the
        `downloadUrl` its notification carries. Until that is known this raises `GenesysPending`
        (a transient error: the caller backs off on the queue) and remembers the operation, so the
        next call collects it instead of starting another query.
        """
        key = (bu_id, week_id, schedule_id, management_unit_id)
        pending = self._pending.get(key)
        if pending is not None:
            if self._monotonic() - pending.since < PENDING_QUERY_MAX_AGE:
                return self._collect_query(key, pending)
            del self._pending[key]  # lost: ask again
        ids = {"buId": bu_id, "weekId": week_id, "scheduleId": schedule_id}
        answer = self._call(
            "POST", AGENT_SCHEDULES_QUERY, ids, json_body={"managementUnitId": management_unit_id}
        )
        status = str(answer.get("status") or "Complete")
        if status == "Complete":
            if answer.get("result") is not None:
                return _agent_schedules(answer["result"])
            if answer.get("downloadUrl"):
                return _agent_schedules(self._download(str(answer["downloadUrl"])))
            return []
        if status == "Processing" and answer.get("operationId"):
            pending = _PendingQuery(str(answer["operationId"]), self._monotonic())
            self._pending[key] = pending
            return self._collect_query(key, pending)
        raise GenesysServerError(
            f"agent schedule query for {schedule_id} ended {status}", path=AGENT_SCHEDULES_QUERY
        )

    def operation(self, operation_id: str) -> OperationNotice | None:
        """The latest notification about an asynchronous operation, None if none has arrived."""
        if self._operations is not None:
            return self._operations(operation_id)
        if not self._simulated:
            return None  # real Genesys: notifications arrive through EventBridge (not wired yet)
        url = self.base_url + SIM_OPERATION.format(operationId=quote(operation_id, safe=""))
        response = self._exchange("GET", SIM_OPERATION, url, timeout=self._timeout)
        if response.status_code == 404:
            return None
        return OperationNotice.model_validate(_answer(response, SIM_OPERATION))

    def publish(self, bu_id: str, week_id: str, schedule: Schedule) -> UpdateOperation:
        """The three-step update with `published: true` and the schedule's metadata exactly as read."""
        ids = {"buId": bu_id, "weekId": week_id, "scheduleId": schedule.id}
        # The metadata as read; a Schedule built by hand (no raw copy) sends its parsed view instead.
        metadata = schedule.raw_metadata or schedule.metadata.wire()
        payload = gzip.compress(json.dumps({"metadata": metadata, "published": True}).encode())
        upload = self._call("POST", UPLOAD_URL, ids, json_body={"contentLengthBytes": len(payload)})
        if not upload.get("url") or not upload.get("uploadKey"):
            raise GenesysServerError("upload URL answer without url or uploadKey", path=UPLOAD_URL)
        self._upload(str(upload["url"]), payload, dict(upload.get("headers") or {}))
        answer = self._call("POST", UPDATE, ids, json_body={"uploadKey": upload["uploadKey"]})
        return UpdateOperation.model_validate(answer)

    # --- telephony -----------------------------------------------------------------------------------

    def edges(self, *, site_id: str | None = None, edge_group_id: str | None = None) -> list[Edge]:
        params = _only({"site.id": site_id, "edgeGroup.id": edge_group_id})
        return [Edge.model_validate(e) for e in self._pages(EDGES, {}, params)]

    def edge(self, edge_id: str) -> Edge:
        return Edge.model_validate(self._call("GET", EDGE, {"edgeId": edge_id}))

    def trunks(
        self,
        *,
        edge_id: str | None = None,
        trunk_type: str | None = "EXTERNAL",
        trunk_base_id: str | None = None,
    ) -> list[Trunk]:
        params = _only({"trunkType": trunk_type, "edge.id": edge_id, "trunkBase.id": trunk_base_id})
        return [Trunk.model_validate(e) for e in self._pages(TRUNKS, {}, params)]

    def trunk(self, trunk_id: str) -> Trunk:
        return Trunk.model_validate(self._call("GET", TRUNK, {"trunkId": trunk_id}))

    def trunk_metrics(self, trunk_ids: list[str]) -> dict[str, TrunkCalls]:
        """Current calls per trunk id (in batches, so the query string stays short)."""
        wanted = list(dict.fromkeys(trunk_ids))
        out: dict[str, TrunkCalls] = {}
        for start in range(0, len(wanted), METRICS_BATCH):
            batch = ",".join(wanted[start : start + METRICS_BATCH])
            body = self._call("GET", TRUNK_METRICS, params={"trunkIds": batch})
            for entry in body.get("entities", []):
                trunk_id = (entry.get("trunk") or {}).get("id")
                if trunk_id:
                    out[str(trunk_id)] = TrunkCalls.model_validate(entry.get("calls") or {})
        return out

    def trunk_base_settings(self, trunk_base_id: str) -> TrunkBaseSettings:
        body = self._call(
            "GET", TRUNK_BASE_SETTINGS, {"trunkBaseId": trunk_base_id}, params={"expand": "properties"}
        )
        return TrunkBaseSettings.model_validate(body)

    def site(self, site_id: str) -> Site:
        return Site.model_validate(self._call("GET", SITE, {"siteId": site_id}))

    # --- outbound and routing --------------------------------------------------------------------------

    def campaigns(self) -> list[Campaign]:
        return [Campaign.model_validate(e) for e in self._pages(CAMPAIGNS, {}, {}, max_size=100)]

    def campaign(self, campaign_id: str) -> Campaign:
        return Campaign.model_validate(self._call("GET", CAMPAIGN, {"campaignId": campaign_id}))

    def line_distribution(self, campaign_id: str) -> LineDistribution:
        body = self._call("GET", LINE_DISTRIBUTION, {"campaignId": campaign_id})
        return LineDistribution.model_validate(body)

    def outbound_settings(self) -> OutboundSettings:
        return OutboundSettings.model_validate(self._call("GET", OUTBOUND_SETTINGS))

    def queue_members(self, queue_id: str) -> list[str]:
        """The user ids of a queue's members."""
        members = []
        for entry in self._pages(QUEUE_MEMBERS, {"queueId": queue_id}, {}, max_size=100):
            user_id = entry.get("id") or (entry.get("user") or {}).get("id")
            if user_id:
                members.append(str(user_id))
        return list(dict.fromkeys(members))

    # --- paging ----------------------------------------------------------------------------------------

    def _pages(
        self,
        route: str,
        ids: Mapping[str, str],
        params: dict[str, Any],
        max_size: int = 500,
        *,
        start: int = 1,
        size: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Every entity of a paged listing, one page at a time (`max_size`: the endpoint's largest page)."""
        page_size = size or min(self.page_size, max_size)
        page = start
        while True:
            body = self._call("GET", route, ids, params=params | {"pageSize": page_size, "pageNumber": page})
            entities = body.get("entities") or []
            yield from entities
            if not _more(body, page, entities):
                return
            page += 1
            if page > MAX_PAGES:
                logger.warning("paging stopped", extra={"route": route, "pages": MAX_PAGES})
                return

    def _entities(self, route: str, ids: Mapping[str, str] | None = None) -> Iterator[dict[str, Any]]:
        """A listing Genesys documents as unpaged; followed page by page anyway if it answers paged."""
        body = self._call("GET", route, ids)
        entities = body.get("entities") or []
        yield from entities
        page = int(body.get("pageNumber") or 1)
        if _more(body, page, entities):
            size = int(body.get("pageSize") or len(entities) or self.page_size)
            yield from self._pages(route, ids or {}, {}, start=page + 1, size=size)

    # --- transport -------------------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        route: str,
        ids: Mapping[str, str] | None = None,
        *,
        params: dict[str, Any] | None = None,
        json_body: Any = None,
    ) -> dict[str, Any]:
        """One authenticated API call, renewing the token once on a 401."""
        url = self.base_url + route.format(**{k: quote(v, safe="") for k, v in (ids or {}).items()})
        bearer = self._bearer()
        response = self._api(method, route, url, params, json_body, bearer)
        if response.status_code == 401:
            # A token can be revoked before it expires: renew once, then give up.
            self.renewals_on_401 += 1
            bearer = self._bearer(stale=bearer)
            response = self._api(method, route, url, params, json_body, bearer)
        return _answer(response, route)

    def _api(
        self, method: str, route: str, url: str, params: dict[str, Any] | None, json_body: Any, bearer: str
    ) -> requests.Response:
        headers = {"Authorization": f"Bearer {bearer}", "Accept": "application/json"}
        return self._exchange(
            method, route, url, params=params, json=json_body, headers=headers, timeout=self._timeout
        )

    def _exchange(self, method: str, route: str, url: str, **kwargs: Any) -> requests.Response:
        """Send one request; log route, status, duration and correlation id; type transport failures.

        Successful reads log at DEBUG: readiness checks poll the same few reads for hours, and at
        INFO they would drown the log (and its bill). Writes, token fetches and every failure log
        at INFO (5xx and transport failures at WARNING). Only the route template and the host are
        logged, never the query string (an upload URL's signature is a credential) or headers.
        """
        started = self._monotonic()
        self.calls_made += 1
        host = urlsplit(url).netloc
        try:
            response = self._session.request(method, url, **kwargs)
        except requests.Timeout as exc:
            self._log_failure(method, route, host, started, exc)
            raise GenesysTimeout(
                f"{method} {route}: no answer in time ({type(exc).__name__})", path=route
            ) from exc
        except requests.RequestException as exc:
            self._log_failure(method, route, host, started, exc)
            raise GenesysConnectionError(
                f"{method} {route}: connection failed ({type(exc).__name__})", path=route
            ) from exc
        status = response.status_code
        extra = {
            "method": method,
            "route": route,
            "host": host,
            "status": status,
            "ms": round((self._monotonic() - started) * 1000, 1),
            "correlation_id": response.headers.get("ININ-Correlation-Id"),
        }
        if status >= 500:
            logger.warning("genesys call", extra=extra)
        elif status >= 400 or method != "GET":
            logger.info("genesys call", extra=extra)
        else:
            logger.debug("genesys call", extra=extra)
        return response

    def _log_failure(self, method: str, route: str, host: str, started: float, exc: Exception) -> None:
        logger.warning(
            "genesys call failed",
            extra={
                "method": method,
                "route": route,
                "host": host,
                "error": type(exc).__name__,
                "ms": round((self._monotonic() - started) * 1000, 1),
            },
        )

    def _upload(self, url: str, payload: bytes, headers: dict[str, str]) -> None:
        """PUT the gzip body to the upload URL, with only the headers Genesys gave: no bearer token
        goes to a host that is not the API's."""
        response = self._exchange("PUT", "upload", url, data=payload, headers=headers, timeout=UPLOAD_TIMEOUT)
        if response.status_code in (401, 403):
            # A signed upload URL that expired or was refused: ask for a new one on the next try.
            raise GenesysTransient(
                f"{response.status_code} on the upload URL", status=response.status_code, path="upload"
            )
        if response.status_code >= 300:
            _answer(response, "upload")

    def _download(self, url: str) -> dict[str, Any]:
        """GET a result from its download URL (signed: no bearer token)."""
        response = self._exchange("GET", "download", url, timeout=UPLOAD_TIMEOUT)
        if response.status_code in (401, 403, 404):
            raise GenesysTransient(
                f"{response.status_code} on the download URL", status=response.status_code, path="download"
            )
        body = _answer(response, "download")
        result = body.get("result")
        return result if isinstance(result, dict) else body

    def _collect_query(self, key: tuple[str, ...], pending: _PendingQuery) -> list[AgentSchedule]:
        notice = self.operation(pending.operation_id)
        if notice is None or notice.status == "Processing":
            raise GenesysPending(
                f"agent schedule query {pending.operation_id} is still processing",
                operation_id=pending.operation_id,
                path=AGENT_SCHEDULES_QUERY,
            )
        del self._pending[key]
        if notice.status == "Complete":
            if notice.result is not None:
                return _agent_schedules(notice.result)
            if notice.download_url:
                return _agent_schedules(self._download(notice.download_url))
        raise GenesysServerError(
            f"agent schedule query {pending.operation_id} ended {notice.status}", path=AGENT_SCHEDULES_QUERY
        )

    # --- token -------------------------------------------------------------------------------------------

    def _bearer(self, stale: str | None = None) -> str:
        """The current token; a new one when it is due for renewal or when `stale` (just refused) is
        still the current one (so two callers refused at once renew only once)."""
        with self._token_lock:
            now = self._monotonic()
            token = self._token
            if token is None or now >= token.renew_at or (stale is not None and token.value == stale):
                token = self._token = self._fetch_token()
            return token.value

    def _fetch_token(self) -> _Token:
        creds = self._credentials()
        basic = base64.b64encode(f"{creds.client_id}:{creds.client_secret}".encode()).decode()
        requested = self._monotonic()
        response = self._exchange(
            "POST",
            OAUTH,
            self.login_url + OAUTH,
            data={"grant_type": "client_credentials"},
            headers={"Authorization": f"Basic {basic}", "Accept": "application/json"},
            timeout=self._timeout,
        )
        if response.status_code in (400, 401, 403):
            error = _oauth_error(response)
            raise GenesysUnauthorized(
                f"the token endpoint refused the OAuth client {creds.client_id!r}: "
                f"{error.code or response.status_code}",
                status=response.status_code,
                body=error,
                path=OAUTH,
            )
        body = _answer(response, OAUTH)
        value = body.get("access_token")
        if not isinstance(value, str) or not value:
            raise GenesysServerError("the token endpoint answered without an access_token", path=OAUTH)
        try:
            lifetime = float(body.get("expires_in") or 0)
        except (TypeError, ValueError):
            lifetime = 0.0
        lifetime = lifetime if lifetime > 0 else TOKEN_EARLY_RENEWAL  # unknown: assume the shortest
        self.tokens_fetched += 1
        # Count the lifetime from when we asked, not when the answer arrived.
        return _Token(value, requested + lifetime - renew_margin(lifetime))


# --- answers and errors ------------------------------------------------------------------------------


def _only(params: dict[str, str | None]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if v is not None}


def _more(body: dict[str, Any], page: int, entities: list[Any]) -> bool:
    if body.get("pageCount") is not None:
        return page < int(body["pageCount"])
    return bool(body.get("nextUri")) and bool(entities)


def _agent_schedules(result: dict[str, Any]) -> list[AgentSchedule]:
    try:
        return [AgentSchedule.model_validate(e) for e in result.get("agentSchedules") or []]
    except ValidationError as exc:
        raise GenesysServerError(f"unreadable agent schedules: {exc.error_count()} problems") from exc


def _answer(response: requests.Response, path: str) -> dict[str, Any]:
    """The body of a good answer, or the typed error for a bad one."""
    status = response.status_code
    if status < 300:
        if not response.content:
            return {}
        try:
            body = response.json()
        except ValueError as exc:
            raise GenesysServerError(
                f"{status} on {path}: the answer is not JSON", status=status, path=path
            ) from exc
        return body if isinstance(body, dict) else {"entities": body}
    error = _error_body(response)
    summary = f"{status} on {path}: {(error.message if error else None) or response.reason}"
    kwargs: dict[str, Any] = {"status": status, "body": error, "path": path}
    if status == 409:
        raise GenesysConflict(summary, **kwargs)
    if status == 429:
        retry_after = _retry_after(response.headers.get("Retry-After"), error)
        raise GenesysRateLimited(summary, retry_after=retry_after, **kwargs)
    if status == 401:
        raise GenesysUnauthorized(summary, **kwargs)
    if status == 403:
        raise GenesysForbidden(summary, **kwargs)
    if status == 404:
        raise GenesysNotFound(summary, **kwargs)
    if status >= 500 or status == 408:
        raise GenesysServerError(summary, **kwargs)
    if status >= 400:
        raise GenesysRejected(summary, **kwargs)
    raise GenesysError(summary, **kwargs)


def _error_body(response: requests.Response) -> GenesysErrorBody | None:
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    try:
        error = GenesysErrorBody.model_validate(body)
    except ValidationError:
        return None
    if error.context_id is None:
        error.context_id = response.headers.get("ININ-Correlation-Id")
    return error


def _oauth_error(response: requests.Response) -> GenesysErrorBody:
    """The OAuth endpoint's own `{error, description, error_description}`, as a Genesys error body."""
    try:
        body = response.json()
    except ValueError:
        body = None
    body = body if isinstance(body, dict) else {}
    return GenesysErrorBody(
        message=str(body.get("error_description") or body.get("description") or response.reason or ""),
        code=str(body.get("error") or "") or None,
        status=response.status_code,
        context_id=response.headers.get("ININ-Correlation-Id"),
    )


def _retry_after(value: str | None, error: GenesysErrorBody | None = None) -> float:
    """Seconds to wait: the header (seconds or an HTTP date), else the body's retryAfter, else a minute."""
    for candidate in (value, (error.message_params or {}).get("retryAfter") if error else None):
        if candidate is None:
            continue
        text = str(candidate).strip()
        try:
            return max(1.0, float(text))
        except ValueError:
            pass
        try:
            moment = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            continue
        return max(1.0, moment.timestamp() - time.time())
    return DEFAULT_RETRY_AFTER
