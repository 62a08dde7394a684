"""API Gateway (REST, v1 proxy) in front of the functions' Api events.

`ApiFront` turns HTTP requests into proxy events and answers with the handler's
statusCode/headers/body: 403 "Missing Authentication Token" for an unknown route, 502 "Internal server
error" when the handler raises or answers something malformed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from wfm_publish_local.http import HttpFront, handler_class
from wfm_publish_local.runner.function import ACCOUNT_ID, LocalFunction

log = logging.getLogger(__name__)


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


MAX_PAYLOAD_BYTES = 10 * 1024 * 1024  # API Gateway's payload limit (the API refuses over 64 KiB itself)
_LENGTH = re.compile(r"[0-9]{1,20}")
_CHUNK = re.compile(rb"([0-9A-Fa-f]{1,16})[ \t]*(?:;[^\r\n]*)?\r?\n")


class BadRequest(Exception):
    """The HTTP request itself is malformed: API Gateway answers it (400, or 413 over its payload limit)
    without invoking the function."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _read_body(request: BaseHTTPRequestHandler) -> bytes:
    if request.headers.get("Transfer-Encoding", "").lower() == "chunked":
        return _read_chunked(request)
    lengths = request.headers.get_all("Content-Length") or []
    if not lengths:
        return b""
    if len(set(lengths)) > 1 or not all(_LENGTH.fullmatch(v) for v in lengths):
        # RFC 9112 6.3: an invalid Content-Length is unrecoverable; the connection is closed after.
        shown = ", ".join(repr(v) for v in lengths)
        raise BadRequest(f"Content-Length must be one number of bytes (0-9 only), got {shown}")
    length = int(lengths[0])
    if length > MAX_PAYLOAD_BYTES:
        raise BadRequest(
            f"Content-Length {length} is over API Gateway's payload limit of {MAX_PAYLOAD_BYTES} bytes", 413
        )
    return request.rfile.read(length) if length else b""


def _read_chunked(request: BaseHTTPRequestHandler) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while True:
        line = request.rfile.readline(1024)
        size = _CHUNK.fullmatch(line)
        if size is None:
            raise BadRequest(
                f"a chunk of the chunked body does not start with its size in hex: {line[:40]!r}"
            )
        length = int(size.group(1), 16)
        total += length
        if total > MAX_PAYLOAD_BYTES:
            raise BadRequest(
                f"the chunked body is over API Gateway's payload limit of {MAX_PAYLOAD_BYTES}", 413
            )
        if length == 0:
            while request.rfile.readline(8192) not in {b"\r\n", b"\n", b""}:
                pass  # trailers
            return b"".join(chunks)
        chunks.append(request.rfile.read(length))
        request.rfile.readline(1024)


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


class ApiFront(HttpFront):
    """API Gateway in front of the functions' Api events, on a ThreadingHTTPServer.

    Paths are served without the stage prefix (as `sam local start-api` does); the event's
    requestContext.stage and requestContext.path carry the stage.
    """

    def __init__(self, routes: Iterable[Route], host: str = "127.0.0.1", port: int = 0) -> None:
        # Most specific first: API Gateway prefers literal segments over {params} and {proxy+}.
        self.routes = sorted(routes, key=lambda r: (-r.literal_segments, len(r.names)))
        # Every method (QUERY, PROPFIND, ...) is routed, so an unknown one gets API Gateway's answer
        # (403 for a method the resource does not have), not http.server's 501.
        handler = handler_class(
            self.serve, log, "api", any_method=True, server_version="wfm-publish-local-apigateway"
        )
        super().__init__(handler, host, port, "api-front")

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
        try:
            body = _read_body(request)
        except BadRequest as bad:
            # What is left of the request on the connection cannot be told from the next one: answer,
            # then close it (the local front's answer is the API's problem shape).
            code = "BODY_TOO_LARGE" if bad.status == 413 else "INVALID_REQUEST"
            answer = json.dumps({"message": str(bad), "code": code}).encode()
            self._send(request, bad.status, [], answer, request_id, close=True)
            return
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
        *,
        close: bool = False,
    ) -> None:
        request.send_response(status)
        if close:
            request.send_header("Connection", "close")  # and http.server closes it after the answer
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
