"""What one seed draws for its world: the org (business units, schedules sharing Edges, the telephony
changes, other writers, failing publish operations), the deployment's settings, and ServiceNow's
records and what they send (duplicates, joiners, keys reused with other bodies, progress callbacks,
later publish times, cancels, dry runs, an operator's commands). The faults at the boundaries are
drawn as the world runs (faults.py).

The draws come from the world's `rng`, in this order: another order would make other worlds of the
same seeds.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from wfm_publish_local.chaos.virtual import World

HOUR = 3600.0
DAY = 86_400.0
# Worlds whose deployment gives jobs two days (JOB_DEADLINE_SECONDS), with an Edge down for more than a day.
LONG_WORLDS = 0.04
# The org: two business units; schedules A and B (bu-1) dial through site-1's two Edges, C (bu-2)
# through site-1 too or site-2's own Edge (drawn): telephony shared between schedules.
SCHEDULES = {
    "sched-a": ("bu-1", "2023-11-20", "mu-1"),
    "sched-b": ("bu-1", "2023-11-20", "mu-2"),
    "sched-c": ("bu-2", "2023-11-19", "mu-3"),
}
EDGES = {"edge-1": "site-1", "edge-2": "site-1", "edge-3": "site-2"}
TRUNKS = {"trunk-1": ("edge-1", "tb-1"), "trunk-2": ("edge-2", "tb-1"), "trunk-3": ("edge-3", "tb-2")}


@dataclass
class Settings:
    """The deployment's settings a world draws (template parameters)."""

    deadline_seconds: float = 8 * HOUR  # JOB_DEADLINE_SECONDS
    events: bool = False  # a Genesys partner event bus: update outcomes read, telephony events wake jobs
    long: bool = False


@dataclass
class Body:
    """One body a ServiceNow record may send under its key."""

    name: str
    wire: dict[str, Any]


@dataclass
class Record:
    """A ServiceNow record that asks for publishes: its key (the REST message's Idempotency-Key), the
    bodies it may send (the first, and others if a person edits the record and sends it again)."""

    key: str
    bodies: list[Body] = field(default_factory=list)
    edit_on_failure: float = 0.0  # after a failed answer, the chance the next try carries the next body


def plan_scenario(rng: random.Random, seed: int) -> tuple[dict[str, Any], Settings]:
    """The org with the seed's events, as a raw scenario, and the deployment's settings."""
    settings = Settings(long=rng.random() < LONG_WORLDS)
    if settings.long:
        settings.deadline_seconds = 2 * DAY
    c_site = rng.choice(["site-1", "site-2"])
    raw: dict[str, Any] = {
        "name": "chaos",
        "seed": seed,
        "today": "2023-11-14",
        "credentials": {"clientId": "local-client", "clientSecret": "local-secret", "expiresIn": 86400},
        "settleWindowSeconds": 2,
        "publishDurationSeconds": 1,
        "businessUnits": [
            {"id": "bu-1", "name": "London", "timeZone": "Europe/London", "startDayOfWeek": "Monday"},
            {"id": "bu-2", "name": "New York", "timeZone": "America/New_York", "startDayOfWeek": "Sunday"},
        ],
        "managementUnits": [
            {"id": "mu-1", "businessUnitId": "bu-1", "agents": ["agent-1", "agent-2", "agent-3"]},
            {"id": "mu-2", "businessUnitId": "bu-1", "agents": ["agent-4", "agent-5"]},
            {"id": "mu-3", "businessUnitId": "bu-2", "agents": ["agent-6", "agent-7"]},
        ],
        "agents": [{"id": f"agent-{i}"} for i in range(1, 8)],
        "schedules": [
            {
                "id": sid,
                "businessUnitId": bu,
                "weekId": week,
                "managementUnitIds": [mu],
                "version": rng.randint(1, 5),
                "published": False,
                "shifts": [
                    {"days": ["Mon", "Tue", "Wed", "Thu", "Fri"], "start": "09:00", "lengthMinutes": 480}
                ],
            }
            for sid, (bu, week, mu) in SCHEDULES.items()
        ],
        "queues": [
            {"id": "queue-1", "memberManagementUnitIds": ["mu-1", "mu-2"]},
            {"id": "queue-2", "memberManagementUnitIds": ["mu-3"]},
        ],
        "sites": [{"id": "site-1"}, {"id": "site-2"}],
        "edges": [{"id": e, "siteId": s} for e, s in EDGES.items()],
        "trunkBases": [{"id": "tb-1", "maxConcurrentCalls": 30}, {"id": "tb-2", "maxConcurrentCalls": 30}],
        "trunks": [
            {"id": t, "edgeId": e, "trunkBaseId": b, "outboundCalls": 2} for t, (e, b) in TRUNKS.items()
        ],
        "campaigns": [
            {"id": "campaign-1", "queueId": "queue-1", "siteId": "site-1", "maxCallsPerAgent": 2},
            {"id": "campaign-2", "queueId": "queue-2", "siteId": c_site, "maxCallsPerAgent": 2},
        ],
        "outboundSettings": {"maxLineUtilization": 0.9, "maxCallsPerAgent": 2},
    }
    events: list[dict[str, Any]] = []
    for _ in range(rng.choice([0, 1, 1, 1, 2])):
        events.append(_telephony_change(rng))
    if settings.long:  # an Edge both sites' first schedules share, down for more than a day
        start = rng.uniform(0.0, 60.0)
        events.append(
            {
                "type": "telephonyChange",
                "kind": "edgeNotActive",
                "entityId": "edge-1",
                "start": start,
                "end": start + rng.uniform(30 * HOUR, 40 * HOUR),
            }
        )
    for sid in SCHEDULES:
        if rng.random() < 0.4:
            if rng.random() < 0.7:
                events.append({"type": "writerEdit", "scheduleId": sid, "trigger": "beforeFirstUpdate"})
            else:
                events.append({"type": "writerEdit", "scheduleId": sid, "at": rng.uniform(0.0, 300.0)})
        if rng.random() < 0.3:
            events.append(
                {
                    "type": "publishOperation",
                    "scheduleId": sid,
                    "durationSeconds": rng.choice([0.5, 3.0, 20.0]),
                    "failFirst": rng.choice([0, 1, 2]),
                    "cancelFirst": rng.choice([0, 0, 1]),
                }
            )
    raw["events"] = events
    settings.events = random.Random(seed ^ 0x5EED).random() < 0.5
    return raw, settings


def _telephony_change(rng: random.Random) -> dict[str, Any]:
    kind = rng.choice(
        ["softwareUpdate", "softwareUpdate", "edgeNotActive", "trunkDisconnected", "trunkBaseResaved"]
    )
    entity = {
        "softwareUpdate": rng.choice(list(EDGES)),
        "edgeNotActive": rng.choice(list(EDGES)),
        "trunkDisconnected": rng.choice(list(TRUNKS)),
        "trunkBaseResaved": rng.choice(["tb-1", "tb-2"]),
    }[kind]
    start = rng.choice([rng.uniform(0.0, 20.0), rng.uniform(0.0, 600.0)])
    length = rng.choice([0.0, 5.0, 30.0, 120.0, 600.0, 1800.0])
    return {
        "type": "telephonyChange",
        "kind": kind,
        "entityId": entity,
        "start": start,
        "end": start + length,
    }


def _callback(rng: random.Random, table: str, letter: str, gone: bool = False) -> dict[str, Any]:
    """A callback record; `gone`: a record that no longer exists (ServiceNow answers 404, for good)."""
    callback: dict[str, Any] = {"table": table, "sysId": ("f" if gone else letter) * 32}
    if rng.random() < 0.5:
        callback["progress"] = True
    return callback


def plan_requests(world: World) -> None:
    """ServiceNow's records and what they send (with a cancel and an operator), on the world's agenda."""
    _Planner(world).plan()


class _Planner:
    def __init__(self, world: World) -> None:
        self.world = world
        self.rng = world.rng
        self.schedules = ["sched-a", "sched-b", "sched-c"][: self.rng.choice([1, 2, 2, 3])]
        self.letters = iter("abcde0123456789")  # callback sys_ids: 32 of one hex digit ("f" is gone)
        self.options = self._options()

    def body(self, schedule: str, **more: Any) -> dict[str, Any]:
        bu, week, _ = SCHEDULES[schedule]
        wire: dict[str, Any] = {"scheduleId": schedule, "validationMode": "strict"}
        if self.rng.random() < 0.7:  # else resolved from Genesys
            wire |= {"businessUnitId": bu, "weekId": week}
        return wire | more

    def _options(self) -> dict[str, dict[str, Any]]:
        """The options each schedule's publishes agree on (so a second record for it joins the first)."""
        rng, now = self.rng, self.world.clock.now()
        options: dict[str, dict[str, Any]] = {}
        for schedule in self.schedules:
            chosen: dict[str, Any] = {
                "telephonySync": {"enabled": True, "retryCount": rng.choice([1, 3]), "delayMs": 2000}
            }
            deadline = rng.choice([None, None, 600, 3600])
            if deadline:
                chosen["deadlineSeconds"] = deadline
            if rng.random() < 0.15:  # a later publishTime: the first look waits for it (hops past 900 s)
                at = now + rng.choice([120.0, 1200.0, 2 * HOUR])
                chosen["publishTime"] = (
                    datetime.fromtimestamp(round(at), UTC).isoformat().replace("+00:00", "Z")
                )
            options[schedule] = chosen
        if self.world.settings.long:
            options["sched-a"].pop("deadlineSeconds", None)  # the deployment's two days
            options["sched-a"].pop("publishTime", None)
            if "sched-b" in options:
                options["sched-b"]["deadlineSeconds"] = 3600  # shorter, and watching the same Edge later
                options["sched-b"].pop("publishTime", None)
        return options

    def record(self, key: str, schedule: str, table: str, *, gone: bool = False, **more: Any) -> Record:
        """A record for `schedule` with its callback, and the body a person may edit it into."""
        callback = _callback(self.rng, table, next(self.letters), gone=gone)
        record = Record(key, edit_on_failure=0.5)
        record.bodies.append(
            Body("a", self.body(schedule, **self.options[schedule], callback=callback, **more))
        )
        record.bodies.append(self._edited(record.bodies[0]))
        return record

    def plan(self) -> None:
        world, rng, first = self.world, self.rng, self.schedules[0]
        own = self.record("k-1", first, "change_request")
        world.plan_record(own, 0.0, sends=1 + rng.randint(0, 3))
        if rng.random() < 0.3:  # a person edits the record and sends it again, whatever the first answer was
            world.plan_send(own, 1, rng.uniform(0.0, 120.0))
        if rng.random() < 0.6:  # joins the first: the same options, its own callback
            joiner = self.record("k-2", first, "incident", gone=rng.random() < 0.1)
            world.plan_record(joiner, rng.uniform(0.0, 120.0), sends=1 + rng.randint(0, 1))
        if rng.random() < 0.3:  # the same schedule with other options: 409 JOIN_CONFLICT while the first runs
            other = Record("k-3")
            callback = _callback(rng, "incident", next(self.letters))
            other.bodies.append(Body("a", self.body(first, validationMode="off", callback=callback)))
            world.plan_record(other, rng.uniform(0.0, 120.0))
        for i, schedule in enumerate(self.schedules[1:], start=4):  # the other schedules, a record each
            record = self.record(f"k-{i}", schedule, "change_request")
            at = rng.uniform(600.0, 4 * HOUR) if world.settings.long else rng.uniform(0.0, 180.0)
            world.plan_record(record, at, sends=1 + rng.randint(0, 1))
        if rng.random() < 0.25:  # a dry run of a schedule: never claims, never publishes
            dry = Record("k-9")
            schedule = rng.choice(self.schedules)
            callback = _callback(rng, "problem", next(self.letters))
            dry.bodies.append(Body("a", self.body(schedule, dryRun=True, callback=callback)))
            world.plan_record(dry, rng.uniform(0.0, 120.0))
        for _ in range(rng.choice([0, 0, 1, 2])):
            world.at(rng.uniform(0.0, 600.0), world.cancel_one, "cancel")
        if rng.random() < 0.3:  # an operator: `ops notify` on an ended job, `ops cancel`, `dlq redrive`
            world.at(rng.uniform(30.0, 900.0), world.operator, "operator")
        if rng.random() < 0.2:  # the weekly run: a job per business unit, for next week's schedule
            at = rng.uniform(0.0, 300.0)
            world.at(at, world.weekly_run, "weekly")
            if rng.random() < 0.2:  # the scheduler delivers the event twice
                world.at(at + rng.choice([0.0, rng.uniform(0.0, 60.0)]), world.weekly_run, "weekly")

    def _edited(self, first: Body) -> Body:
        """The record edited by a person: the same key, another body (another schedule, other options,
        or another callback)."""
        rng, wire = self.rng, dict(first.wire)
        kind = rng.choice(["schedule", "schedule", "options", "callback", "callback"])
        others = [s for s in SCHEDULES if s != wire["scheduleId"]]
        if kind == "schedule":
            schedule = rng.choice([s for s in self.schedules if s in others] or others)
            wire = self.body(schedule, **self.options.get(schedule, {}), callback=wire.get("callback"))
        elif kind == "options":
            wire["validationMode"] = "deferred"
        else:
            wire["callback"] = _callback(rng, "change_request", next(self.letters))
        return Body("b", wire)
