"""The weekly publish: each business unit's own week, the schedule it picks, and nothing started twice."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import pytest

from wfm_publish.clock import VirtualClock
from wfm_publish.errors import ConfigurationError, GenesysNotFound, GenesysTransient
from wfm_publish.intake import Intake
from wfm_publish.queues import Queue, QueueSender
from wfm_publish.weekly import WeeklyIncomplete, pick_schedule, start_weekly, target_week
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
    calls: list[str] = field(default_factory=list)

    def business_units(self) -> list[Ref]:
        return [Ref(bu) for bu in BUSINESS_UNITS]

    def business_unit(self, bu_id: str) -> dict[str, Any]:
        self.calls.append(bu_id)
        if bu_id in self.failing:
            raise GenesysTransient("503 from Genesys", status=503)
        if bu_id in self.missing:
            raise GenesysNotFound(f"business unit {bu_id}", status=404)
        zone, start = BUSINESS_UNITS[bu_id]
        return {"id": bu_id, "settings": {"timeZone": zone, "startDayOfWeek": start}}

    def schedules(self, bu_id: str, week_id: str) -> list[dict[str, Any]]:
        return self.schedules_by_week.get((bu_id, week_id), [])


class RecordingTransport:
    def __init__(self) -> None:
        self.sent: list[tuple[Queue, str, int]] = []
        self._lock = threading.Lock()

    def send(self, queue: Queue, body: str, delay_seconds: int) -> None:
        with self._lock:
            self.sent.append((queue, body, delay_seconds))


class FakeServices:
    def __init__(self, genesys: FakeGenesys) -> None:
        self.clock = VirtualClock(at("2023-10-25T06:00:00+00:00"))
        self.store = MemoryJobStore()
        self.transport = RecordingTransport()
        self.genesys = genesys
        self.intake = Intake(
            self.store, QueueSender(self.transport, self.clock), self.clock, deadline_seconds=3600
        )


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


def test_a_weekly_event_delivered_twice_starts_one_job_per_business_unit() -> None:
    services = FakeServices(org())
    first = start_weekly(services, EVENT)  # type: ignore[arg-type]
    second = start_weekly(services, EVENT)  # type: ignore[arg-type]
    assert {(s["businessUnitId"], s["scheduleId"], s["weekId"]) for s in first["started"]} == {
        ("bu-london", "sched-london-b", "2023-10-30"),
        ("bu-sydney", "sched-sydney", "2023-10-29"),
    }
    assert first["skipped"] == [
        {"businessUnitId": "bu-chicago", "weekId": "2023-10-28", "why": "no unpublished schedule this week"}
    ]
    assert second["started"] == []
    assert {a["publishId"] for a in second["already"]} == {s["publishId"] for s in first["started"]}
    assert len(services.store.jobs) == 2
    assert len(services.transport.sent) == 2  # one validation message per job, none for the replay
    keys = {job.idempotency_key for job in services.store.jobs.values()}
    assert keys == {"weekly:bu-london:2023-10-30", "weekly:bu-sydney:2023-10-29"}
    for job in services.store.jobs.values():
        assert job.business_unit_id and job.week_id  # the pipeline need not look them up


def test_a_retry_hours_later_works_out_the_same_weeks_from_the_scheduled_time() -> None:
    services = FakeServices(org())
    start_weekly(services, EVENT)  # type: ignore[arg-type]
    services.clock.advance(6 * 24 * 3600)  # delivered again six days later (Tuesday next week)
    again = start_weekly(services, EVENT)  # type: ignore[arg-type]
    assert again["started"] == [] and len(again["already"]) == 2


def test_a_schedule_edited_between_deliveries_does_not_start_a_second_job() -> None:
    genesys = org()
    services = FakeServices(genesys)
    start_weekly(services, EVENT)  # type: ignore[arg-type]
    genesys.schedules_by_week[("bu-london", "2023-10-30")].append(
        entry("sched-london-c", "2023-10-25T05:00:00Z")
    )
    again = start_weekly(services, EVENT)  # type: ignore[arg-type]
    assert again["started"] == []
    assert any("different body" in a.get("why", "") for a in again["already"])
    assert len(services.store.jobs) == 2


def test_named_business_units_only() -> None:
    services = FakeServices(org())
    result = start_weekly(services, {**EVENT, "businessUnitIds": ["bu-sydney", "bu-sydney"]})  # type: ignore[arg-type]
    assert [s["businessUnitId"] for s in result["started"]] == ["bu-sydney"]
    assert services.genesys.calls == ["bu-sydney"]


def test_one_business_unit_failing_does_not_stop_the_others_and_the_run_asks_for_a_retry() -> None:
    genesys = org()
    genesys.failing.add("bu-sydney")
    services = FakeServices(genesys)
    with pytest.raises(WeeklyIncomplete) as caught:
        start_weekly(services, EVENT)  # type: ignore[arg-type]
    assert [s["businessUnitId"] for s in caught.value.result["started"]] == ["bu-london"]
    genesys.failing.clear()
    retried = start_weekly(services, EVENT)  # type: ignore[arg-type]
    assert [s["businessUnitId"] for s in retried["started"]] == ["bu-sydney"]
    assert [a["businessUnitId"] for a in retried["already"]] == ["bu-london"]


def test_a_business_unit_that_does_not_exist_is_reported_not_retried() -> None:
    genesys = org()
    genesys.missing.add("bu-chicago")
    result = start_weekly(FakeServices(genesys), EVENT)  # type: ignore[arg-type]
    assert [f["businessUnitId"] for f in result["failed"]] == ["bu-chicago"]
    assert len(result["started"]) == 2


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
def test_a_malformed_event_starts_nothing_and_says_why(event: dict[str, Any]) -> None:
    services = FakeServices(org())
    result = start_weekly(services, event)  # type: ignore[arg-type]
    assert result["rejected"] and result["started"] == []
    assert services.store.jobs == {}


def test_without_a_scheduled_time_the_clock_decides() -> None:
    services = FakeServices(org())
    services.clock = VirtualClock(datetime(2023, 10, 25, 6, tzinfo=UTC).timestamp())
    result = start_weekly(services, {"businessUnitIds": ["bu-london"]})  # type: ignore[arg-type]
    assert result["started"][0]["weekId"] == "2023-10-30"
