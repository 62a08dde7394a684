"""The weekly run's two switches, on the local stack (scenarios/weekly.yaml) over HTTP to moto server:
`WeeklyRunEnabled` (default false: the schedule is created DISABLED, so a new stack publishes nothing on
its own) and `WeeklyBusinessUnits` (the business units it is limited to, by id or name; one Genesys does
not know is logged and skipped, the others still run). Only the fan-out runs here: no event source
polls, so the messages stay on WeeklyQueue to be read."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from wfm_publish_local.embedded import EmbeddedStack
from wfm_publish_local.stack import ScheduleDisabled

pytestmark = pytest.mark.e2e
SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "weekly.yaml"
DUE = datetime(2023, 10, 25, 6, 0, tzinfo=UTC)


def queued_units(stack: EmbeddedStack) -> list[str]:
    assert stack.stack is not None
    return sorted(json.loads(m["body"])["businessUnitId"] for m in stack.stack.peek_messages("WeeklyQueue"))


@pytest.fixture(scope="module")
def default_stack() -> Iterator[EmbeddedStack]:
    with EmbeddedStack(SCENARIO, poll=[], environment={"WEEKLY_STARTS_PER_MINUTE": "100000"}) as running:
        yield running


@pytest.fixture(scope="module")
def limited_stack() -> Iterator[EmbeddedStack]:
    with EmbeddedStack(
        SCENARIO,
        poll=[],
        environment={"WEEKLY_STARTS_PER_MINUTE": "100000"},
        parameters={"WeeklyRunEnabled": "true", "WeeklyBusinessUnits": "bu-london, sydney ,Atlantis"},
    ) as running:
        running.simulator.reset()
        yield running


def test_a_stack_with_the_template_defaults_has_the_weekly_schedule_disabled(
    default_stack: EmbeddedStack,
) -> None:
    local = default_stack.stack
    assert local is not None
    assert local.parameters["WeeklyRunEnabled"] == "false"
    assert local.schedule_state("PublishTriggerFunction", "Weekly") == "DISABLED"
    assert local.schedule_state("WatchdogFunction") == "ENABLED"  # the sweeps have no switch
    with pytest.raises(ScheduleDisabled, match="DISABLED"):
        local.fire_schedule("PublishTriggerFunction", "Weekly", scheduled_time=DUE)
    assert local.invocations["PublishTriggerFunction"] == 0
    assert queued_units(default_stack) == []
    assert default_stack.genesys_stats()["calls"] == {}  # nothing asked of Genesys either


def test_the_run_is_limited_to_the_named_business_units_and_an_unknown_one_is_skipped(
    limited_stack: EmbeddedStack,
) -> None:
    local = limited_stack.stack
    assert local is not None
    assert local.schedule_state("PublishTriggerFunction", "Weekly") == "ENABLED"
    assert local.environment["WEEKLY_BUSINESS_UNITS"] == "bu-london, sydney ,Atlantis"
    result = local.fire_schedule("PublishTriggerFunction", "Weekly", scheduled_time=DUE)
    # bu-london by id, bu-sydney by its name ("Sydney"); bu-chicago not named; Atlantis unknown.
    assert (result["businessUnits"], result["sent"], result["notFound"]) == (2, 2, ["Atlantis"])
    assert queued_units(limited_stack) == ["bu-london", "bu-sydney"]
    # Delivered again, the same run sends nothing more.
    again = local.fire_schedule("PublishTriggerFunction", "Weekly", scheduled_time=DUE)
    assert (again["sent"], again["alreadySent"]) == (0, 2)
