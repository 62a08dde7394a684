"""`make demo`: the ServiceNow request, carried to a published schedule on the local stack.

The scenario holds an Edge software update for a few seconds, and another writer edits the
schedule just before our first publish, so the job waits, meets a 409 for a stale version, re-reads
and publishes once. The demo shows the job's timeline as it moves. The request is signed as
ServiceNow signs it (docs/servicenow.md), and names a callback record: the ServiceNow stand-in
shows what the notifier wrote to it when the job ended.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import requests

from wfm_publish_local.embedded import DEFAULT_SCENARIO, EmbeddedStack

# The ServiceNow REST message (docs/servicenow.md), plus the business unit and week it may add.
SERVICENOW_BODY = {
    "scheduleId": "sched-demo",
    "publishTime": "2023-10-27T14:00:00Z",
    "validationMode": "strict",
    "telephonySync": {"enabled": True, "retryCount": 3, "delayMs": 5000},
    "businessUnitId": "bu-demo",
    "weekId": "2023-10-23",
}
# The change request ServiceNow wants updated when the job ends.
DEMO_CALLBACK = {"table": "change_request", "sysId": "46d44a5edb1232007aa4f5261f9619a8"}


def run(
    scenario: Path = DEFAULT_SCENARIO,
    timeout: float = 120.0,
    hmac_secret: str | None = None,
    aws_endpoint: str | None = None,
) -> int:
    aws = f"AWS endpoint {aws_endpoint}" if aws_endpoint else "moto server"
    print(f"wfm-publish demo: local stack ({aws}, Genesys Cloud simulator), scenario {scenario.name}")
    with EmbeddedStack(scenario, hmac_secret=hmac_secret, aws_endpoint=aws_endpoint) as stack:
        print(f"  Genesys Cloud simulator  {stack.simulator_server.url}")
        print(f"  ServiceNow stand-in      {stack.servicenow.url}")
        print(f"  publish API              {stack.api_url}  (requests signed: X-Signature)")
        stack.simulator.reset()  # scenario time starts with the request, not with the stack
        key = f"demo-{uuid.uuid4()}"
        answer = requests.post(
            f"{stack.api_url}/publishes",
            json={**SERVICENOW_BODY, "callback": DEMO_CALLBACK},
            headers={"Idempotency-Key": key},
            auth=stack.auth,
            timeout=10,
        )
        print(f"POST /publishes (Idempotency-Key: {key}) -> {answer.status_code} {answer.text}")
        if answer.status_code != 202:
            return 1
        job = follow(stack, answer.json()["publishId"], timeout)
        code = summarise(job, stack.genesys_stats())
        code = code or callback_shown(stack)
        metrics_shown(stack)
        return code


def callback_shown(stack: EmbeddedStack) -> int:
    """What ServiceNow's record got from the notifier (fed by the table's stream)."""
    try:
        (update,) = stack.servicenow.wait_for_updates(1, table=DEMO_CALLBACK["table"], timeout=20)[:1]
    except TimeoutError:
        print("  ServiceNow was not told how the job ended")
        return 1
    fields = {k: v for k, v in (update.body or {}).items() if k != "work_notes"}
    print(f"ServiceNow {update.method} {update.path}\n  {json.dumps(fields)}")
    return 0


# What each figure in seconds measures, printed beside it (docs/architecture.md, Metrics).
SECONDS = {
    "TimeToPublish": "from the request (or its publishTime) to PUBLISHED",
    "TelephonyWait": "from the first telephony look to settled",
}
# Shown by Status and Reason; the by-Status series (the alarm's terms) would say it twice.
SHOWN_TWICE = {("JobsEnded", ("Status",))}


def metrics_shown(stack: EmbeddedStack, wait: float = 5.0) -> None:
    """What CloudWatch would have got: the EMF lines the functions printed, summed per metric."""
    deadline = time.monotonic() + wait
    while not any(name == "JobsEnded" for name, _ in stack.metric_totals()) and time.monotonic() < deadline:
        time.sleep(0.1)  # the notifier prints its metrics as its invocation ends
    totals = stack.metric_totals()
    print("Metrics (CloudWatch embedded metric format, namespace WfmPublish, summed):")
    for (name, dimensions), values in sorted(totals.items()):
        if (name, tuple(k for k, _ in dimensions)) in SHOWN_TWICE:
            continue
        where = " ".join(f"{k}={v}" for k, v in dimensions)
        total = sum(values)
        figure = f"{total:.1f} s  ({SECONDS[name]})" if name in SECONDS else f"{total:g}"
        print(f"  {name:<20} {where:<40} {figure}")


def follow(stack: EmbeddedStack, publish_id: str, timeout: float) -> dict[str, Any]:
    """Print each new timeline entry as the job moves, until it ends."""
    started, shown = time.monotonic(), 0
    last: dict[str, Any] = {}

    def show(job: dict[str, Any]) -> None:
        nonlocal shown, last
        for entry in job.get("timeline", [])[shown:]:
            elapsed = time.monotonic() - started
            print(f"  +{elapsed:5.1f}s  {entry['event']:<34} {_brief(entry.get('detail', {}))}")
        shown, last = len(job.get("timeline", [])), job

    try:
        return stack.wait_for_publish(publish_id, timeout=timeout, on_poll=show)
    except TimeoutError:
        print(f"  the job did not end within {timeout:.0f} s")
        return last


def summarise(job: dict[str, Any], stats: dict[str, Any]) -> int:
    timeline = job.get("timeline", [])
    calls = sum(int(n) for n in stats.get("calls", {}).values())
    conflicts = sum(int(n) for n in stats.get("conflictsSent", {}).values())
    ended = job.get("status", "").lower()
    total = _seconds_between(timeline, "accepted", ended)
    print(
        f"{job.get('status')}: {job.get('detail', '')}\n"
        f"  {total:.1f} s from request to {ended};"
        f" {job['attempts']['publish']} publish attempts, {conflicts} x 409 answered,"
        f" {calls} Genesys calls, {sum(stats.get('publishesApplied', {}).values())} publish applied."
    )
    words = telephony_words(job)
    if words:
        print(f"  {words}")
    capacity = job.get("capacity") or {}
    if capacity.get("summary"):
        print(f"  capacity: {capacity['summary']}")
    return 0 if job.get("status") == "PUBLISHED" else 1


def telephony_words(job: dict[str, Any]) -> str:
    """Where the wait for telephony went, in two parts: the first look, as late after the request as
    telephonySync.delayMs asks; then from that look to settled, which is what the TelephonyWait
    metric measures (and the dashboard's "Waiting for telephony")."""
    timeline = job.get("timeline", [])
    looks = [e for e in timeline if str(e["event"]).startswith("telephony")]
    settled = [e for e in timeline if e["event"] == "telephony settled"]
    if not looks or not settled:
        return ""
    first_look = _seconds_between(timeline, "accepted", looks[0]["event"])
    wait = _seconds(looks[0]["at"], settled[-1]["at"])
    return (
        f"telephony: first look {first_look:.1f} s after the request (telephonySync.delayMs),"
        f" settled {wait:.1f} s after that look (the TelephonyWait metric)"
    )


def _seconds_between(timeline: list[dict[str, Any]], first: str, last: str) -> float:
    """From the first entry named `first` to the last one named `last`."""
    starts = [e["at"] for e in timeline if e["event"] == first]
    ends = [e["at"] for e in timeline if e["event"] == last]
    if not starts or not ends:
        return 0.0
    return _seconds(starts[0], ends[-1])


def _seconds(first: str, last: str) -> float:
    from datetime import datetime

    return (datetime.fromisoformat(last) - datetime.fromisoformat(first)).total_seconds()


def _brief(detail: dict[str, Any]) -> str:
    keep = {k: v for k, v in detail.items() if k not in {"checked", "ready", "genesys", "path"}}
    text = json.dumps(keep, separators=(", ", ": "))[1:-1]
    return text if len(text) <= 110 else text[:107] + "..."
