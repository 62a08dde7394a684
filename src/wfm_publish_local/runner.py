"""The local runner: what Lambda, API Gateway, SQS event sources and EventBridge Scheduler do, in-process.

`sam local` needs Docker; this does not. Each function of template.yaml is loaded from its CodeUri and
called with real-format events and a Lambda context object:

* `ApiFront`: an HTTP server that turns requests into API Gateway REST (v1) proxy events, answers with
  the handler's statusCode/headers/body, 403 "Missing Authentication Token" for an unknown route and
  502 "Internal server error" when the handler raises or answers something malformed.
* `SqsPoller`: one thread per SQS event source; ReceiveMessage, SQS batch event, and the Lambda rules
  for what gets deleted (ReportBatchItemFailures: all but the listed records; an exception: nothing).
* `schedule_input`: the payload EventBridge Scheduler delivers for a ScheduleV2 event (its Input).
* `EmfCapture`: what CloudWatch would make of the functions' output: the embedded-metric-format lines
  they print are kept (and summed by `metric_totals`) instead of going to the console.
* `EventCapture`: the events the functions put on the default EventBridge bus (moto's), kept for reading.
* `CrashPlan`: optional, seeded worker deaths: an invocation dies at a drawn point among its AWS calls
  (before or after one), as a Lambda that was killed; its SQS records come back after the visibility
  timeout, its stream batch is retried, its API request answers 502.

`stack.LocalStack` wires these to the moto server and the resources built from the template.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import importlib.util
import io
import json
import logging
import random
import re
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar, cast
from urllib.parse import parse_qsl, unquote, urlsplit

from wfm_publish_local.http import LocalHttpServer
from wfm_publish_local.template import FunctionSpec, SqsEvent, StreamEvent

if TYPE_CHECKING:
    from mypy_boto3_dynamodbstreams import DynamoDBStreamsClient
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageTypeDef

__all__ = [
    "ApiFront",
    "CrashPlan",
    "EmfCapture",
    "EventCapture",
    "FunctionCrashed",
    "FunctionTimeoutError",
    "LambdaContext",
    "LocalFunction",
    "Route",
    "SqsPoller",
    "StreamPoller",
    "api_gateway_event",
    "batch_item_failures",
    "filter_matches",
    "metric_totals",
    "schedule_input",
    "sqs_event",
    "stream_failure_record",
    "stream_record",
    "wait_until",
]

log = logging.getLogger(__name__)

ACCOUNT_ID = "123456789012"

Handler = Callable[[Any, Any], Any]
T = TypeVar("T")


# ---------------------------------------------------------------- functions


@dataclass
class LambdaContext:
    """The context object Lambda passes to a Python handler (the attributes Powertools reads)."""

    function_name: str
    memory_limit_in_mb: int
    invoked_function_arn: str
    aws_request_id: str
    timeout_seconds: int
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = ""
    identity: Any = None
    client_context: Any = None
    _deadline: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        if not self._deadline:
            self._deadline = time.monotonic() + self.timeout_seconds
        if not self.log_group_name:
            self.log_group_name = f"/aws/lambda/{self.function_name}"
        if not self.log_stream_name:
            day = datetime.now(UTC).strftime("%Y/%m/%d")
            self.log_stream_name = f"{day}/[{self.function_version}]{uuid.uuid4().hex}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class FunctionTimeoutError(RuntimeError):
    """The handler ran past the function's Timeout: Lambda would have stopped it and reported an error."""


class WorkerCrash(BaseException):
    """Raised inside a handler by a CrashPlan. A BaseException, so no `except Exception` in the code
    under test can catch it and carry on: the invocation ends there, like a Lambda that was killed."""


class FunctionCrashed(RuntimeError):
    """What the runner reports for an invocation that a CrashPlan killed (the event source then does
    what Lambda does after a failed invocation)."""


class CrashPlan:
    """Seeded worker deaths. Each invocation of a function with a rate draws once: with that
    probability it dies at point k (uniform in 1..`most_points`), where the points are the moments
    before and after each AWS call it makes (botocore's before-call and after-call events). Dying
    after a call is dying after its commit, with the answer in hand and nothing done with it. An
    invocation that makes fewer calls than k does not die (only real deaths are counted).

    The hook is thread-local: concurrent invocations (API threads, pollers) each count their own
    calls, and AWS calls made outside an invocation (the test's own clients) never die.

        plan = CrashPlan({"TrunkValidationFunction": 0.1}, seed=3)
        LocalStack(..., crash=plan)          # installs the hook on boto3's default session
        plan.crashes                         # Counter: function -> deaths
    """

    def __init__(
        self,
        rates: Mapping[str, float],
        seed: int = 0,
        most_points: int = 16,
        script: Mapping[str, Sequence[int]] | None = None,
    ) -> None:
        """script: function -> the points at which its first invocations die, in order (0: lives), before
        any draw: a reproduction of one death at one place."""
        for name, rate in rates.items():
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name}: a crash rate is within 0..1, got {rate}")
        if most_points < 1:
            raise ValueError("most_points must be at least 1")
        self.rates = dict(rates)
        self.most_points = most_points
        self.crashes: Counter[str] = Counter()  # function -> invocations that died
        self.points: Counter[str] = Counter()  # "before"/"after" -> where they died
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._local = threading.local()
        self._installed: list[Any] = []
        self._script = {name: list(points) for name, points in (script or {}).items()}

    def install(self, events: Any) -> None:
        """Hook into an event emitter (`boto3.DEFAULT_SESSION.events`): clients created from it
        afterwards carry the hook (botocore copies the session's handlers into each client)."""
        tag = f"crash-plan-{id(self)}"
        events.register("before-call", self._before, unique_id=f"{tag}-before")
        events.register("after-call", self._after, unique_id=f"{tag}-after")
        self._installed.append(events)

    def uninstall(self) -> None:
        tag = f"crash-plan-{id(self)}"
        for events in self._installed:
            events.unregister("before-call", unique_id=f"{tag}-before")
            events.unregister("after-call", unique_id=f"{tag}-after")
        self._installed = []

    def total(self) -> int:
        with self._lock:
            return sum(self.crashes.values())

    @contextmanager
    def invocation(self, logical_id: str) -> Iterator[None]:
        """Arm the plan for one invocation on this thread (drawn under the lock: one draw per call)."""
        rate = self.rates.get(logical_id, 0.0)
        with self._lock:
            scripted = self._script.get(logical_id)
            if scripted:
                point = scripted.pop(0)
            else:
                point = self._rng.randint(1, self.most_points) if rate and self._rng.random() < rate else 0
        self._local.function, self._local.left = logical_id, point
        try:
            yield
        finally:
            self._local.left = 0

    def _before(self, **_: Any) -> None:
        self._tick("before")

    def _after(self, **_: Any) -> None:
        self._tick("after")

    def _tick(self, where: str) -> None:
        left = getattr(self._local, "left", 0)
        if not left:
            return
        self._local.left = left - 1
        if left == 1:
            with self._lock:
                self.crashes[self._local.function] += 1
                self.points[where] += 1
            raise WorkerCrash(f"{self._local.function} died {where} an AWS call (crash plan)")


class LocalFunction:
    """One function of the template, loaded lazily from `<CodeUri>/<module>.py`, invoked in-process."""

    def __init__(
        self,
        spec: FunctionSpec,
        code_dir: Path,
        physical_name: str,
        *,
        module_prefix: str,
        region: str = "us-east-1",
        enforce_timeout: bool = True,
        crash: CrashPlan | None = None,
    ) -> None:
        self.spec = spec
        self.crash = crash
        self.code_dir = code_dir
        self.physical_name = physical_name
        self.region = region
        self.enforce_timeout = enforce_timeout
        self.arn = f"arn:aws:lambda:{region}:{ACCOUNT_ID}:function:{physical_name}"
        module_slug = re.sub(r"\W", "_", spec.handler_module)
        self.module_name = f"{module_prefix}_{spec.logical_id}_{module_slug}"
        self.invocations = 0
        self.errors = 0
        self.output: EmfCapture | None = None  # installed as sys.stdout before each invocation
        self._handler: Handler | None = None
        self._lock = threading.Lock()

    @property
    def logical_id(self) -> str:
        return self.spec.logical_id

    @property
    def handler(self) -> Handler:
        with self._lock:
            if self._handler is None:
                self._handler = self._load()
            return self._handler

    def _load(self) -> Handler:
        path = self.code_dir / (self.spec.handler_module.replace(".", "/") + ".py")
        if not path.is_file():
            raise FileNotFoundError(f"{self.logical_id}: handler module {path} does not exist")
        spec = importlib.util.spec_from_file_location(self.module_name, path)
        if spec is None or spec.loader is None:  # pragma: no cover - a .py file always has a loader
            raise ImportError(f"cannot load {path}")
        module: ModuleType = importlib.util.module_from_spec(spec)
        sys.modules[self.module_name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(self.module_name, None)
            raise
        handler = getattr(module, self.spec.handler_function, None)
        if not callable(handler):
            raise AttributeError(f"{self.logical_id}: {path} has no callable {self.spec.handler_function!r}")
        return cast(Handler, handler)

    def unload(self) -> None:
        with self._lock:
            self._handler = None
            sys.modules.pop(self.module_name, None)

    def context(self) -> LambdaContext:
        return LambdaContext(
            function_name=self.physical_name,
            memory_limit_in_mb=self.spec.memory_size,
            invoked_function_arn=self.arn,
            aws_request_id=str(uuid.uuid4()),
            timeout_seconds=self.spec.timeout,
        )

    def invoke(self, event: Any) -> Any:
        """Call the handler as Lambda would. Raises what the handler raises, or FunctionTimeoutError
        when it ran longer than the function's Timeout (its result is then thrown away, as Lambda
        would never have seen it)."""
        handler = self.handler
        context = self.context()
        if self.output is not None:
            self.output.install()
        with self._lock:
            self.invocations += 1
        started = time.monotonic()
        try:
            if self.crash is None:
                result = handler(event, context)
            else:
                with self.crash.invocation(self.logical_id):
                    result = handler(event, context)
        except WorkerCrash as crash:
            with self._lock:
                self.errors += 1
            raise FunctionCrashed(f"{self.logical_id}: {crash}") from None
        except Exception:
            with self._lock:
                self.errors += 1
            raise
        elapsed = time.monotonic() - started
        if self.enforce_timeout and elapsed > self.spec.timeout:
            with self._lock:
                self.errors += 1
            raise FunctionTimeoutError(
                f"{self.logical_id}: Task timed out after {elapsed:.2f} seconds (Timeout {self.spec.timeout})"
            )
        return result


# ---------------------------------------------------------------- API Gateway (REST, v1 proxy)


@dataclass(frozen=True)
class Route:
    """One Api event: method + resource path (`/publishes/{publishId}`) -> function."""

    method: str
    resource: str
    function: LocalFunction
    stage: str
    pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)
    names: tuple[str, ...] = field(init=False, repr=False, compare=False)
    literal_segments: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        parts: list[str] = []
        names: list[str] = []
        literals = 0
        for segment in self.resource.strip("/").split("/"):
            if not segment:
                continue
            greedy = re.fullmatch(r"\{(.+)\+\}", segment)
            param = re.fullmatch(r"\{(.+)\}", segment)
            if greedy:
                names.append(greedy.group(1))
                parts.append(f"(?P<p{len(names) - 1}>.+)")
            elif param:
                names.append(param.group(1))
                parts.append(f"(?P<p{len(names) - 1}>[^/]+)")
            else:
                literals += 1
                parts.append(re.escape(segment))
        object.__setattr__(self, "pattern", re.compile("^/" + "/".join(parts) + "/?$"))
        object.__setattr__(self, "names", tuple(names))
        object.__setattr__(self, "literal_segments", literals)

    def match(self, method: str, path: str) -> dict[str, str] | None:
        if self.method not in {"ANY", method}:
            return None
        found = self.pattern.match(path)
        if found is None:
            return None
        return {name: found.group(f"p{i}") for i, name in enumerate(self.names)}


def api_gateway_event(
    *,
    method: str,
    path: str,
    resource: str,
    path_parameters: Mapping[str, str] | None,
    headers: Sequence[tuple[str, str]],
    query: Sequence[tuple[str, str]],
    body: bytes,
    stage: str,
    source_ip: str = "127.0.0.1",
    api_id: str = "local",
    request_id: str | None = None,
) -> dict[str, Any]:
    """An API Gateway REST API (payload format 1.0) Lambda proxy event, as API Gateway builds it."""
    single_headers: dict[str, str] = {}
    multi_headers: dict[str, list[str]] = {}
    for name, value in headers:
        single_headers[name] = value
        multi_headers.setdefault(name, []).append(value)
    single_query: dict[str, str] = {}
    multi_query: dict[str, list[str]] = {}
    for name, value in query:
        single_query[name] = value
        multi_query.setdefault(name, []).append(value)
    text: str | None
    if not body:
        text, is_base64 = None, False
    else:
        try:
            text, is_base64 = body.decode("utf-8"), False
        except UnicodeDecodeError:
            text, is_base64 = base64.b64encode(body).decode("ascii"), True
    now = datetime.now(UTC)
    user_agent = next((v for k, v in headers if k.lower() == "user-agent"), None)
    host = next((v for k, v in headers if k.lower() == "host"), "localhost")
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": single_headers or None,
        "multiValueHeaders": multi_headers or None,
        "queryStringParameters": single_query or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": dict(path_parameters) if path_parameters else None,
        "stageVariables": None,
        "requestContext": {
            "accountId": ACCOUNT_ID,
            "apiId": api_id,
            "resourceId": hashlib.sha1(resource.encode(), usedforsecurity=False).hexdigest()[:6],
            "resourcePath": resource,
            "httpMethod": method,
            "path": f"/{stage}{path}",
            "stage": stage,
            "protocol": "HTTP/1.1",
            "domainName": host,
            "requestId": request_id or str(uuid.uuid4()),
            "extendedRequestId": uuid.uuid4().hex[:16],
            "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "requestTimeEpoch": int(now.timestamp() * 1000),
            "identity": {
                "cognitoIdentityPoolId": None,
                "accountId": None,
                "cognitoIdentityId": None,
                "caller": None,
                "accessKey": None,
                "sourceIp": source_ip,
                "cognitoAuthenticationType": None,
                "cognitoAuthenticationProvider": None,
                "userArn": None,
                "userAgent": user_agent,
                "user": None,
            },
        },
        "body": text,
        "isBase64Encoded": is_base64,
    }


class MalformedProxyResponseError(ValueError):
    """The handler's answer is not a Lambda proxy response (API Gateway answers 502)."""


def proxy_response(result: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers and body API Gateway would send for a Lambda proxy response."""
    if not isinstance(result, dict) or "statusCode" not in result:
        raise MalformedProxyResponseError(f"not a proxy response: {result!r:.200}")
    try:
        status = int(result["statusCode"])
    except (TypeError, ValueError) as exc:
        raise MalformedProxyResponseError(f"bad statusCode {result['statusCode']!r}") from exc
    raw_body = result.get("body")
    if raw_body is None:
        body = b""
    elif not isinstance(raw_body, str):
        raise MalformedProxyResponseError("body must be a string")
    elif result.get("isBase64Encoded"):
        body = base64.b64decode(raw_body)
    else:
        body = raw_body.encode("utf-8")
    multi = result.get("multiValueHeaders") or {}
    single = result.get("headers") or {}
    if not isinstance(multi, dict) or not isinstance(single, dict):
        raise MalformedProxyResponseError("headers and multiValueHeaders must be objects")
    # API Gateway merges both; a name present in multiValueHeaders takes its values from there.
    out: list[tuple[str, str]] = [(str(k), str(v)) for k, values in multi.items() for v in values]
    multi_lower = {str(k).lower() for k in multi}
    out += [(str(k), str(v)) for k, v in single.items() if str(k).lower() not in multi_lower]
    if not any(k.lower() == "content-type" for k, _ in out):
        out.append(("Content-Type", "application/json"))
    return status, out, body


def _read_body(request: BaseHTTPRequestHandler) -> bytes:
    if request.headers.get("Transfer-Encoding", "").lower() == "chunked":
        chunks: list[bytes] = []
        while True:
            size = int(request.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while request.rfile.readline() not in {b"\r\n", b"\n", b""}:
                    pass  # trailers
                return b"".join(chunks)
            chunks.append(request.rfile.read(size))
            request.rfile.readline()
    length = int(request.headers.get("Content-Length") or 0)
    return request.rfile.read(length) if length else b""


def _forwarded_headers(request: BaseHTTPRequestHandler, port: int) -> list[tuple[str, str]]:
    """The client's headers plus the ones API Gateway adds (X-Forwarded-*, X-Amzn-Trace-Id)."""
    headers = [(k, v) for k, v in request.headers.items() if k.lower() != "transfer-encoding"]
    present = {k.lower() for k, _ in headers}
    forwarded = [v for k, v in headers if k.lower() == "x-forwarded-for"]
    client_ip = request.client_address[0]
    headers = [(k, v) for k, v in headers if k.lower() != "x-forwarded-for"]
    headers.append(("X-Forwarded-For", ", ".join([*forwarded, client_ip])))
    if "x-forwarded-port" not in present:
        headers.append(("X-Forwarded-Port", str(port)))
    if "x-forwarded-proto" not in present:
        headers.append(("X-Forwarded-Proto", "http"))
    if "x-amzn-trace-id" not in present:
        headers.append(("X-Amzn-Trace-Id", f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]}"))
    return headers


class ApiFront:
    """API Gateway in front of the functions' Api events, on a ThreadingHTTPServer.

    Paths are served without the stage prefix (as `sam local start-api` does); the event's
    requestContext.stage and requestContext.path carry the stage.
    """

    def __init__(self, routes: Iterable[Route], host: str = "127.0.0.1", port: int = 0) -> None:
        # Most specific first: API Gateway prefers literal segments over {params} and {proxy+}.
        self.routes = sorted(routes, key=lambda r: (-r.literal_segments, len(r.names)))
        front = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = "wfm-publish-local-apigateway"

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("api %s", format % args)

            def _serve(self) -> None:
                front.serve(self)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_TRACE = _serve

            def __getattr__(self, name: str) -> Any:
                # Any other method (QUERY, PROPFIND, ...) is routed too, so it gets API Gateway's
                # answer (403 for a method the resource does not have), not http.server's 501.
                if name.startswith("do_") and name[3:].isalpha():
                    return self._serve
                raise AttributeError(name)

        self._http = LocalHttpServer(_Handler, host, port, "api-front")

    @property
    def url(self) -> str:
        return self._http.url

    def start(self) -> None:
        self._http.start()

    def stop(self) -> None:
        self._http.stop()

    def find(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        for route in self.routes:
            params = route.match(method, path)
            if params is not None:
                return route, params
        return None

    def serve(self, request: BaseHTTPRequestHandler) -> None:
        request_id = str(uuid.uuid4())
        split = urlsplit(request.path)
        path = unquote(split.path) or "/"
        body = _read_body(request)
        found = self.find(request.command, path)
        if found is None:
            self._send(
                request,
                403,
                [("x-amzn-ErrorType", "MissingAuthenticationTokenException")],
                b'{"message":"Missing Authentication Token"}',
                request_id,
            )
            return
        route, params = found
        event = api_gateway_event(
            method=request.command,
            path=path,
            resource=route.resource,
            path_parameters=params,
            headers=_forwarded_headers(request, self._http.port),
            query=parse_qsl(split.query, keep_blank_values=True),
            body=body,
            stage=route.stage,
            source_ip=request.client_address[0],
            request_id=request_id,
        )
        try:
            status, headers, payload = proxy_response(route.function.invoke(event))
        except Exception:
            log.exception("%s failed on %s %s", route.function.logical_id, request.command, path)
            self._send(
                request,
                502,
                [("x-amzn-ErrorType", "InternalServerErrorException")],
                b'{"message": "Internal server error"}',
                request_id,
            )
            return
        self._send(request, status, headers, payload, request_id)

    @staticmethod
    def _send(
        request: BaseHTTPRequestHandler,
        status: int,
        headers: Sequence[tuple[str, str]],
        body: bytes,
        request_id: str,
    ) -> None:
        request.send_response(status)
        names = {k.lower() for k, _ in headers}
        for name, value in headers:
            if name.lower() not in {"content-length", "connection", "date", "server"}:
                request.send_header(name, value)
        if "content-type" not in names:
            request.send_header("Content-Type", "application/json")
        request.send_header("x-amzn-RequestId", request_id)
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        if request.command != "HEAD":
            request.wfile.write(body)


# ---------------------------------------------------------------- SQS event source


def _message_attributes(message: MessageTypeDef) -> dict[str, Any]:
    """SQS ReceiveMessage attributes -> the lowerCamel shape Lambda's SQS records carry."""
    out: dict[str, Any] = {}
    for name, value in (message.get("MessageAttributes") or {}).items():
        binary = value.get("BinaryValue")
        out[name] = {
            "stringValue": value.get("StringValue"),
            "binaryValue": base64.b64encode(binary).decode("ascii") if binary is not None else None,
            "stringListValues": list(value.get("StringListValues") or []),
            "binaryListValues": [
                base64.b64encode(b).decode("ascii") for b in value.get("BinaryListValues") or []
            ],
            "dataType": value.get("DataType"),
        }
        out[name] = {k: v for k, v in out[name].items() if v is not None}
    return out


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def sqs_event(
    messages: Sequence[MessageTypeDef], queue_arn: str, region: str = "us-east-1"
) -> dict[str, Any]:
    """The event Lambda's SQS event source mapping delivers for a batch of received messages."""
    records: list[dict[str, Any]] = []
    for message in messages:
        body = message.get("Body", "")
        record: dict[str, Any] = {
            "messageId": message.get("MessageId", ""),
            "receiptHandle": message.get("ReceiptHandle", ""),
            "body": body,
            "attributes": dict(message.get("Attributes") or {}),
            "messageAttributes": _message_attributes(message),
            "md5OfBody": message.get("MD5OfBody") or _md5(body),
            "eventSource": "aws:sqs",
            "eventSourceARN": queue_arn,
            "awsRegion": region,
        }
        if "MD5OfMessageAttributes" in message:
            record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
        records.append(record)
    return {"Records": records}


def batch_item_failures(result: Any, message_ids: Iterable[str]) -> set[str] | None:
    """The message ids a ReportBatchItemFailures response asks to keep, or None when Lambda would
    treat the whole batch as failed (an invalid response, an unknown or empty itemIdentifier)."""
    ids = set(message_ids)
    if result is None:
        return set()
    if not isinstance(result, dict):
        return None
    failures = result.get("batchItemFailures")
    if failures is None:
        return set()
    if not isinstance(failures, list):
        return None
    failed: set[str] = set()
    for item in failures:
        identifier = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not isinstance(identifier, str) or identifier not in ids:
            return None
        failed.add(identifier)
    return failed


class _PollingThread:
    """An event source mapping's thread: polls until stopped; `stop` waits for the batch in hand."""

    def __init__(self, name: str) -> None:
        self._stop = threading.Event()
        self._busy = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def request_stop(self) -> None:
        """Ask the thread to stop; it finishes the batch in hand, if any (see stop)."""
        self._stop.set()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop polling and wait for the batch in hand to be finished. A long poll in progress is not
        waited for: whatever it brings back is left where it was."""
        self._stop.set()
        if self._busy.acquire(timeout=timeout):
            self._busy.release()

    @property
    def running(self) -> bool:
        """The thread is alive (after stop, until the poll in progress returns)."""
        return self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._poll()
            except Exception:
                if self._stop.is_set():
                    break
                log.exception("poller %s failed", self._thread.name)
                self._stop.wait(0.5)

    def _poll(self) -> None:
        """One round: fetch, and deliver under `self._busy`."""
        raise NotImplementedError


class SqsPoller(_PollingThread):
    """One SQS event source mapping: a thread that receives batches and invokes the function."""

    def __init__(
        self,
        function: LocalFunction,
        source: SqsEvent,
        *,
        client: SQSClient,
        queue_url: str,
        queue_arn: str,
        region: str = "us-east-1",
        wait_seconds: int = 1,
    ) -> None:
        self.function = function
        self.source = source
        self.client = client
        self.queue_url = queue_url
        self.queue_arn = queue_arn
        self.region = region
        self.wait_seconds = wait_seconds
        self.batches = 0
        self.redeliveries = 0  # records received before (ApproximateReceiveCount > 1)
        super().__init__(f"sqs-{function.logical_id}-{source.name}")

    def _poll(self) -> None:
        messages = self._receive_batch()
        if not messages:
            return
        with self._busy:
            if not self._stop.is_set():
                self.process(messages)

    def _receive(self, count: int, wait: int) -> list[MessageTypeDef]:
        response = self.client.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=max(1, min(10, count)),
            WaitTimeSeconds=wait,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        return list(response.get("Messages", []))

    def _receive_batch(self) -> list[MessageTypeDef]:
        """Up to BatchSize messages. With a batching window Lambda keeps gathering until the batch is
        full or the window closes; locally it stops early as soon as the queue has nothing more."""
        messages = self._receive(self.source.batch_size, self.wait_seconds)
        if not messages or self.source.maximum_batching_window <= 0:
            return messages
        window_ends = time.monotonic() + self.source.maximum_batching_window
        while len(messages) < self.source.batch_size and time.monotonic() < window_ends:
            more = self._receive(self.source.batch_size - len(messages), 0)
            if not more:
                break
            messages += more
        return messages

    def process(self, messages: Sequence[MessageTypeDef]) -> None:
        """Invoke the function with one batch and delete what Lambda would delete."""
        self.batches += 1
        self.redeliveries += sum(
            1 for m in messages if int((m.get("Attributes") or {}).get("ApproximateReceiveCount", "1")) > 1
        )
        event = sqs_event(messages, self.queue_arn, self.region)
        ids = [m.get("MessageId", "") for m in messages]
        try:
            result = self.function.invoke(event)
        except Exception:
            log.exception(
                "%s failed; the whole batch of %d stays on the queue", self.function.logical_id, len(ids)
            )
            return
        keep: set[str] = set()
        if self.source.report_batch_item_failures:
            failed = batch_item_failures(result, ids)
            if failed is None:
                log.error(
                    "%s returned an invalid batchItemFailures response; the whole batch stays: %r",
                    self.function.logical_id,
                    result,
                )
                return
            keep = failed
        done = [m for m in messages if m.get("MessageId", "") not in keep]
        for start in range(0, len(done), 10):
            chunk = done[start : start + 10]
            self.client.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m.get("ReceiptHandle", "")} for i, m in enumerate(chunk)
                ],
            )


# ---------------------------------------------------------------- DynamoDB Streams event source


# EventBridge -> Lambda is an asynchronous invoke: Lambda retries a failed one twice.
EVENTBRIDGE_ATTEMPTS = 3


class EventRelay(_PollingThread):
    """A partner event bus's events, read from their source (`fetch(cursor)` -> (the events after
    the first `cursor`, how many there are in all)) and handed to `deliver` in order; the cursor
    moves past each one delivered (`deliver` does EventBridge's retries itself)."""

    def __init__(
        self,
        name: str,
        fetch: Callable[[int], tuple[list[dict[str, Any]], int]],
        deliver: Callable[[dict[str, Any]], object],
        poll_interval: float = 0.1,
    ) -> None:
        super().__init__(f"events-{name}")
        self._fetch = fetch
        self._deliver = deliver
        self._interval = poll_interval
        self.cursor = 0
        self.delivered = 0

    def _poll(self) -> None:
        events, total = self._fetch(self.cursor)
        if total < self.cursor:  # the source started over (the simulator was reset)
            self.cursor = 0
            events, total = self._fetch(0)
        with self._busy:
            for event in events:
                if self._stop.is_set():
                    return
                self._deliver(event)
                self.cursor += 1
                self.delivered += 1
        self._stop.wait(self._interval)


def rule_targets(
    functions: Iterable[LocalFunction], bus: str, event: Mapping[str, Any], resolve: Callable[[Any], str]
) -> list[LocalFunction]:
    """The functions whose EventBridgeRule on `bus` matches the event."""
    return [
        f
        for f in functions
        for rule in f.spec.rule_events
        if resolve(rule.event_bus) == bus and filter_matches(rule.pattern, event)
    ]


def invoke_async(function: LocalFunction, event: Any) -> bool:
    """An asynchronous invoke with Lambda's retries: True when an attempt succeeded."""
    for attempt in range(EVENTBRIDGE_ATTEMPTS):
        try:
            function.invoke(event)
        except Exception:
            log.warning("%s failed on an EventBridge event (attempt %d)", function.logical_id, attempt + 1)
            continue
        return True
    return False


class FilterPatternError(ValueError):
    """A FilterCriteria pattern uses syntax the local runner does not know."""


def filter_matches(pattern: Mapping[str, Any], event: Mapping[str, Any]) -> bool:
    """Lambda event filtering (the EventBridge pattern syntax) for one record: every key of the
    pattern must match; a list holds alternatives; {"prefix"}, {"suffix"}, {"anything-but"},
    {"exists"}, {"equals-ignore-case"} and {"numeric"} are the operators."""
    for key, expected in pattern.items():
        present = key in event
        value = event.get(key)
        if isinstance(expected, Mapping):
            if not isinstance(value, Mapping) or not filter_matches(expected, value):
                return False
        elif isinstance(expected, list):
            if not any(_rule_matches(rule, present, value) for rule in expected):
                return False
        else:
            raise FilterPatternError(f"pattern values must be lists or objects, got {expected!r} at {key!r}")
    return True


def _rule_matches(rule: Any, present: bool, value: Any) -> bool:  # noqa: PLR0911 - one branch per operator
    if not isinstance(rule, Mapping):
        if not present:
            return False
        return rule in value if isinstance(value, list) else bool(value == rule)
    if len(rule) != 1:
        raise FilterPatternError(f"one operator per rule, got {rule!r}")
    ((op, arg),) = rule.items()
    if op == "exists":
        return present is bool(arg)
    if not present:
        return False
    values = value if isinstance(value, list) else [value]
    if op == "prefix":
        return any(isinstance(v, str) and v.startswith(str(arg)) for v in values)
    if op == "suffix":
        return any(isinstance(v, str) and v.endswith(str(arg)) for v in values)
    if op == "equals-ignore-case":
        return any(isinstance(v, str) and v.lower() == str(arg).lower() for v in values)
    if op == "anything-but":
        if isinstance(arg, Mapping) and "prefix" in arg:
            return all(not (isinstance(v, str) and v.startswith(str(arg["prefix"]))) for v in values)
        excluded = arg if isinstance(arg, list) else [arg]
        return all(v not in excluded for v in values)
    if op == "numeric":
        return any(_numeric(v, arg) for v in values)
    raise FilterPatternError(f"unsupported filter operator {op!r}")


def _numeric(value: Any, conditions: list[Any]) -> bool:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return False
    compare = {
        "=": number.__eq__,
        "<": number.__lt__,
        "<=": number.__le__,
        ">": number.__gt__,
        ">=": number.__ge__,
    }
    pairs = zip(conditions[::2], conditions[1::2], strict=False)
    return all(compare[str(op)](float(bound)) for op, bound in pairs)


def stream_record(raw: Mapping[str, Any], stream_arn: str, region: str) -> dict[str, Any]:
    """A DynamoDB Streams GetRecords record -> the record Lambda's event carries."""
    record = json.loads(json.dumps(raw, default=str))
    created = raw.get("dynamodb", {}).get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        record["dynamodb"]["ApproximateCreationDateTime"] = int(created.timestamp())
    record.setdefault("eventVersion", "1.1")
    record.setdefault("eventSource", "aws:dynamodb")
    record["awsRegion"] = raw.get("awsRegion", region)
    record["eventSourceARN"] = stream_arn
    return dict(record)


def stream_failure_record(
    records: Sequence[Mapping[str, Any]],
    *,
    function_arn: str,
    stream_arn: str,
    shard_id: str,
    condition: str,
    invocations: int,
) -> dict[str, Any]:
    """What Lambda sends an OnFailure destination for a discarded stream batch: where the records are
    (shard and sequence numbers), not the records themselves."""
    first, last = records[0]["dynamodb"], records[-1]["dynamodb"]

    def arrival(image: Mapping[str, Any]) -> str:
        at = image.get("ApproximateCreationDateTime") or time.time()
        return (
            datetime.fromtimestamp(float(at), UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        )

    return {
        "requestContext": {
            "requestId": str(uuid.uuid4()),
            "functionArn": function_arn,
            "condition": condition,
            "approximateInvokeCount": invocations,
        },
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "version": "1.0",
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "DDBStreamBatchInfo": {
            "shardId": shard_id,
            "startSequenceNumber": first["SequenceNumber"],
            "endSequenceNumber": last["SequenceNumber"],
            "approximateArrivalOfFirstRecord": arrival(first),
            "approximateArrivalOfLastRecord": arrival(last),
            "batchSize": len(records),
            "streamArn": stream_arn,
        },
    }


class StreamPoller(_PollingThread):
    """One DynamoDB event source mapping: a thread that reads the table's stream, filters the records
    with the mapping's FilterCriteria and invokes the function with batches, as Lambda does:

    * a batch that fails (the function raises, or answers an invalid batchItemFailures) is split in two
      with BisectBatchOnFunctionError, which costs no retry; a batch of one is retried;
    * with ReportBatchItemFailures the records before the first failed one are done, and the rest is
      retried;
    * after MaximumRetryAttempts retries, or once a record is older than MaximumRecordAgeInSeconds, the
      batch's coordinates go to the OnFailure destination and the shard moves on.

    Lambda retries a stream batch at once; locally a short growing pause (retry_delay, doubled per
    retry, at most retry_delay_cap) separates the retries, so a test can watch them.
    """

    def __init__(
        self,
        function: LocalFunction,
        source: StreamEvent,
        *,
        client: DynamoDBStreamsClient,
        stream_arn: str,
        on_failure: Callable[[dict[str, Any]], None] | None = None,
        region: str = "us-east-1",
        poll_interval: float = 0.25,
        retry_delay: float = 0.1,
        retry_delay_cap: float = 2.0,
    ) -> None:
        self.function = function
        self.source = source
        self.client = client
        self.stream_arn = stream_arn
        self.on_failure = on_failure
        self.region = region
        self.poll_interval = poll_interval
        self.retry_delay = retry_delay
        self.retry_delay_cap = retry_delay_cap
        self.batches = 0
        self.filtered_out = 0
        self.discarded: list[dict[str, Any]] = []
        self._iterators: dict[str, str | None] = {}
        super().__init__(f"ddbstream-{function.logical_id}-{source.name}")

    def _poll(self) -> None:
        self._refresh_shards()
        with self._busy:
            delivered = self.poll_once()
        if not delivered:
            self._stop.wait(self.poll_interval)

    def _refresh_shards(self) -> None:
        description = self.client.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]
        position = "TRIM_HORIZON" if self.source.starting_position == "TRIM_HORIZON" else "LATEST"
        for shard in description.get("Shards", []):
            shard_id = shard["ShardId"]
            if shard_id not in self._iterators:
                self._iterators[shard_id] = self.client.get_shard_iterator(
                    StreamArn=self.stream_arn,
                    ShardId=shard_id,
                    ShardIteratorType=position,  # type: ignore[arg-type]
                )["ShardIterator"]

    def poll_once(self) -> int:
        """Read every shard once and deliver what came; returns how many records were read."""
        read = 0
        for shard_id, iterator in list(self._iterators.items()):
            if iterator is None or self._stop.is_set():
                continue  # a closed shard, or stopping
            answer = self.client.get_records(ShardIterator=iterator, Limit=1000)
            self._iterators[shard_id] = answer.get("NextShardIterator")
            raw = answer.get("Records", [])
            read += len(raw)
            records = [stream_record(r, self.stream_arn, self.region) for r in raw]
            kept = [r for r in records if self._selected(r)]
            self.filtered_out += len(records) - len(kept)
            for start in range(0, len(kept), self.source.batch_size):
                self._deliver(shard_id, kept[start : start + self.source.batch_size], retries=0)
        return read

    def _selected(self, record: Mapping[str, Any]) -> bool:
        return not self.source.filters or any(filter_matches(p, record) for p in self.source.filters)

    def _deliver(self, shard_id: str, records: list[dict[str, Any]], retries: int) -> None:
        invocations = 0
        while records and not self._stop.is_set():
            invocations += 1
            outcome, failed_from = self._invoke(records)
            if outcome == "ok":
                return
            if outcome == "error" and self.source.bisect_on_error and len(records) > 1:
                middle = len(records) // 2  # splitting costs no retry
                self._deliver(shard_id, records[:middle], retries)
                self._deliver(shard_id, records[middle:], retries)
                return
            records = records[failed_from:]
            retries += 1
            condition = self._give_up(records, retries)
            if condition is not None:
                self._discard(shard_id, records, condition, invocations)
                return
            self._stop.wait(min(self.retry_delay_cap, self.retry_delay * 2 ** (retries - 1)))

    def _give_up(self, records: Sequence[Mapping[str, Any]], retries: int) -> str | None:
        limit = self.source.maximum_retry_attempts
        if limit >= 0 and retries > limit:
            return "RetryAttemptsExhausted"
        age_limit = self.source.maximum_record_age
        oldest = records[0]["dynamodb"].get("ApproximateCreationDateTime")
        if age_limit >= 0 and oldest is not None and time.time() - float(oldest) > age_limit:
            return "RecordAgeExceeded"
        return None

    def _invoke(self, records: list[dict[str, Any]]) -> tuple[str, int]:
        """("ok", 0), ("partial", index of the first failed record) or ("error", 0)."""
        self.batches += 1
        try:
            result = self.function.invoke({"Records": records})
        except Exception:
            log.info(
                "%s failed on a stream batch of %d", self.function.logical_id, len(records), exc_info=True
            )
            return "error", 0
        if not self.source.report_batch_item_failures:
            return "ok", 0
        numbers = [r["dynamodb"]["SequenceNumber"] for r in records]
        failed = batch_item_failures(result, numbers)
        if failed is None:
            log.error(
                "%s returned an invalid batchItemFailures response: %r", self.function.logical_id, result
            )
            return "error", 0
        if not failed:
            return "ok", 0
        return "partial", min(numbers.index(n) for n in failed)

    def _discard(
        self, shard_id: str, records: Sequence[Mapping[str, Any]], condition: str, calls: int
    ) -> None:
        failure = stream_failure_record(
            records,
            function_arn=self.function.arn,
            stream_arn=self.stream_arn,
            shard_id=shard_id,
            condition=condition,
            invocations=calls,
        )
        self.discarded.append(failure)
        log.error("%s: %d stream record(s) discarded (%s)", self.function.logical_id, len(records), condition)
        if self.on_failure is not None:
            self.on_failure(failure)


# ---------------------------------------------------------------- EventBridge Scheduler

_CONTEXT_ATTRIBUTE = re.compile(
    r"<aws\.scheduler\.(schedule-arn|scheduled-time|execution-id|attempt-number)>"
)


def schedule_input(
    raw_input: str | None,
    *,
    schedule_arn: str,
    scheduled_time: datetime | None = None,
    attempt: int = 1,
) -> Any:
    """The payload EventBridge Scheduler delivers to a Lambda target: its Input, parsed, with the
    scheduler context attributes (<aws.scheduler.scheduled-time>, …) filled in; {} without Input."""
    if raw_input is None:
        return {}
    moment = (scheduled_time or datetime.now(UTC)).astimezone(UTC)
    values = {
        "schedule-arn": schedule_arn,
        "scheduled-time": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "execution-id": str(uuid.uuid4()),
        "attempt-number": str(attempt),
    }
    return json.loads(_CONTEXT_ATTRIBUTE.sub(lambda m: values[m.group(1)], raw_input))


# ---------------------------------------------------------------- CloudWatch: embedded metric format


class EmfCapture(io.TextIOBase):
    """Stands in for sys.stdout while the functions run: a line a function prints that is an EMF
    document (`{"_aws": ...}`, what Powertools Metrics prints) is kept, as CloudWatch would turn it into
    metric points; every other line goes to the stream it replaced. Lines are put together per thread
    (print writes the text and the newline separately, and the functions run in threads).

    `install` is called before each invocation, since something else may have replaced sys.stdout in
    between (pytest does, for each test); `uninstall` puts back what it replaced."""

    def __init__(self) -> None:
        super().__init__()
        self.inner: Any = sys.stdout
        self.documents: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._pending = threading.local()

    def install(self) -> None:
        with self._lock:
            if sys.stdout is not self:
                self.inner = sys.stdout
                sys.stdout = self

    def uninstall(self) -> None:
        with self._lock:
            if sys.stdout is self:
                sys.stdout = self.inner

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        buffered = getattr(self._pending, "text", "") + text
        *lines, rest = buffered.split("\n")
        self._pending.text = rest
        for line in lines:
            if not self._keep(line):
                self._forward(line + "\n")
        return len(text)

    def flush(self) -> None:
        rest = getattr(self._pending, "text", "")
        if rest and not rest.startswith('{"_aws"'):
            self._pending.text = ""
            self._forward(rest)
        with contextlib.suppress(ValueError, AttributeError):
            self.inner.flush()

    def _keep(self, line: str) -> bool:
        if not line.startswith('{"_aws"'):
            return False
        try:
            document = json.loads(line)
        except ValueError:
            return False
        with self._lock:
            self.documents.append(document)
        return True

    def _forward(self, text: str) -> None:
        with contextlib.suppress(ValueError):  # the stream it replaced was closed (a test's capture)
            self.inner.write(text)

    def totals(
        self, namespace: str | None = None
    ) -> dict[tuple[str, tuple[tuple[str, str], ...]], list[float]]:
        with self._lock:
            documents = list(self.documents)
        return metric_totals(documents, namespace)


def metric_totals(
    documents: Iterable[Mapping[str, Any]], namespace: str | None = None
) -> dict[tuple[str, tuple[tuple[str, str], ...]], list[float]]:
    """(metric name, its dimensions) -> every value the EMF documents gave it, as CloudWatch would
    aggregate them (Sum = sum of the values, SampleCount = how many, pNN over them)."""
    out: dict[tuple[str, tuple[tuple[str, str], ...]], list[float]] = {}
    for document in documents:
        for directive in document.get("_aws", {}).get("CloudWatchMetrics", []):
            if namespace is not None and directive.get("Namespace") != namespace:
                continue
            for dimension_set in directive.get("Dimensions") or [[]]:
                dimensions = tuple(sorted((name, str(document.get(name))) for name in dimension_set))
                for metric in directive.get("Metrics", []):
                    value: Any = document.get(metric["Name"], [])
                    values = value if isinstance(value, list) else [value]
                    out.setdefault((metric["Name"], dimensions), []).extend(float(v) for v in values)
    return out


# ---------------------------------------------------------------- EventBridge: the default bus


class EventCapture:
    """What the functions put on an EventBridge bus of the moto server: a rule matching every event,
    targeting a queue of its own, read (and emptied) by `events()`; what was read is kept, in order."""

    RULE = "wfm-publish-local-capture"

    def __init__(
        self, events_client: Any, sqs_client: SQSClient, queue_name: str, bus: str = "default"
    ) -> None:
        self._events = events_client
        self._sqs = sqs_client
        self.bus = bus
        self.queue_url = sqs_client.create_queue(QueueName=queue_name)["QueueUrl"]
        arn = sqs_client.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])
        events_client.put_rule(
            Name=self.RULE,
            EventBusName=bus,
            EventPattern=json.dumps({"source": [{"prefix": ""}]}),
            State="ENABLED",
        )
        events_client.put_targets(
            Rule=self.RULE,
            EventBusName=bus,
            Targets=[{"Id": "capture", "Arn": arn["Attributes"]["QueueArn"]}],
        )
        self.seen: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def events(self, source: str | None = None, detail_type: str | None = None) -> list[dict[str, Any]]:
        """Every event put so far (as EventBridge delivers it to a target), oldest first."""
        with self._lock:
            while True:
                batch = self._sqs.receive_message(
                    QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
                ).get("Messages", [])
                if not batch:
                    break
                for message in batch:
                    self.seen.append(json.loads(message.get("Body", "{}")))
                    self._sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
            return [
                e
                for e in self.seen
                if source in (None, e.get("source")) and detail_type in (None, e.get("detail-type"))
            ]


# ---------------------------------------------------------------- helpers


def wait_until(
    predicate: Callable[[], T],
    timeout: float = 10.0,
    interval: float = 0.05,
    message: str = "condition",
) -> T:
    """Poll predicate until it returns something truthy and return that; TimeoutError otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{message} not met within {timeout:g} s")
        time.sleep(interval)
