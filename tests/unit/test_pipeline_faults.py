"""What the pipeline does with each kind of Genesys trouble, in virtual time: the real core and the
real client, the simulator in-process injecting the fault. tests/unit/test_pipeline.py pins the
happy paths and the first cut of each fault; these pin the rest (reads and writes, counts, bounds).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.virtual import REQUEST, SCHEDULE, UPDATE, applied_once, edge_update, fault, start
from tests.support.virtual import quiet_demo as demo
from wfm_publish.clock import VirtualClock
from wfm_publish.models import Job, JobStatus, PublishRequest, ReasonCode, TimelineEntry
from wfm_publish.waiting import Timing
from wfm_publish_local.simulator import GenesysSimulator, parse_scenario
from wfm_publish_local.virtual import VirtualRun

UPLOAD_URL = SCHEDULE + "/update/uploadurl"
UPDATE_ROUTE = (
    "POST /api/v2/workforcemanagement/businessunits/{buId}/weeks/{weekId}/schedules/{scheduleId}/update"
)
BACKING_OFF = "Genesys unavailable; backing off"
RATE_LIMITED = "rate limited by Genesys"


def entries(job: Job, event: str) -> list[TimelineEntry]:
    return [e for e in job.timeline if e.event == event]


def gap_after(job: Job, entry: TimelineEntry) -> float:
    """Virtual seconds between an entry and the next one: how long the job waited on the queue."""
    later = [e.at for e in job.timeline if e.at > entry.at]
    return min(later) - entry.at


# --- 429 ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "method"),
    [(SCHEDULE, "GET"), (UPLOAD_URL, "POST")],
    ids=["on a read before publishing", "on the upload URL, mid-publish"],
)
def test_a_429_waits_exactly_retry_after_on_the_queue_and_spends_no_attempt(path: str, method: str) -> None:
    run, job_id = start(demo(faults=[fault(path, [429], method, retryAfter=20)]))
    job = run.run(job_id)
    assert job.status is JobStatus.PUBLISHED
    (limited,) = entries(job, RATE_LIMITED)
    assert limited.detail["retryAfter"] == 20
    assert gap_after(job, limited) >= 20  # a queue delay, not a sleep, and not shorter than asked
    assert job.publish_attempts == 1  # a refused publish costs nothing
    assert job.transient_failures == 0  # nor does it count as trouble
    assert applied_once(run)


def test_the_per_token_rate_limit_under_a_burst_of_jobs_delays_some_and_loses_none() -> None:
    jobs = 100  # at least 4 calls each (read, upload URL, update, confirm): over 300 in the first minute
    raw = {
        "name": "burst",
        "seed": 3,
        "today": "2023-10-25",
        "settleWindowSeconds": 2,
        "rateLimit": {"enabled": True, "requestsPerMinute": 300, "window": "sliding"},
        "generate": {
            "seed": 3,
            "businessUnits": jobs,
            "agentsPerManagementUnit": 2,
            "campaigns": 4,
            "sites": 2,
            "edgesPerSite": 2,
            "externalTrunksPerEdge": 2,
            "publishedShare": 0.0,
        },
    }
    scenario = parse_scenario(raw)
    clock = VirtualClock()
    run = VirtualRun(GenesysSimulator(scenario, clock), clock, Timing(settle_window=2.0))
    ids = []
    for n in range(1, jobs + 1):
        request = {**REQUEST, "scheduleId": f"gen-sched-{n:03d}", "businessUnitId": f"gen-bu-{n:03d}"}
        accepted = run.intake.accept(PublishRequest.model_validate(request), f"burst-{n}")
        ids.append(accepted.body["publishId"])
    ended = {job_id: run.run(job_id) for job_id in ids}
    stats = run.simulator.stats()
    assert stats["rateLimited"] > 0  # the burst did go over 300 requests a minute on the one token
    assert stats["tokensIssued"] == 1  # one container, one token, however many jobs
    assert all(job.status is JobStatus.PUBLISHED for job in ended.values())
    assert sum(stats["publishesApplied"].values()) == jobs
    assert all(n == 1 for n in stats["publishesApplied"].values())
    limited = [job for job in ended.values() if entries(job, RATE_LIMITED)]
    assert limited
    for job in limited:
        for entry in entries(job, RATE_LIMITED):
            assert gap_after(job, entry) >= entry.detail["retryAfter"]
        assert job.publish_attempts <= 1 + job.conflict_retries  # 429s spent nothing


# --- 5xx, dropped connections, timeouts --------------------------------------------------------------


def test_5xx_on_reads_back_off_exponentially_with_jitter_then_publish() -> None:
    statuses = [500, 502, 503, 504]
    run, job_id = start(demo(faults=[fault(SCHEDULE, statuses, "GET")]), seed=11)
    job = run.run(job_id)
    assert job.status is JobStatus.PUBLISHED
    assert job.transient_failures == len(statuses)
    assert job.publish_attempts == 1  # failed reads spend no publish attempt
    backoffs = entries(job, BACKING_OFF)
    assert [b.detail["status"] for b in backoffs] == statuses
    for n, entry in enumerate(backoffs):
        assert gap_after(job, entry) <= 2**n + 1  # full jitter in [0, 2^n], SQS rounds up a second
    assert applied_once(run)


def test_backoff_jitter_differs_between_workers() -> None:
    def gaps(seed: int) -> list[float]:
        run, job_id = start(demo(faults=[fault(SCHEDULE, [503] * 5, "GET")]), seed=seed)
        job = run.run(job_id)
        return [round(gap_after(job, e), 3) for e in entries(job, BACKING_OFF)]

    assert gaps(1) != gaps(2)  # two jobs hit by the same outage do not come back in step


def test_a_5xx_on_the_update_itself_publishes_once_after_a_backoff() -> None:
    run, job_id = start(demo(faults=[fault(UPDATE, [503], "POST")]))
    job = run.run(job_id)
    assert job.status is JobStatus.PUBLISHED
    assert job.transient_failures == 1
    assert applied_once(run)


@pytest.mark.parametrize(
    "trouble",
    [{"sequence": ["drop"]}, {"sequence": ["pass"], "latencySeconds": 15}],
    ids=["dropped connection", "read timeout (15 s > 10 s)"],
)
def test_a_dropped_connection_or_a_read_timeout_is_transient_and_backs_off(trouble: dict[str, Any]) -> None:
    run, job_id = start(demo(faults=[{"path": SCHEDULE, "method": "GET", **trouble}]))
    job = run.run(job_id)
    assert job.status is JobStatus.PUBLISHED
    assert job.transient_failures == 1
    (backoff,) = entries(job, BACKING_OFF)
    assert "status" not in backoff.detail  # no HTTP answer at all
    assert job.publish_attempts == 1
    assert applied_once(run)


def test_a_timeout_on_the_update_whose_update_did_land_is_not_published_twice() -> None:
    # The simulator accepts the update, then the answer is late: the client gives up at its read
    # timeout not knowing. The next look at the schedule finds it applied (or in progress).
    slow = {"path": UPDATE, "method": "POST", "sequence": ["pass"], "latencySeconds": 15}
    run, job_id = start(demo(faults=[slow]))
    job = run.run(job_id)
    assert job.status is JobStatus.PUBLISHED
    assert applied_once(run)
    assert run.simulator.stats()["calls"][UPDATE_ROUTE] == 1


# --- 401, 403, 404 ------------------------------------------------------------------------------------


def test_a_401_mid_life_renews_the_token_once_and_the_call_succeeds() -> None:
    run, job_id = start(demo(faults=[fault(SCHEDULE, [401], "GET")]))
    job = run.run(job_id)
    assert job.status is JobStatus.PUBLISHED
    assert run.simulator.stats()["tokensIssued"] == 2  # the first, and one renewal on the 401
    assert run.genesys.renewals_on_401 == 1
    assert job.transient_failures == 0  # the job never saw it
    assert not entries(job, BACKING_OFF)


def test_a_401_a_fresh_token_does_not_cure_fails_genesys_auth_failed() -> None:
    run, job_id = start(demo(faults=[fault(SCHEDULE, [401, 401], "GET")]))
    job = run.run(job_id)
    assert job.status is JobStatus.FAILED
    assert job.reason_code is ReasonCode.GENESYS_AUTH_FAILED
    assert run.simulator.stats()["tokensIssued"] == 2  # renewed once, not in a loop


def test_short_lived_tokens_are_renewed_before_they_expire_through_a_long_wait() -> None:
    change = edge_update(3600)
    raw = demo(credentials={"clientId": "local-client", "clientSecret": "local-secret", "expiresIn": 300})
    raw["events"] = [change]
    run, job_id = start(raw)
    job = run.run(job_id)
    assert job.status is JobStatus.PUBLISHED
    tokens = run.simulator.stats()["tokensIssued"]
    # A 5-minute token is renewed 30 s early, at the first call after that point; the job looked at
    # telephony for an hour. No call ever met an expired token: nothing was renewed on a 401.
    assert 3 <= tokens <= 3600 / 270 + 2
    assert run.genesys.tokens_fetched == tokens
    assert run.genesys.renewals_on_401 == 0
    assert job.transient_failures == 0


def test_a_403_fails_genesys_auth_failed_with_the_genesys_error() -> None:
    run, job_id = start(demo(faults=[fault(SCHEDULE, [403], "GET")]))
    job = run.run(job_id)
    assert job.status is JobStatus.FAILED
    assert job.reason_code is ReasonCode.GENESYS_AUTH_FAILED
    assert job.detail is not None and "403" in job.detail
    assert run.simulator.stats()["publishesApplied"] == {}


def test_a_404_on_the_schedule_fails_schedule_not_found() -> None:
    run, job_id = start(demo(faults=[fault(SCHEDULE, [404], "GET")]))
    job = run.run(job_id)
    assert job.status is JobStatus.FAILED
    assert job.reason_code is ReasonCode.SCHEDULE_NOT_FOUND


def test_a_bare_schedule_id_is_located_through_weeks_recent_then_published() -> None:
    bare = {"scheduleId": "sched-demo"}
    run, job_id = start(demo(), bare)
    job = run.run(job_id)
    assert job.status is JobStatus.PUBLISHED
    (located,) = entries(job, "schedule located")
    assert located.detail == {"businessUnitId": "bu-demo", "weekId": "2023-10-23"}


def test_a_bare_schedule_id_in_no_business_unit_fails_schedule_not_found() -> None:
    run, job_id = start(demo(), {"scheduleId": "sched-elsewhere"})
    job = run.run(job_id)
    assert job.status is JobStatus.FAILED
    assert job.reason_code is ReasonCode.SCHEDULE_NOT_FOUND


# --- a failed asynchronous publish operation ---------------------------------------------------------------


def test_a_failed_update_operation_is_published_again_exactly_once() -> None:
    operation = {"type": "publishOperation", "scheduleId": "sched-demo", "failFirst": 1}
    run, job_id = start(demo(events=[operation]))
    job = run.run(job_id)
    assert job.status is JobStatus.PUBLISHED
    stats = run.simulator.stats()
    assert stats["publishesFailed"] == {"sched-demo": 1}
    assert stats["publishesApplied"] == {"sched-demo": 1}
    assert stats["calls"][UPDATE_ROUTE] == 2  # the lost one and one more, never a third
    assert job.publish_attempts == 2


# --- one token per container ----------------------------------------------------------------------


def test_one_token_serves_every_call_of_several_jobs() -> None:
    raw = demo(events=[edge_update(60)])
    run, first = start(raw)
    assert run.run(first).status is JobStatus.PUBLISHED
    # Two more jobs for the same schedule, one after the other, on the same container.
    for n in (2, 3):
        accepted = run.intake.accept(PublishRequest.model_validate(REQUEST), f"key-{n}")
        assert run.run(accepted.body["publishId"]).status is JobStatus.PUBLISHED
    stats = run.simulator.stats()
    calls = sum(n for route, n in stats["calls"].items() if not route.startswith("POST /oauth"))
    assert calls > 30
    assert stats["tokensIssued"] == 1
    assert run.genesys.tokens_fetched == 1
