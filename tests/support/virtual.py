"""A publish job in virtual time: the real core and the simulator in-process, on one virtual clock."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from wfm_publish.clock import VirtualClock
from wfm_publish.models import Job, PublishRequest
from wfm_publish.waiting import Timing
from wfm_publish_local.demo import SERVICENOW_BODY
from wfm_publish_local.simulator import GenesysSimulator, parse_scenario
from wfm_publish_local.virtual import VirtualRun

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
T0 = VirtualClock().now()  # the virtual clock's start: simulator t = 0
REQUEST = SERVICENOW_BODY  # the ServiceNow REST message, as the demo sends it
# The demo's schedule in the Genesys API, and its update (where faults are put).
SCHEDULE = "/api/v2/workforcemanagement/businessunits/bu-demo/weeks/2023-10-23/schedules/sched-demo"
UPDATE = SCHEDULE + "/update"


def raw_scenario(name: str = "demo", **changes: Any) -> dict[str, Any]:
    """scenarios/<name>.yaml as data, with the top-level keys given replaced."""
    raw: dict[str, Any] = yaml.safe_load((SCENARIOS / f"{name}.yaml").read_text())
    raw.update(changes)
    return raw


def edge_update(end: float, start: float = 0, entity_id: str = "edge-demo-1") -> dict[str, Any]:
    """A scenario event: the Edge's software update from `start` to `end` (simulator seconds)."""
    return {
        "type": "telephonyChange",
        "kind": "softwareUpdate",
        "entityId": entity_id,
        "start": start,
        "end": end,
    }


def virtual_run(raw: dict[str, Any], seed: int = 0, **run: Any) -> VirtualRun:
    """The scenario served by the simulator, the pipeline waiting by its settle window."""
    scenario = parse_scenario(raw)
    clock = VirtualClock()
    simulator = GenesysSimulator(scenario, clock)
    return VirtualRun(simulator, clock, Timing(settle_window=scenario.settle_window_seconds), seed, **run)


def accept(run: VirtualRun, request: dict[str, Any] | None = None, key: str = "key-1") -> str:
    """The request through intake (REQUEST by default); answers its publishId."""
    return str(run.intake.accept(PublishRequest.model_validate(request or REQUEST), key).body["publishId"])


def start(
    raw: dict[str, Any], request: dict[str, Any] | None = None, *, seed: int = 0, **run: Any
) -> tuple[VirtualRun, str]:
    """A run with one request accepted: the run and the job's id."""
    virtual = virtual_run(raw, seed, **run)
    return virtual, accept(virtual, request)


def events(job: Job) -> list[str]:
    """The job's timeline, its events only."""
    return [entry.event for entry in job.timeline]


def demo(**changes: Any) -> dict[str, Any]:
    """scenarios/demo.yaml as data: an Edge update settling, another writer's edit before our publish."""
    return raw_scenario("demo", **changes)


def request(schedule_id: str, bu: str, mode: str = "strict", **more: Any) -> dict[str, Any]:
    """A publish request for a schedule of the week 2023-10-23, naming its business unit."""
    body: dict[str, Any] = {
        "scheduleId": schedule_id,
        "validationMode": mode,
        "telephonySync": {"enabled": True, "retryCount": 3, "delayMs": 5000},
        "businessUnitId": bu,
        "weekId": "2023-10-23",
    }
    body.update(more)
    return body


def quiet_demo(**changes: Any) -> dict[str, Any]:
    """demo.yaml with no telephony change and no other writer: only what the test adds happens."""
    return raw_scenario("demo", **{"events": [], **changes})


def fault(path: str, sequence: list[Any], method: str | None = None, **more: Any) -> dict[str, Any]:
    """A scenario fault: the answers (a status, "drop" or "pass") the path's requests get in turn."""
    out: dict[str, Any] = {"path": path, "sequence": sequence, **more}
    if method:
        out["method"] = method
    return out


def applied_once(run: VirtualRun, schedule_id: str = "sched-demo") -> bool:
    """Genesys applied exactly one update of the schedule."""
    return bool(run.simulator.stats()["publishesApplied"] == {schedule_id: 1})
