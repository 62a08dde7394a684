"""The weekly publish: each business unit's own week, the schedule it picks, nothing started twice, and a
fan-out that paces its messages and resumes where a failed delivery stopped."""

from __future__ import annotations

import heapq
import itertools
import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import pytest

from wfm_publish import weekly
from wfm_publish.clock import VirtualClock
from wfm_publish.errors import (
    ConfigurationError,
    GenesysNotFound,
    GenesysRateLimited,
    GenesysTransient,
    QueueError,
)
from wfm_publish.intake import Intake
from wfm_publish.queues import Queue, QueueSender
from wfm_publish.weekly import (
    MemoryRunLog,
    fan_out,
    pick_schedule,
    take_units,
    target_week,
)
from wfm_publish_local.virtual import MemoryJobStore


def at(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


# --- the week --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "zone", "start", "ahead", "week"),
    [
        # Wednesday 25 Oct 2023, 06:00 UTC
        ("2023-10-25T06:00:00+00:00", "Europe/London", "Monday", 1, date(2023, 10, 30)),
        ("2023-10-25T06:00:00+00:00", "Australia/Sydney", "Sunday", 1, date(2023, 10, 29)),
        ("2023-10-25T06:00:00+00:00", "America/Chicago", "Saturday", 1, date(2023, 10, 28)),
        ("2023-10-25T06:00:00+00:00", "Europe/London", "Monday", 0, date(2023, 10, 23)),
        ("2023-10-25T06:00:00+00:00", "Europe/London", "Monday", 2, date(2023, 11, 6)),
        # Saturday 28 Oct 23:30 UTC is already Sunday 29 Oct in Sydney: a new Sunday week has begun there,
        # while in UTC (and London) it is still the week of Monday 23 Oct.
        ("2023-10-28T23:30:00+00:00", "Australia/Sydney", "Sunday", 1, date(2023, 11, 5)),
        ("2023-10-28T23:30:00+00:00", "UTC", "Sunday", 1, date(2023, 10, 29)),
        ("2023-10-28T23:30:00+00:00", "Europe/London", "Monday", 1, date(2023, 10, 30)),
        # Monday 30 Oct 03:00 UTC is still Sunday 29 Oct in Chicago (a Saturday week of 28 Oct).
        ("2023-10-30T03:00:00+00:00", "America/Chicago", "Saturday", 1, date(2023, 11, 4)),
        ("2023-10-30T03:00:00+00:00", "America/Chicago", "monday", 1, date(2023, 10, 30)),
        # The day London leaves summer time (29 Oct 2023, 01:00 UTC) changes nothing about weeks.
        ("2023-10-29T00:30:00+00:00", "Europe/London", "Sunday", 0, date(2023, 10, 29)),
    ],
)
def test_the_target_week_is_counted_in_the_business_units_zone_from_its_first_day(
    now: str, zone: str, start: str, ahead: int, week: date
) -> None:
    assert target_week(at(now), zone, start, ahead) == week


def test_a_bad_zone_or_day_is_a_configuration_problem() -> None:
    with pytest.raises(ConfigurationError, match="IANA"):
        target_week(0, "Mars/Olympus", "Monday", 1)
    with pytest.raises(ConfigurationError, match="day of the week"):
        target_week(0, "UTC", "Caturday", 1)


# --- the schedule ----------------------------------------------------------------------------------


def entry(sid: str, modified: str, *, published: bool = False, week: str = "2023-10-30") -> dict[str, Any]:
    return {"id": sid, "published": published, "weekDate": week, "metadata": {"dateModified": modified}}


def test_the_most_recently_modified_unpublished_schedule_is_picked() -> None:
    entries = [
        entry("older", "2023-10-20T10:00:00.000Z"),
        entry("newest-but-published", "2023-10-24T10:00:00.000Z", published=True),
        # same instant written with an offset: compared as times, not as text
        entry("newer", "2023-10-22T12:00:00+02:00"),
        entry("other-week", "2023-10-25T10:00:00.000Z", week="2023-11-06"),
    ]
    chosen = pick_schedule(entries, date(2023, 10, 30))
    assert chosen is not None and chosen["id"] == "newer"


def test_no_unpublished_schedule_picks_none() -> None:
    assert pick_schedule([], date(2023, 10, 30)) is None
    assert pick_schedule([entry("p", "2023-10-20T10:00:00Z", published=True)], date(2023, 10, 30)) is None


# --- the run ---------------------------------------------------------------------------------------

BUSINESS_UNITS = {
    "bu-london": ("Europe/London", "Monday"),
    "bu-sydney": ("Australia/Sydney", "Sunday"),
    "bu-chicago": ("America/Chicago", "Saturday"),
}


@dataclass
class Ref:
    id: str


@dataclass
class FakeGenesys:
    schedules_by_week: dict[tuple[str, str], list[dict[str, Any]]]
    failing: set[str] = field(default_factory=set)
    missing: set[str] = field(default_factory=set)
    limited: int = 0  # the next n business unit reads answer 429
    retry_after: float = 7.0  # ... with this Retry-After
    calls: list[str] = field(default_factory=list)
    listings: int = 0
    extra: list[str] = field(default_factory=list)  # more business units (UTC, Monday, no schedule)

    def business_units(self) -> list[Ref]:
        self.listings += 1
        return [Ref(bu) for bu in [*BUSINESS_UNITS, *self.extra]]

    def business_unit(self, bu_id: str) -> dict[str, Any]:
        self.calls.append(bu_id)
        if self.limited:
            self.limited -= 1
            raise GenesysRateLimited("429 from Genesys", retry_after=self.retry_after, status=429)
        if bu_id in self.failing:
            raise GenesysTransient("503 from Genesys", status=503)
        if bu_id in self.missing:
            raise GenesysNotFound(f"business unit {bu_id}", status=404)
        zone, start = BUSINESS_UNITS.get(bu_id, ("UTC", "Monday"))
        return {"id": bu_id, "settings": {"timeZone": zone, "startDayOfWeek": start}}

    def schedules(self, bu_id: str, week_id: str) -> list[dict[str, Any]]:
        return self.schedules_by_week.get((bu_id, week_id), [])


class RecordingTransport:
    def __init__(self) -> None:
        self.sent: list[tuple[Queue, str, int]] = []

    def send(self, queue: Queue, body: str, delay_seconds: int) -> None:
        self.sent.append((queue, body, delay_seconds))


class WeeklyQueue:
    """WeeklyQueue in virtual time: what was sent, and a heap of what is due."""

    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock
        self.sent: list[tuple[str, int]] = []
        self.batches = 0
        self.fail_after: int | None = None  # refuse every batch after this many
        self._due: list[tuple[float, int, str]] = []
        self._order = itertools.count()

    def send_batch(self, entries: list[tuple[str, int]]) -> None:
        assert 1 <= len(entries) <= 10
        if self.fail_after is not None and self.batches >= self.fail_after:
            raise QueueError("the weekly queue is unavailable")
        self.batches += 1
        for body, delay in entries:
            assert 0 <= delay <= 900
            self.sent.append((body, delay))
            heapq.heappush(self._due, (self.clock.now() + delay, next(self._order), body))

    def take(self, most: int = 10) -> list[tuple[str, str]]:
        """The next batch, the clock moved to when its first message is due (as SQS delivers it)."""
        if not self._due:
            return []
        self.clock.advance_to(max(self.clock.now(), self._due[0][0]))
        batch: list[str] = []
        while self._due and self._due[0][0] <= self.clock.now() and len(batch) < most:
            batch.append(heapq.heappop(self._due)[2])
        return [(f"m{i}", body) for i, body in enumerate(batch)]


class FakeServices:
    def __init__(self, genesys: FakeGenesys) -> None:
        self.clock = VirtualClock(at("2023-10-25T06:00:00+00:00"))
        self.store = MemoryJobStore()
        self.transport = RecordingTransport()
        self.genesys = genesys
        self.intake = Intake(
            self.store, QueueSender(self.transport, self.clock), self.clock, deadline_seconds=3600
        )
        self.weekly_queue = WeeklyQueue(self.clock)
        self.weekly_runs = MemoryRunLog()
        self.weekly_starts_per_minute = 30.0

    def drain(self) -> list[dict[str, Any]]:
        """Take every weekly message; the batch answers, in order."""
        answers = []
        while batch := self.weekly_queue.take():
            answers.append(take_units(self, batch))  # type: ignore[arg-type]
        return answers


def org() -> FakeGenesys:
    return FakeGenesys(
        {
            ("bu-london", "2023-10-30"): [
                entry("sched-london-a", "2023-10-20T10:00:00Z"),
                entry("sched-london-b", "2023-10-24T10:00:00Z"),
            ],
            ("bu-sydney", "2023-10-29"): [entry("sched-sydney", "2023-10-21T10:00:00Z", week="2023-10-29")],
            ("bu-chicago", "2023-10-28"): [
                entry("sched-chicago", "2023-10-21T10:00:00Z", published=True, week="2023-10-28")
            ],
        }
    )


EVENT = {
    "source": "weekly",
    "businessUnitIds": "all",
    "weeksAhead": 1,
    "scheduledTime": "2023-10-25T06:00:00Z",
}


def fire(services: FakeServices, event: dict[str, Any] = EVENT) -> dict[str, Any]:
    return fan_out(services, event)  # type: ignore[arg-type]


def started(services: FakeServices) -> set[tuple[str | None, str, str | None]]:
    return {(j.business_unit_id, j.schedule_id, j.week_id) for j in services.store.jobs.values()}


def test_a_weekly_event_delivered_twice_starts_one_job_per_business_unit() -> None:
    services = FakeServices(org())
    first = fire(services)
    second = fire(services)
    assert (first["businessUnits"], first["sent"]) == (3, 3)
    assert (second["sent"], second["alreadySent"]) == (0, 3)
    assert services.genesys.listings == 1  # the second delivery read nothing from Genesys
    assert services.genesys.calls == []  # the fan-out reads no business unit
    services.drain()
    assert started(services) == {
        ("bu-london", "sched-london-b", "2023-10-30"),
        ("bu-sydney", "sched-sydney", "2023-10-29"),
    }
    assert len(services.transport.sent) == 2  # one validation message per job
    keys = {job.idempotency_key for job in services.store.jobs.values()}
    assert keys == {"weekly:bu-london:2023-10-30", "weekly:bu-sydney:2023-10-29"}


def test_a_business_unit_message_delivered_twice_starts_nothing_twice() -> None:
    services = FakeServices(org())
    fire(services)
    for body, _ in list(services.weekly_queue.sent):  # SQS delivers at least once: every one again
        services.weekly_queue.send_batch([(body, 0)])
    services.drain()
    assert len(services.store.jobs) == 2 and len(services.transport.sent) == 2


def test_the_fan_out_spaces_business_units_by_the_pacing_and_hops_past_15_minutes() -> None:
    genesys = org()
    genesys.extra = [f"bu-x{i:03d}" for i in range(600)]
    services = FakeServices(genesys)
    fire(services)
    delays = [delay for _, delay in services.weekly_queue.sent]
    assert delays[:5] == [0, 2, 4, 6, 8]  # 30 a minute: one every 2 s, in sorted order
    assert max(delays) == 900  # SQS's limit; later ones carry notBefore
    last = json.loads(services.weekly_queue.sent[-1][0])
    assert last["notBefore"] == pytest.approx(at("2023-10-25T06:00:00+00:00") + 602 * 2)
    before = len(services.weekly_queue.sent)
    services.drain()  # the hops come back once, and then each unit is taken at its slot
    hops = sum(1 for body, _ in services.weekly_queue.sent[:before] if "notBefore" in body)
    assert hops == 603 - 451  # slots beyond 900 s (unit 451 on) come back once, then wait the rest
    assert len(services.weekly_queue.sent) - before == hops
    assert services.clock.now() == pytest.approx(at("2023-10-25T06:00:00+00:00") + 602 * 2, abs=1)
    assert len(genesys.calls) == 603  # each business unit read once


def test_a_failed_fan_out_resumes_after_its_last_checkpoint_and_a_complete_run_reads_nothing() -> None:
    genesys = org()
    genesys.extra = [f"bu-x{i:03d}" for i in range(247)]  # 250 business units
    services = FakeServices(genesys)
    services.weekly_queue.fail_after = 15  # 150 sent, then SQS fails: the scheduler retries
    with pytest.raises(QueueError):
        fire(services)
    services.weekly_queue.fail_after = None
    resumed = fire(services)
    assert (resumed["sent"], resumed["alreadySent"]) == (150, 100)  # from the checkpoint at 100
    bodies = [json.loads(body) for body, _ in services.weekly_queue.sent]
    assert {b["businessUnitId"] for b in bodies} == {bu.id for bu in genesys.business_units()}
    # A resumed message keeps its slot in the run's pacing: the last is due 249 x 2 s after the start.
    assert services.weekly_queue.sent[-1][1] == 249 * 2
    listings = genesys.listings
    assert fire(services)["sent"] == 0 and genesys.listings == listings


def test_a_retry_hours_later_works_out_the_same_weeks_from_the_scheduled_time() -> None:
    services = FakeServices(org())
    fire(services)
    services.drain()
    services.clock.advance(6 * 24 * 3600)  # the messages delivered again six days later
    for body, _ in list(services.weekly_queue.sent):
        services.weekly_queue.send_batch([(body, 0)])
    services.drain()
    assert len(services.store.jobs) == 2 and len(services.transport.sent) == 2


def test_a_schedule_edited_between_deliveries_does_not_start_a_second_job() -> None:
    genesys = org()
    services = FakeServices(genesys)
    fire(services)
    services.drain()
    genesys.schedules_by_week[("bu-london", "2023-10-30")].append(
        entry("sched-london-c", "2023-10-25T05:00:00Z")
    )
    london = next(body for body, _ in services.weekly_queue.sent if "bu-london" in body)
    services.weekly_queue.send_batch([(london, 0)])
    assert services.drain() == [{"batchItemFailures": []}]
    assert len(services.store.jobs) == 2


def test_named_business_units_only() -> None:
    services = FakeServices(org())
    result = fire(services, {**EVENT, "businessUnitIds": ["bu-sydney", "bu-sydney"]})
    services.drain()
    assert result["businessUnits"] == 1 and services.genesys.listings == 0
    assert [j[0] for j in started(services)] == ["bu-sydney"]
    assert services.genesys.calls == ["bu-sydney"]


def test_a_business_unit_genesys_cannot_answer_comes_back_and_the_others_start() -> None:
    genesys = org()
    genesys.failing.add("bu-sydney")
    services = FakeServices(genesys)
    fire(services)
    answers = services.drain()
    failed = [f for a in answers for f in a["batchItemFailures"]]
    assert len(failed) == 1  # SQS redelivers it (and after maxReceiveCount, WeeklyDLQ)
    assert {j[0] for j in started(services)} == {"bu-london"}
    genesys.failing.clear()
    sydney = next(body for body, _ in services.weekly_queue.sent if "bu-sydney" in body)
    services.weekly_queue.send_batch([(sydney, 0)])  # the redelivery
    services.drain()
    assert {j[0] for j in started(services)} == {"bu-london", "bu-sydney"}


def test_a_429_puts_the_rest_of_the_batch_back_delayed_by_retry_after() -> None:
    genesys = org()
    services = FakeServices(genesys)
    services.weekly_starts_per_minute = 6000  # all due at once: one batch
    fire(services)
    genesys.limited = 1
    batch = services.weekly_queue.take()
    assert len(batch) == 3
    answer = take_units(services, batch)  # type: ignore[arg-type]
    assert answer == {"batchItemFailures": []}  # nothing failed: it waits on the queue
    assert genesys.calls == ["bu-chicago"]  # the first got the 429; the others were not tried
    deferred = services.weekly_queue.sent[3:]
    assert [d for _, d in deferred] == [7, 7, 7]
    services.drain()
    assert len(services.store.jobs) == 2


@pytest.mark.parametrize("retry_after", [float("inf"), 86_400.0 * 365, 1e300])
def test_a_429_whose_retry_after_is_absurd_waits_at_most_the_cap_and_the_batch_still_answers(
    retry_after: float,
) -> None:
    """Genesys' Retry-After may say anything (infinity, a year): the batch answers every record (no
    OverflowError failing it whole on every receive), and each business unit waits at most
    RATE_LIMIT_WAIT_CAP, hopping past SQS's 15 minutes, then is taken."""
    genesys = org()
    genesys.retry_after = retry_after
    services = FakeServices(genesys)
    services.weekly_starts_per_minute = 6000  # all due at once: one batch
    fire(services)
    genesys.limited = 1
    batch = services.weekly_queue.take()
    assert take_units(services, batch) == {"batchItemFailures": []}  # type: ignore[arg-type]
    deferred = services.weekly_queue.sent[3:]
    assert len(deferred) == 3 and all(0 < d <= 900 for _, d in deferred)
    resumes = [json.loads(body).get("notBefore") for body, _ in deferred]
    assert all(r is not None and r - services.clock.now() <= weekly.RATE_LIMIT_WAIT_CAP for r in resumes)
    services.clock.advance(weekly.RATE_LIMIT_WAIT_CAP + 1)
    services.drain()
    assert len(services.store.jobs) == 2  # taken after the wait, as with any 429


def test_an_unreadable_message_fails_for_the_dlq() -> None:
    services = FakeServices(org())
    assert take_units(services, [("m1", '{"surprise": 1}')]) == {  # type: ignore[arg-type]
        "batchItemFailures": [{"itemIdentifier": "m1"}]
    }


def test_a_business_unit_that_does_not_exist_is_dropped_not_retried() -> None:
    genesys = org()
    genesys.missing.add("bu-chicago")
    services = FakeServices(genesys)
    fire(services)
    assert all(a["batchItemFailures"] == [] for a in services.drain())
    assert len(services.store.jobs) == 2


@pytest.mark.parametrize(
    "event",
    [
        {"businessUnitIds": "bu-london"},  # a single id must be a list ("all" is the only string)
        {"businessUnitIds": []},
        {"weeksAhead": 9},
        {"scheduledTime": "2023-10-25T06:00:00"},  # no zone
        {"surprise": True},
    ],
)
def test_a_malformed_event_sends_nothing_and_says_why(event: dict[str, Any]) -> None:
    services = FakeServices(org())
    result = fire(services, event)
    assert result["rejected"] and result["sent"] == 0
    assert services.weekly_queue.sent == []


def test_without_a_scheduled_time_the_clock_decides() -> None:
    services = FakeServices(org())
    services.clock = VirtualClock(datetime(2023, 10, 25, 6, tzinfo=UTC).timestamp())
    services.weekly_queue.clock = services.clock
    fire(services, {"businessUnitIds": ["bu-london"]})
    services.drain()
    assert started(services) == {("bu-london", "sched-london-b", "2023-10-30")}


def test_the_sample_event_carries_a_weekly_unit() -> None:
    """events/sqs_weekly_unit.json (`sam local invoke WeeklyUnitFunction -e`) is what the fan-out sends."""
    from pathlib import Path

    from wfm_publish.weekly import WeeklyUnit

    sample = json.loads((Path(__file__).resolve().parents[2] / "events" / "sqs_weekly_unit.json").read_text())
    unit = WeeklyUnit.model_validate_json(sample["Records"][0]["body"])
    assert unit.business_unit_id == "bu-london" and unit.not_before is None


def test_a_duplicate_caught_mid_start_comes_back_rather_than_being_dropped() -> None:
    services = FakeServices(org())
    services.weekly_starts_per_minute = 6000
    fire(services, {**EVENT, "businessUnitIds": ["bu-london"]})
    # Another delivery holds the key (its Lambda is between locking and completing it).
    from wfm_publish.intake import body_hash
    from wfm_publish.models import PublishRequest

    week = date(2023, 10, 30)
    request = PublishRequest(schedule_id="sched-london-b", business_unit_id="bu-london", week_id=week)
    key = "weekly:bu-london:2023-10-30"
    now = services.clock.now()
    services.store.lock_idempotency(key, body_hash(request), "another-delivery", now, 30, now + 3600)
    answer = take_units(services, services.weekly_queue.take())  # type: ignore[arg-type]
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m0"}]}  # SQS brings it back
    assert services.store.jobs == {}


# --- limited to named business units (WEEKLY_BUSINESS_UNITS) ---------------------------------------


@dataclass
class NamedRef:
    id: str
    name: str


class NamedOrg(FakeGenesys):
    def business_units(self) -> list[NamedRef]:  # type: ignore[override]
        self.listings += 1
        return [NamedRef(bu, bu.removeprefix("bu-").title()) for bu in BUSINESS_UNITS]


def test_the_run_is_limited_to_business_units_named_by_id_or_name_and_unknown_ones_are_skipped() -> None:
    services = FakeServices(NamedOrg(org().schedules_by_week))
    result = fan_out(services, EVENT, only=("bu-london", "SYDNEY", "Atlantis"))  # type: ignore[arg-type]
    assert (result["businessUnits"], result["sent"], result["notFound"]) == (2, 2, ["Atlantis"])
    assert sorted(json.loads(body)["businessUnitId"] for body, _ in services.weekly_queue.sent) == [
        "bu-london",
        "bu-sydney",
    ]
    services.drain()
    assert {j.business_unit_id for j in services.store.jobs.values()} == {"bu-london", "bu-sydney"}


def test_an_event_naming_business_units_is_limited_too_and_nothing_named_sends_nothing() -> None:
    services = FakeServices(NamedOrg(org().schedules_by_week))
    event = EVENT | {"businessUnitIds": ["bu-london", "bu-chicago"]}
    result = fan_out(services, event, only=("London",))  # type: ignore[arg-type]
    assert (result["businessUnits"], result["sent"]) == (1, 1) and "notFound" not in result
    nothing = fan_out(FakeServices(NamedOrg({})), EVENT, only=("Atlantis",))  # type: ignore[arg-type]
    assert (nothing["businessUnits"], nothing["sent"], nothing["notFound"]) == (0, 0, ["Atlantis"])


def test_a_limited_run_is_a_run_of_its_own() -> None:
    """Changing the list between two deliveries of one due time starts a new run: a checkpoint counts
    its own sorted list only."""
    services = FakeServices(NamedOrg(org().schedules_by_week))
    first = fan_out(services, EVENT, only=("bu-london",))  # type: ignore[arg-type]
    everything = fan_out(services, EVENT)  # type: ignore[arg-type]
    assert first["run"] != everything["run"] and everything["run"].endswith("/1/all")
    assert (everything["sent"], everything["alreadySent"]) == (3, 0)
