"""Bodies, encodings and content types through the publish API's handler, with real API Gateway events:
every odd one gets a 4xx in the documented problem shape (never a raise, which API Gateway answers 502),
intake is never reached for a refusal, and an encoding the API reads is the same request as its UTF-8."""

from __future__ import annotations

import codecs
import json
import time
from collections.abc import Iterator
from types import ModuleType
from typing import Any
from urllib.parse import parse_qsl, unquote

import pytest
from hypothesis import HealthCheck, given, settings

from tests.support import fuzz
from tests.support.handlers import loaded_handler
from wfm_publish.clock import SystemClock
from wfm_publish.intake import Accepted
from wfm_publish.models import PublishRequest
from wfm_publish.signature import signed_headers
from wfm_publish_local.demo import SERVICENOW_BODY
from wfm_publish_local.runner.apigateway import api_gateway_event
from wfm_publish_local.runner.function import LambdaContext

SECRET = "body-secret"
KEY = "k-body"
CONTEXT = LambdaContext("publish-trigger", 512, "arn:aws:lambda:us-east-1:123456789012:function:x", "r-1", 30)
UTF8 = json.dumps(SERVICENOW_BODY).encode()
JSON = "application/json"


class RecordingIntake:
    def __init__(self) -> None:
        self.requests: list[tuple[PublishRequest, str]] = []

    def accept(self, request: PublishRequest, key: str) -> Accepted:
        self.requests.append((request, key))
        body = {"publishId": "p-1", "status": "QUEUED", "scheduleId": request.schedule_id, "joined": False}
        return Accepted(body=body)


class FakeServices:
    def __init__(self) -> None:
        self.intake = RecordingIntake()
        self.clock = SystemClock()

    def signing_secrets(self) -> list[str]:
        return [SECRET]


@pytest.fixture
def app() -> Iterator[ModuleType]:
    with loaded_handler("publish_trigger") as module:
        fake = FakeServices()
        module.services = lambda: fake  # type: ignore[attr-defined]
        yield module


@pytest.fixture(scope="module")
def shared_app() -> Iterator[ModuleType]:
    """One handler for every example of the fuzz test (loading it is most of an example's time)."""
    with loaded_handler("publish_trigger") as module:
        fake = FakeServices()
        module.services = lambda: fake  # type: ignore[attr-defined]
        yield module


def post(app: ModuleType, body: bytes, content_type: str | None = "application/json") -> dict[str, Any]:
    """The handler's answer to a signed POST /publishes of exactly these bytes, as API Gateway hands it
    over (a body that is not UTF-8 arrives Base64-encoded)."""
    headers = [("Idempotency-Key", KEY)]
    if content_type is not None:
        headers.append(("Content-Type", content_type))
    headers += list(signed_headers(SECRET, "POST", "/publishes", body, time.time(), key=KEY).items())
    event = api_gateway_event(
        method="POST",
        path="/publishes",
        resource="/publishes",
        path_parameters=None,
        headers=headers,
        query=[],
        body=body,
        stage="dev",
    )
    answer: dict[str, Any] = app.handler(event, CONTEXT)
    return answer


def problem(answer: dict[str, Any]) -> dict[str, Any]:
    """The answer's body, checked to be the documented problem shape."""
    assert 400 <= answer["statusCode"] < 500, answer
    body: dict[str, Any] = json.loads(answer["body"])
    assert isinstance(body.get("message"), str) and body["message"], body
    assert isinstance(body.get("code"), str), body
    assert set(body) <= {"message", "code", "errors", "publishId", "status"}, body
    return body


def intake(app: ModuleType) -> RecordingIntake:
    fake: FakeServices = app.services()
    return fake.intake


def nested(depth: int) -> bytes:
    return ('{"scheduleId": "s", "callback": ' + '{"a": ' * depth + "1" + "}" * depth + "}").encode()


REFUSED = [
    # (case, body, content type, status, code, fields named, words in the message or a problem)
    ("1,000 arrays deep", b"[" * 1000 + b"]" * 1000, JSON, 400, "INVALID_REQUEST", ["body"], "deep"),
    ("1,000 objects deep", nested(1000), "application/json", 400, "INVALID_REQUEST", ["body"], "deep"),
    (
        "deep in a field",
        b'{"scheduleId": ' + b"[" * 900 + b"]" * 900 + b"}",
        "application/json",
        400,
        "INVALID_REQUEST",
        ["body"],
        "deep",
    ),
    (
        "duplicate key",
        b'{"scheduleId": "a", "validationMode": "off", "scheduleId": "b"}',
        "application/json",
        400,
        "INVALID_REQUEST",
        ["scheduleId"],
        "more than once",
    ),
    (
        "duplicate nested key",
        b'{"scheduleId": "a", "callback": {"table": "incident", "sysId": "%s", "table": "x"}}' % (b"a" * 32),
        "application/json",
        400,
        "INVALID_REQUEST",
        ["callback.table"],
        "more than once",
    ),
    (
        "a number of 5,000 digits",
        b'{"scheduleId": "a", "deadlineSeconds": ' + b"9" * 5000 + b"}",
        "application/json",
        400,
        "INVALID_REQUEST",
        ["deadlineSeconds"],
        "5000 characters long",
    ),
    (
        "NaN",
        b'{"scheduleId": "a", "deadlineSeconds": NaN}',
        "application/json",
        400,
        "INVALID_REQUEST",
        ["deadlineSeconds"],
        "NaN",
    ),
    ("invalid UTF-8", b'{"scheduleId": "\xff"}', JSON, 415, "UNSUPPORTED_MEDIA_TYPE", [], "UTF-8"),
    (
        "UTF-16 without a byte order mark",
        UTF8.decode().encode("utf-16-le"),
        "application/json",
        415,
        "UNSUPPORTED_MEDIA_TYPE",
        [],
        "UTF-16LE",
    ),
    (
        "a charset we do not read",
        UTF8,
        "application/json; charset=iso-8859-1",
        415,
        "UNSUPPORTED_MEDIA_TYPE",
        [],
        "iso-8859-1",
    ),
    (
        "a UTF-16 body said to be UTF-8",
        codecs.BOM_UTF16_LE + UTF8.decode().encode("utf-16-le"),
        "application/json; charset=utf-8",
        415,
        "UNSUPPORTED_MEDIA_TYPE",
        [],
        "UTF-16",
    ),
    ("text/plain", UTF8, "text/plain", 415, "UNSUPPORTED_MEDIA_TYPE", [], "text/plain"),
    (
        "a non-ASCII byte said to be US-ASCII",
        b'{"scheduleId": "\xc3\xa9"}',
        "application/json; charset=us-ascii",
        415,
        "UNSUPPORTED_MEDIA_TYPE",
        [],
        "not valid ASCII",
    ),
    ("a form", b"scheduleId=s", "application/x-www-form-urlencoded", 415, "UNSUPPORTED_MEDIA_TYPE", [], ""),
    ("not JSON", b"scheduleId=s", "application/json", 415, "UNSUPPORTED_MEDIA_TYPE", [], "not JSON"),
]


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code", "fields", "words"),
    [case[1:] for case in REFUSED],
    ids=[case[0] for case in REFUSED],
)
def test_an_odd_body_is_refused_with_a_problem_naming_what_is_wrong(
    app: ModuleType,
    body: bytes,
    content_type: str,
    status: int,
    code: str,
    fields: list[str],
    words: str,
) -> None:
    answer = post(app, body, content_type)
    refused = problem(answer)
    assert answer["statusCode"] == status, refused
    assert refused["code"] == code or not code, refused
    named = [e["field"] for e in refused.get("errors") or []]
    assert named == fields, refused
    said = refused["message"] + " ".join(e["problem"] for e in refused.get("errors") or [])
    assert words.lower() in said.lower(), refused
    assert intake(app).requests == [], "intake was reached for a refused request"


def test_no_content_type_is_refused_by_name(app: ModuleType) -> None:
    refused = problem(post(app, UTF8, None))
    assert refused["code"] == "UNSUPPORTED_MEDIA_TYPE" and "no content type" in refused["message"]


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (UTF8, "Application/JSON"),
        (UTF8, "APPLICATION/JSON; Charset=UTF-8"),
        (UTF8, 'application/json; charset="utf-8"'),
        (UTF8, "application/json ; charset=utf-8"),
        (UTF8, "application/problem+json"),
        (UTF8, "application/vnd.servicenow+JSON"),
        (UTF8, "application/json; charset=US-ASCII"),
        (codecs.BOM_UTF8 + UTF8, "application/json"),
        (UTF8.decode().encode("utf-16"), "application/json"),  # a byte order mark, PowerShell's default
        (codecs.BOM_UTF16_BE + UTF8.decode().encode("utf-16-be"), "application/json"),
        (UTF8.decode().encode("utf-32"), "application/json"),
        (codecs.BOM_UTF32_BE + UTF8.decode().encode("utf-32-be"), "application/json; charset=UTF-32"),
        (UTF8.decode().encode("utf-16-le"), "application/json; charset=utf-16le"),
        (UTF8.decode().encode("utf-16-be"), "application/json; charset=utf-16"),
        (UTF8.decode().encode("utf-16-le"), "application/json; charset=utf-16"),
    ],
    ids=[
        "mixed case",
        "upper case with a charset",
        "quoted charset",
        "space before the parameter",
        "problem+json",
        "a vendor +json type",
        "US-ASCII declared",
        "UTF-8 with a byte order mark",
        "UTF-16 with a byte order mark",
        "UTF-16BE with a byte order mark",
        "UTF-32 with a byte order mark",
        "UTF-32BE declared and marked",
        "UTF-16LE declared",
        "UTF-16 declared, big-endian",
        "UTF-16 declared, little-endian",
    ],
)
def test_a_json_body_the_api_can_read_is_the_same_request_as_its_utf8(
    app: ModuleType, body: bytes, content_type: str
) -> None:
    answer = post(app, body, content_type)
    assert answer["statusCode"] == 202, answer["body"]
    [(request, key)] = intake(app).requests
    assert request == PublishRequest.model_validate(SERVICENOW_BODY)
    assert key == f"api:{KEY}"


# --- any shape: the handler never raises, never answers 5xx --------------------------------------------


@given(drawn=fuzz.requests(routes=("create",)))  # the routes that read a body; all: tests/e2e
@settings(
    max_examples=1000,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
def test_no_signed_request_of_any_shape_raises_or_gets_a_5xx(
    shared_app: ModuleType, drawn: dict[str, Any]
) -> None:
    """What API Gateway hands the function for each drawn request (its framing aside: the front's, see
    tests/e2e/test_api_fuzz.py), signed for it: the answer is below 500, a refusal the problem shape."""
    keys = drawn["keys"]
    named = {name.lower(): value for name, value in keys}
    key = named.get("idempotency-key", named.get("x-request-id", ""))
    body = drawn["body"]
    headers = [*keys]
    if drawn["content_type"] is not None:
        headers.append(("Content-Type", drawn["content_type"]))
    query = parse_qsl(drawn["query"], keep_blank_values=True)
    headers += list(
        signed_headers(SECRET, drawn["method"], drawn["path"], body, time.time(), query, key=key).items()
    )
    path = unquote(drawn["path"])
    event = api_gateway_event(
        method=drawn["method"],
        path=path,
        resource=path,
        path_parameters=None,
        headers=headers,
        query=query,
        body=body,
        stage="dev",
    )
    answer = shared_app.handler(event, CONTEXT)
    assert answer["statusCode"] < 500, (answer, drawn)
    if answer["statusCode"] >= 400:
        problem(answer)
