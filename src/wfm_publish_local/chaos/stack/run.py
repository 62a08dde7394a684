"""Running the chaos: moto behind the fault proxy, the embedded stack with crashes, the requests,
the sweeps, then every job waited for and the invariants checked; and the report."""

from __future__ import annotations

import functools
import logging
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any, Self

import boto3

from wfm_publish.config import Settings
from wfm_publish.models import Job, JobStatus
from wfm_publish.pipeline import Pipeline
from wfm_publish.services import Services
from wfm_publish.store_items import job_from_item
from wfm_publish.watchdog import Rescue, rescue_overdue
from wfm_publish_local.chaos.stack.checks import Evidence, Violation, check, expected_callbacks, gather
from wfm_publish_local.chaos.stack.options import QUEUE_FUNCTIONS, ChaosOptions
from wfm_publish_local.chaos.stack.org import build_scenario
from wfm_publish_local.chaos.stack.traffic import Client, Sender, plan_requests
from wfm_publish_local.embedded import EmbeddedStack
from wfm_publish_local.faultproxy import FaultProxy, data_plane_plan
from wfm_publish_local.lifecycle import Running
from wfm_publish_local.runner.crash import CrashPlan
from wfm_publish_local.stack import LocalStack

log = logging.getLogger(__name__)


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


class Sweeper(Running):
    """The scheduled functions, on a short period: the dead-letter sweep through the runner (as its
    schedule would fire it), the watchdog as the core function with the run's short overdue bound."""

    def __init__(self, stack: LocalStack, every: float, rescue: Callable[[], Rescue]) -> None:
        self.stack = stack
        self.every = every
        self.rescue = rescue  # the watchdog's sweep, its collaborators and bound given
        self.found = self.moved = self.dead_letters = self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos-sweeper", daemon=True)

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                counts = self.stack.invoke("DeadLettersFunction", {})
                self.dead_letters += sum(v for k, v in dict(counts or {}).items() if k != "kept")
                rescue = self.rescue()
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
        shorten_timing(embedded.container.pipeline, options)
        embedded.simulator.reset()  # t = 0: the telephony changes are timed from now
        client = Client(embedded.api_url, embedded.auth)
        sender = Sender(client, options.senders)
        # The watchdog's collaborators, built from the stack's settings as its handler builds them.
        watchdog = Services(Settings.from_environment(stack.environment))
        rescue = functools.partial(
            rescue_overdue,
            watchdog.store,
            watchdog.transitions,
            watchdog.clock,
            overdue_after=options.overdue_after,
        )
        sweeper = running.enter_context(Sweeper(stack, options.sweep_every, rescue))
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


def shorten_timing(pipeline: Pipeline, options: ChaosOptions) -> None:
    """Give the functions' pipeline the run's time scale. Only waits change; every decision is the
    core's own."""
    from dataclasses import replace

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


def wait_for_callbacks(options: ChaosOptions, embedded: EmbeddedStack, jobs: dict[str, Job]) -> None:
    wanted = {cb for job in jobs.values() if job.status.terminal for cb in expected_callbacks(job)}
    give_up = time.monotonic() + options.callback_timeout
    while time.monotonic() < give_up:
        told = {(u.table, u.sys_id) for u in embedded.servicenow.updates()}
        if wanted <= told:
            return
        time.sleep(0.5)


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
