"""Request signatures, and the checks the API makes before any route runs (401, then 413, then 415)."""

from __future__ import annotations

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
from wfm_publish.errors import ConfigurationError
from wfm_publish.signature import SignatureRejected, secrets_from, sign, signed_headers, verify

SECRET = "s3cret-for-tests"
NOW = 1_698_415_200.0
BODY = b'{"scheduleId": "sched-1"}'


def headers(timestamp: float = NOW, body: bytes = BODY, secret: str = SECRET) -> dict[str, str]:
    return signed_headers(secret, body, timestamp)


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    expected = hmac.new(SECRET.encode(), b"1698415200." + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, 1698415200, BODY) == f"v1={expected}"
    assert sign(SECRET, "1698415200", BODY.decode()) == f"v1={expected}"
    # A GET signs the empty body.
    empty = hmac.new(SECRET.encode(), b"1698415200.", hashlib.sha256).hexdigest()
    assert sign(SECRET, 1698415200, b"") == f"v1={empty}"


def test_a_good_signature_passes_whatever_the_header_case() -> None:
    verify([SECRET], headers(), BODY, NOW)
    verify([SECRET], {k.lower(): v for k, v in headers().items()}, BODY, NOW)


@pytest.mark.parametrize(
    ("sent", "why"),
    [
        ({}, "sign the request"),
        ({"X-Signature-Timestamp": str(int(NOW))}, "sign the request"),
        ({"X-Signature": sign(SECRET, int(NOW), BODY)}, "sign the request"),
        ({"X-Signature-Timestamp": "soon", "X-Signature": sign(SECRET, "soon", BODY)}, "unix seconds"),
        ({"X-Signature-Timestamp": str(int(NOW)), "X-Signature": "sha256=abc"}, "v1=<64 hex digits>"),
        (headers(secret="another secret"), "does not match"),
        (headers(body=b'{"scheduleId": "sched-2"}'), "does not match"),
    ],
)
def test_a_missing_or_wrong_signature_is_refused(sent: dict[str, str], why: str) -> None:
    with pytest.raises(SignatureRejected, match=why):
        verify([SECRET], sent, BODY, NOW)


@pytest.mark.parametrize("skew", [-301, 301, -3600, 86_400])
def test_a_timestamp_more_than_five_minutes_off_is_refused(skew: int) -> None:
    with pytest.raises(SignatureRejected, match="more than 5 minutes"):
        verify([SECRET], headers(timestamp=NOW + skew), BODY, NOW)


@pytest.mark.parametrize("skew", [-300, -299, 0, 299, 300])
def test_a_timestamp_within_five_minutes_passes(skew: int) -> None:
    verify([SECRET], headers(timestamp=NOW + skew), BODY, NOW)


def test_rotation_the_previous_secret_and_several_values_pass() -> None:
    verify(["new secret", SECRET], headers(), BODY, NOW)
    sent = headers(secret="new secret")
    sent["X-Signature"] = f"{sign('junk', int(NOW), BODY)}, {sent['X-Signature']}"
    verify(["new secret"], sent, BODY, NOW)


def test_comparisons_are_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(signature.hmac, "compare_digest", spy)
    verify(["first", SECRET], headers(), BODY, NOW)
    # every secret against every offered value, even after a match: no early exit
    assert len(calls) == 2
    with pytest.raises(SignatureRejected):
        verify(["first", "second"], headers(), BODY, NOW)
    assert len(calls) == 4


def test_no_secret_configured_refuses_everything() -> None:
    with pytest.raises(ConfigurationError):
        verify([], headers(), BODY, NOW)


def test_the_secret_comes_as_json_or_text() -> None:
    assert secrets_from('{"hmacSecret": "a"}') == ["a"]
    assert secrets_from('{"hmacSecret": "a", "previousHmacSecret": "b"}') == ["a", "b"]
    assert secrets_from("plain-text-secret\n") == ["plain-text-secret"]
    for bad in ('{"clientId": "x"}', "{not json"):
        with pytest.raises(ConfigurationError) as caught:
            secrets_from(bad)
        assert "x" not in str(caught.value).replace("hmacSecret", "")  # names the shape, not the content


# --- the API's checks before routing -------------------------------------------------------------------


def event(body: str | None, content_type: str | None = "application/json", **sent: str) -> dict[str, Any]:
    raw = (body or "").encode()
    headers = signed_headers(SECRET, raw, NOW) if "unsigned" not in sent else {}
    if content_type:
        headers["Content-Type"] = content_type
    headers.update({k: v for k, v in sent.items() if k != "unsigned"})
    return {"httpMethod": "POST", "path": "/publishes", "headers": headers, "body": body}


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
    api.guard(event(None, None), lambda: [SECRET], NOW)  # GET / cancel: nothing to type


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


def test_the_documented_servicenow_script_signs_as_the_api_checks() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed: the documented ServiceNow script is not run")
    text = DOCS.read_text()
    script = re.search(
        r"<!-- servicenow-script:begin -->\s*```javascript\n(.*?)```\s*<!-- servicenow-script:end -->",
        text,
        re.S,
    )
    assert script is not None, "the signing script's markers are missing from docs/servicenow.md"
    cases = [
        ("wfm-publish-local-hmac-secret", '{"scheduleId":"sched-demo"}', 1_698_415_200_123),
        ("wfm-publish-local-hmac-secret", "", 1_698_415_200_000),
        (
            "a longer secret with spaces & symbols!",
            json.dumps({"scheduleId": "s", "x": [1, 2]}),
            1_700_000_000_999,
        ),
    ]
    program = (
        GLIDE_STAND_IN
        + script.group(1)
        + "".join(
            "console.log(JSON.stringify(WfmPublishSigner.sign("
            f"{json.dumps(secret)}, {json.dumps(body)}, {millis})));\n"
            for secret, body, millis in cases
        )
    )
    result = subprocess.run([node, "-e", program], capture_output=True, text=True, timeout=60, check=True)
    for line, (secret, body, millis) in zip(result.stdout.splitlines(), cases, strict=True):
        signed = json.loads(line)
        assert signed["timestamp"] == str(millis // 1000)
        assert signed["signature"] == sign(secret, millis // 1000, body)
        verify(
            [secret],
            {"X-Signature-Timestamp": signed["timestamp"], "X-Signature": signed["signature"]},
            body.encode(),
            millis / 1000,
        )
    # The test vector printed in the docs is the real one.
    assert sign("wfm-publish-local-hmac-secret", 1698415200, '{"scheduleId":"sched-demo"}') in text
    assert sign("wfm-publish-local-hmac-secret", 1698415200, "") in text
