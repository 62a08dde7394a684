"""What one seed draws for its world: the org's events (a telephony change, maybe another writer and
failing publish operations) and ServiceNow's requests (duplicates, joiners, a reused key, a cancel,
a dry run). The faults at the boundaries are drawn as the world runs (faults.py).

The draws come from the world's `rng`, in this order: another order would make other worlds of the
same seeds.
"""

from __future__ import annotations

import copy
import functools
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from wfm_publish_local.chaos.virtual import World

SCENARIO = Path(__file__).resolve().parents[3] / "scenarios" / "demo.yaml"


@functools.cache
def _base_raw() -> dict[str, Any]:
    raw: dict[str, Any] = yaml.safe_load(SCENARIO.read_text())
    return raw


def plan_scenario(rng: random.Random, seed: int) -> dict[str, Any]:
    """The demo org with the seed's events, as a raw scenario."""
    raw = copy.deepcopy(_base_raw())
    change = rng.choice([0.0, 5.0, 30.0, 120.0, 600.0, 1800.0])
    start = rng.uniform(0.0, 20.0)
    events: list[dict[str, Any]] = []
    if change:
        events.append(
            {
                "type": "telephonyChange",
                "kind": "softwareUpdate",
                "entityId": "edge-demo-1",
                "start": start,
                "end": start + change,
            }
        )
    if rng.random() < 0.5:
        events.append({"type": "writerEdit", "scheduleId": "sched-demo", "trigger": "beforeFirstUpdate"})
    if rng.random() < 0.3:
        events.append(
            {
                "type": "publishOperation",
                "scheduleId": "sched-demo",
                "durationSeconds": rng.choice([0.5, 3.0, 20.0]),
                "failFirst": rng.choice([0, 1, 2]),
            }
        )
    raw["events"] = events
    raw["seed"] = seed
    return raw


def plan_requests(world: World) -> None:
    """ServiceNow's requests (and a cancel), put on the world's agenda."""
    from wfm_publish_local.demo import SERVICENOW_BODY

    rng = world.rng
    base: dict[str, Any] = {**SERVICENOW_BODY, "publishTime": None}
    deadline = rng.choice([None, 600, 3600])
    if deadline:
        base["deadlineSeconds"] = deadline
    base["telephonySync"] = {"enabled": True, "retryCount": rng.choice([1, 3]), "delayMs": 2000}
    own = {**base, "callback": {"table": "change_request", "sysId": "a" * 32}}
    other_body = {**own, "validationMode": "deferred"}
    joiner = {**base, "callback": {"table": "incident", "sysId": "b" * 32}}
    conflicting = {**base, "validationMode": "off", "callback": {"table": "incident", "sysId": "c" * 32}}
    t = 0.0
    world.ask(t, "k-1", "a", own)
    for _ in range(rng.randint(0, 3)):  # ServiceNow sends it again (a duplicate), maybe at once
        world.ask(rng.choice([t, rng.uniform(0, 60)]), "k-1", "a", own)
    if rng.random() < 0.5:
        world.ask(rng.uniform(0, 120), "k-1", "b", other_body)  # the same key, another body: 422
    if rng.random() < 0.6:
        world.ask(rng.uniform(0, 120), "k-2", "a", joiner)
    if rng.random() < 0.3:
        world.ask(rng.uniform(0, 120), "k-3", "a", conflicting)
    if rng.random() < 0.3:
        world.at(rng.uniform(0, 300), world.cancel_one, "cancel")
    # A dry run of the same schedule: never claims, never publishes.
    if rng.random() < 0.3:
        dry = {**base, "dryRun": True, "callback": {"table": "problem", "sysId": "d" * 32}}
        world.ask(rng.uniform(0, 120), "k-4", "a", dry)
