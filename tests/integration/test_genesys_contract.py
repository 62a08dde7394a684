"""Contract: the real Genesys client over real HTTP against a started simulator, for every path the
client uses, and the simulator's answers checked against the field lists of shared/GENESYS_API.md
and against the fields the client's models read. If either side drifts, a test here fails.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from pydantic import BaseModel

from tests.support.genesys import ERROR_FIELDS, SCHEDULE_LIST_FIELDS, TRUNK_FIELDS, Org, contract_org, serving
from wfm_publish import genesys as g
from wfm_publish.config import Settings
from wfm_publish.errors import (
    GenesysConflict,
    GenesysConnectionError,
    GenesysNotFound,
    GenesysPending,
    GenesysRateLimited,
    GenesysRejected,
    GenesysTimeout,
    GenesysUnauthorized,
)
from wfm_publish.genesys import Credentials, GenesysClient
from wfm_publish.models import GenesysErrorBody, JobStatus, PublishRequest
from wfm_publish.services import Services
from wfm_publish.waiting import Timing
from wfm_publish_local.virtual import VirtualRun

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "scenarios"
# The shared API notes, as checked out beside the project; docs/genesys-api.md is the project's copy
# of them, so the check runs (and the copy is kept honest) wherever the tests run.
API_DOC = ROOT / "docs" / "genesys-api.md"
WEEK = ("bu-demo", "2023-10-23")
SCHED = (*WEEK, "sched-demo")

# --- the field lists of shared/GENESYS_API.md ----------------------------------------------------------

TOKEN_FIELDS = {"access_token", "token_type", "expires_in"}
ERROR_DETAIL_FIELDS = {"errorCode", "fieldName", "entityId", "entityName"}
BU_SETTINGS_FIELDS = {"startDayOfWeek", "timeZone"}
SCHEDULE_FIELDS = {"published", "metadata", "managementUnits"}
METADATA_FIELDS = {"version", "modifiedBy", "dateModified", "createdBy", "dateCreated"}
QUERY_FIELDS = {"status"}
QUERY_ASYNC_FIELDS = {"status", "operationId"}
QUERY_RESULT_FIELDS = {"agentSchedules", "businessUnitTimeZone"}
AGENT_SCHEDULE_FIELDS = {"user", "shifts", "fullDayTimeOffMarkers", "workPlan", "metadata"}
QUERY_STATUSES = {"Processing", "Complete", "Canceled", "Error"}
UPLOAD_URL_FIELDS = {"uploadKey", "url", "headers"}
UPDATE_FIELDS = {"status", "operationId"}  # `result` comes with Complete; an update answers Processing
NOTICE_FIELDS = {"status", "operationId", "eventType"}
EVENT_TYPES = {"Update", "Import", "Copy", "Delete"}
TRUNK_STATES = {"active", "inactive", "deleted"}
CONNECTED_FIELDS = {"connected", "connectedStateTime"}
CALLS_FIELDS = {"inboundCallCount", "outboundCallCount"}
EDGE_FIELDS = {"statusCode", "onlineStatus", "softwareStatus", "callDrainingState"}
ONLINE_STATUSES = {"ONLINE", "OFFLINE"}
DRAINING_STATES = {"NONE", "WAIT", "WAIT_TIMEOUT", "TERMINATE", "COMPLETE"}
SITE_FIELDS = {"state", "edges", "mediaModel", "managed"}
MEDIA_MODELS = {"Premises", "Cloud"}
CAMPAIGN_FIELDS = {"dialingMode", "campaignStatus", "queue", "version"}
DIALING_MODES = {"agentless", "preview", "power", "predictive", "progressive", "external"}
CAMPAIGN_STATUSES = {"on", "stopping", "off", "complete", "invalid", "forced_off", "forced_stopping"}
LINE_FIELDS = {"maxOutboundLineCount", "maxLineUtilization", "availableOutboundLines", "reservedLines"}
OUTBOUND_SETTINGS_FIELDS = {"maxLineUtilization", "maxCallsPerAgent"}
DOCUMENTED = (
    TOKEN_FIELDS
    | ERROR_FIELDS
    | ERROR_DETAIL_FIELDS
    | BU_SETTINGS_FIELDS
    | SCHEDULE_LIST_FIELDS
    | SCHEDULE_FIELDS
    | METADATA_FIELDS
    | QUERY_ASYNC_FIELDS
    | QUERY_RESULT_FIELDS
    | AGENT_SCHEDULE_FIELDS
    | QUERY_STATUSES
    | UPLOAD_URL_FIELDS
    | NOTICE_FIELDS
    | EVENT_TYPES
    | TRUNK_FIELDS
    | TRUNK_STATES
    | CONNECTED_FIELDS
    | CALLS_FIELDS
    | EDGE_FIELDS
    | ONLINE_STATUSES
    | DRAINING_STATES
    | SITE_FIELDS
    | MEDIA_MODELS
    | CAMPAIGN_FIELDS
    | DIALING_MODES
    | CAMPAIGN_STATUSES
    | LINE_FIELDS
    | OUTBOUND_SETTINGS_FIELDS
)

# Model fields the simulator may leave out (optional on the real API too).
OPTIONAL: dict[type[BaseModel], set[str]] = {
    g.Campaign: {"edgeGroup", "site", "outboundLineCount", "maxCallsPerAgent"},  # by dialing mode / place
    g.ScheduleManagementUnit: {"agentCount"},
    g.SoftwareStatus: {"executeStartTime", "executeStopTime"},  # only once an update has run
}


def wire_fields(model: type[BaseModel]) -> set[str]:
    return {f.alias or name for name, f in model.model_fields.items() if not f.exclude}


def assert_model_fields_served(
    model: type[BaseModel], answer: dict[str, Any], missing_ok: set[str] | None = None
) -> None:
    """Every field the client reads is in the simulator's answer (or allowed to be absent)."""
    missing = wire_fields(model) - set(answer) - OPTIONAL.get(model, set()) - (missing_ok or set())
    assert not missing, f"{model.__name__}: the simulator does not serve {sorted(missing)}"


# --- a simulator over HTTP and the real client -------------------------------------------------------------


@pytest.fixture(scope="module")
def served() -> Iterator[Org]:
    with serving(contract_org()) as org:
        yield org


@pytest.fixture
def org(served: Org) -> Org:
    served.sim.reset()
    served.client = served.new_client()
    return served


# --- every path the client uses ----------------------------------------------------------------------------

CLIENT_ROUTES = {
    f"POST {g.OAUTH}",
    f"GET {g.WFM}",
    f"GET {g.BUSINESS_UNIT}",
    f"GET {g.SCHEDULES}",
    f"GET {g.SCHEDULE}",
    f"POST {g.AGENT_SCHEDULES_QUERY}",
    f"POST {g.UPLOAD_URL}",
    "PUT /__uploads/{uploadKey}",  # the simulator's upload URL
    f"POST {g.UPDATE}",
    f"GET {g.EDGES}",
    f"GET {g.EDGE}",
    f"GET {g.TRUNKS}",
    f"GET {g.TRUNK}",
    f"GET {g.TRUNK_METRICS}",
    f"GET {g.TRUNK_BASE_SETTINGS}",
    f"GET {g.SITE}",
    f"GET {g.SITE_OUTBOUND_ROUTES}",
    f"GET {g.CAMPAIGNS}",
    f"GET {g.CAMPAIGN}",
    f"GET {g.LINE_DISTRIBUTION}",
    f"GET {g.OUTBOUND_SETTINGS}",
    f"GET {g.QUEUE_MEMBERS}",
    "GET /__downloads/{operationId}",  # the simulator's download URL
}


def test_every_client_method_over_http_hits_the_route_the_simulator_serves() -> None:
    with serving(contract_org(asyncAgentQueryOver=3, asyncQuerySeconds=2)) as org:
        c = org.client
        assert [b.id for b in c.business_units()] == ["bu-demo"]
        assert c.business_unit("bu-demo")["settings"]["timeZone"] == "Europe/London"
        assert [s["id"] for s in c.schedules(*WEEK)] == ["sched-demo"]
        assert c.resolve_schedule("sched-demo") == WEEK
        schedule = c.schedule(*SCHED, with_agents=True)
        assert schedule.agent_ids == [f"agent-{i}" for i in range(1, 7)]
        with pytest.raises(GenesysPending):
            c.agent_schedules(*SCHED, "mu-demo")
        org.clock.advance(3)
        assert len(c.agent_schedules(*SCHED, "mu-demo")) == 6
        assert [e.id for e in c.edges(site_id="site-demo")] == ["edge-demo-1"]
        assert [e.id for e in c.edges(edge_group_id="edgegroup-demo")] == ["edge-demo-1"]
        assert c.edges(site_id="site-nowhere") == []
        assert c.edge("edge-demo-1").site is not None
        trunks = c.trunks(edge_id="edge-demo-1")
        assert [t.id for t in trunks] == ["trunk-demo-1", "trunk-demo-2"]
        assert [t.id for t in c.trunks(trunk_base_id="trunkbase-demo", trunk_type=None)] == [
            "trunk-demo-1",
            "trunk-demo-2",
        ]
        assert c.trunk("trunk-demo-1").trunk_base is not None
        assert set(c.trunk_metrics([t.id for t in trunks])) == {"trunk-demo-1", "trunk-demo-2"}
        assert c.trunk_base_settings("trunkbase-demo").max_calls() == g.MaxCalls.limited(30)
        assert c.trunk_base_settings("trunkbase-carrier").max_calls() == g.MaxCalls.unlimited()
        assert c.trunk_base_settings("trunkbase-voice").max_calls().state == "unreadable"  # managed
        [route] = c.outbound_routes("site-cloud")
        assert [b.id for b in route.external_trunk_bases] == ["trunkbase-carrier"]
        assert [t.id for t in c.trunks(trunk_base_id="trunkbase-carrier")] == ["trunk-cloud-1"]
        assert c.site("site-cloud").media_model == "Cloud" and c.edges(site_id="site-cloud") == []
        assert [e.id for e in c.site("site-demo").edges] == ["edge-demo-1"]
        campaigns = {x.id: x for x in c.campaigns()}
        assert set(campaigns) == {"campaign-demo", "campaign-agentless", "campaign-preview"}
        assert campaigns["campaign-preview"].edge_group is not None
        assert c.campaign("campaign-demo").max_calls_per_agent == 3
        assert c.line_distribution("campaign-demo").max_line_utilization == 0.9
        assert c.outbound_settings().max_calls_per_agent == 4
        assert c.queue_members("queue-outbound") == [f"agent-{i}" for i in range(1, 7)]
        with pytest.raises(GenesysConflict):  # demo: the other writer gets in before the first update
            c.publish(*WEEK, c.schedule(*SCHED))
        operation = c.publish(*WEEK, c.schedule(*SCHED))
        assert operation.status == "Processing"
        assert set(org.calls()) == CLIENT_ROUTES
        assert org.sim.stats()["tokensIssued"] == 1


# --- shapes: the simulator's answers carry what GENESYS_API.md lists and what the models read ---------------


def test_the_field_lists_here_are_the_documented_ones() -> None:
    doc = API_DOC.read_text()
    words = set(re.findall(r"[A-Za-z_][A-Za-z_]*", doc))
    assert DOCUMENTED - words == set()


def test_token_and_error_shapes(org: Org) -> None:
    creds = org.sim.scenario.credentials
    token = requests.post(
        org.server.url + g.OAUTH,
        data={"grant_type": "client_credentials"},
        auth=(creds.client_id, creds.client_secret),
        timeout=5,
    ).json()
    assert set(token) >= TOKEN_FIELDS
    with pytest.raises(GenesysNotFound) as missing:
        org.client.edge("edge-nope")
    response = requests.get(
        org.server.url + g.EDGE.format(edgeId="edge-nope"),
        headers={"Authorization": f"Bearer {token['access_token']}"},
        timeout=5,
    )
    # Every documented field but the entity's, which an error about no entity leaves out (no nulls).
    assert ERROR_FIELDS - {"entityId", "entityName"} <= set(response.json()) <= ERROR_FIELDS
    assert response.json()["entityId"] == "edge-nope"
    assert response.headers["ININ-Correlation-Id"] == response.json()["contextId"]
    body = missing.value.body
    assert body is not None and body.code == "not.found" and body.context_id
    with pytest.raises(GenesysRejected) as rejected:
        org.client.schedules("bu-demo", "2023-10-24")  # a Tuesday
    assert rejected.value.body is not None
    (detail,) = rejected.value.body.details
    assert {"errorCode", "fieldName"} <= set(detail) <= ERROR_DETAIL_FIELDS  # no entity: none named
    assert rejected.value.body.error_codes == ["invalid.week.start"]


def test_wfm_shapes(org: Org) -> None:
    bu = org.raw(g.BUSINESS_UNIT, {"buId": "bu-demo"}, expand="settings")
    assert set(bu["settings"]) >= BU_SETTINGS_FIELDS
    (listed,) = org.raw(g.SCHEDULES, {"buId": "bu-demo", "weekId": "recent"})["entities"]
    assert set(listed) >= SCHEDULE_LIST_FIELDS
    ids = {"buId": "bu-demo", "weekId": "2023-10-23", "scheduleId": "sched-demo"}
    schedule = org.raw(g.SCHEDULE, ids, expand="managementUnits.agents")
    assert set(schedule) >= SCHEDULE_FIELDS
    assert set(schedule["metadata"]) >= METADATA_FIELDS
    assert_model_fields_served(g.Schedule, schedule)
    assert_model_fields_served(g.ScheduleMetadata, schedule["metadata"])
    unit = schedule["managementUnits"][0]
    assert_model_fields_served(g.ScheduleManagementUnit, unit)
    assert g.ScheduleAgent.model_validate(unit["agents"][0]).user_id == "agent-1"


def test_agent_schedule_query_shapes_sync_and_async(org: Org) -> None:
    ids = {"buId": "bu-demo", "weekId": "2023-10-23", "scheduleId": "sched-demo"}
    answer = org.client._call("POST", g.AGENT_SCHEDULES_QUERY, ids, json_body={"managementUnitId": "mu-demo"})
    assert set(answer) >= QUERY_FIELDS and answer["status"] in QUERY_STATUSES
    assert set(answer["result"]) >= QUERY_RESULT_FIELDS
    entry = answer["result"]["agentSchedules"][0]
    assert set(entry) >= AGENT_SCHEDULE_FIELDS
    assert_model_fields_served(g.AgentSchedule, entry)
    shift = entry["shifts"][0]
    assert_model_fields_served(g.Shift, shift)
    assert_model_fields_served(g.Activity, shift["activities"][0])

    with serving(contract_org(asyncAgentQueryOver=3, asyncQuerySeconds=2)) as slow:
        pending = slow.client._call(
            "POST", g.AGENT_SCHEDULES_QUERY, ids, json_body={"managementUnitId": "mu-demo"}
        )
        assert set(pending) >= QUERY_ASYNC_FIELDS and pending["status"] == "Processing"
        slow.clock.advance(2)
        (event,) = requests.get(slow.server.url + "/__sim/notifications", timeout=5).json()["events"]
        assert event["detail-type"] == "v2.workforcemanagement.users.{id}.schedules.query"
        assert event["detail"]["topicName"] == "v2.workforcemanagement.users.local-client.schedules.query"
        done = event["detail"]["eventBody"]
        assert done["operationId"] == pending["operationId"]
        assert_model_fields_served(g.QueryResultNotice, done)
        download = requests.get(done["downloadUrl"], timeout=5)  # signed in real life: no bearer
        assert download.status_code == 200
        assert set(download.json()) >= QUERY_RESULT_FIELDS


def test_publish_shapes(org: Org) -> None:
    ids = {"buId": "bu-demo", "weekId": "2023-10-23", "scheduleId": "sched-demo"}
    upload = org.client._call("POST", g.UPLOAD_URL, ids, json_body={"contentLengthBytes": 10})
    assert set(upload) >= UPLOAD_URL_FIELDS
    org.clock.advance(1)
    schedule = org.client.schedule(*SCHED)  # after the demo's other writer moved it
    operation = org.client.publish(*WEEK, schedule)
    assert operation.status in QUERY_STATUSES
    assert operation.operation_id
    org.clock.advance(2)
    published = org.client.schedule(*SCHED)
    events = requests.get(org.server.url + "/__sim/notifications", timeout=5).json()["events"]
    notice = next(e["detail"]["eventBody"] for e in events if e["detail-type"].endswith(".schedules"))
    assert next(e for e in events if e["detail-type"].endswith(".schedules"))["detail-type"] == (
        "v2.workforcemanagement.businessunits.{id}.schedules"
    )
    assert set(notice) >= NOTICE_FIELDS and notice["eventType"] in EVENT_TYPES
    assert notice["operationId"] == operation.operation_id and notice["status"] == "Complete"
    assert_model_fields_served(g.ScheduleNotice, notice)
    assert published.published is True
    assert published.metadata.version == schedule.metadata.version + 1


def test_telephony_shapes(org: Org) -> None:
    edges = org.raw(g.EDGES, pageSize="100", pageNumber="1")
    edge = edges["entities"][0]
    assert set(edge) >= EDGE_FIELDS
    assert edge["onlineStatus"] in ONLINE_STATUSES and edge["callDrainingState"] in DRAINING_STATES
    assert "status" in edge["softwareStatus"]
    assert_model_fields_served(g.Edge, edge)
    assert_model_fields_served(g.Edge, org.raw(g.EDGE, {"edgeId": "edge-demo-1"}))
    assert_model_fields_served(g.SoftwareStatus, edge["softwareStatus"])

    trunk = org.raw(g.TRUNK, {"trunkId": "trunk-demo-1"})
    assert set(trunk) >= TRUNK_FIELDS
    assert trunk["state"] in TRUNK_STATES
    assert set(trunk["connectedStatus"]) >= CONNECTED_FIELDS
    assert_model_fields_served(g.Trunk, trunk)
    assert_model_fields_served(g.ConnectedStatus, trunk["connectedStatus"])
    listed = org.raw(g.TRUNKS, trunkType="EXTERNAL", pageSize="100", pageNumber="1")["entities"]
    assert all(set(t) >= TRUNK_FIELDS for t in listed if t["id"].startswith("trunk-demo"))
    cloud = org.raw(g.TRUNK, {"trunkId": "trunk-cloud-1"})
    assert "edge" not in cloud and cloud["enabled"] is True  # no Edge to be out of service
    assert_model_fields_served(g.Trunk, cloud, missing_ok={"edge", "edgeGroup"})

    (metrics, *_) = org.raw(g.TRUNK_METRICS, trunkIds="trunk-demo-1,trunk-demo-2")["entities"]
    assert set(metrics["calls"]) >= CALLS_FIELDS
    assert_model_fields_served(g.TrunkCalls, metrics["calls"])

    # Properties come by default (the route takes ignoreHidden, no expand); a managed base's only with
    # internal:trunk:edit, which the contract org's client does not have.
    base = org.raw(g.TRUNK_BASE_SETTINGS, {"trunkBaseId": "trunkbase-demo"})
    assert base["properties"]
    assert all("instance" in prop["value"] for prop in base["properties"].values())
    assert_model_fields_served(g.TrunkBaseSettings, base)
    managed = org.raw(g.TRUNK_BASE_SETTINGS, {"trunkBaseId": "trunkbase-voice"})
    assert managed["managed"] is True and managed["properties"] == {}
    [route] = org.raw(g.SITE_OUTBOUND_ROUTES, {"siteId": "site-cloud"})["entities"]
    assert_model_fields_served(g.OutboundRoute, route)

    site = org.raw(g.SITE, {"siteId": "site-demo"})
    assert set(site) >= SITE_FIELDS and site["mediaModel"] in MEDIA_MODELS
    assert_model_fields_served(g.Site, site)


def test_outbound_and_routing_shapes(org: Org) -> None:
    campaigns = org.raw(g.CAMPAIGNS, pageSize="100", pageNumber="1")["entities"]
    for campaign in campaigns:
        assert set(campaign) >= CAMPAIGN_FIELDS
        assert ("site" in campaign) != ("edgeGroup" in campaign)  # one or the other
        assert campaign["dialingMode"] in DIALING_MODES
        assert campaign["campaignStatus"] in CAMPAIGN_STATUSES
        assert_model_fields_served(g.Campaign, campaign)
    agentless = next(c for c in campaigns if c["dialingMode"] == "agentless")
    assert agentless["outboundLineCount"] == 5
    lines = org.raw(g.LINE_DISTRIBUTION, {"campaignId": "campaign-demo"})
    assert set(lines) >= LINE_FIELDS
    assert_model_fields_served(g.LineDistribution, lines)
    assert lines["reservedLines"] == 5  # the agentless campaign on the same site holds its lines
    assert lines["campaignsWithReservedLines"][0]["linesReserved"] == 5
    assert_model_fields_served(g.LinesAllocated, lines["campaignsWithDynamicallyAllocatedLines"][0])
    settings = org.raw(g.OUTBOUND_SETTINGS)
    assert set(settings) >= OUTBOUND_SETTINGS_FIELDS
    assert_model_fields_served(g.OutboundSettings, settings)
    assert 0 <= settings["maxLineUtilization"] <= 1
    members = org.raw(g.QUEUE_MEMBERS, {"queueId": "queue-outbound"}, pageSize="100", pageNumber="1")
    assert all(m["id"] == m["user"]["id"] for m in members["entities"])


# --- errors and transport over real sockets --------------------------------------------------------------


def test_429_over_http_carries_retry_after_and_the_documented_code() -> None:
    fault = {"path": g.EDGES + "/edge-demo-1", "sequence": [429], "retryAfter": 4}
    with serving(contract_org(faults=[fault])) as org:
        with pytest.raises(GenesysRateLimited) as caught:
            org.client.edge("edge-demo-1")
        assert caught.value.retry_after == 4
        assert caught.value.body is not None
        assert caught.value.body.code == "too.many.requests.retry.after"


def test_the_real_rate_limit_over_http_is_per_token() -> None:
    with serving(contract_org(rateLimit={"enabled": True, "requestsPerMinute": 5})) as org:
        for _ in range(5):
            org.client.outbound_settings()
        with pytest.raises(GenesysRateLimited) as caught:
            org.client.outbound_settings()
        assert 1 <= caught.value.retry_after <= 60
        assert org.new_client().outbound_settings().max_calls_per_agent == 4  # another token


def test_a_dropped_connection_over_http_is_not_retried_inside_the_client() -> None:
    fault = {"path": g.EDGES + "/edge-demo-1", "sequence": ["drop"]}
    with serving(contract_org(faults=[fault])) as org:
        with pytest.raises(GenesysConnectionError):
            org.client.edge("edge-demo-1")
        assert org.calls()[f"GET {g.EDGE}"] == 1  # the pipeline decides when to try again
        assert org.client.edge("edge-demo-1").id == "edge-demo-1"


def test_latency_beyond_the_read_timeout_over_http_is_a_timeout() -> None:
    fault = {"path": g.EDGES + "/edge-demo-1", "sequence": ["pass"], "latencySeconds": 0.6}
    with serving(contract_org(faults=[fault])) as org:
        client = org.new_client(timeout=(1.0, 0.2))
        with pytest.raises(GenesysTimeout):
            client.edge("edge-demo-1")


def test_wrong_credentials_over_http_are_an_auth_error_without_the_secret() -> None:
    with serving(contract_org()) as org:
        client = GenesysClient(org.server.url, lambda: Credentials("local-client", "wrong-secret-xyz"))
        with pytest.raises(GenesysUnauthorized) as caught:
            client.edge("edge-demo-1")
        assert "wrong-secret-xyz" not in f"{caught.value} {caught.value.describe()}"
        assert isinstance(caught.value.body, GenesysErrorBody)
        assert caught.value.body.code == "invalid_client"


def test_a_revoked_token_over_http_is_renewed_once() -> None:
    with serving(contract_org()) as org:
        org.client.edge("edge-demo-1")
        org.sim.reset()  # the org forgets every token it issued: ours is now unknown
        assert org.client.edge("edge-demo-1").id == "edge-demo-1"
        assert org.client.renewals_on_401 == 1
        assert org.client.tokens_fetched == 2


# --- one token per container, across many calls and several jobs ----------------------------------------


def test_one_token_across_many_calls_and_several_jobs_over_http() -> None:
    raw = contract_org()
    raw["events"] = [
        {
            "type": "telephonyChange",
            "kind": "softwareUpdate",
            "entityId": "edge-demo-1",
            "start": 0,
            "end": 30,
        }
    ]
    with serving(raw) as org:
        run = VirtualRun(org.sim, org.clock, Timing(settle_window=2.0))
        run.genesys = org.client  # the pipeline talks to the simulator over real HTTP
        run.pipeline.genesys = org.client
        request = {"scheduleId": "sched-demo", "businessUnitId": "bu-demo", "weekId": "2023-10-23"}
        for n in range(3):
            accepted = run.intake.accept(PublishRequest.model_validate(request), f"http-{n}")
            assert run.run(accepted.body["publishId"]).status is JobStatus.PUBLISHED
        calls = org.calls()
        api_calls = sum(n for route, n in calls.items() if route != f"POST {g.OAUTH}")
        assert api_calls > 30
        assert calls[f"POST {g.OAUTH}"] == 1
        assert org.sim.stats()["tokensIssued"] == 1
        assert org.client.tokens_fetched == 1


# --- the credentials from Secrets Manager (moto server), into a client that logs in over HTTP -----------


def test_services_read_the_secret_once_and_log_in_once(moto_url: str) -> None:
    name = f"genesys-{uuid.uuid4().hex[:8]}"
    secrets = boto3.client("secretsmanager", endpoint_url=moto_url)
    secrets.create_secret(
        Name=name, SecretString=json.dumps({"clientId": "local-client", "clientSecret": "local-secret"})
    )
    with serving(contract_org()) as org:
        settings = Settings.model_validate(
            {
                "jobs_table": "t",
                "validation_queue_url": "q",
                "conflict_queue_url": "q",
                "genesys_credentials_secret": name,
                "genesys_base_url": org.server.url,
            }
        )
        services = Services(settings)
        assert services.genesys.edge("edge-demo-1").id == "edge-demo-1"
        secrets.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
        assert services._credentials().client_id == "local-client"  # cached: no second read
        for _ in range(20):
            services.genesys.outbound_settings()
        assert org.sim.stats()["tokensIssued"] == 1
