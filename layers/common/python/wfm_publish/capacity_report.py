"""The capacity report as a person reads it: consecutive intervals over capacity as ranges (start
and end in the business unit's zone and in UTC, the campaigns behind the peak), their labels and the
report's summary. The interval arithmetic is capacity.py's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from wfm_publish.models import CampaignLoad, CapacityOverflow, CapacityReport

if TYPE_CHECKING:
    from wfm_publish.capacity import Demand, Lines, Week


def overflows(
    week: Week,
    pool: Lines,
    demands: Sequence[Demand],
    agents: Mapping[str, Sequence[int]],
    needed: Sequence[int],
    over: list[int],
) -> list[tuple[int, CapacityOverflow]]:
    """Each run of the pool's intervals `over` capacity, by its first interval, with its peak."""
    found: list[tuple[int, CapacityOverflow]] = []
    for first, last in _runs(over):
        window = needed[first:last]
        at = first + window.index(max(window))
        found.append((first, _overflow(week, pool, demands, agents, first, last, needed[at], at)))
    return found


def _runs(indices: list[int]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for i in indices:
        if runs and runs[-1][1] == i:
            runs[-1] = (runs[-1][0], i + 1)
        else:
            runs.append((i, i + 1))
    return runs


def _overflow(
    week: Week,
    pool: Lines,
    demands: Sequence[Demand],
    agents: Mapping[str, Sequence[int]],
    first: int,
    last: int,
    peak: int,
    at: int,
) -> CapacityOverflow:
    behind = []
    for d in demands:
        counts = agents.get(d.campaign_id)
        on = counts[at] if counts and d.lines_per_agent else 0  # agentless: agents do not matter
        lines = on * d.lines_per_agent + d.fixed_lines
        if lines:
            behind.append(
                CampaignLoad(
                    campaign_id=d.campaign_id,
                    name=d.name,
                    dialing_mode=d.dialing_mode,
                    agents=on,
                    lines_per_agent=d.lines_per_agent,
                    lines=lines,
                )
            )
    return CapacityOverflow(
        pool=pool.pool,
        label=_label(week, first, last, pool),
        start=week.local(first).isoformat(),
        end=week.local(last).isoformat(),
        start_utc=_utc(week, first),
        end_utc=_utc(week, last),
        intervals=last - first,
        lines_needed=peak,
        lines_available=pool.available or 0,  # a run over capacity has a limit
        peak_at=week.local(at).isoformat(),
        campaigns=behind,
    )


def _label(week: Week, first: int, last: int, pool: Lines) -> str:
    """ "Mon 23 Oct 12:00-13:00 Europe/London (11:00-12:00 UTC) at London": for a person."""
    start, end = week.local(first), week.local(last)
    ustart, uend = week.utc(first), week.utc(last)
    local_end = end.strftime("%H:%M") if end.date() == start.date() else end.strftime("%a %d %b %H:%M")
    utc_end = uend.strftime("%H:%M") if uend.date() == ustart.date() else uend.strftime("%a %d %b %H:%M")
    utc_start = (
        ustart.strftime("%H:%M") if ustart.date() == start.date() else ustart.strftime("%a %d %b %H:%M")
    )
    where = f" at {pool.name or pool.pool}"
    return (
        f"{start.strftime('%a %d %b %H:%M')}-{local_end} {week.time_zone} ({utc_start}-{utc_end} UTC){where}"
    )


MAX_SERIES_CHARS = 4096  # a pool's encoded series kept in the job item; a week is ~20-250 in practice


def kept_runs(needed: Sequence[int]) -> str | None:
    """`runs(needed)`, or None when it is too long to keep in the job item (the job stays small: every
    write of it is billed by the kilobyte)."""
    encoded = runs(needed)
    return encoded if len(encoded) <= MAX_SERIES_CHARS else None


def runs(needed: Sequence[int]) -> str:
    """The series run-length encoded: `value*count` (count 1 left out), joined by commas. A week of
    672 intervals whose need changes with the shifts is a few dozen runs, not 672 numbers."""
    out: list[str] = []
    i = 0
    while i < len(needed):
        j = i
        while j < len(needed) and needed[j] == needed[i]:
            j += 1
        out.append(f"{needed[i]}*{j - i}" if j - i > 1 else str(needed[i]))
        i = j
    return ",".join(out)


def series(encoded: str, intervals: int) -> list[int]:
    """`runs`' text back to one value per interval; ValueError unless it covers exactly `intervals`."""
    values: list[int] = []
    for run in encoded.split(",") if encoded else []:
        value, _, count = run.partition("*")
        n = int(count) if count else 1
        if n < 1 or len(values) + n > intervals:
            raise ValueError(f"the series does not fit {intervals} intervals")
        values.extend([int(value)] * n)
    if len(values) != intervals:
        raise ValueError(f"the series covers {len(values)} of {intervals} intervals")
    return values


def stamp(week: Week, index: int) -> str:
    return f"{week.local(index).strftime('%a %d %b %H:%M')} {week.time_zone}"


def _utc(week: Week, index: int) -> str:
    return week.utc(index).strftime("%Y-%m-%dT%H:%M:%SZ")


BOUND_WORDS = {
    "lineDistribution": "the line distribution's maxOutboundLineCount",
    "trunks": "the trunks' Max Calls",
    "edges": "the Edges' concurrent call capacity",
    "none": "none",
}


def summary(report: CapacityReport, ranges: int) -> str:
    if not report.pools:
        return "no outbound campaign in scope: no lines needed"
    if report.ok:
        worst = max(
            report.pools, key=lambda p: (p.peak_needed / p.lines_available) if p.lines_available else 0
        )
        at = f" ({worst.peak_at})" if worst.peak_at else ""
        where = worst.name or worst.pool
        if worst.lines_available is None:
            return (
                f"all {report.intervals_checked} intervals checked; peak {worst.peak_needed} lines at "
                f"{where}{at}; no limit could be read, so none was applied"
            )
        bound = BOUND_WORDS.get(worst.bound, worst.bound)
        return (
            f"all {report.intervals_checked} intervals within capacity; peak {worst.peak_needed} of "
            f"{worst.lines_available} lines at {where}{at} (bound: {bound})"
        )
    first = report.over[0]
    decided = next((p.bound for p in report.pools if p.pool == first.pool), None)
    by = f" (bound: {BOUND_WORDS.get(decided, decided)})" if decided else ""
    return (
        f"{report.intervals_over} of {report.intervals_checked} 15-minute intervals over capacity "
        f"in {ranges} range{'s' if ranges != 1 else ''}; first: {first.label}: "
        f"{first.lines_needed} lines needed, {first.lines_available} available{by}"
    )
