"""Reading a scenario: YAML to a validated, expanded `Scenario`, every reference checked.

Apart from the schema (scenario.py) so that generate.py, which builds on the schema, is a plain
import here rather than a circle.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic.alias_generators import to_camel

from wfm_publish_local.simulator.generate import expand
from wfm_publish_local.simulator.scenario import WEEKDAYS, Scenario, TelephonyChange


class ScenarioError(ValueError):
    """A scenario file that cannot be served; the message names the file and the field."""


def load_scenario(path: str | Path) -> Scenario:
    """Read, validate and expand a scenario file; any problem is a ScenarioError naming the field."""
    source = Path(path)
    try:
        raw = yaml.safe_load(source.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ScenarioError(f"{source}: cannot read scenario: {exc}") from exc
    return parse_scenario(raw if raw is not None else {}, source=str(source))


def parse_scenario(raw: Any, source: str = "<scenario>") -> Scenario:
    """Validate a scenario already loaded as Python data (tests build them inline)."""
    if not isinstance(raw, dict):
        raise ScenarioError(f"{source}: the scenario must be a mapping, got {type(raw).__name__}")
    try:
        scenario = Scenario.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{_loc(err['loc'])}: {err['msg']}" for err in exc.errors())
        raise ScenarioError(f"{source}: {problems}") from exc
    if scenario.generate is not None:
        try:
            scenario = expand(scenario)
        except ValidationError as exc:
            problems = "; ".join(f"{_loc(err['loc'])}: {err['msg']}" for err in exc.errors())
            raise ScenarioError(f"{source}: generate: {problems}") from exc
    problems_found = check_references(scenario)
    if problems_found:
        raise ScenarioError(f"{source}: " + "; ".join(problems_found))
    return scenario


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _duplicates(name: str, ids: list[str]) -> list[str]:
    return [f"{name}: duplicate id {d!r}" for d, n in sorted(Counter(ids).items()) if n > 1]


def _missing(field: str, value: str | None, known: set[str], what: str) -> list[str]:
    if value is None or value in known:
        return []
    return [f"{field}: unknown {what} {value!r}"]


def check_references(s: Scenario) -> list[str]:
    """Every id a scenario refers to must exist; answers one message per broken reference."""
    problems: list[str] = []
    for name in _COLLECTIONS:
        problems += _duplicates(to_camel(name), [x.id for x in getattr(s, name)])
    problems += _check_links(s, _ORG_LINKS)
    problems += _check_schedules(s)
    problems += _check_links(s, _TELEPHONY_LINKS)
    problems += _check_sites(s)
    problems += _check_events(s)
    return problems


_COLLECTIONS = (
    "business_units",
    "management_units",
    "agents",
    "schedules",
    "queues",
    "sites",
    "edges",
    "trunk_bases",
    "trunks",
    "campaigns",
)

# A collection's fields that name an entity of another: (field, the collection it names, what that
# is). A list field names one each. One table, so a new reference is a row, not another loop.
Links = tuple[tuple[str, tuple[tuple[str, str, str], ...]], ...]
_ORG_LINKS: Links = (
    (
        "management_units",
        (("business_unit_id", "business_units", "business unit"), ("agents", "agents", "agent")),
    ),
    (
        "queues",
        (
            ("members", "agents", "agent"),
            ("member_management_unit_ids", "management_units", "management unit"),
        ),
    ),
    (
        "campaigns",
        (
            ("queue_id", "queues", "queue"),
            ("site_id", "sites", "site"),
            ("edge_group_id", "edge_groups", "edge group (set on an edge)"),
        ),
    ),
)
_TELEPHONY_LINKS: Links = (
    ("edges", (("site_id", "sites", "site"),)),
    (
        "trunks",
        (
            ("edge_id", "edges", "edge"),
            ("site_id", "sites", "site"),
            ("trunk_base_id", "trunk_bases", "trunk base"),
        ),
    ),
)


def _check_links(s: Scenario, links: Links) -> list[str]:
    known: dict[str, set[str]] = {}
    out: list[str] = []
    for collection, fields in links:
        for i, item in enumerate(getattr(s, collection)):
            for field, target, what in fields:
                if target not in known:
                    known[target] = _ids(s, target)
                value = getattr(item, field)
                for one in value if isinstance(value, list) else [value]:
                    out += _missing(
                        f"{to_camel(collection)}[{i}].{to_camel(field)}", one, known[target], what
                    )
    return out


def _ids(s: Scenario, collection: str) -> set[str]:
    if collection == "edge_groups":  # not a collection: the groups the edges name
        return {e.edge_group_id for e in s.edges if e.edge_group_id}
    return {x.id for x in getattr(s, collection)}


def _check_schedules(s: Scenario) -> list[str]:
    bus = {b.id: b for b in s.business_units}
    mus = {m.id: m for m in s.management_units}
    agents = {a.id for a in s.agents}
    out: list[str] = []
    for i, sch in enumerate(s.schedules):
        where = f"schedules[{i}]"
        bu = bus.get(sch.business_unit_id)
        if bu is None:
            out.append(f"{where}.businessUnitId: unknown business unit {sch.business_unit_id!r}")
            continue
        if WEEKDAYS[sch.week_id.weekday()] != bu.start_day_of_week:
            out.append(
                f"{where}.weekId: {sch.week_id} is a {WEEKDAYS[sch.week_id.weekday()]} but business unit "
                f"{bu.id!r} starts its weeks on {bu.start_day_of_week}"
            )
        for m in sch.management_unit_ids or []:
            if m not in mus:
                out.append(f"{where}.managementUnitIds: unknown management unit {m!r}")
            elif mus[m].business_unit_id != bu.id:
                out.append(f"{where}.managementUnitIds: {m!r} belongs to another business unit")
        for j, group in enumerate(sch.shifts):
            out += _missing(f"{where}.shifts[{j}].managementUnitId", group.management_unit_id, set(mus), "MU")
            for a in group.agents or []:
                out += _missing(f"{where}.shifts[{j}].agents", a, agents, "agent")
            days = [d for d in group.days if isinstance(d, int) and not 0 <= d < 7 * sch.week_count]
            if days:
                out.append(f"{where}.shifts[{j}].days: offsets {days} fall outside the schedule's weeks")
    return out


def _check_sites(s: Scenario) -> list[str]:
    """Outbound routes name trunk bases; a cloud trunk sits on a Cloud media site."""
    bases = {b.id for b in s.trunk_bases}
    sites = {x.id: x for x in s.sites}
    out: list[str] = []
    for i, site in enumerate(s.sites):
        for j, route in enumerate(site.outbound_routes or []):
            for base in route.trunk_base_ids:
                out += _missing(f"sites[{i}].outboundRoutes[{j}].trunkBaseIds", base, bases, "trunk base")
    for i, trunk in enumerate(s.trunks):
        on = sites.get(trunk.site_id or "")
        if on is not None and not on.cloud:
            out.append(
                f"trunks[{i}].siteId: site {on.id!r} is {on.kind}: its trunks run on its Edges (edgeId)"
            )
    return out


_CHANGE_TARGET = {
    "softwareUpdate": "edges",
    "edgeNotActive": "edges",
    "trunkDisconnected": "trunks",
    "trunkBaseResaved": "trunk_bases",
}


def _check_events(s: Scenario) -> list[str]:
    schedules = {x.id for x in s.schedules}
    out: list[str] = []
    for i, ev in enumerate(s.events):
        if isinstance(ev, TelephonyChange):
            target = _CHANGE_TARGET[ev.kind]
            known = {x.id for x in getattr(s, target)}
            out += _missing(
                f"events[{i}].entityId", ev.entity_id, known, f"{to_camel(target)[:-1]} for {ev.kind}"
            )
        else:
            out += _missing(f"events[{i}].scheduleId", ev.schedule_id, schedules, "schedule")
    return out
