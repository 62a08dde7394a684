"""The Genesys client on its own: hosts, token life, error typing, paging, async answers, no leaks.

A scripted transport answers where a precise wire detail is pinned; the simulator (in-process, in
virtual time) answers where the flow matters.
"""

from __future__ import annotations

import base64
import contextlib
import email.utils
import gzip
import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import yaml
from requests.adapters import BaseAdapter

from wfm_publish import genesys as genesys_module
from wfm_publish.clock import VirtualClock
from wfm_publish.config import GENESYS_API_HOSTS, Settings
from wfm_publish.errors import (
    ConfigurationError,
    GenesysAuthError,
    GenesysConflict,
    GenesysConnectionError,
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
from wfm_publish.genesys import (
    Credentials,
    GenesysClient,
    MaxCalls,
    MemoryQueryBook,
    Schedule,
    TrunkBaseSettings,
    login_url,
    renew_margin,
)
from wfm_publish.genesys_auth import credentials_from
from wfm_publish.services import Services
from wfm_publish_local.simulator import GenesysSimulator, parse_scenario
from wfm_publish_local.simulator.notifications import DeliveredQueryBook
from wfm_publish_local.simulator.transport import InProcessAdapter, response_for

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
SECRET = "s3cr3t-value-never-logged"
SIM = "http://genesys.sim"
WEEK = ("bu-demo", "2023-10-23")

# shared/GENESYS_API.md, "Auth and hosts", verbatim.
DOCUMENTED_HOSTS = {
    "us-east-1": "api.mypurecloud.com",
    "eu-west-1": "api.mypurecloud.ie",
    "eu-central-1": "api.mypurecloud.de",
    "ap-southeast-2": "api.mypurecloud.com.au",
    "ap-northeast-1": "api.mypurecloud.jp",
    "us-west-2": "api.usw2.pure.cloud",
    "ca-central-1": "api.cac1.pure.cloud",
    "eu-west-2": "api.euw2.pure.cloud",
    "ap-south-1": "api.aps1.pure.cloud",
    "sa-east-1": "api.sae1.pure.cloud",
    "me-central-1": "api.mec1.pure.cloud",
    "ap-northeast-2": "api.apne2.pure.cloud",
    "ap-northeast-3": "api.apne3.pure.cloud",
    "eu-central-2": "api.euc2.pure.cloud",
    "mx-central-1": "api.mxc1.pure.cloud",
    "ap-southeast-1": "api.apse1.pure.cloud",
}
US_GOV_HOST = "api.use2.us-gov-pure.cloud"


# --- a scripted transport ------------------------------------------------------------------------------


Reply = tuple[int, Any] | tuple[int, Any, dict[str, str]]


class Scripted(BaseAdapter):
    """Answers each request from `route(method, path, query, headers, body)`; records every request."""

    def __init__(self, route: Callable[[str, str, dict[str, list[str]], Mapping[str, str], bytes], Reply]):
        super().__init__()
        self.route = route
        self.seen: list[requests.PreparedRequest] = []

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float, float] | tuple[float, None] | None = None,
        verify: bool | str = True,
        cert: Any = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        self.seen.append(request)
        parts = urlsplit(request.url or "")
        body = request.body if isinstance(request.body, bytes) else (request.body or "").encode()
        reply = self.route(request.method or "", parts.path, parse_qs(parts.query), request.headers, body)
        status, payload, *rest = reply
        headers: dict[str, str] = rest[0] if rest else {}
        content = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        return response_for(request, status, {"Content-Type": "application/json", **headers}, content)

    def close(self) -> None:
        return None

    def paths(self) -> list[str]:
        return [f"{r.method} {urlsplit(r.url or '').path}" for r in self.seen]


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def token_reply(expires_in: int = 86400) -> Reply:
    return 200, {
        "access_token": f"tok-{time.monotonic_ns()}",
        "token_type": "bearer",
        "expires_in": expires_in,
    }


def scripted_client(
    route: Callable[[str, str, dict[str, list[str]], Mapping[str, str], bytes], Reply],
    base_url: str = "https://api.mypurecloud.ie",
    **kwargs: Any,
) -> tuple[GenesysClient, Scripted, FakeTime]:
    adapter = Scripted(route)
    session = requests.Session()
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    clock = FakeTime()
    client = GenesysClient(
        base_url, lambda: Credentials("client-1", SECRET), session=session, monotonic=clock, **kwargs
    )
    return client, adapter, clock


def api(status: int, payload: Any, headers: dict[str, str] | None = None) -> Callable[..., Reply]:
    """Token requests succeed; every API request answers (status, payload)."""

    def route(method: str, path: str, *_: Any) -> Reply:
        if path == "/oauth/token":
            return token_reply()
        return status, payload, headers or {}

    return route


@contextlib.contextmanager
def debug_logging() -> Iterator[None]:
    level = genesys_module.logger.log_level
    genesys_module.logger.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        genesys_module.logger.setLevel(level)


# --- the simulator in-process --------------------------------------------------------------------------


def demo(**changes: Any) -> dict[str, Any]:
    raw: dict[str, Any] = yaml.safe_load((SCENARIOS / "demo.yaml").read_text())
    raw.update(changes)
    return raw


def sim_client(raw: dict[str, Any], **kwargs: Any) -> tuple[GenesysClient, GenesysSimulator, VirtualClock]:
    clock = VirtualClock()
    sim = GenesysSimulator(parse_scenario(raw), clock)
    session = requests.Session()
    session.mount(SIM, InProcessAdapter(sim))
    creds = sim.scenario.credentials
    client = GenesysClient(
        SIM,
        lambda: Credentials(creds.client_id, creds.client_secret),
        session=session,
        monotonic=clock.now,
        wall_clock=clock.now,
        # The org's notifications reach the client's pending queries, as the genesys_events function does.
        **({"queries": DeliveredQueryBook(sim.notifier, sim.pump, clock.now)} | kwargs),
    )
    return client, sim, clock


# --- hosts ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("region", "host"), sorted(DOCUMENTED_HOSTS.items()))
def test_every_documented_region_maps_to_its_api_host_and_login_host(region: str, host: str) -> None:
    client = GenesysClient.for_region(lambda: Credentials("a", "b"), region=region)
    assert client.base_url == f"https://{host}"
    assert client.login_url == f"https://login.{host.removeprefix('api.')}"
    assert Settings.model_validate(
        {
            "jobs_table": "t",
            "validation_queue_url": "q",
            "conflict_queue_url": "q",
            "genesys_credentials_secret": "s",
            "genesys_region": region,
        }
    ).genesys_url == (f"https://{host}")


def test_the_region_table_is_the_documented_one_plus_us_gov() -> None:
    assert {k: v for k, v in GENESYS_API_HOSTS.items() if v != US_GOV_HOST} == DOCUMENTED_HOSTS
    assert US_GOV_HOST in GENESYS_API_HOSTS.values()
    assert login_url(f"https://{US_GOV_HOST}") == "https://login.use2.us-gov-pure.cloud"


def test_an_explicit_base_url_wins_and_a_non_api_host_is_its_own_login_host() -> None:
    client = GenesysClient.for_region(
        lambda: Credentials("a", "b"), region="eu-west-1", base_url="http://127.0.0.1:8400/"
    )
    assert client.base_url == "http://127.0.0.1:8400"
    assert client.login_url == "http://127.0.0.1:8400"
    assert login_url("https://api.mypurecloud.de:8443") == "https://login.mypurecloud.de:8443"


def test_an_unknown_region_names_the_known_ones() -> None:
    with pytest.raises(ConfigurationError, match="eu-west-1"):
        GenesysClient.for_region(lambda: Credentials("a", "b"), region="mars-north-1")


# --- token ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lifetime", "margin"), [(86400, 300.0), (3000, 300.0), (2999, 299.9), (300, 30.0), (60, 6.0), (0, 0.0)]
)
def test_renewal_margin_is_five_minutes_or_a_tenth_of_a_short_lifetime(lifetime: int, margin: float) -> None:
    assert renew_margin(lifetime) == pytest.approx(margin)


def test_one_token_serves_many_calls_and_is_renewed_just_before_it_runs_out() -> None:
    def route(method: str, path: str, *_: Any) -> Reply:
        return token_reply(expires_in=300) if path == "/oauth/token" else (200, {"id": "e"})

    client, adapter, clock = scripted_client(route)
    for _ in range(20):
        client.edge("e")
        clock.now += 13  # 20 calls over 260 s: inside 300 s - 30 s
    assert client.tokens_fetched == 1
    clock.now += 11  # 271 s after the token was asked for: past 300 - 30
    client.edge("e")
    assert client.tokens_fetched == 2
    assert adapter.paths().count("POST /oauth/token") == 2


def test_the_token_request_is_client_credentials_with_basic_auth_on_the_login_host() -> None:
    client, adapter, _ = scripted_client(api(200, {"id": "e"}))
    client.edge("e")
    token = adapter.seen[0]
    assert token.url == "https://login.mypurecloud.ie/oauth/token"
    assert (
        token.headers["Authorization"] == "Basic " + base64.b64encode(f"client-1:{SECRET}".encode()).decode()
    )
    assert parse_qs(str(token.body)) == {"grant_type": ["client_credentials"]}
    assert adapter.seen[1].url == "https://api.mypurecloud.ie/api/v2/telephony/providers/edges/e"
    assert str(adapter.seen[1].headers["Authorization"]).startswith("Bearer tok-")


def test_a_401_renews_the_token_once_and_the_call_succeeds() -> None:
    refused = {"n": 0}

    def route(method: str, path: str, q: Any, headers: Mapping[str, str], body: bytes) -> Reply:
        if path == "/oauth/token":
            return token_reply()
        if refused["n"] == 0:
            refused["n"] += 1
            return 401, {"message": "Invalid login credentials.", "code": "bad.credentials", "status": 401}
        return 200, {"id": "e"}

    client, adapter, _ = scripted_client(route)
    assert client.edge("e").id == "e"
    assert adapter.paths() == [
        "POST /oauth/token",
        "GET /api/v2/telephony/providers/edges/e",
        "POST /oauth/token",
        "GET /api/v2/telephony/providers/edges/e",
    ]
    assert adapter.seen[1].headers["Authorization"] != adapter.seen[3].headers["Authorization"]


def test_a_401_that_a_fresh_token_does_not_cure_is_an_auth_error_after_one_renewal() -> None:
    client, adapter, _ = scripted_client(api(401, {"message": "nope", "code": "bad.credentials"}))
    with pytest.raises(GenesysUnauthorized) as caught:
        client.edge("e")
    assert adapter.paths().count("POST /oauth/token") == 2
    assert adapter.paths().count("GET /api/v2/telephony/providers/edges/e") == 2
    assert caught.value.status == 401


def test_a_refused_client_is_an_auth_error_naming_the_client_not_the_secret() -> None:
    def route(method: str, path: str, *_: Any) -> Reply:
        return 401, {"error": "invalid_client", "description": "client not found"}

    client, _, _ = scripted_client(route)
    with pytest.raises(GenesysUnauthorized) as caught:
        client.edge("e")
    text = f"{caught.value} {caught.value.describe()} {caught.value.brief()}"
    assert "client-1" in text
    assert "invalid_client" in text
    assert SECRET not in text
    assert "Basic" not in text


def test_credentials_and_tokens_never_print_their_secrets() -> None:
    creds = Credentials("client-1", SECRET)
    assert SECRET not in repr(creds)
    assert SECRET not in str(creds)
    assert SECRET not in f"{creds}"
    token = genesys_module.Token("bearer-value", 1.0)
    assert "bearer-value" not in repr(token)


def test_no_log_line_or_error_carries_the_secret_or_the_bearer_token(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    bearer = "tok-very-private"

    def route(method: str, path: str, q: Any, headers: Mapping[str, str], body: bytes) -> Reply:
        if path == "/oauth/token":
            return 200, {"access_token": bearer, "expires_in": 86400}
        if path.endswith("/edges/bad"):
            return 500, {"message": "boom", "code": "internal.server.error"}, {"ININ-Correlation-Id": "c-1"}
        return 200, {"id": "e"}, {"ININ-Correlation-Id": "c-2"}

    with debug_logging():
        client, _, _ = scripted_client(route)
        client.edge("e")
        with pytest.raises(GenesysServerError) as caught:
            client.edge("bad")
    everything = " ".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    everything += f" {caught.value} {caught.value.describe()}"
    assert "c-1" in everything  # the correlation id is logged ...
    assert SECRET not in everything  # ... the secret and the token never are
    assert bearer not in everything
    assert "Authorization" not in everything


def test_every_call_is_logged_with_route_status_duration_and_correlation_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    with debug_logging():
        client, _, _ = scripted_client(api(200, {"id": "edge-1"}, {"ININ-Correlation-Id": "corr-9"}))
        client.edge("edge-1")
    calls = [r for r in caplog.records if r.getMessage() == "genesys call"]
    token, read = calls
    assert (token.levelname, read.levelname) == ("INFO", "DEBUG")  # writes at INFO, good reads at DEBUG
    assert read.__dict__["route"] == "/api/v2/telephony/providers/edges/{edgeId}"
    assert read.__dict__["status"] == 200
    assert read.__dict__["correlation_id"] == "corr-9"
    assert isinstance(read.__dict__["ms"], float)


# --- errors --------------------------------------------------------------------------------------------

ERROR_BODY = {
    "message": "The schedule was modified by someone else",
    "code": "conflict",
    "status": 409,
    "entityId": "sched-1",
    "messageWithParams": "modified: {currentVersion}",
    "messageParams": {"currentVersion": "4"},
    "contextId": "ctx-1",
    "details": [{"errorCode": "wfm.schedule.version.mismatch", "fieldName": None}],
    "errors": [],
}


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, GenesysRejected),
        (403, GenesysForbidden),
        (404, GenesysNotFound),
        (405, GenesysRejected),
        (408, GenesysServerError),
        (409, GenesysConflict),
        (422, GenesysRejected),
        (429, GenesysRateLimited),
        (500, GenesysServerError),
        (502, GenesysServerError),
        (503, GenesysServerError),
        (504, GenesysServerError),
    ],
)
def test_each_status_is_its_own_typed_error(status: int, kind: type[Exception]) -> None:
    client, _, _ = scripted_client(api(status, {**ERROR_BODY, "status": status}, {"Retry-After": "3"}))
    with pytest.raises(kind) as caught:
        client.edge("e")
    assert caught.value.status == status  # type: ignore[attr-defined]
    if status >= 500:
        assert isinstance(caught.value, GenesysTransient)
    if status == 403:
        assert isinstance(caught.value, GenesysAuthError)


def test_the_error_body_is_parsed_with_every_documented_field() -> None:
    client, _, _ = scripted_client(api(409, ERROR_BODY, {"ININ-Correlation-Id": "ctx-1"}))
    with pytest.raises(GenesysConflict) as caught:
        client.edge("e")
    body = caught.value.body
    assert body is not None
    assert (body.message, body.code, body.status, body.context_id) == (
        ERROR_BODY["message"],
        "conflict",
        409,
        "ctx-1",
    )
    assert body.message_with_params == "modified: {currentVersion}"
    assert body.error_codes == ["wfm.schedule.version.mismatch"]
    assert caught.value.brief()["correlationId"] == "ctx-1"


def test_a_missing_context_id_is_taken_from_the_correlation_header_and_a_non_json_body_survives() -> None:
    client, _, _ = scripted_client(api(404, {"message": "gone"}, {"ININ-Correlation-Id": "hdr-1"}))
    with pytest.raises(GenesysNotFound) as caught:
        client.edge("e")
    assert caught.value.body is not None
    assert caught.value.body.context_id == "hdr-1"
    client, _, _ = scripted_client(api(502, b"<html>Bad Gateway</html>"))
    with pytest.raises(GenesysServerError) as bad_gateway:
        client.edge("e")
    assert bad_gateway.value.body is None


@pytest.mark.parametrize(
    ("header", "body_params", "expected"),
    [
        ("7", {}, 7.0),
        ("0", {}, 1.0),  # never hammer: at least a second
        (None, {"retryAfter": "12"}, 12.0),  # the body says it when the header is lost
        (None, {}, 60.0),  # nothing usable: a whole rate window
        ("soon", {}, 60.0),
    ],
)
def test_retry_after_is_read_from_the_header_then_the_body(
    header: str | None, body_params: dict[str, str], expected: float
) -> None:
    headers = {"Retry-After": header} if header is not None else {}
    body = {"message": "slow down", "code": "too.many.requests.retry.after", "messageParams": body_params}
    client, _, _ = scripted_client(api(429, body, headers))
    with pytest.raises(GenesysRateLimited) as caught:
        client.edge("e")
    assert caught.value.retry_after == expected


def test_retry_after_as_an_http_date() -> None:
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    client, _, _ = scripted_client(api(429, {"code": "too.many.requests.retry.after"}, {"Retry-After": when}))
    with pytest.raises(GenesysRateLimited) as caught:
        client.edge("e")
    assert 25 <= caught.value.retry_after <= 31


def test_a_read_timeout_and_a_dropped_connection_are_distinct_transient_errors() -> None:
    faults = [
        {"path": "/api/v2/telephony/providers/edges/edge-demo-1", "sequence": ["pass"], "latencySeconds": 15},
        {"path": "/api/v2/telephony/providers/edges/trunks", "sequence": ["drop"]},
    ]
    client, sim, clock = sim_client(demo(events=[], faults=faults))
    started = clock.now()
    with pytest.raises(GenesysTimeout):
        client.edge("edge-demo-1")
    assert clock.now() - started == pytest.approx(10.0)  # gave up at the read timeout, not at 15 s
    with pytest.raises(GenesysConnectionError):
        client.trunks()
    assert client.edge("edge-demo-1").id == "edge-demo-1"  # both were one-off
    assert len(client.trunks()) == 2
    assert sim.stats()["connectionsDropped"] == 1


def test_an_unreachable_host_is_a_connection_error() -> None:
    client = GenesysClient("http://127.0.0.1:9", lambda: Credentials("a", "b"), timeout=(0.5, 0.5))
    with pytest.raises(GenesysConnectionError):
        client.edge("e")


# --- paging --------------------------------------------------------------------------------------------


def test_paged_listings_are_followed_to_the_last_page_with_their_filters() -> None:
    client, sim, _ = sim_client(demo(events=[]), page_size=1)
    assert [t.id for t in client.trunks(edge_id="edge-demo-1")] == ["trunk-demo-1", "trunk-demo-2"]
    assert sim.stats()["calls"]["GET /api/v2/telephony/providers/edges/trunks"] == 2
    assert client.queue_members("queue-outbound") == [f"agent-{i}" for i in range(1, 7)]
    assert sim.stats()["calls"]["GET /api/v2/routing/queues/{queueId}/members"] == 6


def test_paging_without_page_count_follows_next_uri_and_stops() -> None:
    pages = {
        "1": {"entities": [{"id": "c1"}], "nextUri": "/api/v2/outbound/campaigns?pageNumber=2"},
        "2": {"entities": [{"id": "c2"}]},
    }

    def route(method: str, path: str, query: dict[str, list[str]], *_: Any) -> Reply:
        if path == "/oauth/token":
            return token_reply()
        assert query["pageSize"] == ["100"]
        return 200, pages[query["pageNumber"][0]]

    client, _, _ = scripted_client(route)
    assert [c.id for c in client.campaigns()] == ["c1", "c2"]


def test_a_page_count_that_never_ends_stops_at_the_page_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(genesys_module, "MAX_PAGES", 3)
    client, adapter, _ = scripted_client(api(200, {"entities": [{"id": "x"}], "pageCount": 10**9}))
    assert len(client.edges()) == 3
    assert adapter.paths().count("GET /api/v2/telephony/providers/edges") == 3


def test_an_unpaged_listing_that_answers_paged_is_followed_without_repeating_page_one() -> None:
    def route(method: str, path: str, query: dict[str, list[str]], *_: Any) -> Reply:
        if path == "/oauth/token":
            return token_reply()
        page = int(query.get("pageNumber", ["1"])[0])
        return 200, {"entities": [{"id": f"bu-{page}"}], "pageNumber": page, "pageSize": 1, "pageCount": 3}

    client, _, _ = scripted_client(route)
    assert [b.id for b in client.business_units()] == ["bu-1", "bu-2", "bu-3"]


def test_trunk_metrics_are_asked_for_in_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(genesys_module, "METRICS_BATCH", 2)
    asked: list[str] = []

    def route(method: str, path: str, query: dict[str, list[str]], *_: Any) -> Reply:
        if path == "/oauth/token":
            return token_reply()
        ids = query["trunkIds"][0].split(",")
        asked.append(query["trunkIds"][0])
        return 200, [
            {"trunk": {"id": i}, "calls": {"inboundCallCount": 1, "outboundCallCount": 2}} for i in ids
        ]

    client, _, _ = scripted_client(route)
    metrics = client.trunk_metrics(["a", "b", "c", "a"])
    assert asked == ["a,b", "c"]
    assert {k: v.total for k, v in metrics.items()} == {"a": 3, "b": 3, "c": 3}
    assert client.trunk_metrics([]) == {}


# --- models --------------------------------------------------------------------------------------------


def test_max_calls_reads_the_configured_property_key() -> None:
    settings = TrunkBaseSettings.model_validate(
        {
            "id": "tb",
            "properties": {
                "trunk_max_concurrent_calls": {"value": {"instance": 30}},
                "trunk_maxConcurrentCalls": {"value": {"instance": "45"}},
                "trunk_enabled": {"value": {"instance": True}},
                "trunk_unlimited": {"value": {"instance": 0}},
                "trunk_blank": {"value": {"default": 0}},
            },
        }
    )
    assert settings.max_calls() == MaxCalls.limited(30)
    assert settings.max_calls("trunk_maxConcurrentCalls") == MaxCalls.limited(45)
    # "Setting Max Calls to 0 (zero) will configure the trunk to accept an unlimited number of calls."
    assert settings.max_calls("trunk_unlimited") == MaxCalls.unlimited()
    # Never zero lines for what could not be read: a boolean, no value, no such property.
    assert settings.max_calls("trunk_enabled").state == "unreadable"
    assert settings.max_calls("trunk_blank").state == "unreadable"
    assert settings.max_calls("missing") == MaxCalls.unreadable("no property 'missing'")


def test_a_managed_trunk_base_without_its_properties_says_why() -> None:
    managed = TrunkBaseSettings.model_validate({"id": "tb", "managed": True, "properties": {}})
    calls = managed.max_calls()
    assert calls.state == "unreadable"
    assert calls.why is not None and "internal:trunk:edit" in calls.why


def test_the_schedule_keeps_its_metadata_exactly_as_read_and_the_upload_sends_it_back() -> None:
    metadata = {"version": 7, "modifiedBy": {"id": "u", "selfUri": "/x"}, "futureField": [1, {"a": None}]}
    uploads: list[dict[str, Any]] = []

    def route(method: str, path: str, q: Any, headers: Mapping[str, str], body: bytes) -> Reply:
        if path == "/oauth/token":
            return token_reply()
        if method == "GET":
            return 200, {"id": "s", "published": False, "metadata": metadata}
        if path.endswith("/uploadurl"):
            size = json.loads(body)["contentLengthBytes"]
            return (
                200,
                {"uploadKey": "k", "url": "https://upload.example/put?X-Sig=abc", "headers": {"h": "1"}},
                {"x-size": str(size)},
            )
        if method == "PUT":
            assert "Authorization" not in headers  # the bearer token stays with the API host
            assert headers["h"] == "1"
            uploads.append(json.loads(gzip.decompress(body)))
            return 200, b""
        return 200, {"status": "Processing", "operationId": "op-1"}

    client, _, _ = scripted_client(route)
    schedule = client.schedule("bu", "2023-10-23", "s")
    schedule.metadata.version = 99  # the parsed view may be touched; the raw one is what is sent
    operation = client.publish("bu", "2023-10-23", schedule)
    assert uploads == [{"metadata": metadata, "published": True}]
    assert (operation.status, operation.operation_id) == ("Processing", "op-1")
    assert Schedule.from_wire({"id": "s", "metadata": metadata}).raw_metadata == metadata


def test_a_refused_upload_url_is_transient_so_the_next_try_asks_for_a_new_one() -> None:
    def route(method: str, path: str, *_: Any) -> Reply:
        if path == "/oauth/token":
            return token_reply()
        if path.endswith("/uploadurl"):
            return 200, {"uploadKey": "k", "url": "https://upload.example/put", "headers": {}}
        return 403, b"<Error>Request has expired</Error>"

    client, _, _ = scripted_client(route)
    schedule = Schedule.from_wire({"id": "s", "metadata": {"version": 1}})
    with pytest.raises(GenesysTransient) as caught:
        client.publish("bu", "w", schedule)
    assert not isinstance(caught.value, GenesysAuthError)


def test_schedule_with_agents_lists_the_management_units_and_their_agents() -> None:
    client, _sim, _ = sim_client(demo(events=[]))
    plain = client.schedule(*WEEK, "sched-demo")
    assert plain.management_units == []
    full = client.schedule(*WEEK, "sched-demo", with_agents=True)
    assert [mu.management_unit.id for mu in full.management_units] == ["mu-demo"]
    assert full.agent_ids == [f"agent-{i}" for i in range(1, 7)]
    assert full.raw_metadata["version"] == 3


# --- resolving a bare schedule id ----------------------------------------------------------------------


def test_resolve_finds_the_week_through_weeks_recent_anchored_on_the_orgs_today() -> None:
    client, _sim, _ = sim_client(demo(events=[]))
    # The virtual clock is in November 2023 and the scenario's `today` is 2023-10-25: Genesys decides.
    assert client.resolve_schedule("sched-demo") == WEEK
    with pytest.raises(GenesysNotFound):
        client.resolve_schedule("sched-nope")
    assert client.resolve_schedule("sched-demo", week_id="2023-10-23") == WEEK
    assert client.resolve_schedule("sched-demo", business_unit_id="bu-demo") == WEEK


def test_resolve_skips_a_business_unit_it_may_not_read_but_a_total_refusal_is_an_auth_error() -> None:
    def lister(forbidden: set[str]) -> Callable[..., Reply]:
        def route(method: str, path: str, *_: Any) -> Reply:
            if path == "/oauth/token":
                return token_reply()
            if path.endswith("/businessunits"):
                return 200, {"entities": [{"id": "bu-a"}, {"id": "bu-b"}]}
            bu = path.split("/")[5]
            if bu in forbidden:
                return 403, {"message": "missing division permission", "code": "not.authorized"}
            return 200, {"entities": [{"id": "s-1", "weekDate": "2023-10-23"}]}

        return route

    client, _, _ = scripted_client(lister({"bu-a"}))
    assert client.resolve_schedule("s-1") == ("bu-b", "2023-10-23")
    client, _, _ = scripted_client(lister({"bu-a", "bu-b"}))
    with pytest.raises(GenesysForbidden):
        client.resolve_schedule("s-1")


# --- agent schedules, synchronous and asynchronous -----------------------------------------------------


def test_agent_schedules_answered_at_once() -> None:
    client, _, _ = sim_client(demo(events=[]))
    agents = client.agent_schedules(*WEEK, "sched-demo", "mu-demo")
    assert [a.user.id for a in agents] == [f"agent-{i}" for i in range(1, 7)]
    shift = agents[0].shifts[0]
    assert (shift.length_minutes, len(shift.activities)) == (480, 3)
    lunch = shift.activities[1]
    assert (lunch.activity_code_id, lunch.paid, lunch.length_minutes) == ("1", False, 30)


def test_an_asynchronous_query_is_pending_then_collected_from_its_download_url() -> None:
    client, sim, clock = sim_client(demo(events=[], asyncAgentQueryOver=2, asyncQuerySeconds=5))
    with pytest.raises(GenesysPending) as first:
        client.agent_schedules(*WEEK, "sched-demo", "mu-demo")
    clock.advance(1)
    with pytest.raises(GenesysPending) as second:
        client.agent_schedules(*WEEK, "sched-demo", "mu-demo")
    assert first.value.operation_id == second.value.operation_id  # the same query, not a new one
    clock.advance(5)
    agents = client.agent_schedules(*WEEK, "sched-demo", "mu-demo")
    assert len(agents) == 6
    calls = sim.stats()["calls"]
    assert calls[f"POST {genesys_module.AGENT_SCHEDULES_QUERY}"] == 1
    assert calls["GET /__downloads/{operationId}"] == 1
    # Collected: the next call is a new query.
    with pytest.raises(GenesysPending):
        client.agent_schedules(*WEEK, "sched-demo", "mu-demo")


def test_a_query_whose_result_notification_never_comes_is_asked_again_in_parts() -> None:
    """Whether the query result topic reaches a client-credentials integration is not documented: a
    query unanswered past PENDING_QUERY_MAX_AGE is asked by userIds, parts small enough to answer at
    once (halved while one still answers Processing), and that key is asked in parts from then on."""
    assert issubclass(GenesysPending, GenesysTransient)
    deaf = MemoryQueryBook()  # a query book no notification reaches
    client, sim, clock = sim_client(demo(events=[], asyncAgentQueryOver=2, asyncQuerySeconds=5), queries=deaf)
    with pytest.raises(GenesysPending):
        client.agent_schedules(*WEEK, "sched-demo", "mu-demo")
    clock.advance(genesys_module.PENDING_QUERY_MAX_AGE + 1)
    schedules = client.agent_schedules(*WEEK, "sched-demo", "mu-demo")
    assert sorted(s.user.id for s in schedules) == [f"agent-{i}" for i in range(1, 7)]
    asked = [
        json.loads(body)
        for method, path, _, body in sim.requests
        if method == "POST" and path.endswith("/agentschedules/query")
    ]
    # The whole unit (Processing), all six (Processing: over 2), the first three (Processing), one and
    # two (Complete), the last three (Processing), one and two (Complete).
    assert asked[0] == {"managementUnitId": "mu-demo"}
    assert [len(a["userIds"]) for a in asked[1:]] == [6, 3, 1, 2, 3, 1, 2]
    again = len(asked)
    client.agent_schedules(*WEEK, "sched-demo", "mu-demo")
    later = [
        json.loads(body)
        for method, path, _, body in sim.requests
        if method == "POST" and path.endswith("/agentschedules/query")
    ][again:]
    assert later and all("userIds" in a for a in later)  # never the whole unit again


def test_a_query_another_container_started_is_collected_here() -> None:
    """The pending query lives in the shared book, not in the client that asked."""
    first, sim, clock = sim_client(demo(events=[], asyncAgentQueryOver=2, asyncQuerySeconds=5))
    shared = first.queries
    with pytest.raises(GenesysPending):
        first.agent_schedules(*WEEK, "sched-demo", "mu-demo")
    clock.advance(6)
    session = requests.Session()
    session.mount(SIM, InProcessAdapter(sim))
    creds = sim.scenario.credentials
    second = GenesysClient(
        SIM,
        lambda: Credentials(creds.client_id, creds.client_secret),
        session=session,
        monotonic=clock.now,
        wall_clock=clock.now,
        queries=shared,
    )
    assert len(second.agent_schedules(*WEEK, "sched-demo", "mu-demo")) == 6
    assert sim.stats()["calls"][f"POST {genesys_module.AGENT_SCHEDULES_QUERY}"] == 1


def test_a_query_whose_result_never_comes_is_reported_and_forgotten() -> None:
    def route(method: str, path: str, *_: Any) -> Reply:
        if path == "/oauth/token":
            return token_reply()
        return 200, {"status": "Processing", "operationId": "op-9"}

    book = MemoryQueryBook()
    client, _adapter, _ = scripted_client(route, queries=book)
    with pytest.raises(GenesysPending):
        client.agent_schedules("bu", "w", "s", "mu")
    book.record_query_result("op-9", None, 0.0)  # a result notification without a downloadUrl
    with pytest.raises(GenesysServerError, match="ended Complete"):
        client.agent_schedules("bu", "w", "s", "mu")
    assert book.pending_query("bu|w|s|mu") is None


def test_a_real_genesys_host_never_asks_the_simulators_operation_path() -> None:
    client, adapter, _ = scripted_client(api(200, {"status": "Processing", "operationId": "op-1"}))
    with pytest.raises(GenesysPending):
        client.agent_schedules("bu", "w", "s", "mu")
    assert not any("/__sim/" in p for p in adapter.paths())


def test_a_simulated_host_is_not_told_apart_from_a_real_one() -> None:
    """The local stack injects what it needs; the client has no notion of a simulator."""
    source = Path(genesys_module.__file__).read_text()
    assert "__sim" not in source and "simulat" not in source.lower()


# --- session -------------------------------------------------------------------------------------------


def test_the_default_session_pools_connections_and_retries_only_failed_connects() -> None:
    client = GenesysClient("https://api.mypurecloud.ie", lambda: Credentials("a", "b"))
    adapter = client._session.get_adapter("https://api.mypurecloud.ie/x")
    assert isinstance(adapter, requests.adapters.HTTPAdapter)
    assert adapter._pool_maxsize == genesys_module.POOL_SIZE  # type: ignore[attr-defined]
    retry = adapter.max_retries
    assert (retry.connect, retry.read, retry.status) == (1, False, 0)
    assert client._timeout == genesys_module.DEFAULT_TIMEOUT


# --- credentials from the Secrets Manager value (reading and caching: tests/integration/test_secrets.py) --


def test_credentials_are_read_from_the_secrets_json() -> None:
    creds = credentials_from(json.dumps({"clientId": "cid", "clientSecret": SECRET}))
    assert (creds.client_id, creds.client_secret) == ("cid", SECRET)
    assert SECRET not in f"{creds!r} {creds}"


@pytest.mark.parametrize(
    "raw",
    [
        f"not json {SECRET}",
        json.dumps({"clientId": "cid"}),
        json.dumps({"clientId": "", "clientSecret": SECRET}),
        json.dumps([SECRET]),
        json.dumps({"clientId": 5, "clientSecret": SECRET}),
    ],
)
def test_a_badly_shaped_secret_names_the_shape_never_the_content(raw: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        credentials_from(raw)
    assert "clientId" in str(caught.value)
    chain: list[BaseException] = []
    link: BaseException | None = caught.value
    while link is not None:
        chain.append(link)
        link = link.__cause__ or (None if link.__suppress_context__ else link.__context__)
    assert all(SECRET not in f"{e!r} {e} {getattr(e, 'doc', '')}" for e in chain)


def test_services_build_one_client_for_the_region_and_read_the_secret_only_when_logging_in() -> None:
    services = Services(
        Settings.model_validate(
            {
                "jobs_table": "t",
                "validation_queue_url": "q",
                "conflict_queue_url": "q",
                "genesys_credentials_secret": "genesys/oauth",
                "genesys_region": "eu-west-1",
            }
        )
    )
    assert services.genesys.base_url == "https://api.mypurecloud.ie"
    assert services.genesys is services.genesys  # one client, one token, per container
    assert "secretsmanager" not in services._clients  # no token asked for yet: no secret read
