"""Every alarm of template.yaml has a runbook section (docs/runbook.md) saying what it means, how to look
and what to do, and the alarm's description points at it; the dashboard shows what the runbook says."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from wfm_publish_local.template import Resolver, Template

ROOT = Path(__file__).resolve().parents[2]
RUNBOOK = ROOT / "docs" / "runbook.md"


@pytest.fixture(scope="module")
def template() -> Template:
    return Template.load(ROOT / "template.yaml")


def sections() -> dict[str, str]:
    parts = re.split(r"^## (\S+)\s*$", RUNBOOK.read_text(), flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_every_alarm_has_a_runbook_section(template: Template) -> None:
    alarms = template.of_type("AWS::CloudWatch::Alarm")
    assert len(alarms) >= 10
    found = sections()
    for lid, props in alarms.items():
        assert lid in found, f"docs/runbook.md has no '## {lid}' section"
        body = found[lid]
        for part in ("**What it means.**", "**How to look.**", "**What to do.**"):
            assert part in body, f"{lid}: the runbook section lacks {part}"
        assert f"docs/runbook.md#{lid.lower()}" in props["AlarmDescription"], lid
        assert props["AlarmActions"] == [{"Ref": "AlarmTopic"}], lid
    assert set(found) <= set(alarms), (
        f"runbook sections for alarms that do not exist: {set(found) - set(alarms)}"
    )


def test_the_alarms_the_issue_asks_for(template: Template) -> None:
    alarms = template.of_type("AWS::CloudWatch::Alarm")
    watched: set[str] = set()
    for props in alarms.values():
        watched.add(props.get("MetricName", ""))
        for query in props.get("Metrics", []):
            watched.add(query.get("MetricStat", {}).get("Metric", {}).get("MetricName", ""))
    assert {
        "JobsEnded",
        "GenesysServerErrors",
        "GenesysThrottled",
        "GenesysCalls",
        "5XXError",
        "StuckJobs",
    } <= watched
    rate = alarms["JobFailureRateAlarm"]
    (expression,) = [q for q in rate["Metrics"] if q.get("ReturnData")]
    assert {"failed", "published", "cancelled"} <= set(re.findall(r"[a-z]+", expression["Expression"]))


def _dashboard(template: Template) -> dict[str, Any]:
    refs = {lid: f"{lid}-physical" for lid in template.resources}
    attributes = {(lid, "QueueName"): f"{lid}-name" for lid in template.queues}
    attributes |= {(lid, "Arn"): f"arn:{lid}" for lid in template.resources}
    resolver = Resolver(template, refs=refs, attributes=attributes, parameters=template.parameter_values())
    body = template.properties("OperationsDashboard")["DashboardBody"]
    parsed: dict[str, Any] = json.loads(resolver.resolve(body))
    return parsed


def test_the_dashboard_shows_outcomes_times_conflicts_genesys_queues_and_callbacks(
    template: Template,
) -> None:
    dashboard = _dashboard(template)
    text = json.dumps(dashboard)
    for needle in (
        "JobsEnded",
        "TimeToPublish",
        "TelephonyWait",
        "Conflicts",
        "CallbacksFailed",
        '{WfmPublish,RouteClass} MetricName=\\"GenesysCalls\\"',
        '{WfmPublish,RouteClass} MetricName=\\"GenesysThrottled\\"',
        '{WfmPublish,RouteClass} MetricName=\\"GenesysServerErrors\\"',
        "ApproximateNumberOfMessagesDelayed",  # every wait is an SQS delay: the real queue depth
        "StuckJobs",
    ):
        assert needle in text, needle
    stats = {
        m[-1].get("stat")
        for w in dashboard["widgets"]
        for m in w["properties"].get("metrics", [])
        if isinstance(m, list)
    }
    assert {"p50", "p95"} <= stats
    queues = {
        m[3]
        for w in dashboard["widgets"]
        for m in w["properties"].get("metrics", [])
        if isinstance(m, list) and m[0] == "AWS/SQS"
    }
    assert {f"{q}-name" for q in template.queues} <= queues  # every queue and DLQ
    (alarm_widget,) = [w for w in dashboard["widgets"] if w["type"] == "alarm"]
    assert set(alarm_widget["properties"]["alarms"]) == {
        f"arn:{lid}" for lid in template.of_type("AWS::CloudWatch::Alarm")
    }
