"""The publish API's router against Powertools' validating resolver, request for request.

The Lambda routes with wfm_publish.router (no Powertools event_handler: a shorter cold start); the same
routes on `APIGatewayRestResolver(enable_validation=True)` (`app.resolver()`) are what the API answered
before and what the OpenAPI document is generated from. Both answer every request of this corpus
(accepted, replayed, every refusal, odd paths and methods, headers, bodies and content types, faults in
the core) with the same status, headers and body, byte for byte, or raise the same error."""

from __future__ import annotations

import base64
import copy
import json
import time
from collections.abc import Callable, Iterator
from types import ModuleType, SimpleNamespace
from typing import Annotated, Any

import pytest

from tests.support.handlers import loaded_handler
from wfm_publish import api, errors
from wfm_publish.answers import PublishAccepted
from wfm_publish.cancel import Cancelled
from wfm_publish.clock import VirtualClock
from wfm_publish.intake import Accepted
from wfm_publish.models import Job, Joiner, Refusal
from wfm_publish.router import Answer, Body, Header, Router
from wfm_publish.signature import request_key, signed_headers
from wfm_publish_local.demo import SERVICENOW_BODY
from wfm_publish_local.runner.apigateway import api_gateway_event
from wfm_publish_local.runner.function import LambdaContext

SECRET = "corpus-secret"
NOW = time.time()


def _job(job_id: str = "job-1", **changes: Any) -> Job:
    base = {
        "jobId": job_id,
        "scheduleId": "sched-demo",
        "businessUnitId": "bu-1",
        "weekId": "2023-10-23",
        "request": {"scheduleId": "sched-demo"},
        "ticket": "t-1",
        "createdAt": 1_700_000_000.0,
        "updatedAt": 1_700_000_060.5,
        "deadlineAt": 1_700_028_800.0,
        "timeline": [{"at": 1_700_000_000.0, "event": "accepted", "detail": {"key": "k"}}],
    }
    job = Job.model_validate({**base, **changes})
    return job


def _full_job() -> Job:
    job = _job(
        "full",
        status="PUBLISHED",
        reasonCode="PUBLISHED",
        detail="published at schedule version 4",
        request={
            "scheduleId": "sched-demo",
            "publishTime": "2023-10-27T14:00:00Z",
            "callback": {"table": "change_request", "sysId": "a" * 32, "progress": True},
            "dryRun": False,
        },
        notifiedStatus="PUBLISHED",
        notifiedAt=1_700_000_100.0,
        publishAttempts=2,
        readinessChecks=5,
        conflictRetries=1,
        deliveries={"joiner-1": "PUBLISHED"},
        capacity={
            "ok": True,
            "summary": "fits",
            "timeZone": "Europe/London",
            "weekStart": "2023-10-23",
            "intervalsChecked": 672,
            "pools": [{"pool": "site:1", "linesAvailable": 10, "maxLineUtilization": 0.9}],
        },
    )
    job.joiners = [
        Joiner(key="joiner-1", callback={"table": "incident", "sysId": "b" * 32}, at=1_700_000_010.0),  # type: ignore[arg-type]
        Joiner(key="joiner-2", at=1_700_000_020.0),
    ]
    return job


def _charted_job() -> Job:
    """A job whose capacity report keeps its series: one pool over its limit for two intervals."""
    needed = "0*40,60*2,10*630"
    return _job(
        "charted",
        status="FAILED",
        reasonCode="CAPACITY_EXCEEDED",
        capacity={
            "ok": False,
            "summary": "2 of 672 15-minute intervals over capacity in 1 range",
            "timeZone": "Europe/London",
            "weekStart": "2023-10-23T00:00:00+01:00",
            "intervalsChecked": 672,
            "intervalsOver": 2,
            "pools": [
                {
                    "pool": "site:1",
                    "name": 'London <HQ> & "Annex"',
                    "linesAvailable": 54,
                    "maxLineUtilization": 0.9,
                    "peakNeeded": 60,
                    "intervalsOver": 2,
                    "neededRuns": needed,
                }
            ],
        },
    )


JOBS: dict[str, Job] = {
    "plain": _job("plain"),
    "full": _full_job(),
    "charted": _charted_job(),
    "off": _job("off", request={"scheduleId": "s", "validationMode": "off"}, status="PUBLISHED"),
    "dry": _job("dry", request={"scheduleId": "sched-demo", "dryRun": True}, status="CHECKED"),
    "active": _job(
        "active", status="WAITING", request={"scheduleId": "s", "publishTime": "2023-10-27T14:00:00+02:00"}
    ),
    "ended": _job("ended", status="FAILED", reasonCode="CAPACITY_EXCEEDED"),
}


class FakeStore:
    def get_job(self, job_id: str) -> Job | None:
        if job_id == "store-down":
            raise errors.StoreError("DynamoDB ProvisionedThroughputExceededException")
        if job_id == "crash":
            raise RuntimeError("a bug")
        job = JOBS.get(job_id.rstrip("-x"))
        return job.model_copy(deep=True) if job else None

    def active_job(self, schedule_id: str) -> tuple[str, float] | None:
        if schedule_id == "store-down":
            raise errors.StoreError("DynamoDB down")
        return {"active": ("active", 1.0), "ended": ("ended", 1.0), "vanished": ("gone", 1.0)}.get(
            schedule_id
        )


class FakeIntake:
    def accept(self, request: Any, key: str) -> Accepted:
        sid = request.schedule_id
        failures: dict[str, Exception] = {
            "boom-store": errors.StoreError("DynamoDB ProvisionedThroughputExceededException"),
            "boom-queue": errors.QueueError("SQS unreachable"),
            "boom-config": errors.ConfigurationError("JOBS_TABLE is not set"),
            "in-progress": errors.RequestInProgress(f"a request with Idempotency-Key {key!r} is in progress"),
            "reused": errors.IdempotencyKeyReused(f"Idempotency-Key {key!r} was used with another body"),
            "join-conflict": errors.JoinConflict(
                "a publish of sched is in flight with other options",
                JOBS["active"],
                ["publishTime", "validationMode"],
            ),
            "crash": RuntimeError("a bug in intake"),
        }
        if sid in failures:
            raise failures[sid]
        if sid == "bad-answer":
            return Accepted(body={"publishId": "p"})
        body = {
            "publishId": f"p-{key}-{request.business_unit_id}-{request.publish_time}",
            "status": "QUEUED",
            "scheduleId": sid,
            "joined": sid == "joined",
        }
        return Accepted(body=body, replayed=sid == "replayed")


def fake_cancel(store: Any, transitions: Any, publish_id: str) -> Cancelled:
    if publish_id == "missing":
        raise errors.PublishNotFound(f"no publish {publish_id}")
    if publish_id == "ended":
        raise errors.CancelRefused("publish ended already ended FAILED", Refusal.ALREADY_ENDED, JOBS["ended"])
    if publish_id == "landing":
        raise errors.CancelRefused("an update may still land", Refusal.PUBLISH_IN_PROGRESS, JOBS["active"])
    if publish_id == "contended":
        raise errors.CancelContended("publish contended kept changing; try the cancel again")
    if publish_id == "store-down":
        raise errors.StoreError("DynamoDB down")
    if publish_id == "crash":
        raise RuntimeError("a bug in cancel")
    job = _job(publish_id[:128], status="CANCELLED", reasonCode="CANCELLED")
    return Cancelled(job, already=publish_id == "already")


class FakeServices:
    def __init__(self) -> None:
        self.intake = FakeIntake()
        self.store = FakeStore()
        self.transitions = None
        # The API checks signatures against this clock: the moment the corpus is signed at, however
        # long after collection the tests run (make test runs the e2e tests first).
        self.clock = VirtualClock(NOW)

    def signing_secrets(self) -> list[str]:
        return [SECRET]


def _event(
    method: str,
    path: str,
    body: bytes | str | None = None,
    *,
    headers: list[tuple[str, str]] | None = None,
    key: str | None = "k-1",
    query: list[tuple[str, str]] | None = None,
    content_type: str | None = "application/json",
    sign: bool = True,
    single_only: bool = False,
    base64_body: bool = False,
) -> dict[str, Any]:
    raw = body.encode() if isinstance(body, str) else (body or b"")
    sent: list[tuple[str, str]] = []
    if content_type is not None and raw:
        sent.append(("Content-Type", content_type))
    if key is not None:
        sent.append(("Idempotency-Key", key))
    sent += headers or []
    q = query or []
    if sign:
        pairs: dict[str, list[str]] = {}
        for k, v in q:
            pairs.setdefault(k, []).append(v)
        key_sent = request_key(dict(sent))  # as API Gateway's single-value headers carry it
        sent += list(signed_headers(SECRET, method.upper(), path, raw, NOW, pairs, key=key_sent).items())
    event = api_gateway_event(
        method=method,
        path=path,
        resource=path,
        path_parameters=None,
        headers=sent,
        query=q,
        body=raw,
        stage="dev",
        request_id="r-1",
    )
    event["requestContext"]["requestTime"] = "01/Jan/2024:00:00:00 +0000"
    event["requestContext"]["requestTimeEpoch"] = 0
    event["requestContext"]["extendedRequestId"] = "x"
    if base64_body and raw:
        event["body"], event["isBase64Encoded"] = base64.b64encode(raw).decode(), True
    if single_only:
        event["multiValueHeaders"] = None
    return event


def _post(body: Any, **kwargs: Any) -> dict[str, Any]:
    return _event("POST", "/publishes", json.dumps(body), **kwargs)


def cases() -> Iterator[tuple[str, dict[str, Any]]]:
    ok = dict(SERVICENOW_BODY)
    yield "accepted", _post(ok)
    yield "accepted single-value headers", _post(ok, single_only=True)
    yield "accepted base64", _post(ok, base64_body=True)
    yield "accepted charset", _post(ok, content_type="application/json; charset=utf-8")
    yield (
        "accepted query",
        _event("POST", "/publishes", json.dumps(ok), query=[("a", "1"), ("a", "2"), ("b", "")]),
    )
    yield "accepted trailing slash", _event("POST", "/publishes/", json.dumps(ok))
    yield "accepted two slashes", _event("POST", "/publishes//", json.dumps(ok))
    yield "accepted lowercase method", _event("post", "/publishes", json.dumps(ok))
    yield "replayed", _post({**ok, "scheduleId": "replayed"})
    yield "joined", _post({**ok, "scheduleId": "joined", "businessUnitId": "bu", "weekId": "2023-10-23"})
    yield "dry run", _post({**ok, "dryRun": True, "deadlineSeconds": 600})
    yield "x-request-id", _post(ok, key=None, headers=[("X-Request-Id", "snow-42")])
    yield "key and x-request-id", _post(ok, headers=[("X-Request-Id", "snow-42")])
    yield "no key", _post(ok, key=None)
    yield "empty key", _post(ok, key="")
    yield "long key", _post(ok, key="k" * 256)
    yield "key 255", _post(ok, key="k" * 255)
    yield "two keys", _post(ok, headers=[("Idempotency-Key", "k-2")])
    yield "lowercase key header", _post(ok, key=None, headers=[("idempotency-key", "k-3")])
    doctored = _post(ok)
    doctored["multiValueHeaders"] = {
        k: v for k, v in doctored["multiValueHeaders"].items() if k != "Idempotency-Key"
    }
    yield "key in headers only", doctored
    yield (
        "schema errors",
        _post(
            {
                "scheduleId": "",
                "validationMode": "loose",
                "publishTime": "2023-10-27T14:00:00",
                "telephonySync": {"retryCount": "3", "delayMs": -1, "enabled": "yes"},
                "callback": {"table": "change_request", "sysId": "not-a-sys-id"},
                "surprise": True,
            }
        ),
    )
    yield "schema errors and no key", _post({"scheduleId": 3}, key=None)
    yield "extra field", _post({"scheduleId": "s", "extra": 1})
    yield "newline id", _post({**ok, "scheduleId": "sched-1\n"})
    yield "far publish time", _post({**ok, "publishTime": "2123-10-27T14:00:00Z"})
    yield "unix publish time", _post({**ok, "publishTime": 1698415200})
    yield "null field", _post({**ok, "businessUnitId": None, "callback": None})
    yield "unicode", _post({**ok, "scheduleId": "sché-1"})
    yield "deep errors", _post({"scheduleId": "s", "callback": {"table": 1}, "telephonySync": []})
    yield "empty body", _event("POST", "/publishes", None)
    yield "empty body with type", _event("POST", "/publishes", b"", content_type="application/json")
    yield "null body", _event("POST", "/publishes", "null")
    yield "array body", _post([ok])
    yield "string body", _post("s")
    yield "whitespace body", _event("POST", "/publishes", "  \n ")
    yield "uppercase type", _post(ok, content_type="Application/JSON")
    yield "plus json", _post(ok, content_type="application/merge-patch+json")
    yield "text plain", _post(ok, content_type="text/plain")
    yield "no content type", _post(ok, content_type=None)
    yield "not json", _event("POST", "/publishes", "scheduleId=s")
    yield "too large", _event("POST", "/publishes", '{"scheduleId":"' + "x" * 70_000 + '"}')
    yield "unsigned", _post(ok, sign=False)
    for sid in (
        "boom-store",
        "boom-queue",
        "boom-config",
        "in-progress",
        "reused",
        "join-conflict",
        "bad-answer",
        "crash",
    ):
        yield f"intake {sid}", _post({**ok, "scheduleId": sid})
    for job_id in ("plain", "full", "dry", "active", "missing", "store-down", "crash", "plain-x"):
        yield f"get {job_id}", _event("GET", f"/publishes/{job_id}", key=None)
    yield "get trailing slash", _event("GET", "/publishes/plain/", key=None)
    svg, browser = [("Accept", "image/svg+xml")], [("Accept", "text/html,application/xml;q=0.9,*/*;q=0.8")]
    for job_id in ("full", "charted", "plain", "off", "active", "missing", "store-down"):
        yield f"capacity {job_id}", _event("GET", f"/publishes/{job_id}/capacity", key=None)
        yield f"capacity {job_id} svg", _event("GET", f"/publishes/{job_id}/capacity", key=None, headers=svg)
    capacity = "/publishes/charted/capacity"
    yield "capacity format svg", _event("GET", capacity, key=None, query=[("format", "svg")])
    yield "capacity format json", _event("GET", capacity, key=None, query=[("format", "json")], headers=svg)
    yield "capacity format png", _event("GET", capacity, key=None, query=[("format", "png")])
    yield (
        "capacity format twice",
        _event("GET", capacity, key=None, query=[("format", "svg"), ("format", "j")]),
    )
    yield "capacity format comma", _event("GET", capacity, key=None, query=[("format", "svg,json")])
    yield "capacity browser", _event("GET", capacity, key=None, headers=browser)
    yield "capacity two accepts", _event("GET", capacity, key=None, headers=[*svg, ("Accept", "text/css")])
    yield (
        "capacity weighted",
        _event("GET", capacity, key=None, headers=[("Accept", "image/*;q=0.9, application/json;q=0.5")]),
    )
    yield "capacity post", _event("POST", capacity, key=None)
    yield "get long id", _event("GET", "/publishes/" + "x" * 129, key=None)
    yield "get id 128", _event("GET", "/publishes/" + "x" * 128, key=None)
    for odd in ("a b", "a%2Fb", "é", "a:b@c", "[x]", "a#b", 'a"b', "a?b", "a\\b", "<x>", "a|b", "a`b"):
        yield f"get odd {odd!r}", _event("GET", f"/publishes/{odd}", key=None)
    yield "get with query", _event("GET", "/publishes/plain", key=None, query=[("x", "1")])
    yield "get with key", _event("GET", "/publishes/plain")
    yield "get with body", _event("GET", "/publishes/plain", json.dumps({"a": 1}), key=None)
    yield "get publishes", _event("GET", "/publishes", key=None)
    for publish_id in (
        "ok",
        "already",
        "ended",
        "landing",
        "contended",
        "missing",
        "store-down",
        "crash",
        "x" * 129,
        "x" * 128,
    ):
        yield (
            f"cancel {publish_id[:20]} ({len(publish_id)})",
            _event("POST", f"/publishes/{publish_id}/cancel", key=None),
        )
    yield "cancel with body", _event("POST", "/publishes/ok/cancel", json.dumps({"why": "x"}))
    yield "cancel with array body", _event("POST", "/publishes/ok/cancel", json.dumps([1]), key=None)
    yield "cancel trailing slash", _event("POST", "/publishes/ok/cancel/", key=None)
    yield "get cancel", _event("GET", "/publishes/ok/cancel", key=None)
    for sid in (
        "none",
        "active",
        "ended",
        "vanished",
        "store-down",
        "sched.1:2",
        "-bad",
        "a b",
        "x" * 129,
        "x" * 128,
        "é",
    ):
        yield f"window {sid[:20]} ({len(sid)})", _event("GET", f"/schedules/{sid}/publish", key=None)
    yield "window post", _event("POST", "/schedules/none/publish", key=None)
    yield "unknown path", _event("GET", "/nothing", key=None)
    yield "too deep", _event("POST", "/publishes/ok/cancel/more", key=None)
    yield "options", _event("OPTIONS", "/publishes", key=None)
    yield "head", _event("HEAD", "/publishes/plain", key=None)
    yield "put", _event("PUT", "/publishes", json.dumps(ok))
    yield "delete", _event("DELETE", "/publishes/plain", key=None)
    yield "root", _event("GET", "/", key=None)


CONTEXT = LambdaContext("publish-trigger", 512, "arn:aws:lambda:us-east-1:123456789012:function:x", "r-1", 30)


def answer(handler: Callable[[dict[str, Any], Any], Any], event: dict[str, Any]) -> Any:
    """The handler's answer (or the exception it raised), for comparing."""
    try:
        result = handler(copy.deepcopy(event), CONTEXT)
    except Exception as error:  # the answer is that it raised
        return {"raised": type(error).__name__, "message": str(error)}
    return result


@pytest.fixture(scope="module")
def app() -> Iterator[ModuleType]:
    with loaded_handler("publish_trigger") as module:
        fake = FakeServices()
        module.services = lambda: fake  # type: ignore[attr-defined]
        module.cancel = fake_cancel  # type: ignore[attr-defined]
        yield module


@pytest.fixture(scope="module")
def answers(app: ModuleType) -> dict[str, tuple[Any, Any]]:
    """Each case: the router's answer, and Powertools' (the same handler, resolving with `resolver()`)."""
    router = app.app
    reference = router.resolver()
    out = {}
    for name, event in cases():
        ours = answer(app.handler, event)
        app.app = SimpleNamespace(resolve=lambda e: reference.resolve(e, CONTEXT))
        try:
            theirs = answer(app.handler, event)
        finally:
            app.app = router
        out[name] = (ours, theirs)
    return out


def test_the_router_answers_every_request_as_powertools_did(answers: dict[str, tuple[Any, Any]]) -> None:
    assert len(answers) > 100
    differ = {name: pair for name, pair in answers.items() if pair[0] != pair[1]}
    assert not differ, json.dumps(differ, indent=1, default=str)[:4000]


def test_the_corpus_reaches_every_kind_of_answer(answers: dict[str, tuple[Any, Any]]) -> None:
    statuses = {ours["statusCode"] for ours, _ in answers.values() if "statusCode" in ours}
    assert statuses >= {200, 202, 400, 401, 404, 409, 413, 415, 422, 500, 503}
    assert any("raised" in ours for ours, _ in answers.values())
    # Answers as API Gateway's REST proxy takes them: routed ones with multi-value headers.
    accepted, _ = answers["accepted"]
    assert accepted["multiValueHeaders"] == {
        "Location": [f"/publishes/{json.loads(accepted['body'])['publishId']}"],
        "Content-Type": ["application/json"],
    }
    assert accepted["body"].startswith('{"publishId":')  # compact, as Powertools serialized


def test_a_route_parameter_without_its_marker_is_refused_at_declaration() -> None:
    router = Router()
    with pytest.raises(TypeError, match="Annotated"):

        @router.get("/things/<thingId>")
        def get_thing(thingId: str) -> Answer[Any]:
            raise AssertionError("never called")


def test_an_answer_that_breaks_its_model_is_a_500_problem() -> None:
    router = Router()
    api.install(router)

    @router.post("/broken")
    def broken(
        request: Annotated[dict[str, Any], Body()], key: Annotated[str, Header(alias="Idempotency-Key")]
    ) -> Answer[PublishAccepted]:
        return Answer(202, {"publishId": "p"})  # type: ignore[arg-type]  # no status, no scheduleId

    event = _event("POST", "/broken", json.dumps({"a": 1}))
    reply = router.resolve(event)
    assert reply["statusCode"] == 500
    assert json.loads(reply["body"])["code"] == "INTERNAL"
