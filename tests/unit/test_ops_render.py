"""`wfm-publish ops show` for a person: nothing shown as "None", the timeline in time order, a repeated
event with its count and last time."""

from __future__ import annotations

from wfm_publish.models import Job, PublishRequest
from wfm_publish_local import ops

T0 = 1_796_000_000.0  # 2026-11-30T...Z


def job(**changes: object) -> Job:
    values: dict[str, object] = {
        "job_id": "p1",
        "schedule_id": "sched-1",
        "request": PublishRequest(schedule_id="sched-1"),
        "ticket": "t1",
        "created_at": T0,
        "updated_at": T0 + 9,
        "deadline_at": T0 + 3600,
    }
    return Job(**(values | changes))


def lines_after(shown: str, heading: str) -> list[str]:
    lines = shown.splitlines()
    return lines[lines.index(heading) + 1 :]


def test_a_job_not_located_yet_shows_a_dash_for_its_business_unit_and_week() -> None:
    shown = ops.render_detail(ops.job_detail(job()))
    assert "schedule  sched-1  business unit -  week -" in shown
    assert "None" not in shown


def test_an_api_answer_with_nulls_shows_dashes_too() -> None:
    """`ops check` renders the API's answer, which may carry the fields as null."""
    view = ops.job_detail(job()) | {"businessUnitId": None, "weekId": None, "reasonCode": None}
    shown = ops.render_detail(view)
    assert "business unit -  week -" in shown
    assert "status    QUEUED\n" in shown + "\n"
    assert "None" not in shown


def test_the_timeline_prints_in_time_order_whoever_recorded_it_last() -> None:
    recorded = job(business_unit_id="bu-1", week_id="2023-10-23")
    # Two functions moved the job: the entry of the earlier moment was written second.
    recorded.record(T0 + 5, "telephony settled")
    recorded.record(T0, "accepted", firstCheckInSeconds=0.0)
    recorded.record(T0 + 7, "publishing", attempt=1)
    recorded.record(T0 + 6, "capacity checked", ok=True)
    view = ops.job_detail(recorded)
    assert [e["event"] for e in view["timeline"]] == [
        "accepted",
        "telephony settled",
        "capacity checked",
        "publishing",
    ]
    timeline = lines_after(ops.render_detail(view), "timeline")
    assert [line.split("  ")[2].split(" ")[0] for line in timeline] == [
        "accepted",
        "telephony",
        "capacity",
        "publishing",
    ]
    at = [line.split()[0] for line in timeline]
    assert at == sorted(at)


def test_a_repeated_event_shows_how_often_and_when_last() -> None:
    recorded = job()
    recorded.record(T0, "accepted")
    recorded.record(T0 + 1, "telephony not settled", reads=1)
    recorded.record(T0 + 4, "telephony not settled", reads=2)
    (repeated,) = [
        line for line in ops.render_detail(ops.job_detail(recorded)).splitlines() if "not settled" in line
    ]
    assert "telephony not settled (x2, the last at 2026-" in repeated
