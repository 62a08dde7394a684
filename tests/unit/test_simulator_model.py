"""GenesysSimulator.handle in virtual time: no sockets, no sleeping."""

from __future__ import annotations

import base64
import copy
import gzip
import json
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from wfm_publish.clock import VirtualClock
from wfm_publish_local.simulator.loading import ScenarioError, load_scenario, parse_scenario
from wfm_publish_local.simulator.model import GenesysSimulator
from wfm_publish_local.simulator.scenario import Scenario
from wfm_publish_local.simulator.transport import InProcessAdapter
from wfm_publish_local.simulator.wire import SimResponse

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
WFM = "/api/v2/workforcemanagement/businessunits"
EDGES = "/api/v2/telephony/providers/edges"


def demo_raw() -> dict[str, Any]:
    raw = yaml.safe_load((SCENARIOS / "demo.yaml").read_text())
    assert isinstance(raw, dict)
    return raw


def schedule_path(bu: str, week: str, sid: str) -> str:
    return f"{WFM}/{bu}/weeks/{week}/schedules/{sid}"


class Sim:
    """A simulator, its virtual clock and a token; `call` goes through `handle`."""

    def __init__(self, scenario: Scenario) -> None:
        self.clock = VirtualClock()
        self.sim = GenesysSimulator(scenario, self.clock)
        self.token = self.login()

    def login(self) -> str:
        basic = base64.b64encode(b"local-client:local-secret").decode()
        resp = self.sim.handle(
            "POST", "/oauth/token", {}, {"Authorization": f"Basic {basic}"}, b"grant_type=client_credentials"
        )
        assert resp.status == 200
        token = resp.json()["access_token"]
        assert isinstance(token, str)
        return token

    def call(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> SimResponse:
        raw = body if isinstance(body, bytes) else (json.dumps(body).encode() if body is not None else b"")
        hdrs = {"Authorization": f"Bearer {self.token}", "Host": "sim.test", **(headers or {})}
        return self.sim.handle(method, path, {}, hdrs, raw)

    def get(self, path: str) -> Any:
        resp = self.call("GET", path)
        assert resp.status == 200, resp.json()
        return resp.json()

    def version(self, path: str) -> int:
        version = self.get(path)["metadata"]["version"]
        assert isinstance(version, int)
        return version

    def publish(self, path: str, version: int, extra: dict[str, Any] | None = None) -> SimResponse:
        data = gzip.compress(
            json.dumps({"metadata": {"version": version}, "published": True, **(extra or {})}).encode()
        )
        upload = self.call("POST", path + "/update/uploadurl", {"contentLengthBytes": len(data)}).json()
        put = self.call("PUT", upload["url"].removeprefix("http://sim.test"), data, upload["headers"])
        assert put.status == 200, put.json()
        return self.call("POST", path + "/update", {"uploadKey": upload["uploadKey"]})


def error_code(resp: SimResponse) -> str:
    body = resp.json()
    assert resp.headers["ININ-Correlation-Id"] == body["contextId"]
    code = body["details"][0]["errorCode"] if body["details"] else body["code"]
    assert isinstance(code, str)
    return code


# ------------------------------------------------------------------------- scenario files


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_scenarios_load(path: Path) -> None:
    scenario = load_scenario(path)
    GenesysSimulator(scenario, VirtualClock()).stats()


def test_large_scenario_is_big_and_deterministic() -> None:
    first, second = load_scenario(SCENARIOS / "large.yaml"), load_scenario(SCENARIOS / "large.yaml")
    assert len(first.business_units) >= 50
    assert len(first.agents) >= 2000
    assert len(first.campaigns) >= 20
    assert first == second
    assert first.generate is None  # expanded


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda r: r.update(settleWindowSecond=2), "settleWindowSecond: Extra inputs are not permitted"),
        (
            lambda r: r["schedules"][0].update(weekId="2023-10-24"),
            "schedules[0].weekId: 2023-10-24 is a Tuesday",
        ),
        (
            lambda r: r["managementUnits"][0]["agents"].append("agent-x"),
            "managementUnits[0].agents: unknown agent",
        ),
        (lambda r: r["events"][0].update(entityId="trunk-demo-1"), "events[0].entityId: unknown edge"),
        (lambda r: r["events"][0].update(kind="reboot"), "events[0].telephonyChange.kind"),
        (
            lambda r: r["campaigns"][0].update(edgeGroupId="edgegroup-demo"),
            "exactly one of siteId or edgeGroupId",
        ),
        (lambda r: r["businessUnits"][0].update(timeZone="Mars/Base"), "businessUnits[0].timeZone"),
    ],
)
def test_bad_scenarios_name_the_field(change: Any, expected: str) -> None:
    raw = demo_raw()
    change(raw)
    with pytest.raises(ScenarioError) as info:
        parse_scenario(raw, source="demo.yaml")
    assert expected in str(info.value)
    assert str(info.value).startswith("demo.yaml: ")


def test_yaml_on_is_a_campaign_status() -> None:
    raw = demo_raw()
    raw["campaigns"][0]["campaignStatus"] = True  # what YAML 1.1 makes of a bare `on`
    assert parse_scenario(raw).campaigns[0].campaign_status == "on"


# ------------------------------------------------------------------------- conflicts and publishing


def test_stale_version_scenario() -> None:
    s = Sim(load_scenario(SCENARIOS / "conflict-stale-version.yaml"))
    path = schedule_path("bu-stale", "2023-10-22", "sched-stale")
    assert s.version(path) == 7
    s.clock.advance(6)
    assert s.version(path) == 8  # writer at t=5
    first = s.publish(path, 8)  # the beforeFirstUpdate writer moves it to 9 first
    assert first.status == 409 and error_code(first) == "wfm.schedule.version.mismatch"
    assert first.json()["messageParams"] == {"providedVersion": "8", "currentVersion": "9"}
    s.clock.advance(15)  # t=21: writer at t=20 moved it to 10
    assert s.publish(path, 9).status == 409
    assert s.publish(path, s.version(path)).status == 200
    s.clock.advance(1)
    state = s.sim.schedule_state("sched-stale")
    assert (state["version"], state["published"]) == (11, True)
    assert s.sim.stats()["conflictsSent"]["stale"] == 2


def test_telephony_scenario_blocks_until_settled() -> None:
    s = Sim(load_scenario(SCENARIOS / "conflict-telephony.yaml"))
    path = schedule_path("bu-tel", "2023-10-23", "sched-tel")
    seen = []
    for t in (0, 5, 10, 44, 50, 59.9):
        s.clock.advance_to(s.clock.now() - s.sim.elapsed() + t)
        resp = s.publish(path, 2)
        assert resp.status == 409, t
        assert error_code(resp) == "wfm.schedule.telephony.provisioning.in.progress"
        seen.append(resp.json()["entityId"])
    assert seen == ["trunk-tel-1"] * 4 + ["trunkbase-tel"] * 2
    trunk = s.get(EDGES + "/trunks/trunk-tel-2")  # re-saved base: version moved, connected again after 45
    assert trunk["version"] == 2 and trunk["connectedStatus"]["connected"] is True
    s.clock.advance(0.1)
    assert s.publish(path, 2).status == 200
    assert s.sim.stats()["conflictsSent"]["telephony"] == 6


def test_publish_in_progress_and_failed_operation() -> None:
    s = Sim(load_scenario(SCENARIOS / "conflict-publish-in-progress.yaml"))
    path = schedule_path("bu-busy", "2023-10-23", "sched-busy")
    first = s.publish(path, 1)
    assert first.status == 200
    operation = first.json()["operationId"]
    busy = s.publish(path, 1)
    assert busy.status == 409 and error_code(busy) == "wfm.schedule.update.in.progress"
    assert busy.json()["messageParams"]["operationId"] == operation
    s.clock.advance(20)
    assert s.get(f"/__sim/operations/{operation}")["status"] == "Error"
    assert s.version(path) == 1 and s.get(path)["published"] is False  # nothing applied
    assert s.publish(path, 1).status == 200
    s.clock.advance(20)
    stats = s.sim.stats()
    assert stats["publishesFailed"] == {"sched-busy": 1}
    assert stats["publishesApplied"] == {"sched-busy": 1}
    assert s.get(path)["published"] is True


def test_unrelated_edge_change_does_not_block() -> None:
    s = Sim(load_scenario(SCENARIOS / "unrelated-edge-change.yaml"))
    calm = schedule_path("bu-calm", "2023-10-23", "sched-calm")
    other = schedule_path("bu-calm", "2023-10-23", "sched-other")
    assert s.publish(calm, 4).status == 200
    blocked = s.publish(other, 1)
    assert blocked.status == 409 and blocked.json()["entityId"] == "edge-other"
    assert s.get(EDGES + "/edge-lab")["softwareStatus"]["status"] == "IN_PROGRESS"
    assert s.get(EDGES + "/edge-other")["onlineStatus"] == "OFFLINE"
    s.clock.advance(610)
    assert s.publish(other, 1).status == 200


def test_org_wide_change_blocks_everything() -> None:
    raw = yaml.safe_load((SCENARIOS / "unrelated-edge-change.yaml").read_text())
    raw["events"][1]["scope"] = "org"  # the lab edge's update now blocks every publish
    s = Sim(parse_scenario(raw))
    resp = s.publish(schedule_path("bu-calm", "2023-10-23", "sched-calm"), 4)
    assert resp.status == 409 and resp.json()["entityId"] == "edge-lab"


def test_writer_edit_at_a_time_and_update_applies_agent_schedules() -> None:
    raw = demo_raw()
    raw["events"] = [{"type": "writerEdit", "scheduleId": "sched-demo", "at": 3, "by": "user-x"}]
    s = Sim(parse_scenario(raw))
    path = schedule_path("bu-demo", "2023-10-23", "sched-demo")
    s.clock.advance(3)
    meta = s.get(path)["metadata"]
    assert (meta["version"], meta["modifiedBy"]["id"]) == (4, "user-x")
    shift = {"id": "new", "startDate": "2023-10-23T09:00:00.000Z", "lengthMinutes": 60, "activities": []}
    resp = s.publish(path, 4, {"agentSchedules": [{"userId": "agent-1", "shifts": [shift]}]})
    assert resp.status == 200
    s.clock.advance(1)
    query = s.call("POST", path + "/agentschedules/query", {"userIds": ["agent-1"]}).json()
    agent = query["result"]["agentSchedules"][0]
    assert agent["shifts"] == [shift]
    assert agent["metadata"]["version"] == 2


# ------------------------------------------------------------------------- agent schedules


def test_agent_schedules_query_shape() -> None:
    s = Sim(load_scenario(SCENARIOS / "demo.yaml"))
    path = schedule_path("bu-demo", "2023-10-23", "sched-demo")
    body = s.call("POST", path + "/agentschedules/query", {"managementUnitId": "mu-demo"}).json()
    assert body["status"] == "Complete"
    result = body["result"]
    assert result["businessUnitTimeZone"] == "Europe/London"
    assert [a["user"]["id"] for a in result["agentSchedules"]] == [f"agent-{i}" for i in range(1, 7)]
    first = result["agentSchedules"][0]
    assert set(first) == {"user", "shifts", "fullDayTimeOffMarkers", "workPlan", "metadata"}
    assert len(first["shifts"]) == 5
    shift = first["shifts"][0]
    assert shift["startDate"] == "2023-10-23T07:00:00.000Z"  # 08:00 BST
    assert shift["lengthMinutes"] == 480
    assert set(shift["activities"][1]) == {
        "startDate",
        "lengthMinutes",
        "activityCodeId",
        "description",
        "paid",
    }
    assert shift["activities"][1]["paid"] is False
    only = s.call("POST", path + "/agentschedules/query", {"userIds": ["agent-5"]}).json()
    assert [a["user"]["id"] for a in only["result"]["agentSchedules"]] == ["agent-5"]
    assert only["result"]["agentSchedules"][0]["shifts"][0]["startDate"] == "2023-10-23T11:00:00.000Z"


def test_async_agent_schedules_query() -> None:
    raw = demo_raw()
    raw.update(asyncAgentQueryOver=3, asyncQuerySeconds=2)
    s = Sim(parse_scenario(raw))
    path = schedule_path("bu-demo", "2023-10-23", "sched-demo")
    small = s.call("POST", path + "/agentschedules/query", {"userIds": ["agent-1"]}).json()
    assert small["status"] == "Complete"
    big = s.call("POST", path + "/agentschedules/query", {}).json()
    assert big["status"] == "Processing" and "result" not in big
    status = s.get(f"/__sim/operations/{big['operationId']}")
    assert status["status"] == "Processing" and "downloadUrl" not in status
    assert s.call("GET", f"/__downloads/{big['operationId']}").status == 404
    s.clock.advance(2)
    status = s.get(f"/__sim/operations/{big['operationId']}")
    assert status["downloadUrl"] == f"http://sim.test/__downloads/{big['operationId']}"
    result = s.get(f"/__downloads/{big['operationId']}")
    assert len(result["agentSchedules"]) == 6


# ------------------------------------------------------------------------- outbound


def test_outbound_shapes_and_line_distribution() -> None:
    s = Sim(load_scenario(SCENARIOS / "demo.yaml"))
    campaigns = s.get("/api/v2/outbound/campaigns?pageSize=100")
    assert campaigns["total"] == 1
    campaign = s.get("/api/v2/outbound/campaigns/campaign-demo")
    assert {
        "id",
        "name",
        "dialingMode",
        "campaignStatus",
        "queue",
        "site",
        "maxCallsPerAgent",
        "version",
    } <= set(campaign)
    assert (campaign["dialingMode"], campaign["campaignStatus"]) == ("predictive", "on")
    too_big = s.call("GET", "/api/v2/outbound/campaigns?pageSize=101")
    assert too_big.status == 400 and too_big.json()["details"][0]["fieldName"] == "pageSize"

    during = s.get("/api/v2/outbound/campaigns/campaign-demo/linedistribution")
    assert during["maxOutboundLineCount"] == 0  # both trunks are down while the edge updates
    s.clock.advance(9)  # the demo's edge update ends at t=8
    lines = s.get("/api/v2/outbound/campaigns/campaign-demo/linedistribution")
    assert lines["maxOutboundLineCount"] == 60  # 2 trunks x 30
    assert lines["maxLineUtilization"] == 0.9
    assert (lines["availableOutboundLines"], lines["reservedLines"]) == (54, 0)
    assert lines["campaign"]["id"] == "campaign-demo"
    assert lines["campaignsWithDynamicallyAllocatedLines"][0]["campaign"]["id"] == "campaign-demo"

    settings = s.get("/api/v2/outbound/settings")
    assert (settings["maxLineUtilization"], settings["maxCallsPerAgent"]) == (0.9, 4)
    members = s.get("/api/v2/routing/queues/queue-outbound/members?pageSize=4&pageNumber=2")
    # QueueMemberEntityListing pages by links: no total, pageCount or lastUri.
    assert not {"total", "pageCount", "lastUri"} & set(members)
    assert "nextUri" not in members and members["previousUri"].endswith("pageNumber=1")
    assert len(members["entities"]) == 2
    assert members["entities"][0]["user"] == {"id": "agent-5", "name": "Barbara Liskov"}


# ------------------------------------------------------------------------- limits and faults


@pytest.mark.parametrize("window", ["sliding", "fixed"])
def test_rate_limit_429_with_retry_after(window: str) -> None:
    raw = demo_raw()
    raw["rateLimit"] = {"requestsPerMinute": 3, "window": window}
    s = Sim(parse_scenario(raw))
    s.clock.advance(10)
    for _ in range(3):
        assert s.call("GET", WFM).status == 200
    s.clock.advance(5)
    limited = s.call("GET", WFM)
    assert limited.status == 429
    assert limited.json()["code"] == "too.many.requests.retry.after"
    assert limited.headers["Retry-After"] == ("55" if window == "sliding" else "45")
    s.clock.advance(int(limited.headers["Retry-After"]))
    assert s.call("GET", WFM).status == 200
    assert s.sim.stats()["rateLimited"] == 1
    s.token = s.login()  # limits are per token
    assert s.call("GET", WFM).status == 200


def test_scripted_fault_sequence() -> None:
    raw = demo_raw()
    raw["faults"] = [{"path": WFM, "method": "GET", "sequence": [503, "pass", "drop", 429], "retryAfter": 7}]
    s = Sim(parse_scenario(raw))
    answers = [s.call("GET", WFM) for _ in range(5)]
    assert [a.status for a in answers] == [503, 200, 0, 429, 200]
    assert error_code(answers[0]) == "service.unavailable"
    assert answers[2].drop is True
    assert answers[3].headers["Retry-After"] == "7"
    assert s.call("GET", WFM + "/bu-demo").status == 200  # another path: untouched
    stats = s.sim.stats()
    assert (stats["faultsInjected"], stats["connectionsDropped"], stats["rateLimited"]) == (3, 1, 1)
    assert stats["calls"][f"GET {WFM}"] == 5


def test_probabilistic_faults_follow_the_seed_and_latency_is_reported() -> None:
    raw = demo_raw()
    raw["faults"] = [
        {"path": f"{EDGES}*", "status": 500, "probability": 0.5},
        {"path": "/api/v2/outbound/*", "latencySeconds": 2.5},
    ]

    def run() -> list[int]:
        s = Sim(parse_scenario(copy.deepcopy(raw)))
        return [s.call("GET", EDGES + "/edge-demo-1").status for _ in range(30)]

    first = run()
    assert first == run()
    assert set(first) == {200, 500}
    s = Sim(parse_scenario(copy.deepcopy(raw)))
    assert s.call("GET", "/api/v2/outbound/settings").delay_seconds == 2.5
    assert s.call("GET", WFM).delay_seconds == 0


def test_unknown_route_method_and_stats_templates() -> None:
    s = Sim(load_scenario(SCENARIOS / "demo.yaml"))
    assert s.call("DELETE", WFM).status == 405
    assert s.call("GET", EDGES + "/sitez").status == 404  # an unknown edge id
    assert s.call("GET", EDGES + "/sites").json()["entities"][0]["id"] == "site-demo"  # not an edge
    assert s.call("GET", EDGES + "/trunkbasesettings").json()["entities"][0]["id"] == "trunkbase-demo"
    assert s.call("GET", EDGES + "/trunks/metrics").status == 400  # trunkIds is required
    s.get(EDGES + "/trunks/trunk-demo-2")
    s.get(EDGES + "/trunks/trunk-demo-1")
    calls = s.sim.stats()["calls"]
    assert calls[f"GET {EDGES}/trunks/{{trunkId}}"] == 2
    assert calls[f"GET {EDGES}/trunks/metrics"] == 1
    assert calls[f"GET {EDGES}/{{edgeId}}"] == 1  # the unknown edge id
    assert calls["POST /oauth/token"] == 1


# ------------------------------------------------------------------------- InProcessAdapter


def test_in_process_adapter_runs_requests_in_virtual_time() -> None:
    raw = demo_raw()
    raw["faults"] = [
        {"path": "/api/v2/outbound/settings", "latencySeconds": 3},
        {"path": "/api/v2/routing/*", "drop": True},
    ]
    clock = VirtualClock()
    sim = GenesysSimulator(parse_scenario(raw), clock)
    session = requests.Session()
    session.mount("http://genesys.sim", InProcessAdapter(sim))
    token = session.post(
        "http://genesys.sim/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=("local-client", "local-secret"),
    ).json()["access_token"]
    session.headers["Authorization"] = f"Bearer {token}"
    bus = session.get("http://genesys.sim" + WFM)
    assert bus.status_code == 200 and bus.json()["entities"][0]["id"] == "bu-demo"
    assert bus.headers["content-type"].startswith("application/json")

    path = "http://genesys.sim" + schedule_path("bu-demo", "2023-10-23", "sched-demo")
    clock.advance(10)
    data = gzip.compress(json.dumps({"metadata": {"version": 3}, "published": True}).encode())
    upload = session.post(path + "/update/uploadurl", json={"contentLengthBytes": len(data)}).json()
    assert upload["url"].startswith("http://genesys.sim/__uploads/")
    assert session.put(upload["url"], data=data, headers=upload["headers"]).status_code == 200
    stale = session.post(path + "/update", json={"uploadKey": upload["uploadKey"]})
    assert (
        stale.status_code == 409
        and stale.json()["details"][0]["errorCode"] == "wfm.schedule.version.mismatch"
    )

    before = sim.elapsed()
    assert session.get("http://genesys.sim/api/v2/outbound/settings").status_code == 200
    assert sim.elapsed() == before + 3  # latency moved the virtual clock
    with pytest.raises(requests.exceptions.ReadTimeout):
        session.get("http://genesys.sim/api/v2/outbound/settings", timeout=(1, 2))
    with pytest.raises(requests.exceptions.ConnectionError):
        session.get("http://genesys.sim/api/v2/routing/queues/queue-outbound/members")
