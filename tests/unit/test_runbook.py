"""Every alarm of template.yaml has a runbook section (docs/runbook.md) saying what it means, how to look
and what to do, and the alarm's description points at it; the dashboard shows what the runbook says."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from wfm_publish_local.intrinsics import Resolver
from wfm_publish_local.template import Template

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


# What a placeholder stands for when a documented command is parsed.
PLACEHOLDERS = {
    "<publishId>": "0123abcd",
    "<scheduleId>": "sched-demo",
    "<status>": "FAILED",
    "<time>": "2026-01-01T00:00:00Z",
    "<queue>": "validation",
}


def documented_ops_commands() -> list[str]:
    """Every `wfm-publish ops ...` the docs show, in code blocks or inline code, comments dropped."""
    found = []
    for doc in (RUNBOOK, ROOT / "README.md", ROOT / "docs" / "architecture.md", ROOT / "docs" / "deploy.md"):
        for line in doc.read_text().splitlines():
            for match in re.finditer(r"wfm-publish (ops [^`#]*)", line):
                found.append(match.group(1).strip())
    return found


def test_the_documented_ops_commands_are_the_real_cli(tmp_path: Path) -> None:
    """docs/runbook.md's commands are what `wfm-publish ops` accepts: each one parses (options written as
    `[...]` included), so a renamed command or option fails here, not in an incident."""
    import shlex

    from wfm_publish_local.cli import _parser

    stack = tmp_path / "stack.json"  # what `wfm-publish serve` prints first, as `--local` reads it
    stack.write_text('{"aws": "http://127.0.0.1:5000", "outputs": {}}\n', encoding="utf-8")
    commands = documented_ops_commands()
    assert len(commands) >= 15
    verbs = set()
    for command in commands:
        text = command.replace("[", "").replace("]", "")
        for placeholder, value in PLACEHOLDERS.items():
            text = text.replace(placeholder, value)
        assert "<" not in text, f"an unknown placeholder in {command!r}"
        words = shlex.split(text)
        if words == ["ops"]:
            continue  # the tool's name in prose
        try:
            args = _parser().parse_args([words[0], "--local", str(stack), *words[1:]])
        except SystemExit:
            pytest.fail(f"the docs show `wfm-publish {command}`, which the CLI does not accept")
        verbs.add(args.ops_command)
    assert verbs == {"jobs", "show", "cancel", "dlq", "notify", "stuck", "check"}
