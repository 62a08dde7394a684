"""The capacity chart: the report's per-interval series kept compactly in the job, drawn as SVG that
parses as XML, marks exactly the report's intervals over the limit, escapes every text, labels days in
the business unit's zone (a clock change included), and is the same bytes every time."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.charts import SVG, marked, reported_overs
from tests.support.virtual import accept, demo, request, virtual_run
from tests.support.virtual import raw_scenario as scenario
from wfm_publish import answers, capacity_chart
from wfm_publish.api import ApiProblem
from wfm_publish.capacity import Demand, Lines, Week, evaluate
from wfm_publish.capacity_report import MAX_SERIES_CHARS, runs, series
from wfm_publish.models import Job, JobStatus, ReasonCode
from wfm_publish.readiness import TrunkLines


def checked(raw: dict[str, Any], body: dict[str, Any]) -> tuple[Job, int]:
    """The job after its run in virtual time, and the size of its item's document."""
    run = virtual_run(raw)
    job_id = accept(run, body)
    job = run.run(job_id)
    return job, len(run.store.items[f"job#{job_id}"]["doc"]["S"])


def over_capacity() -> Job:
    job, _ = checked(
        scenario("capacity-exceeded"), request("sched-cap", "bu-cap", telephonySync={"enabled": False})
    )
    assert (job.status, job.reason_code) == (JobStatus.FAILED, ReasonCode.CAPACITY_EXCEEDED)
    return job


# --- the series ------------------------------------------------------------------------------------------


@given(st.lists(st.integers(0, 5000), max_size=700))
@settings(max_examples=200, derandomize=True, database=None)
def test_the_series_runs_come_back_as_they_went(needed: list[int]) -> None:
    encoded = runs(needed)
    assert series(encoded, len(needed)) == needed
    assert "*1," not in encoded + "," and len(encoded.split(",")) <= max(1, len(needed))


def test_a_series_that_does_not_cover_the_week_is_refused() -> None:
    with pytest.raises(ValueError, match="covers 3 of 4"):
        series("1*3", 4)
    with pytest.raises(ValueError, match="does not fit"):
        series("1*5", 4)


def test_the_demo_job_keeps_its_series_and_stays_small() -> None:
    job, size = checked(demo(), request("sched-demo", "bu-demo"))
    assert job.status is JobStatus.PUBLISHED and job.capacity is not None
    [pool] = job.capacity.pools
    assert pool.needed_runs is not None and len(pool.needed_runs) < 200
    assert (
        len(series(pool.needed_runs, job.capacity.intervals_checked)) == 676
    )  # the week with a clock change
    assert size < 4.5 * 1024, size  # the job item: 3.9 KiB before the series, well under 8 KiB


def test_a_series_too_long_to_keep_is_left_out_with_a_note() -> None:
    week = Week.of("2023-10-23", "UTC")
    saw = [i % 997 for i in range(week.intervals)]  # a different need every interval: ~2.5 KB
    wild = [100_000 + i for i in range(week.intervals)]  # ~4.7 KB: over the limit kept
    unlimited = TrunkLines(None, "unlimited", 1)
    pools = [Lines("site:a", "A", 100, unlimited, 1.0), Lines("site:b", "B", 100, unlimited, 1.0)]
    demands = [Demand("c1", None, "progressive", "site:a", 1), Demand("c2", None, "progressive", "site:b", 1)]
    report = evaluate(week, demands, pools, {"c1": saw, "c2": wild})
    kept, dropped = report.pools
    assert kept.needed_runs is not None and len(kept.needed_runs) <= MAX_SERIES_CHARS
    assert dropped.needed_runs is None
    assert any("B changed too often" in note for note in report.notes)
    svg = capacity_chart.chart(report, "t")
    assert "the per-interval need was not kept for this pool" in svg
    assert set(marked(svg)["site:a"]) == {i for i, n in enumerate(saw) if n > 100}


# --- the chart --------------------------------------------------------------------------------------------


def test_the_chart_marks_exactly_the_reports_intervals_over_the_limit() -> None:
    job = over_capacity()
    report = job.capacity
    assert report is not None and report.more_over == 0  # every range listed: they can be compared
    svg = answers.capacity_chart(report, job.job_id, job.schedule_id)
    drawn = marked(svg)
    assert drawn == reported_overs(report)
    assert {pool: len(i) for pool, i in drawn.items()} == {p.pool: p.intervals_over for p in report.pools}
    assert sum(len(i) for i in drawn.values()) == report.intervals_over == 90
    # The need drawn is the report's: one step per change, the limit a line at lines available.
    root = ET.fromstring(svg)
    [path] = [e for e in root.iter(f"{SVG}path") if e.get("class") == "needed"]
    [pool] = report.pools
    assert pool.needed_runs is not None
    assert path.get("d", "").count("V") == len(pool.needed_runs.split(",")) - 1
    assert len([e for e in root.iter(f"{SVG}line") if e.get("class") == "available"]) == 1


def test_the_days_are_the_business_units_with_its_clock_change() -> None:
    job = over_capacity()
    assert job.capacity is not None
    svg = answers.capacity_chart(job.capacity, job.job_id, job.schedule_id)
    texts = [t.text or "" for t in ET.fromstring(svg).iter(f"{SVG}text")]
    days = [t for t in texts if t[:3] in {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"} and len(t) == 10]
    assert days == [
        "Mon 23 Oct",
        "Tue 24 Oct",
        "Wed 25 Oct",
        "Thu 26 Oct",
        "Fri 27 Oct",
        "Sat 28 Oct",
        "Sun 29 Oct",
    ]
    assert any("Europe/London time" in t for t in texts)
    titles = [t.text or "" for t in ET.fromstring(svg).iter(f"{SVG}title")]
    assert "over the limit Mon 23 Oct 12:00-13:00 (4 intervals)" in titles  # the report's first range


def test_the_chart_is_the_same_bytes_every_time_and_escapes_its_text() -> None:
    job = over_capacity()
    assert job.capacity is not None
    report = job.capacity.model_copy(deep=True)
    report.pools[0].name = 'Leeds <"North"> & </text><script>alert(1)</script>'
    report.summary = "a & b < c"
    first = capacity_chart.chart(report, "T & <title>")
    assert capacity_chart.chart(report.model_copy(deep=True), "T & <title>") == first
    assert "<script>" not in first
    root = ET.fromstring(first)  # parses: every text escaped
    texts = [t.text or "" for t in root.iter(f"{SVG}text")]
    assert any('Leeds <"North"> & </text><script>alert(1)</script>' in t for t in texts)
    assert "a & b < c" in texts
    assert not list(root.iter(f"{SVG}script"))


def test_a_report_without_series_has_nothing_to_draw() -> None:
    job = over_capacity()
    assert job.capacity is not None
    old = job.capacity.model_copy(deep=True)
    for pool in old.pools:
        pool.needed_runs = None
    with pytest.raises(ApiProblem) as refused:
        answers.capacity_chart(old, job.job_id, job.schedule_id)
    assert refused.value.http_status == 404
    assert "before its per-interval series were kept" in refused.value.body.message


def test_a_pool_without_a_readable_limit_draws_its_need_and_no_limit() -> None:
    week = Week.of("2023-10-23", "UTC")
    pool = Lines("site:a", "A", None, TrunkLines(None, "unreadable", 1, ("base-1: no Max Calls",)), 1.0)
    report = evaluate(week, [Demand("c1", None, "progressive", "site:a", 1)], [pool], {"c1": [500] * 672})
    assert report.pools[0].lines_available is None and report.intervals_over == 0
    root = ET.fromstring(capacity_chart.chart(report, "t"))
    assert not [e for e in root.iter(f"{SVG}line") if e.get("class") == "available"]
    assert not [e for e in root.iter(f"{SVG}rect") if e.get("class") == "over"]
    assert [e for e in root.iter(f"{SVG}path") if e.get("class") == "needed"]
    assert any("no limit could be read" in (t.text or "") for t in root.iter(f"{SVG}text"))


def test_no_pool_in_scope_draws_a_note() -> None:
    report = evaluate(Week.of("2023-10-23", "Europe/Berlin"), [], [], {})
    root = ET.fromstring(capacity_chart.chart(report, "t"))
    assert any("no outbound campaign in scope" in (t.text or "") for t in root.iter(f"{SVG}text"))


@pytest.mark.parametrize(
    ("accept", "format_", "chart"),
    [
        (None, None, False),
        ("image/svg+xml", None, True),
        ("IMAGE/SVG+XML; charset=utf-8", None, True),
        ("application/json", None, False),
        ("*/*", None, False),
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", None, False),  # a browser
        ("image/*;q=0.9, application/json;q=0.5", None, True),
        ("image/svg+xml;q=0.1, application/json", None, False),
        ("image/svg+xml;q=oops", None, False),
        ("application/json", "svg", True),
        ("image/svg+xml", "json", False),
    ],
)
def test_the_caller_chooses_the_chart_by_accept_or_format(
    accept: str | None, format_: str | None, chart: bool
) -> None:
    assert answers.wants_chart(accept, format_) is chart


def test_no_capacity_report_says_why() -> None:
    def job(**changes: Any) -> Job:
        base = {
            "jobId": "j-1",
            "scheduleId": "s",
            "request": {"scheduleId": "s"},
            "ticket": "t",
            "createdAt": 1.0,
            "updatedAt": 1.0,
            "deadlineAt": 2.0,
        }
        return Job.model_validate({**base, **changes})

    def why(found: Job | None) -> tuple[str, str]:
        with pytest.raises(ApiProblem) as refused:
            answers.capacity(found, "j-1", None, None)
        return refused.value.body.code.value, refused.value.body.message

    assert why(None) == ("NOT_FOUND", "no publish j-1")
    assert "validationMode off" in why(job(request={"scheduleId": "s", "validationMode": "off"}))[1]
    code, message = why(job(status="WAITING"))
    assert code == "NO_CAPACITY_REPORT" and "yet" in message and "telephony has settled" in message
    deferred = job(request={"scheduleId": "s", "validationMode": "deferred"}, status="PUBLISHING")
    assert "after the publish" in why(deferred)[1]
    assert "ended CANCELLED (CANCELLED)" in why(job(status="CANCELLED", reasonCode="CANCELLED"))[1]
