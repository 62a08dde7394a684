"""wfm_publish.metrics: EMF lines per invocation, one namespace, low-cardinality dimensions, and the
outcome metrics of an ended job (read from its terminal image)."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

from wfm_publish import metrics
from wfm_publish.models import Job, JobStatus, PublishRequest, ReasonCode, TimelineEntry


def emf_lines(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.startswith('{"_aws"')]


def points(out: str) -> list[tuple[str, dict[str, str], list[float]]]:
    """(metric, dimensions, values) for every metric of every EMF line."""
    found = []
    for line in emf_lines(out):
        (directive,) = line["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == "WfmPublish"
        (dimension_names,) = directive["Dimensions"]
        dimensions = {name: line[name] for name in dimension_names}
        for metric in directive["Metrics"]:
            value = line[metric["Name"]]
            found.append((metric["Name"], dimensions, value if isinstance(value, list) else [value]))
    return found


def test_points_are_flushed_once_when_the_invocation_ends(capsys: pytest.CaptureFixture[str]) -> None:
    @metrics.log_metrics
    def handler() -> str:
        metrics.count("PublishRequests", Outcome="accepted")
        metrics.count("PublishRequests", Outcome="accepted")
        metrics.count("CallbacksFailed")
        assert capsys.readouterr().out == ""  # nothing before the end
        return "done"

    assert handler() == "done"
    got = sorted(points(capsys.readouterr().out), key=lambda p: p[0])
    assert got == [
        ("CallbacksFailed", {}, [1.0]),  # no implicit `service` dimension
        ("PublishRequests", {"Outcome": "accepted"}, [1.0, 1.0]),
    ]
    handler()
    assert len(points(capsys.readouterr().out)) == 2  # the next invocation starts empty


def test_a_failing_invocation_still_flushes(capsys: pytest.CaptureFixture[str]) -> None:
    @metrics.log_metrics
    def handler() -> None:
        metrics.count("CallbacksFailed")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        handler()
    assert points(capsys.readouterr().out) == [("CallbacksFailed", {}, [1.0])]


def test_outside_an_invocation_a_point_goes_nowhere(capsys: pytest.CaptureFixture[str]) -> None:
    metrics.count("PublishRequests", Outcome="accepted")
    assert capsys.readouterr().out == ""


def test_dimensions_are_bounded() -> None:
    recorder = metrics.Recorder()
    with pytest.raises(ValueError, match="at most 3"):
        recorder.add("X", "Count", 1, {"a": "1", "b": "2", "c": "3", "d": "4"})


def test_threads_keep_their_own_points(capsys: pytest.CaptureFixture[str]) -> None:
    """The local stack runs every function in one process: one invocation never flushes another's."""
    started = threading.Barrier(2)

    @metrics.log_metrics
    def handler(name: str) -> None:
        metrics.count(name)
        started.wait(5)

    threads = [threading.Thread(target=handler, args=(n,)) for n in ("A", "B")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    lines = emf_lines(capsys.readouterr().out)
    assert sorted(m["Name"] for line in lines for m in line["_aws"]["CloudWatchMetrics"][0]["Metrics"]) == [
        "A",
        "B",
    ]
    assert len(lines) == 2


def ended(**changes: Any) -> Job:
    now = time.time()
    values: dict[str, Any] = {
        "job_id": "job-1",
        "schedule_id": "sched-1",
        "request": PublishRequest(schedule_id="sched-1"),
        "status": JobStatus.PUBLISHED,
        "reason_code": ReasonCode.PUBLISHED,
        "ticket": "t",
        "created_at": now - 100,
        "updated_at": now,
        "deadline_at": now + 3600,
        "first_check_at": now - 95,
        "publish_attempts": 2,
        "readiness_checks": 7,
        "timeline": [
            TimelineEntry(at=now - 100, event="accepted"),
            TimelineEntry(at=now - 60, event="telephony settled"),
            TimelineEntry(at=now - 40, event="conflict classified", detail={"kind": "stale-version"}),
            TimelineEntry(at=now - 30, event="conflict classified", detail={"kind": "stale-version"}),
            TimelineEntry(at=now - 20, event="conflict classified", detail={"kind": "telephony-settling"}),
            TimelineEntry(at=now - 10, event="telephony settled"),
        ],
    }
    return Job(**(values | changes))


def test_a_published_job_says_how_it_ended_and_what_it_took(capsys: pytest.CaptureFixture[str]) -> None:
    metrics.log_metrics(metrics.job_ended)(ended())
    got = {
        (name, tuple(sorted(dims.items()))): values for name, dims, values in points(capsys.readouterr().out)
    }
    assert got[("JobsEnded", (("Reason", "PUBLISHED"), ("Status", "PUBLISHED")))] == [1.0]
    assert got[("JobsEnded", (("Status", "PUBLISHED"),))] == [1.0]
    assert got[("TimeToPublish", ())] == [pytest.approx(100, abs=0.5)]
    assert got[("TelephonyWait", ())] == [pytest.approx(85, abs=0.5)]  # first check to last settled
    assert got[("PublishAttempts", ())] == [2.0]
    assert got[("ReadinessChecks", ())] == [7.0]
    assert got[("Conflicts", (("Kind", "stale-version"),))] == [2.0]
    assert got[("Conflicts", (("Kind", "telephony-settling"),))] == [1.0]


def test_a_failed_job_has_no_time_to_publish_and_an_unchecked_one_no_wait(
    capsys: pytest.CaptureFixture[str],
) -> None:
    job = ended(
        status=JobStatus.FAILED,
        reason_code=ReasonCode.DEADLINE_EXCEEDED,
        first_check_at=None,
        timeline=[],
    )
    metrics.log_metrics(metrics.job_ended)(job)
    names = {(name, tuple(dims.items())) for name, dims, _ in points(capsys.readouterr().out)}
    assert ("JobsEnded", (("Status", "FAILED"),)) in names
    assert ("JobsEnded", (("Reason", "DEADLINE_EXCEEDED"), ("Status", "FAILED"))) in names
    assert not {n for n, _ in names} & {"TimeToPublish", "TelephonyWait", "Conflicts"}


def test_time_to_publish_starts_at_a_later_publish_time(capsys: pytest.CaptureFixture[str]) -> None:
    from datetime import UTC, datetime

    job = ended()
    later = job.model_copy(
        update={
            "request": PublishRequest(
                schedule_id="s", publish_time=datetime.fromtimestamp(job.updated_at - 30, UTC)
            )
        }
    )
    metrics.log_metrics(metrics.job_ended)(later)
    (value,) = [v for n, _, v in points(capsys.readouterr().out) if n == "TimeToPublish"]
    assert value == [pytest.approx(30, abs=0.5)]


def test_a_job_that_never_settled_waited_until_its_end() -> None:
    job = ended(timeline=[], status=JobStatus.FAILED, reason_code=ReasonCode.DEADLINE_EXCEEDED)
    assert metrics.telephony_wait(job) == pytest.approx(95, abs=0.5)


def test_a_genesys_call_is_counted_by_route_class_and_rolled_up_for_the_alarms(
    capsys: pytest.CaptureFixture[str],
) -> None:
    @metrics.log_metrics
    def calls() -> None:
        metrics.genesys_call("schedules", 200)
        metrics.genesys_call("schedules", 429)
        metrics.genesys_call("telephony", 503)
        metrics.genesys_call("telephony", None)  # no answer counts with the 5xx

    calls()
    totals: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for name, dims, values in points(capsys.readouterr().out):
        key = (name, tuple(dims.items()))
        totals[key] = totals.get(key, 0) + sum(values)
    assert totals[("GenesysCalls", ())] == 4
    assert totals[("GenesysCalls", (("RouteClass", "schedules"),))] == 2
    assert totals[("GenesysThrottled", ())] == 1
    assert totals[("GenesysServerErrors", ())] == 2
    assert totals[("GenesysServerErrors", (("RouteClass", "telephony"),))] == 2
    assert ("GenesysServerErrors", (("RouteClass", "schedules"),)) not in totals
