"""What the capacity check costs over scenarios/large.yaml: 2,000 agents, a full week of 15-minute intervals.

Two figures:

- the computation alone (capacity.py: on-queue spans from the agents' shifts, the difference arrays,
  the report) over every agent of the org at once, against all five sites: the part that must stay
  well under a second of CPU. Best and mean of a few runs, process time and wall time.
- the whole check as the pipeline runs it, per schedule (50 schedules of 40 agents): reads through
  the real GenesysClient to the simulator in-process (agent schedules, line distribution, trunks,
  settings; shared observations in memory), parsing included.

`python -m bench capacity` prints the table; `run()` returns the figures.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from wfm_publish import capacity, scope
from wfm_publish.capacity import Demand, Lines, Week
from wfm_publish.clock import VirtualClock
from wfm_publish.genesys import AgentSchedule, GenesysClient, OutboundSettings
from wfm_publish.models import TelephonyScope
from wfm_publish.observations import Observer
from wfm_publish_local.simulator import GenesysSimulator, parse_scenario
from wfm_publish_local.virtual import MemoryJobStore, virtual_client

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "scenarios" / "large.yaml"
RUNS = 7


def _org() -> tuple[GenesysSimulator, GenesysClient, VirtualClock]:
    raw: dict[str, Any] = yaml.safe_load(SCENARIO.read_text())
    raw["rateLimit"] = {"enabled": False}  # the benchmark reads the whole org at one virtual instant
    raw["events"] = []  # calm telephony: every trunk carries its lines
    clock = VirtualClock()
    simulator = GenesysSimulator(parse_scenario(raw), clock)
    return simulator, virtual_client(simulator, clock), clock


def _timed(work: Callable[[], Any], runs: int = RUNS) -> tuple[Any, dict[str, float]]:
    cpu, wall = [], []
    result = None
    for _ in range(runs):
        started_cpu, started_wall = time.process_time(), time.perf_counter()
        result = work()
        cpu.append(time.process_time() - started_cpu)
        wall.append(time.perf_counter() - started_wall)
    figures = {
        "cpu_ms_best": min(cpu) * 1000,
        "cpu_ms_mean": statistics.fmean(cpu) * 1000,
        "wall_ms_best": min(wall) * 1000,
        "wall_ms_mean": statistics.fmean(wall) * 1000,
    }
    return result, figures


def run() -> dict[str, Any]:
    simulator, client, clock = _org()
    schedules = [s for s in simulator.scenario.schedules]
    observer = Observer(MemoryJobStore(), clock.now())

    # --- inputs, read once (not timed) ----------------------------------------------------------------
    scopes: dict[str, TelephonyScope] = {
        s.id: scope.compute(client, observer, s.business_unit_id, s.week_id.isoformat(), s.id)
        for s in schedules
    }
    org = OutboundSettings.model_validate(client.outbound_settings().model_dump(mode="json", by_alias=True))
    campaigns = {c.id: c for found in scopes.values() for c in found.campaigns}
    members = {
        q: set(scope.queue_members(client, observer, q, 300))
        for q in {c.queue_id for c in campaigns.values() if c.queue_id}
    }
    agent_schedules: list[AgentSchedule] = []
    weeks: list[Week] = []
    for s in schedules:
        zone = str(client.business_unit(s.business_unit_id)["settings"]["timeZone"])
        weeks.append(Week.of(s.week_id.isoformat(), zone))
        for unit in scopes[s.id].management_units:
            agent_schedules += client.agent_schedules(s.business_unit_id, s.week_id.isoformat(), s.id, unit)
    # One grid over every business unit's week (their zones differ): a little over seven days.
    week = Week(min(w.start for w in weeks), max(w.end for w in weeks), "UTC")
    pools: dict[str, Lines] = {}
    for found in scopes.values():
        for p in found.pools:
            if p.key not in pools:
                lines = capacity.pool_lines(
                    client, observer, found, p.key, p.kind, p.id, org, scope.TelephonyOptions(), 5
                )
                pools[p.key] = lines
    demands: list[Demand] = [capacity.demand_of(c, org.max_calls_per_agent) for c in campaigns.values()]

    paced = sorted(c.id for c in campaigns.values() if c.dialing_mode != "agentless")

    def whole_org(everyone: bool) -> Any:
        spans: dict[str, list[tuple[float, float]]] = {}
        campaigns_of: dict[str, list[str]] = {}
        for number, agent in enumerate(agent_schedules):
            user = agent.user.id
            serves = [c.id for c in campaigns.values() if c.queue_id and user in members[c.queue_id]]
            if everyone and not serves:  # stress: put the agents of campaign-less units on one too
                serves = [paced[number % len(paced)]]
            if serves:
                campaigns_of[user] = serves
                spans[user] = capacity.on_queue_spans(agent)
        counts = capacity.count_agents(week, spans, campaigns_of)
        return capacity.evaluate(week, demands, list(pools.values()), counts)

    report, pure = _timed(lambda: whole_org(everyone=False))
    _, stress = _timed(lambda: whole_org(everyone=True))

    # --- the check as the pipeline runs it, schedule by schedule ---------------------------------------
    calls_before = client.calls_made

    def per_schedule() -> int:
        over = 0
        shared = Observer(MemoryJobStore(), clock.now())  # a burst: observations shared between jobs
        for s in schedules:
            checked = capacity.assess(
                client,
                shared,
                scopes[s.id],
                business_unit_id=s.business_unit_id,
                week_id=s.week_id.isoformat(),
                schedule_id=s.id,
            )
            over += checked.intervals_over
        return over

    schedules_over, whole = _timed(per_schedule, runs=3)
    calls = (client.calls_made - calls_before) / 3

    figures: dict[str, Any] = {
        "agents": len(agent_schedules),
        "agents_on_outbound": sum(
            1 for a in agent_schedules if any(a.user.id in m for m in members.values())
        ),
        "intervals": week.intervals,
        "campaigns": len(campaigns),
        "pools": len(pools),
        "intervals_over": report.intervals_over,
        "computation": pure,
        "computation_all_agents_dialing": stress,
        "per_schedule": {
            "schedules": len(schedules),
            **{k: v for k, v in whole.items()},
            "cpu_ms_per_schedule": whole["cpu_ms_mean"] / len(schedules),
            "genesys_calls_per_schedule": calls / len(schedules),
            "intervals_over": schedules_over,
        },
    }
    _print(figures)
    return figures


def _print(f: dict[str, Any]) -> None:
    each = f["per_schedule"]
    print(
        f"large.yaml: {f['agents']} agents ({f['agents_on_outbound']} on outbound queues), {f['campaigns']} "
        f"campaigns in scope, {f['pools']} sites, {f['intervals']} 15-minute intervals"
    )
    print(f"{'':38} {'cpu ms (best / mean)':>22} {'wall ms (best / mean)':>23}")
    for label, row in (
        ("computation, whole org at once", f["computation"]),
        ("computation, all 2,000 agents dialing", f["computation_all_agents_dialing"]),
        ("whole check, 50 schedules", each),
    ):
        cpu = f"{row['cpu_ms_best']:>10.1f} / {row['cpu_ms_mean']:<9.1f}"
        wall = f"{row['wall_ms_best']:>10.1f} / {row['wall_ms_mean']:<9.1f}"
        print(f"{label:38} {cpu} {wall}")
    print(
        f"per schedule: {each['cpu_ms_per_schedule']:.1f} ms cpu, "
        f"{each['genesys_calls_per_schedule']:.1f} Genesys calls (reads in-process, parsing included); "
        f"intervals over capacity: {f['intervals_over']}"
    )


if __name__ == "__main__":
    run()
