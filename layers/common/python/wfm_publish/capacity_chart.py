"""The capacity report drawn: per pool (site / edge group), lines available against the lines outbound
needs in every 15-minute interval of the week, the intervals over the limit marked, the axis in the
business unit's time zone. Pure Python SVG (no dependency), every text escaped, the same report always
the same bytes (fixed number formats, nothing from the clock).

What a test (or a reader's tool) can rely on: each pool is a `<g class="pool" data-pool="...">`; each
run of intervals over the limit is a `<rect class="over" data-first="i" data-intervals="n">`, `i` the
first interval's index from `weekStart` and `n` how many; the need is a `<path class="needed">`, the
limit a `<line class="available">`.

The API draws it for `GET /publishes/{publishId}/capacity` asked as image/svg+xml (answers.py decides).
"""

from __future__ import annotations

import datetime as dt
import math
import zoneinfo
from collections.abc import Iterator, Sequence
from xml.sax.saxutils import escape, quoteattr

from wfm_publish.capacity_report import series
from wfm_publish.models import CapacityReport, PoolCapacity

SVG = "image/svg+xml"
WIDTH = 1200
LEFT, RIGHT = 64, 24
TOP = 70  # the title and the legend
PANEL = 200  # each pool: its name, the plot, the day labels
PLOT = 128  # the plot's height within a panel
NEEDED, AVAILABLE, OVER = "#1f5fa8", "#2e7d32", "#d32f2f"


class ChartUnavailable(Exception):
    """The report keeps no per-interval series to draw (made before they were kept)."""


def chart(report: CapacityReport, title: str) -> str:
    """The SVG document; ChartUnavailable when no pool's series was kept."""
    if report.pools and all(p.needed_runs is None for p in report.pools):
        raise ChartUnavailable("the report keeps no per-interval series")
    n = report.intervals_checked
    zone = _zone(report.time_zone)
    start = dt.datetime.fromisoformat(report.week_start)
    if start.tzinfo is None:  # a date, or a time without its offset: the business unit's
        start = start.replace(tzinfo=zone)
    height = TOP + PANEL * max(1, len(report.pools)) + 10
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="11">',
        f"<title>{escape(title)}</title>",
        f'<rect width="{WIDTH}" height="{height}" fill="#ffffff"/>',
        f'<text x="{LEFT}" y="20" font-size="15" font-weight="bold">{escape(title)}</text>',
        f'<text x="{LEFT}" y="38">{escape(report.summary)}</text>',
        *_legend(),
    ]
    if not report.pools:
        out.append(f'<text x="{LEFT}" y="{TOP + 20}">no outbound campaign in scope: no lines needed</text>')
    for index, pool in enumerate(report.pools):
        out += _panel(pool, TOP + index * PANEL, n, start, zone, report.interval_minutes)
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _legend() -> list[str]:
    y = 56
    return [
        f'<line x1="{LEFT}" y1="{y - 4}" x2="{LEFT + 24}" y2="{y - 4}" stroke="{NEEDED}" stroke-width="2"/>',
        f'<text x="{LEFT + 30}" y="{y}">lines needed (outbound demand)</text>',
        f'<line x1="{LEFT + 230}" y1="{y - 4}" x2="{LEFT + 254}" y2="{y - 4}" stroke="{AVAILABLE}" '
        'stroke-width="2" stroke-dasharray="6 3"/>',
        f'<text x="{LEFT + 260}" y="{y}">lines available</text>',
        f'<rect x="{LEFT + 380}" y="{y - 10}" width="14" height="10" fill="{OVER}" fill-opacity="0.3"/>',
        f'<text x="{LEFT + 400}" y="{y}">over the limit</text>',
    ]


def _panel(
    pool: PoolCapacity, top: int, n: int, start: dt.datetime, zone: dt.tzinfo, minutes: int
) -> list[str]:
    plot_top, plot_bottom = top + 22, top + 22 + PLOT
    width = WIDTH - LEFT - RIGHT
    name = pool.name or pool.pool
    available = pool.lines_available  # None: no limit could be read, none applied (the report's notes)
    limit = "no limit could be read" if available is None else f"{available} available"
    label = f"{name} ({pool.pool}): at most {pool.peak_needed} lines needed, {limit}"
    if pool.intervals_over:
        label += f"; {pool.intervals_over} intervals over the limit"
    out = [
        f'<g class="pool" data-pool={quoteattr(pool.pool)}>',
        f'<text x="{LEFT}" y="{top + 14}" font-weight="bold">{escape(label)}</text>',
    ]
    needed = series(pool.needed_runs, n) if pool.needed_runs is not None else None
    top_value = _nice(max([available or 0, *(needed or [0]), 1]) * 1.1)

    def x(i: int) -> str:
        return f"{LEFT + i * width / n:.2f}"

    def y(value: float) -> str:
        return f"{plot_bottom - value * PLOT / top_value:.2f}"

    for value in _ticks(top_value):  # the y axis: lines
        out.append(
            f'<line x1="{LEFT}" y1="{y(value)}" x2="{WIDTH - RIGHT}" y2="{y(value)}" stroke="#e0e0e0"/>'
        )
        out.append(f'<text x="{LEFT - 6}" y="{y(value)}" text-anchor="end" dy="4">{value}</text>')
    out.append(
        f'<text x="14" y="{(plot_top + plot_bottom) / 2:.1f}" text-anchor="middle" '
        f'transform="rotate(-90 14 {(plot_top + plot_bottom) / 2:.1f})">lines</text>'
    )
    for i, local in _hours(n, start, zone, minutes):  # the x axis: days and their quarters, local time
        if local.hour == 0:
            out.append(
                f'<line x1="{x(i)}" y1="{plot_top}" x2="{x(i)}" y2="{plot_bottom + 4}" stroke="#9e9e9e"/>'
            )
            out.append(f'<text x="{x(i)}" y="{plot_bottom + 16}">{escape(local.strftime("%a %d %b"))}</text>')
        else:
            out.append(
                f'<line x1="{x(i)}" y1="{plot_bottom}" x2="{x(i)}" y2="{plot_bottom + 3}" stroke="#9e9e9e"/>'
            )
    out.append(
        f'<text x="{WIDTH - RIGHT}" y="{plot_bottom + 30}" text-anchor="end" fill="#616161">'
        f"{escape(_zone_name(zone))} time; ticks every 6 hours; one step per {minutes} minutes</text>"
    )
    if needed is None:
        out.append(
            f'<text x="{LEFT + 8}" y="{plot_top + 16}">'
            "the per-interval need was not kept for this pool</text>"
        )
    else:
        for first, count in _runs_over(needed, available) if available is not None else ():
            out.append(
                f'<rect class="over" data-first="{first}" data-intervals="{count}" x="{x(first)}" '
                f'y="{plot_top}" width="{float(x(first + count)) - float(x(first)):.2f}" height="{PLOT}" '
                f'fill="{OVER}" fill-opacity="0.3"><title>{escape(_span(first, count, start, zone, minutes))}'
                f"</title></rect>"
            )
        steps = [f"M{x(0)} {y(needed[0])}"]
        for i in range(1, n):
            if needed[i] != needed[i - 1]:
                steps.append(f"H{x(i)} V{y(needed[i])}")
        steps.append(f"H{x(n)}")
        out.append(
            f'<path class="needed" d="{" ".join(steps)}" fill="none" stroke="{NEEDED}" stroke-width="1.5"/>'
        )
    if available is not None:
        out.append(
            f'<line class="available" x1="{LEFT}" y1="{y(available)}" x2="{WIDTH - RIGHT}" '
            f'y2="{y(available)}" stroke="{AVAILABLE}" stroke-width="1.5" stroke-dasharray="6 3"/>'
        )
    out.append(
        f'<rect x="{LEFT}" y="{plot_top}" width="{width}" height="{PLOT}" fill="none" stroke="#616161"/>'
    )
    out.append("</g>")
    return out


def _runs_over(needed: Sequence[int], available: int) -> Iterator[tuple[int, int]]:
    i = 0
    while i < len(needed):
        if needed[i] > available:
            j = i
            while j < len(needed) and needed[j] > available:
                j += 1
            yield i, j - i
            i = j
        else:
            i += 1


def _hours(n: int, start: dt.datetime, zone: dt.tzinfo, minutes: int) -> Iterator[tuple[int, dt.datetime]]:
    """Each interval that begins 00:00, 06:00, 12:00 or 18:00 in the zone, with its local time (a day
    with a clock change has 92 or 100 intervals: the grid is the zone's, not UTC's)."""
    for i in range(n):
        local = (start + dt.timedelta(minutes=i * minutes)).astimezone(zone)
        if local.minute == 0 and local.hour % 6 == 0:
            yield i, local


def _zone_name(zone: dt.tzinfo) -> str:
    return str(getattr(zone, "key", None) or "UTC")


def _span(first: int, count: int, start: dt.datetime, zone: dt.tzinfo, minutes: int) -> str:
    begin = (start + dt.timedelta(minutes=first * minutes)).astimezone(zone)
    end = (start + dt.timedelta(minutes=(first + count) * minutes)).astimezone(zone)
    return f"over the limit {begin:%a %d %b %H:%M}-{end:%H:%M} ({count} intervals)"


def _zone(name: str) -> dt.tzinfo:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return dt.UTC


def _nice(value: float) -> int:
    """A round number at or above `value` (1, 2, 2.5, 3, 4, 5, 6 or 8 times a power of ten)."""
    power = 10.0 ** math.floor(math.log10(value))
    return math.ceil(next(s * power for s in (1, 2, 2.5, 3, 4, 5, 6, 8, 10) if s * power >= value))


def _ticks(top: int) -> list[int]:
    step = max(1, top // 4)
    return list(range(0, top + 1, step))
