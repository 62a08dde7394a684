"""A chaos run on the real local stack (issue 9): many publish jobs under faults, then the invariants.

    python -m wfm_publish_local.chaos.stack --jobs 1000 --seed 7

What runs, all in this process on 127.0.0.1:

* moto server (ThreadedMotoServer), with the fault proxy in front of it: on DynamoDB and SQS data-plane
  calls, answers lost after commit, 5xx before forwarding, throttling and latency (`data_plane_plan`);
* the embedded stack on the proxy's endpoint: the runner with a short visibility timeout (so a record
  whose worker died comes back within the run), several pollers per queue, and a seeded CrashPlan
  that kills invocations before or after one of their AWS calls;
* the Genesys Cloud simulator with a generated org: schedules across a few business units, short Edge
  software updates, other writers' edits (stale-version 409s), Genesys faults (5xx, dropped
  connections, a read timeout, 429 with Retry-After), and one business unit whose Edge never settles
  for the jobs that must end at their deadline;
* the ServiceNow stand-in, which records every callback;
* the dead-letter sweep (invoked through the runner) and the watchdog (the core's `rescue_overdue`
  with a short overdue bound: its Lambda handler has no way to take one) every few seconds.

Requests go over HTTP, signed as ServiceNow signs them: a first request per job, duplicates (the same
key and body again, some from several threads at once), joiners (the same schedule and options under
another key and callback), a few requests reusing a key with another body (must be 422) and cancels
at random moments. Every answer is kept. When every job has ended (bounded), the invariants are
checked and each violation printed with the seed and a short trace; the exit status is 1 if any.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

import boto3
import requests

from wfm_publish.models import Job, JobStatus
from wfm_publish.store import job_from_item
from wfm_publish_local.embedded import EmbeddedStack
from wfm_publish_local.faultproxy import FaultProxy, data_plane_plan
from wfm_publish_local.runner.crash import CrashPlan
from wfm_publish_local.simulator.loading import parse_scenario
from wfm_publish_local.simulator.scenario import Scenario

log = logging.getLogger(__name__)

WEEK = "2023-10-23"  # a Monday; the scenario's `today` keeps it recent
CALLBACK_TABLE = "change_request"
STEP_SECONDS = 35.0  # the longest one step takes once delivered (consumer.STEP_MARGIN_SECONDS, and some)
RETRY_ON = {409, 500, 502, 503, 504}  # 409 only for REQUEST_IN_PROGRESS (see Client._final)
QUEUE_FUNCTIONS = ("TrunkValidationFunction", "ConflictRetryFunction")


@dataclass(frozen=True)
class ChaosOptions:
    jobs: int = 30
    seed: int = 1
    send_rate: float = 8.0  # first requests per second
    visibility_timeout: int = 10  # seconds: a dead worker's record comes back after this
    # The watchdog's bound for the run (300 s in production): longer than a message waits in the
    # run's queues when they are busiest, or the watchdog moves jobs that are only queued.
    overdue_after: float = 45.0
    sweep_every: float = 3.0  # seconds between watchdog and dead-letter sweeps
    crash_rate: float = 0.05  # per invocation of the queue functions and the notifier
    api_crash_rate: float = 0.01  # per API invocation (the caller retries a 502 with the same key)
    deadline_jobs: int | None = None  # jobs that cannot settle and must end at their deadline (60 s)
    duplicates: float = 0.15  # share of jobs whose request is sent again (same key, same body)
    concurrent: float = 0.4  # ... of which sent from several threads at once
    joiners: float = 0.1  # share of jobs joined by another request (other key, other callback)
    other_bodies: float = 0.04  # share of keys reused with another body (must be 422)
    cancels: float = 0.08  # share of jobs cancelled at a random moment
    sqs_concurrency: int = 3
    senders: int = 16
    timeout: float = 900.0  # every job must have ended within this (wall seconds)
    callback_timeout: float = 60.0  # then every callback must have arrived within this
    lost_writes: float = 0.03  # DynamoDB answers lost after commit
    faults: bool = True
    moto_process: bool = True  # moto server in a child process (a second core), else in this one
    # The run's time scale for the pipeline (pipeline.Timing): an update whose outcome is unknown (a
    # worker that died between committing PUBLISHING and posting it) is confirmed for this long before
    # the job validates again (180 s in production), and another writer's update is waited for as long.
    confirm_timeout: float = 20.0

    @property
    def stuck_jobs(self) -> int:
        return self.deadline_jobs if self.deadline_jobs is not None else max(1, self.jobs // 100)

    @property
    def business_units(self) -> int:
        return max(2, min(8, self.jobs // 25))

    @property
    def stuck_bound(self) -> float:
        """No job sits with nothing in flight longer than this: the watchdog's bound plus its sweep."""
        return self.overdue_after + self.sweep_every

    @property
    def deadline_slack(self) -> float:
        """A job ends by its deadline plus one step: the step that ends it may wait for a redelivery
        (visibility timeout) or the watchdog, then runs."""
        return self.stuck_bound + self.visibility_timeout + STEP_SECONDS


# --------------------------------------------------------------------------- the org


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
    update whose answer is lost is confirmed for up to 3 minutes (pipeline.Timing.confirm_timeout),
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


# --------------------------------------------------------------------------- the requests


@dataclass
class Action:
    """One thing the run sends. `after`: the key whose first 202 this waits for (cancels, reused keys)."""

    at: float
    kind: str  # first | duplicate | joiner | other-body | cancel
    key: str
    schedule_id: str
    body: dict[str, Any] | None = None
    after: str | None = None
    copies: int = 1  # sent this many times at once, from as many threads


def callback() -> dict[str, str]:
    return {"table": CALLBACK_TABLE, "sysId": uuid.uuid4().hex}


def plan_requests(options: ChaosOptions) -> list[Action]:
    rng = random.Random(options.seed * 7919 + 1)
    actions: list[Action] = []
    for i in range(options.jobs + options.stuck_jobs):
        stuck = i >= options.jobs
        sid = f"chaos-sched-stuck-{i - options.jobs}" if stuck else schedule_id(i)
        bu = "chaos-bu-stuck" if stuck else f"chaos-bu-{i % options.business_units}"
        mode = "strict" if stuck else rng.choice(["strict", "strict", "deferred", "off", "off"])
        body: dict[str, Any] = {
            "scheduleId": sid,
            "validationMode": mode,
            "telephonySync": {"enabled": True, "retryCount": 3, "delayMs": rng.choice([0, 200, 1000])},
            "callback": callback(),
        }
        if stuck:
            body["deadlineSeconds"] = 60
        if stuck or rng.random() < 0.7:  # else Genesys resolves the business unit and week
            body |= {"businessUnitId": bu, "weekId": WEEK}
        at = rng.uniform(0, options.jobs / options.send_rate)
        key = f"chaos-{options.seed}-{i}"
        concurrent = rng.random() < options.duplicates * options.concurrent
        actions.append(Action(at, "first", key, sid, body, copies=3 if concurrent else 1))
        if rng.random() < options.duplicates * (1 - options.concurrent):
            actions.append(Action(at + rng.uniform(0.05, 6), "duplicate", key, sid, body))
        if rng.random() < options.joiners:
            joiner = {**body, "callback": callback()}
            actions.append(Action(at + rng.uniform(0, 4), "joiner", f"{key}-joiner", sid, joiner))
        if rng.random() < options.other_bodies:
            other = {**body, "validationMode": "off" if mode != "off" else "strict"}
            actions.append(Action(at + rng.uniform(0, 3), "other-body", key, sid, other, after=key))
        if not stuck and rng.random() < options.cancels:
            actions.append(Action(at + rng.uniform(0, 8), "cancel", key, sid, after=key))
    return sorted(actions, key=lambda a: a.at)


@dataclass
class Answer:
    """One request as the caller saw it: every attempt (status, problem code), and the final one."""

    kind: str
    key: str
    schedule_id: str
    callback: tuple[str, str] | None
    attempts: list[tuple[int, str]] = field(default_factory=list)
    status: int = 0
    publish_id: str | None = None
    joined: bool | None = None
    job_status: str | None = None
    sent_at: float = 0.0

    def brief(self) -> str:
        tries = ",".join(f"{s}{'/' + c if c else ''}" for s, c in self.attempts)
        said = f"{self.status} {self.publish_id or ''} joined={self.joined}"
        return f"{self.kind} key={self.key} -> {said} [{tries}]"


class Client:
    """ServiceNow's side: signed requests, retried with the same key while the answer says to."""

    def __init__(self, api_url: str, auth: requests.auth.AuthBase, patience: float = 120.0) -> None:
        self.api_url = api_url
        self.auth = auth
        self.patience = patience

    def publish(self, kind: str, key: str, body: dict[str, Any]) -> Answer:
        cb = body.get("callback")
        answer = Answer(kind, key, str(body["scheduleId"]), (cb["table"], cb["sysId"]) if cb else None)
        answer.sent_at = time.time()
        self._exchange(answer, "POST", "/publishes", body, {"Idempotency-Key": key})
        return answer

    def cancel(self, key: str, schedule_id: str, publish_id: str) -> Answer:
        answer = Answer("cancel", key, schedule_id, None, publish_id=publish_id)
        answer.sent_at = time.time()
        self._exchange(answer, "POST", f"/publishes/{publish_id}/cancel", None, {})
        return answer

    def get(self, publish_id: str) -> tuple[int, dict[str, Any]]:
        for _ in range(10):
            try:
                got = requests.get(f"{self.api_url}/publishes/{publish_id}", auth=self.auth, timeout=30)
            except requests.RequestException:
                time.sleep(0.5)
                continue
            if got.status_code not in (502, 503):
                return got.status_code, _json(got)
            time.sleep(0.5)
        return 0, {}

    def _exchange(
        self, answer: Answer, method: str, path: str, body: dict[str, Any] | None, headers: dict[str, str]
    ) -> None:
        give_up = time.monotonic() + self.patience
        while True:
            try:
                got = requests.request(
                    method, f"{self.api_url}{path}", json=body, headers=headers, auth=self.auth, timeout=30
                )
                status, payload = got.status_code, _json(got)
            except requests.RequestException as exc:
                status, payload = 0, {"code": type(exc).__name__}
            code = str(payload.get("code") or "")
            answer.attempts.append((status, code))
            if self._final(status, code) or time.monotonic() > give_up:
                answer.status = status
                answer.publish_id = payload.get("publishId", answer.publish_id)
                answer.joined = payload.get("joined")
                answer.job_status = payload.get("status")
                return
            retry_after = got.headers.get("Retry-After") if status else None
            time.sleep(min(2.0, float(retry_after)) if retry_after else random.uniform(0.2, 0.8))

    @staticmethod
    def _final(status: int, code: str) -> bool:
        if status == 0:
            return False  # no answer: the caller sends the same request again
        if status == 409:
            return code not in ("REQUEST_IN_PROGRESS",)
        return status not in RETRY_ON


def _json(response: requests.Response) -> dict[str, Any]:
    try:
        parsed = response.json()
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


class Sender:
    """Sends the planned actions at their moments from a pool of threads, keeping every answer."""

    def __init__(self, client: Client, threads: int) -> None:
        self.client = client
        self.answers: list[Answer] = []
        self.last_answer_at = 0.0
        self._first: dict[str, threading.Event] = defaultdict(threading.Event)
        self._first_id: dict[str, str] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="chaos-sender")

    def run(self, actions: list[Action], stop: threading.Event) -> None:
        for action in actions:  # made here, not on first use from two threads at once
            self._first[action.after or action.key]
        started = time.monotonic()
        futures = []
        for action in actions:
            wait = action.at - (time.monotonic() - started)
            if wait > 0 and stop.wait(wait):
                break
            futures += [self._pool.submit(self._send, action) for _ in range(action.copies)]
        for future in futures:
            future.result()
        self._pool.shutdown()

    def _send(self, action: Action) -> None:
        try:
            answer = self._do(action)
        except Exception as exc:  # a bug in the harness must not pass silently as a missing answer
            log.exception("sending %s failed", action)
            answer = Answer(action.kind, action.key, action.schedule_id, None, attempts=[(-1, repr(exc))])
        if answer is None:
            return
        with self._lock:
            self.answers.append(answer)
            self.last_answer_at = time.monotonic()
        if action.kind in ("first", "duplicate") and answer.status == 202 and answer.publish_id:
            self._first_id.setdefault(action.key, answer.publish_id)
            self._first[action.key].set()

    def _do(self, action: Action) -> Answer | None:
        if action.after is not None and not self._first[action.after].wait(120):
            return None  # the first request never got a 202: a violation of its own, found elsewhere
        if action.kind == "cancel":
            return self.client.cancel(action.key, action.schedule_id, self._first_id[action.key])
        assert action.body is not None
        return self.client.publish(action.kind, action.key, action.body)


# --------------------------------------------------------------------------- the run


@dataclass
class Violation:
    invariant: int
    message: str
    trace: list[str] = field(default_factory=list)


@dataclass
class Figures:
    jobs: int = 0
    requests: int = 0
    attempts: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    answers: dict[str, int] = field(default_factory=dict)
    aws_faults: dict[str, int] = field(default_factory=dict)
    genesys_faults: dict[str, int] = field(default_factory=dict)
    crashes: dict[str, int] = field(default_factory=dict)
    redeliveries: int = 0
    watchdog_moved: int = 0
    watchdog_found: int = 0
    longest_overdue: float = 0.0  # the longest a job sat with nothing in flight before the watchdog moved it
    dead_letters: int = 0
    publishes_applied: int = 0
    callbacks: int = 0
    send_seconds: float = 0.0
    settle_seconds: float = 0.0
    wall_seconds: float = 0.0
    violations: int = 0


@dataclass
class Outcome:
    options: ChaosOptions
    figures: Figures
    violations: list[Violation]
    evidence: Evidence

    @property
    def ok(self) -> bool:
        return not self.violations


# moto server in a process of its own: it is most of the CPU a run spends, and this one (the runner,
# the proxy, the simulator) holds the GIL for the rest. It is still ThreadedMotoServer on 127.0.0.1.
_MOTO_CHILD = """
import logging, sys
from moto.server import ThreadedMotoServer
logging.getLogger("werkzeug").setLevel(logging.ERROR)
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print(server.get_host_and_port()[1], flush=True)
sys.stdin.read()  # until the parent closes it, or dies
server.stop()
"""


@contextmanager
def moto_server(own_process: bool = True) -> Iterator[str]:
    """A ThreadedMotoServer on 127.0.0.1: in a child process (it stops when this process closes its
    stdin, or dies), or in this one."""
    if not own_process:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        try:
            yield f"http://127.0.0.1:{server.get_host_and_port()[1]}"
        finally:
            server.stop()
        return
    child = subprocess.Popen(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", _MOTO_CHILD],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        port = int(child.stdout.readline())
        yield f"http://127.0.0.1:{port}"
    finally:
        if child.stdin is not None:
            child.stdin.close()
        try:
            child.wait(timeout=15)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


class Sweeper:
    """The scheduled functions, on a short period: the dead-letter sweep through the runner (as its
    schedule would fire it), the watchdog as the core function with the run's short overdue bound."""

    def __init__(self, embedded: EmbeddedStack, options: ChaosOptions) -> None:
        self.embedded = embedded
        self.options = options
        self.found = self.moved = self.dead_letters = self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos-sweeper", daemon=True)

    def __enter__(self) -> Sweeper:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def _run(self) -> None:
        from wfm_publish.services import services
        from wfm_publish.watchdog import rescue_overdue

        stack = self.embedded.stack
        assert stack is not None
        while not self._stop.wait(self.options.sweep_every):
            try:
                counts = stack.invoke("DeadLettersFunction", {})
                self.dead_letters += sum(v for k, v in dict(counts or {}).items() if k != "kept")
                wiring = services()
                rescue = rescue_overdue(
                    wiring.store, wiring.transitions, wiring.clock, overdue_after=self.options.overdue_after
                )
                self.found += rescue.found
                self.moved += rescue.moved
            except Exception:  # a sweep that met a fault runs again next period, as on AWS
                self.failures += 1
                log.info("sweep failed", exc_info=True)


class Table:
    """The jobs table read from moto directly (not through the fault proxy): one client for the run
    (a client per read would load botocore's models each time)."""

    def __init__(self, moto_url: str, name: str) -> None:
        self.name = name
        self._client = boto3.session.Session().client(
            "dynamodb",
            endpoint_url=moto_url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",  # noqa: S106 - moto's
        )

    def jobs(self) -> dict[str, Job]:
        """Every job, whole."""
        jobs: dict[str, Job] = {}
        for item in self._scan({}):
            if str(item["pk"]["S"]).startswith("job#"):
                job = job_from_item(item)
                jobs[job.job_id] = job
        return jobs

    def statuses(self) -> dict[str, str]:
        """Job id -> status, cheaply (the progress loop reads this every few seconds)."""
        projection = {"ProjectionExpression": "pk, #s", "ExpressionAttributeNames": {"#s": "status"}}
        return {
            str(item["pk"]["S"]).removeprefix("job#"): str(item["status"]["S"])
            for item in self._scan(projection)
            if str(item["pk"]["S"]).startswith("job#")
        }

    def _scan(self, extra: dict[str, Any]) -> Iterator[dict[str, Any]]:
        pages = self._client.get_paginator("scan").paginate(TableName=self.name, ConsistentRead=True, **extra)
        for page in pages:
            yield from page.get("Items", [])


def run(options: ChaosOptions, echo: Callable[[str], None] = print) -> Outcome:
    """Start everything, send the requests, wait for every job to end, check the invariants."""
    began = time.monotonic()
    scenario = build_scenario(options)
    actions = plan_requests(options)
    crash = CrashPlan(
        {
            **dict.fromkeys(QUEUE_FUNCTIONS, options.crash_rate),
            "NotifierFunction": options.crash_rate,
            "PublishTriggerFunction": options.api_crash_rate,
        },
        seed=options.seed,
    )
    plan = data_plane_plan(
        options.seed,
        throttle=0.03,
        error_before=0.03,
        latency=0.1,
        latency_seconds=0.02,
        lost_sends=0.03,
        lost_writes=options.lost_writes,
    )
    if not options.faults:
        plan.rules = []
    with ExitStack() as running:
        moto = running.enter_context(moto_server(options.moto_process))
        proxy = running.enter_context(FaultProxy(moto, plan, lifetime=options.timeout + 600))
        embedded = EmbeddedStack(
            scenario,
            visibility_timeout=options.visibility_timeout,
            environment={"POWERTOOLS_LOG_LEVEL": "CRITICAL"},
            aws_endpoint=proxy.url,
            crash=crash,
            sqs_concurrency=options.sqs_concurrency,
        )
        running.enter_context(embedded)
        stack = embedded.stack
        assert stack is not None
        shorten_timing(options)
        embedded.simulator.reset()  # t = 0: the telephony changes are timed from now
        client = Client(embedded.api_url, embedded.auth)
        sender = Sender(client, options.senders)
        sweeper = running.enter_context(Sweeper(embedded, options))
        echo(
            f"chaos: seed {options.seed}, {options.jobs} jobs (+{options.stuck_jobs} that must end at their"
            f" deadline), {len(actions)} planned requests, moto {moto}, proxy {proxy.url}"
        )
        stop = threading.Event()
        send_started = time.monotonic()
        sending = threading.Thread(target=sender.run, args=(actions, stop), name="chaos-send", daemon=True)
        sending.start()
        table = Table(moto, stack.table_name)
        wait_for_jobs(options, table, sending, sender, echo, began)
        stop.set()
        sending.join(timeout=180)
        send_seconds = sender.last_answer_at - send_started
        settled = time.monotonic()
        wait_for_callbacks(options, embedded, table.jobs())
        jobs = table.jobs()  # the notes of the deliveries included
        evidence = gather(jobs, sender.answers, embedded, client)
        violations = check(options, evidence)
        sim = embedded.simulator.stats()
        figures = Figures(
            jobs=len(jobs),
            requests=len(sender.answers),
            attempts=sum(len(a.attempts) for a in sender.answers),
            by_status=dict(Counter(j.status.value for j in jobs.values())),
            answers=dict(Counter(f"{a.kind} {a.status}" for a in sender.answers)),
            aws_faults={k: sum(v.values()) for k, v in proxy.counts().items()},
            genesys_faults={
                "injected": int(sim["faultsInjected"]),
                "dropped": int(sim["connectionsDropped"]),
                "rateLimited": int(sim["rateLimited"]),
                **{f"409 {k}": int(v) for k, v in sim["conflictsSent"].items()},
            },
            crashes=dict(crash.crashes),
            redeliveries=sum(stack.redeliveries.values()),
            watchdog_moved=sweeper.moved,
            watchdog_found=sweeper.found,
            longest_overdue=max(
                (
                    float(e.detail.get("overdueSeconds", 0.0))
                    for j in jobs.values()
                    for e in j.timeline
                    if e.event == "moved on by the watchdog" and e.detail
                ),
                default=0.0,
            ),
            dead_letters=sweeper.dead_letters,
            publishes_applied=sum(sim["publishesApplied"].values()),
            callbacks=len(embedded.servicenow.updates()),
            send_seconds=round(send_seconds, 1),
            settle_seconds=round(settled - began, 1),
            wall_seconds=round(time.monotonic() - began, 1),
            violations=len(violations),
        )
    return Outcome(options, figures, violations, evidence)


def shorten_timing(options: ChaosOptions) -> None:
    """The functions share this process's services (one container): give their pipeline the run's
    time scale. Only waits change; every decision is the core's own."""
    from dataclasses import replace

    from wfm_publish.services import services

    pipeline = services().pipeline
    pipeline.timing = replace(
        pipeline.timing, confirm_timeout=options.confirm_timeout, in_progress_limit=options.confirm_timeout
    )


def wait_for_jobs(
    options: ChaosOptions,
    table: Table,
    sending: threading.Thread,
    sender: Sender,
    echo: Callable[[str], None],
    began: float,
) -> None:
    """Until the requests are all sent and every job (in the table, and every id answered) ended."""
    last_report = 0.0
    terminal = {s.value for s in JobStatus if s.terminal}
    while True:
        statuses = table.statuses()
        answered = {a.publish_id for a in list(sender.answers) if a.publish_id}
        open_jobs = [j for j, s in statuses.items() if s not in terminal]
        unknown = answered - set(statuses)
        done = not sending.is_alive() and not open_jobs and not unknown
        elapsed = time.monotonic() - began
        if done or elapsed > options.timeout:
            return
        if elapsed - last_report >= 15:
            last_report = elapsed
            counts = Counter(statuses.values())
            echo(
                f"  t={elapsed:5.0f}s  {len(statuses)} jobs, {len(open_jobs)} not ended"
                f"  {dict(sorted(counts.items()))}"
            )
        # A scan costs moto time in proportion to the table, time the jobs' own calls then wait for.
        time.sleep(max(2.0, len(statuses) / 200))


def expected_callbacks(job: Job) -> list[tuple[str, str]]:
    own = [job.request.callback] if job.request.callback else []
    return [(c.table, c.sys_id) for c in own + [j.callback for j in job.joiners if j.callback]]


def wait_for_callbacks(options: ChaosOptions, embedded: EmbeddedStack, jobs: dict[str, Job]) -> None:
    wanted = {cb for job in jobs.values() if job.status.terminal for cb in expected_callbacks(job)}
    give_up = time.monotonic() + options.callback_timeout
    while time.monotonic() < give_up:
        told = {(u.table, u.sys_id) for u in embedded.servicenow.updates()}
        if wanted <= told:
            return
        time.sleep(0.5)


# --------------------------------------------------------------------------- the invariants


def trace(job: Job | None, answers: Sequence[Answer] = (), last: int = 12) -> list[str]:
    lines: list[str] = []
    if job is not None:
        lines.append(
            f"job {job.job_id} schedule {job.schedule_id} key {job.idempotency_key} {job.status.value}"
            f" {job.reason_code.value if job.reason_code else ''} base {job.base_version}"
            f" attempts {job.publish_attempts}: {job.detail or ''}"[:300]
        )
        events = job.timeline if len(job.timeline) <= last + 3 else job.timeline[:3] + job.timeline[-last:]
        for event in events:
            detail = json.dumps(event.detail, default=str)[:200] if event.detail else ""
            lines.append(f"  +{event.at - job.created_at:7.2f}s {event.event} {detail}")
    lines += [
        f"  answer +{a.sent_at - (job.created_at if job else a.sent_at):.2f}s: {a.brief()}"[:300]
        for a in answers[:6]
    ]
    return lines


@dataclass
class Evidence:
    """What the invariants are checked on, gathered once every job has ended: the jobs table, every
    answer, a GET of every publishId answered, what Genesys applied and holds, what each callback
    record was told (in order)."""

    jobs: dict[str, Job]
    answers: list[Answer]
    views: dict[str, tuple[int, dict[str, Any]]]
    applied: dict[str, int]
    schedules: dict[str, dict[str, Any]]
    told: dict[tuple[str, str], list[str]]


def gather(jobs: dict[str, Job], answers: list[Answer], embedded: EmbeddedStack, client: Client) -> Evidence:
    told: dict[tuple[str, str], list[str]] = defaultdict(list)
    for update in embedded.servicenow.updates():
        if update.table and update.sys_id:
            told[(update.table, update.sys_id)].append(str((update.body or {}).get("u_wfm_publish_status")))
    answered = sorted({a.publish_id for a in answers if a.publish_id and a.kind != "cancel"})
    return Evidence(
        jobs=jobs,
        answers=list(answers),
        views={publish_id: client.get(publish_id) for publish_id in answered},
        applied=dict(embedded.simulator.stats()["publishesApplied"]),
        schedules={s: embedded.simulator.schedule_state(s) for s in {j.schedule_id for j in jobs.values()}},
        told=dict(told),
    )


def check(options: ChaosOptions, evidence: Evidence) -> list[Violation]:  # noqa: C901, PLR0912, PLR0915
    """The seven invariants, in the issue's order (one block each)."""
    found: list[Violation] = []
    jobs, answers, applied = evidence.jobs, evidence.answers, evidence.applied
    by_schedule: dict[str, list[Job]] = defaultdict(list)
    by_key: dict[str, list[Job]] = defaultdict(list)
    for job in jobs.values():
        by_schedule[job.schedule_id].append(job)
        if job.idempotency_key is not None:
            by_key[job.idempotency_key].append(job)
    answers_by_key: dict[str, list[Answer]] = defaultdict(list)
    for answer in answers:
        answers_by_key[answer.key].append(answer)

    # (1) at most one update of ours applied per job; never two jobs for one key
    for sid, count in sorted(applied.items()):
        published = [j for j in by_schedule.get(sid, []) if j.status is JobStatus.PUBLISHED]
        if count > len(published):
            found.append(
                Violation(
                    1,
                    f"schedule {sid}: {count} updates applied, {len(published)} job(s) ended PUBLISHED",
                    [line for j in by_schedule.get(sid, []) for line in trace(j)],
                )
            )
    for key, held in sorted(by_key.items()):
        if len(held) > 1:
            held.sort(key=lambda j: j.created_at)
            said = answers_by_key.get(key.removeprefix("api:"), [])  # the API keeps keys as api:<key>
            first = held[0].created_at
            lines = [line for j in held for line in trace(j)]
            lines += [
                f"  job {j.job_id} created +{j.created_at - first:.1f}s after the first" for j in held[1:]
            ]
            lines += [f"  answer sent +{a.sent_at - first:.1f}s: {a.brief()}"[:300] for a in said]
            found.append(Violation(1, f"idempotency key {key}: {len(held)} jobs", lines))

    # (2) every publishId answered exists and ended
    answered = {a.publish_id: a for a in answers if a.publish_id and a.kind != "cancel"}
    for publish_id, answer in sorted(answered.items()):
        status, view = evidence.views.get(publish_id, (0, {}))
        if status != 200:
            found.append(
                Violation(
                    2, f"publish {publish_id} answered to {answer.key}: GET {status}", trace(None, [answer])
                )
            )
        elif not JobStatus(view["status"]).terminal:
            found.append(
                Violation(
                    2, f"publish {publish_id} still {view['status']}", trace(jobs.get(publish_id), [answer])
                )
            )

    # (3) nothing left without an end (the watchdog's bound is long past by now)
    for job in jobs.values():
        if not job.status.terminal:
            overdue = time.time() - (job.due_at or job.updated_at)
            found.append(
                Violation(
                    3,
                    f"job {job.job_id} still {job.status.value}, due {overdue:.0f} s ago"
                    f" (bound {options.stuck_bound:.0f} s)",
                    trace(job),
                )
            )

    # (4) CANCELLED: nothing of it applied; PUBLISHED: the schedule is published past the job's base
    for job in jobs.values():
        state = evidence.schedules[job.schedule_id]
        if (
            job.status is JobStatus.CANCELLED
            and len(by_schedule[job.schedule_id]) == 1
            and applied.get(job.schedule_id, 0)
        ):
            found.append(
                Violation(
                    4,
                    f"job {job.job_id} CANCELLED but {applied[job.schedule_id]} update(s) applied",
                    trace(job),
                )
            )
        if job.status is JobStatus.PUBLISHED and (
            not state["published"] or job.base_version is None or state["version"] <= job.base_version
        ):
            found.append(
                Violation(
                    4,
                    f"job {job.job_id} PUBLISHED but schedule {job.schedule_id} is"
                    f" published={state['published']}"
                    f" at version {state['version']} (job base {job.base_version})",
                    trace(job),
                )
            )
    for answer in answers:
        if answer.kind == "cancel" and answer.status == 200 and answer.publish_id:
            target = jobs.get(answer.publish_id)
            if target is None or target.status is not JobStatus.CANCELLED:
                found.append(
                    Violation(
                        4,
                        f"cancel of {answer.publish_id} answered 200,"
                        f" job ended {target and target.status.value}",
                        trace(target, [answer]),
                    )
                )

    # (5) every callback record got the job's end, and never another end
    for job in jobs.values():
        if not job.status.terminal:
            continue
        for table, sys_id in expected_callbacks(job):
            told = evidence.told.get((table, sys_id), [])
            statuses = set(told)
            if not told:
                found.append(
                    Violation(
                        5,
                        f"callback {table}/{sys_id} of job {job.job_id} never told {job.status.value}",
                        trace(job),
                    )
                )
            elif statuses != {job.status.value}:
                found.append(
                    Violation(
                        5,
                        f"callback {table}/{sys_id} of job {job.job_id} ({job.status.value})"
                        f" told {sorted(statuses)}",
                        trace(job),
                    )
                )
    for answer in answers:  # a request answered with a job: its callback hears that job's end
        if answer.status != 202 or not answer.callback or not answer.publish_id:
            continue
        answered_job = jobs.get(answer.publish_id)
        if (
            answered_job is not None
            and answered_job.status.terminal
            and answer.callback not in expected_callbacks(answered_job)
        ):
            found.append(
                Violation(
                    5,
                    f"{answer.kind} {answer.key} answered {answer.publish_id},"
                    " its callback is not on the job",
                    trace(answered_job, [answer]),
                )
            )

    # (6) the same key and body: always the same publishId; another body: 422
    for key, said in sorted(answers_by_key.items()):
        same = [a for a in said if a.kind in ("first", "duplicate", "joiner")]
        ids = {a.publish_id for a in same if a.status == 202}
        if len(ids) > 1:
            found.append(
                Violation(
                    6, f"key {key} answered {len(ids)} publishIds: {sorted(map(str, ids))}", trace(None, said)
                )
            )
        for a in same:
            if a.status != 202:
                found.append(
                    Violation(6, f"{a.kind} with key {key} answered {a.status}, not 202", trace(None, [a]))
                )
        for a in said:
            if a.kind == "other-body" and a.status != 422:
                found.append(
                    Violation(
                        6,
                        f"key {key} reused with another body answered {a.status}, not 422",
                        trace(None, [a]),
                    )
                )

    # (7) every job ended by its deadline plus one step
    for job in jobs.values():
        if job.status.terminal and job.updated_at > job.deadline_at + options.deadline_slack:
            late = job.updated_at - job.deadline_at
            found.append(Violation(7, f"job {job.job_id} ended {late:.0f} s after its deadline", trace(job)))
    return found


# --------------------------------------------------------------------------- the command


def report(outcome: Outcome, echo: Callable[[str], None] = print) -> None:
    f, o = outcome.figures, outcome.options
    for v in outcome.violations:
        echo(f"VIOLATION ({v.invariant}) seed {o.seed}: {v.message}")
        for line in v.trace:
            echo(f"    {line}")
    echo(f"chaos stack run, seed {o.seed}:")
    echo(f"  jobs            {f.jobs}  {dict(sorted(f.by_status.items()))}")
    echo(f"  requests        {f.requests} ({f.attempts} attempts)  {dict(sorted(f.answers.items()))}")
    echo(f"  AWS faults      {dict(sorted(f.aws_faults.items()))}")
    echo(f"  Genesys faults  {dict(sorted(f.genesys_faults.items()))}")
    echo(f"  crashes         {sum(f.crashes.values())}  {dict(sorted(f.crashes.items()))}")
    echo(f"  redeliveries    {f.redeliveries}")
    echo(
        f"  watchdog        {f.watchdog_moved} moved on ({f.watchdog_found} found overdue; the longest"
        f" overdue {f.longest_overdue:.0f} s, bound {o.stuck_bound:.0f} s)"
    )
    echo(f"  dead letters    {f.dead_letters} settled")
    echo(f"  Genesys         {f.publishes_applied} updates applied; {f.callbacks} callbacks delivered")
    echo(
        f"  wall time       {f.wall_seconds} s (all jobs ended at {f.settle_seconds} s;"
        f" the last answer came {f.send_seconds} s after the first request)"
    )
    echo(f"  violations      {f.violations}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m wfm_publish_local.chaos.stack", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--jobs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--send-rate",
        type=float,
        default=1.5,
        help="first requests per second (1.5: what a 2-core machine carries without a backlog, in which"
        " queued jobs look stuck to the run's short watchdog bound)",
    )
    parser.add_argument("--crash-rate", type=float, default=ChaosOptions.crash_rate)
    parser.add_argument("--api-crash-rate", type=float, default=ChaosOptions.api_crash_rate)
    parser.add_argument("--visibility-timeout", type=int, default=ChaosOptions.visibility_timeout)
    parser.add_argument(
        "--overdue-after", type=float, default=ChaosOptions.overdue_after, help="the watchdog's bound (s)"
    )
    parser.add_argument(
        "--deadline-jobs", type=int, default=None, help="jobs that must end at their deadline (60 s)"
    )
    parser.add_argument(
        "--timeout", type=float, default=ChaosOptions.timeout, help="wall seconds for every job to end"
    )
    parser.add_argument("--no-faults", action="store_true", help="no AWS or Genesys faults (crashes still)")
    parser.add_argument("--verbose", action="store_true", help="the runner's and the functions' logs too")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not args.verbose:
        # Every crash and injected fault is logged by the runner as the failure it is: too many to read.
        for name in ("wfm_publish_local.runner", "wfm_publish_local.faultproxy", "botocore", "urllib3"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "CRITICAL")
    options = ChaosOptions(
        jobs=args.jobs,
        seed=args.seed,
        send_rate=args.send_rate,
        crash_rate=args.crash_rate,
        api_crash_rate=args.api_crash_rate,
        visibility_timeout=args.visibility_timeout,
        overdue_after=args.overdue_after,
        deadline_jobs=args.deadline_jobs,
        timeout=args.timeout,
        faults=not args.no_faults,
    )
    outcome = run(options, echo=lambda line: print(line, flush=True))
    report(outcome, echo=lambda line: print(line, flush=True))
    return 0 if outcome.ok else 1


if __name__ == "__main__":
    sys.exit(main())
