"""The publish API's edge on the local stack, over HTTP: odd bodies, encodings and content types, odd HTTP
(a Content-Length that is no number of bytes), a burst of requests at once. Every one gets an answer,
a 4xx in the documented problem shape when refused, and nothing is written for a refusal."""

from __future__ import annotations

import codecs
import json
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from tests.support.aws import written
from wfm_publish.signature import signed_headers
from wfm_publish_local.demo import SERVICENOW_BODY
from wfm_publish_local.embedded import EmbeddedStack

pytestmark = pytest.mark.e2e
JSON = "application/json"


@pytest.fixture(scope="module")
def stack() -> Iterator[EmbeddedStack]:
    with EmbeddedStack(visibility_timeout=2) as running:
        yield running


def later(schedule: str | None = None) -> dict[str, Any]:
    """A request that waits (publishTime an hour ahead), so nothing happens to it during the test."""
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    return {**SERVICENOW_BODY, "publishTime": when, "scheduleId": schedule or SERVICENOW_BODY["scheduleId"]}


def post(
    stack: EmbeddedStack, data: bytes, content_type: str | None = JSON, key: str = ""
) -> requests.Response:
    headers = {"Idempotency-Key": key or str(uuid.uuid4())}
    if content_type is not None:
        headers["Content-Type"] = content_type
    return requests.post(
        f"{stack.api_url}/publishes", data=data, headers=headers, auth=stack.auth, timeout=30
    )


def problem(answer: requests.Response) -> dict[str, Any]:
    assert 400 <= answer.status_code < 500, (answer.status_code, answer.text)
    body: dict[str, Any] = answer.json()
    assert isinstance(body.get("message"), str) and body["message"] and isinstance(body.get("code"), str)
    return body


def test_odd_bodies_are_refused_with_a_problem_and_write_nothing(stack: EmbeddedStack) -> None:
    """Each of these answered 502 Internal server error (the function raised), 400 naming field "0", 415
    in Powertools' own shape, or 202 for a body whose key was named twice."""
    assert written(stack) == set()
    text = json.dumps(later())
    refused: list[tuple[bytes, str | None, int, str]] = [
        (b"[" * 1000 + b"]" * 1000, JSON, 400, "INVALID_REQUEST"),  # 2 KB, RecursionError
        (b'{"scheduleId": ' + b"[" * 990 + b"]" * 990 + b"}", JSON, 400, "INVALID_REQUEST"),
        (b'{"scheduleId": "a", "scheduleId": "b"}', JSON, 400, "INVALID_REQUEST"),
        (text.encode("utf-16-le"), JSON, 415, "UNSUPPORTED_MEDIA_TYPE"),  # no mark, no charset
        (text.encode("utf-16"), "application/json; charset=utf-8", 415, "UNSUPPORTED_MEDIA_TYPE"),
        (text.encode(), "application/json; charset=windows-1252", 415, "UNSUPPORTED_MEDIA_TYPE"),
        (b'{"scheduleId": "\xff\xfe"}', JSON, 415, "UNSUPPORTED_MEDIA_TYPE"),
        (b'{"scheduleId": "a", "deadlineSeconds": ' + b"1" * 5000 + b"}", JSON, 400, "INVALID_REQUEST"),
        (text.encode(), "text/json", 415, "UNSUPPORTED_MEDIA_TYPE"),
    ]
    for data, content_type, status, code in refused:
        answer = post(stack, data, content_type)
        assert answer.status_code == status, (data[:60], answer.text)
        assert problem(answer)["code"] == code
    assert written(stack) == set(), "a refused request wrote to the table"


def test_a_body_in_any_encoding_it_says_is_the_same_request(stack: EmbeddedStack) -> None:
    """PowerShell's Out-File writes UTF-16LE with a byte order mark; Set-Content -Encoding UTF8, UTF-8
    with one."""
    body = later(f"sched-enc-{uuid.uuid4().hex[:8]}")
    text = json.dumps(body)
    key = f"enc-{uuid.uuid4()}"
    first = post(stack, text.encode(), "Application/JSON; Charset=UTF-8", key)
    assert first.status_code == 202, first.text
    for data, content_type in [
        (codecs.BOM_UTF8 + text.encode(), JSON),
        (text.encode("utf-16"), JSON),
        (text.encode("utf-32"), "application/problem+json"),
        (text.encode("utf-16-be"), "application/json;charset=UTF-16"),
    ]:
        again = post(stack, data, content_type, key)  # the same request: replayed, not refused
        assert (again.status_code, again.json()) == (202, first.json()), again.text
        assert again.headers["Idempotent-Replayed"] == "true"
    requests.post(
        f"{stack.api_url}/publishes/{first.json()['publishId']}/cancel", auth=stack.auth, timeout=30
    )


def _raw(stack: EmbeddedStack, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send bytes as they are; the status, headers and body of the answer (the connection then closes)."""
    url = urlsplit(stack.api_url)
    with socket.create_connection((url.hostname, url.port), timeout=10) as connection:
        connection.sendall(request)
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = connection.recv(65536)
            assert chunk, f"the connection closed without an answer: {received!r}"
            received += chunk
        head, _, body = received.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines[1:])
        while len(body) < int(headers["Content-Length"]):
            chunk = connection.recv(65536)
            assert chunk
            body += chunk
        return int(lines[0].split()[1]), headers, body


@pytest.mark.parametrize(
    ("length", "status"),
    [
        ("abc", 400),
        ("-5", 400),
        ("-1", 400),  # read(-1) read until the client gave up: the connection hung
        ("+19", 400),
        ("1e3", 400),
        ("19, 19", 400),
        (" ", 400),
        ("99999999999999999999", 413),  # OverflowError: the connection closed
    ],
)
def test_a_content_length_that_is_no_number_of_bytes_is_answered(
    stack: EmbeddedStack, length: str, status: int
) -> None:
    body = json.dumps({"scheduleId": "s"}).encode()
    assert len(body) == 19
    signed = signed_headers(stack.hmac_secret, "POST", "/publishes", body, time.time())
    head = [
        "POST /publishes HTTP/1.1",
        "Host: localhost",
        f"Content-Type: {JSON}",
        "Idempotency-Key: cl-1",
        *(f"{k}: {v}" for k, v in signed.items()),
        f"Content-Length: {length}",
    ]
    answer, headers, payload = _raw(stack, ("\r\n".join(head) + "\r\n\r\n").encode() + body)
    assert answer == status, payload
    refused = json.loads(payload)
    assert refused["code"] and "Content-Length" in refused["message"], refused
    assert headers.get("Connection") == "close"


def test_a_malformed_chunked_body_is_a_400(stack: EmbeddedStack) -> None:
    head = [
        "POST /publishes HTTP/1.1",
        "Host: localhost",
        f"Content-Type: {JSON}",
        "Transfer-Encoding: chunked",
    ]
    answer, _, payload = _raw(stack, ("\r\n".join(head) + "\r\n\r\nzz\r\n{}\r\n0\r\n\r\n").encode())
    assert answer == 400 and "chunk" in json.loads(payload)["message"]


def test_a_burst_of_twenty_signed_requests_is_answered_every_one(stack: EmbeddedStack) -> None:
    """The front's listen backlog was 5: twenty requests at once had connections reset."""
    count = 20
    ready = threading.Barrier(count)
    answers: list[Any] = [None] * count

    def send(index: int) -> None:
        body = later(f"sched-burst-{uuid.uuid4().hex[:8]}")
        ready.wait()
        try:
            answers[index] = requests.post(
                f"{stack.api_url}/publishes",
                json=body,
                headers={"Idempotency-Key": str(uuid.uuid4())},
                auth=stack.auth,
                timeout=60,
            ).status_code
        except requests.RequestException as exc:
            answers[index] = repr(exc)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [202] * count, answers


def test_no_answer_shows_a_trace(stack: EmbeddedStack) -> None:
    answer = post(stack, b"[" * 5000 + b"]" * 5000)
    assert not re.search(r"Traceback|RecursionError|File \"", answer.text)
