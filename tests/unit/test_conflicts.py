"""Each kind of 409 is told apart by the Genesys error body and a fresh read of the schedule.

The bodies come from the simulator, through the real client: the classification is pinned against
what is actually on the wire, not against bodies written by hand for the test (those follow, for
the cases Genesys may answer without one of the simulator's codes).
"""

from __future__ import annotations

import itertools
import random
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.virtual import REQUEST, edge_update, events, start
from tests.support.virtual import quiet_demo as demo
from wfm_publish.clock import VirtualClock
from wfm_publish.conflicts import ConflictKind, classify, landed
from wfm_publish.errors import GenesysConflict
from wfm_publish.genesys import GenesysClient, Schedule
from wfm_publish.models import GenesysErrorBody, JobStatus, PublishRequest, ReasonCode
from wfm_publish.waiting import Timing
from wfm_publish_local.simulator import GenesysSimulator, parse_scenario
from wfm_publish_local.virtual import VirtualRun, virtual_client

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
BU, WEEK, SID = "bu-demo", "2023-10-23", "sched-demo"


def schedule(version: int, published: bool = False) -> Schedule:
    return Schedule.model_validate({"id": "s", "published": published, "metadata": {"version": version}})


def body(error_code: str | None, message: str = "") -> GenesysErrorBody:
    details = [{"errorCode": error_code}] if error_code else []
    return GenesysErrorBody.model_validate(
        {"status": 409, "code": "conflict", "message": message, "details": details}
    )


# --- bodies from the simulator -----------------------------------------------------------------------


class Org:
    """The demo org in virtual time: its Edge updates over t 0..8 (settle 2 s); another writer moves
    the schedule from version 3 to 4 when the first upload URL is asked for."""

    def __init__(self) -> None:
        raw: dict[str, Any] = yaml.safe_load((SCENARIOS / "demo.yaml").read_text())
        self.clock = VirtualClock()
        self.run = VirtualRun(GenesysSimulator(parse_scenario(raw), self.clock), self.clock)
        self.genesys: GenesysClient = self.run.genesys

    def read(self) -> Schedule:
        return self.genesys.schedule(BU, WEEK, SID)

    def refused(self, schedule: Schedule) -> GenesysErrorBody:
        with pytest.raises(GenesysConflict) as refused:
            self.genesys.publish(BU, WEEK, schedule)
        assert refused.value.body is not None
        return refused.value.body


def test_each_simulator_409_is_classified_from_its_body_and_a_fresh_read() -> None:
    org = Org()
    first = org.read()  # version 3
    stale = org.refused(first)  # the other writer got in: version 4 now
    assert classify(stale, org.read(), 3) is ConflictKind.STALE_VERSION

    current = org.read()  # version 4, the Edge still updating
    telephony = org.refused(current)
    assert classify(telephony, org.read(), 4) is ConflictKind.TELEPHONY_SETTLING

    org.clock.advance(10)  # ended at 8, settled at 10
    org.genesys.publish(BU, WEEK, current)  # accepted: applied 1 s later
    busy = org.refused(current)
    assert classify(busy, org.read(), 4, pending_base=4) is ConflictKind.PUBLISH_IN_PROGRESS
    # A second look once the other update (here: ours) is applied ...
    org.clock.advance(1)
    assert classify(busy, org.read(), 4, pending_base=4) is ConflictKind.ALREADY_PUBLISHED
    # ... and had it been someone else's, the version moved: a stale read, publish again at once.
    assert classify(busy, org.read(), 4, pending_base=None) is ConflictKind.STALE_VERSION


def test_the_simulator_bodies_classify_from_their_message_alone() -> None:
    """Genesys does not publish its WFM error codes: without `details`, the message decides."""
    org = Org()
    first = org.read()
    stale = org.refused(first).model_copy(update={"details": []})
    telephony = org.refused(org.read()).model_copy(update={"details": []})
    assert classify(stale, schedule(4), 4) is ConflictKind.STALE_VERSION  # "modified by someone else"
    assert classify(telephony, schedule(4), 4) is ConflictKind.TELEPHONY_SETTLING


# --- the rules, case by case -----------------------------------------------------------------------


def test_our_update_already_applied_is_done_not_an_error() -> None:
    for code in ("wfm.schedule.update.in.progress", "wfm.schedule.version.mismatch", None):
        kind = classify(body(code), schedule(5, published=True), 5, pending_base=4)
        assert kind is ConflictKind.ALREADY_PUBLISHED


def test_someone_elses_edit_of_a_published_schedule_is_not_ours() -> None:
    # Published before we started, then edited by another writer: past our base, but not ours.
    edited = schedule(5, published=True)
    assert classify(body("wfm.schedule.version.mismatch"), edited, 4) is ConflictKind.STALE_VERSION
    assert not landed(edited, None)


def test_an_update_of_ours_not_yet_published_has_not_landed() -> None:
    assert not landed(schedule(5, published=False), 4)
    assert not landed(schedule(4, published=True), 4)
    assert landed(schedule(5, published=True), 4)


def test_a_moved_version_is_stale() -> None:
    assert classify(body("wfm.schedule.version.mismatch"), schedule(5), 4) is ConflictKind.STALE_VERSION


def test_telephony_provisioning_goes_back_to_delayed_validation_even_if_the_version_moved() -> None:
    # The body says why this update was refused; the next publish re-reads the version anyway.
    for version in (4, 5):
        kind = classify(body("wfm.schedule.telephony.provisioning.in.progress"), schedule(version), 4)
        assert kind is ConflictKind.TELEPHONY_SETTLING


def test_another_update_running_is_waited_for_until_the_version_moves() -> None:
    running = body("wfm.schedule.update.in.progress")
    assert classify(running, schedule(4), 4) is ConflictKind.PUBLISH_IN_PROGRESS
    assert classify(running, schedule(5), 4) is ConflictKind.STALE_VERSION


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        ("Telephony provisioning in progress on EDGE-01", ConflictKind.TELEPHONY_SETTLING),
        ("Trunk Carrier SIP 1 is being provisioned", ConflictKind.TELEPHONY_SETTLING),
        ("Another update of this schedule is still processing", ConflictKind.PUBLISH_IN_PROGRESS),
        ("Schedule update in progress", ConflictKind.PUBLISH_IN_PROGRESS),
        ("The schedule was modified by someone else", ConflictKind.STALE_VERSION),
        ("Version 3 is not the current version", ConflictKind.STALE_VERSION),
        ("The knowledge base is locked", ConflictKind.UNKNOWN),  # "edge" only as a whole word
        ("Gossip about the schedule", ConflictKind.UNKNOWN),  # nor "sip"
        ("The schedule cannot be published: it has no agents", ConflictKind.UNKNOWN),
    ],
)
def test_a_body_without_a_known_code_is_read_from_its_message(message: str, kind: ConflictKind) -> None:
    assert classify(body(None, message), schedule(4), 4) is kind


def test_anything_else_is_unknown() -> None:
    assert classify(body("something.else", "nope"), schedule(4), 4) is ConflictKind.UNKNOWN
    assert classify(None, schedule(4), 4) is ConflictKind.UNKNOWN


def test_without_a_body_a_moved_version_is_still_stale() -> None:
    assert classify(None, schedule(5), 4) is ConflictKind.STALE_VERSION


# --- properties over many inputs -----------------------------------------------------------------------

CODES = [
    None,
    "wfm.schedule.version.mismatch",
    "wfm.schedule.telephony.provisioning.in.progress",
    "wfm.schedule.update.in.progress",
    "something.else",
]


def test_classification_invariants_over_every_combination() -> None:
    rng = random.Random(5)
    for code, published, base, pending, version in itertools.product(
        CODES, (False, True), (None, 3, 4), (None, 2, 3, 4), (3, 4, 5, 6)
    ):
        message = rng.choice(["", "conflict", "Telephony provisioning in progress", "still processing"])
        fresh = schedule(version, published)
        kind = classify(body(code, message), fresh, base, pending_base=pending)
        # Done exactly when an update of ours may have landed and the schedule is published past it.
        assert (kind is ConflictKind.ALREADY_PUBLISHED) == landed(fresh, pending)
        if kind is ConflictKind.ALREADY_PUBLISHED:
            continue
        # The body's own code wins over guesses from the message.
        if code == "wfm.schedule.version.mismatch":
            assert kind is ConflictKind.STALE_VERSION
        elif code == "wfm.schedule.telephony.provisioning.in.progress":
            assert kind is ConflictKind.TELEPHONY_SETTLING
        elif code == "wfm.schedule.update.in.progress":
            moved = base is not None and version != base
            assert kind is (ConflictKind.STALE_VERSION if moved else ConflictKind.PUBLISH_IN_PROGRESS)
        # Nothing is given up on while the schedule moved since we read it.
        if base is not None and version != base:
            assert kind is not ConflictKind.UNKNOWN


# --- what the pipeline does with each kind, in virtual time ------------------------------------------

UPDATE_ROUTE = (
    "POST /api/v2/workforcemanagement/businessunits/{buId}/weeks/{weekId}/schedules/{scheduleId}/update"
)
UPDATE = f"/api/v2/workforcemanagement/businessunits/{BU}/weeks/{WEEK}/schedules/{SID}/update"


def test_another_writer_editing_an_already_published_schedule_is_published_again_not_taken_as_ours() -> None:
    raw = demo(events=[{"type": "writerEdit", "scheduleId": SID, "trigger": "beforeFirstUpdate"}])
    raw["schedules"][0]["published"] = True  # published last week; someone edits it as we publish
    run, job_id = start(raw)
    job = run.run(job_id)
    assert job.status is JobStatus.PUBLISHED
    assert job.publish_attempts == 2  # the stale 409, then ours
    assert run.simulator.stats()["publishesApplied"] == {SID: 1}  # ours did land: not mistaken for done


def test_another_update_running_is_watched_with_reads_not_publishes() -> None:
    # Another writer posts a 20 s update just before our first publish (at t = 5).
    raw = demo(events=[{"type": "publishOperation", "scheduleId": SID, "durationSeconds": 20}])
    run, job_id = start(raw)
    other = virtual_client(run.simulator, run.clock)
    run.clock.advance(4)
    other.publish(BU, WEEK, other.schedule(BU, WEEK, SID))
    job = run.run(job_id)
    assert job.status is JobStatus.PUBLISHED
    stats = run.simulator.stats()
    assert stats["conflictsSent"]["inProgress"] == 1
    assert stats["calls"][UPDATE_ROUTE] == 3  # theirs, our refused one, ours once theirs applied
    assert job.publish_attempts == 2
    assert "another update is running" in events(job)
    assert stats["publishesApplied"] == {SID: 2}


def test_another_update_that_never_applies_is_waited_for_a_bounded_time_then_published_over() -> None:
    failing = {"type": "publishOperation", "scheduleId": SID, "durationSeconds": 20, "failFirst": 1}
    run, job_id = start(demo(events=[failing]))
    other = virtual_client(run.simulator, run.clock)
    run.clock.advance(4)
    other.publish(BU, WEEK, other.schedule(BU, WEEK, SID))  # ends Error at t = 24: nothing applied
    job = run.run(job_id)
    assert job.status is JobStatus.PUBLISHED
    assert job.publish_attempts == 2
    refused = next(e.at for e in job.timeline if e.event == "409 conflict")
    again = next(e for e in job.timeline if e.event == "other update still running; publishing again")
    assert again.at - refused >= Timing().in_progress_limit - 1
    assert run.simulator.stats()["publishesApplied"] == {SID: 1}


def test_our_update_whose_answer_was_lost_is_recognised_through_a_later_409() -> None:
    # Our update is accepted but its answer never arrives (read timeout); while it is still
    # processing (20 s) we publish again, get "in progress", and then find ours applied.
    slow = {"path": UPDATE, "method": "POST", "sequence": ["pass"], "latencySeconds": 15}
    operation = {"type": "publishOperation", "scheduleId": SID, "durationSeconds": 30}
    run, job_id = start(demo(events=[operation], faults=[slow]))
    job = run.run(job_id)
    assert job.status is JobStatus.PUBLISHED
    stats = run.simulator.stats()
    assert stats["publishesApplied"] == {SID: 1}
    assert stats["calls"][UPDATE_ROUTE] <= 2


def test_a_telephony_409_readiness_cannot_see_is_waited_out_within_the_budget() -> None:
    raw = demo()
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
    assert waits and all(e.detail["kind"] == "telephony-settling" for e in waits)


def test_an_unknown_409_fails_with_the_genesys_error() -> None:
    refused = {"path": UPDATE, "method": "POST", "sequence": [409]}
    run, job_id = start(demo(faults=[refused]))
    job = run.run(job_id)
    assert job.status is JobStatus.FAILED
    assert job.reason_code is ReasonCode.CONFLICT_UNRESOLVED
    assert job.timeline[-1].detail["genesys"]["status"] == 409


def test_the_edge_a_telephony_409_names_is_re_read_first_next_time() -> None:
    """Our settle window is shorter than the one Genesys applies: readiness calls the Edge settled, the
    publish is refused naming it, and the next check starts from that Edge."""
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
    next_check = next(e for e in job.timeline if e.at > after.at and e.event.startswith("telephony"))
    assert next_check.detail["rechecked"][0] == "edge:edge-demo-1"
