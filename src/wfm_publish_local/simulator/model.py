"""The simulated Genesys Cloud org: `GenesysSimulator` answers one request at a time.

It puts the pieces together: the org's state and time (org.py), the gateway every request passes
(gateway.py: tokens, rate limits, faults) and the endpoint families (endpoints/), in one route table
below. One lock makes `handle` safe for a threading HTTP server.
"""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import parse_qs

from wfm_publish.clock import Clock, SystemClock
from wfm_publish_local.simulator.endpoints.outbound import OutboundApi
from wfm_publish_local.simulator.endpoints.publish import Publishing
from wfm_publish_local.simulator.endpoints.telephony import TelephonyApi
from wfm_publish_local.simulator.endpoints.wfm import SCHEDULE, WFM, Schedules
from wfm_publish_local.simulator.gateway import Gateway
from wfm_publish_local.simulator.notifications import Notifier
from wfm_publish_local.simulator.org import Org
from wfm_publish_local.simulator.scenario import Scenario
from wfm_publish_local.simulator.wire import Route, Router, SimRequest, SimResponse, not_found

EDGES = "/api/v2/telephony/providers/edges"
OUTBOUND = "/api/v2/outbound"


class GenesysSimulator:
    """A Genesys Cloud org served from a scenario; `handle` answers one request."""

    def __init__(self, scenario: Scenario, clock: Clock | None = None) -> None:
        self.org = Org(scenario, clock or SystemClock())
        self._lock = threading.RLock()
        schedules = Schedules(self.org)
        # The gateway serves a route itself (the token) and labels calls by route: the table is
        # filled once both exist.
        self._router = Router([])
        self.gateway = Gateway(self.org, self._router, Router(self._sim_routes()))
        self._router.routes = self._routes(
            self.gateway,
            schedules,
            Publishing(self.org, schedules),
            TelephonyApi(self.org),
            OutboundApi(self.org),
        )

    @property
    def scenario(self) -> Scenario:
        return self.org.scenario

    @property
    def clock(self) -> Clock:
        return self.org.clock

    @property
    def notifier(self) -> Notifier:
        return self.org.notifier

    def reset(self) -> None:
        """Restart the clock and every piece of state from the scenario."""
        with self._lock:
            self.org.reset()
            self.gateway.reset()

    def pump(self) -> None:
        """Apply what is due by now (notifications included) without a request."""
        with self._lock:
            self.org.advance()

    def next_due(self) -> float | None:
        """The clock time of the next time-driven action (a telephony change, a notification), if any:
        a virtual run pumps up to it so events go out when they happen, not at the next request."""
        with self._lock:
            return self.org.t0 + self.org.pending[0][0] if self.org.pending else None

    def elapsed(self) -> float:
        """t: seconds since the simulator started (or was reset)."""
        return self.org.elapsed()

    @property
    def requests(self) -> list[tuple[str, str, dict[str, list[str]], bytes]]:
        """The latest API requests (method, path, query, body), oldest first; the last 10,000 are kept."""
        with self._lock:
            return list(self.org.requests)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return self.org.stats(self.org.advance())

    def schedule_state(self, schedule_id: str) -> dict[str, Any]:
        """The schedule as the org holds it now (for tests and the benchmark)."""
        with self._lock:
            self.org.advance()
            return self.org.schedule_state(schedule_id)

    def handle(
        self, method: str, path: str, query: dict[str, list[str]], headers: dict[str, str], body: bytes
    ) -> SimResponse:
        """Answer one request. `path` may carry a query string; it is merged into `query`."""
        with self._lock:
            t = self.org.advance()
            return self.gateway.handle(self._request(method, path, query, headers, body), t)

    @staticmethod
    def _request(
        method: str, path: str, query: dict[str, list[str]], headers: dict[str, str], body: bytes
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

    def _routes(
        self,
        gateway: Gateway,
        schedules: Schedules,
        publish: Publishing,
        telephony: TelephonyApi,
        outbound: OutboundApi,
    ) -> list[Route]:
        return [
            Route("POST", "/oauth/token", gateway.token, auth=False),
            Route("PUT", "/__uploads/{uploadKey}", publish.put_upload, auth=False),
            Route("GET", "/__downloads/{operationId}", schedules.download, auth=False),
            Route("GET", WFM, schedules.bu_list),
            Route("GET", WFM + "/{buId}", schedules.bu_get),
            Route("GET", WFM + "/{buId}/weeks/{weekId}/schedules", schedules.schedule_list),
            Route("GET", SCHEDULE, schedules.schedule_get),
            Route("POST", SCHEDULE + "/agentschedules/query", schedules.agent_query),
            Route("POST", SCHEDULE + "/update/uploadurl", publish.upload_url),
            Route("POST", SCHEDULE + "/update", publish.update),
            Route("GET", EDGES, telephony.edge_list),
            Route("GET", EDGES + "/trunks", telephony.trunk_list),
            Route("GET", EDGES + "/trunks/metrics", telephony.trunk_metrics),
            Route("GET", EDGES + "/trunks/{trunkId}", telephony.trunk_get),
            Route("GET", EDGES + "/trunkbasesettings", telephony.trunk_base_list),
            Route("GET", EDGES + "/trunkbasesettings/{trunkBaseId}", telephony.trunk_base_get),
            Route("GET", EDGES + "/sites", telephony.site_list),
            Route("GET", EDGES + "/sites/{siteId}", telephony.site_get),
            Route("GET", EDGES + "/sites/{siteId}/outboundroutes", telephony.outbound_routes),
            Route("GET", EDGES + "/{edgeId}", telephony.edge_get),
            Route("GET", OUTBOUND + "/campaigns", outbound.campaign_list),
            Route("GET", OUTBOUND + "/campaigns/{campaignId}", outbound.campaign_get),
            Route("GET", OUTBOUND + "/campaigns/{campaignId}/linedistribution", outbound.line_distribution),
            Route("GET", OUTBOUND + "/settings", outbound.outbound_settings),
            Route("GET", "/api/v2/routing/queues/{queueId}/members", outbound.queue_members),
        ]

    def _sim_routes(self) -> list[Route]:
        return [
            Route("GET", "/__sim/stats", lambda _req: self.org.ok(self.stats()), auth=False),
            Route("POST", "/__sim/reset", self._sim_reset, auth=False),
            Route("GET", "/__sim/operations/{operationId}", self._sim_operation, auth=False),
            Route("GET", "/__sim/schedules/{scheduleId}", self._sim_schedule, auth=False),
            Route("GET", "/__sim/notifications", self._sim_notifications, auth=False),
        ]

    def _sim_notifications(self, req: SimRequest) -> SimResponse:
        """The EventBridge events the org would have sent, in order; `after=N` skips the first N."""
        after = int(req.arg("after") or 0)
        return self.org.ok(
            {"after": after, "total": len(self.org.notifier.sent), "events": self.org.notifier.since(after)}
        )

    def _sim_reset(self, _req: SimRequest) -> SimResponse:
        self.reset()
        return self.org.ok({"reset": True, "t": 0.0})

    def _sim_operation(self, req: SimRequest) -> SimResponse:
        op = self.org.operations.get(req.params["operationId"])
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
        return self.org.ok(out)

    def _sim_schedule(self, req: SimRequest) -> SimResponse:
        if req.params["scheduleId"] not in self.org.schedules:
            raise not_found("schedule", req.params["scheduleId"])
        return self.org.ok(self.schedule_state(req.params["scheduleId"]))
