"""Shared readiness observations: one read of a site serves every job that looks within seconds.

Against moto server (the DynamoDB conditional write and read), and in virtual time with many jobs
(reads counted at the simulator), with the store in memory and with the store on moto.
"""

from __future__ import annotations

from collections.abc import Iterable

from tests.support.virtual import T0, request
from tests.support.virtual import raw_scenario as scenario
from wfm_publish.clock import VirtualClock
from wfm_publish.models import JobMessage, JobStatus, PublishRequest
from wfm_publish.observations import Observer
from wfm_publish.scope import TelephonyOptions
from wfm_publish.store import DynamoJobStore
from wfm_publish.waiting import Timing
from wfm_publish_local.simulator import GenesysSimulator, parse_scenario
from wfm_publish_local.virtual import VirtualRun

TELEPHONY = ("/api/v2/telephony/", "/api/v2/outbound/", "/api/v2/routing/")
UNSHARED = TelephonyOptions(observation_max_age=0, reference_max_age=0)


# --- the table ---------------------------------------------------------------------------------------------


def test_an_observation_is_stored_and_read_back(store: DynamoJobStore) -> None:
    assert store.get_observation("site:s1") is None
    assert store.put_observation("site:s1", T0, {"pool": "site:s1", "observations": []}, 3600)
    assert store.get_observation("site:s1") == (T0, {"pool": "site:s1", "observations": []})
    item = store._get("observation#site:s1")  # the TTL attribute, as DynamoDB sees it
    assert item is not None
    assert int(item["expiresAt"]["N"]) == int(T0 + 3600)


def test_an_older_observation_never_replaces_a_newer_one(store: DynamoJobStore) -> None:
    assert store.put_observation("edge:e1", T0 + 2, {"seen": "newer"}, 60)
    assert not store.put_observation("edge:e1", T0 + 1, {"seen": "older"}, 60)  # conditional write refused
    assert not store.put_observation("edge:e1", T0 + 2, {"seen": "same moment"}, 60)
    assert store.get_observation("edge:e1") == (T0 + 2, {"seen": "newer"})
    assert store.put_observation("edge:e1", T0 + 3, {"seen": "newest"}, 60)
    assert store.get_observation("edge:e1") == (T0 + 3, {"seen": "newest"})


def test_an_observation_too_big_for_an_item_is_not_stored(store: DynamoJobStore) -> None:
    members = [f"user-{i:06d}-{'x' * 20}" for i in range(12_000)]  # ~370 KB of JSON
    assert not store.put_observation("queue:huge", T0, members, 60)
    assert store.get_observation("queue:huge") is None


def test_two_jobs_a_moment_apart_share_one_read(store: DynamoJobStore) -> None:
    reads: list[float] = []

    def read_at(moment: float) -> dict[str, float]:
        reads.append(moment)
        return {"at": moment}

    assert Observer(store, T0).get("site:s1", 5, lambda: read_at(T0)) == {"at": T0}
    assert Observer(store, T0 + 3).get("site:s1", 5, lambda: read_at(T0 + 3)) == {"at": T0}  # shared
    assert Observer(store, T0 + 6).get("site:s1", 5, lambda: read_at(T0 + 6)) == {"at": T0 + 6}  # too old
    assert reads == [T0, T0 + 6]


# --- many jobs in virtual time ---------------------------------------------------------------------------


def burst_run(options: TelephonyOptions | None = None, store: DynamoJobStore | None = None) -> VirtualRun:
    parsed = parse_scenario(scenario("weekly-burst"))
    clock = VirtualClock(T0)
    run = VirtualRun(
        GenesysSimulator(parsed, clock),
        clock,
        Timing(settle_window=parsed.settle_window_seconds),
        store=store,  # None: in memory; else the same run with the table on moto server
    )
    if options is not None:
        run.pipeline.options = options
    return run


def ask(run: VirtualRun, b: int) -> str:
    body = PublishRequest.model_validate(request(f"gen-sched-{b:03d}", f"gen-bu-{b:03d}"))
    return str(run.intake.accept(body, f"burst-{b:03d}").body["publishId"])


def burst(
    options: TelephonyOptions | None = None, store: DynamoJobStore | None = None
) -> tuple[VirtualRun, list[str]]:
    """All 20 schedules of scenarios/weekly-burst.yaml asked for at the same moment."""
    run = burst_run(options, store)
    return run, [ask(run, b) for b in range(1, 21)]


def run_all(run: VirtualRun, job_ids: Iterable[str], limit: float = 6 * 3600.0) -> list[JobStatus]:
    ids = list(job_ids)
    stop = run.clock.now() + limit
    while (delivery := run.queues.next()) is not None and delivery.due <= stop:
        run.clock.advance_to(delivery.due)
        try:
            run.pipeline.process(delivery.queue, JobMessage.model_validate_json(delivery.body))
        except Exception:  # as Lambda: redelivered after the visibility timeout
            run.queues.redeliver(delivery)
    statuses = []
    for job_id in ids:
        job = run.store.get_job(job_id)
        assert job is not None
        statuses.append(job.status)
    return statuses


def telephony_reads(run: VirtualRun) -> int:
    calls = run.simulator.stats()["calls"]
    return sum(n for route, n in calls.items() if any(p in route for p in TELEPHONY))


def test_a_weekly_burst_shares_telephony_reads() -> None:
    shared_run, shared_ids = burst()
    assert run_all(shared_run, shared_ids) == [JobStatus.PUBLISHED] * 20
    alone_run, alone_ids = burst(UNSHARED)
    assert run_all(alone_run, alone_ids) == [JobStatus.PUBLISHED] * 20
    for run in (shared_run, alone_run):
        stats = run.simulator.stats()
        assert stats["conflictsSent"]["telephony"] == 0  # nobody published into the update
        assert len(stats["publishesApplied"]) == 20
    shared, alone = telephony_reads(shared_run), telephony_reads(alone_run)
    # Every job re-reads what blocks it, but the jobs waiting on gen-site-01 look at the same moments:
    # one of them reads, the others reuse it. Campaigns and queue members are read once per burst.
    assert shared * 3 < alone, (shared, alone)
    calls = shared_run.simulator.stats()["calls"]
    assert calls["GET /api/v2/outbound/campaigns"] == 1
    assert (
        calls["GET /api/v2/telephony/providers/edges/{edgeId}"]
        < alone_run.simulator.stats()["calls"]["GET /api/v2/telephony/providers/edges/{edgeId}"] / 5
    )


def test_the_burst_shares_through_dynamodb_too(store: DynamoJobStore) -> None:
    run, ids = burst(store=store)
    assert run_all(run, ids) == [JobStatus.PUBLISHED] * 20
    assert run.simulator.stats()["calls"]["GET /api/v2/outbound/campaigns"] == 1
    assert store.get_observation("site:gen-site-01") is not None
    assert store.get_observation("edge:gen-edge-01-1") is not None
    waited = store.get_job(ids[0])
    assert waited is not None
    assert waited.readiness_checks > 3
    shared = [e for e in waited.timeline if e.detail.get("sharedObservations")]
    looks = ("telephony not settled", "telephony settled")
    fresh = [e for e in waited.timeline if e.event in looks and e.detail.get("reads")]
    assert shared or fresh


def test_jobs_asked_for_one_after_another_share_the_reference_data_read_before_them() -> None:
    # The weekly fan-out paces its requests: a job asked for after another's first look still reuses
    # that look's campaigns (no event depends on them), not only what is read after its own request.
    run = burst_run()
    ids = []
    for b in range(1, 21):  # each asked for once the one before has looked (5 s after its request)
        ids.append(ask(run, b))
        run.clock.advance(8.0)
        while (due := run.queues.next_due()) is not None and due <= run.clock.now():
            assert run.step()
    assert run_all(run, ids) == [JobStatus.PUBLISHED] * 20
    assert run.simulator.stats()["calls"]["GET /api/v2/outbound/campaigns"] == 1
