"""The gateway before every endpoint: OAuth tokens, rate limits, the scenario's faults, routing."""

from __future__ import annotations

import base64
import binascii
import fnmatch
import math
import random
from collections import deque
from dataclasses import dataclass
from urllib.parse import parse_qs

from wfm_publish_local.simulator.org import Org
from wfm_publish_local.simulator.scenario import Fault
from wfm_publish_local.simulator.wire import ApiError, Router, SimRequest, SimResponse, json_response

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
class Token:
    client_id: str
    expires_at: float  # epoch seconds


@dataclass
class FaultOutcome:
    status: int | None = None
    retry_after: int = 1
    drop: bool = False
    latency: float = 0.0


class Gateway:
    """What stands before every endpoint: OAuth tokens, the per-token rate limit, the scenario's
    faults, and routing to a handler with Genesys' error body."""

    def __init__(self, org: Org, router: Router, sim_router: Router) -> None:
        self.org = org
        self.router = router
        self.sim_router = sim_router  # /__sim/: no auth, no faults, not counted
        self.reset()

    def reset(self) -> None:
        s = self.org.scenario
        self._fault_rng = random.Random(s.seed + 1)
        self._tokens: dict[str, Token] = {}
        self._rate_hits: dict[str, deque[float]] = {}
        self._rate_fixed: dict[str, tuple[int, int]] = {}
        self._fault_positions = [0] * len(s.faults)

    def handle(self, req: SimRequest, t: float) -> SimResponse:
        if req.path.startswith("/__sim/"):
            return self.dispatch(self.sim_router, req, count=False)
        self.org.requests.append((req.method, req.path, req.query, req.body))
        fault = self.fault_for(req, t)
        if fault.drop:
            self.org.counts["connectionsDropped"] += 1
            self.count_call(req)
            return SimResponse(0, {}, b"", fault.latency, drop=True)
        if fault.status is not None:
            self.count_call(req)
            resp = self.error(self.injected(fault))
        else:
            resp = self.dispatch(self.router, req, count=True)
        resp.delay_seconds += fault.latency
        return resp

    def dispatch(self, router: Router, req: SimRequest, count: bool) -> SimResponse:
        route, params, known = router.match(req.method, req.path)
        if count:
            self.org.calls[route.label if route else f"{req.method} (unmatched)"] += 1
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
            return self.error(err)

    def count_call(self, req: SimRequest) -> None:
        route, _, _ = self.router.match(req.method, req.path)
        self.org.calls[route.label if route else f"{req.method} (unmatched)"] += 1

    def error(self, err: ApiError) -> SimResponse:
        context = self.org.new_id()
        if err.status == 429:
            self.org.counts["rateLimited"] += 1
        return json_response(err.status, err.body(context), {**err.headers, "ININ-Correlation-Id": context})

    def token(self, req: SimRequest) -> SimResponse:
        creds = self.org.scenario.credentials
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
        token = f"sim-{self.org.new_id()}"
        self._tokens[token] = Token(client_id, self.org.clock.now() + creds.expires_in)
        self.org.counts["tokensIssued"] += 1
        return self.org.ok({"access_token": token, "token_type": "bearer", "expires_in": creds.expires_in})

    def _authenticate(self, req: SimRequest) -> None:
        scheme, _, token = req.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise ApiError(
                401,
                "authentication.required",
                "No authentication bearer token specified in authorization header.",
            )
        found = self._tokens.get(token.strip())
        if found is None or found.expires_at <= self.org.clock.now():
            raise ApiError(401, "bad.credentials", "Invalid login credentials.")
        req.client_id, req.token = found.client_id, token.strip()

    def _rate_check(self, token: str) -> None:
        limit = self.org.scenario.rate_limit
        if not limit.enabled:
            return
        t = self.org.elapsed()
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

    def fault_for(self, req: SimRequest, t: float) -> FaultOutcome:
        out = FaultOutcome()
        for index, fault in enumerate(self.org.scenario.faults):
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
            self.org.counts["faultsInjected"] += 1
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

    def injected(self, fault: FaultOutcome) -> ApiError:
        status = fault.status or 500
        if status == 429:
            return _too_many(fault.retry_after, self.org.scenario.rate_limit.requests_per_minute)
        return ApiError(status, _STATUS_CODES.get(status, "error"), f"Injected fault: HTTP {status}")


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
