"""The weekly run beyond one invocation (scenarios/weekly-many.yaml: 150 business units, where the old
single-invocation run timed out at ~100), on the local stack against moto server over HTTP: the
scheduled event, delivered twice, fans out once, and WeeklyUnitFunction starts exactly one job per
business unit. Only the weekly path polls: the jobs stay queued (their publishing is tested elsewhere)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from wfm_publish_local.embedded import EmbeddedStack

pytestmark = pytest.mark.e2e
SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "weekly-many.yaml"
DUE = datetime(2023, 10, 18, 6, 0, tzinfo=UTC)  # Wednesday: one week ahead is Monday 2023-10-23 everywhere
BUSINESS_UNITS = 150
LISTING = "GET /api/v2/workforcemanagement/businessunits"


@pytest.fixture(scope="module")
def stack() -> Iterator[EmbeddedStack]:
    with EmbeddedStack(
        SCENARIO,
        poll=["WeeklyUnitFunction"],
        environment={"WEEKLY_STARTS_PER_MINUTE": "100000"},  # no pacing: the test is about counts
        parameters={"WeeklyRunEnabled": "true"},  # the template creates the schedule DISABLED
    ) as running:
        running.simulator.reset()
        yield running


def test_a_run_of_150_business_units_delivered_twice_starts_one_job_each(stack: EmbeddedStack) -> None:
    assert stack.stack is not None
    first = stack.stack.fire_schedule("PublishTriggerFunction", "Weekly", scheduled_time=DUE)
    second = stack.stack.fire_schedule("PublishTriggerFunction", "Weekly", scheduled_time=DUE)
    assert (first["businessUnits"], first["sent"]) == (BUSINESS_UNITS, BUSINESS_UNITS)
    assert (second["sent"], second["alreadySent"]) == (0, BUSINESS_UNITS)
    calls = stack.genesys_stats()["calls"]
    assert calls.get(LISTING) == 1  # the second delivery read nothing from Genesys

    stack.wait_for_queue_empty("WeeklyQueue", timeout=180)
    jobs = stack.weekly_jobs()
    per_unit = Counter(j.business_unit_id for j in jobs)
    assert len(per_unit) == BUSINESS_UNITS and set(per_unit.values()) == {1}
    assert {j.idempotency_key for j in jobs} == {f"weekly:{bu}:2023-10-23" for bu in per_unit}
    assert {j.schedule_id for j in jobs} == {bu.replace("-bu-", "-sched-") for bu in per_unit if bu}
    assert stack.stack.dlq_messages("WeeklyQueue") == []
    # One validation message per job, waiting for TrunkValidationFunction (not polled here). moto's
    # approximate counts can miss a message whose delay ends between them: read until they settle.
    local = stack.stack

    def queued() -> int:
        depth = local.queue_depth("ValidationQueue")
        return depth["visible"] + depth["delayed"] + depth["in_flight"]

    assert local.wait_until(lambda: queued() == BUSINESS_UNITS, timeout=15, message="150 messages")
