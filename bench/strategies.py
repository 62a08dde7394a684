"""Wait strategies side by side, in virtual time: ours against the usual retry policies.

Every policy publishes the same schedule of the same org (scenarios/demo.yaml, with the default 30 s
settle window and no other writer) while one Edge software update of a given duration holds it. A
trial draws one moment for the request, uniform over the change (the request always arrives while
the change runs, which is when a publish meets the 409); every policy gets the same moments.

- ours: the pipeline itself (wfm_publish_local.virtual.VirtualRun: intake, store, SQS and the
  simulator on one virtual clock, through the real GenesysClient), with the default request.
- the others are plain loops that call the real GenesysClient.publish against the same simulator in
  the same virtual time, sleeping (advancing the clock) between attempts.

Overshoot is measured from the first moment Genesys would have accepted the publish (change end +
settle window) to the moment it did accept ours (the update POST answered Processing).
"""

from __future__ import annotations

import copy
import itertools
import math
import os
import random
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from wfm_publish.clock import VirtualClock
from wfm_publish.errors import GenesysConflict, GenesysError, GenesysRateLimited, GenesysTransient
from wfm_publish.models import JobStatus, PublishRequest
from wfm_publish.waiting import Timing
from wfm_publish_local.demo import SERVICENOW_BODY
from wfm_publish_local.simulator import GenesysSimulator, Scenario, parse_scenario
from wfm_publish_local.virtual import VirtualRun, virtual_client

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "scenarios" / "demo.yaml"

DURATIONS: list[tuple[str, float]] = [
    ("2 s", 2),
    ("15 s", 15),
    ("45 s", 45),
    ("2 min", 120),
    ("10 min", 600),
    ("40 min", 2400),
    ("2 h", 7200),
    ("6 h", 21600),
]
TRIALS = 150
SETTLE_WINDOW = 30.0  # SETTLE_WINDOW_SECONDS' default, and the simulator's
DEADLINE = 8 * 3600.0  # JOB_DEADLINE_SECONDS' default
CHANGE_START = 60.0  # simulator time the change starts at (any value: only offsets matter)
EDGE = "edge-demo-1"  # the Edge of the demo schedule's outbound campaign
BU, WEEK, SCHEDULE = "bu-demo", "2023-10-23", "sched-demo"
# The ServiceNow seed request, as ServiceNow sends it (plus the ids, so nothing else is measured).
REQUEST = SERVICENOW_BODY  # the ServiceNow REST message, as the demo sends it
UPDATE_ROUTE = (
    "POST /api/v2/workforcemanagement/businessunits/{buId}/weeks/{weekId}/schedules/{scheduleId}/update"
)
PUBLISH_ROUTES = {UPDATE_ROUTE, UPDATE_ROUTE + "/uploadurl", "PUT /__uploads/{uploadKey}"}
TOKEN_ROUTE = "POST /oauth/token"


# --- the policies compared ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Policy:
    key: str
    name: str
    description: str


OURS = Policy(
    "ours",
    "ours",
    "delayed validation: readiness reads spaced by the settle window plus 10% of the time waited "
    "(at most window + 115 s), an exact wait when readiness knows when the window closes, one publish "
    "once ready; 8 h deadline",
)
SEED = Policy("seed", "seed 3x5s", "publish, then 3 retries 5 s apart (ServiceNow's telephonySync)")
EXPONENTIAL = Policy(
    "exponential",
    "exp backoff",
    "exponential backoff with full jitter: retry n waits U(0, min(900, 1 s * 2^n)), until the 8 h deadline",
)
STEP_FUNCTIONS = Policy(
    "stepFunctions",
    "Step Functions",
    "Step Functions Retrier: IntervalSeconds 5, BackoffRate 2, MaxDelaySeconds 900, JitterStrategy FULL, "
    "MaxAttempts = as many retries as the un-jittered schedule fits in the 8 h deadline",
)
EVENTS = Policy(
    "events",
    "ours + events",
    "ours with Genesys' telephony events (the EventBridge integration): the change's end event wakes the "
    "job for a readiness check at once; while telephony still changes, a safety poll every 2400 s "
    "(Timing.safety_poll) in case an event is lost",
)
EVENTS_LOST = Policy(
    "eventsLost10",
    "events, 10% lost",
    "ours + events with each telephony event lost with probability 0.1 (the safety poll catches the job)",
)
EVENTS_SILENT = Policy(
    "eventsAllLost",
    "events, all lost",
    "ours + events with every telephony event lost: an integration that delivers no telephony topic "
    "(not documented either way for a client-credentials integration); jobs hear no event for the "
    "change that holds them, so they poll",
)
DURABLE = Policy(
    "durable",
    "durable wait",
    "AWS Lambda durable functions' wait_for_condition with the default wait strategy "
    "(create_wait_strategy(WaitStrategyConfig(...)): initial_delay 5 s, backoff_rate 1.5, max_delay 5 min, "
    "jitter FULL, max_attempts 60), each check a publish attempt",
)
POLICIES = [OURS, EVENTS, EVENTS_LOST, EVENTS_SILENT, SEED, EXPONENTIAL, STEP_FUNCTIONS, DURABLE]
PIPELINE: dict[str, dict[str, Any]] = {
    OURS.key: {},
    EVENTS.key: {"events": True},
    EVENTS_LOST.key: {"events": True, "event_loss": 0.1},
    EVENTS_SILENT.key: {"events": True, "event_loss": 1.0},
}


def seed_delays(_rng: random.Random) -> Iterator[float]:
    yield from (5.0, 5.0, 5.0)


def exponential_delays(rng: random.Random) -> Iterator[float]:
    for n in itertools.count():
        yield rng.uniform(0.0, min(900.0, 1.0 * 2.0**n))


def step_functions_max_attempts(deadline: float = DEADLINE) -> int:
    """Retries whose un-jittered delays (5 s * 2^n, at most 900 s) all fit in the deadline."""
    total, attempts = 0.0, 0
    while total + min(900.0, 5.0 * 2.0**attempts) <= deadline:
        total += min(900.0, 5.0 * 2.0**attempts)
        attempts += 1
    return attempts


def step_functions_delays(rng: random.Random) -> Iterator[float]:
    for n in range(step_functions_max_attempts()):
        yield rng.uniform(0.0, min(900.0, 5.0 * 2.0**n))


# aws/aws-durable-execution-sdk-python, packages/aws-durable-execution-sdk-python/src/
# aws_durable_execution_sdk_python/waits.py (WaitStrategyConfig, create_wait_strategy), at f7cc397.
DURABLE_INITIAL = 5.0
DURABLE_RATE = 1.5
DURABLE_MAX = 300.0
DURABLE_ATTEMPTS = 60


def durable_delays(rng: random.Random) -> Iterator[float]:
    """The delay after check n (n = attempts_made, from 1): ceil(U(0, min(5 * 1.5^(n-1), 300))), at
    least 1 s; after the 60th check the strategy raises WaitForConditionError (the job fails)."""
    for attempts_made in range(1, DURABLE_ATTEMPTS):
        base = min(DURABLE_INITIAL * DURABLE_RATE ** (attempts_made - 1), DURABLE_MAX)
        yield float(max(1, math.ceil(rng.random() * base)))


LOOPS: dict[str, Callable[[random.Random], Iterator[float]]] = {
    SEED.key: seed_delays,
    EXPONENTIAL.key: exponential_delays,
    STEP_FUNCTIONS.key: step_functions_delays,
    DURABLE.key: durable_delays,
}


# --- one trial -------------------------------------------------------------------------------------------


@dataclass
class Trial:
    published: bool
    overshoot: float | None  # seconds after the settle point; None when it never published
    reads: int
    publishes: int  # update POSTs (each after an upload URL and an upload)
    tokens: int
    messages: int  # SQS messages sent (ours only; the loops hold a worker instead)
    held: float  # seconds from the request to the outcome (a loop in a Lambda sleeps through it)


def scenario_for(duration: float) -> Scenario:
    raw: dict[str, Any] = yaml.safe_load(SCENARIO.read_text())
    raw["settleWindowSeconds"] = SETTLE_WINDOW
    raw["publishDurationSeconds"] = 1
    raw["faults"] = []
    raw["events"] = [
        {
            "type": "telephonyChange",
            "kind": "softwareUpdate",
            "entityId": EDGE,
            "start": CHANGE_START,
            "end": CHANGE_START + duration,
        }
    ]
    return parse_scenario(raw)


def trial(policy: str, scenario: Scenario, duration: float, arrival: float, seed: int) -> Trial:
    """One request arriving `arrival` (0..1) of the way through the change, under one policy."""
    clock = VirtualClock()
    simulator = GenesysSimulator(scenario, clock)
    clock.advance(CHANGE_START + arrival * duration)
    if policy in PIPELINE:
        messages, held = _ours(simulator, clock, seed, **PIPELINE[policy])
    else:
        messages, held = 0, _loop(LOOPS[policy], simulator, clock, random.Random(seed))
    stats = simulator.stats()
    accepted = [e["t"] for e in stats["events"] if e["kind"] == "updateAccepted"]
    settled = CHANGE_START + duration + SETTLE_WINDOW
    calls: dict[str, int] = stats["calls"]
    publishes = sum(n for route, n in calls.items() if route in PUBLISH_ROUTES)
    tokens = calls.get(TOKEN_ROUTE, 0)
    return Trial(
        published=bool(accepted),
        overshoot=(accepted[0] - settled) if accepted else None,
        reads=sum(calls.values()) - publishes - tokens,
        publishes=calls.get(UPDATE_ROUTE, 0),
        tokens=tokens,
        messages=messages,
        held=held,
    )


def _ours(simulator: GenesysSimulator, clock: VirtualClock, seed: int, **events: Any) -> tuple[int, float]:
    run = VirtualRun(
        simulator, clock, Timing(settle_window=SETTLE_WINDOW), seed=seed, deadline_seconds=DEADLINE, **events
    )
    started = clock.now()
    accepted = run.intake.accept(PublishRequest.model_validate(REQUEST), f"bench-{seed}")
    job = run.run(str(accepted.body["publishId"]), limit=DEADLINE + 3600)
    if job.status is JobStatus.PUBLISHED:
        assert simulator.stats()["publishesApplied"] == {SCHEDULE: 1}, "published more than once"
    return run.queues.messages_sent, clock.now() - started


def _loop(
    delays: Callable[[random.Random], Iterator[float]],
    simulator: GenesysSimulator,
    clock: VirtualClock,
    rng: random.Random,
) -> float:
    """A retry loop as people write it: read the schedule, publish, sleep and retry on failure."""
    genesys = virtual_client(simulator, clock)
    started = clock.now()
    deadline = started + DEADLINE
    waits = delays(rng)
    schedule = genesys.schedule(BU, WEEK, SCHEDULE)
    while True:
        try:
            genesys.publish(BU, WEEK, schedule)
            return clock.now() - started
        except GenesysRateLimited as limited:  # costs nothing: wait as told, try again
            clock.advance(limited.retry_after)
            continue
        except GenesysConflict as conflict:
            if conflict.body and "wfm.schedule.version.mismatch" in conflict.body.error_codes:
                schedule = genesys.schedule(BU, WEEK, SCHEDULE)  # a loop that re-reads on a stale version
        except GenesysTransient:
            pass
        except GenesysError:
            return clock.now() - started
        wait = next(waits, None)
        if wait is None or clock.now() + wait > deadline:
            return clock.now() - started
        clock.advance(wait)


# --- many trials, in parallel ------------------------------------------------------------------------------


def _arrivals(duration_index: int, trials: int) -> list[float]:
    rng = random.Random(1000 + duration_index)
    return [rng.random() for _ in range(trials)]


def _batch(task: tuple[str, int, list[tuple[int, float]]]) -> tuple[str, int, list[Trial]]:
    import logging

    logging.disable(logging.INFO)  # the pipeline logs every job's end: thousands of lines
    policy, index, work = task
    duration = DURATIONS[index][1]
    scenario = scenario_for(duration)
    return policy, index, [trial(policy, scenario, duration, arrival, seed) for seed, arrival in work]


def run_trials(trials: int = TRIALS, workers: int | None = None) -> dict[tuple[str, int], list[Trial]]:
    tasks: list[tuple[str, int, list[tuple[int, float]]]] = []
    for index in range(len(DURATIONS)):
        arrivals = list(enumerate(_arrivals(index, trials)))
        for policy in POLICIES:
            # Ours is the costly one (hours of readiness checks): smaller batches spread it evenly.
            size = 10 if policy.key in PIPELINE else trials
            tasks += [(policy.key, index, arrivals[i : i + size]) for i in range(0, trials, size)]
    tasks.sort(key=lambda t: -(DURATIONS[t[1]][1] * len(t[2]) if t[0] == OURS.key else 0))
    results: dict[tuple[str, int], list[Trial]] = {}
    workers = workers or os.cpu_count() or 1
    if workers == 1:
        for key, index, done in map(_batch, tasks):
            results.setdefault((key, index), []).extend(done)
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for key, index, done in pool.map(_batch, tasks):
                results.setdefault((key, index), []).extend(done)
    return results


# --- figures ----------------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    at = (len(ordered) - 1) * q / 100
    low, high = math.floor(at), math.ceil(at)
    return ordered[low] + (ordered[high] - ordered[low]) * (at - low)


def _r(value: float, digits: int = 1) -> float | None:
    return None if math.isnan(value) else round(value, digits)


@dataclass
class Row:
    policy: Policy
    label: str
    duration: float
    trials: list[Trial] = field(default_factory=list)

    def figures(self) -> dict[str, Any]:
        done = [t for t in self.trials if t.published]
        over = [t.overshoot for t in done if t.overshoot is not None]
        reads = [float(t.reads) for t in self.trials]
        publishes = [float(t.publishes) for t in self.trials]
        messages = [float(t.messages) for t in self.trials]
        held = [t.held for t in self.trials]
        return {
            "policy": self.policy.key,
            "change": self.label,
            "changeSeconds": self.duration,
            "trials": len(self.trials),
            "successRate": round(len(done) / len(self.trials), 4),
            "overshootSeconds": {
                "p50": _r(percentile(over, 50)),
                "p95": _r(percentile(over, 95)),
                "max": _r(max(over) if over else math.nan),
                "mean": _r(sum(over) / len(over) if over else math.nan),
            },
            "overshootPercentOfChange": {
                "p50": _r(percentile(over, 50) / self.duration * 100),
                "p95": _r(percentile(over, 95) / self.duration * 100),
            },
            "readsPerJob": {"mean": _r(_mean(reads)), "p95": _r(percentile(reads, 95)), "max": max(reads)},
            "publishAttemptsPerJob": {"mean": _r(_mean(publishes), 2), "max": max(publishes)},
            "tokensPerJob": {"max": max(t.tokens for t in self.trials)},
            "sqsMessagesPerJob": {
                "mean": _r(_mean(messages)),
                "p95": _r(percentile(messages, 95)),
                "max": max(messages),
            },
            "secondsToOutcome": {"mean": _r(_mean(held)), "max": _r(max(held))},
        }


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def targets(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Issue 5's targets, each with the figure measured: met or not, never bent."""
    ours = {r["changeSeconds"]: r for r in rows if r["policy"] == OURS.key}
    exponential = {r["changeSeconds"]: r for r in rows if r["policy"] == EXPONENTIAL.key}
    checks: list[dict[str, Any]] = []

    def check(target: str, change: str, measured: Any, met: bool) -> None:
        checks.append({"target": target, "change": change, "measured": measured, "met": met})

    for label, duration in DURATIONS:
        row = ours[duration]
        bound = min(120.0, max(3.0, 0.1 * duration))
        p95 = row["overshootSeconds"]["p95"]
        check("100% success within the deadline", label, row["successRate"], row["successRate"] == 1.0)
        check(
            f"p95 overshoot <= {bound:g} s",
            label,
            p95,
            p95 is not None and p95 <= bound,
        )
        attempts = row["publishAttemptsPerJob"]["max"]
        check("<= 2 publish attempts per job", label, attempts, attempts <= 2)
    reads = ours[7200]["readsPerJob"]
    check("<= 100 reads per job (max over trials)", "2 h", reads["max"], reads["max"] <= 100)
    for label, duration in DURATIONS[-2:]:
        ratio = None
        mine, theirs = (
            ours[duration]["overshootSeconds"]["p95"],
            exponential[duration]["overshootSeconds"]["p95"],
        )
        if mine is not None and theirs is not None:
            ratio = round(theirs / max(mine, 0.1), 1)
        check(
            "p95 overshoot >= 5x lower than exponential backoff's",
            label,
            ratio,
            ratio is not None and ratio >= 5,
        )
    events = {r["changeSeconds"]: r for r in rows if r["policy"] == EVENTS.key}
    lost = {r["changeSeconds"]: r for r in rows if r["policy"] == EVENTS_LOST.key}
    for label, duration in DURATIONS:
        p95 = events[duration]["overshootSeconds"]["p95"]
        bound = SETTLE_WINDOW + 5
        check(f"events: p95 overshoot <= {bound:g} s", label, p95, p95 is not None and p95 <= bound)
        mine, polled = lost[duration]["overshootSeconds"]["p95"], ours[duration]["overshootSeconds"]["p95"]
        check(
            "events, 10% lost: p95 overshoot within polling's",
            label,
            [mine, polled],
            mine is not None and polled is not None and mine <= max(polled, bound),
        )
    silent = {r["changeSeconds"]: r for r in rows if r["policy"] == EVENTS_SILENT.key}
    for label, duration in DURATIONS:
        mine, polled = silent[duration]["overshootSeconds"]["p95"], ours[duration]["overshootSeconds"]["p95"]
        check(
            "events, all lost: p95 overshoot within 10% of polling's",
            label,
            [mine, polled],
            mine is not None and polled is not None and mine <= 1.1 * polled,
        )
    reads = events[21600]["readsPerJob"]
    check("events: <= 30 reads per job (max over trials)", "6 h", reads["max"], reads["max"] <= 30)
    return checks


def run(trials: int | None = None, workers: int | None = None) -> dict[str, Any]:
    trials = trials or int(os.environ.get("BENCH_TRIALS", TRIALS))
    started = time.perf_counter()
    results = run_trials(trials, workers)
    rows = []
    for policy in POLICIES:
        for index, (label, duration) in enumerate(DURATIONS):
            rows.append(Row(policy, label, duration, results[(policy.key, index)]).figures())
    checks = targets(rows)
    report = {
        "benchmark": "strategies",
        "how": "python -m bench (make bench); simulated time: a virtual clock through the same core code",
        "settings": {
            "trialsPerCell": trials,
            "settleWindowSeconds": SETTLE_WINDOW,
            "deadlineSeconds": DEADLINE,
            "request": copy.deepcopy(REQUEST),
            "org": "scenarios/demo.yaml: 1 business unit, 1 schedule, 1 campaign on 1 site, 1 Edge, 2 trunks",
            "change": "an Edge software update; the request arrives at a uniform random moment within it",
            "overshoot": "from change end + settle window to the accepted update POST",
            "stepFunctionsMaxAttempts": step_functions_max_attempts(),
        },
        "policies": {p.key: {"name": p.name, "description": p.description} for p in POLICIES},
        "results": rows,
        "targets": checks,
    }
    print_table(report)
    print(f"\n{len(POLICIES) * len(DURATIONS) * trials} trials in {time.perf_counter() - started:.1f} s")
    return report


# --- the printed table -------------------------------------------------------------------------------------


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}{unit}" if abs(value) >= 100 else f"{value:.1f}{unit}"


def table(report: dict[str, Any]) -> list[str]:
    names = {key: p["name"] for key, p in report["policies"].items()}
    head = (
        f"{'change':<7} {'policy':<17} {'success':>7}  {'overshoot p50 / p95':>21}  {'p95 % of change':>15}"
        f"  {'reads/job mean (max)':>20}  {'publishes/job (max)':>19}  {'SQS msgs/job':>12}"
    )
    lines = [head, "-" * len(head)]
    by_change: dict[str, list[dict[str, Any]]] = {}
    for row in report["results"]:
        by_change.setdefault(row["change"], []).append(row)
    for change, rows in by_change.items():
        for i, row in enumerate(rows):
            over, pct = row["overshootSeconds"], row["overshootPercentOfChange"]
            overshoot = (
                f"{_fmt(over['p50'], ' s')} / {_fmt(over['p95'], ' s')}" if over["p50"] is not None else "-"
            )
            reads, pubs = row["readsPerJob"], row["publishAttemptsPerJob"]
            messages = row["sqsMessagesPerJob"]
            lines.append(
                f"{change if i == 0 else '':<7} {names[row['policy']]:<17} {row['successRate'] * 100:>6.0f}%"
                f"  {overshoot:>21}  {_fmt(pct['p95'], '%'):>15}"
                f"  {_fmt(reads['mean']) + ' (' + str(int(reads['max'])) + ')':>20}"
                f"  {_fmt(pubs['mean']) + ' (' + str(int(pubs['max'])) + ')':>19}"
                f"  {(_fmt(messages['mean']) if row['policy'] in PIPELINE else '-'):>12}"
            )
        lines.append("")
    return lines


def print_table(report: dict[str, Any]) -> None:
    settings = report["settings"]
    print(
        f"Wait strategies side by side: {settings['trialsPerCell']} trials per cell, settle window "
        f"{settings['settleWindowSeconds']:g} s, deadline {settings['deadlineSeconds'] / 3600:g} h"
        " (virtual time)\n"
    )
    for line in table(report):
        print(line)
    print("Targets:")
    for check in report["targets"]:
        mark = "met " if check["met"] else "MISS"
        print(f"  [{mark}] {check['change']:>6}  {check['target']}: {check['measured']}")


def markdown(report: dict[str, Any]) -> str:
    """The table as Markdown (docs/benchmark.md): `python -m bench.strategies` prints it from the
    committed figures, without running anything."""
    names = {key: p["name"] for key, p in report["policies"].items()}
    lines = [
        "| change | policy | success | overshoot p50 / p95 | p95 % of change | reads/job mean (max) "
        "| publish attempts/job mean (max) | SQS msgs/job mean (max) |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    changes = [label for label, _ in DURATIONS]
    policies = [p.key for p in POLICIES]
    rows = sorted(report["results"], key=lambda r: (changes.index(r["change"]), policies.index(r["policy"])))
    previous = None
    for row in rows:
        over, pct = row["overshootSeconds"], row["overshootPercentOfChange"]
        reads, pubs, msgs = row["readsPerJob"], row["publishAttemptsPerJob"], row["sqsMessagesPerJob"]
        overshoot = "-"
        if over["p50"] is not None:
            overshoot = f"{_fmt(over['p50'], ' s')} / {_fmt(over['p95'], ' s')}"
        ours = row["policy"] in PIPELINE
        name = f"**{names[row['policy']]}**" if ours else names[row["policy"]]
        messages = f"{_fmt(msgs['mean'])} ({int(msgs['max'])})" if ours else "-"
        lines.append(
            f"| {row['change'] if row['change'] != previous else ''} | {name} "
            f"| {row['successRate'] * 100:.0f}% | {overshoot} | {_fmt(pct['p95'], '%')} "
            f"| {_fmt(reads['mean'])} ({int(reads['max'])}) | {_fmt(pubs['mean'])} ({int(pubs['max'])}) "
            f"| {messages} |"
        )
        previous = row["change"]
    return "\n".join(lines)


if __name__ == "__main__":
    import json

    committed = Path(__file__).resolve().parent / "results" / "strategies.json"
    print(markdown(json.loads(committed.read_text())))
