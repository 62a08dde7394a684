"""Contract: every field the simulator serves, on every route, is an official field of the official type.

The official models are docs/genesys-models.json (`make genesys-models` reads them from the SDK,
PureCloudPlatformClientV2). Requests go over HTTP to a started simulator; the answers are held,
field by field and recursively, to the route's response model (no unknown field, no wrong type,
no null).
"""

from __future__ import annotations

import gzip
import json
import re
from typing import Any

import pytest
import requests

from tests.support.genesys import Org, contract_org, serving
from wfm_publish import genesys as g
from wfm_publish.errors import GenesysPending
from wfm_publish_local.genesys_models import shapes

pytestmark = pytest.mark.integration

SCHED_IDS = {"buId": "bu-demo", "weekId": "2023-10-23", "scheduleId": "sched-demo"}
PAGE = {"pageSize": "100", "pageNumber": "1"}


def get(org: Org, route: str, ids: dict[str, str] | None = None, **params: str) -> Any:
    """The raw JSON the simulator serves (a list stays a list), with the client's token."""
    url = org.server.url + route.format(**(ids or {}))
    token = org.client._bearer()
    response = requests.get(url, params=params, headers={"Authorization": f"Bearer {token}"}, timeout=5)
    assert response.status_code == 200, response.text
    return response.json()


def assert_official(route: str, answer: Any) -> None:
    official = shapes()
    problems = official.problems(answer, official.route_type(route))
    assert not problems, f"{route}: " + "; ".join(problems[:20])


def test_the_models_file_is_the_sdk_version_asked_for() -> None:
    assert shapes().sdk_version == "269.0.0"


def test_every_simulator_route_is_in_the_official_models() -> None:
    with serving(contract_org()) as org:
        served = {r.label for r in org.sim._router.routes if r.template.startswith("/api/v2/")}
    missing = [route for route in served if route.split(" ", 1)[0] and _no_type(route)]
    assert not missing


def _no_type(route: str) -> bool:
    try:
        shapes().route_type(route)
    except KeyError:
        return True
    return False


GETS: list[tuple[str, dict[str, str], dict[str, str]]] = [
    (g.WFM, {}, {}),
    (g.BUSINESS_UNIT, {"buId": "bu-demo"}, {"expand": "settings"}),
    (g.BUSINESS_UNIT, {"buId": "bu-demo"}, {}),
    (g.SCHEDULES, {"buId": "bu-demo", "weekId": "recent"}, {}),
    (g.SCHEDULES, {"buId": "bu-demo", "weekId": "2023-10-23"}, {}),
    (g.SCHEDULE, SCHED_IDS, {"expand": "managementUnits.agents"}),
    (g.SCHEDULE, SCHED_IDS, {}),
    (g.EDGES, {}, PAGE),
    (g.EDGES, {}, {"site.id": "site-demo", "showCloudMedia": "true"}),
    (g.EDGES, {}, {"site.id": "site-cloud", "showCloudMedia": "true"}),
    (g.EDGE, {"edgeId": "edge-demo-1"}, {}),
    (g.TRUNKS, {}, {"trunkType": "EXTERNAL", "pageSize": "1", "pageNumber": "1"}),
    (g.TRUNKS, {}, {"trunkType": "EXTERNAL", "pageSize": "1", "pageNumber": "2"}),
    (g.TRUNK, {"trunkId": "trunk-demo-1"}, {}),
    (g.TRUNK, {"trunkId": "trunk-cloud-1"}, {}),
    (g.TRUNKS, {}, {"trunkType": "EXTERNAL", "trunkBase.id": "trunkbase-carrier"}),
    (g.TRUNK_METRICS, {}, {"trunkIds": "trunk-demo-1,trunk-demo-2"}),
    (g.TRUNK_BASES, {}, PAGE),
    (g.TRUNK_BASE_SETTINGS, {"trunkBaseId": "trunkbase-demo"}, {}),
    (g.TRUNK_BASE_SETTINGS, {"trunkBaseId": "trunkbase-voice"}, {}),
    (g.SITES, {}, PAGE),
    (g.SITE, {"siteId": "site-demo"}, {}),
    (g.SITE, {"siteId": "site-cloud"}, {}),
    (g.SITE_OUTBOUND_ROUTES, {"siteId": "site-cloud"}, {}),
    (g.SITE_OUTBOUND_ROUTES, {"siteId": "site-demo"}, {}),
    (g.CAMPAIGNS, {}, PAGE),
    (g.CAMPAIGN, {"campaignId": "campaign-demo"}, {}),
    (g.CAMPAIGN, {"campaignId": "campaign-agentless"}, {}),
    (g.LINE_DISTRIBUTION, {"campaignId": "campaign-demo"}, {}),
    (g.LINE_DISTRIBUTION, {"campaignId": "campaign-preview"}, {}),
    (g.OUTBOUND_SETTINGS, {}, {}),
    (g.QUEUE_MEMBERS, {"queueId": "queue-outbound"}, {"pageSize": "4", "pageNumber": "1"}),
    (g.QUEUE_MEMBERS, {"queueId": "queue-outbound"}, {"pageSize": "4", "pageNumber": "2"}),
]


@pytest.fixture(scope="module")
def org() -> Any:
    with serving(contract_org(asyncAgentQueryOver=3, asyncQuerySeconds=2)) as served:
        yield served


@pytest.mark.parametrize(("route", "ids", "params"), GETS, ids=[f"{r}?{p}" for r, _, p in GETS])
def test_every_get_answers_the_official_model(org: Org, route: str, ids: dict[str, str], params: Any) -> None:
    assert_official(f"GET {route}", get(org, route, ids, **params))


def test_every_get_route_of_the_simulator_is_checked_here(org: Org) -> None:
    served = {
        r.template for r in org.sim._router.routes if r.method == "GET" and r.template.startswith("/api")
    }
    assert served == {route for route, _, _ in GETS}


def test_the_wfm_writes_answer_the_official_models(org: Org) -> None:
    org.sim.reset()
    org.clock.advance(1)  # the demo's other writer edits on the first upload URL: read after it
    query = org.client._call("POST", g.AGENT_SCHEDULES_QUERY, SCHED_IDS, json_body={"userIds": ["agent-1"]})
    assert query["status"] == "Complete"
    assert_official(f"POST {g.AGENT_SCHEDULES_QUERY}", query)
    pending = org.client._call(
        "POST", g.AGENT_SCHEDULES_QUERY, SCHED_IDS, json_body={"managementUnitId": "mu-demo"}
    )
    assert pending["status"] == "Processing"
    assert_official(f"POST {g.AGENT_SCHEDULES_QUERY}", pending)
    payload = gzip.compress(json.dumps({"metadata": {"version": 4}, "published": True}).encode())
    upload = org.client._call("POST", g.UPLOAD_URL, SCHED_IDS, json_body={"contentLengthBytes": len(payload)})
    assert_official(f"POST {g.UPLOAD_URL}", upload)
    org.client._upload(upload["url"], payload, upload["headers"])
    operation = org.client._call("POST", g.UPDATE, SCHED_IDS, json_body={"uploadKey": upload["uploadKey"]})
    assert operation["status"] == "Processing"
    assert_official(f"POST {g.UPDATE}", operation)


# --- notifications: the EventBridge events the simulator emits ------------------------------------------

ENVELOPE = {"version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail"}
OUTCOMES = [
    {"type": "telephonyChange", "kind": "softwareUpdate", "entityId": "edge-demo-1", "start": 0, "end": 4},
    {
        "type": "telephonyChange",
        "kind": "trunkDisconnected",
        "entityId": "trunk-demo-2",
        "start": 1,
        "end": 2,
    },
    {
        "type": "publishOperation",
        "scheduleId": "sched-demo",
        "durationSeconds": 1,
        "failFirst": 1,
        "cancelFirst": 1,
    },
]


def notifications(org: Org) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = requests.get(org.server.url + "/__sim/notifications", timeout=5).json()[
        "events"
    ]
    return events


def test_every_notification_is_an_official_eventbridge_event_and_each_outcome_is_served() -> None:
    with serving(contract_org(events=OUTCOMES, asyncAgentQueryOver=3, asyncQuerySeconds=2)) as org:
        org.clock.advance(10)  # the telephony changes come and go
        for _ in range(3):  # Error, then Canceled, then Complete
            operation = org.client.publish("bu-demo", "2023-10-23", org.client.schedule(*SCHED_IDS.values()))
            assert operation.status == "Processing"
            org.clock.advance(2)
        with pytest.raises(GenesysPending):
            org.client.agent_schedules(*SCHED_IDS.values(), "mu-demo")
        org.clock.advance(3)
        assert len(org.client.agent_schedules(*SCHED_IDS.values(), "mu-demo")) == 6
        events = notifications(org)
    official = shapes()
    for event in events:
        # As Genesys' own sample events show: detail-type is the topic's template, detail carries the
        # concrete topic, a version and a timestamp (GenesysCloudBlueprints, events/*.json).
        assert set(event) == ENVELOPE
        topic = event["detail"]["topicName"]
        assert "{id}" in event["detail-type"] and "{" not in topic
        assert re.fullmatch(re.escape(event["detail-type"]).replace(r"\{id\}", "[^.]+"), topic)
        assert set(event["detail"]) == {"topicName", "version", "eventBody", "metadata", "timestamp"}
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", event["time"])
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", event["detail"]["timestamp"])
        problems = official.problems(event["detail"]["eventBody"], official.topic_model(topic))
        assert not problems, f"{topic}: {problems}"
    topics = {e["detail"]["topicName"] for e in events}
    assert topics == {
        "v2.telephony.providers.edges.edge-demo-1",
        "v2.telephony.providers.edges.edge-demo-1.softwareupdate",
        "v2.telephony.providers.edges.trunks.trunk-demo-1",
        "v2.telephony.providers.edges.trunks.trunk-demo-2",
        "v2.workforcemanagement.businessunits.bu-demo.schedules",
        "v2.workforcemanagement.users.local-client.schedules.query",
    }
    outcomes = [
        e["detail"]["eventBody"]
        for e in events
        if e["detail"]["topicName"].endswith("businessunits.bu-demo.schedules")
    ]
    assert [o["status"] for o in outcomes] == ["Error", "Canceled", "Complete"]
    assert set(outcomes[0]) == {"status", "operationId"}  # an Error says nothing more
    assert set(outcomes[1]) == {"status", "operationId", "eventType"}
    assert outcomes[2]["result"]["published"] is True
    assert outcomes[2]["result"]["metadata"]["version"] == 4


# --- error bodies ------------------------------------------------------------------------------------------


def test_every_kind_of_error_answer_is_an_official_error_body() -> None:
    raw = contract_org(
        rateLimit={"requestsPerMinute": 2},  # the 404 and the 400 use it up
        faults=[{"path": "/api/v2/outbound/settings", "status": 503}],
    )
    with serving(raw) as org:
        token = {"Authorization": f"Bearer {org.client._bearer()}"}
        base = org.server.url
        answers = [
            requests.get(base + g.EDGE.format(edgeId="edge-nope"), headers=token, timeout=5),  # 404
            requests.get(
                base + g.SCHEDULES.format(buId="bu-demo", weekId="2023-10-24"), headers=token, timeout=5
            ),
            requests.get(base + g.OUTBOUND_SETTINGS, headers=token, timeout=5),  # injected 503
            requests.get(base + g.WFM, timeout=5),  # no bearer: 401
            requests.delete(base + g.WFM, headers=token, timeout=5),  # 405
            requests.get(base + g.WFM, headers=token, timeout=5),  # the third counted call: 429
        ]
    assert [a.status_code for a in answers] == [404, 400, 503, 401, 405, 429]
    official = shapes()
    for answer in answers:
        problems = official.problems(answer.json(), official.errors)
        assert not problems, f"{answer.status_code}: {problems}"
