"""The weekly publish on the local stack (scenarios/weekly.yaml): the ScheduleV2 event as EventBridge
Scheduler delivers it, delivered twice (and then several times at once), starts one job per business
unit, each for its own week; jobs end PUBLISHED."""

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
    with EmbeddedStack(SCENARIO, visibility_timeout=2) as running:
        running.simulator.reset()
        yield running


def fire(stack: EmbeddedStack, **overrides: Any) -> dict[str, Any]:
    assert stack.stack is not None
    result: dict[str, Any] = stack.stack.fire_schedule(
        "PublishTriggerFunction", "Weekly", scheduled_time=DUE, input_overrides=overrides or None
    )
    return result


def job_items(stack: EmbeddedStack) -> list[dict[str, Any]]:
    assert stack.stack is not None
    pages = stack.stack.client("dynamodb").get_paginator("scan").paginate(TableName=stack.stack.table_name)
    return [item for page in pages for item in page["Items"] if item["pk"]["S"].startswith("job#")]


def test_a_weekly_event_delivered_twice_starts_one_job_per_business_unit(stack: EmbeddedStack) -> None:
    first = fire(stack)
    second = fire(stack)
    started = {(s["businessUnitId"], s["weekId"], s["scheduleId"]) for s in first["started"]}
    assert started == {
        ("bu-london", "2023-10-30", "sched-london-next"),  # Monday weeks, Europe/London
        ("bu-sydney", "2023-10-29", "sched-sydney-next"),  # Sunday weeks, Australia/Sydney
    }
    assert [(s["businessUnitId"], s["weekId"]) for s in first["skipped"]] == [("bu-chicago", "2023-10-28")]
    assert second["started"] == []
    assert {a["publishId"] for a in second["already"]} == {s["publishId"] for s in first["started"]}
    assert len(job_items(stack)) == 2

    # EventBridge Scheduler may deliver the same run several times at once.
    results: list[dict[str, Any]] = []
    threads = [threading.Thread(target=lambda: results.append(fire(stack))) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(r["started"] == [] for r in results)
    assert len(job_items(stack)) == 2

    for started_job in first["started"]:
        ended = stack.wait_for_publish(started_job["publishId"])
        assert ended["status"] == "PUBLISHED", ended
        assert (ended["businessUnitId"], ended["weekId"]) == (
            started_job["businessUnitId"],
            started_job["weekId"],
        )
    applied = stack.genesys_stats()["publishesApplied"]
    assert applied == {"sched-london-next": 1, "sched-sydney-next": 1}


def test_named_business_units_and_weeks_ahead_from_the_event(stack: EmbeddedStack) -> None:
    result = fire(stack, businessUnitIds=["bu-london"], weeksAhead=0)
    # This week's London schedule is already published: nothing to do.
    assert result["started"] == [] and result["skipped"][0]["weekId"] == "2023-10-23"
