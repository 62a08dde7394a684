"""The notifier against the ServiceNow stand-in over HTTP: the Table API PATCH, basic auth and OAuth,
refusals and dropped connections, and the delivery noted on the job."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from wfm_publish.clock import VirtualClock
from wfm_publish.errors import CallbackRejected, ServiceNowError
from wfm_publish.models import Callback, CapacityReport, Job, JobStatus, Joiner, PublishRequest, ReasonCode
from wfm_publish.notifier import Notifier, Outcome, callback_fields
from wfm_publish.servicenow import ServiceNowClient, ServiceNowCredentials
from wfm_publish_local.servicenow import DEFAULT_PASSWORD, DEFAULT_USERNAME, ServiceNowStandIn
from wfm_publish_local.virtual import MemoryJobStore

pytestmark = pytest.mark.integration

SYS_ID = "46d44a5edb1232007aa4f5261f9619a8"
BASIC = ServiceNowCredentials(DEFAULT_USERNAME, DEFAULT_PASSWORD)


@pytest.fixture
def snow() -> Iterator[ServiceNowStandIn]:
    with ServiceNowStandIn(client_id="oauth-client", client_secret="oauth-secret") as stand_in:
        yield stand_in


def client(snow: ServiceNowStandIn, credentials: ServiceNowCredentials = BASIC) -> ServiceNowClient:
    return ServiceNowClient(snow.url, lambda: credentials, timeout=(1.0, 2.0))


def ended(status: JobStatus, reason: ReasonCode, *, callback: bool = True) -> Job:
    request = PublishRequest(
        schedule_id="sched-1",
        callback=Callback(table="change_request", sys_id=SYS_ID) if callback else None,
    )
    return Job(
        job_id="job-1",
        schedule_id="sched-1",
        request=request,
        status=status,
        reason_code=reason,
        detail="published at schedule version 5" if status is JobStatus.PUBLISHED else "it did not",
        ticket="t",
        created_at=time.time(),
        updated_at=time.time(),
        deadline_at=time.time() + 3600,
        publish_attempts=2,
    )


def test_a_record_is_patched_with_basic_auth(snow: ServiceNowStandIn) -> None:
    answer = client(snow).update_record("change_request", SYS_ID, {"u_wfm_publish_status": "PUBLISHED"})
    assert answer == {"sys_id": SYS_ID}  # sysparm_fields=sys_id keeps the answer small
    (update,) = snow.updates()
    assert (update.method, update.table, update.sys_id) == ("PATCH", "change_request", SYS_ID)
    assert snow.records[("change_request", SYS_ID)]["u_wfm_publish_status"] == "PUBLISHED"


def test_the_stand_in_answers_a_kept_alive_connection_without_a_delayed_ack_stall(
    snow: ServiceNowStandIn,
) -> None:
    """Headers and body are two writes: with Nagle's algorithm on the stand-in, every PATCH after a
    connection's first waited >= 40 ms for the client's delayed ACK (in the cold start benchmark, too)."""
    patching = client(snow)
    took = []
    for n in range(6):
        started = time.perf_counter()
        patching.update_record("change_request", SYS_ID, {"u_wfm_publish_status": f"n{n}"})
        took.append(time.perf_counter() - started)
    assert min(took[1:]) < 0.030, took


def test_oauth_gets_a_token_and_renews_it_once_on_a_401(snow: ServiceNowStandIn) -> None:
    oauth = ServiceNowCredentials(DEFAULT_USERNAME, DEFAULT_PASSWORD, "oauth-client", "oauth-secret")
    sn = client(snow, oauth)
    sn.update_record("incident", SYS_ID, {"work_notes": "one"})
    snow._tokens.clear()  # the instance forgot the token (expired, revoked)
    sn.update_record("incident", SYS_ID, {"work_notes": "two"})
    assert snow.records[("incident", SYS_ID)]["work_notes"] == ["one", "two"]
    assert [r.status for r in snow.received] == [200, 401, 200]


def test_wrong_credentials_are_a_refusal_a_person_must_fix(snow: ServiceNowStandIn) -> None:
    with pytest.raises(ServiceNowError) as caught:
        client(snow, ServiceNowCredentials("someone", "wrong")).update_record("incident", SYS_ID, {"a": "b"})
    assert (caught.value.status, caught.value.transient) == (401, False)
    assert "User Not Authenticated" in str(caught.value)


def test_an_unknown_record_is_a_404() -> None:
    with ServiceNowStandIn(known_records=[("incident", SYS_ID)]) as snow:
        with pytest.raises(ServiceNowError) as caught:
            client(snow).update_record("incident", "0" * 32, {"a": "b"})
        assert (caught.value.status, caught.value.transient) == (404, False)


def test_a_5xx_and_a_dropped_connection_are_worth_another_try(snow: ServiceNowStandIn) -> None:
    snow.fail_next(1, status=503)
    snow.fail_next(1, drop=True)
    sn = client(snow)
    for _ in range(2):
        with pytest.raises(ServiceNowError) as caught:
            sn.update_record("incident", SYS_ID, {"a": "b"})
        assert caught.value.transient
    sn.update_record("incident", SYS_ID, {"a": "b"})
    assert len(snow.updates()) == 1


OAUTH = ServiceNowCredentials(DEFAULT_USERNAME, DEFAULT_PASSWORD, "oauth-client", "oauth-secret")


@pytest.mark.parametrize("status", [403, 404, 400, 405, 422])
def test_a_refusal_no_retry_can_change_is_callback_rejected(snow: ServiceNowStandIn, status: int) -> None:
    snow.fail_next(1, status=status)
    with pytest.raises(CallbackRejected) as caught:
        client(snow).update_record("incident", SYS_ID, {"a": "b"})
    assert (caught.value.status, caught.value.transient) == (status, False)


def test_a_401_is_callback_rejected_at_once_with_basic_auth_and_after_one_renewal_with_oauth(
    snow: ServiceNowStandIn,
) -> None:
    with pytest.raises(CallbackRejected) as caught:
        client(snow, ServiceNowCredentials("someone", "wrong")).update_record("incident", SYS_ID, {"a": "b"})
    assert caught.value.status == 401
    assert [r.status for r in snow.received] == [401]  # nothing to renew: one call

    snow.reset()
    snow.fail_next(2, status=401)  # the instance refuses the token, and the renewed one
    with pytest.raises(CallbackRejected):
        client(snow, OAUTH).update_record("incident", SYS_ID, {"a": "b"})
    assert [r.status for r in snow.received] == [401, 401]
    assert len(snow._tokens) == 2  # the first token and one renewal, no more


def test_a_token_endpoint_refusing_the_oauth_client_is_callback_rejected(snow: ServiceNowStandIn) -> None:
    wrong = ServiceNowCredentials(DEFAULT_USERNAME, DEFAULT_PASSWORD, "oauth-client", "not-the-secret")
    with pytest.raises(CallbackRejected) as caught:
        client(snow, wrong).update_record("incident", SYS_ID, {"a": "b"})
    assert caught.value.status == 401 and "access_denied" in str(caught.value)


@pytest.mark.parametrize(
    ("status", "retry_after"), [(429, 7), (429, None), (503, 30), (500, None), (502, None), (408, None)]
)
def test_what_may_pass_later_stays_a_transient_error(
    snow: ServiceNowStandIn, status: int, retry_after: int | None
) -> None:
    snow.fail_next(1, status=status, retry_after=retry_after)
    with pytest.raises(ServiceNowError) as caught:
        client(snow).update_record("incident", SYS_ID, {"a": "b"})
    assert not isinstance(caught.value, CallbackRejected)
    assert (caught.value.status, caught.value.transient, caught.value.retry_after) == (
        status,
        True,
        retry_after,
    )


def test_a_timeout_and_a_dropped_connection_stay_transient(snow: ServiceNowStandIn) -> None:
    snow.fail_next(1, drop=True)
    with pytest.raises(ServiceNowError) as dropped:
        client(snow).update_record("incident", SYS_ID, {"a": "b"})
    with socket.socket() as silent:  # accepts the connection (backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        host, port = silent.getsockname()
        slow = ServiceNowClient(f"http://{host}:{port}", lambda: BASIC, timeout=(1.0, 0.3))
        with pytest.raises(ServiceNowError) as timed_out:
            slow.update_record("incident", SYS_ID, {"a": "b"})
    for caught in (dropped, timed_out):
        assert not isinstance(caught.value, CallbackRejected) and caught.value.transient
    assert "in time" in str(timed_out.value)


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (JobStatus.PUBLISHED, ReasonCode.PUBLISHED),
        (JobStatus.FAILED, ReasonCode.SCHEDULE_NOT_FOUND),
        (JobStatus.CANCELLED, ReasonCode.CANCELLED),
    ],
)
def test_each_end_is_delivered_once_and_noted_on_the_job(
    snow: ServiceNowStandIn, status: JobStatus, reason: ReasonCode
) -> None:
    store = MemoryJobStore()
    job = ended(status, reason)
    store.create_job(job)
    notifier = Notifier(store, lambda: client(snow), VirtualClock())
    assert notifier.notify(job) is Outcome.DELIVERED
    (update,) = snow.updates()
    assert update.body is not None
    assert update.body["u_wfm_publish_status"] == status.value
    assert update.body["u_wfm_publish_reason"] == reason.value
    assert update.body["u_wfm_publish_id"] == "job-1"
    assert f"sched-1 {status.value}" in update.body["work_notes"]
    noted = store.get_job("job-1")
    assert noted is not None and noted.notified_status is status
    assert noted.timeline[-1].event == "servicenow notified"
    # The stream delivers the record again (a retry after a crash): no second PATCH.
    assert notifier.notify(job) is Outcome.ALREADY_NOTIFIED
    assert len(snow.updates()) == 1


def test_a_failed_patch_raises_so_the_stream_retries_and_nothing_is_noted(snow: ServiceNowStandIn) -> None:
    store = MemoryJobStore()
    job = ended(JobStatus.FAILED, ReasonCode.CAPACITY_EXCEEDED)
    store.create_job(job)
    snow.fail_next(1)
    notifier = Notifier(store, lambda: client(snow), VirtualClock())
    with pytest.raises(ServiceNowError):
        notifier.notify(job)
    noted = store.get_job("job-1")
    assert noted is not None and noted.notified_status is None
    assert notifier.notify(job) is Outcome.DELIVERED


def test_no_callback_or_no_end_means_nothing_to_send(snow: ServiceNowStandIn) -> None:
    notifier = Notifier(MemoryJobStore(), lambda: client(snow), VirtualClock())
    assert (
        notifier.notify(ended(JobStatus.PUBLISHED, ReasonCode.PUBLISHED, callback=False))
        is Outcome.NO_CALLBACK
    )
    waiting = ended(JobStatus.PUBLISHED, ReasonCode.PUBLISHED).model_copy(
        update={"status": JobStatus.WAITING}
    )
    assert notifier.notify(waiting) is Outcome.NOT_TERMINAL
    assert snow.received == []


def test_the_work_note_reads_well_and_fits() -> None:
    job = ended(JobStatus.FAILED, ReasonCode.CAPACITY_EXCEEDED).model_copy(update={"detail": "x" * 10_000})
    fields = callback_fields(job)
    assert fields["u_wfm_publish_status"] == "FAILED"
    assert fields["work_notes"].startswith("wfm-publish: schedule sched-1 FAILED (CAPACITY_EXCEEDED).")
    assert len(fields["work_notes"]) <= 4000


def test_the_work_note_links_the_capacity_chart_when_there_is_a_report() -> None:
    job = ended(JobStatus.PUBLISHED, ReasonCode.PUBLISHED)
    assert "/capacity" not in callback_fields(job)["work_notes"]
    report = CapacityReport(
        ok=True, summary="ok", time_zone="UTC", week_start="2023-10-23T00:00:00+00:00", intervals_checked=672
    )
    note = callback_fields(job.model_copy(update={"capacity": report}))["work_notes"]
    assert f"Capacity chart: GET /publishes/{job.job_id}/capacity with Accept: image/svg+xml" in note
    assert f"new WfmPublish().capacity('{job.job_id}', true)" in note


def test_credentials_never_print() -> None:
    text = repr(ServiceNowCredentials("user", "hunter2", "cid", "csecret"))
    assert "hunter2" not in text and "csecret" not in text


def test_every_joined_record_hears_the_end_exactly_once(snow: ServiceNowStandIn) -> None:
    """Issue 9, case 6: a request that joined the job keeps its callback."""
    store = MemoryJobStore()
    job = ended(JobStatus.PUBLISHED, ReasonCode.PUBLISHED)
    store.create_job(job.model_copy(update={"status": JobStatus.WAITING, "reason_code": None}))
    other = Callback(table="incident", sys_id="c" * 32)
    store.add_joiner("job-1", Joiner(key="k-joined", callback=other, at=time.time()))
    store.save_job(job.model_copy(update={"version": 0}))
    image = store.get_job("job-1")
    assert image is not None and [j.key for j in image.joiners] == ["k-joined"]
    notifier = Notifier(store, lambda: client(snow), VirtualClock())
    assert notifier.notify(image) is Outcome.DELIVERED
    assert sorted((u.table, u.sys_id) for u in snow.updates()) == [
        ("change_request", SYS_ID),
        ("incident", "c" * 32),
    ]
    assert notifier.notify(image) is Outcome.ALREADY_NOTIFIED  # redelivered by the stream: nothing again
    assert len(snow.updates()) == 2


def test_a_callback_servicenow_refuses_for_good_is_noted_and_not_retried(snow: ServiceNowStandIn) -> None:
    store = MemoryJobStore()
    job = ended(JobStatus.FAILED, ReasonCode.CAPACITY_EXCEEDED)
    store.create_job(job)
    snow.fail_next(1, status=404)  # a wrong sys_id: no retry will find it
    notifier = Notifier(store, lambda: client(snow), VirtualClock())
    assert notifier.notify(job) is Outcome.REJECTED  # no raise: the stream moves on
    noted = store.get_job("job-1")
    assert noted is not None and noted.timeline[-1].event == "servicenow refused the callback"
    assert notifier.notify(job) is Outcome.ALREADY_NOTIFIED


def test_a_job_removed_before_it_ended_is_reported_as_failed(snow: ServiceNowStandIn) -> None:
    """Issue 9, case 4: a REMOVE of a job that had not ended never passes unseen."""
    waiting = ended(JobStatus.PUBLISHED, ReasonCode.PUBLISHED).model_copy(
        update={"status": JobStatus.WAITING, "reason_code": None}
    )
    notifier = Notifier(MemoryJobStore(), lambda: client(snow), VirtualClock())
    assert notifier.lost(waiting) is Outcome.DELIVERED
    (update,) = snow.updates()
    assert update.body is not None and update.body["u_wfm_publish_status"] == "FAILED"
    assert "removed while it was WAITING" in update.body["work_notes"]


def publishing(*, progress: bool | None, publishes: int = 1) -> Job:
    job = ended(JobStatus.PUBLISHED, ReasonCode.PUBLISHED)
    callback = Callback(table="change_request", sys_id=SYS_ID, progress=progress)
    moving = job.model_copy(
        deep=True,
        update={
            "status": JobStatus.PUBLISHING,
            "reason_code": None,
            "detail": None,
            "request": job.request.model_copy(update={"callback": callback}),
        },
    )
    for attempt in range(publishes):
        moving.record(time.time(), "publishing", attempt=attempt + 1)
    return moving


def test_progress_tells_the_record_once_when_the_publish_starts(snow: ServiceNowStandIn) -> None:
    store = MemoryJobStore()
    job = publishing(progress=True)
    store.create_job(job)
    notifier = Notifier(store, lambda: client(snow), VirtualClock())
    assert notifier.notify(job) is Outcome.PROGRESS_DELIVERED
    (update,) = snow.updates()
    assert update.body is not None and update.body["u_wfm_publish_status"] == "PUBLISHING"
    assert "Hold availability and schedule changes" in update.body["work_notes"]
    stored = store.get_job("job-1")
    assert stored is not None and stored.version == job.version  # nothing written: the job is moving
    # Back into PUBLISHING after a 409: the record already knows.
    assert notifier.notify(publishing(progress=True, publishes=2)) is Outcome.ALREADY_NOTIFIED
    assert len(snow.updates()) == 1


def test_progress_is_only_for_those_who_asked_and_never_after_the_end(snow: ServiceNowStandIn) -> None:
    store = MemoryJobStore()
    notifier = Notifier(store, lambda: client(snow), VirtualClock())
    assert notifier.notify(publishing(progress=None)) is Outcome.NO_CALLBACK
    assert notifier.notify(publishing(progress=False)) is Outcome.NO_CALLBACK
    late = publishing(progress=True)
    store.create_job(late.model_copy(update={"notified_status": JobStatus.PUBLISHED}))
    assert notifier.notify(late) is Outcome.ALREADY_NOTIFIED  # a retry arriving after the end was told
    assert snow.received == []
