"""Lines needed against lines available, interval by interval: the pure computation (capacity.py)."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from wfm_publish.capacity import (
    Demand,
    Lines,
    Week,
    count_agents,
    evaluate,
    lines_per_agent,
    on_queue_spans,
)
from wfm_publish.genesys import AgentSchedule
from wfm_publish.readiness import TrunkLines

LONDON = "Europe/London"
WEEK = Week.of("2023-10-23", LONDON)  # BST until Sun 29 Oct 02:00, then GMT


def trunks(limit: int | None) -> TrunkLines:
    """Trunks whose Max Calls add up to `limit` (None: the trunks set no bound)."""
    return TrunkLines(limit, "limited", 1) if limit is not None else TrunkLines(None, "unlimited", 1)


def at(day: int, hhmm: str, zone: str = LONDON) -> float:
    """Epoch of a local time on day `day` (0 = Mon 23 Oct 2023)."""
    hours, minutes = (int(x) for x in hhmm.split(":"))
    day_date = dt.date(2023, 10, 23) + dt.timedelta(days=day)
    return dt.datetime.combine(day_date, dt.time(hours, minutes), tzinfo=ZoneInfo(zone)).timestamp()


def index(day: int, hhmm: str) -> int:
    return int((at(day, hhmm) - WEEK.start) // 900)


def agent(*shifts: dict[str, Any]) -> AgentSchedule:
    return AgentSchedule.model_validate({"user": {"id": "a"}, "shifts": list(shifts)})


def iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat().replace("+00:00", "Z")


# --- lines per agent and lines available ----------------------------------------------------------------


def test_lines_per_agent_by_dialing_mode() -> None:
    assert lines_per_agent("predictive", 3, 4) == 3  # the campaign's maxCallsPerAgent ...
    assert lines_per_agent("power", None, 4) == 4  # ... else the org's
    assert lines_per_agent("progressive", 3, 4) == 1
    assert lines_per_agent("preview", None, 4) == 1
    assert lines_per_agent("agentless", None, 4) == 0  # its outboundLineCount counts instead
    assert lines_per_agent("external", None, 4) == 0  # another dialer places the calls


def test_the_smaller_ceiling_binds_and_utilization_applies_once() -> None:
    # Line distribution says 60, the trunks carry 40: 40 x 0.9 = 36, minus 2 reserved elsewhere.
    assert Lines("p", None, 60, trunks(40), 0.9, reserved=2).available == 34
    assert Lines("p", None, 60, trunks(40), 0.9).bound == "trunks"
    assert Lines("p", None, 30, trunks(40), 0.9).available == 27  # the dialer's own limit binds
    assert Lines("p", None, 30, trunks(40), 0.9).bound == "lineDistribution"
    assert (
        Lines("p", None, None, trunks(40), 0.75).available == 30
    )  # no line distribution figure: trunks alone
    assert Lines("p", None, 10, trunks(None), 1.0, reserved=12).available == 0  # never negative


# --- who is on queue when -----------------------------------------------------------------------------


def test_breaks_and_meals_need_no_lines_and_a_touched_interval_counts() -> None:
    schedule = agent(
        {
            "startDate": iso(at(0, "08:10")),
            "lengthMinutes": 480,
            "activities": [
                {"startDate": iso(at(0, "08:10")), "lengthMinutes": 235, "activityCodeId": "0"},  # to 12:05
                {"startDate": iso(at(0, "12:05")), "lengthMinutes": 30, "activityCodeId": "2"},  # meal
                {"startDate": iso(at(0, "12:35")), "lengthMinutes": 5, "activityCodeId": "0"},  # to 12:40
                {"startDate": iso(at(0, "12:40")), "lengthMinutes": 15, "activityCodeId": "1"},  # break
                {"startDate": iso(at(0, "12:55")), "lengthMinutes": 5, "activityCodeId": "0"},  # to 13:00
            ],
        }
    )
    spans = on_queue_spans(schedule)
    assert len(spans) == 3
    counts = count_agents(WEEK, {"a": spans}, {"a": ["c"]})["c"]
    # Hand count: 08:10-12:05 touches 08:00 ... 12:00 (17 intervals); the meal leaves 12:15 free;
    # 12:35-12:40 and 12:55-13:00 both fall in the 12:30 and 12:45 intervals: counted once each.
    on = [i for i, n in enumerate(counts) if n]
    assert on[0] == index(0, "08:00")
    assert counts[index(0, "12:00")] == 1
    assert counts[index(0, "12:15")] == 0
    assert counts[index(0, "12:30")] == 1
    assert counts[index(0, "12:45")] == 1
    assert counts[index(0, "13:00")] == 0
    assert max(counts) == 1  # overlapping spans never count an agent twice
    assert len(on) == 17 + 2


def test_a_shift_without_activities_counts_whole() -> None:
    spans = on_queue_spans(agent({"startDate": iso(at(1, "09:00")), "lengthMinutes": 60}))
    counts = count_agents(WEEK, {"a": spans}, {"a": ["c"]})["c"]
    assert [i for i, n in enumerate(counts) if n] == list(range(index(1, "09:00"), index(1, "10:00")))


def test_an_agent_on_two_campaigns_counts_for_each() -> None:
    spans = {"a": [(at(0, "09:00"), at(0, "10:00"))], "b": [(at(0, "09:30"), at(0, "10:00"))]}
    counts = count_agents(WEEK, spans, {"a": ["sales", "retention"], "b": ["sales"]})
    assert counts["sales"][index(0, "09:30")] == 2
    assert counts["retention"][index(0, "09:30")] == 1
    assert counts["retention"][index(0, "09:00")] == 1


def test_the_week_grid_follows_the_business_units_zone_across_dst() -> None:
    assert WEEK.intervals == 676  # 7 days + the hour gained on Sunday 29 Oct
    assert Week.of("2023-10-30", LONDON).intervals == 672
    # Sunday 09:00 GMT is index 6 days x 96 + 1 extra hour (4) + 36 from local midnight.
    assert index(6, "09:00") == 6 * 96 + 4 + 36
    assert WEEK.local(index(6, "09:00")).strftime("%H:%M %Z") == "09:00 GMT"


def test_shifts_outside_the_week_are_clipped() -> None:
    spans = {"a": [(at(-1, "20:00"), at(0, "02:00")), (at(6, "22:00"), at(7, "06:00"))]}
    counts = count_agents(WEEK, spans, {"a": ["c"]})["c"]
    assert len(counts) == WEEK.intervals
    assert sum(counts) == 8 + 8  # 00:00-02:00 Monday and 22:00-24:00 Sunday


# --- the report ------------------------------------------------------------------------------------------


def _overbooked(days: int) -> tuple[list[Demand], list[Lines], dict[str, list[int]]]:
    """5 agents x 4 lines = 20 against 18 available, 10:00-11:00 on `days` days, plus 2 agentless."""
    demands = [
        Demand("sales", "Sales", "predictive", "site:s", 4),
        Demand("robo", "Robo", "agentless", "site:s", 0, fixed_lines=2),
    ]
    lines = [Lines("site:s", "Leeds", 30, trunks(20), 0.9)]  # floor(min(30, 20) x 0.9) = 18
    spans = {f"a{i}": [(at(d, "10:00"), at(d, "11:00")) for d in range(days)] for i in range(4)}
    return demands, lines, count_agents(WEEK, spans, {a: ["sales"] for a in spans})


def test_a_range_over_capacity_is_reported_with_both_zones_and_who_is_behind_it() -> None:
    demands, lines, agents = _overbooked(1)
    report = evaluate(WEEK, demands, lines, agents)
    # Hand count: 4 agents x 4 lines + 2 agentless = 18: exactly the 18 available, so not over ...
    assert report.ok
    assert report.pools[0].peak_needed == 18
    # ... one more agent 10:30-11:00 makes 22 > 18 in two intervals.
    agents["sales"] = [
        n + (1 if index(0, "10:30") <= i < index(0, "11:00") else 0) for i, n in enumerate(agents["sales"])
    ]
    report = evaluate(WEEK, demands, lines, agents)
    assert not report.ok
    assert report.intervals_over == 2
    (over,) = report.over
    assert over.label == "Mon 23 Oct 10:30-11:00 Europe/London (09:30-10:00 UTC) at Leeds"
    assert (over.start, over.start_utc) == ("2023-10-23T10:30:00+01:00", "2023-10-23T09:30:00Z")
    assert (over.end, over.end_utc) == ("2023-10-23T11:00:00+01:00", "2023-10-23T10:00:00Z")
    assert (over.intervals, over.lines_needed, over.lines_available) == (2, 22, 18)
    assert [(c.campaign_id, c.agents, c.lines) for c in over.campaigns] == [("sales", 5, 20), ("robo", 0, 2)]
    assert "2 of 676 15-minute intervals over capacity in 1 range" in report.summary


def test_the_list_of_ranges_is_capped_with_a_count_of_the_rest() -> None:
    demands, lines, agents = _overbooked(7)
    lines = [Lines("site:s", "Leeds", 30, trunks(10), 1.0)]  # 10 lines: 18 needed every day 10:00-11:00
    report = evaluate(WEEK, demands, lines, agents, max_ranges=3)
    assert report.intervals_over == 7 * 4
    assert len(report.over) == 3
    assert report.more_over == 4
    assert report.over[0].label.startswith("Mon 23 Oct 10:00-11:00")
    # Sunday is after the clocks went back: 10:00 GMT is 10:00 UTC.
    full = evaluate(WEEK, demands, lines, agents)
    assert full.over[-1].label == "Sun 29 Oct 10:00-11:00 Europe/London (10:00-11:00 UTC) at Leeds"


def test_no_campaigns_means_nothing_to_check() -> None:
    report = evaluate(WEEK, [], [], {})
    assert report.ok
    assert report.intervals_checked == 676
    assert "no outbound campaign" in report.summary


def test_two_thousand_agents_over_a_dst_week_are_counted_on_its_676_intervals() -> None:
    # How long it takes is `python -m bench capacity`'s to measure, not a test's.
    spans = {}
    campaigns_of = {}
    for i in range(2000):
        start = at(0, "07:00") + (i % 4) * 1800
        spans[f"a{i}"] = [
            (start + d * 86400 + offset, start + d * 86400 + offset + length)
            for d in range(5)
            for offset, length in ((0, 4 * 3600), (4.5 * 3600, 3.5 * 3600))
        ]
        campaigns_of[f"a{i}"] = [f"c{i % 25}"] + ([f"c{(i + 1) % 25}"] if i % 3 == 0 else [])
    demands = [Demand(f"c{c}", None, "predictive", f"site:{c % 5}", 3) for c in range(25)]
    lines = [Lines(f"site:{p}", None, 1000, trunks(900), 0.9) for p in range(5)]
    report = evaluate(WEEK, demands, lines, count_agents(WEEK, spans, campaigns_of))
    assert report.intervals_checked == 676
