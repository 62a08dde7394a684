"""A fault-injecting HTTP proxy for the AWS boundary: the local stack's boto3 calls go through it to
moto server, and a seeded plan decides, per request, what goes wrong on the way.

    plan = FaultPlan([FaultRule(FaultKind.LOST_AFTER_COMMIT, 0.2, "dynamodb", {"PutItem"})], seed=7)
    with FaultProxy(moto_url, plan) as proxy:
        boto3.client("dynamodb", endpoint_url=proxy.url).put_item(...)   # botocore retries as on AWS
        print(proxy.report())

The faults are the ones production has, at the places they hurt:

- LOST_AFTER_COMMIT: the request is forwarded (moto commits it), then the connection is closed
  without an answer. botocore sees a dropped connection and sends the same request again: a
  conditional write meets its own first attempt, an SQS send is delivered twice.
- ERROR_AFTER_COMMIT: forwarded and committed, answered 500 instead (retried the same way).
- ERROR_BEFORE: answered 5xx without forwarding: nothing was committed.
- THROTTLE: the service's own throttling error without forwarding (DynamoDB 400
  ProvisionedThroughputExceededException or ThrottlingException; SQS 403 RequestThrottled; others 400
  ThrottlingException), which botocore retries with backoff.
- LATENCY: forwarded after a pause (uniform in 0..delay seconds); combines with the others.

The service is the JSON protocol's X-Amz-Target prefix (DynamoDB_20120810, AmazonSQS, secretsmanager,
DynamoDBStreams_20120810), else the SigV4 credential scope; the operation is the target's suffix (or a
query protocol's Action). Each rule has a probability, an optional service and operations, and an
optional limit. So that every call can still succeed within botocore's retries, a request that was
faulted `max_in_a_row` times running (the same service, operation and body) is let through once.
Everything injected is counted by kind, service and operation (`counts`, `report`).

The proxy listens on 127.0.0.1 only and forwards to 127.0.0.1 only (a target elsewhere is refused),
and it stops by itself after `lifetime` seconds if nobody stops it.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from http.server import BaseHTTPRequestHandler
from typing import Self
from urllib.parse import parse_qs, urlsplit

from wfm_publish_local.http import HttpFront, handler_class

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
_TARGET_SERVICES = {
    "DynamoDB_20120810": "dynamodb",
    "DynamoDBStreams_20120810": "dynamodbstreams",
    "AmazonSQS": "sqs",
    "secretsmanager": "secretsmanager",
}
_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/[^/]+/([^/]+)/aws4_request")
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "content-length",
}


class FaultKind(StrEnum):
    LOST_AFTER_COMMIT = "lost_after_commit"
    ERROR_AFTER_COMMIT = "error_after_commit"
    ERROR_BEFORE = "error_before"
    THROTTLE = "throttle"
    LATENCY = "latency"


@dataclass(frozen=True)
class FaultRule:
    """`kind` with `probability` on requests of `service` (None: any) and `operations` (empty: any).

    delay: LATENCY's most (seconds). status: ERROR_*'s answer. throttle_code: THROTTLE's DynamoDB
    error (ProvisionedThroughputExceededException or ThrottlingException). limit: inject at most this
    many times."""

    kind: FaultKind
    probability: float
    service: str | None = None
    operations: Collection[str] = ()
    delay: float = 0.0
    status: int = 500
    throttle_code: str = "ProvisionedThroughputExceededException"
    limit: int | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError(f"probability must be within 0..1, got {self.probability}")
        if self.kind in (FaultKind.ERROR_BEFORE, FaultKind.ERROR_AFTER_COMMIT) and self.status < 500:
            raise ValueError("an injected error is a 5xx (a 4xx is an answer, not a fault)")

    def applies(self, service: str, operation: str) -> bool:
        return (self.service is None or self.service == service) and (
            not self.operations or operation in self.operations
        )


@dataclass
class FaultPlan:
    """The rules, drawn from a seeded random generator (one draw per rule per request, in order; the
    first non-latency rule that fires decides)."""

    rules: list[FaultRule]
    seed: int = 0
    max_in_a_row: int = 2
    _rng: random.Random = field(init=False, repr=False)
    _used: Counter[int] = field(init=False, repr=False, default_factory=Counter)
    _in_a_row: dict[str, int] = field(init=False, repr=False, default_factory=dict)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def choose(self, service: str, operation: str, body: bytes) -> tuple[FaultRule | None, float]:
        """The fault for this request (or None) and the latency to add. Not thread-safe: the proxy
        calls it under its lock."""
        delay = 0.0
        chosen: FaultRule | None = None
        for index, rule in enumerate(self.rules):
            if not rule.applies(service, operation):
                continue
            if rule.limit is not None and self._used[index] >= rule.limit:
                continue
            if self._rng.random() >= rule.probability:
                continue
            if rule.kind is FaultKind.LATENCY:
                delay += self._rng.uniform(0.0, rule.delay)
                self._used[index] += 1
            elif chosen is None:
                chosen = rule
                self._used[index] += 1
        key = f"{service}.{operation}.{hashlib.sha256(body).hexdigest()}"
        if chosen is not None:
            # The same request faulted max_in_a_row times running goes through: botocore's retries
            # (3 to 10 attempts by mode and service) then always end in an answer.
            if self._in_a_row.get(key, 0) >= self.max_in_a_row:
                self._used[self.rules.index(chosen)] -= 1
                chosen = None
            else:
                self._in_a_row[key] = self._in_a_row.get(key, 0) + 1
        if chosen is None:
            self._in_a_row.pop(key, None)
        return chosen, delay


# The calls the functions and the event source pollers make; the stack's provisioning (CreateTable,
# CreateQueue, CreateSecret, ...) is not among them, so a plan on these leaves the start-up alone.
DATA_PLANE: Mapping[str, frozenset[str]] = {
    "dynamodb": frozenset({"GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "TransactWriteItems"}),
    "sqs": frozenset(
        {"SendMessage", "ReceiveMessage", "DeleteMessage", "DeleteMessageBatch", "ChangeMessageVisibility"}
    ),
}


def data_plane_plan(
    seed: int = 0,
    *,
    throttle: float = 0.08,
    error_before: float = 0.08,
    latency: float = 0.2,
    latency_seconds: float = 0.05,
    lost_sends: float = 0.1,
    lost_writes: float = 0.0,
) -> FaultPlan:
    """A plan for a run of the whole stack: on DynamoDB and SQS data-plane calls, throttling, 5xx
    before forwarding and latency; SQS sends whose answers are lost (a duplicate delivery) and deletes
    answered 500 after commit; DynamoDB writes whose answers are lost when `lost_writes` > 0."""
    rules: list[FaultRule] = []
    for service, operations in DATA_PLANE.items():
        rules += [
            FaultRule(FaultKind.THROTTLE, throttle, service, operations),
            FaultRule(FaultKind.ERROR_BEFORE, error_before, service, operations, status=503),
            FaultRule(FaultKind.LATENCY, latency, service, operations, delay=latency_seconds),
        ]
    rules += [
        FaultRule(FaultKind.LOST_AFTER_COMMIT, lost_sends, "sqs", {"SendMessage"}),
        FaultRule(FaultKind.ERROR_AFTER_COMMIT, lost_sends, "sqs", {"DeleteMessage", "DeleteMessageBatch"}),
    ]
    if lost_writes:
        rules.append(FaultRule(FaultKind.LOST_AFTER_COMMIT, lost_writes, "dynamodb", DATA_PLANE["dynamodb"]))
    return FaultPlan(rules, seed=seed)


class FaultProxy(HttpFront):
    """The proxy: `url` is what boto3 (AWS_ENDPOINT_URL) should use instead of `target`."""

    def __init__(
        self,
        target: str,
        plan: FaultPlan | Iterable[FaultRule] = (),
        *,
        port: int = 0,
        lifetime: float = 3600.0,
        timeout: float = 30.0,
    ) -> None:
        parts = urlsplit(target)
        if parts.scheme != "http" or parts.hostname not in (LOOPBACK, "localhost") or parts.port is None:
            raise ValueError(f"the fault proxy forwards to http://127.0.0.1:<port> only, not {target!r}")
        self.target_port = parts.port
        self.plan = plan if isinstance(plan, FaultPlan) else FaultPlan(list(plan))
        self.lifetime = lifetime
        self.timeout = timeout
        self.injected: Counter[tuple[str, str, str]] = Counter()  # (kind, service, operation)
        self.forwarded: Counter[tuple[str, str]] = Counter()  # (service, operation)
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        super().__init__(handler_class(self._serve, log, "faultproxy"), LOOPBACK, port, "fault-proxy")

    # ------------------------------------------------------------ lifecycle

    def start(self) -> Self:
        super().start()
        if self._timer is None:
            # Stops by itself: a forgotten proxy never outlives its run.
            self._timer = threading.Timer(self.lifetime, self.stop)
            self._timer.daemon = True
            self._timer.start()
        return self

    def stop(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None and timer is not threading.current_thread():
            timer.cancel()
        super().stop()

    # ------------------------------------------------------------ what happened

    def counts(self) -> dict[str, dict[str, int]]:
        """Injected faults: kind -> "service.Operation" -> count."""
        with self._lock:
            out: dict[str, dict[str, int]] = {}
            for (kind, service, operation), count in sorted(self.injected.items()):
                out.setdefault(kind, {})[f"{service}.{operation}"] = count
            return out

    def total(self, kind: FaultKind | None = None) -> int:
        with self._lock:
            return sum(n for (k, _, _), n in self.injected.items() if kind is None or k == kind.value)

    def report(self) -> str:
        """One line per kind and operation, for a run to print."""
        counts = self.counts()
        with self._lock:
            forwarded = sum(self.forwarded.values())
        lines = [f"fault proxy: {forwarded} requests forwarded, {self.total()} faults injected"]
        for kind, per_operation in counts.items():
            for operation, count in per_operation.items():
                lines.append(f"  {kind:<20} {operation:<40} {count}")
        return "\n".join(lines)

    # ------------------------------------------------------------ serving

    def _serve(self, request: BaseHTTPRequestHandler) -> None:
        if request.headers.get("Transfer-Encoding", "").lower() == "chunked":
            self._answer(request, 501, {}, b"chunked bodies are not supported by the fault proxy")
            return
        body = request.rfile.read(int(request.headers.get("Content-Length") or 0))
        service, operation = identify(dict(request.headers.items()), body)
        with self._lock:
            rule, delay = self.plan.choose(service, operation, body)
            if delay:
                self.injected[(FaultKind.LATENCY.value, service, operation)] += 1
            if rule is not None:
                self.injected[(rule.kind.value, service, operation)] += 1
        if delay:
            time.sleep(delay)
        if rule is not None and rule.kind is FaultKind.THROTTLE:
            status, headers, payload = throttle_answer(service, rule.throttle_code)
            self._answer(request, status, headers, payload)
            return
        if rule is not None and rule.kind is FaultKind.ERROR_BEFORE:
            self._answer(request, rule.status, *_error_answer(rule.status))
            return
        try:
            status, headers, payload = self._forward(request, body)
        except OSError as exc:
            log.warning("fault proxy: the target did not answer %s.%s: %s", service, operation, exc)
            self._answer(request, 502, *_error_answer(502))
            return
        with self._lock:
            self.forwarded[(service, operation)] += 1
        if rule is not None and rule.kind is FaultKind.LOST_AFTER_COMMIT:
            request.close_connection = True  # committed, and the answer never arrives
            return
        if rule is not None and rule.kind is FaultKind.ERROR_AFTER_COMMIT:
            self._answer(request, rule.status, *_error_answer(rule.status))
            return
        self._answer(request, status, headers, payload)

    def _forward(self, request: BaseHTTPRequestHandler, body: bytes) -> tuple[int, dict[str, str], bytes]:
        connection = http.client.HTTPConnection(LOOPBACK, self.target_port, timeout=self.timeout)
        try:
            headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
            headers["Content-Length"] = str(len(body))
            connection.request(request.command, request.path, body=body, headers=headers)
            response = connection.getresponse()
            payload = response.read()
            answer = {k: v for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP}
            return response.status, answer, payload
        finally:
            connection.close()

    @staticmethod
    def _answer(
        request: BaseHTTPRequestHandler, status: int, headers: Mapping[str, str], payload: bytes
    ) -> None:
        request.send_response_only(status)
        for name, value in headers.items():
            request.send_header(name, value)
        request.send_header("Content-Length", str(len(payload)))
        request.end_headers()
        if request.command != "HEAD":
            request.wfile.write(payload)


def identify(headers: Mapping[str, str], body: bytes) -> tuple[str, str]:
    """(service, operation) of an AWS request: from X-Amz-Target (JSON protocols), else the SigV4
    scope and a query protocol's Action."""
    lower = {k.lower(): v for k, v in headers.items()}
    target = lower.get("x-amz-target") or ""
    if "." in target:
        prefix, operation = target.rsplit(".", 1)
        return _TARGET_SERVICES.get(prefix, prefix.lower()), operation
    scope = _SCOPE.search(lower.get("authorization") or "")
    service = scope.group(1) if scope else "unknown"
    action = parse_qs(body.decode("utf-8", "replace")).get("Action", [""])[0]
    return service, action or "unknown"


def throttle_answer(service: str, dynamodb_code: str) -> tuple[int, dict[str, str], bytes]:
    """The throttling error each service answers (the shape botocore's retry handlers recognise)."""
    message = "Rate exceeded (injected by the fault proxy)"
    if service in ("dynamodb", "dynamodbstreams"):
        body = {"__type": f"com.amazonaws.dynamodb.v20120810#{dynamodb_code}", "message": message}
        return 400, {"Content-Type": "application/x-amz-json-1.0"}, json.dumps(body).encode()
    if service == "sqs":
        # SQS's JSON protocol is query-compatible: botocore takes the code from x-amzn-query-error.
        body = {"__type": "com.amazonaws.sqs#RequestThrottled", "message": message}
        headers = {
            "Content-Type": "application/x-amz-json-1.0",
            "x-amzn-query-error": "RequestThrottled;Sender",
        }
        return 403, headers, json.dumps(body).encode()
    body = {"__type": "ThrottlingException", "message": message}
    return 400, {"Content-Type": "application/x-amz-json-1.1"}, json.dumps(body).encode()


def _error_answer(status: int) -> tuple[dict[str, str], bytes]:
    body = {"__type": "InternalFailure", "message": f"injected {status} (fault proxy)"}
    return {"Content-Type": "application/x-amz-json-1.0"}, json.dumps(body).encode()
