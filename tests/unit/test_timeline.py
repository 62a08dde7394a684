"""A job's timeline stays readable and its item the same size however long telephony keeps changing
(issue 12): repeated looks at telephony that still changes are one entry, counted."""

from __future__ import annotations

from tests.support.virtual import demo, edge_update, start
from wfm_publish.intake import job_view
from wfm_publish.models import NOT_SETTLED, Job, JobStatus


def published_after(seconds: float) -> tuple[Job, int]:
    run, job_id = start(demo(events=[edge_update(seconds)]))
    job = run.run(job_id)
    assert job.status is JobStatus.PUBLISHED
    return job, len(run.store.items[f"job#{job_id}"]["doc"]["S"])


def test_looks_at_a_changing_edge_are_one_counted_entry_with_the_last_blockers() -> None:
    job, _ = published_after(2 * 3600)
    [waits] = [e for e in job.timeline if e.event == NOT_SETTLED]
    assert waits.times is not None and waits.times > 30
    assert waits.times == job.readiness_checks - 1  # every look but the one that found it settled
    assert waits.until is not None and waits.until - waits.at > 7000
    assert "edge" in waits.detail["blockers"][0]
    shown = next(e for e in job_view(job)["timeline"] if e["event"] == NOT_SETTLED)
    assert shown["times"] == waits.times and shown["until"] > shown["at"]


def test_the_job_item_is_the_same_size_after_six_hours_as_after_ten_minutes() -> None:
    _, short = published_after(600)
    _, long = published_after(6 * 3600)
    assert abs(long - short) <= 64  # a few digits more in the counts and times, nothing per look
    assert long <= 8 * 1024
