"""docs/deploy.md against template.yaml and samconfig.toml: every parameter explained, the reserved
concurrency it states is the template's, and the weekly run is off unless a stack turns it on."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from wfm_publish_local.intrinsics import Resolver
from wfm_publish_local.template import Template

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "docs" / "deploy.md"
BUS = "aws.partner/genesys.com/cloud/org-1/wfm-publish"


@pytest.fixture(scope="module")
def template() -> Template:
    return Template.load(ROOT / "template.yaml")


def reserved(template: Template, **overrides: str) -> int:
    """The reserved concurrency of the functions a stack with these parameters creates."""
    resolve = Resolver(template, parameters=template.parameter_values(overrides))
    total = 0
    for function in template.functions.values():
        if function.condition is not None and not resolve.condition(function.condition):
            continue
        total += int(resolve.resolve_str(function.properties["ReservedConcurrentExecutions"]))
    return total


def test_every_parameter_is_explained_in_the_deploy_page(template: Template) -> None:
    page = DEPLOY.read_text(encoding="utf-8")
    rows = {
        name: text for name, _, text in re.findall(r"^\| `(\w+)` \| ([^|]*) \| (.+) \|$", page, re.MULTILINE)
    }
    missing = sorted(set(template.parameters) - set(rows))
    assert not missing, f"docs/deploy.md explains no {missing} (a row: | `Name` | default | what it does |)"
    for name in template.parameters:
        assert len(rows[name].split()) >= 4, f"{name}: say what it does"


def test_the_defaults_in_the_deploy_page_are_the_templates(template: Template) -> None:
    page = DEPLOY.read_text(encoding="utf-8")
    for name, default, _ in re.findall(r"^\| `(\w+)` \| ([^|]*) \| (.+) \|$", page, re.MULTILINE):
        if name not in template.parameters:
            continue
        actual = template.parameters[name].default
        shown = default.strip()
        if actual in ("", None):
            assert shown == "empty", f"{name}: its default is empty, the page says {shown!r}"
        else:
            quoted = re.match(r"`([^`]*)`", shown)
            assert quoted and quoted.group(1) == actual, (
                f"{name}: default {actual!r}, the page says {shown!r}"
            )


def test_the_reserved_concurrency_stated_is_the_templates(template: Template) -> None:
    page = DEPLOY.read_text(encoding="utf-8")
    stated = re.search(r"reserves \*\*(\d+)\*\* concurrent executions", page)
    with_bus = re.search(r"\((\d+) with `GenesysEventBusName` set\)", page)
    assert stated and with_bus, "docs/deploy.md states the stack's reserved concurrency"
    assert int(stated.group(1)) == reserved(template)
    assert int(with_bus.group(1)) == reserved(template, GenesysEventBusName=BUS)
    floor = re.search(r"the account's limit must be at least (\d+) \((\d+)\)", page)
    assert floor and (int(floor.group(1)), int(floor.group(2))) == (
        reserved(template) + 100,
        reserved(template, GenesysEventBusName=BUS) + 100,
    )


def test_the_weekly_run_is_off_unless_the_stack_turns_it_on(template: Template) -> None:
    (weekly,) = [
        e for e in template.functions["PublishTriggerFunction"].schedule_events if e.name == "Weekly"
    ]

    def state(**overrides: str) -> str:
        return Resolver(template, parameters=template.parameter_values(overrides)).resolve_str(weekly.state)

    assert template.parameters["WeeklyRunEnabled"].default == "false"
    assert state() == "DISABLED"
    assert state(WeeklyRunEnabled="true") == "ENABLED"
    environment = template.functions["PublishTriggerFunction"].environment
    assert environment["WEEKLY_BUSINESS_UNITS"] == {"Ref": "WeeklyBusinessUnits"}
    assert template.parameters["WeeklyBusinessUnits"].default == ""
    config = tomllib.loads((ROOT / "samconfig.toml").read_text(encoding="utf-8"))
    assert "WeeklyRunEnabled" not in config["default"]["deploy"]["parameters"]["parameter_overrides"]
    assert 'WeeklyRunEnabled="true"' in config["prod"]["deploy"]["parameters"]["parameter_overrides"]


def test_the_deploy_page_keeps_samconfig_and_names_the_smoke_test() -> None:
    page = DEPLOY.read_text(encoding="utf-8")
    assert "sam deploy --guided --config-env" in page
    assert "wfm-publish ops check <scheduleId>" in page
    assert "sam delete --stack-name" in page
