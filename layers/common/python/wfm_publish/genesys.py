"""A thin `requests` client for the Genesys Cloud paths this product uses (docs/genesys-api.md).

The official SDK costs seconds and ~200 MB at import, and sleeps through 429s inside the call; here
a 429 becomes a typed error the pipeline turns into a queue delay. One client lives for the life of
a Lambda container (`services()`): one session (pooled connections) and one token, renewed early.

The wire models and route templates live in `genesys_wire` (no HTTP stack), the token in
`genesys_auth`, what an answer means (its body or a typed error) in `genesys_answers`, the
agent-schedule queries Genesys answers later in `genesys_queries`; their public names are re-exported
here, so `from wfm_publish.genesys import Schedule` still works.
"""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import quote, urlsplit

import requests
from aws_lambda_powertools import Logger
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from wfm_publish import genesys_wire
from wfm_publish.config import genesys_base_url
from wfm_publish.errors import (
    GenesysConnectionError,
    GenesysForbidden,
    GenesysNotFound,
    GenesysRejected,
    GenesysServerError,
    GenesysTimeout,
    GenesysTransient,
)
from wfm_publish.genesys_answers import DEFAULT_RETRY_AFTER, answer_body
from wfm_publish.genesys_auth import (
    OAUTH,
    TOKEN_EARLY_FRACTION,
    TOKEN_EARLY_RENEWAL,
    Credentials,
    Token,
    TokenSource,
    login_url,
    renew_margin,
)
from wfm_publish.genesys_queries import (
    PENDING_QUERY_MAX_AGE,
    MemoryQueryBook,
    query_agent_schedules,
    query_key,
)
from wfm_publish.genesys_wire import *  # noqa: F403  (the wire models and routes, re-exported)
from wfm_publish.genesys_wire import (
    AGENT_SCHEDULES_QUERY,
    BUSINESS_UNIT,
    CAMPAIGN,
    CAMPAIGNS,
    EDGE,
    EDGES,
    LINE_DISTRIBUTION,
    OUTBOUND_SETTINGS,
    QUEUE_MEMBERS,
    SCHEDULE,
    SCHEDULES,
    SITE,
    SITE_OUTBOUND_ROUTES,
    TRUNK,
    TRUNK_BASE_SETTINGS,
    TRUNK_METRICS,
    TRUNKS,
    UPDATE,
    UPLOAD_URL,
    WFM,
    AgentSchedule,
    Campaign,
    Edge,
    LineDistribution,
    OutboundRoute,
    OutboundSettings,
    QueryBook,
    Ref,
    Schedule,
    Site,
    Trunk,
    TrunkBaseSettings,
    TrunkCalls,
    UpdateOperation,
)

logger = Logger(child=True)

__all__ = [
    "DEFAULT_RETRY_AFTER",
    "OAUTH",
    "PENDING_QUERY_MAX_AGE",
    "TOKEN_EARLY_FRACTION",
    "TOKEN_EARLY_RENEWAL",
    "Credentials",
    "GenesysClient",
    "MemoryQueryBook",
    "Token",
    "login_url",
    "new_session",
    "renew_margin",
]
__all__ += genesys_wire.__all__

DEFAULT_TIMEOUT = (3.05, 10.0)  # connect, read: well inside a Lambda's timeout
UPLOAD_TIMEOUT = (3.05, 30.0)  # a big gzip body to the upload URL
POOL_SIZE = 10  # connections kept per host: one container makes one call at a time, a few hosts
MAX_PAGES = 1000  # a runaway pager (pageCount that never ends) stops here
METRICS_BATCH = 50  # trunk ids per /trunks/metrics call, so the URL stays short


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
        queries: QueryBook | None = None,
        wall_clock: Callable[[], float] = time.time,
        page_size: int = 100,
    ) -> None:
        """`queries` holds the agent-schedule queries Genesys answered `Processing` (the jobs table in
        Lambda, so whichever container asked next collects it); `wall_clock` dates them."""
        self.base_url = base_url.rstrip("/")
        self.login_url = login_url(self.base_url)
        self._session = session or new_session()
        self._timeout = timeout
        self._monotonic = monotonic
        self._wall_clock = wall_clock
        self.queries: QueryBook = queries if queries is not None else MemoryQueryBook()
        self._tokens = TokenSource(
            self.login_url, credentials, self._exchange, answer_body, monotonic, timeout
        )
        self.page_size = page_size  # entities per page of a paged listing (Genesys allows up to 100+)
        # Operational counters (cheap, per container): tokens fetched, renewals forced by a 401, calls.
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

        Genesys may answer `Processing` with an operationId: this then raises `GenesysPending` until
        the result's notification has reached `queries`, and any container's next call collects it
        (genesys_queries).
        """
        ids = {"buId": bu_id, "weekId": week_id, "scheduleId": schedule_id}

        def ask(user_ids: list[str] | None) -> dict[str, Any]:
            body: dict[str, Any] = {"managementUnitId": management_unit_id}
            if user_ids is not None:
                body["userIds"] = user_ids
            return self._call("POST", AGENT_SCHEDULES_QUERY, ids, json_body=body)

        def agents() -> list[str]:
            schedule = self.schedule(bu_id, week_id, schedule_id, with_agents=True)
            unit = next(
                (u for u in schedule.management_units if u.management_unit.id == management_unit_id), None
            )
            return unit.agent_ids if unit is not None else []

        return query_agent_schedules(
            self.queries,
            query_key(bu_id, week_id, schedule_id, management_unit_id),
            ask=ask,
            agents=agents,
            download=self._download,
            wall_clock=self._wall_clock,
            schedule_id=schedule_id,
        )

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
        """A site's or edge group's Edges, cloud media Edges included: `showCloudMedia` ("True to show the
        cloud media devices in the result", SDK `get_telephony_providers_edges`) is asked for rather
        than left to its default, so a Cloud media site's Edges are never missing from the list."""
        params = _only({"site.id": site_id, "edgeGroup.id": edge_group_id}) | {"showCloudMedia": "true"}
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
        """The trunk base with its properties, as the API gives them by default (it takes `ignoreHidden`,
        no `expand`). Managed properties come only with internal:trunk:edit (TrunkBaseSettings)."""
        body = self._call("GET", TRUNK_BASE_SETTINGS, {"trunkBaseId": trunk_base_id})
        return TrunkBaseSettings.model_validate(body)

    def site(self, site_id: str) -> Site:
        return Site.model_validate(self._call("GET", SITE, {"siteId": site_id}))

    def outbound_routes(self, site_id: str) -> list[OutboundRoute]:
        """A site's outbound routes: the EXTERNAL trunk bases its calls go out through."""
        entities = self._pages(SITE_OUTBOUND_ROUTES, {"siteId": site_id}, {})
        return [OutboundRoute.model_validate(e) for e in entities]

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
        return answer_body(response, route)

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
            answer_body(response, "upload")

    def _download(self, url: str) -> dict[str, Any]:
        """GET a result from its download URL (signed: no bearer token)."""
        response = self._exchange("GET", "download", url, timeout=UPLOAD_TIMEOUT)
        if response.status_code in (401, 403, 404):
            raise GenesysTransient(
                f"{response.status_code} on the download URL", status=response.status_code, path="download"
            )
        body = answer_body(response, "download")
        result = body.get("result")
        return result if isinstance(result, dict) else body

    # --- token -------------------------------------------------------------------------------------------

    @property
    def tokens_fetched(self) -> int:
        return self._tokens.fetched

    def _bearer(self, stale: str | None = None) -> str:
        return self._tokens.bearer(stale)


# --- parameters and pages ------------------------------------------------------------------------------


def _only(params: dict[str, str | None]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if v is not None}


def _more(body: dict[str, Any], page: int, entities: list[Any]) -> bool:
    if body.get("pageCount") is not None:
        return page < int(body["pageCount"])
    return bool(body.get("nextUri")) and bool(entities)
