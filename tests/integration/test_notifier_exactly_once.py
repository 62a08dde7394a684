"""Every callback record hears the job's end exactly once, and progress never after it: the notifier
against moto server (the store's conditional writes) and the ServiceNow stand-in (which keeps every
PATCH in order), with a worker killed or another teller racing it at a chosen moment."""

from __future__ import annotations

import time
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

from tests.support import callbacks
from tests.support.callbacks import BASIC, OWN, client, faulty, snow, told
from tests.support.faults import WorkerDied, on_item
from tests.support.handlers import loaded_handler
from wfm_publish.clock import VirtualClock
from wfm_publish.models import Callback, Job, JobStatus, Joiner, ReasonCode
from wfm_publish.notifier import Notifier, Outcome
from wfm_publish.servicenow import ServiceNowClient
from wfm_publish.store import DynamoJobStore
from wfm_publish_local.runner.function import LambdaContext
from wfm_publish_local.servicenow import ServiceNowStandIn

pytestmark = pytest.mark.integration

__all__ = ["snow"]  # the fixture, shared

JOINED = "b" * 32  # a joined request's record
QUIET = "c" * 32  # a joined request's record that did not ask for progress


def new_job(store: DynamoJobStore, *, progress: bool | None = True) -> Job:
    """A job just accepted whose request asked for progress (unless told otherwise)."""
    return callbacks.new_job(store, progress=progress)


def join(store: DynamoJobStore, job: Job, key: str, sys_id: str, *, progress: bool | None = True) -> Job:
    callback = Callback(table="incident", sys_id=sys_id, progress=progress)
    store.add_joiner(job.job_id, Joiner(key=key, callback=callback, at=time.time()))
    image = store.get_job(job.job_id)
    assert image is not None
    return image


def move(store: DynamoJobStore, job: Job, status: JobStatus) -> Job:
    """The pipeline's write of `status`: the stream image it makes (joiners included)."""
    changed = job.model_copy(deep=True, update={"status": status, "ticket": f"t{job.version + 1}"})
    if status is JobStatus.PUBLISHING:
        changed.record(time.time(), "publishing", attempt=1)
    elif status.terminal:
        changed.reason_code = ReasonCode.PUBLISHED if status is JobStatus.PUBLISHED else ReasonCode.CANCELLED
        changed.detail = "published at schedule version 5"
        changed.record(time.time(), status.value.lower())
    store.save_job(changed)
    image = store.get_job(job.job_id)
    assert image is not None
    return image


def test_a_retried_batch_tells_neither_the_progress_nor_the_end_twice(
    store: DynamoJobStore, snow: ServiceNowStandIn
) -> None:
    """Case 1: PUBLISHING and PUBLISHED in one batch; the invocation dies after the PUBLISHED PATCH,
    before noting it; Lambda retries the whole batch. The record must read PUBLISHING, PUBLISHED: never
    back to PUBLISHING after its end, the end once."""
    job = new_job(store)
    publishing = move(store, job, JobStatus.PUBLISHING)
    published = move(store, publishing, JobStatus.PUBLISHED)
    dying, db = faulty(store)
    db.arm("update_item", on_item("job#"), "die_before")  # the note of the delivery, after the PATCH
    first = Notifier(dying, lambda: client(snow), VirtualClock())
    assert first.notify(publishing) is Outcome.PROGRESS_DELIVERED
    with pytest.raises(WorkerDied):
        first.notify(published)
    assert told(snow) == ["PUBLISHING", "PUBLISHED"]

    again = Notifier(store, lambda: client(snow), VirtualClock())  # the batch, retried
    again.notify(publishing)
    again.notify(published)
    assert told(snow) == ["PUBLISHING", "PUBLISHED"]  # never backwards, the end once
    noted = store.get_job(job.job_id)
    assert noted is not None and noted.notified_status is JobStatus.PUBLISHED
    again.notify(publishing)  # and once more, now that it is noted
    again.notify(published)
    assert told(snow) == ["PUBLISHING", "PUBLISHED"]


def test_progress_told_while_publishing_and_a_retried_end_read_publishing_then_the_end(
    store: DynamoJobStore, snow: ServiceNowStandIn
) -> None:
    """Case 1, spread over two batches: progress told while the job publishes; the end's invocation dies
    after its PATCH; the end's batch (the PUBLISHING record again, a 409 brought it back) is retried."""
    job = new_job(store)
    publishing = move(store, job, JobStatus.PUBLISHING)
    Notifier(store, lambda: client(snow), VirtualClock()).notify(publishing)
    assert told(snow) == ["PUBLISHING"]
    published = move(store, publishing, JobStatus.PUBLISHED)
    dying, db = faulty(store)
    db.arm("update_item", on_item("job#"), "die_before")
    with pytest.raises(WorkerDied):
        Notifier(dying, lambda: client(snow), VirtualClock()).notify(published)
    again = Notifier(store, lambda: client(snow), VirtualClock())
    again.notify(publishing)
    again.notify(published)
    assert told(snow) == ["PUBLISHING", "PUBLISHED"]


def test_every_request_that_asked_hears_the_publish_start_joiners_too(
    store: DynamoJobStore, snow: ServiceNowStandIn
) -> None:
    """Case 5: a joined request whose callback asked for progress hears PUBLISHING, as the request does."""
    job = new_job(store)
    join(store, job, "key-joined", JOINED)
    queued = join(store, job, "key-quiet", QUIET, progress=None)
    publishing = move(store, queued, JobStatus.PUBLISHING)
    notifier = Notifier(store, lambda: client(snow), VirtualClock())
    assert notifier.notify(publishing) is Outcome.PROGRESS_DELIVERED
    assert told(snow, OWN) == ["PUBLISHING"]
    assert told(snow, JOINED) == ["PUBLISHING"]
    assert told(snow, QUIET) == []  # it did not ask
    published = move(store, publishing, JobStatus.PUBLISHED)
    notifier.notify(published)
    assert (told(snow, OWN), told(snow, JOINED), told(snow, QUIET)) == (
        ["PUBLISHING", "PUBLISHED"],
        ["PUBLISHING", "PUBLISHED"],
        ["PUBLISHED"],
    )


def stream_record(change: str, new: dict[str, Any], old: dict[str, Any], sequence: int) -> dict[str, Any]:
    """A DynamoDB stream record as Lambda hands it to the notifier (the images in the client's shape)."""
    return {
        "eventID": f"e{sequence}",
        "eventName": change,
        "eventSource": "aws:dynamodb",
        "dynamodb": {
            "Keys": {"pk": new["pk"]},
            "NewImage": new,
            "OldImage": old,
            "SequenceNumber": str(sequence),
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
    }


class Wiring:
    def __init__(self, notifier: Notifier) -> None:
        self.notifier = notifier


@pytest.fixture
def app() -> Iterator[ModuleType]:
    with loaded_handler("notifier") as module:
        yield module


def test_a_request_that_joins_while_the_job_is_publishing_hears_progress(
    store: DynamoJobStore, snow: ServiceNowStandIn, app: ModuleType
) -> None:
    """Case 5, the other way in: the join lands while the job is PUBLISHING (the stream's record of the
    join, which keeps the status). Its record hears PUBLISHING; the request's own is not told again."""
    job = new_job(store)
    publishing = move(store, job, JobStatus.PUBLISHING)
    key = {"pk": {"S": f"job#{job.job_id}"}}
    before = store._db.get_item(TableName=store._table, Key=key)["Item"]
    join(store, publishing, "key-joined", JOINED)
    after = store._db.get_item(TableName=store._table, Key=key)["Item"]
    notifier = Notifier(store, lambda: client(snow), VirtualClock())
    notifier.notify(publishing)  # the move into PUBLISHING, told before the join
    assert told(snow, OWN) == ["PUBLISHING"]

    app.services = lambda: Wiring(notifier)
    context = LambdaContext("notifier", 256, "arn:aws:lambda:us-east-1:123456789012:function:n", "r-1", 30)
    answer = app.handler({"Records": [stream_record("MODIFY", after, before, 7)]}, context)
    assert answer == {"batchItemFailures": []}
    assert told(snow, JOINED) == ["PUBLISHING"]
    assert told(snow, OWN) == ["PUBLISHING"]


def test_a_job_removed_before_it_ended_is_reported_once_when_the_stream_retries(
    store: DynamoJobStore, snow: ServiceNowStandIn
) -> None:
    """Case 7: the REMOVE of a job not ended tells its records FAILED. The invocation dies after the
    first record's PATCH; the stream retries the record: the first record is not told again."""
    job = new_job(store, progress=None)
    removed = join(store, job, "key-joined", JOINED).model_copy(update={"status": JobStatus.WAITING})

    class DiesAfterOnePatch(ServiceNowClient):
        def update_record(self, table: str, sys_id: str, fields: dict[str, Any]) -> dict[str, Any]:
            answer = super().update_record(table, sys_id, fields)
            raise WorkerDied(f"killed after the PATCH of {table}/{sys_id}: {answer}")

    dying = Notifier(store, lambda: DiesAfterOnePatch(snow.url, lambda: BASIC), VirtualClock())
    with pytest.raises(WorkerDied):
        dying.lost(removed)
    assert told(snow, OWN) == ["FAILED"]
    notifier = Notifier(store, lambda: client(snow), VirtualClock())
    notifier.lost(removed)  # the stream's retry
    notifier.lost(removed)  # and another
    assert told(snow, OWN) == ["FAILED"]
    assert told(snow, JOINED) == ["FAILED"]
