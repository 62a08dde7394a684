"""Request signatures, and the checks the API makes before any route runs (401, then 413, then 415)."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import re
import shutil
import subprocess
from pathlib import Path
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


# --- the ServiceNow script in docs/servicenow.md ---------------------------------------------------

DOCS = Path(__file__).resolve().parents[2] / "docs" / "servicenow.md"
GLIDE_STAND_IN = """
const crypto = require('crypto');
global.gs = {base64Encode: (text) => Buffer.from(text, 'utf8').toString('base64')};
global.GlideCertificateEncryption = function () {};
// As ServiceNow documents generateMac: a Base64 key, an algorithm name, the data; a Base64 MAC back.
GlideCertificateEncryption.prototype.generateMac = function (key, algorithm, data) {
    if (algorithm !== 'HmacSHA256') throw new Error('unexpected algorithm ' + algorithm);
    return crypto.createHmac('sha256', Buffer.from(key, 'base64')).update(data, 'utf8').digest('base64');
};
"""


def _documented_script() -> str:
    script = re.search(
        r"<!-- servicenow-script:begin -->\s*```javascript\n(.*?)```\s*<!-- servicenow-script:end -->",
        DOCS.read_text(),
        re.S,
    )
    assert script is not None, "the signing script's markers are missing from docs/servicenow.md"
    return script.group(1)


def _node(program: str) -> list[Any]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed: the documented ServiceNow script is not run")
    result = subprocess.run([node, "-e", program], capture_output=True, text=True, timeout=60, check=True)
    return [json.loads(line) for line in result.stdout.splitlines()]


LOCAL = "wfm-publish-local-hmac-secret"


def test_the_documented_servicenow_script_signs_as_the_api_checks() -> None:
    cases: list[tuple[str, str, str, Any, str, str, int]] = [
        (
            LOCAL,
            "POST",
            "/publishes",
            None,
            "CHG0031337-publish-1",
            '{"scheduleId":"sched-demo"}',
            1_698_415_200_123,
        ),
        (LOCAL, "GET", "/publishes/p-1", None, "", "", 1_698_415_200_000),
        (
            "a longer secret with spaces & symbols!",
            "post",
            "/publishes/it's (a) b*!/cancel",
            {"z": "1", "a": ["x y", "!'()*", "é"], "a-": "", "b=c": "&"},
            "key with spaces, é & symbols!",
            json.dumps({"scheduleId": "s", "x": [1, 2], "t": "é ✓"}, ensure_ascii=False),
            1_700_000_000_999,
        ),
    ]
    program = (
        GLIDE_STAND_IN
        + _documented_script()
        + "".join(
            "console.log(JSON.stringify(WfmPublishSigner.sign("
            f"{json.dumps(secret)}, {json.dumps(method)}, {json.dumps(path)}, {json.dumps(query)}, "
            f"{json.dumps(key)}, {json.dumps(body)}, {millis})));\n"
            for secret, method, path, query, key, body, millis in cases
        )
    )
    for signed, (secret, method, path, query, key, body, millis) in zip(_node(program), cases, strict=True):
        assert signed["timestamp"] == str(millis // 1000)
        assert signed["signature"] == sign(secret, millis // 1000, method, path, query, body, key)
        sent = {"X-Signature-Timestamp": signed["timestamp"], "X-Signature": signed["signature"]}
        if key:
            sent["Idempotency-Key"] = key
        verify([secret], sent, method.upper(), path, query, body.encode(), millis / 1000)
    # The test vectors printed in the docs are the real ones.
    text = DOCS.read_text()
    local, publish = "wfm-publish-local-hmac-secret", "/publishes/3f2a9c04e1d84b7c9a1e5d6f7b8c9d0e"
    demo = '{"scheduleId":"sched-demo"}'
    posted = sign(local, 1698415200, "POST", "/publishes", None, demo, "CHG0031337-publish-1")
    assert posted in text
    assert base64.b64encode(bytes.fromhex(posted[3:])).decode() in text
    assert sign(local, 1698415200, "GET", publish, None, "") in text
    assert sign(local, 1698415200, "POST", f"{publish}/cancel", None, "") in text


REST_MESSAGE_STAND_IN = """
global.GlideDateTime = function () {};
GlideDateTime.prototype.getNumericValue = function () { return NOW_MILLIS; };
global.sn_ws = {RESTMessageV2: function (message, method) {
    this.sent = {message: message, method: method, headers: {}, params: {}, body: ''};
}};
sn_ws.RESTMessageV2.prototype.setRequestHeader = function (k, v) { this.sent.headers[k] = v; };
sn_ws.RESTMessageV2.prototype.setStringParameterNoEscape = function (k, v) { this.sent.params[k] = v; };
sn_ws.RESTMessageV2.prototype.setRequestBody = function (b) { this.sent.body = b; };
sn_ws.RESTMessageV2.prototype.execute = function () { return this.sent; };
"""


def test_the_documented_send_signs_the_route_each_rest_method_calls() -> None:
    """`send` names the REST message's HTTP method; the headers it sets pass on that route only."""
    millis, publish_id = 1_698_415_200_500, "3f2a9c04e1d84b7c9a1e5d6f7b8c9d0e"
    calls = [
        ("Publish schedule", '{"scheduleId":"sched-demo"}', "k-1", None, "POST", "/publishes"),
        ("Get publish", "", None, publish_id, "GET", f"/publishes/{publish_id}"),
        ("Cancel publish", "", None, publish_id, "POST", f"/publishes/{publish_id}/cancel"),
    ]
    program = (
        GLIDE_STAND_IN
        + REST_MESSAGE_STAND_IN.replace("NOW_MILLIS", str(millis))
        + _documented_script()
        + "".join(
            f"console.log(JSON.stringify(WfmPublishSigner.send({json.dumps(name)}, {json.dumps(SECRET)}, "
            f"'api-key', {json.dumps(body)}, {json.dumps(key)}, {json.dumps(publish)})));\n"
            for name, body, key, publish, _, _ in calls
        )
    )
    routes = {(method, path) for *_, method, path in calls}
    for sent, (name, body, key, _, method, path) in zip(_node(program), calls, strict=True):
        assert sent["method"] == name
        assert sent["headers"].get("Idempotency-Key") == key
        for other_method, other_path in routes:
            checked = functools.partial(
                verify, [SECRET], sent["headers"], other_method, other_path, None, body.encode()
            )
            if (other_method, other_path) == (method, path):
                checked(millis / 1000)
            else:
                with pytest.raises(SignatureRejected):
                    checked(millis / 1000)
        if key:  # the key it sent is the key it signed: another one is refused
            with pytest.raises(SignatureRejected):
                verify(
                    [SECRET],
                    {**sent["headers"], "Idempotency-Key": "another"},
                    method,
                    path,
                    None,
                    body.encode(),
                    millis / 1000,
                )
