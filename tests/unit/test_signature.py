"""Request signatures, and the checks the API makes before any route runs (401, then 413, then 415)."""

from __future__ import annotations

import hashlib
import hmac
import json
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
