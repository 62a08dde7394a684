"""The demo's account of a job's wait for telephony says what it measures, and its "settled after the
first look" is the figure the TelephonyWait metric gives for the same job (it once said "10.9 s of it
waiting for telephony", counting the first-look delay the request asked for, beside TelephonyWait 5.4 s)."""

from __future__ import annotations

import pytest

from wfm_publish import metrics
from wfm_publish.intake import job_view
from wfm_publish.models import Job, JobStatus, PublishRequest, TelephonySync
from wfm_publish_local.demo import summarise, telephony_words

T0 = 1_796_000_000.0


def demo_job() -> Job:
    """The demo's timeline: asked to look first after 5 s, it waits out an Edge update, then publishes."""
    request = PublishRequest(schedule_id="sched-demo", telephony_sync=TelephonySync(delay_ms=5000))
    job = Job(
        job_id="p1",
        schedule_id="sched-demo",
        request=request,
        ticket="t",
        created_at=T0,
        updated_at=T0 + 13.2,
        deadline_at=T0 + 3600,
        first_check_at=T0 + 5.3,
        publish_attempts=2,
    )
    job.record(T0, "accepted", firstCheckInSeconds=5.0)
    job.record(T0 + 5.3, "telephony scope", agents=6)
    job.record(T0 + 5.35, "telephony not settled", reads=1)
    job.record(T0 + 8.0, "woken by a telephony event")
    job.record(T0 + 8.2, "telephony not settled", reads=4)
    job.record(T0 + 11.1, "telephony settled", reads=3)
    job.record(T0 + 11.2, "publishing", attempt=1)
    job.record(T0 + 13.2, "published")
    return job.model_copy(update={"status": JobStatus.PUBLISHED, "detail": "published at schedule version 5"})


def test_the_wait_after_the_first_look_is_the_telephony_wait_metric() -> None:
    job = demo_job()
    words = telephony_words(job_view(job))
    assert words == (
        "telephony: first look 5.3 s after the request (telephonySync.delayMs),"
        " settled 5.8 s after that look (the TelephonyWait metric)"
    )
    assert metrics.telephony_wait(job) == pytest.approx(5.8)


def test_the_summary_names_both_parts(capsys: pytest.CaptureFixture[str]) -> None:
    assert summarise(job_view(demo_job()), {"calls": {"GET x": 27}}) == 0
    printed = capsys.readouterr().out
    assert "13.2 s from request to published; 2 publish attempts" in printed
    assert "first look 5.3 s after the request" in printed and "settled 5.8 s after that look" in printed
    assert "waiting for telephony" not in printed
