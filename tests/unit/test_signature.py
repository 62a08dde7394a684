"""Request signatures, and the checks the API makes before any route runs (401, then 413, then 415)."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import pytest

from wfm_publish import api, signature
from wfm_publish.api import ApiProblem, ProblemCode
from wfm_publish.errors import ConfigurationError, SignatureRejected
from wfm_publish.signature import request_key, secrets_from, sign, signed_headers, verify

SECRET = "s3cret-for-tests"
NOW = 1_698_415_200.0
BODY = b'{"scheduleId": "sched-1"}'
POST, PATH = "POST", "/publishes"


def headers(
    timestamp: float = NOW,
    body: bytes = BODY,
    secret: str = SECRET,
    method: str = POST,
    path: str = PATH,
    query: str = "",
) -> dict[str, str]:
    return signed_headers(secret, method, path, body, timestamp, query=query)


def check(sent: dict[str, str], secrets: tuple[str, ...] = (SECRET,), now: float = NOW) -> None:
    verify(list(secrets), sent, POST, PATH, None, BODY, now)


def test_the_signature_is_hmac_sha256_of_timestamp_method_path_query_key_and_body() -> None:
    def mac(signed: bytes) -> str:
        return "v3=" + hmac.new(SECRET.encode(), signed, hashlib.sha256).hexdigest()

    assert sign(SECRET, 1698415200, "post", "/publishes", None, BODY, "CHG1-publish-1") == mac(
        b"1698415200\nPOST\n/publishes\n\nCHG1-publish-1\n" + BODY
    )
    assert sign(SECRET, "1698415200", "POST", "/publishes", "", BODY.decode(), "CHG1-publish-1") == mac(
        b"1698415200\nPOST\n/publishes\n\nCHG1-publish-1\n" + BODY
    )
    # A GET signs the empty key and the empty body; the query's pairs are sorted and percent-encoded.
    assert sign(SECRET, 1698415200, "GET", "/publishes/a b", "z=1&a=x y&a=%21", b"") == mac(
        b"1698415200\nGET\n/publishes/a%20b\na=%21&a=x%20y&z=1\n\n"
    )


def test_the_idempotency_key_is_signed_as_the_api_takes_it() -> None:
    """A captured POST /publishes sent again under another key must not start a second publish."""
    signed = signed_headers(SECRET, POST, PATH, BODY, NOW, key="CHG1-publish-1")
    verify([SECRET], {**signed, "Idempotency-Key": "CHG1-publish-1"}, POST, PATH, None, BODY, NOW)
    for other in ("CHG1-publish-2", "CHG1-publish-1 ", "", "chg1-publish-1"):
        with pytest.raises(SignatureRejected, match="Idempotency-Key"):
            verify([SECRET], {**signed, "Idempotency-Key": other}, POST, PATH, None, BODY, NOW)
    with pytest.raises(SignatureRejected):  # no key at all: it signed one
        verify([SECRET], signed, POST, PATH, None, BODY, NOW)
    # X-Request-Id stands in for a missing Idempotency-Key: it is the key signed then.
    verify([SECRET], {**signed, "X-Request-Id": "CHG1-publish-1"}, POST, PATH, None, BODY, NOW)
    with pytest.raises(SignatureRejected):
        verify([SECRET], {**signed, "X-Request-Id": "another"}, POST, PATH, None, BODY, NOW)
    # Both sent: the API takes Idempotency-Key, so that is the key signed.
    both = {**signed, "Idempotency-Key": "CHG1-publish-1", "X-Request-Id": "another"}
    verify([SECRET], both, POST, PATH, None, BODY, NOW)
    assert request_key({"idempotency-key": "a", "x-request-id": "b"}) == "a"
    assert request_key({"X-Request-Id": "b"}) == "b"
    assert request_key({}) == ""


def test_the_query_and_path_sign_alike_however_they_are_given() -> None:
    raw = sign(SECRET, 1, "GET", "/publishes/a%20b", "b=2&a=1&a=0", b"")
    assert sign(SECRET, 1, "GET", "/publishes/a b", {"a": ["0", "1"], "b": "2"}, b"") == raw
    assert sign(SECRET, 1, "GET", "/publishes/a b", [("b", "2"), ("a", "1"), ("a", "0")], b"") == raw


def test_a_good_signature_passes_whatever_the_header_case() -> None:
    check(headers())
    check({k.lower(): v for k, v in headers().items()})


@pytest.mark.parametrize(
    ("sent", "why"),
    [
        ({}, "sign the request"),
        ({"X-Signature-Timestamp": str(int(NOW))}, "sign the request"),
        ({"X-Signature": sign(SECRET, int(NOW), POST, PATH, None, BODY)}, "sign the request"),
        (
            {"X-Signature-Timestamp": "soon", "X-Signature": sign(SECRET, "soon", POST, PATH, None, BODY)},
            "unix seconds",
        ),
        ({"X-Signature-Timestamp": str(int(NOW)), "X-Signature": "sha256=abc"}, "v3=<64 hex digits>"),
        (headers(secret="another secret"), "does not match"),
        (headers(body=b'{"scheduleId": "sched-2"}'), "does not match"),
        (headers(method="GET"), "does not match"),
        (headers(method="PUT"), "does not match"),
        (headers(path="/publishes/x/cancel"), "does not match"),
        (headers(path="/publishes/"), "does not match"),
        (headers(query="a=1"), "does not match"),
    ],
)
def test_a_missing_or_wrong_signature_is_refused(sent: dict[str, str], why: str) -> None:
    with pytest.raises(SignatureRejected, match=why):
        check(sent)


def test_a_v1_signature_is_refused_by_name() -> None:
    """v1 signed the timestamp and the body only: a captured GET worked on any route for 5 minutes."""
    v1 = "v1=" + hmac.new(SECRET.encode(), f"{int(NOW)}.".encode() + BODY, hashlib.sha256).hexdigest()
    sent = {"X-Signature-Timestamp": str(int(NOW)), "X-Signature": v1}
    with pytest.raises(SignatureRejected, match="v1 signatures are no longer accepted"):
        check(sent)


def test_a_v2_signature_is_refused_by_name_and_a_client_may_send_both() -> None:
    """v2 did not sign the Idempotency-Key: a captured POST /publishes under a new key started a second
    publish. A client moving to v3 sends both values: the v3 one passes here, the v2 one on a server
    before v3."""
    v2 = (
        "v2="
        + hmac.new(SECRET.encode(), f"{int(NOW)}\nPOST\n/publishes\n\n".encode() + BODY, "sha256").hexdigest()
    )
    with pytest.raises(SignatureRejected, match="v2 signatures are no longer accepted: sign with v3"):
        check({"X-Signature-Timestamp": str(int(NOW)), "X-Signature": v2})
    both = headers()
    both["X-Signature"] = f"{both['X-Signature']}, {v2}"
    check(both)
    check({**both, "X-Signature": f"{v2},{headers()['X-Signature']}"})


def test_a_query_the_signer_did_not_sign_is_refused() -> None:
    sent = headers(query="a=1")
    verify([SECRET], sent, POST, PATH, {"a": ["1"]}, BODY, NOW)
    for other in ({"a": ["2"]}, {"a": ["1", "1"]}, {"a": ["1"], "b": [""]}, None):
        with pytest.raises(SignatureRejected, match="does not match"):
            verify([SECRET], sent, POST, PATH, other, BODY, NOW)


@pytest.mark.parametrize("skew", [-301, 301, -3600, 86_400])
def test_a_timestamp_more_than_five_minutes_off_is_refused(skew: int) -> None:
    with pytest.raises(SignatureRejected, match="more than 5 minutes"):
        check(headers(timestamp=NOW + skew))


@pytest.mark.parametrize("skew", [-300, -299, 0, 299, 300])
def test_a_timestamp_within_five_minutes_passes(skew: int) -> None:
    check(headers(timestamp=NOW + skew))


def test_rotation_the_previous_secret_and_several_values_pass() -> None:
    check(headers(), secrets=("new secret", SECRET))
    sent = headers(secret="new secret")
    sent["X-Signature"] = f"{sign('junk', int(NOW), POST, PATH, None, BODY)}, {sent['X-Signature']}"
    check(sent, secrets=("new secret",))
    # the previous secret still names the request: a GET it signed does not pass on POST
    with pytest.raises(SignatureRejected):
        check(headers(method="GET", body=BODY), secrets=("new secret", SECRET))


def test_comparisons_are_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(signature.hmac, "compare_digest", spy)
    check(headers(), secrets=("first", SECRET))
    # every secret against every offered value, even after a match: no early exit
    assert len(calls) == 2
    with pytest.raises(SignatureRejected):
        check(headers(), secrets=("first", "second"))
    assert len(calls) == 4


def test_no_secret_configured_refuses_everything() -> None:
    with pytest.raises(ConfigurationError):
        check(headers(), secrets=())


def test_the_secret_comes_as_json_or_text() -> None:
    assert secrets_from('{"hmacSecret": "a"}') == ["a"]
    assert secrets_from('{"hmacSecret": "a", "previousHmacSecret": "b"}') == ["a", "b"]
    assert secrets_from("plain-text-secret\n") == ["plain-text-secret"]
    for bad in ('{"clientId": "x"}', "{not json"):
        with pytest.raises(ConfigurationError) as caught:
            secrets_from(bad)
        assert "x" not in str(caught.value).replace("hmacSecret", "")  # names the shape, not the content


# --- the API's checks before routing -------------------------------------------------------------------


def event(
    body: str | None,
    content_type: str | None = "application/json",
    method: str = POST,
    path: str = PATH,
    **sent: str,
) -> dict[str, Any]:
    raw = (body or "").encode()
    extra = {k: v for k, v in sent.items() if k != "unsigned"}
    key = request_key(extra)
    headers = signed_headers(SECRET, method, path, raw, NOW, key=key) if "unsigned" not in sent else {}
    if content_type:
        headers["Content-Type"] = content_type
    headers.update({k: v for k, v in sent.items() if k != "unsigned"})
    return {"httpMethod": method, "path": path, "headers": headers, "body": body}


def refusal(evt: dict[str, Any]) -> ApiProblem:
    with pytest.raises(ApiProblem) as caught:
        api.guard(evt, lambda: [SECRET], NOW)
    return caught.value


def test_the_signature_is_checked_before_size_and_type() -> None:
    huge = json.dumps({"scheduleId": "x" * 70_000})
    assert refusal(event(huge, "text/plain", unsigned="1")).http_status == 401
    assert refusal(event(huge, "text/plain")).http_status == 413
    assert refusal(event("{}", "text/plain")).http_status == 415
    assert refusal(event("not json")).body.code is ProblemCode.UNSUPPORTED_MEDIA_TYPE
    api.guard(event("{}", "application/json; charset=utf-8"), lambda: [SECRET], NOW)
    api.guard(event(None, None, "GET", "/publishes/p-1"), lambda: [SECRET], NOW)  # nothing to type


def test_a_signed_get_replayed_on_the_cancel_route_is_refused() -> None:
    """Issue 9, case 7: a captured GET (empty body) must not cancel the job within the 5 minutes."""
    captured = event(None, None, "GET", "/publishes/p-1")
    api.guard(captured, lambda: [SECRET], NOW)
    replay = {**captured, "httpMethod": "POST", "path": "/publishes/p-1/cancel"}
    assert refusal(replay).http_status == 401
    assert refusal({**captured, "path": "/publishes/p-2"}).http_status == 401  # another job
    query = {**captured, "multiValueQueryStringParameters": {"x": ["1"]}, "queryStringParameters": {"x": "1"}}
    assert refusal(query).http_status == 401


def test_the_guard_signs_the_query_api_gateway_passes() -> None:
    evt = event(None, None, "GET", "/publishes/p-1")
    evt["headers"].update(signed_headers(SECRET, "GET", "/publishes/p-1", b"", NOW, query="b=2&a=1&a=0"))
    evt["queryStringParameters"] = {"a": "0", "b": "2"}  # API Gateway keeps one value here
    evt["multiValueQueryStringParameters"] = {"a": ["1", "0"], "b": ["2"]}
    api.guard(evt, lambda: [SECRET], NOW)


def test_a_body_of_exactly_64_kib_is_allowed() -> None:
    at_limit = json.dumps({"k": "x" * (api.MAX_BODY_BYTES - 9)})
    assert len(at_limit) == api.MAX_BODY_BYTES
    api.guard(event(at_limit), lambda: [SECRET], NOW)
    assert refusal(event(at_limit + " ")).http_status == 413


def test_x_request_id_stands_in_for_a_missing_idempotency_key() -> None:
    evt = event("{}", **{"X-Request-Id": "snow-123"})
    api.guard(evt, lambda: [SECRET], NOW)
    assert evt["headers"]["Idempotency-Key"] == "snow-123"
    both = event("{}", **{"X-Request-Id": "snow-123", "Idempotency-Key": "key-9"})
    api.guard(both, lambda: [SECRET], NOW)
    assert both["headers"]["Idempotency-Key"] == "key-9"


def test_a_secret_that_cannot_be_read_refuses_with_500_not_401() -> None:
    def broken() -> list[str]:
        raise ConfigurationError("cannot read the secret")

    with pytest.raises(ApiProblem) as caught:
        api.guard(event("{}"), broken, NOW)
    assert caught.value.http_status == 500
    assert caught.value.body.code is ProblemCode.MISCONFIGURED


# --- the clients: SignedAuth and `wfm-publish sign` ----------------------------------------------------


def test_signed_auth_signs_the_resource_path_without_the_stage_and_the_query() -> None:
    import requests

    from wfm_publish_local.client import SignedAuth

    prepared = requests.Request(
        "POST", "https://abc.execute-api.eu-west-1.amazonaws.com/prod/publishes/p 1/cancel?b=2&a=1"
    ).prepare()
    SignedAuth(SECRET, base_path="/prod/")(prepared)
    sent = dict(prepared.headers)
    now = float(sent["X-Signature-Timestamp"])
    # as API Gateway hands it to the function: no stage, decoded, the query as multi-value pairs
    verify([SECRET], sent, "POST", "/publishes/p 1/cancel", {"a": ["1"], "b": ["2"]}, b"", now)
    with pytest.raises(SignatureRejected):
        verify([SECRET], sent, "POST", "/prod/publishes/p 1/cancel", {"a": ["1"], "b": ["2"]}, b"", now)


def test_the_sign_command_prints_the_headers(capsys: pytest.CaptureFixture[str]) -> None:
    from wfm_publish_local.cli import main

    argv = ["sign", "--method", "post", "--path", "/publishes", "--data", BODY.decode(), "--timestamp"]
    assert main([*argv, str(int(NOW)), "--hmac-secret", SECRET, "--query", "x=1", "--key", "k-9"]) == 0
    printed = dict(line.split(": ", 1) for line in capsys.readouterr().out.splitlines())
    assert printed == {
        "Idempotency-Key": "k-9",
        "X-Signature-Timestamp": str(int(NOW)),
        "X-Signature": sign(SECRET, int(NOW), "POST", "/publishes", "x=1", BODY, "k-9"),
    }
    get = ["sign", "--method", "GET", "--path", "/publishes/p-1", "--timestamp", str(int(NOW))]
    assert main([*get, "--hmac-secret", SECRET]) == 0
    printed = dict(line.split(": ", 1) for line in capsys.readouterr().out.splitlines())
    assert printed["X-Signature"] == sign(SECRET, int(NOW), "GET", "/publishes/p-1", None, b"")
    assert "Idempotency-Key" not in printed


# The ServiceNow script include that signs (servicenow/sys_script_include/WfmPublish.xml) is run against
# these checks in tests/unit/test_servicenow_update_set.py.
