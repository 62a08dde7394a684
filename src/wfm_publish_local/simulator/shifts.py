"""Agent shifts expanded from a schedule's compact shift patterns, in the agentschedules/query shape."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Any

from wfm_publish.clock import iso
from wfm_publish_local.simulator.scenario import WEEKDAYS, Activity, Schedule, ShiftGroup
from wfm_publish_local.simulator.topology import Topology


def day_offsets(group: ShiftGroup, schedule: Schedule) -> list[int]:
    """Day offsets from the week date; a weekday name means that day in every week of the schedule."""
    first = schedule.week_id.weekday()
    offsets: set[int] = set()
    for day in group.days:
        if isinstance(day, int):
            offsets.add(day)
            continue
        index = next(i for i, name in enumerate(WEEKDAYS) if name.startswith(day))
        offsets.update((index - first) % 7 + 7 * week for week in range(schedule.week_count))
    return sorted(offsets)


def group_agents(group: ShiftGroup, schedule_agents: list[str], topology: Topology) -> list[str]:
    if group.agents is not None:
        wanted = set(group.agents)
    elif group.management_unit_id is not None:
        wanted = set(topology.management_units[group.management_unit_id].agents)
    else:
        return schedule_agents
    return [a for a in schedule_agents if a in wanted]


def expand_shifts(schedule: Schedule, topology: Topology) -> dict[str, dict[str, Any]]:
    """Per agent: {shifts, workPlan}. Times are computed in the business unit's zone (DST included)."""
    zone = zoneinfo.ZoneInfo(topology.business_units[schedule.business_unit_id].time_zone)
    agents = [a for _, a in topology.schedule_agents(schedule)]
    out: dict[str, dict[str, Any]] = {a: {"shifts": [], "workPlan": None} for a in agents}
    for group in schedule.shifts:
        hours, minutes = (int(x) for x in group.start.split(":"))
        offsets = day_offsets(group, schedule)
        for index, agent in enumerate(group_agents(group, agents, topology)):
            stagger = dt.timedelta(minutes=(index % group.stagger_slots) * group.stagger_minutes)
            entry = out[agent]
            entry["workPlan"] = entry["workPlan"] or {"id": group.work_plan_id}
            for offset in offsets:
                day = schedule.week_id + dt.timedelta(days=offset)
                start = dt.datetime.combine(day, dt.time(hours, minutes), tzinfo=zone) + stagger
                entry["shifts"].append(_shift(schedule.id, agent, offset, start, group))
    return out


def _shift(
    schedule_id: str, agent: str, offset: int, start: dt.datetime, group: ShiftGroup
) -> dict[str, Any]:
    begin = start.timestamp()
    activities = group.activities or [Activity(length_minutes=group.length_minutes)]
    return {
        "id": f"shift-{schedule_id}-{agent}-{offset}",
        "startDate": iso(begin),
        "lengthMinutes": group.length_minutes,
        "activities": [
            _present(
                {
                    "startDate": iso(begin + a.offset_minutes * 60),
                    "lengthMinutes": a.length_minutes,
                    "activityCodeId": a.activity_code_id,
                    "description": a.description,
                    "paid": a.counts_as_paid_time,
                }
            )
            for a in activities
        ],
        "manuallyEdited": False,
    }


def _present(fields: dict[str, Any]) -> dict[str, Any]:
    """Genesys leaves an empty field out rather than sending null."""
    return {k: v for k, v in fields.items() if v is not None}
