"""Big orgs from a few numbers (the scenario's `generate:` section), the same org for the same seed.

Generated ids follow a fixed scheme so events and faults in the same file can name them:
`gen-bu-001`, `gen-mu-001-1`, `gen-agent-00001`, `gen-sched-001`, `gen-queue-001`, `gen-site-01`,
`gen-edge-01-1`, `gen-trunkbase-01`, `gen-trunk-01-1-1`, `gen-campaign-001` (1-based).
"""

from __future__ import annotations

import random
from typing import Any

from wfm_publish_local.simulator.scenario import Generate, Scenario

_FIRST = (
    "Ana",
    "Ben",
    "Chloe",
    "Dev",
    "Ela",
    "Finn",
    "Gia",
    "Hugo",
    "Iris",
    "Jon",
    "Kai",
    "Lena",
    "Mo",
    "Nia",
)
_LAST = (
    "Smith",
    "Jones",
    "Patel",
    "Garcia",
    "Kim",
    "Novak",
    "Silva",
    "Okafor",
    "Berg",
    "Rossi",
    "Ito",
    "Haas",
)
_MODES = ("predictive", "predictive", "power", "progressive", "preview")


def expand(scenario: Scenario) -> Scenario:
    """The scenario with the generated org appended to what it lists by hand."""
    spec = scenario.generate
    if spec is None:
        return scenario
    rng = random.Random(spec.seed)
    raw = scenario.model_dump(by_alias=True, exclude={"generate"}, exclude_none=True)
    _people(spec, rng, raw)
    _telephony(spec, rng, raw)
    _campaigns(spec, rng, raw)
    # Validate again: the generated part goes through the same checks as a hand-written one.
    return Scenario.model_validate(raw)


def _people(spec: Generate, rng: random.Random, raw: dict[str, Any]) -> None:
    agent_number = 0
    for b in range(1, spec.business_units + 1):
        bu = f"gen-bu-{b:03d}"
        raw["businessUnits"].append(
            {"id": bu, "name": f"Business Unit {b}", "timeZone": rng.choice(spec.time_zones)}
        )
        mus = []
        for m in range(1, spec.management_units_per_business_unit + 1):
            agents = []
            for _ in range(spec.agents_per_management_unit):
                agent_number += 1
                agent = f"gen-agent-{agent_number:05d}"
                raw["agents"].append({"id": agent, "name": f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"})
                agents.append(agent)
            mu = f"gen-mu-{b:03d}-{m}"
            raw["managementUnits"].append(
                {"id": mu, "name": f"BU {b} team {m}", "businessUnitId": bu, "agents": agents}
            )
            mus.append(mu)
        raw["queues"].append(
            {"id": f"gen-queue-{b:03d}", "name": f"Outbound {b}", "memberManagementUnitIds": mus}
        )
        raw["schedules"].append(
            {
                "id": f"gen-sched-{b:03d}",
                "businessUnitId": bu,
                "weekId": spec.week_id,
                "version": rng.randint(1, 6),
                "published": rng.random() < spec.published_share,
                "description": f"BU {b} week of {spec.week_id}",
                "shifts": [
                    {
                        "days": ["Mon", "Tue", "Wed", "Thu", "Fri"],
                        "start": rng.choice(("07:00", "08:00", "09:00")),
                        "lengthMinutes": 480,
                        "staggerMinutes": 30,
                        "staggerSlots": 4,
                    }
                ],
            }
        )


def _telephony(spec: Generate, rng: random.Random, raw: dict[str, Any]) -> None:
    low, high = spec.max_concurrent_calls
    for s in range(1, spec.sites + 1):
        site = f"gen-site-{s:02d}"
        raw["sites"].append({"id": site, "name": f"Site {s}"})
        base = f"gen-trunkbase-{s:02d}"
        raw["trunkBases"].append(
            {"id": base, "name": f"Carrier {s}", "maxConcurrentCalls": rng.randint(low, high)}
        )
        for e in range(1, spec.edges_per_site + 1):
            edge = f"gen-edge-{s:02d}-{e}"
            raw["edges"].append(
                {
                    "id": edge,
                    "name": f"EDGE-{s:02d}-{e}",
                    "siteId": site,
                    "edgeGroupId": f"gen-edgegroup-{s:02d}",
                }
            )
            for x in range(1, spec.external_trunks_per_edge + 1):
                raw["trunks"].append(
                    {
                        "id": f"gen-trunk-{s:02d}-{e}-{x}",
                        "name": f"SIP {s:02d}-{e}-{x}",
                        "edgeId": edge,
                        "trunkBaseId": base,
                        "outboundCalls": rng.randint(0, 20),
                        "inboundCalls": rng.randint(0, 10),
                    }
                )


def _campaigns(spec: Generate, rng: random.Random, raw: dict[str, Any]) -> None:
    for c in range(1, spec.campaigns + 1):
        queue = f"gen-queue-{(c - 1) % spec.business_units + 1:03d}"
        mode = "agentless" if c % 10 == 0 else rng.choice(_MODES)
        campaign: dict[str, Any] = {
            "id": f"gen-campaign-{c:03d}",
            "name": f"Campaign {c}",
            "dialingMode": mode,
            "campaignStatus": "off" if c % 7 == 0 else "on",
            "queueId": queue,
            "siteId": f"gen-site-{(c - 1) % spec.sites + 1:02d}",
        }
        if mode == "agentless":
            campaign["outboundLineCount"] = rng.randint(5, 20)
        else:
            campaign["maxCallsPerAgent"] = rng.randint(1, 4)
        raw["campaigns"].append(campaign)
