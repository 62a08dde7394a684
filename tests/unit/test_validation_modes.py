"""validationMode and telephonySync in virtual time: the real core, the simulator in-process (issue 4).

strict   = wait for readiness, check capacity, then publish
deferred = wait for readiness, publish, then check capacity (a warning, still PUBLISHED)
off      = publish at once: no telephony read, no capacity check
"""

from __future__ import annotations

from typing import Any

from tests.support.virtual import T0, accept, edge_update, events, request, virtual_run
from tests.support.virtual import raw_scenario as scenario
from wfm_publish.intake import job_view
from wfm_publish.models import Job, JobStatus, PublishRequest, ReasonCode
from wfm_publish.scope import TelephonyOptions
from wfm_publish_local.virtual import VirtualRun


def start(
    raw: dict[str, Any], body: dict[str, Any], options: TelephonyOptions | None = None, key: str = "key-1"
) -> tuple[VirtualRun, str]:
    run = virtual_run(raw)
    if options is not None:
        run.pipeline.options = options
    return run, accept(run, body, key)


def first(job: Job, event: str) -> float:
    return next(e.at for e in job.timeline if e.event == event) - T0


def telephony_calls(run: VirtualRun) -> int:
    return sum(n for route, n in run.simulator.stats()["calls"].items() if "/telephony/" in route)


# --- readiness: only the schedule's telephony holds it ----------------------------------------------------


def test_a_change_on_an_edge_the_schedule_uses_holds_the_publish_until_it_settles() -> None:
    # demo.yaml without its other writer: LON-EDGE-01 updates its software t 0-8, settle window 2 s.
    update = edge_update(8)
    run, job_id = start(scenario("demo", events=[update]), request("sched-demo", "bu-demo"))
    job = run.run(job_id)
    assert job.status is JobStatus.PUBLISHED
    waits = [e for e in job.timeline if e.event == "telephony not settled"]
    assert waits
    assert "edge LON-EDGE-01" in waits[0].detail["blockers"][0]
    assert first(job, "publishing") >= 8 + 2  # not before the settle window closed
    assert run.simulator.stats()["conflictsSent"] == {"stale": 0, "telephony": 0, "inProgress": 0}
    assert job.publish_attempts == 1
    assert run.simulator.stats()["publishesApplied"] == {"sched-demo": 1}


def test_a_waiting_check_costs_one_read() -> None:
    # A 2-hour Edge update: every check while it runs re-reads only the Edge that blocks.
    update = edge_update(7200)
    run, job_id = start(scenario("demo", events=[update]), request("sched-demo", "bu-demo"))
    job = run.run(job_id)
    assert job.status is JobStatus.PUBLISHED
    [waits] = [e for e in job.timeline if e.event == "telephony not settled"]  # one entry, counted
    assert waits.times > 10
    assert waits.detail["reads"] == 1 and waits.detail["rechecked"] == ["edge:edge-demo-1"]  # the last
    # The first look read the whole site; each look after it, the Edge alone (and the last, settled one
    # the Edge, then the site).
    assert run.simulator.stats()["calls"]["GET /api/v2/telephony/providers/edges/{edgeId}"] == waits.times
    assert run.simulator.stats()["calls"]["GET /api/v2/outbound/campaigns"] == 1  # the scope: once per job
    assert run.simulator.stats()["conflictsSent"]["telephony"] == 0
    assert job.blocked_by == []


def test_a_change_on_an_unrelated_edge_does_not_hold_it() -> None:
    raw = scenario("unrelated-edge-change")
    run, job_id = start(raw, request("sched-calm", "bu-calm"))
    job = run.run(job_id)
    assert job.status is JobStatus.PUBLISHED
    assert "telephony not settled" not in events(job)
    assert first(job, "publishing") == 5.0  # delayMs, then at once
    assert job.scope is not None
    assert [p.edges for p in job.scope.pools] == [["edge-calm"]]
    assert run.simulator.stats()["conflictsSent"]["telephony"] == 0

    # The same org, the schedule whose campaign dials through the changing Edge: held until 600 + 10.
    run, job_id = start(raw, request("sched-other", "bu-calm"))
    job = run.run(job_id)
    assert job.status is JobStatus.PUBLISHED
    assert first(job, "publishing") >= 610
    assert run.simulator.stats()["conflictsSent"]["telephony"] == 0


def test_telephony_sync_disabled_skips_the_wait_but_still_checks_capacity() -> None:
    raw = scenario("capacity-exceeded")
    body = request("sched-cap", "bu-cap", telephonySync={"enabled": False, "retryCount": 3, "delayMs": 5000})
    run, job_id = start(raw, body)
    job = run.run(job_id)
    assert job.status is JobStatus.FAILED
    assert job.reason_code is ReasonCode.CAPACITY_EXCEEDED
    assert not any(e.startswith("telephony settled") or e == "telephony not settled" for e in events(job))
    assert first(job, "failed") == 0.0  # delayMs is the readiness wait's: disabled, no delay


def test_delay_ms_is_the_first_look_and_retry_count_the_publish_budget() -> None:
    writer = {"type": "writerEdit", "scheduleId": "sched-demo", "trigger": "beforeFirstUpdate"}
    body = request(
        "sched-demo", "bu-demo", telephonySync={"enabled": True, "retryCount": 0, "delayMs": 12000}
    )
    run, job_id = start(scenario("demo", events=[writer]), body)
    job = run.run(job_id)
    assert first(job, "telephony scope") == 12.0
    assert job.status is JobStatus.FAILED
    assert job.reason_code is ReasonCode.RETRIES_EXHAUSTED
    assert job.publish_attempts == 1


# --- capacity ----------------------------------------------------------------------------------------------


def test_strict_fails_capacity_exceeded_with_the_hand_counted_intervals() -> None:
    run, job_id = start(scenario("capacity-exceeded"), request("sched-cap", "bu-cap"))
    job = run.run(job_id)
    assert job.status is JobStatus.FAILED
    assert job.reason_code is ReasonCode.CAPACITY_EXCEEDED
    assert run.simulator.stats()["publishesApplied"] == {}  # nothing published
    report = job.capacity
    assert report is not None
    # Hand count (scenarios/capacity-exceeded.yaml):
    #   available at Leeds: trunks 2 x 20 = 40, line distribution 40; floor(40 x 0.9) = 36; reserved 0
    #   Mon-Fri 12:00-13:00 and 13:30-17:00 London: 8 sales x 4 + 2 retention x 2 + 4 agentless = 40
    #   4 + 14 = 18 intervals a day x 5 days = 90 over, in 10 ranges; 676 intervals in the week (169 h)
    assert (report.intervals_checked, report.intervals_over) == (676, 90)
    (pool,) = report.pools
    assert (pool.name, pool.lines_available, pool.peak_needed) == ("Leeds", 36, 40)
    assert (pool.max_outbound_line_count, pool.trunk_max_concurrent_calls, pool.reserved_lines) == (40, 40, 0)
    assert pool.max_line_utilization == 0.9
    assert len(report.over) == 10
    assert report.more_over == 0
    labels = [o.label for o in report.over]
    assert labels[:3] == [
        "Mon 23 Oct 12:00-13:00 Europe/London (11:00-12:00 UTC) at Leeds",
        "Mon 23 Oct 13:30-17:00 Europe/London (12:30-16:00 UTC) at Leeds",
        "Tue 24 Oct 12:00-13:00 Europe/London (11:00-12:00 UTC) at Leeds",
    ]
    assert labels[-1] == "Fri 27 Oct 13:30-17:00 Europe/London (12:30-16:00 UTC) at Leeds"
    assert [o.intervals for o in report.over] == [4, 14] * 5
    assert {(o.lines_needed, o.lines_available) for o in report.over} == {(40, 36)}
    noon = report.over[0]
    assert (noon.start, noon.start_utc) == ("2023-10-23T12:00:00+01:00", "2023-10-23T11:00:00Z")
    assert [(c.campaign_id, c.agents, c.lines_per_agent, c.lines) for c in noon.campaigns] == [
        ("campaign-sales", 8, 4, 32),
        ("campaign-retention", 2, 2, 4),
        ("campaign-reminders", 0, 0, 4),
    ]
    assert job.detail == report.summary
    assert job.detail.startswith("90 of 676 15-minute intervals over capacity in 10 ranges")
    view = job_view(job)
    assert view["capacity"]["intervalsOver"] == 90
    assert view["capacity"]["over"][0]["label"] == labels[0]
    assert view["telephonyScope"]["campaigns"][0]["id"] == "campaign-sales"


def test_strict_within_capacity_publishes_after_checking() -> None:
    update = edge_update(8)
    run, job_id = start(scenario("demo", events=[update]), request("sched-demo", "bu-demo"))
    job = run.run(job_id)
    assert job.status is JobStatus.PUBLISHED
    names = events(job)
    assert names.index("telephony settled") < names.index("capacity checked") < names.index("publishing")
    assert job.capacity is not None
    assert job.capacity.ok
    # demo.yaml: 6 agents x maxCallsPerAgent 3 at 12:30-16:00; 2 trunks x 30 x 0.9 = 54 lines.
    assert (job.capacity.pools[0].peak_needed, job.capacity.pools[0].lines_available) == (18, 54)


def test_deferred_publishes_and_attaches_the_report_as_a_warning() -> None:
    run, job_id = start(scenario("capacity-exceeded"), request("sched-cap", "bu-cap", "deferred"))
    job = run.run(job_id)
    assert job.status is JobStatus.PUBLISHED
    assert job.reason_code is ReasonCode.PUBLISHED
    assert run.simulator.stats()["publishesApplied"] == {"sched-cap": 1}
    names = events(job)
    assert names.index("publishing") < names.index("capacity checked after publishing")
    assert job.capacity is not None
    assert job.capacity.intervals_over == 90
    assert len(job.warnings) == 1
    assert job.warnings[0].startswith("CAPACITY_EXCEEDED: 90 of 676")
    assert "warning: CAPACITY_EXCEEDED" in (job.detail or "")
    view = job_view(job)
    assert view["warnings"] == job.warnings
    assert view["capacity"]["ok"] is False


def test_off_publishes_at_once() -> None:
    run, job_id = start(scenario("capacity-exceeded"), request("sched-cap", "bu-cap", "off"))
    job = run.run(job_id)
    assert job.status is JobStatus.PUBLISHED
    # No wait (not even delayMs), no telephony read, no capacity check (the week is over capacity).
    assert events(job)[:3] == ["accepted", "publishing", "update accepted"]
    assert first(job, "publishing") == 0.0
    assert telephony_calls(run) == 0
    assert not any(route.startswith("GET /api/v2/outbound") for route in run.simulator.stats()["calls"])
    assert (job.scope, job.capacity, job.publish_attempts) == (None, None, 1)


def test_off_does_not_wait_for_telephony_even_while_it_changes() -> None:
    update = edge_update(600, entity_id="edge-cap-1")
    raw = scenario("capacity-exceeded", events=[update])
    run, job_id = start(raw, request("sched-cap", "bu-cap", "off"))
    job = run.run(job_id)
    # The user's choice: publish now. Genesys refuses it while the Edge updates (409 telephony) and
    # the conflict path takes over; the job never read telephony itself.
    assert first(job, "publishing") == 0.0
    assert run.simulator.stats()["conflictsSent"]["telephony"] >= 1
    assert telephony_calls(run) == 0


def test_deferred_waits_out_a_429_on_the_capacity_check_and_still_attaches_the_report() -> None:
    fault = {"path": "/api/v2/outbound/campaigns/*/linedistribution", "sequence": [429], "retryAfter": 3}
    run, job_id = start(
        scenario("capacity-exceeded", faults=[fault]), request("sched-cap", "bu-cap", "deferred")
    )
    job = run.run(job_id)
    assert job.status is JobStatus.PUBLISHED
    names = events(job)
    assert "published; capacity check deferred" in names
    assert names.index("published; capacity check deferred") < names.index(
        "capacity checked after publishing"
    )
    assert job.capacity is not None
    assert job.capacity.intervals_over == 90
    assert run.simulator.stats()["publishesApplied"] == {"sched-cap": 1}


def test_strict_waits_out_a_429_on_the_capacity_check() -> None:
    fault = {"path": "/api/v2/outbound/campaigns/*/linedistribution", "sequence": [429], "retryAfter": 3}
    run, job_id = start(scenario("demo", events=[], faults=[fault]), request("sched-demo", "bu-demo"))
    job = run.run(job_id)
    assert job.status is JobStatus.PUBLISHED
    names = events(job)
    assert (
        names.index("rate limited by Genesys") < names.index("capacity checked") < names.index("publishing")
    )
    # The scope was saved with the 429 and reused after it, not computed again.
    assert names.count("telephony scope") == 1
    assert names.index("telephony scope") < names.index("rate limited by Genesys")


# --- dry runs (dryRun: true) ---------------------------------------------------------------------------


def test_a_dry_run_waits_checks_capacity_and_ends_checked_without_publishing() -> None:
    for mode in ("strict", "deferred", "off"):  # the checks run whatever the mode says about a publish
        run, job_id = start(scenario("demo"), request("sched-demo", "bu-demo", mode, dryRun=True))
        job = run.run(job_id)
        assert job.status is JobStatus.CHECKED and job.status.terminal, mode
        assert job.reason_code is ReasonCode.DRY_RUN
        assert job.capacity is not None and job.capacity.ok
        names = events(job)
        assert (
            names.index("telephony not settled") < names.index("telephony settled") < names.index("checked")
        )
        assert "publishing" not in names and job.publish_attempts == 0
        assert run.simulator.stats()["publishesApplied"] == {}
        assert job_view(job)["dryRun"] is True and job_view(job)["capacity"]["ok"] is True


def test_a_dry_run_over_capacity_ends_checked_with_the_report() -> None:
    run, job_id = start(scenario("capacity-exceeded"), request("sched-cap", "bu-cap", dryRun=True))
    job = run.run(job_id)
    assert job.status is JobStatus.CHECKED
    assert job.reason_code is ReasonCode.CAPACITY_EXCEEDED
    assert job.capacity is not None and not job.capacity.ok and job.capacity.summary in (job.detail or "")
    assert run.simulator.stats()["publishesApplied"] == {}


def test_a_dry_run_takes_no_claim_and_is_never_joined() -> None:
    run, dry_id = start(scenario("demo"), request("sched-demo", "bu-demo", dryRun=True))
    assert run.store.active_job("sched-demo") is None  # no schedule claim
    real = run.intake.accept(PublishRequest.model_validate(request("sched-demo", "bu-demo")), "key-2")
    assert real.body["joined"] is False and real.body["publishId"] != dry_id
    again = run.intake.accept(
        PublishRequest.model_validate(request("sched-demo", "bu-demo", dryRun=True)), "key-3"
    )
    assert again.body["joined"] is False and again.body["publishId"] not in {dry_id, real.body["publishId"]}
    assert run.store.active_job("sched-demo") is not None  # the real publish holds it
    assert run.run(dry_id).status is JobStatus.CHECKED
    assert run.run(real.body["publishId"]).status is JobStatus.PUBLISHED
    assert run.simulator.stats()["publishesApplied"] == {"sched-demo": 1}
