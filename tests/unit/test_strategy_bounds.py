"""The wait strategy's bounds, as properties over many random inputs, and through the pipeline:
never more than 900 s a hop, never past the deadline, Retry-After honoured, overshoot past the
settle point at most a tenth of the wait (and never over 2 minutes), few looks for long waits."""

from __future__ import annotations

import json
import math
import random
from typing import Any

import pytest

from tests.support.virtual import REQUEST, accept, demo, edge_update, virtual_run
from wfm_publish import waiting
from wfm_publish.clock import VirtualClock
from wfm_publish.models import JobMessage, JobStatus, PublishRequest, ReasonCode, Step
from wfm_publish.queues import EARLY_TOLERANCE, MAX_DELAY, Queue, QueueSender
from wfm_publish.readiness import Observation, Readiness, judge
from wfm_publish_local.virtual import VirtualRun

CASES = 3000
SETTLE_WINDOWS = (0.0, 1.0, 2.0, 5.0, 30.0, 60.0, 300.0, 1200.0)


def blocked(now: float, settle: float) -> Readiness:
    return judge([Observation("edge", "e", None, ("softwareStatus IN_PROGRESS",), None)], now, settle)


def settling(now: float, settle: float, changed_at: float) -> Readiness:
    return judge([Observation("edge", "e", None, (), changed_at)], now, settle)


# --- the delay itself ----------------------------------------------------------------------------------


def test_a_wait_never_reaches_past_the_deadline_and_never_spins() -> None:
    rng = random.Random(1)
    for _ in range(CASES):
        now = rng.uniform(0, 1e9)
        settle = rng.choice(SETTLE_WINDOWS)
        remaining = rng.choice([rng.uniform(-100, 3), rng.uniform(0, 60), rng.uniform(0, 40_000)])
        waited = rng.uniform(0, 40_000)
        seen = (
            settling(now, settle, now - rng.uniform(0, settle))
            if settle and rng.random() < 0.3
            else blocked(now, settle)
        )
        delay = waiting.next_check_delay(seen, waited=waited, now=now, deadline_at=now + remaining)
        assert 0 <= delay <= max(0.0, remaining) + 1e-6
        if remaining > 0:
            assert delay > 0  # no busy loop of zero delays
        if remaining > 2 * waiting.SQS_ROUNDING:
            # SQS rounds delays up to whole seconds: the look still lands before the deadline.
            assert math.ceil(delay) < remaining


def test_looks_at_unsettled_telephony_are_spaced_by_the_window_plus_a_tenth_of_the_wait() -> None:
    rng = random.Random(2)
    for _ in range(CASES):
        settle = rng.choice(SETTLE_WINDOWS)
        waited = rng.uniform(0, 30_000)
        delay = waiting.next_check_delay(blocked(0.0, settle), waited=waited, now=0.0, deadline_at=1e9)
        floor = max(waiting.MIN_INTERVAL, settle - waiting.SQS_ROUNDING)
        assert floor <= delay <= floor + waiting.MAX_OVERSHOOT
        assert delay - floor <= 0.1 * waited + 1e-9


def test_a_known_settle_moment_is_waited_for_exactly() -> None:
    rng = random.Random(3)
    for _ in range(CASES):
        settle = rng.choice([s for s in SETTLE_WINDOWS if s > 0])
        now = rng.uniform(0, 1e6)
        changed = now - rng.uniform(0, settle * 0.999)
        delay = waiting.next_check_delay(
            settling(now, settle, changed), waited=rng.uniform(0, 1e4), now=now, deadline_at=now + 1e6
        )
        assert delay == pytest.approx(changed + settle - now + waiting.SETTLE_MARGIN)


def test_other_waits_stay_within_their_caps_and_the_deadline() -> None:
    rng = random.Random(4)
    for _ in range(CASES):
        now, remaining = rng.uniform(0, 1e6), rng.uniform(-10, 2000)
        settle = rng.choice(SETTLE_WINDOWS)
        telephony = waiting.after_telephony_conflict(
            rng.randint(0, 50), settle, now=now, deadline_at=now + remaining
        )
        running = waiting.in_progress_delay(rng.uniform(0, 1e4), 5.0, now=now, deadline_at=now + remaining)
        for delay in (telephony, running):
            assert 0 <= delay <= max(0.0, remaining) + 1e-6
        assert running <= waiting.IN_PROGRESS_CAP
        assert telephony <= max(settle + waiting.SETTLE_MARGIN, waiting.check_interval(math.inf, settle))


def test_backoff_is_full_jitter_under_the_exponential_cap_for_any_count() -> None:
    rng = random.Random(5)
    for _ in range(CASES):
        failures = rng.choice([rng.randint(0, 12), rng.randint(0, 100_000)])
        delay = waiting.backoff(failures, rng)
        assert 0 <= delay <= min(waiting.BACKOFF_CAP, waiting.BACKOFF_BASE * 2.0 ** min(failures, 60))


# --- the waiting loop, simulated: looks against a change that ends at a random moment ---------------------


def wait_out(change_end: float, settle: float, deadline: float) -> tuple[float | None, int]:
    """Look at telephony as the pipeline does (from t = 0, SQS rounding delays up) until it is ready:
    answers when it found it ready (None: the deadline came first) and how many looks it took."""
    t, looks = 0.0, 0
    while t < deadline:
        looks += 1
        seen = blocked(t, settle) if t < change_end else settling(t, settle, change_end)
        if seen.ready:
            return t, looks
        t += math.ceil(waiting.next_check_delay(seen, waited=t, now=t, deadline_at=deadline))
    return None, looks


def test_overshoot_is_at_most_a_tenth_of_the_wait_and_never_two_minutes() -> None:
    rng = random.Random(6)
    for _ in range(1500):
        settle = rng.choice((2.0, 5.0, 30.0, 60.0, 300.0))
        change_end = rng.choice([rng.uniform(0, 60), rng.uniform(0, 3600), rng.uniform(0, 8 * 3600)])
        ready_at, looks = wait_out(change_end, settle, deadline=1e6)
        assert ready_at is not None
        overshoot = ready_at - (change_end + settle)
        assert overshoot >= 0  # never publishes into the settle window
        # SETTLE_MARGIN and the rounding up of the exact wait: at most 1.5 s late when it was known.
        assert overshoot <= max(waiting.SETTLE_MARGIN + waiting.SQS_ROUNDING, 0.1 * ready_at) + 1e-6
        assert overshoot <= 120
        # Looks grow with the logarithm of the wait, then one per (window + 115 s) at most.
        floor = max(waiting.MIN_INTERVAL, settle - waiting.SQS_ROUNDING)
        ramp = math.log(1 + waiting.MAX_OVERSHOOT / floor) / math.log(1 + waiting.WAITED_RATIO)
        assert looks <= 3 + ramp + ready_at / (floor + waiting.MAX_OVERSHOOT)


def test_a_change_longer_than_the_deadline_is_looked_at_until_just_before_it() -> None:
    rng = random.Random(7)
    for _ in range(300):
        deadline = rng.uniform(60, 8 * 3600)
        ready_at, looks = wait_out(deadline + 100, 30.0, deadline)
        assert ready_at is None
        assert looks >= 2


# --- queue hops: never more than 900 s on SQS --------------------------------------------------------------


class RecordingTransport:
    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock
        self.sent: list[tuple[float, int, str]] = []  # (due, delay_seconds, body)

    def send(self, queue: Queue, body: str, delay_seconds: int) -> None:
        self.sent.append((self.clock.now() + delay_seconds, delay_seconds, body))


def test_any_wait_hops_through_the_queue_at_most_900_s_at_a_time_and_arrives_on_time() -> None:
    rng = random.Random(8)
    for _ in range(500):
        clock = VirtualClock()
        transport = RecordingTransport(clock)
        sender = QueueSender(transport, clock)
        wanted = rng.choice([rng.uniform(0, 900), rng.uniform(900, 1000), rng.uniform(0, 7 * 86400)])
        start = clock.now()
        sender.send(Queue.VALIDATION, JobMessage(job_id="j", ticket="t", step=Step.VALIDATE), wanted)
        hops = 0
        while True:
            due, delay_seconds, body = transport.sent[-1]
            assert 0 <= delay_seconds <= MAX_DELAY
            clock.advance_to(due)
            hops += 1
            if not sender.hop_if_early(Queue.VALIDATION, JobMessage.model_validate_json(body)):
                break
        arrived = clock.now() - start
        assert wanted - EARLY_TOLERANCE <= arrived <= wanted + 1.0
        assert hops <= 1 + math.ceil(wanted / MAX_DELAY)


# --- through the pipeline -------------------------------------------------------------------------------

UPDATE = "/api/v2/workforcemanagement/businessunits/bu-demo/weeks/2023-10-23/schedules/sched-demo/update"
EDGE = "/api/v2/telephony/providers/edges/edge-demo-1"


def start(
    events: list[dict[str, Any]], faults: list[dict[str, Any]] | None = None, **request: Any
) -> tuple[VirtualRun, str, list[int]]:
    run = virtual_run(demo(events=events, faults=faults or [], settleWindowSeconds=30))
    delays: list[int] = []
    send = run.queues.send

    def recording(queue: Queue, body: str, delay_seconds: int) -> None:
        delays.append(delay_seconds)
        send(queue, body, delay_seconds)

    run.queues.send = recording  # type: ignore[method-assign]
    return run, accept(run, {**REQUEST, **request}), delays


@pytest.mark.parametrize("retry_after", [1, 7, 61, 900, 901, 2500])
@pytest.mark.parametrize("path", [UPDATE, EDGE])
def test_retry_after_is_honoured_on_the_queue_and_costs_no_publish_attempt(
    path: str, retry_after: int
) -> None:
    change = edge_update(8)
    limited = {"path": path, "sequence": [429], "retryAfter": retry_after}
    run, job_id, delays = start([change], [limited])
    job = run.run(job_id)
    assert job.status is JobStatus.PUBLISHED
    assert job.publish_attempts == 1
    entry = next(e for e in job.timeline if e.event == "rate limited by Genesys")
    after = next(e for e in job.timeline if e.at > entry.at)
    assert after.at - entry.at >= retry_after
    assert all(0 <= d <= MAX_DELAY for d in delays)  # long Retry-Afters hop


def test_the_pipeline_never_looks_past_a_requests_deadline() -> None:
    change = edge_update(7200)
    run, job_id, delays = start([change], deadlineSeconds=600)
    job = run.run(job_id)
    assert job.status is JobStatus.FAILED
    assert job.reason_code is ReasonCode.DEADLINE_EXCEEDED
    assert job.deadline_at - job.created_at == 600
    [looks] = [e for e in job.timeline if e.event == "telephony not settled"]  # one entry, counted
    assert looks.times > 1 and looks.until is not None
    assert looks.until + looks.detail["nextCheckInSeconds"] <= job.deadline_at
    assert job.deadline_at - looks.until <= waiting.SQS_ROUNDING + 1  # the last look just before it
    assert job.timeline[-1].at - job.deadline_at <= 1
    assert run.simulator.stats()["publishesApplied"] == {}
    assert all(d <= MAX_DELAY for d in delays)


def test_a_request_may_shorten_the_deadline_but_never_lengthen_it() -> None:
    run, job_id, _ = start([], deadlineSeconds=7 * 86400)
    job = run.store.jobs[job_id]
    assert job.deadline_at - job.created_at == 8 * 3600  # VirtualRun's configured default
    assert PublishRequest.model_validate(REQUEST).deadline_seconds is None  # the seed body is unchanged
    with pytest.raises(ValueError, match="deadlineSeconds"):
        PublishRequest.model_validate({**REQUEST, "deadlineSeconds": 5})
    body = json.loads(
        PublishRequest.model_validate({**REQUEST, "deadlineSeconds": 900}).model_dump_json(by_alias=True)
    )
    assert body["deadlineSeconds"] == 900
