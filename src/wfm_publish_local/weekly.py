"""`wfm-publish weekly --now`: the weekly publish fired on the local stack, and the jobs it starts.

The local org's "now" is the scenario's `today` (when it sets one) at the current UTC time of day, so a
scenario's fixed weeks line up; `--at` names the moment instead. `--times 2` delivers the event twice, as
EventBridge Scheduler may: the second delivery starts nothing.
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
    at: str | None = None,
    business_units: list[str] | None = None,
    weeks_ahead: int | None = None,
    times: int = 1,
    hmac_secret: str | None = None,
    timeout: float = 90.0,
) -> int:
    due = datetime.fromisoformat(at) if at else None
    if due is not None and due.tzinfo is None:
        print("--at needs a time zone, e.g. 2023-10-26T06:00:00+01:00")
        return 2
    overrides: dict[str, Any] = {}
    if business_units:
        overrides["businessUnitIds"] = business_units
    if weeks_ahead is not None:
        overrides["weeksAhead"] = weeks_ahead
    with EmbeddedStack(scenario, hmac_secret=hmac_secret) as stack:
        assert stack.stack is not None
        stack.simulator.reset()
        due = due or local_now(stack.scenario)
        print(f"wfm-publish weekly: scenario {scenario.name}, due {due.isoformat(timespec='seconds')}")
        started: list[str] = []
        for delivery in range(1, max(1, times) + 1):
            try:
                result = stack.stack.fire_schedule(
                    "PublishTriggerFunction", "Weekly", scheduled_time=due, input_overrides=overrides
                )
            except Exception as exc:
                print(f"delivery {delivery}: the run failed and EventBridge Scheduler would retry it: {exc}")
                return 1
            print(f"delivery {delivery}:")
            for kind in ("started", "already", "skipped", "failed"):
                for entry in result.get(kind, []):
                    print(f"  {kind:<8} {_describe(entry)}")
            started += [e["publishId"] for e in result.get("started", [])]
            if result.get("rejected"):
                print(f"  event rejected: {result['rejected']}")
                return 1
        ended = [_follow(stack, publish_id, timeout) for publish_id in started]
        for job in ended:
            print(f"  {job['publishId']}  {job.get('scheduleId')}  {job['status']}  {job.get('detail', '')}")
        return 0 if all(j["status"] == "PUBLISHED" for j in ended) else 1


def _describe(entry: dict[str, Any]) -> str:
    where = f"{entry.get('businessUnitId')} week {entry.get('weekId', '?')}"
    if "publishId" in entry:
        return f"{where}: {entry.get('scheduleId')} -> publish {entry['publishId']} ({entry.get('status')})"
    return f"{where}: {entry.get('why', '')}"


def _follow(stack: EmbeddedStack, publish_id: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    job: dict[str, Any] = {"publishId": publish_id, "status": "UNKNOWN"}
    while time.monotonic() < deadline:
        job = requests.get(f"{stack.api_url}/publishes/{publish_id}", auth=stack.auth, timeout=10).json()
        if job.get("status") in TERMINAL:
            break
        time.sleep(0.25)
    return job
