"""What the notifier tests share: ServiceNow's stand-in over HTTP, a client of it, what a record was
told, the store over a DynamoDB whose calls can be made to fail, and a job whose callback is OWN."""

from __future__ import annotations

import time
from collections.abc import Iterator

import boto3
import pytest

from tests.support.faults import FaultyDynamoDB
from wfm_publish.models import Callback, Job, PublishRequest
from wfm_publish.servicenow import ServiceNowClient, ServiceNowCredentials
from wfm_publish.store import DynamoJobStore
from wfm_publish_local.servicenow import DEFAULT_PASSWORD, DEFAULT_USERNAME, ServiceNowStandIn

OWN = "a" * 32  # the request's record
BASIC = ServiceNowCredentials(DEFAULT_USERNAME, DEFAULT_PASSWORD)


@pytest.fixture
def snow() -> Iterator[ServiceNowStandIn]:
    with ServiceNowStandIn() as stand_in:
        yield stand_in


def client(snow: ServiceNowStandIn) -> ServiceNowClient:
    return ServiceNowClient(snow.url, lambda: BASIC, timeout=(1.0, 2.0))


def told(snow: ServiceNowStandIn, sys_id: str = OWN) -> list[str]:
    """What the record was PATCHed with, in order."""
    return [u.body["u_wfm_publish_status"] for u in snow.updates(sys_id=sys_id) if u.body]


def faulty(store: DynamoJobStore) -> tuple[DynamoJobStore, FaultyDynamoDB]:
    """The same table, through a DynamoDB client whose calls a test can make fail."""
    db = FaultyDynamoDB(boto3.client("dynamodb"))
    return DynamoJobStore(db, store._table), db  # type: ignore[arg-type]


def new_job(store: DynamoJobStore, *, progress: bool | None = None) -> Job:
    """A job just accepted, its callback the record OWN (`progress` as the request asked), in the store."""
    now = time.time()
    request = PublishRequest(
        schedule_id="sched-1", callback=Callback(table="change_request", sys_id=OWN, progress=progress)
    )
    job = Job(
        job_id=f"job-{now:.6f}",
        schedule_id="sched-1",
        request=request,
        ticket="t0",
        created_at=now,
        updated_at=now,
        deadline_at=now + 3600,
    )
    store.create_job(job)
    return job
