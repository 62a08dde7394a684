"""The run's Genesys org: a generated scenario with short telephony changes, writer edits and faults."""

from __future__ import annotations

import random
from typing import Any

from wfm_publish_local.chaos.stack.options import WEEK, ChaosOptions
from wfm_publish_local.simulator.loading import parse_scenario
from wfm_publish_local.simulator.scenario import Scenario


def build_scenario(options: ChaosOptions) -> Scenario:
    """Schedules across a few business units and sites, short telephony changes, writer edits, Genesys
    faults; and a business unit whose Edge never settles (the deadline jobs' schedules)."""
    rng = random.Random(options.seed)
    bus, sites = options.business_units, max(2, options.business_units // 2)
    send_window = options.jobs / options.send_rate
    raw: dict[str, Any] = {
        "name": "chaos",
        "seed": options.seed,
        "today": "2023-10-25",
        "settleWindowSeconds": 1,
        "publishDurationSeconds": 0.5,
        "rateLimit": {"enabled": False},  # 429s come from the faults below, with Retry-After
        "businessUnits": [],
        "managementUnits": [],
        "agents": [],
        "schedules": [],
        "queues": [],
        "sites": [],
        "edges": [],
        "trunkBases": [],
        "trunks": [],
        "campaigns": [],
        "events": [],
        "faults": [],
    }
    for s in range(sites + 1):  # the last site is the one that never settles
        site = f"chaos-site-{s}" if s < sites else "chaos-site-stuck"
        raw["sites"].append({"id": site, "name": site})
        raw["edges"].append({"id": f"{site}-edge", "siteId": site, "edgeGroupId": f"{site}-group"})
        raw["trunkBases"].append({"id": f"{site}-base", "maxConcurrentCalls": 500})
        for x in (1, 2):
            raw["trunks"].append(
                {"id": f"{site}-trunk-{x}", "edgeId": f"{site}-edge", "trunkBaseId": f"{site}-base"}
            )
    for b in range(bus + 1):
        bu = f"chaos-bu-{b}" if b < bus else "chaos-bu-stuck"
        site = f"chaos-site-{b % sites}" if b < bus else "chaos-site-stuck"
        agents = [f"{bu}-agent-{a}" for a in range(3)]
        raw["businessUnits"].append({"id": bu, "name": bu, "timeZone": "UTC"})
        raw["agents"] += [{"id": a} for a in agents]
        raw["managementUnits"].append({"id": f"{bu}-mu", "businessUnitId": bu, "agents": agents})
        raw["queues"].append({"id": f"{bu}-queue", "memberManagementUnitIds": [f"{bu}-mu"]})
        raw["campaigns"].append(
            {"id": f"{bu}-campaign", "queueId": f"{bu}-queue", "siteId": site, "maxCallsPerAgent": 2}
        )
    shift = {"days": ["Mon", "Tue", "Wed", "Thu", "Fri"], "start": "08:00", "lengthMinutes": 480}
    for i in range(options.jobs):
        raw["schedules"].append(
            {
                "id": schedule_id(i),
                "businessUnitId": f"chaos-bu-{i % bus}",
                "weekId": WEEK,
                "version": rng.randint(1, 5),
                "published": rng.random() < 0.2,
                "shifts": [shift],
            }
        )
        if rng.random() < 0.15:  # another writer gets in between our read and our update: stale 409
            raw["events"].append(
                {"type": "writerEdit", "scheduleId": schedule_id(i), "trigger": "beforeFirstUpdate"}
            )
        elif rng.random() < 0.05:
            at = rng.uniform(0, send_window + 10)
            raw["events"].append({"type": "writerEdit", "scheduleId": schedule_id(i), "at": round(at, 2)})
    for k in range(options.stuck_jobs):
        raw["schedules"].append(
            {
                "id": f"chaos-sched-stuck-{k}",
                "businessUnitId": "chaos-bu-stuck",
                "weekId": WEEK,
                "shifts": [shift],
            }
        )
    raw["events"].append(
        {
            "type": "telephonyChange",
            "kind": "softwareUpdate",
            "entityId": "chaos-site-stuck-edge",
            "start": 0,
            "end": 1e7,
        }
    )
    # Short Edge updates and trunk drops while the jobs run: they wait, or get a telephony 409.
    for s in range(sites):
        start = rng.uniform(0, 3)
        while start < send_window + 20:
            kind, entity = rng.choice(
                [("softwareUpdate", f"chaos-site-{s}-edge"), ("trunkDisconnected", f"chaos-site-{s}-trunk-1")]
            )
            length = rng.uniform(0.5, 3.0)
            raw["events"].append(
                {
                    "type": "telephonyChange",
                    "kind": kind,
                    "entityId": entity,
                    "start": round(start, 2),
                    "end": round(start + length, 2),
                }
            )
            start += length + rng.uniform(8, 25)
    if options.faults:
        raw["faults"] = genesys_faults()
    return parse_scenario(raw, source="chaos")


def genesys_faults() -> list[dict[str, Any]]:
    """Genesys trouble on the paths each step reads. None on the update POST itself but a 429: an
    update whose answer is lost is confirmed for up to 3 minutes (waiting.Timing.confirm_timeout),
    which would hold a small run for that long."""
    schedule = "/api/v2/workforcemanagement/businessunits/*/schedules/*"
    edges = "/api/v2/telephony/providers/edges*"
    return [
        {"path": schedule, "method": "GET", "status": 503, "probability": 0.03},
        {"path": schedule, "method": "GET", "drop": True, "probability": 0.01},
        # two reads that outlast the client's read timeout (10 s)
        {"path": schedule, "method": "GET", "sequence": ["pass", "pass"], "latencySeconds": 10.5, "after": 5},
        {"path": "*/update/uploadurl", "method": "POST", "status": 500, "probability": 0.03},
        {"path": "*/update/uploadurl", "method": "POST", "drop": True, "probability": 0.01},
        {
            "path": "*/schedules/*/update",
            "method": "POST",
            "status": 429,
            "probability": 0.03,
            "retryAfter": 1,
        },
        {"path": edges, "method": "GET", "status": 429, "probability": 0.02, "retryAfter": 1},
        {"path": edges, "method": "GET", "status": 502, "probability": 0.02},
        {"path": "/api/v2/outbound/*", "method": "GET", "status": 503, "probability": 0.02},
    ]


def schedule_id(i: int) -> str:
    return f"chaos-sched-{i:05d}"
