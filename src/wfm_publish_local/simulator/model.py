"""The simulated Genesys Cloud org: its state, the time-driven events and every API answer.

No threads and no sleeping: time-driven behaviour (telephony changes, writer edits, asynchronous
operations) is applied lazily from `clock.now()` at the start of each request, so a virtual clock
drives hours of scenario in no time. One lock makes `handle` safe for a threading HTTP server.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import fnmatch
import gzip
import heapq
import itertools
import json
import math
import random
import re
import threading
import uuid
import zlib
from collections import Counter, defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any
from urllib.parse import parse_qs

from wfm_publish.clock import Clock, SystemClock
from wfm_publish_local.simulator import notifications as topics
from wfm_publish_local.simulator.notifications import Notifier
from wfm_publish_local.simulator.outbound import OutboundView
from wfm_publish_local.simulator.scenario import (
    WEEKDAYS,
    BusinessUnit,
    Fault,
    PublishOperation,
    Scenario,
    TelephonyChange,
    WriterEdit,
)
from wfm_publish_local.simulator.shifts import expand_shifts
from wfm_publish_local.simulator.telephony import BASE_AGE_SECONDS, Moment, TelephonyView
from wfm_publish_local.simulator.topology import Topology
from wfm_publish_local.simulator.wire import (
    ApiError,
    Route,
    Router,
    SimRequest,
    SimResponse,
    json_response,
    not_found,
    page,
)

WFM = "/api/v2/workforcemanagement/businessunits"
SCHEDULE = WFM + "/{buId}/weeks/{weekId}/schedules/{scheduleId}"
EDGES = "/api/v2/telephony/providers/edges"
OUTBOUND = "/api/v2/outbound"
RECENT_WEEKS = 26
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_STATUS_CODES = {
    400: "bad.request",
    401: "bad.credentials",
    403: "not.authorized",
    404: "not.found",
    409: "conflict",
    429: "too.many.requests.retry.after",
    500: "internal.server.error",
    502: "bad.gateway",
    503: "service.unavailable",
    504: "gateway.timeout",
}


@dataclass
class ScheduleState:
    """The mutable part of a schedule; times are t (seconds since simulator start)."""

    version: int
    published: bool
    description: str
    date_modified: float
    modified_by: str
    uploads_requested: int = 0
    agent_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    agent_versions: dict[str, int] = field(default_factory=dict)


@dataclass
class Upload:
    key: str
    schedule_id: str
    content_length: int
    payload: dict[str, Any] | None = None
    consumed: bool = False


@dataclass
class Operation:
    id: str
    kind: str  # "Update" or "AgentSchedulesQuery"
    schedule_id: str
    done_at: float
    business_unit_id: str = ""
    status: str = "Processing"  # then Complete, Error or Canceled
    client_id: str = ""
    payload: dict[str, Any] = field(default_factory=dict)
    fail: bool = False
    cancel: bool = False
    result: dict[str, Any] | None = None
    download_url: str | None = None


@dataclass
class Token:
    client_id: str
    expires_at: float  # epoch seconds


@dataclass
class FaultOutcome:
    status: int | None = None
    retry_after: int = 1
    drop: bool = False
    latency: float = 0.0


class GenesysSimulator:
    """A Genesys Cloud org served from a scenario; `handle` answers one request."""

    def __init__(self, scenario: Scenario, clock: Clock | None = None) -> None:
        self.scenario = scenario
        self.clock: Clock = clock or SystemClock()
        self.topology = Topology(scenario)
        self.telephony = TelephonyView(self.topology, scenario.telephony.max_concurrent_calls_key)
        self.outbound = OutboundView(self.topology, self.telephony, scenario.outbound_settings)
        self._lock = threading.RLock()
        self._router = Router(self._routes())
        self._sim_router = Router(self._sim_routes())
        self._shift_cache: dict[str, dict[str, dict[str, Any]]] = {}
        # What the org would send to EventBridge; listeners must not call back into the simulator.
        self.notifier = Notifier(f"org-{scenario.name}")
        self.reset()

    # ----------------------------------------------------------------- state and time

    def reset(self) -> None:
        """Restart the clock and every piece of state from the scenario."""
        with self._lock:
            s = self.scenario
            self._t0 = self.clock.now()
            self._ids = random.Random(s.seed)
            self._fault_rng = random.Random(s.seed + 1)
            self._seq = itertools.count()
            self._pending: list[tuple[float, int, Callable[[float], None]]] = []
            self._schedules = {
                x.id: ScheduleState(x.version, x.published, x.description, -BASE_AGE_SECONDS, x.created_by)
                for x in s.schedules
            }
            self._tokens: dict[str, Token] = {}
            self._uploads: dict[str, Upload] = {}
            self._operations: dict[str, Operation] = {}
            self._active_update: dict[str, str] = {}
            self._triggers: dict[str, list[WriterEdit]] = defaultdict(list)
            self._rate_hits: dict[str, deque[float]] = {}
            self._rate_fixed: dict[str, tuple[int, int]] = {}
            self._fault_positions = [0] * len(s.faults)
            self._calls: Counter[str] = Counter()
            self._conflicts: Counter[str] = Counter({"stale": 0, "telephony": 0, "inProgress": 0})
            self._applied: Counter[str] = Counter()
            self._failed: Counter[str] = Counter()
            self._counts: Counter[str] = Counter()
            self._events: list[dict[str, Any]] = []
            self._fail_left = {
                e.schedule_id: e.fail_first for e in s.events if isinstance(e, PublishOperation)
            }
            self._cancel_left = {
                e.schedule_id: e.cancel_first for e in s.events if isinstance(e, PublishOperation)
            }
            self.notifier.reset()
            self._durations = {
                e.schedule_id: e.duration_seconds
                for e in s.events
                if isinstance(e, PublishOperation) and e.duration_seconds is not None
            }
            for ev in s.events:
                self._plan(ev)

    def _plan(self, ev: TelephonyChange | WriterEdit | PublishOperation) -> None:
        if isinstance(ev, TelephonyChange):
            what = f"{ev.kind} on {ev.entity_id}" + (" (org-wide)" if ev.scope == "org" else "")
            self._at(ev.start, partial(self._log, kind="telephonyChangeStarted", detail=what))
            self._at(ev.start, partial(self._notify_telephony, ev))
            self._at(ev.end, partial(self._log, kind="telephonyChangeEnded", detail=what))
            self._at(ev.end, partial(self._notify_telephony, ev))
            settled = ev.end + self.scenario.settle_window_seconds
            self._at(settled, partial(self._log, kind="telephonySettled", detail=what))
        elif isinstance(ev, WriterEdit):
            if ev.at is not None:
                self._at(ev.at, partial(self._writer_edit, ev))
            else:
                self._triggers[ev.schedule_id].append(ev)

    def _at(self, t: float, action: Callable[[float], None]) -> None:
        heapq.heappush(self._pending, (t, next(self._seq), action))

    def pump(self) -> None:
        """Apply what is due by now (notifications included) without a request."""
        with self._lock:
            self._advance()

    def elapsed(self) -> float:
        """t: seconds since the simulator started (or was reset)."""
        return self.clock.now() - self._t0

    def _advance(self) -> float:
        """Apply every time-driven action due by now; answers the current t."""
        now = self.elapsed()
        while self._pending and self._pending[0][0] <= now:
            t, _, action = heapq.heappop(self._pending)
            action(t)
        return now

    def _moment(self, t: float) -> Moment:
        return Moment(t, self._t0)

    def _log(self, t: float, kind: str, detail: str) -> None:
        self._events.append({"t": round(t, 3), "kind": kind, "detail": detail})

    def _new_id(self) -> str:
        return str(uuid.UUID(int=self._ids.getrandbits(128), version=4))

    def _writer_edit(self, ev: WriterEdit, t: float) -> None:
        state = self._schedules[ev.schedule_id]
        state.version += 1
        state.date_modified = t
        state.modified_by = ev.by
        self._log(t, "writerEdit", f"{ev.by} moved {ev.schedule_id} to version {state.version}")

    # ----------------------------------------------------------------- inspection

    def stats(self) -> dict[str, Any]:
        with self._lock:
            t = self._advance()
            return {
                "t": round(t, 3),
                "calls": dict(sorted(self._calls.items())),
                "tokensIssued": self._counts["tokensIssued"],
                "rateLimited": self._counts["rateLimited"],
                "conflictsSent": dict(self._conflicts),
                "publishesApplied": dict(self._applied),
                "publishesFailed": dict(self._failed),
                "faultsInjected": self._counts["faultsInjected"],
                "connectionsDropped": self._counts["connectionsDropped"],
                "events": [dict(e) for e in self._events],
            }

    def schedule_state(self, schedule_id: str) -> dict[str, Any]:
        """The schedule as the org holds it now (for tests and the benchmark)."""
        with self._lock:
            self._advance()
            st = self._schedules[schedule_id]
            return {
                "id": schedule_id,
                "version": st.version,
                "published": st.published,
                "description": st.description,
                "modifiedBy": st.modified_by,
                "dateModified": self._moment(0).at(st.date_modified),
                "updateInProgress": schedule_id in self._active_update,
            }

    # ----------------------------------------------------------------- dispatch

    def handle(
        self, method: str, path: str, query: dict[str, list[str]], headers: dict[str, str], body: bytes
    ) -> SimResponse:
        """Answer one request. `path` may carry a query string; it is merged into `query`."""
        with self._lock:
            t = self._advance()
            req = self._request(method, path, query, headers, body)
            if req.path.startswith("/__sim/"):
                return self._dispatch(self._sim_router, req, count=False)
            fault = self._fault_for(req, t)
            if fault.drop:
                self._counts["connectionsDropped"] += 1
                self._count_call(req)
                return SimResponse(0, {}, b"", fault.latency, drop=True)
            if fault.status is not None:
                self._count_call(req)
                resp = self._error(self._injected(fault))
            else:
                resp = self._dispatch(self._router, req, count=True)
            resp.delay_seconds += fault.latency
            return resp

    def _request(
        self, method: str, path: str, query: dict[str, list[str]], headers: dict[str, str], body: bytes
    ) -> SimRequest:
        merged = {k: list(v) for k, v in query.items()}
        if "?" in path:
            path, raw_query = path.split("?", 1)
            for k, v in parse_qs(raw_query, keep_blank_values=True).items():
                merged.setdefault(k, []).extend(v)
        if len(path) > 1:
            path = path.rstrip("/")
        lowered = {k.lower(): v for k, v in headers.items()}
        host = lowered.get("host", "127.0.0.1")
        return SimRequest(method.upper(), path, merged, lowered, body, f"http://{host}")

    def _count_call(self, req: SimRequest) -> None:
        route, _, _ = self._router.match(req.method, req.path)
        self._calls[route.label if route else f"{req.method} (unmatched)"] += 1

    def _dispatch(self, router: Router, req: SimRequest, count: bool) -> SimResponse:
        route, params, known = router.match(req.method, req.path)
        if count:
            self._calls[route.label if route else f"{req.method} (unmatched)"] += 1
        try:
            if route is None:
                if known:
                    raise ApiError(405, "method.not.allowed", f"{req.method} is not allowed on {req.path}")
                raise ApiError(404, "not.found", f"No resource at {req.method} {req.path}")
            req.params = params
            if route.auth:
                self._authenticate(req)
                self._rate_check(req.token)
            return route.handler(req)
        except ApiError as err:
            return self._error(err)

    def _error(self, err: ApiError) -> SimResponse:
        context = self._new_id()
        if err.status == 429:
            self._counts["rateLimited"] += 1
        return json_response(err.status, err.body(context), {**err.headers, "ININ-Correlation-Id": context})

    def _ok(self, payload: Any, status: int = 200) -> SimResponse:
        return json_response(status, payload, {"ININ-Correlation-Id": self._new_id()})

    # ----------------------------------------------------------------- auth and limits

    def _token(self, req: SimRequest) -> SimResponse:
        creds = self.scenario.credentials
        form = parse_qs(req.body.decode("utf-8", "replace"))
        if form.get("grant_type") != ["client_credentials"]:
            return json_response(400, {"error": "unsupported_grant_type", "description": "grant_type"})
        scheme, _, encoded = req.headers.get("authorization", "").partition(" ")
        try:
            client_id, _, secret = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            client_id, secret = "", ""
        if scheme.lower() != "basic" or (client_id, secret) != (creds.client_id, creds.client_secret):
            body = {"error": "invalid_client", "description": "client not found"}
            return json_response(401, {**body, "error_description": body["description"]})
        token = f"sim-{self._new_id()}"
        self._tokens[token] = Token(client_id, self.clock.now() + creds.expires_in)
        self._counts["tokensIssued"] += 1
        return self._ok({"access_token": token, "token_type": "bearer", "expires_in": creds.expires_in})

    def _authenticate(self, req: SimRequest) -> None:
        scheme, _, token = req.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise ApiError(
                401,
                "authentication.required",
                "No authentication bearer token specified in authorization header.",
            )
        found = self._tokens.get(token.strip())
        if found is None or found.expires_at <= self.clock.now():
            raise ApiError(401, "bad.credentials", "Invalid login credentials.")
        req.client_id, req.token = found.client_id, token.strip()

    def _rate_check(self, token: str) -> None:
        limit = self.scenario.rate_limit
        if not limit.enabled:
            return
        t = self.elapsed()
        n = limit.requests_per_minute
        if limit.window == "fixed":
            window = math.floor(t / 60)
            seen_window, count = self._rate_fixed.get(token, (window, 0))
            count = count if seen_window == window else 0
            if count >= n:
                raise _too_many(max(1, math.ceil((window + 1) * 60 - t)), n)
            self._rate_fixed[token] = (window, count + 1)
            return
        hits = self._rate_hits.setdefault(token, deque())
        while hits and hits[0] <= t - 60:
            hits.popleft()
        if len(hits) >= n:
            raise _too_many(max(1, math.ceil(hits[0] + 60 - t)), n)
        hits.append(t)

    # ----------------------------------------------------------------- faults

    def _fault_for(self, req: SimRequest, t: float) -> FaultOutcome:
        out = FaultOutcome()
        for index, fault in enumerate(self.scenario.faults):
            if not _fault_matches(fault, req, t):
                continue
            step = self._fault_step(index, fault)
            if step is None:
                continue
            out.latency += fault.latency_seconds
            if out.status is not None or out.drop:
                continue
            if step == "drop":
                out.drop = True
            elif isinstance(step, int):
                out.status, out.retry_after = step, fault.retry_after
        if out.status is not None or out.drop:
            self._counts["faultsInjected"] += 1
        return out

    def _fault_step(self, index: int, fault: Fault) -> int | str | None:
        """What the fault does to this request: a status, "drop", "pass", or None (did not fire)."""
        if fault.sequence is not None:
            position = self._fault_positions[index]
            self._fault_positions[index] += 1
            return fault.sequence[position] if position < len(fault.sequence) else None
        if fault.probability < 1.0 and self._fault_rng.random() >= fault.probability:
            return None
        if fault.drop:
            return "drop"
        return fault.status if fault.status is not None else "pass"

    def _injected(self, fault: FaultOutcome) -> ApiError:
        status = fault.status or 500
        if status == 429:
            return _too_many(fault.retry_after, self.scenario.rate_limit.requests_per_minute)
        return ApiError(status, _STATUS_CODES.get(status, "error"), f"Injected fault: HTTP {status}")

    # ----------------------------------------------------------------- routes

    def _routes(self) -> list[Route]:
        return [
            Route("POST", "/oauth/token", self._token, auth=False),
            Route("PUT", "/__uploads/{uploadKey}", self._put_upload, auth=False),
            Route("GET", "/__downloads/{operationId}", self._download, auth=False),
            Route("GET", WFM, self._bu_list),
            Route("GET", WFM + "/{buId}", self._bu_get),
            Route("GET", WFM + "/{buId}/weeks/{weekId}/schedules", self._schedule_list),
            Route("GET", SCHEDULE, self._schedule_get),
            Route("POST", SCHEDULE + "/agentschedules/query", self._agent_query),
            Route("POST", SCHEDULE + "/update/uploadurl", self._upload_url),
            Route("POST", SCHEDULE + "/update", self._update),
            Route("GET", EDGES, self._edge_list),
            Route("GET", EDGES + "/trunks", self._trunk_list),
            Route("GET", EDGES + "/trunks/metrics", self._trunk_metrics),
            Route("GET", EDGES + "/trunks/{trunkId}", self._trunk_get),
            Route("GET", EDGES + "/trunkbasesettings", self._trunk_base_list),
            Route("GET", EDGES + "/trunkbasesettings/{trunkBaseId}", self._trunk_base_get),
            Route("GET", EDGES + "/sites", self._site_list),
            Route("GET", EDGES + "/sites/{siteId}", self._site_get),
            Route("GET", EDGES + "/{edgeId}", self._edge_get),
            Route("GET", OUTBOUND + "/campaigns", self._campaign_list),
            Route("GET", OUTBOUND + "/campaigns/{campaignId}", self._campaign_get),
            Route("GET", OUTBOUND + "/campaigns/{campaignId}/linedistribution", self._line_distribution),
            Route("GET", OUTBOUND + "/settings", self._outbound_settings),
            Route("GET", "/api/v2/routing/queues/{queueId}/members", self._queue_members),
        ]

    def _sim_routes(self) -> list[Route]:
        return [
            Route("GET", "/__sim/stats", lambda _req: self._ok(self.stats()), auth=False),
            Route("POST", "/__sim/reset", self._sim_reset, auth=False),
            Route("GET", "/__sim/operations/{operationId}", self._sim_operation, auth=False),
            Route("GET", "/__sim/schedules/{scheduleId}", self._sim_schedule, auth=False),
            Route("GET", "/__sim/notifications", self._sim_notifications, auth=False),
        ]

    def _sim_notifications(self, req: SimRequest) -> SimResponse:
        """The EventBridge events the org would have sent, in order; `after=N` skips the first N."""
        after = int(req.arg("after") or 0)
        return self._ok(
            {"after": after, "total": len(self.notifier.sent), "events": self.notifier.since(after)}
        )

    def _sim_reset(self, _req: SimRequest) -> SimResponse:
        self.reset()
        return self._ok({"reset": True, "t": 0.0})

    def _sim_operation(self, req: SimRequest) -> SimResponse:
        op = self._operations.get(req.params["operationId"])
        if op is None:
            raise not_found("operation", req.params["operationId"])
        out: dict[str, Any] = {
            "operationId": op.id,
            "status": op.status,
            "eventType": op.kind,
            "scheduleId": op.schedule_id,
        }
        if op.status == "Complete" and op.download_url:
            out["downloadUrl"] = op.download_url
        return self._ok(out)

    def _sim_schedule(self, req: SimRequest) -> SimResponse:
        if req.params["scheduleId"] not in self._schedules:
            raise not_found("schedule", req.params["scheduleId"])
        return self._ok(self.schedule_state(req.params["scheduleId"]))

    # ----------------------------------------------------------------- business units and schedules

    def _bu(self, req: SimRequest) -> BusinessUnit:
        bu = self.topology.business_units.get(req.params["buId"])
        if bu is None:
            raise not_found("business unit", req.params["buId"])
        return bu

    @staticmethod
    def _bu_summary(bu: BusinessUnit) -> dict[str, Any]:
        return {
            "id": bu.id,
            "name": bu.name or bu.id,
            # DivisionReference: id and selfUri only (no name).
            "division": {
                "id": bu.division.id,
                "selfUri": f"/api/v2/authorization/divisions/{bu.division.id}",
            },
            "selfUri": f"{WFM}/{bu.id}",
        }

    def _bu_list(self, _req: SimRequest) -> SimResponse:
        return self._ok({"entities": [self._bu_summary(b) for b in self.topology.business_units.values()]})

    def _bu_get(self, req: SimRequest) -> SimResponse:
        bu = self._bu(req)
        out = self._bu_summary(bu)
        if "settings" in req.expand():
            out["settings"] = {
                "startDayOfWeek": bu.start_day_of_week,
                "timeZone": bu.time_zone,
                "shortTermForecasting": {"defaultHistoryWeeks": 8},
                "scheduling": {"syncTimeOffProperties": [], "allowWorkPlanPerMinuteGranularity": False},
                "metadata": {"version": 1},
            }
        return self._ok(out)

    def _week(self, req: SimRequest, bu: BusinessUnit, allow_recent: bool) -> dt.date | None:
        """The week in the path; None means `recent` (only the schedule list takes it)."""
        raw = req.params["weekId"]
        if raw == "recent" and allow_recent:
            return None
        try:
            week = dt.date.fromisoformat(raw) if _DATE.match(raw) else None
        except ValueError:
            week = None
        if week is None:
            expected = "a yyyy-MM-dd date or 'recent'" if allow_recent else "a yyyy-MM-dd date"
            raise ApiError(
                400,
                "bad.request",
                f"weekId must be {expected}, got {raw!r}",
                error_code="invalid.value",
                field_name="weekId",
            )
        if WEEKDAYS[week.weekday()] != bu.start_day_of_week:
            raise ApiError(
                400,
                "bad.request",
                f"weekId {raw} is a {WEEKDAYS[week.weekday()]}; business unit {bu.id} starts weeks on "
                f"{bu.start_day_of_week}",
                error_code="invalid.week.start",
                field_name="weekId",
            )
        return week

    def _schedule(self, req: SimRequest) -> tuple[BusinessUnit, str, ScheduleState]:
        bu = self._bu(req)
        week = self._week(req, bu, allow_recent=False)
        sid = req.params["scheduleId"]
        spec = self.topology.schedules.get(sid)
        if spec is None or spec.business_unit_id != bu.id or spec.week_id != week:
            raise not_found("schedule", sid)
        return bu, sid, self._schedules[sid]

    def _metadata(self, sid: str, st: ScheduleState) -> dict[str, Any]:
        m = self._moment(0)
        return {
            "version": st.version,
            "modifiedBy": {"id": st.modified_by},
            "dateModified": m.at(st.date_modified),
            "createdBy": {"id": self.topology.schedules[sid].created_by},
            "dateCreated": m.at(-BASE_AGE_SECONDS - 86400),
        }

    def _schedule_summary(self, sid: str, st: ScheduleState) -> dict[str, Any]:
        spec = self.topology.schedules[sid]
        week = spec.week_id.isoformat()
        return {
            "id": sid,
            "weekDate": week,
            "weekCount": spec.week_count,
            "description": st.description,
            "published": st.published,
            "shortTermForecast": {  # BuShortTermForecastReference: no weekCount
                "id": spec.short_term_forecast_id or f"stf-{sid}",
                "weekDate": week,
            },
            "generationResults": {"failed": False, "runId": f"run-{sid}", "messageCount": 0},
            "metadata": self._metadata(sid, st),
            "selfUri": f"{WFM}/{spec.business_unit_id}/weeks/{week}/schedules/{sid}",
        }

    def _schedule_list(self, req: SimRequest) -> SimResponse:
        bu = self._bu(req)
        week = self._week(req, bu, allow_recent=True)
        if week is None:
            today = self.scenario.today or dt.datetime.fromtimestamp(self.clock.now(), dt.UTC).date()
            window = dt.timedelta(weeks=RECENT_WEEKS)
            wanted = [s for s in self.scenario.schedules if abs(s.week_id - today) <= window]
        else:
            wanted = [s for s in self.scenario.schedules if s.week_id == week]
        entities = [
            self._schedule_summary(s.id, self._schedules[s.id]) for s in wanted if s.business_unit_id == bu.id
        ]
        return self._ok({"entities": entities})

    def _schedule_get(self, req: SimRequest) -> SimResponse:
        _, sid, st = self._schedule(req)
        out = self._schedule_summary(sid, st)
        expand = req.expand()
        if expand & {"managementUnits", "managementUnits.agents"}:
            spec = self.topology.schedules[sid]
            units = []
            for mu_id in self.topology.schedule_mu_ids(spec):
                unit: dict[str, Any] = {"managementUnit": {"id": mu_id}}
                if "managementUnits.agents" in expand:
                    agents = self.topology.management_units[mu_id].agents
                    unit["agents"] = [{"id": a} for a in agents]  # UserReference
                units.append(unit)
            out["managementUnits"] = units
        return self._ok(out)

    # ----------------------------------------------------------------- agent schedules

    def _shifts(self, sid: str) -> dict[str, dict[str, Any]]:
        if sid not in self._shift_cache:
            self._shift_cache[sid] = expand_shifts(self.topology.schedules[sid], self.topology)
        return self._shift_cache[sid]

    def _agent_schedule(self, sid: str, st: ScheduleState, agent: str) -> dict[str, Any]:
        planned = self._shifts(sid).get(agent, {"shifts": [], "workPlan": None})
        override = st.agent_overrides.get(agent, {})
        out = {
            "user": {"id": agent},
            "shifts": override.get("shifts", planned["shifts"]),
            "fullDayTimeOffMarkers": override.get("fullDayTimeOffMarkers", []),
            "metadata": {"version": st.agent_versions.get(agent, 1)},
        }
        if planned["workPlan"] is not None:
            out["workPlan"] = planned["workPlan"]
        return out

    def _query_agents(self, req: SimRequest, sid: str) -> list[str]:
        body = req.json()
        pairs = self.topology.schedule_agents(self.topology.schedules[sid])
        mu = body.get("managementUnitId")
        if mu is not None:
            if mu not in {m for m, _ in pairs} and mu not in self.topology.schedule_mu_ids(
                self.topology.schedules[sid]
            ):
                raise ApiError(
                    400,
                    "bad.request",
                    f"Management unit {mu} is not part of schedule {sid}",
                    error_code="invalid.value",
                    field_name="managementUnitId",
                    entity_id=str(mu),
                )
            pairs = [(m, a) for m, a in pairs if m == mu]
        agents = list(dict.fromkeys(a for _, a in pairs))
        users = body.get("userIds")
        if users is not None:
            if not isinstance(users, list) or not all(isinstance(u, str) for u in users):
                raise ApiError(400, "bad.request", "userIds must be a list of strings", field_name="userIds")
            agents = [a for a in agents if a in set(users)]
        if body.get("teamIds"):
            raise ApiError(
                400, "bad.request", "teamIds is not simulated: query by userIds", field_name="teamIds"
            )
        return agents

    def _agent_query(self, req: SimRequest) -> SimResponse:
        bu, sid, st = self._schedule(req)
        agents = self._query_agents(req, sid)
        result = {
            "agentSchedules": [self._agent_schedule(sid, st, a) for a in agents],
            "businessUnitTimeZone": bu.time_zone,
        }
        threshold = self.scenario.async_agent_query_over
        if threshold is None or len(agents) <= threshold:
            return self._ok({"status": "Complete", "result": result})
        t = self.elapsed()
        op = Operation(
            self._new_id(),
            "AgentSchedulesQuery",
            sid,
            t + self.scenario.async_query_seconds,
            client_id=req.client_id,
            business_unit_id=bu.id,
        )
        op.result = result
        op.download_url = f"{req.base_url}/__downloads/{op.id}"
        self._operations[op.id] = op
        self._at(op.done_at, partial(self._finish_query, op.id))
        return self._ok({"status": "Processing", "operationId": op.id})

    def _finish_query(self, op_id: str, t: float) -> None:
        op = self._operations[op_id]
        op.status = "Complete"
        self._log(t, "agentSchedulesQueryComplete", op_id)
        # Delivered on the asking user's topic (an OAuth client's own id here).
        body = {"operationId": op_id, "businessUnitId": op.business_unit_id, "downloadUrl": op.download_url}
        self._notify(topics.QUERY_RESULT_TOPIC, op.client_id or "client", body, t)

    def _download(self, req: SimRequest) -> SimResponse:
        op = self._operations.get(req.params["operationId"])
        if op is None or op.status != "Complete" or op.result is None:
            raise not_found("download", req.params["operationId"])
        return self._ok(op.result)

    # ----------------------------------------------------------------- publish (three steps)

    def _upload_url(self, req: SimRequest) -> SimResponse:
        _, sid, st = self._schedule(req)
        size = req.json().get("contentLengthBytes")
        if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
            raise ApiError(
                400,
                "bad.request",
                "contentLengthBytes must be a positive integer: the size of the gzip body",
                error_code="invalid.value",
                field_name="contentLengthBytes",
            )
        st.uploads_requested += 1
        if st.uploads_requested == 1:
            # The other writer gets in between the caller's read and its update.
            for ev in self._triggers.pop(sid, []):
                self._writer_edit(ev, self.elapsed())
        key = self._new_id()
        self._uploads[key] = Upload(key, sid, size)
        return self._ok(
            {
                "uploadKey": key,
                "url": f"{req.base_url}/__uploads/{key}",
                "headers": {"Content-Type": "application/json", "Content-Encoding": "gzip"},
            }
        )

    def _put_upload(self, req: SimRequest) -> SimResponse:
        up = self._uploads.get(req.params["uploadKey"])
        if up is None:
            raise not_found("upload", req.params["uploadKey"])
        if up.consumed:
            raise _bad_upload("This upload was already used by an update; ask for a new upload URL")
        if req.headers.get("content-encoding", "").lower() != "gzip" or not req.headers.get(
            "content-type", ""
        ).lower().startswith("application/json"):
            raise _bad_upload("The upload must carry the headers given with the URL (JSON, gzip)")
        if len(req.body) != up.content_length:
            raise _bad_upload(
                f"The upload is {len(req.body)} bytes but contentLengthBytes said {up.content_length}"
            )
        try:
            payload = json.loads(gzip.decompress(req.body))
        except (OSError, EOFError, zlib.error, ValueError) as exc:
            raise _bad_upload(f"The upload is not gzip-compressed JSON: {exc}") from exc
        if not isinstance(payload, dict):
            raise _bad_upload("The upload must be a JSON object")
        metadata = payload.get("metadata")
        version = metadata.get("version") if isinstance(metadata, dict) else None
        if not isinstance(version, int) or isinstance(version, bool):
            raise _bad_upload("metadata.version is required (the version that was read)", "metadata.version")
        if "published" in payload and not isinstance(payload["published"], bool):
            raise _bad_upload("published must be a boolean", "published")
        up.payload = payload
        return SimResponse(200, {"ININ-Correlation-Id": self._new_id()}, b"")

    def _update(self, req: SimRequest) -> SimResponse:
        _, sid, st = self._schedule(req)
        key = req.json().get("uploadKey")
        up = self._uploads.get(key) if isinstance(key, str) else None
        if up is None or up.schedule_id != sid:
            raise ApiError(
                400,
                "bad.request",
                f"Unknown uploadKey for schedule {sid}: {key!r}",
                error_code="wfm.schedule.upload.not.found",
                field_name="uploadKey",
            )
        if up.payload is None or up.consumed:
            reason = "nothing was uploaded to it" if up.payload is None else "it was already used"
            raise ApiError(
                400,
                "bad.request",
                f"The uploadKey cannot be used: {reason}",
                error_code="wfm.schedule.upload.invalid",
                field_name="uploadKey",
            )
        t = self.elapsed()
        self._check_conflicts(sid, st, up.payload, t)
        fail = self._fail_left.get(sid, 0) > 0
        if fail:
            self._fail_left[sid] -= 1
        cancel = not fail and self._cancel_left.get(sid, 0) > 0
        if cancel:
            self._cancel_left[sid] -= 1
        duration = self._durations.get(sid, self.scenario.publish_duration_seconds)
        op = Operation(
            self._new_id(),
            "Update",
            sid,
            t + duration,
            business_unit_id=self.topology.schedules[sid].business_unit_id,
            client_id=req.client_id,
            payload=up.payload,
        )
        op.fail, op.cancel = fail, cancel
        up.consumed = True
        self._operations[op.id] = op
        self._active_update[sid] = op.id
        self._at(op.done_at, partial(self._finish_update, op.id))
        self._log(t, "updateAccepted", f"{sid} operation {op.id} (version {st.version})")
        return self._ok({"status": "Processing", "operationId": op.id})

    def _check_conflicts(self, sid: str, st: ScheduleState, payload: dict[str, Any], t: float) -> None:
        provided = payload["metadata"]["version"]
        if provided != st.version:
            self._conflict("stale", t, f"{sid}: version {provided} sent, {st.version} current")
            raise ApiError(
                409,
                "conflict",
                f"The schedule was modified by someone else: version {provided} was provided but the "
                f"current version is {st.version}",
                error_code="wfm.schedule.version.mismatch",
                entity_id=sid,
                entity_name=st.description or sid,
                params={"providedVersion": str(provided), "currentVersion": str(st.version)},
                message_with_params=(
                    "The schedule was modified by someone else: version {providedVersion} was provided but "
                    "the current version is {currentVersion}"
                ),
            )
        change = self.telephony.blocking_change(sid, t, self.scenario.settle_window_seconds)
        if change is not None:
            name = self.topology.entity_name(change.entity_id)
            self._conflict("telephony", t, f"{sid}: {change.kind} on {change.entity_id}")
            raise ApiError(
                409,
                "conflict",
                f"Telephony provisioning in progress on {name} affects agents in this schedule",
                error_code="wfm.schedule.telephony.provisioning.in.progress",
                entity_id=change.entity_id,
                entity_name=name,
                params={"entityName": name},
                message_with_params=(
                    "Telephony provisioning in progress on {entityName} affects agents in this schedule"
                ),
            )
        running = self._active_update.get(sid)
        if running is not None:
            self._conflict("inProgress", t, f"{sid}: operation {running} still processing")
            raise ApiError(
                409,
                "conflict",
                "Another update of this schedule is still processing",
                error_code="wfm.schedule.update.in.progress",
                entity_id=sid,
                entity_name=st.description or sid,
                params={"operationId": running},
                message_with_params="Another update of this schedule is still processing ({operationId})",
            )

    def _conflict(self, kind: str, t: float, detail: str) -> None:
        self._conflicts[kind] += 1
        self._log(t, f"conflict.{kind}", detail)

    def _finish_update(self, op_id: str, t: float) -> None:
        op = self._operations[op_id]
        sid = op.schedule_id
        if self._active_update.get(sid) == op_id:
            del self._active_update[sid]
        if op.fail or op.cancel:
            op.status = "Error" if op.fail else "Canceled"
            self._failed[sid] += 1
            self._log(t, "updateFailed", f"{sid} operation {op_id} ended {op.status}; nothing applied")
            # As users report, an Error carries nothing but the operation id.
            body: dict[str, Any] = {"status": op.status, "operationId": op_id}
            if op.status == "Canceled":
                body["eventType"] = "Update"
            self._notify(topics.SCHEDULES_TOPIC, op.business_unit_id, body, t)
            return
        st = self._schedules[sid]
        if op.payload.get("published") is True:
            st.published = True  # a published schedule cannot be un-published, only superseded
        if isinstance(op.payload.get("description"), str):
            st.description = op.payload["description"]
        for entry in op.payload.get("agentSchedules") or []:
            user = _user_of(entry)
            if user:
                st.agent_overrides[user] = entry
                st.agent_versions[user] = st.agent_versions.get(user, 1) + 1
        st.version += 1
        st.date_modified = t
        st.modified_by = op.client_id
        op.status = "Complete"
        self._applied[sid] += 1
        self._log(
            t, "updateApplied", f"{sid} operation {op_id}: version {st.version}, published {st.published}"
        )
        body = {
            "status": "Complete",
            "operationId": op_id,
            "eventType": "Update",
            "result": self._topic_schedule(sid, st),
        }
        self._notify(topics.SCHEDULES_TOPIC, op.business_unit_id, body, t)

    # ----------------------------------------------------------------- notifications

    def _notify(self, topic: str, entity_id: str, body: dict[str, Any], t: float) -> None:
        self.notifier.emit(topic, entity_id, body, self._t0 + t, self._new_id())

    def _topic_schedule(self, sid: str, st: ScheduleState) -> dict[str, Any]:
        """WfmBuScheduleTopicBuScheduleMetadata: the schedule as the update left it."""
        summary = self._schedule_summary(sid, st)
        out = {k: summary[k] for k in ("id", "weekCount", "description", "published", "metadata")}
        out["weekDate"] = summary["weekDate"] + "T00:00:00Z"  # a datetime on this topic
        out["metadata"] = {
            k: v for k, v in summary["metadata"].items() if k in {"version", "dateModified", "modifiedBy"}
        }
        return out

    def _notify_telephony(self, change: TelephonyChange, t: float) -> None:
        """What the org says at a change's start or end: its Edge (and software update), its trunks."""
        m = self._moment(t)
        index = next(i for i, c in enumerate(self.topology.changes) if c is change)
        for entity_id in sorted(self.topology.change_targets[index]):
            if entity_id in self.topology.edges:
                edge = self.telephony.edge(self.topology.edges[entity_id], m)
                self._notify(
                    topics.EDGE_TOPIC, entity_id, {"id": entity_id, "onlineStatus": edge["onlineStatus"]}, t
                )
                if change.kind == "softwareUpdate":
                    software = {k: v for k, v in edge["softwareStatus"].items() if k != "version"}
                    self._notify(topics.EDGE_SOFTWARE_TOPIC, entity_id, {"id": entity_id, **software}, t)
            elif entity_id in self.topology.trunks:
                trunk = self.telephony.trunk(self.topology.trunks[entity_id], m)
                body = {
                    k: trunk[k]
                    for k in ("id", "connectedStatus", "optionsStatus", "registersStatus", "ipStatus")
                }
                self._notify(topics.TRUNK_TOPIC, entity_id, body, t)

    # ----------------------------------------------------------------- telephony

    def _edge_list(self, req: SimRequest) -> SimResponse:
        m = self._moment(self.elapsed())
        site, group = req.arg("site.id"), req.arg("edgeGroup.id")
        edges = [
            e
            for e in self.topology.edges.values()
            if (site is None or e.site_id == site) and (group is None or e.edge_group_id == group)
        ]
        return self._ok(page(req, [self.telephony.edge(e, m) for e in edges]))

    def _edge_get(self, req: SimRequest) -> SimResponse:
        edge = self.topology.edges.get(req.params["edgeId"])
        if edge is None:
            raise not_found("edge", req.params["edgeId"])
        return self._ok(self.telephony.edge(edge, self._moment(self.elapsed())))

    def _trunk_list(self, req: SimRequest) -> SimResponse:
        m = self._moment(self.elapsed())
        edge, base, kind = req.arg("edge.id"), req.arg("trunkBase.id"), req.arg("trunkType")
        trunks = [
            x
            for x in self.topology.trunks.values()
            if (edge is None or x.edge_id == edge)
            and (base is None or x.trunk_base_id == base)
            and (kind is None or x.trunk_type == kind.upper())
        ]
        return self._ok(page(req, [self.telephony.trunk(x, m) for x in trunks]))

    def _trunk_get(self, req: SimRequest) -> SimResponse:
        trunk = self.topology.trunks.get(req.params["trunkId"])
        if trunk is None:
            raise not_found("trunk", req.params["trunkId"])
        return self._ok(self.telephony.trunk(trunk, self._moment(self.elapsed())))

    def _trunk_metrics(self, req: SimRequest) -> SimResponse:
        ids = req.args("trunkIds")
        if not ids:
            raise ApiError(
                400, "bad.request", "trunkIds is required", error_code="missing", field_name="trunkIds"
            )
        m = self._moment(self.elapsed())
        out = []
        for trunk_id in ids:
            trunk = self.topology.trunks.get(trunk_id)
            if trunk is None:
                raise not_found("trunk", trunk_id)
            out.append(self.telephony.trunk_metrics(trunk, m))
        return self._ok(out)

    def _trunk_base_get(self, req: SimRequest) -> SimResponse:
        base = self.topology.trunk_bases.get(req.params["trunkBaseId"])
        if base is None:
            raise not_found("trunk base settings", req.params["trunkBaseId"])
        view = self.telephony.trunk_base(base, self._moment(self.elapsed()), "properties" in req.expand())
        return self._ok(view)

    def _trunk_base_list(self, req: SimRequest) -> SimResponse:
        m = self._moment(self.elapsed())
        name = req.arg("name")
        with_properties = "properties" in req.expand()
        bases = [
            self.telephony.trunk_base(b, m, with_properties)
            for b in self.topology.trunk_bases.values()
            if name is None or (b.name or b.id) == name
        ]
        return self._ok(page(req, bases))

    def _site_list(self, req: SimRequest) -> SimResponse:
        name = req.arg("name")
        sites = [
            self.telephony.site(s.id)
            for s in self.topology.sites.values()
            if name is None or (s.name or s.id) == name
        ]
        return self._ok(page(req, sites))

    def _site_get(self, req: SimRequest) -> SimResponse:
        if req.params["siteId"] not in self.topology.sites:
            raise not_found("site", req.params["siteId"])
        return self._ok(self.telephony.site(req.params["siteId"]))

    # ----------------------------------------------------------------- outbound and routing

    def _campaign_list(self, req: SimRequest) -> SimResponse:
        wanted = set(req.args("id"))
        name = (req.arg("name") or "").lower()
        campaigns = [
            c
            for c in self.topology.campaigns.values()
            if (not wanted or c.id in wanted) and name in (c.name or c.id).lower()
        ]
        return self._ok(page(req, [self.outbound.campaign(c) for c in campaigns], max_size=100))

    def _campaign_get(self, req: SimRequest) -> SimResponse:
        campaign = self.topology.campaigns.get(req.params["campaignId"])
        if campaign is None:
            raise not_found("campaign", req.params["campaignId"])
        return self._ok(self.outbound.campaign(campaign))

    def _line_distribution(self, req: SimRequest) -> SimResponse:
        campaign = self.topology.campaigns.get(req.params["campaignId"])
        if campaign is None:
            raise not_found("campaign", req.params["campaignId"])
        return self._ok(self.outbound.line_distribution(campaign, self.elapsed()))

    def _outbound_settings(self, _req: SimRequest) -> SimResponse:
        return self._ok(self.outbound.settings())

    def _queue_members(self, req: SimRequest) -> SimResponse:
        members = self.topology.queue_members.get(req.params["queueId"])
        if members is None:
            raise not_found("queue", req.params["queueId"])
        entities = []
        for agent_id in members:
            agent = self.topology.agents[agent_id]
            user = {"id": agent.id, "name": agent.name or agent.id}
            entities.append({**user, "user": user, "memberBy": "user", "joined": True, "ringNumber": 1})
        # QueueMemberEntityListing pages by links only: no total, pageCount or lastUri.
        return self._ok(page(req, entities, max_size=100, totals=False))


def _fault_matches(fault: Fault, req: SimRequest, t: float) -> bool:
    if fault.method is not None and fault.method.upper() != req.method:
        return False
    if (fault.after is not None and t < fault.after) or (fault.before is not None and t >= fault.before):
        return False
    return fnmatch.fnmatchcase(req.path, fault.path)


def _too_many(retry_after: int, limit: int) -> ApiError:
    return ApiError(
        429,
        "too.many.requests.retry.after",
        f"Rate limit exceeded the maximum. Retry the request in [{retry_after}] seconds",
        params={"retryAfter": str(retry_after)},
        headers={"Retry-After": str(retry_after)},
        limit={"key": "token.rate.per.minute", "namespace": "platform.api", "value": limit},
    )


def _bad_upload(message: str, field_name: str | None = None) -> ApiError:
    return ApiError(
        400, "bad.request", message, error_code="wfm.schedule.upload.invalid", field_name=field_name
    )


def _user_of(entry: Any) -> str | None:
    if not isinstance(entry, dict):
        return None
    user = entry.get("userId") or (entry.get("user") or {}).get("id")
    return user if isinstance(user, str) else None
