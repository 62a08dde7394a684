"""Reading the capacity chart back: the intervals it marks over the limit, and those the report names."""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET

from wfm_publish.models import CapacityReport

SVG = "{http://www.w3.org/2000/svg}"


def marked(svg: str) -> dict[str, set[int]]:
    """Per pool, the intervals the chart marks over the limit."""
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    found: dict[str, set[int]] = {}
    for group in root.iter(f"{SVG}g"):
        if group.get("class") != "pool":
            continue
        pool = found.setdefault(str(group.get("data-pool")), set())
        for rect in group.iter(f"{SVG}rect"):
            if rect.get("class") == "over":
                first, count = int(rect.get("data-first", "")), int(rect.get("data-intervals", ""))
                pool.update(range(first, first + count))
    return found


def reported_overs(report: CapacityReport) -> dict[str, set[int]]:
    """Per pool, the intervals the report's `over` ranges name (by their start and end times)."""
    start = dt.datetime.fromisoformat(report.week_start)
    step = dt.timedelta(minutes=report.interval_minutes)
    out: dict[str, set[int]] = {p.pool: set() for p in report.pools}
    for o in report.over:
        first = (dt.datetime.fromisoformat(o.start) - start) // step
        last = (dt.datetime.fromisoformat(o.end) - start) // step
        assert last - first == o.intervals
        out[o.pool].update(range(first, last))
    return out
