"""Each kind of 409 is told apart by what can be read: a fresh read of the schedule, an update of ours
that may still be running, the telephony in the job's scope. Genesys documents no WFM error codes, so
no code and no word of the body decides (the simulator's codes are its own: `conflictBodies: bare`
answers without them, and every pipeline test below also runs that way).
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.virtual import REQUEST, edge_update, start
from tests.support.virtual import quiet_demo as demo
from wfm_publish import readiness
from wfm_publish.clock import VirtualClock
from wfm_publish.conflicts import ConflictKind, classify, landed
from wfm_publish.errors import GenesysConflict
from wfm_publish.genesys import GenesysClient, Schedule
from wfm_publish.models import GenesysErrorBody, JobStatus, PublishRequest, ReasonCode
from wfm_publish.observations import Observer
from wfm_publish.scope import compute
from wfm_publish.waiting import Timing
from wfm_publish_local.simulator import GenesysSimulator, parse_scenario
from wfm_publish_local.virtual import VirtualRun, virtual_client

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
BU, WEEK, SID = "bu-demo", "2023-10-23", "sched-demo"
BODIES = ["detailed", "bare"]  # the simulator's own 409 bodies, and bodies that say nothing


def schedule(version: int, published: bool = False) -> Schedule:
    return Schedule.model_validate({"id": "s", "published": published, "metadata": {"version": version}})


def settled() -> readiness.Readiness:
    return readiness.Readiness((), 30.0, 0.0)


def changing() -> readiness.Readiness:
    return readiness.Readiness((), 30.0, 0.0, ("edge EDGE-01: softwareStatus IN_PROGRESS",))


# --- 409s from the simulator, classified without their bodies ----------------------------------------


class Org:
    """The demo org in virtual time: its Edge updates over t 0..8 (settle 2 s); another writer moves
    the schedule from version 3 to 4 when the first upload URL is asked for."""

    def __init__(self, bodies: str) -> None:
        raw: dict[str, Any] = yaml.safe_load((SCENARIOS / "demo.yaml").read_text())
        raw["conflictBodies"] = bodies
        self.clock = VirtualClock()
        self.run = VirtualRun(GenesysSimulator(parse_scenario(raw), self.clock), self.clock)
        self.genesys: GenesysClient = self.run.genesys
        self.scope = compute(self.genesys, Observer(None, self.clock.now()), BU, WEEK, SID)

    def read(self) -> Schedule:
        return self.genesys.schedule(BU, WEEK, SID)

    def telephony(self) -> readiness.Readiness:
        return readiness.check(
            self.genesys,
            Observer(None, self.clock.now()),
            self.scope,
            [],
            now=self.clock.now(),
            settle_window=2,
        )

    def refused(self, schedule: Schedule) -> GenesysErrorBody | None:
        with pytest.raises(GenesysConflict) as refused:
            self.genesys.publish(BU, WEEK, schedule)
        return refused.value.body


@pytest.mark.parametrize("bodies", BODIES)
def test_each_simulator_409_is_classified_from_what_can_be_read(bodies: str) -> None:
    org = Org(bodies)
    first = org.read()  # version 3
    org.refused(first)  # the other writer got in: version 4 now
    assert classify(org.read(), 3, telephony=org.telephony) is ConflictKind.STALE_VERSION

    current = org.read()  # version 4, the Edge still updating
    org.refused(current)
    assert classify(org.read(), 4, telephony=org.telephony) is ConflictKind.TELEPHONY_SETTLING

    org.clock.advance(10)  # ended at 8, settled at 10
    org.genesys.publish(BU, WEEK, current)  # accepted: applied 1 s later
    org.refused(current)
    assert (
        classify(org.read(), 4, pending_base=4, telephony=org.telephony) is ConflictKind.PUBLISH_IN_PROGRESS
    )
    # A second look once the other update (here: ours) is applied ...
    org.clock.advance(1)
    assert classify(org.read(), 4, pending_base=4) is ConflictKind.ALREADY_PUBLISHED
    # ... and had it been someone else's, the version moved: a stale read, publish again at once.
    assert classify(org.read(), 4, pending_base=None) is ConflictKind.STALE_VERSION


def test_a_bare_409_carries_nothing_to_read_a_kind_from() -> None:
    org = Org("bare")
    body = org.refused(org.read())
    assert body is not None
    assert (body.code, body.message, body.error_codes) == ("conflict", "Conflict", [])


# --- the rules, case by case -----------------------------------------------------------------------


def test_our_update_already_applied_is_done_not_an_error() -> None:
    assert classify(schedule(5, published=True), 5, pending_base=4) is ConflictKind.ALREADY_PUBLISHED


def test_someone_elses_edit_of_a_published_schedule_is_not_ours() -> None:
    # Published before we started, then edited by another writer: past our base, but not ours.
    edited = schedule(5, published=True)
    assert classify(edited, 4) is ConflictKind.STALE_VERSION
    assert not landed(edited, None)


def test_an_update_of_ours_not_yet_published_has_not_landed() -> None:
    assert not landed(schedule(5, published=False), 4)
    assert not landed(schedule(4, published=True), 4)
    assert landed(schedule(5, published=True), 4)


def test_a_moved_version_is_stale_whatever_telephony_does() -> None:
    assert classify(schedule(5), 4, telephony=changing) is ConflictKind.STALE_VERSION


def test_telephony_changing_in_scope_goes_back_to_delayed_validation() -> None:
    assert classify(schedule(4), 4, telephony=changing) is ConflictKind.TELEPHONY_SETTLING


def test_an_update_of_ours_that_may_still_land_is_watched() -> None:
    assert classify(schedule(4), 4, pending_base=3, telephony=changing) is ConflictKind.PUBLISH_IN_PROGRESS


def test_nothing_readable_explaining_it_is_unrecognised_not_a_guess() -> None:
    assert classify(schedule(4), 4, telephony=settled) is ConflictKind.UNRECOGNISED
    assert classify(schedule(4), 4) is ConflictKind.UNRECOGNISED  # validationMode off: no telephony read


def test_telephony_is_read_only_when_the_schedule_does_not_explain_the_409() -> None:
    asked: list[int] = []

    def telephony() -> readiness.Readiness:
        asked.append(1)
        return settled()

    classify(schedule(5), 4, telephony=telephony)
    classify(schedule(5, published=True), 5, pending_base=4, telephony=telephony)
    classify(schedule(4), 4, pending_base=3, telephony=telephony)
    assert not asked
    classify(schedule(4), 4, telephony=telephony)
    assert asked == [1]


def test_classification_invariants_over_every_combination() -> None:
    for published, base, pending, version, moving in itertools.product(
        (False, True), (None, 3, 4), (None, 2, 3, 4), (3, 4, 5, 6), (False, True)
    ):
        fresh = schedule(version, published)
        kind = classify(fresh, base, pending_base=pending, telephony=changing if moving else settled)
        # Done exactly when an update of ours may have landed and the schedule is published past it.
        assert (kind is ConflictKind.ALREADY_PUBLISHED) == landed(fresh, pending)
        if kind is ConflictKind.ALREADY_PUBLISHED:
            continue
        # Nothing is given up on, or waited for, while the schedule moved since we read it.
        if base is not None and version != base:
            assert kind is ConflictKind.STALE_VERSION
        elif pending is not None:
            assert kind is ConflictKind.PUBLISH_IN_PROGRESS
        else:
            assert kind is (ConflictKind.TELEPHONY_SETTLING if moving else ConflictKind.UNRECOGNISED)


# --- what the pipeline does with each kind, in virtual time ------------------------------------------

UPDATE_ROUTE = (
    "POST /api/v2/workforcemanagement/businessunits/{buId}/weeks/{weekId}/schedules/{scheduleId}/update"
)
UPDATE = f"/api/v2/workforcemanagement/businessunits/{BU}/weeks/{WEEK}/schedules/{SID}/update"


@pytest.mark.parametrize("bodies", BODIES)
def test_another_writer_editing_an_already_published_schedule_is_published_again_not_taken_as_ours(
    bodies: str,
) -> None:
    raw = demo(events=[{"type": "writerEdit", "scheduleId": SID, "trigger": "beforeFirstUpdate"}])
    raw["schedules"][0]["published"] = True  # published last week; someone edits it as we publish
    run, job_id = start({**raw, "conflictBodies": bodies})
    job = run.run(job_id)
    assert job.status is JobStatus.PUBLISHED
    assert job.publish_attempts == 2  # the stale 409, then ours
    assert run.simulator.stats()["publishesApplied"] == {SID: 1}  # ours did land: not mistaken for done


@pytest.mark.parametrize("bodies", BODIES)
def test_another_writers_update_running_is_waited_out_and_published_over(bodies: str) -> None:
    # Another writer posts a 20 s update just before our first publish (at t = 5). Nothing we can read
    # says so (the version moves only once it applies): unrecognised, waited out, published again.
    raw = demo(events=[{"type": "publishOperation", "scheduleId": SID, "durationSeconds": 20}])
    run, job_id = start({**raw, "conflictBodies": bodies})
    other = virtual_client(run.simulator, run.clock)
    run.clock.advance(4)
    other.publish(BU, WEEK, other.schedule(BU, WEEK, SID))
    job = run.run(job_id)
    assert job.status is JobStatus.PUBLISHED
    stats = run.simulator.stats()
    assert stats["conflictsSent"]["inProgress"] == 1
    assert stats["calls"][UPDATE_ROUTE] == 3  # theirs, our refused one, ours once theirs applied
    assert job.publish_attempts == 2
    [classified] = [e for e in job.timeline if e.event == "conflict classified"]
    assert classified.detail["kind"] == "unrecognised"
    assert stats["publishesApplied"] == {SID: 2}


@pytest.mark.parametrize("bodies", BODIES)
def test_our_update_whose_answer_was_lost_is_recognised_through_a_later_409(bodies: str) -> None:
    # Our update is accepted but its answer never arrives (read timeout); while it is still
    # processing (30 s) we publish again, get a 409, and then find ours applied.
    slow = {"path": UPDATE, "method": "POST", "sequence": ["pass"], "latencySeconds": 15}
    operation = {"type": "publishOperation", "scheduleId": SID, "durationSeconds": 30}
    run, job_id = start({**demo(events=[operation], faults=[slow]), "conflictBodies": bodies})
    job = run.run(job_id)
    assert job.status is JobStatus.PUBLISHED
    stats = run.simulator.stats()
    assert stats["publishesApplied"] == {SID: 1}
    assert stats["calls"][UPDATE_ROUTE] <= 2


@pytest.mark.parametrize("bodies", BODIES)
def test_a_telephony_409_readiness_cannot_see_is_waited_out_within_the_budget(bodies: str) -> None:
    raw = demo(conflictBodies=bodies)
    raw["sites"].append({"id": "site-elsewhere", "name": "Elsewhere", "mediaModel": "Premises"})
    raw["edges"].append({"id": "edge-elsewhere", "siteId": "site-elsewhere"})
    # An org-wide change on an Edge outside the schedule's scope: readiness (rightly) does not look
    # there, yet Genesys refuses every publish until 30 s after it ends.
    raw["settleWindowSeconds"] = 30
    raw["events"] = [
        {
            "type": "telephonyChange",
            "kind": "edgeNotActive",
            "entityId": "edge-elsewhere",
            "start": 0,
            "end": 20,
            "scope": "org",
        }
    ]
    run, job_id = start(raw)
    job = run.run(job_id)
    assert job.status is JobStatus.PUBLISHED
    assert job.publish_attempts <= 1 + REQUEST["telephonySync"]["retryCount"]  # type: ignore[index]
    waits = [e for e in job.timeline if e.event == "waiting after conflict"]
    assert waits and all(e.detail["kind"] == "unrecognised" for e in waits)


@pytest.mark.parametrize("bodies", BODIES)
def test_a_409_nothing_explains_is_retried_within_the_budget_then_fails_with_the_genesys_error(
    bodies: str,
) -> None:
    # Every publish refused, version unchanged, telephony settled: not FAILED at the first 409.
    refused = {"path": UPDATE, "method": "POST", "status": 409}
    run, job_id = start(demo(faults=[refused], conflictBodies=bodies))
    job = run.run(job_id)
    assert job.status is JobStatus.FAILED
    assert job.reason_code is ReasonCode.CONFLICT_UNRESOLVED
    assert job.publish_attempts == 1 + REQUEST["telephonySync"]["retryCount"]  # type: ignore[index]
    assert job.timeline[-1].detail["genesys"]["status"] == 409
    waits = [e.detail["nextCheckInSeconds"] for e in job.timeline if e.event == "waiting after conflict"]
    assert waits == sorted(waits) and waits[0] >= 30  # waited out, longer each time


def test_a_409_nothing_explains_once_then_goes_through() -> None:
    refused = {"path": UPDATE, "method": "POST", "sequence": [409]}
    run, job_id = start(demo(faults=[refused]))
    job = run.run(job_id)
    assert job.status is JobStatus.PUBLISHED
    assert job.publish_attempts == 2


def test_the_edge_a_telephony_409_names_is_read_first_after_it() -> None:
    """Our settle window is shorter than the one Genesys applies: readiness calls the Edge settled, the
    publish is refused naming it (ErrorBody.entityId), and the read after the 409 starts from it."""
    raw = demo()
    raw["settleWindowSeconds"] = 30
    raw["events"] = [edge_update(4)]
    scenario = parse_scenario(raw)
    clock = VirtualClock()
    run = VirtualRun(GenesysSimulator(scenario, clock), clock, Timing(settle_window=5))
    job_id = str(run.intake.accept(PublishRequest.model_validate(REQUEST), "key-1").body["publishId"])
    job = run.run(job_id)
    assert job.status is JobStatus.PUBLISHED
    after = next(e for e in job.timeline if e.event == "waiting after conflict")
    assert after.detail["named"] == ["edge:edge-demo-1"]
