"""The weekly publish on the local stack (scenarios/weekly.yaml): the ScheduleV2 event as EventBridge
Scheduler delivers it, delivered twice (and then several times at once), fans out one WeeklyQueue
message per business unit and starts one job per business unit, each for its own week; jobs end
PUBLISHED."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from wfm_publish_local.embedded import EmbeddedStack

pytestmark = pytest.mark.e2e
SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "weekly.yaml"
DUE = datetime(2023, 10, 25, 6, 0, tzinfo=UTC)  # Wednesday: scenarios/weekly.yaml's today


@pytest.fixture(scope="module")
def stack() -> Iterator[EmbeddedStack]:
    # Business units one second apart instead of two: the pacing is tested in tests/unit/test_weekly.py.
    with EmbeddedStack(
        SCENARIO,
        visibility_timeout=2,
        environment={"WEEKLY_STARTS_PER_MINUTE": "60"},
        parameters={"WeeklyRunEnabled": "true"},  # the template creates the schedule DISABLED
    ) as running:
        running.simulator.reset()
        yield running


def fire(stack: EmbeddedStack, **overrides: Any) -> dict[str, Any]:
    assert stack.stack is not None
    result: dict[str, Any] = stack.stack.fire_schedule(
        "PublishTriggerFunction", "Weekly", scheduled_time=DUE, input_overrides=overrides or None
    )
    return result


def test_a_weekly_event_delivered_twice_starts_one_job_per_business_unit(stack: EmbeddedStack) -> None:
    first = fire(stack)
    second = fire(stack)
    assert (first["businessUnits"], first["sent"]) == (3, 3)  # one WeeklyQueue message each
    assert (second["sent"], second["alreadySent"]) == (0, 3)  # the run's fan-out was complete

    # EventBridge Scheduler may deliver the same run several times at once.
    results: list[dict[str, Any]] = []
    threads = [threading.Thread(target=lambda: results.append(fire(stack))) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(r["sent"] == 0 for r in results)

    stack.wait_for_queue_empty("WeeklyQueue")
    jobs = stack.weekly_jobs()
    assert {(j.business_unit_id, j.week_id, j.schedule_id) for j in jobs} == {
        ("bu-london", "2023-10-30", "sched-london-next"),  # Monday weeks, Europe/London
        ("bu-sydney", "2023-10-29", "sched-sydney-next"),  # Sunday weeks, Australia/Sydney
    }  # bu-chicago (Saturday weeks, America/Chicago): only a published schedule for 2023-10-28
    assert stack.stack is not None and stack.stack.dlq_messages("WeeklyQueue") == []

    for job in jobs:
        ended = stack.wait_for_publish(job.job_id)
        assert ended["status"] == "PUBLISHED", ended
        assert (ended["businessUnitId"], ended["weekId"]) == (job.business_unit_id, job.week_id)
    applied = stack.genesys_stats()["publishesApplied"]
    assert applied == {"sched-london-next": 1, "sched-sydney-next": 1}


def test_named_business_units_and_weeks_ahead_from_the_event(stack: EmbeddedStack) -> None:
    before = {j.job_id for j in stack.weekly_jobs()}
    result = fire(stack, businessUnitIds=["bu-london"], weeksAhead=0)
    assert (result["businessUnits"], result["sent"]) == (1, 1)
    stack.wait_for_queue_empty("WeeklyQueue")
    # This week's London schedule is already published: nothing to do.
    assert {j.job_id for j in stack.weekly_jobs()} == before
