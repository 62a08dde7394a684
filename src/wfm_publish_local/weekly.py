"""`wfm-publish weekly --now`: the weekly publish fired on the local stack, and the jobs it starts.

The local org's "now" is the scenario's `today` (when it sets one) at the current UTC time of day, so a
scenario's fixed weeks line up; `--at` names the moment instead. `--times 2` delivers the event twice, as
EventBridge Scheduler may: the second delivery sends nothing (the run's fan-out is complete).

The run is fanned out as on AWS: the scheduled event puts one WeeklyQueue message per business unit,
paced (WEEKLY_STARTS_PER_MINUTE), and WeeklyUnitFunction takes each; this waits for that queue to
empty, then follows the jobs started.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

from wfm_publish.models import TERMINAL_STATUSES
from wfm_publish_local.embedded import EmbeddedStack
from wfm_publish_local.simulator.scenario import Scenario

TERMINAL = {s.value for s in TERMINAL_STATUSES}


def local_now(scenario: Scenario) -> datetime:
    now = datetime.now(UTC)
    if scenario.today is None:
        return now
    return datetime.combine(scenario.today, now.timetz())


def run(
    scenario: Path,
    *,
    at: datetime | None = None,
    business_units: list[str] | None = None,
    weeks_ahead: int | None = None,
    times: int = 1,
    hmac_secret: str | None = None,
    timeout: float = 90.0,
) -> int:
    if at is not None and at.tzinfo is None:
        print("--at needs a time zone, e.g. 2023-10-26T06:00:00+01:00")
        return 2
    due = at
    overrides: dict[str, Any] = {}
    if business_units:
        overrides["businessUnitIds"] = business_units
    if weeks_ahead is not None:
        overrides["weeksAhead"] = weeks_ahead
    # The template creates the schedule DISABLED (WeeklyRunEnabled): this command is the operator
    # turning it on for the simulated org and firing it.
    with EmbeddedStack(scenario, hmac_secret=hmac_secret, parameters={"WeeklyRunEnabled": "true"}) as stack:
        assert stack.stack is not None
        stack.simulator.reset()
        due = due or local_now(stack.scenario)
        print(f"wfm-publish weekly: scenario {scenario.name}, due {due.isoformat(timespec='seconds')}")
        for delivery in range(1, max(1, times) + 1):
            try:
                result = stack.stack.fire_schedule(
                    "PublishTriggerFunction", "Weekly", scheduled_time=due, input_overrides=overrides
                )
            except Exception as exc:
                print(f"delivery {delivery}: the run failed and EventBridge Scheduler would retry it: {exc}")
                return 1
            if result.get("rejected"):
                print(f"delivery {delivery}: event rejected: {result['rejected']}")
                return 1
            print(
                f"delivery {delivery}: run {result['run']}: {result['businessUnits']} business units, "
                f"{result['sent']} sent to WeeklyQueue, {result['alreadySent']} already sent"
            )
        stack.wait_for_queue_empty("WeeklyQueue", timeout=timeout)
        jobs = stack.weekly_jobs()
        named = set(business_units or [bu.id for bu in stack.scenario.business_units])
        for job in sorted(jobs, key=lambda j: j.business_unit_id or ""):
            print(f"  started  {job.business_unit_id} week {job.week_id}: {job.schedule_id} -> {job.job_id}")
        for bu in sorted(named - {j.business_unit_id for j in jobs}):
            print(f"  no job   {bu}: no unpublished schedule that week (the function's log says why)")
        dead = stack.stack.dlq_messages("WeeklyQueue")
        if dead:
            print(f"  {len(dead)} business unit(s) in WeeklyDLQ")
        ended = [_follow(stack, job.job_id, timeout) for job in jobs]
        for answer in ended:
            print(
                f"  {answer['publishId']}  {answer.get('scheduleId')}  {answer['status']}  "
                f"{answer.get('detail', '')}"
            )
        return 0 if not dead and all(a["status"] == "PUBLISHED" for a in ended) else 1


def _follow(stack: EmbeddedStack, publish_id: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    job: dict[str, Any] = {"publishId": publish_id, "status": "UNKNOWN"}
    while time.monotonic() < deadline:
        job = requests.get(f"{stack.api_url}/publishes/{publish_id}", auth=stack.auth, timeout=10).json()
        if job.get("status") in TERMINAL:
            break
        time.sleep(0.25)
    return job
