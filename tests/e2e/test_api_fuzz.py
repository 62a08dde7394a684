"""No signed request of any shape gets a 5xx from the publish API (the local stack, over HTTP).

Hypothesis draws requests schemathesis' document-driven fuzzing never sends: bodies of random JSON,
nested thousands deep, with numbers thousands of digits long, NaN, odd unicode and lone surrogates,
keys named twice, invalid UTF-8, byte order marks, in UTF-8/16/32 with and without a charset; content
types in any case with any parameters; Content-Length exact, absent, chunked or no number at all;
idempotency keys odd, empty, doubled or standing in as X-Request-Id; every route with odd ids and
queries. Each is signed correctly (v3: the method, the path, the query, the key as the API takes it,
the exact bytes sent), sent as raw bytes, and its answer must be below 500 and, when a refusal, the
documented problem shape. Deterministic (derandomized, no example database) and bounded: it runs in
`make test` in a few seconds.
"""

from __future__ import annotations

import http.client
import json
import socket
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, given, settings

from tests.support import fuzz
from wfm_publish.signature import canonical_query, signed_headers
from wfm_publish_local.embedded import EmbeddedStack

pytestmark = pytest.mark.e2e
EXAMPLES = 300


@pytest.fixture(scope="module")
def stack() -> Iterator[EmbeddedStack]:
    with EmbeddedStack(visibility_timeout=2) as running:
        yield running


# --- sending and judging -------------------------------------------------------------------------------


def send(stack: EmbeddedStack, drawn: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    """The request as bytes, signed for what the API will see; the answer."""
    body: bytes = drawn["body"]
    keys: list[tuple[str, str]] = drawn["keys"]
    # The key the API takes: API Gateway's single-value headers keep each name's last value.
    named = {name.lower(): value for name, value in keys}
    key = named.get("idempotency-key", named.get("x-request-id", ""))
    target = drawn["path"] + (f"?{drawn['query']}" if drawn["query"] else "")
    signed_body = b"" if drawn["framing"] == "none" else body  # without framing, no body arrives
    signed = signed_headers(
        stack.hmac_secret,
        drawn["method"],
        drawn["path"],
        signed_body,
        time.time(),
        query=canonical_query(drawn["query"]),
        key=key,
    )
    headers = [("Host", "localhost"), *keys, *signed.items()]
    if drawn["content_type"] is not None:
        headers.append(("Content-Type", drawn["content_type"]))
    payload = body
    if drawn["framing"] == "length":
        headers.append(("Content-Length", str(len(body))))
    elif drawn["framing"] == "odd":
        headers.append(("Content-Length", drawn["odd_length"]))
    elif drawn["framing"] == "chunked":
        headers.append(("Transfer-Encoding", "chunked"))
        payload = (f"{len(body):x}\r\n".encode() + body + b"\r\n" if body else b"") + b"0\r\n\r\n"
    else:
        payload = b""
    head = f"{drawn['method']} {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers)
    url = urlsplit(stack.api_url)
    with socket.create_connection((url.hostname, url.port), timeout=30) as connection:
        connection.sendall(head.encode("latin-1") + b"\r\n" + payload)
        answer = http.client.HTTPResponse(connection, method=drawn["method"])
        answer.begin()
        return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()


@given(drawn=fuzz.requests())
@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
def test_no_signed_request_of_any_shape_gets_a_5xx(stack: EmbeddedStack, drawn: dict[str, Any]) -> None:
    status, headers, payload = send(stack, drawn)
    assert status < 500, (status, payload[:300], drawn)
    if status < 400:
        return
    if headers.get("x-amzn-errortype") == "MissingAuthenticationTokenException":
        return  # API Gateway's own answer for a path no route takes (an id holding "/")
    problem = json.loads(payload)
    assert isinstance(problem, dict), payload
    assert isinstance(problem.get("message"), str) and problem["message"], problem
    assert isinstance(problem.get("code"), str) and problem["code"].isupper(), problem
    assert set(problem) <= {"message", "code", "errors", "publishId", "status"}, problem
    for error in problem.get("errors") or []:
        assert isinstance(error["field"], str) and isinstance(error["problem"], str), problem
