"""The stream notifier and `ops notify` never both tell a record the job's end: whichever holds the
telling of the job (a lease on the `notify#` item) tells; the other stands back. A teller killed while
holding it is resumed by its own retry, or by another teller once the lease has run out."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.callbacks import BASIC, client, faulty, new_job, snow, told
from tests.support.faults import WorkerDied, on_item
from wfm_publish.clock import VirtualClock
from wfm_publish.errors import NotifyContended
from wfm_publish.models import Job, JobStatus, ReasonCode
from wfm_publish.notifier import LEASE_SECONDS, Notifier, Outcome
from wfm_publish.servicenow import ServiceNowClient
from wfm_publish.store import DynamoJobStore
from wfm_publish_local.servicenow import ServiceNowStandIn

pytestmark = pytest.mark.integration

__all__ = ["snow"]  # the fixture, shared


def ended_job(store: DynamoJobStore, status: JobStatus = JobStatus.PUBLISHED) -> Job:
    """A job that has just ended, with a callback: what the stream's end record carries."""
    job = new_job(store)
    reason = ReasonCode.PUBLISHED if status is JobStatus.PUBLISHED else ReasonCode.CANCELLED
    saved = store.save_job(job.model_copy(update={"status": status, "reason_code": reason, "ticket": "t1"}))
    return saved


def test_ops_notify_racing_the_stream_notifier_tells_the_end_once(
    store: DynamoJobStore, snow: ServiceNowStandIn
) -> None:
    """Case 7: the stream notifier and `ops notify` both find the record not told. Whichever holds the
    telling goes on; the other stands back (the stream's record is retried; ops says so)."""
    ended = ended_job(store)
    clock = VirtualClock()
    ops = Notifier(store, lambda: client(snow), clock, teller="ops:1")
    standing_back: list[Exception] = []

    class RacedByOps(ServiceNowClient):
        def update_record(self, table: str, sys_id: str, fields: dict[str, Any]) -> dict[str, Any]:
            try:  # an operator runs `ops notify` between the stream's read and its PATCH
                ops.notify(ended)
            except NotifyContended as contended:
                standing_back.append(contended)
            return super().update_record(table, sys_id, fields)

    stream = Notifier(store, lambda: RacedByOps(snow.url, lambda: BASIC, timeout=(1.0, 2.0)), clock)
    assert stream.notify(ended) is Outcome.DELIVERED
    assert told(snow) == ["PUBLISHED"]
    assert len(standing_back) == 1  # ops was told the notifier is on it
    assert ops.notify(ended) is Outcome.ALREADY_NOTIFIED

    # The other way round: ops holds the telling when the stream's record comes.
    snow.reset()
    other = ended_job(store, JobStatus.CANCELLED)
    plain_stream = Notifier(store, lambda: client(snow), clock)
    retried: list[Exception] = []

    class RacedByStream(ServiceNowClient):
        def update_record(self, table: str, sys_id: str, fields: dict[str, Any]) -> dict[str, Any]:
            try:
                plain_stream.notify(other)
            except NotifyContended as contended:
                retried.append(contended)  # raised: Lambda retries the record
            return super().update_record(table, sys_id, fields)

    racing_ops = Notifier(
        store, lambda: RacedByStream(snow.url, lambda: BASIC, timeout=(1.0, 2.0)), clock, teller="ops:2"
    )
    assert racing_ops.notify(other) is Outcome.DELIVERED
    assert len(retried) == 1
    assert plain_stream.notify(other) is Outcome.ALREADY_NOTIFIED  # the retry: told by ops, no PATCH
    assert told(snow) == ["CANCELLED"]


def test_a_teller_that_dies_holding_the_telling_is_resumed_by_its_retry_or_by_ops_after_the_lease(
    store: DynamoJobStore, snow: ServiceNowStandIn
) -> None:
    """Case 7: a crash between the claim and the PATCH. The stream's retry goes on at once (the claim is
    its own); ops may take over once the lease has run out. The end is told at least once, and once."""
    clock = VirtualClock()
    ended = ended_job(store)
    dying, db = faulty(store)
    db.arm("get_item", on_item("job#"), "die_before")  # killed right after taking the claim
    with pytest.raises(WorkerDied):
        Notifier(dying, lambda: client(snow), clock).notify(ended)
    ops = Notifier(store, lambda: client(snow), clock, teller="ops:1")
    with pytest.raises(NotifyContended):
        ops.notify(ended)  # the stream may still be telling it: ops stands back
    assert told(snow) == []
    assert Notifier(store, lambda: client(snow), clock).notify(ended) is Outcome.DELIVERED  # the retry
    assert told(snow) == ["PUBLISHED"]

    # The stream gave up after its crash (its record in NotifierDLQ): ops tells it, once the lease ran out.
    snow.reset()
    lost = ended_job(store)
    dying, db = faulty(store)
    db.arm("get_item", on_item("job#"), "die_before")
    with pytest.raises(WorkerDied):
        Notifier(dying, lambda: client(snow), clock).notify(lost)
    clock.advance(LEASE_SECONDS + 1)
    assert ops.notify(lost) is Outcome.DELIVERED
    assert told(snow) == ["PUBLISHED"]


def test_after_the_stream_gives_up_on_a_record_ops_tells_it_at_once(
    store: DynamoJobStore, snow: ServiceNowStandIn
) -> None:
    """The stream's attempts fail (ServiceNow 503 until the record goes to NotifierDLQ): each lets go of
    the telling, so the operator's `ops notify`, once ServiceNow is back, need not wait for a lease."""
    clock = VirtualClock()
    ended = ended_job(store)
    stream = Notifier(store, lambda: client(snow), clock)
    for _ in range(3):
        snow.fail_next(1, status=503)
        with pytest.raises(Exception, match="503"):
            stream.notify(ended)
    ops = Notifier(store, lambda: client(snow), clock, teller="ops:1")
    assert ops.notify(ended) is Outcome.DELIVERED
    assert told(snow) == ["PUBLISHED"]
