"""Can the outbound trunks carry the agents a schedule puts on outbound campaigns?

For every 15-minute interval of the schedule's week(s), per site / edge group ("pool"):

    lines needed    = sum over the schedule's campaigns dialing through the pool of
                        agents on the campaign's queue in an on-queue activity in the interval
                        * lines per agent (+ outboundLineCount for an agentless campaign)
    lines available = floor(min(maxOutboundLineCount, sum of the trunks' Max Concurrent Calls)
                            * maxLineUtilization)
                      - lines reserved by agentless campaigns outside the schedule

Decisions (docs/architecture.md, "Capacity", has the longer why):

- Lines per agent: predictive and power dial ahead, `maxCallsPerAgent` of the campaign, else the
  org's outbound settings; progressive and preview place one call per agent; agentless holds its
  `outboundLineCount` whatever the agents do; external campaigns are dialed by another system and take
  no lines here.
- Breaks and meals need no lines: an agent counts only while in an on-queue activity (activity code
  "0", Genesys's On Queue Work; configurable). The dialer paces calls on agents available on queue, so
  an agent at lunch has no calls dialed for them. A shift with no activities counts whole.
- An agent counts in every interval an on-queue activity touches (08:10-12:05 counts 08:00 through
  12:00): a peak inside an interval is a peak of the interval.
- An agent on the queues of several campaigns counts for each: each campaign's dialer paces for them.
- The line distribution (the dialer's own view: the lines outbound may use on the site) and the trunks'
  Max Concurrent Calls (the carrier's hard limit) are both ceilings: a call needs a dialer line and a
  trunk channel, so the smaller binds. maxLineUtilization is the headroom the dialer keeps on what it
  has, so it is applied once, to the binding count (the line distribution's own utilization, else the
  org's). Agentless campaigns of other schedules on the pool keep their reserved lines.
- Only this schedule's agents count: other schedules' agents on the same pool are their jobs' check.

The counting is difference arrays over the week's interval grid, one per group of agents that serve
the same campaigns, so 2,000 agents over a week cost a few milliseconds, not agents x intervals.
"""

from __future__ import annotations

import datetime as dt
import math
import operator
import zoneinfo
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import TYPE_CHECKING, Any

from wfm_publish import capacity_report, readiness, scope
from wfm_publish.genesys_wire import AgentSchedule, LineDistribution, OutboundSettings
from wfm_publish.models import (
    CapacityOverflow,
    CapacityReport,
    PoolCapacity,
    ScopeCampaign,
    TelephonyScope,
)
from wfm_publish.observations import Observer

if TYPE_CHECKING:
    from wfm_publish.ports import CapacityReader

INTERVAL_SECONDS = 900
ON_QUEUE_ACTIVITY_CODES = scope.ON_QUEUE_ACTIVITY_CODES
MAX_RANGES = 12  # over-capacity ranges listed in a report; the rest are counted in `moreOver`
PACED_MODES = frozenset({"predictive", "power"})
ONE_LINE_MODES = frozenset({"progressive", "preview"})
FALLBACK_UTILIZATION = 1.0  # neither the line distribution nor the org says: no headroom assumed


# --- the pure computation ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Week:
    """The schedule's interval grid: from the week date's local midnight, `weeks` weeks long."""

    start: float
    end: float
    time_zone: str

    @classmethod
    def of(cls, week_id: str, time_zone: str, weeks: int = 1) -> Week:
        zone = zoneinfo.ZoneInfo(time_zone)
        first = dt.date.fromisoformat(week_id[:10])
        start = dt.datetime.combine(first, dt.time(), tzinfo=zone).timestamp()
        end = dt.datetime.combine(first + dt.timedelta(days=7 * weeks), dt.time(), tzinfo=zone).timestamp()
        return cls(start, end, time_zone)

    @property
    def intervals(self) -> int:
        return math.ceil((self.end - self.start) / INTERVAL_SECONDS)

    def at(self, index: int) -> float:
        return self.start + index * INTERVAL_SECONDS

    def local(self, index: int) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.at(index), zoneinfo.ZoneInfo(self.time_zone))

    def utc(self, index: int) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.at(index), dt.UTC)


@dataclass(frozen=True)
class Demand:
    """What one campaign of the schedule asks of its pool."""

    campaign_id: str
    name: str | None
    dialing_mode: str
    pool: str
    lines_per_agent: int  # 0: agentless or external
    fixed_lines: int = 0  # agentless: outboundLineCount, every interval


# The bounds a pool's lines can have, as named in the report (PoolCapacity.bound).
LINE_DISTRIBUTION = (
    "lineDistribution"  # the dialer's maxOutboundLineCount for the campaign's site / edge group
)
TRUNKS = "trunks"  # Σ Max Calls of the trunks that carry calls (none when one is unlimited)
EDGES = "edges"  # premises Edges times their concurrent call capacity (configured: not in the API)
NO_BOUND = "none"


@dataclass(frozen=True)
class Lines:
    """What one pool (site / edge group) can carry: the smallest of the bounds that could be read."""

    pool: str
    name: str | None
    max_outbound_line_count: int | None  # the line distribution's
    trunks: readiness.TrunkLines
    utilization: float
    reserved: int = 0  # held by agentless campaigns outside the schedule
    edge_max: int | None = None  # premises: Edges carrying calls times the configured capacity per Edge
    media: str | None = None

    @property
    def trunk_max(self) -> int | None:
        return self.trunks.limit if self.trunks.state == "limited" else None

    def bounds(self) -> dict[str, int]:
        known = {
            LINE_DISTRIBUTION: self.max_outbound_line_count,
            TRUNKS: self.trunk_max,
            EDGES: self.edge_max,
        }
        if self.trunks.state == "none":
            known[TRUNKS] = 0  # no trunk carries calls: nothing goes out, whatever the dialer would do
        return {name: n for name, n in known.items() if n is not None}

    @property
    def bound(self) -> str:
        """Which bound decided: the smallest known one (the first named, on a tie)."""
        bounds = self.bounds()
        return min(bounds, key=lambda name: bounds[name]) if bounds else NO_BOUND

    @property
    def raw(self) -> int | None:
        bounds = self.bounds()
        return min(bounds.values()) if bounds else None

    @property
    def available(self) -> int | None:
        """Lines outbound may use; None: no documented limit could be read, so none is applied."""
        raw = self.raw
        if raw is None:
            return None
        return max(0, math.floor(raw * self.utilization + 1e-9) - self.reserved)

    def notes(self) -> list[str]:
        """What a person needs to trust the figure: unlimited or unreadable Max Calls, trunks that carry
        nothing now, a bound that could not be applied."""
        where = self.name or self.pool
        notes = []
        if self.trunks.state == "unlimited":
            notes.append(f"{where}: a trunk's Max Calls is unlimited, so the trunks set no bound")
        if self.trunks.unreadable:
            notes.append(
                f"{where}: Max Calls not readable, trunks set no bound: {'; '.join(self.trunks.unreadable)}"
            )
        if self.trunks.unavailable:
            shown = "; ".join(self.trunks.unavailable[:5])
            more = f" and {len(self.trunks.unavailable) - 5} more" if len(self.trunks.unavailable) > 5 else ""
            notes.append(f"{where}: trunks carrying no calls now, not counted: {shown}{more}")
        if (
            self.media != "Cloud"
            and self.edge_max is None
            and self.trunks.state in ("unlimited", "unreadable")
        ):
            notes.append(
                f"{where}: the Edges' concurrent call capacity is not configured (EDGE_CALL_CAPACITY),"
                " so it is not applied"
            )
        if self.available is None:
            notes.append(f"{where}: no limit could be read (no line distribution, trunk or Edge bound)")
        return notes


def lines_per_agent(dialing_mode: str, campaign_max: int | None, org_max: int | None) -> int:
    mode = dialing_mode.lower()
    if mode in PACED_MODES:
        return campaign_max or org_max or 1
    if mode in ("agentless", "external"):
        return 0
    return 1  # progressive, preview, and anything new: one call per agent


def demand_of(campaign: ScopeCampaign, org_max_calls: int | None) -> Demand:
    mode = campaign.dialing_mode.lower()
    return Demand(
        campaign.id,
        campaign.name,
        mode,
        campaign.pool,
        lines_per_agent(mode, campaign.max_calls_per_agent, org_max_calls),
        (campaign.outbound_line_count or 0) if mode == "agentless" else 0,
    )


def on_queue_spans(
    schedule: AgentSchedule, codes: frozenset[str] = ON_QUEUE_ACTIVITY_CODES
) -> list[tuple[float, float]]:
    """(start, end) epoch seconds of the agent's on-queue time."""
    spans: list[tuple[float, float]] = []
    for shift in schedule.shifts:
        if not shift.activities:
            begin = _epoch(shift.start_date)
            spans.append((begin, begin + shift.length_minutes * 60))
            continue
        for activity in shift.activities:
            if (activity.activity_code_id or "0") in codes:
                begin = _epoch(activity.start_date)
                spans.append((begin, begin + activity.length_minutes * 60))
    return spans


def count_agents(
    week: Week,
    spans: Mapping[str, Iterable[tuple[float, float]]],
    campaigns_of: Mapping[str, Sequence[str]],
) -> dict[str, list[int]]:
    """Per campaign, agents on queue in each interval: a difference array per group of agents who
    serve the same campaigns, then one running sum per group."""
    n = week.intervals
    groups: dict[tuple[str, ...], list[int]] = {}
    for agent, agent_spans in spans.items():
        serves = campaigns_of.get(agent)
        if not serves:
            continue
        key = tuple(sorted(set(serves)))
        diff = groups.get(key)
        if diff is None:
            diff = groups[key] = [0] * (n + 1)
        for first, last in _merged(week, agent_spans, n):
            diff[first] += 1
            diff[last] -= 1
    per_campaign: dict[str, list[int]] = {}
    for key, diff in groups.items():
        counts = list(accumulate(diff[:n]))
        for campaign_id in key:
            known = per_campaign.get(campaign_id)
            per_campaign[campaign_id] = counts if known is None else list(map(operator.add, known, counts))
    return per_campaign


def _merged(week: Week, spans: Iterable[tuple[float, float]], n: int) -> list[tuple[int, int]]:
    """Interval index ranges [first, last) an agent is on queue, merged so no interval counts twice."""
    ranges = sorted(
        (
            max(0, math.floor((start - week.start) / INTERVAL_SECONDS)),
            min(n, math.ceil((end - week.start) / INTERVAL_SECONDS)),
        )
        for start, end in spans
        if end > week.start and start < week.end
    )
    merged: list[tuple[int, int]] = []
    for first, last in ranges:
        if first >= last:
            continue
        if merged and first <= merged[-1][1]:
            if last > merged[-1][1]:
                merged[-1] = (merged[-1][0], last)
        else:
            merged.append((first, last))
    return merged


def evaluate(
    week: Week,
    demands: Sequence[Demand],
    pools: Sequence[Lines],
    agents: Mapping[str, Sequence[int]],
    *,
    notes: Sequence[str] = (),
    checked_at: float | None = None,
    max_ranges: int = MAX_RANGES,
) -> CapacityReport:
    """Lines needed against lines available, interval by interval, and a bounded report of the overs
    (capacity_report shapes them for a person)."""
    n = week.intervals
    pool_reports: list[PoolCapacity] = []
    overflows: list[tuple[int, CapacityOverflow]] = []
    total_over = 0
    for pool in pools:
        mine = [d for d in demands if d.pool == pool.pool]
        needed = [sum(d.fixed_lines for d in mine)] * n
        for d in mine:
            counts = agents.get(d.campaign_id)
            if counts and d.lines_per_agent:
                needed = [x + d.lines_per_agent * y for x, y in zip(needed, counts, strict=True)]
        available = pool.available
        peak = max(needed, default=0)
        over = [] if available is None else [i for i, x in enumerate(needed) if x > available]
        total_over += len(over)
        pool_reports.append(
            PoolCapacity(
                pool=pool.pool,
                name=pool.name,
                lines_available=available,
                bound=pool.bound,
                max_outbound_line_count=pool.max_outbound_line_count,
                trunk_max_concurrent_calls=pool.trunk_max,
                trunk_max_calls=pool.trunks.state,
                edge_capacity=pool.edge_max,
                max_line_utilization=pool.utilization,
                reserved_lines=pool.reserved,
                peak_needed=peak,
                peak_at=capacity_report.stamp(week, needed.index(peak)) if peak else None,
                intervals_over=len(over),
                needed_runs=capacity_report.kept_runs(needed),
            )
        )
        notes = [*notes, *pool.notes()]
        overflows.extend(capacity_report.overflows(week, pool, mine, agents, needed, over))
    overflows.sort(key=lambda item: (item[0], item[1].pool))
    listed = [o for _, o in overflows[:max_ranges]]
    report = CapacityReport(
        ok=total_over == 0,
        summary="",
        time_zone=week.time_zone,
        week_start=week.local(0).isoformat(),
        interval_minutes=INTERVAL_SECONDS // 60,
        intervals_checked=n,
        intervals_over=total_over,
        pools=pool_reports,
        over=listed,
        more_over=max(0, len(overflows) - max_ranges),
        notes=list(notes),
        checked_at=checked_at,
    )
    report.summary = capacity_report.summary(report, len(overflows))
    dropped = [p.name or p.pool for p in pool_reports if p.needed_runs is None]
    if dropped:
        report.notes.append(
            f"the per-interval need of {', '.join(dropped)} changed too often to keep in the job "
            f"(over {capacity_report.MAX_SERIES_CHARS} characters): the chart does not draw it"
        )
    return report


# --- reading what it needs from Genesys ------------------------------------------------------------


def assess(
    reader: CapacityReader,
    observer: Observer,
    telephony: TelephonyScope,
    *,
    business_unit_id: str,
    week_id: str,
    schedule_id: str,
    options: scope.TelephonyOptions | None = None,
) -> CapacityReport:
    """Read the shifts, the pools' lines and the org's settings, and evaluate the week.

    Reads: the agent schedules (one query per management unit), and through the shared observations
    the business unit's time zone, the org's outbound settings, each pool's line distribution and
    trunks (usually already read by this invocation's readiness check) and the queues' members.
    """
    options = options or scope.TelephonyOptions()
    reference, fresh = options.reference_max_age, options.observation_max_age
    zone = _time_zone(reader, observer, business_unit_id, reference)
    week = Week.of(week_id, zone, telephony.week_count)
    if not telephony.campaigns:
        return evaluate(week, [], [], {}, checked_at=observer.now)
    org = OutboundSettings.model_validate(
        observer.get(
            "outboundSettings",
            reference,
            lambda: reader.outbound_settings().model_dump(mode="json", by_alias=True),
        )
    )
    demands = [demand_of(c, org.max_calls_per_agent) for c in telephony.campaigns]
    pools = [
        pool_lines(reader, observer, telephony, p.key, p.kind, p.id, org, options, fresh)
        for p in telephony.pools
    ]
    members = {
        q: set(scope.queue_members(reader, observer, q, reference))
        for q in dict.fromkeys(c.queue_id for c in telephony.campaigns if c.queue_id)
    }
    campaigns_of: dict[str, list[str]] = {}
    spans: dict[str, list[tuple[float, float]]] = {}
    for unit in telephony.management_units:
        for agent in reader.agent_schedules(business_unit_id, week_id, schedule_id, unit):
            serves = [
                c.id for c in telephony.campaigns if c.queue_id and agent.user.id in members[c.queue_id]
            ]
            if serves:
                campaigns_of[agent.user.id] = serves
                spans.setdefault(agent.user.id, []).extend(on_queue_spans(agent, options.on_queue_codes))
    agents = count_agents(week, spans, campaigns_of)
    return evaluate(week, demands, pools, agents, notes=_notes(demands, options), checked_at=observer.now)


def _time_zone(reader: CapacityReader, observer: Observer, bu_id: str, max_age: float) -> str:
    def read() -> dict[str, Any]:
        settings = reader.business_unit(bu_id).get("settings") or {}
        return {"timeZone": settings.get("timeZone") or "UTC"}

    zone = str(observer.get(f"businessUnit:{bu_id}", max_age, read).get("timeZone") or "UTC")
    try:
        zoneinfo.ZoneInfo(zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return "UTC"
    return zone


def pool_lines(
    reader: CapacityReader,
    observer: Observer,
    telephony: TelephonyScope,
    key: str,
    kind: str,
    pool_id: str,
    org: OutboundSettings,
    options: scope.TelephonyOptions,
    max_age: float,
) -> Lines:
    mine = [c for c in telephony.campaigns if c.pool == key]
    distribution = LineDistribution.model_validate(
        observer.get(
            f"lines:{key}",
            max_age,
            lambda: reader.line_distribution(mine[0].id).model_dump(mode="json", by_alias=True),
        )
    )
    media = next((p.media_model for p in telephony.pools if p.key == key), None)
    snapshot = readiness.pool_snapshot(
        reader, observer, kind, pool_id, max_age=max_age, max_calls_key=options.max_calls_key, media=media
    )
    ours = sum(c.outbound_line_count or 0 for c in mine if c.dialing_mode == "agentless")
    utilization = distribution.max_line_utilization
    if utilization is None:
        utilization = (
            org.max_line_utilization if org.max_line_utilization is not None else FALLBACK_UTILIZATION
        )
    name = next((p.name for p in telephony.pools if p.key == key), None) or snapshot.name
    premises = media != readiness.CLOUD
    edge_max = snapshot.edges_carrying() * options.edge_call_capacity if premises else 0
    return Lines(
        pool=key,
        name=name,
        max_outbound_line_count=distribution.max_outbound_line_count,
        trunks=snapshot.trunk_lines(),
        utilization=utilization,
        reserved=max(0, (distribution.reserved_lines or 0) - ours),
        edge_max=edge_max if premises and options.edge_call_capacity > 0 else None,
        media=media,
    )


def _notes(demands: Sequence[Demand], options: scope.TelephonyOptions) -> list[str]:
    codes = ", ".join(sorted(options.on_queue_codes))
    notes = [
        f"agents count only in on-queue activities (activity code {codes}); breaks and meals need no lines",
        "an agent on several campaigns' queues counts for each",
    ]
    external = [d.campaign_id for d in demands if d.dialing_mode == "external"]
    if external:
        notes.append(
            f"external campaigns dial through another system, no lines counted: {', '.join(external)}"
        )
    return notes


def _epoch(stamp: str) -> float:
    return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
