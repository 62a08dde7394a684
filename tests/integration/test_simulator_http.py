"""The Genesys Cloud simulator over real HTTP, driven in virtual time (the test moves the clock)."""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.support.genesys import ERROR_FIELDS, SCHEDULE_LIST_FIELDS, TRUNK_FIELDS
from wfm_publish.clock import VirtualClock
from wfm_publish_local.simulator.loading import load_scenario, parse_scenario
from wfm_publish_local.simulator.model import GenesysSimulator
from wfm_publish_local.simulator.server import SimulatorServer

pytestmark = pytest.mark.integration

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
WFM = "/api/v2/workforcemanagement/businessunits"
SCHEDULE = WFM + "/bu-demo/weeks/2023-10-23/schedules/sched-demo"
EDGES = "/api/v2/telephony/providers/edges"


class Org:
    """A started simulator server, its virtual clock and a logged-in session."""

    def __init__(self, server: SimulatorServer, clock: VirtualClock) -> None:
        self.server = server
        self.clock = clock
        self.url = server.url
        self.http = requests.Session()
        self.token = self.login()

    def login(self, client_id: str = "local-client", secret: str = "local-secret") -> str:
        resp = requests.post(
            self.url + "/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(client_id, secret),
            timeout=5,
        )
        assert resp.status_code == 200, resp.text
        token = resp.json()["access_token"]
        assert isinstance(token, str)
        return token

    def call(self, method: str, path: str, body: Any = None, **params: str) -> requests.Response:
        return self.http.request(
            method,
            self.url + path,
            json=body,
            params=params or None,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=5,
        )

    def get(self, path: str, **params: str) -> Any:
        resp = self.call("GET", path, **params)
        assert resp.status_code == 200, resp.text
        return resp.json()

    def publish(self, version: int) -> requests.Response:
        """The three-step update: upload URL, gzip PUT, update with the upload key."""
        data = gzip.compress(json.dumps({"metadata": {"version": version}, "published": True}).encode())
        step1 = self.call("POST", SCHEDULE + "/update/uploadurl", {"contentLengthBytes": len(data)})
        assert step1.status_code == 200, step1.text
        upload = step1.json()
        step2 = requests.put(upload["url"], data=data, headers=upload["headers"], timeout=5)
        assert step2.status_code == 200, step2.text
        return self.call("POST", SCHEDULE + "/update", {"uploadKey": upload["uploadKey"]})


@pytest.fixture(scope="module")
def server_and_clock() -> Iterator[tuple[SimulatorServer, VirtualClock]]:
    clock = VirtualClock()
    simulator = GenesysSimulator(load_scenario(SCENARIOS / "demo.yaml"), clock)
    with SimulatorServer(simulator) as server:
        yield server, clock


@pytest.fixture
def org(server_and_clock: tuple[SimulatorServer, VirtualClock]) -> Org:
    server, clock = server_and_clock
    assert requests.post(server.url + "/__sim/reset", timeout=5).status_code == 200
    return Org(server, clock)


def assert_genesys_error(resp: requests.Response, status: int, code: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body = resp.json()
    # The entity's fields only when the error is about one (Genesys leaves empty fields out).
    assert ERROR_FIELDS - {"entityId", "entityName"} <= set(body) <= ERROR_FIELDS | {"limit"}
    assert body["code"] == code
    assert body["status"] == status
    assert resp.headers["ININ-Correlation-Id"] == body["contextId"]
    return body  # type: ignore[no-any-return]


# ------------------------------------------------------------------------- auth


def test_token_flow_and_401s(org: Org) -> None:
    assert org.get(WFM)["entities"][0]["id"] == "bu-demo"

    bad = requests.post(
        org.url + "/oauth/token", data={"grant_type": "client_credentials"}, auth=("x", "y"), timeout=5
    )
    assert bad.status_code == 401
    assert bad.json()["error"] == "invalid_client"

    no_token = requests.get(org.url + WFM, timeout=5)
    assert_genesys_error(no_token, 401, "authentication.required")
    wrong = requests.get(org.url + WFM, headers={"Authorization": "Bearer nope"}, timeout=5)
    assert_genesys_error(wrong, 401, "bad.credentials")

    org.clock.advance(86400)  # the scenario's token lifetime
    assert_genesys_error(org.call("GET", WFM), 401, "bad.credentials")
    org.token = org.login()
    assert org.call("GET", WFM).status_code == 200


# ------------------------------------------------------------------------- shapes


def test_business_units_and_schedules_shapes(org: Org) -> None:
    bus = org.get(WFM)["entities"]
    assert bus == [
        {
            "id": "bu-demo",
            "name": "Demo Contact Centre",
            "division": {"id": "division-home", "selfUri": "/api/v2/authorization/divisions/division-home"},
            "selfUri": WFM + "/bu-demo",
        }
    ]
    bu = org.get(WFM + "/bu-demo", expand="settings")
    assert bu["settings"]["startDayOfWeek"] == "Monday"
    assert bu["settings"]["timeZone"] == "Europe/London"

    listed = org.get(WFM + "/bu-demo/weeks/recent/schedules")["entities"]
    assert [s["id"] for s in listed] == ["sched-demo"]
    assert set(listed[0]) >= SCHEDULE_LIST_FIELDS
    assert org.get(WFM + "/bu-demo/weeks/2023-10-23/schedules")["entities"][0]["weekDate"] == "2023-10-23"
    assert org.get(WFM + "/bu-demo/weeks/2023-10-30/schedules")["entities"] == []

    sched = org.get(SCHEDULE, expand="managementUnits.agents")
    assert sched["published"] is False
    meta = sched["metadata"]
    assert meta["version"] == 3
    assert set(meta) == {"version", "modifiedBy", "dateModified", "createdBy", "dateCreated"}
    assert meta["modifiedBy"]["id"] and meta["createdBy"]["id"]
    unit = sched["managementUnits"][0]
    assert unit["managementUnit"] == {"id": "mu-demo"}
    assert [a["id"] for a in unit["agents"]] == [f"agent-{i}" for i in range(1, 7)]  # UserReference


def test_week_and_id_errors(org: Org) -> None:
    assert_genesys_error(org.call("GET", WFM + "/bu-demo/weeks/2023-10-24/schedules"), 400, "bad.request")
    assert_genesys_error(org.call("GET", WFM + "/bu-demo/weeks/nope/schedules"), 400, "bad.request")
    missing = assert_genesys_error(org.call("GET", WFM + "/bu-nope"), 404, "not.found")
    assert missing["entityId"] == "bu-nope"
    assert_genesys_error(org.call("GET", SCHEDULE.replace("sched-demo", "sched-x")), 404, "not.found")
    assert_genesys_error(org.call("GET", "/api/v2/nothing/here"), 404, "not.found")
    assert_genesys_error(org.call("GET", EDGES + "/edge-nope"), 404, "not.found")


def test_telephony_shapes_and_path_trap(org: Org) -> None:
    edges = org.get(EDGES, pageSize="1")
    assert {"entities", "pageSize", "pageNumber", "total", "pageCount"} <= set(edges)
    assert edges["total"] == 1
    edge = org.get(EDGES + "/edge-demo-1")
    assert {
        "id",
        "name",
        "statusCode",
        "onlineStatus",
        "softwareStatus",
        "callDrainingState",
        "site",
        "edgeGroup",
        "dateModified",
    } <= set(edge)
    assert edge["softwareStatus"]["status"] == "IN_PROGRESS"  # the demo's update runs from t=0 to t=8

    trunks = org.get(EDGES + "/trunks", **{"edge.id": "edge-demo-1", "trunkType": "EXTERNAL"})
    assert [t["id"] for t in trunks["entities"]] == ["trunk-demo-1", "trunk-demo-2"]
    trunk = org.get(EDGES + "/trunks/trunk-demo-1")
    assert {"id", "name", *TRUNK_FIELDS} <= set(trunk)
    assert trunk["connectedStatus"]["connected"] is False  # the edge is restarting

    metrics = org.get(EDGES + "/trunks/metrics", trunkIds="trunk-demo-1,trunk-demo-2")
    assert [m["trunk"]["id"] for m in metrics] == ["trunk-demo-1", "trunk-demo-2"]
    assert set(metrics[0]["calls"]) == {"inboundCallCount", "outboundCallCount"}

    base = org.get(EDGES + "/trunkbasesettings/trunkbase-demo", expand="properties")
    assert base["properties"]["trunk_max_concurrent_calls"]["value"]["instance"] == 30
    assert base["properties"]["trunk_enabled"]["value"]["instance"] is True

    site = org.get(EDGES + "/sites/site-demo")
    assert site["edges"] == [{"id": "edge-demo-1", "name": "LON-EDGE-01"}]
    assert {"state", "mediaModel", "managed"} <= set(site)

    org.clock.advance(9)  # the demo's update runs from t=0 to t=8
    settled = org.get(EDGES + "/edge-demo-1")
    assert (settled["statusCode"], settled["softwareStatus"]["status"]) == ("ACTIVE", "SUCCEEDED")
    assert settled["dateModified"] > edge["dateModified"]
    assert org.get(EDGES + "/trunks/trunk-demo-1")["connectedStatus"]["connected"] is True

    stats = org.get("/__sim/stats")["calls"]
    assert stats["GET /api/v2/telephony/providers/edges/trunks"] == 1
    assert stats["GET /api/v2/telephony/providers/edges/trunks/{trunkId}"] == 2
    assert stats["GET /api/v2/telephony/providers/edges/{edgeId}"] == 2


# ------------------------------------------------------------------------- publish


def test_demo_publish_conflicts_then_applies(org: Org) -> None:
    # The first upload URL lets the other writer in: version 3 is stale by the time of the update.
    stale = assert_genesys_error(org.publish(3), 409, "conflict")
    assert stale["details"][0]["errorCode"] == "wfm.schedule.version.mismatch"
    assert stale["messageParams"] == {"providedVersion": "3", "currentVersion": "4"}
    assert org.get(SCHEDULE)["metadata"]["version"] == 4

    telephony = assert_genesys_error(org.publish(4), 409, "conflict")
    assert telephony["details"][0]["errorCode"] == "wfm.schedule.telephony.provisioning.in.progress"
    assert telephony["entityId"] == "edge-demo-1"

    org.clock.advance(9)  # the update ended at 8, settle window 2: still blocked at 9
    assert assert_genesys_error(org.publish(4), 409, "conflict")["entityId"] == "edge-demo-1"

    org.clock.advance(1)
    accepted = org.publish(4)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["status"] == "Processing"
    assert accepted.json()["operationId"]

    busy = assert_genesys_error(org.publish(4), 409, "conflict")
    assert busy["details"][0]["errorCode"] == "wfm.schedule.update.in.progress"

    org.clock.advance(0.5)
    assert org.get(SCHEDULE)["published"] is False  # publishDurationSeconds is 1
    org.clock.advance(0.5)
    sched = org.get(SCHEDULE)
    assert sched["published"] is True
    assert sched["metadata"]["version"] == 5
    assert sched["metadata"]["modifiedBy"] == {"id": "local-client"}

    stats = org.get("/__sim/stats")
    assert stats["publishesApplied"] == {"sched-demo": 1}
    assert stats["conflictsSent"] == {"stale": 1, "telephony": 2, "inProgress": 1}
    assert stats["tokensIssued"] == 1
    assert stats["calls"][f"POST {WFM}/{{buId}}/weeks/{{weekId}}/schedules/{{scheduleId}}/update"] == 5
    kinds = [e["kind"] for e in stats["events"]]
    assert "writerEdit" in kinds
    assert kinds[-1] == "updateApplied"


def test_upload_rejects_bad_bodies(org: Org) -> None:
    data = gzip.compress(json.dumps({"published": True}).encode())
    upload = org.call("POST", SCHEDULE + "/update/uploadurl", {"contentLengthBytes": len(data)}).json()
    assert upload["url"] == f"{org.url}/__uploads/{upload['uploadKey']}"
    assert upload["headers"] == {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    no_meta = requests.put(upload["url"], data=data, headers=upload["headers"], timeout=5)
    assert_genesys_error(no_meta, 400, "bad.request")
    plain = json.dumps({"metadata": {"version": 3}}).encode()
    upload = org.call("POST", SCHEDULE + "/update/uploadurl", {"contentLengthBytes": len(plain)}).json()
    not_gzip = requests.put(upload["url"], data=plain, headers=upload["headers"], timeout=5)
    assert_genesys_error(not_gzip, 400, "bad.request")
    bad_size = org.call("POST", SCHEDULE + "/update/uploadurl", {"contentLengthBytes": 0})
    details = assert_genesys_error(bad_size, 400, "bad.request")["details"]
    assert details[0]["fieldName"] == "contentLengthBytes"
    unknown = org.call("POST", SCHEDULE + "/update", {"uploadKey": "nope"})
    assert assert_genesys_error(unknown, 400, "bad.request")["details"][0]["fieldName"] == "uploadKey"


def test_reset_restarts_state_and_clock(org: Org) -> None:
    org.clock.advance(10)
    assert org.publish(3).status_code == 409  # stale: the writer fired
    assert org.get("/__sim/stats")["conflictsSent"]["stale"] == 1
    assert requests.post(org.url + "/__sim/reset", timeout=5).json()["reset"] is True
    stats = requests.get(org.url + "/__sim/stats", timeout=5).json()
    assert stats["t"] == 0
    assert stats["calls"] == {}
    assert stats["conflictsSent"] == {"stale": 0, "telephony": 0, "inProgress": 0}
    assert_genesys_error(org.call("GET", WFM), 401, "bad.credentials")  # tokens are state too
    org.token = org.login()
    assert org.get(SCHEDULE)["metadata"]["version"] == 3
    assert org.get(EDGES + "/edge-demo-1")["softwareStatus"]["status"] == "IN_PROGRESS"


# ------------------------------------------------------------------------- faults over the wire


def test_dropped_connection_latency_and_429_over_http() -> None:
    raw = yaml.safe_load((SCENARIOS / "demo.yaml").read_text())
    raw["faults"] = [
        {"path": WFM, "sequence": ["drop", 429, "pass"], "retryAfter": 3},
        {"path": "/api/v2/outbound/settings", "latencySeconds": 0.2},
    ]
    simulator = GenesysSimulator(parse_scenario(raw), VirtualClock())
    with SimulatorServer(simulator) as server:
        org = Org(server, VirtualClock())
        with pytest.raises(requests.exceptions.ConnectionError):
            org.call("GET", WFM)
        limited = org.call("GET", WFM)
        assert_genesys_error(limited, 429, "too.many.requests.retry.after")
        assert limited.headers["Retry-After"] == "3"
        assert org.call("GET", WFM).status_code == 200
        started = time.monotonic()
        assert org.call("GET", "/api/v2/outbound/settings").status_code == 200
        assert time.monotonic() - started >= 0.2
        stats = org.get("/__sim/stats")
        assert (stats["connectionsDropped"], stats["rateLimited"], stats["calls"][f"GET {WFM}"]) == (1, 1, 3)
