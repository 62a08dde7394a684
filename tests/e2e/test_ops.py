"""`wfm-publish ops` against the local stack, as an operator runs it: the CLI's main with `--local` and
the first line `wfm-publish serve` prints (written to a file here), every AWS call over HTTP to moto
server, the API signed as ServiceNow signs it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from wfm_publish.models import JobMessage, JobStatus, Step
from wfm_publish.store import DynamoJobStore
from wfm_publish_local.cli import main
from wfm_publish_local.demo import DEMO_CALLBACK, SERVICENOW_BODY
from wfm_publish_local.embedded import EmbeddedStack
from wfm_publish_local.ops import describe_local

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack() -> Iterator[EmbeddedStack]:
    with EmbeddedStack(visibility_timeout=2) as running:
        yield running


@pytest.fixture(scope="module")
def serve_line(stack: EmbeddedStack, tmp_path_factory: pytest.TempPathFactory) -> Path:
    assert stack.stack is not None
    path = tmp_path_factory.mktemp("ops") / "stack.json"
    path.write_text(json.dumps(describe_local(stack.stack, stack.servicenow.url)) + "\n", encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def fresh_org(stack: EmbeddedStack) -> None:
    stack.simulator.reset()
    stack.servicenow.reset()


def ops(serve_line: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, Any]:
    """Run `wfm-publish ops --local <file> --json ...`: the exit code and the JSON it printed."""
    capsys.readouterr()
    code = main(["ops", "--local", str(serve_line), "--json", *args])
    out = capsys.readouterr()
    return code, json.loads(out.out) if out.out.strip() else out.err


def text(serve_line: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["ops", "--local", str(serve_line), *args])
    out = capsys.readouterr()
    return code, out.out + out.err


def later(hours: float = 1.0) -> str:
    return (datetime.now(UTC) + timedelta(hours=hours)).isoformat()


def store(stack: EmbeddedStack) -> DynamoJobStore:
    assert stack.stack is not None
    return DynamoJobStore(stack.stack.client("dynamodb"), stack.stack.table_name)


def test_jobs_show_and_notify_a_published_job(
    stack: EmbeddedStack, serve_line: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    publish_id = stack.accept({**SERVICENOW_BODY, "callback": DEMO_CALLBACK})["publishId"]
    assert stack.wait_for_publish(publish_id, timeout=90)["status"] == "PUBLISHED"

    code, rows = ops(serve_line, capsys, "jobs", "--status", "published", "--schedule", "sched-demo")
    assert code == 0
    assert publish_id in [r["publishId"] for r in rows]
    assert all(r["status"] == "PUBLISHED" and r["scheduleId"] == "sched-demo" for r in rows)
    code, rows = ops(serve_line, capsys, "jobs", "--schedule", "no-such-schedule")
    assert (code, rows) == (0, [])
    code, rows = ops(serve_line, capsys, "jobs", "--since", later(1))  # created before: none
    assert (code, rows) == (0, [])

    code, view = ops(serve_line, capsys, "show", publish_id)
    assert view["status"] == "PUBLISHED" and view["attempts"]["publish"] == 2  # after the stale 409
    code, shown = text(serve_line, capsys, "show", publish_id)
    assert code == 0
    assert "status    PUBLISHED  PUBLISHED" in shown
    assert "409 conflict" in shown and "timeline" in shown and "capacity  " in shown
    assert "callback  change_request/" in shown and "notified: yes" in shown

    # The notifier told the record already: notify delivers nothing twice.
    stack.servicenow.wait_for_updates(1, table=DEMO_CALLBACK["table"], timeout=20)
    code, told = ops(serve_line, capsys, "notify", publish_id)
    assert (code, told["outcome"]) == (0, "already notified")


def test_cancel_refuses_what_it_must_and_notify_tells_the_record_after_the_dlq(
    stack: EmbeddedStack, serve_line: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # ServiceNow down for every retry the stream makes: the end lands in the notifier's DLQ.
    stack.servicenow.fail_next(200, status=503)
    body = {**SERVICENOW_BODY, "publishTime": later(), "callback": DEMO_CALLBACK}
    publish_id = stack.accept(body)["publishId"]
    code, job = ops(serve_line, capsys, "cancel", publish_id)
    assert (code, job["status"]) == (0, "CANCELLED")
    code, problem = text(serve_line, capsys, "cancel", publish_id)
    assert code == 0 and f"{publish_id} already CANCELLED, nothing changed" in problem
    code, again = ops(serve_line, capsys, "cancel", publish_id)
    assert (code, again["status"], again["alreadyCancelled"]) == (0, "CANCELLED", True)
    assert job["alreadyCancelled"] is False
    assert stack.stack is not None
    stack.stack.wait_until(lambda: ops(serve_line, capsys, "dlq", "list", "notifier")[1], 30, 0.5)
    code, letters = ops(serve_line, capsys, "dlq", "list", "--queue", "notifier")  # the option form
    assert letters and "stream" in letters[0]
    assert text(serve_line, capsys, "dlq", "list")[0] == 2  # which queue?
    code, problem = text(serve_line, capsys, "dlq", "redrive", "notifier")
    assert code == 1 and "ops notify" in problem

    stack.servicenow.reset()  # back up: tell it
    code, told = ops(serve_line, capsys, "notify", publish_id)
    assert (code, told["outcome"]) == (0, "delivered")
    (update,) = stack.servicenow.updates(DEMO_CALLBACK["table"])[-1:]
    assert (update.body or {})["u_wfm_publish_status"] == "CANCELLED"
    code, told = ops(serve_line, capsys, "notify", publish_id)
    assert told["outcome"] == "already notified"
    code, problem = text(serve_line, capsys, "dlq", "purge", "notifier")
    assert code == 2 and "--yes" in problem  # nothing deleted without it
    code, purged = ops(serve_line, capsys, "dlq", "purge", "notifier", "--yes")
    assert code == 0 and purged["deleted"] >= 1
    assert ops(serve_line, capsys, "dlq", "list", "notifier")[1] == []

    # A job that ended cannot be cancelled: the core refuses, the CLI says why and exits 1.
    published = stack.accept({**SERVICENOW_BODY, "validationMode": "off"})["publishId"]
    stack.wait_for_publish(published, timeout=60)
    code, problem = text(serve_line, capsys, "cancel", published)
    assert code == 1 and "already ended PUBLISHED" in problem
    code, problem = text(serve_line, capsys, "show", "no-such-job")
    assert code == 1 and "no publish no-such-job" in problem


def test_dlq_redrive_moves_the_job_on_with_a_fresh_ticket_never_the_stale_message(
    stack: EmbeddedStack, serve_line: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert stack.stack is not None
    jobs = store(stack)
    waiting = stack.accept({**SERVICENOW_BODY, "scheduleId": "sched-later", "publishTime": later()})
    job = jobs.get_job(waiting["publishId"])
    assert job is not None and job.status is JobStatus.QUEUED
    sqs = stack.stack.client("sqs")
    dlq = stack.stack.queue_url("ValidationDLQ")
    current = JobMessage(job_id=job.job_id, ticket=job.ticket, step=Step.VALIDATE, version=job.version)
    stale = current.model_copy(update={"ticket": "an-old-ticket"})
    for letter in (current, stale):
        sqs.send_message(QueueUrl=dlq, MessageBody=letter.model_dump_json(by_alias=True, exclude_none=True))
    sqs.send_message(QueueUrl=dlq, MessageBody="put here by hand")

    code, letters = ops(serve_line, capsys, "dlq", "list", "validation")
    assert code == 0 and len(letters) == 3
    assert sorted(str(r.get("publishId")) for r in letters).count(job.job_id) == 2
    assert {r.get("step") for r in letters} >= {"validate"}
    code, shown = text(serve_line, capsys, "dlq", "list", "validation")
    assert "publishId" in shown and job.job_id in shown

    code, rows = ops(serve_line, capsys, "dlq", "redrive", "validation")
    outcomes = sorted(r["outcome"] for r in rows)
    assert outcomes == ["kept: not a job message", "moved", "obsolete; letter deleted"]
    moved = jobs.get_job(job.job_id)
    assert moved is not None and moved.status is JobStatus.QUEUED
    assert moved.ticket not in {job.ticket, "an-old-ticket"}  # a fresh message carries the job
    assert moved.timeline[-1].event == "redriven by an operator"
    assert moved.due_at == pytest.approx(job.due_at, abs=2)  # still at its publishTime, not early
    (left,) = ops(serve_line, capsys, "dlq", "list", "validation")[1]
    assert left["body"] == "put here by hand"
    ops(serve_line, capsys, "dlq", "purge", "validation", "--yes")
    ops(serve_line, capsys, "cancel", job.job_id)


def test_stuck_lists_overdue_jobs(
    stack: EmbeddedStack, serve_line: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    jobs = store(stack)
    publish_id = stack.accept({**SERVICENOW_BODY, "scheduleId": "sched-stuck", "publishTime": later()})[
        "publishId"
    ]
    job = jobs.get_job(publish_id)
    assert job is not None
    # Its message lost: due 20 minutes ago and nothing in flight (as the watchdog finds it).
    jobs.save_job(job.model_copy(update={"due_at": time.time() - 1200}))
    code, rows = ops(serve_line, capsys, "stuck")
    assert code == 0
    (row,) = [r for r in rows if r["publishId"] == publish_id]
    assert row["overdueSeconds"] >= 1200
    code, rows = ops(serve_line, capsys, "stuck", "--over", "3600")
    assert publish_id not in [r["publishId"] for r in rows]
    code, shown = text(serve_line, capsys, "stuck")
    assert publish_id in shown and "overdueSeconds" in shown
    ops(serve_line, capsys, "cancel", publish_id)


def test_check_is_a_dry_run_that_never_publishes_or_joins(
    stack: EmbeddedStack, serve_line: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The dry run waits for telephony to settle (the demo's Edge update): a real publish of the same
    # schedule sent meanwhile starts its own job, and the dry run never publishes.
    dry = stack.accept({**SERVICENOW_BODY, "dryRun": True, "callback": DEMO_CALLBACK})
    real = stack.accept(SERVICENOW_BODY)
    assert real["joined"] is False and real["publishId"] != dry["publishId"]
    checked = stack.wait_for_publish(dry["publishId"], timeout=90)
    assert checked["status"] == "CHECKED" and checked["reasonCode"] == "DRY_RUN", checked
    assert checked["dryRun"] is True and checked["capacity"]["ok"] is True
    assert "publishing" not in [e["event"] for e in checked["timeline"]]
    assert stack.wait_for_publish(real["publishId"], timeout=90)["status"] == "PUBLISHED"
    assert stack.genesys_stats()["publishesApplied"] == {"sched-demo": 1}  # the real one only
    # The callback hears the dry run's end like any other.
    updates = stack.servicenow.wait_for_updates(1, table=DEMO_CALLBACK["table"], timeout=20)
    assert (updates[-1].body or {})["u_wfm_publish_status"] == "CHECKED"

    # `ops check` sends the same request and follows it: a report, and still no publish.
    stack.simulator.reset()
    code, view = ops(serve_line, capsys, "check", "sched-demo", "--wait", "90")
    assert code == 0, view
    assert view["status"] == "CHECKED" and view["reasonCode"] == "DRY_RUN" and view["capacity"]["ok"]
    assert stack.genesys_stats()["publishesApplied"] == {}
    # Without the telephony wait it checks whatever telephony shows now (a mid-change Edge carries no
    # lines, unless another job's observation of a moment ago is reused): it exits 0 only on DRY_RUN.
    code, shown = text(serve_line, capsys, "check", "sched-demo", "--no-telephony-sync")
    assert "(dry run)" in shown and "status    CHECKED  " in shown and "capacity  " in shown
    assert code == (0 if "CHECKED  DRY_RUN" in shown else 1)
    assert stack.genesys_stats()["publishesApplied"] == {}


def test_dlq_list_does_not_raise_the_receive_count_it_shows(
    stack: EmbeddedStack, serve_line: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """SQS has no peek: every listing receives each letter. The count shown is SQS's less the listings'
    own receives, so five listings show the same count, the one the runbook asks a person to read."""
    assert stack.stack is not None
    sqs = stack.stack.client("sqs")
    dlq = stack.stack.queue_url("ConflictDLQ")
    # A letter as SQS moves it: a queue whose RedrivePolicy names the DLQ, its message received twice.
    source = sqs.create_queue(
        QueueName="ops-test-source",
        Attributes={
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": stack.stack.queue_arn("ConflictDLQ"), "maxReceiveCount": 2}
            )
        },
    )["QueueUrl"]
    sqs.send_message(QueueUrl=source, MessageBody="failed twice")
    for _ in range(3):  # two failed deliveries; the third receive moves it to the DLQ
        sqs.receive_message(QueueUrl=source, VisibilityTimeout=0)
    sqs.send_message(QueueUrl=dlq, MessageBody="put here by hand")  # never delivered to a function

    seen = []
    for _ in range(5):
        code, letters = ops(serve_line, capsys, "dlq", "list", "conflict")
        assert code == 0
        seen.append({letter["body"]: (letter["receives"], letter["looks"]) for letter in letters})
    assert [s["failed twice"][0] for s in seen] == [2, 2, 2, 2, 2]
    assert [s["put here by hand"][0] for s in seen] == [0, 0, 0, 0, 0]
    assert [s["failed twice"][1] for s in seen] == [1, 2, 3, 4, 5]  # each listing did receive it
    raw = sqs.receive_message(
        QueueUrl=dlq, MaxNumberOfMessages=10, VisibilityTimeout=0, MessageSystemAttributeNames=["All"]
    )
    counts = sorted(int(m["Attributes"]["ApproximateReceiveCount"]) for m in raw["Messages"])
    assert counts == [6, 8]  # SQS's own count: our five listings, and this receive
    code, shown = text(serve_line, capsys, "dlq", "list", "conflict")
    assert "receives" in shown and "looks" in shown
    code, warning = text(serve_line, capsys, "dlq", "purge", "conflict")
    assert code == 2 and "2 letter(s) in the conflict DLQ" in warning
    ops(serve_line, capsys, "dlq", "purge", "conflict", "--yes")
    sqs.delete_queue(QueueUrl=source)


def test_dlq_redrive_prints_its_table_and_nothing_else(
    stack: EmbeddedStack, serve_line: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert stack.stack is not None
    jobs = store(stack)
    waiting = stack.accept({**SERVICENOW_BODY, "scheduleId": "sched-redrive", "publishTime": later()})
    job = jobs.get_job(waiting["publishId"])
    assert job is not None
    letter = JobMessage(job_id=job.job_id, ticket=job.ticket, step=Step.VALIDATE, version=job.version)
    stack.stack.client("sqs").send_message(
        QueueUrl=stack.stack.queue_url("ValidationDLQ"),
        MessageBody=letter.model_dump_json(by_alias=True, exclude_none=True),
    )
    # As an operator runs it: its own process, where nothing else has set up the core's logging.
    ran = subprocess.run(
        [
            sys.executable,
            "-m",
            "wfm_publish_local.cli",
            "ops",
            "--local",
            str(serve_line),
            "dlq",
            "redrive",
            "validation",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (ran.returncode, ran.stderr) == (0, "")  # the core's log line is for CloudWatch, not here
    header, *rows = ran.stdout.splitlines()
    assert header.split() == ["messageId", "publishId", "step", "receives", "looks", "sentAt", "outcome"]
    assert len(rows) == 1 and job.job_id in rows[0] and rows[0].endswith("moved")
    ops(serve_line, capsys, "cancel", job.job_id)
