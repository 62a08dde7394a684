"""A ServiceNow stand-in for the local stack: the Table API's PATCH, the OAuth token endpoint, and a
record of everything it was sent, on 127.0.0.1.

    with ServiceNowStandIn() as snow:
        snow.fail_next(2)                        # the next two calls answer 500
        snow.fail_next(1, drop=True)             # ... or close the connection without an answer
        snow.wait_for_updates(1, table="change_request")
        snow.records[("change_request", sys_id)]  # the record's fields as PATCHed

Like ServiceNow it answers `{"result": {...}}`, 401 without valid credentials (basic or a bearer token
from /oauth_token.do), 404 for a record it does not know when `known_records` is set, and
`{"error": {"message", "detail"}, "status": "failure"}` for a refusal. Work notes accumulate.

`on_update(table, sys_id, fields)`, when set, hears each update the stand-in accepts before it answers
(a test hands it to a ServiceNow instance that runs its business rules); if it raises, the stand-in
answers 500.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from wfm_publish_local.http import HttpFront, handler_class

log = logging.getLogger(__name__)

DEFAULT_USERNAME = "wfm.publish"
DEFAULT_PASSWORD = "local-password"  # noqa: S105 - the stand-in's own, local only
_RECORD_PATH = re.compile(r"^/api/now/table/([^/]+)/([^/]+)$")


@dataclass(frozen=True)
class Received:
    """One request the stand-in got, and how it answered."""

    method: str
    path: str
    table: str | None
    sys_id: str | None
    body: dict[str, Any] | None
    status: int
    at: float = field(default_factory=time.time)


@dataclass
class _Failure:
    status: int
    drop: bool
    retry_after: int | None = None


class ServiceNowStandIn(HttpFront):
    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        username: str = DEFAULT_USERNAME,
        password: str = DEFAULT_PASSWORD,
        client_id: str | None = None,
        client_secret: str | None = None,
        known_records: Iterable[tuple[str, str]] | None = None,
    ) -> None:
        self.username, self.password = username, password
        self.client_id, self.client_secret = client_id, client_secret
        self.known_records = None if known_records is None else set(known_records)
        self.received: list[Received] = []
        self.on_update: Callable[[str, str, dict[str, Any]], None] | None = None
        self.records: dict[tuple[str, str], dict[str, Any]] = {}
        self._tokens: set[str] = set()
        self._failures: list[_Failure] = []
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        handler = handler_class(
            self._serve,
            log,
            "servicenow",
            methods=("GET", "POST", "PUT", "PATCH", "DELETE"),
            server_version="servicenow-stand-in",
            # An answer's headers and body are two writes: with Nagle's algorithm on, every answer after a
            # kept-alive connection's first waited ~40 ms for the client's delayed ACK (each callback).
            disable_nagle=True,
        )
        super().__init__(handler, host, port, "servicenow")

    # ------------------------------------------------------------ control and inspection

    def fail_next(
        self, count: int = 1, *, status: int = 500, drop: bool = False, retry_after: int | None = None
    ) -> None:
        """The next `count` Table API calls fail: answer `status` (with a Retry-After header when
        given, as a rate-limit rule does), or drop the connection unanswered."""
        with self._lock:
            self._failures.extend(_Failure(status, drop, retry_after) for _ in range(count))

    def reset(self) -> None:
        with self._lock:
            self.received.clear()
            self.records.clear()
            self._failures.clear()

    def updates(self, table: str | None = None, sys_id: str | None = None) -> list[Received]:
        """The Table API updates that succeeded, oldest first."""
        with self._lock:
            return [
                r
                for r in self.received
                if r.table is not None
                and r.status == 200
                and table in (None, r.table)
                and sys_id in (None, r.sys_id)
            ]

    def wait_for_updates(
        self, count: int, *, table: str | None = None, sys_id: str | None = None, timeout: float = 30.0
    ) -> list[Received]:
        deadline = time.monotonic() + timeout
        while True:
            found = self.updates(table, sys_id)
            if len(found) >= count:
                return found
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{count} ServiceNow update(s) not received within {timeout:g} s: {found}")
            with self._changed:
                self._changed.wait(min(remaining, 0.2))

    # ------------------------------------------------------------ serving

    def _serve(self, request: BaseHTTPRequestHandler) -> None:
        split = urlsplit(request.path)
        length = int(request.headers.get("Content-Length") or 0)
        raw = request.rfile.read(length) if length else b""
        if request.command == "POST" and split.path == "/oauth_token.do":
            self._token(request, raw)
            return
        found = _RECORD_PATH.match(split.path)
        if found is not None and request.command == "GET":
            self._read(request, *found.groups())
            return
        if found is None or request.command not in {"PATCH", "PUT"}:
            self._answer(
                request, 400, _error("Invalid request", f"{request.command} {split.path} is not served")
            )
            return
        table, sys_id = found.groups()
        body: dict[str, Any] | None = None
        try:
            parsed = json.loads(raw or b"null")
            body = parsed if isinstance(parsed, dict) else None
        except ValueError:
            body = None
        with self._lock:
            failure = self._failures.pop(0) if self._failures else None
        if failure is not None and failure.drop:
            self._note(request, split.path, table, sys_id, body, 0)
            request.close_connection = True
            request.connection.close()  # no answer at all: the caller sees a dropped connection
            return
        status, answer = self._update(request, table, sys_id, body, failure, parse_qs(split.query))
        if status == 200 and body is not None and self.on_update is not None:
            try:
                self.on_update(table, sys_id, body)
            except Exception as exc:  # the listener's failure is the update's: the caller retries
                log.exception("the update listener failed")
                status, answer = 500, _error("Update listener failed", f"{type(exc).__name__}: {exc}")
        self._note(request, split.path, table, sys_id, body, status)
        extra = {}
        if failure is not None and failure.retry_after is not None and status == failure.status:
            extra["Retry-After"] = str(failure.retry_after)
        self._answer(request, status, answer, extra)

    def _read(self, request: BaseHTTPRequestHandler, table: str, sys_id: str) -> None:
        """The Table API's GET of one record: what it holds now (what it was PATCHed with)."""
        if not self._authorized(request.headers.get("Authorization", "")):
            self._answer(
                request, 401, _error("User Not Authenticated", "Required to provide Auth information")
            )
            return
        if self.known_records is not None and (table, sys_id) not in self.known_records:
            self._answer(request, 404, _error("No Record found", "Record doesn't exist or ACL restricts it"))
            return
        with self._lock:
            fields = dict(self.records.get((table, sys_id), {}))
        self._answer(request, 200, {"result": {"sys_id": sys_id, **fields}})

    def _update(
        self,
        request: BaseHTTPRequestHandler,
        table: str,
        sys_id: str,
        body: dict[str, Any] | None,
        failure: _Failure | None,
        query: dict[str, list[str]],
    ) -> tuple[int, dict[str, Any]]:
        if not self._authorized(request.headers.get("Authorization", "")):
            return 401, _error("User Not Authenticated", "Required to provide Auth information")
        if failure is not None:
            return failure.status, _error(
                "Injected failure", f"the stand-in was told to answer {failure.status}"
            )
        if body is None:
            return 400, _error("Exception while reading request", "the body must be a JSON object")
        key = (table, sys_id)
        if self.known_records is not None and key not in self.known_records:
            return 404, _error(
                "No Record found", "Record doesn't exist or ACL restricts the record retrieval"
            )
        with self._lock:
            record = self.records.setdefault(key, {"sys_id": sys_id})
            for name, value in body.items():
                if name == "work_notes":
                    record.setdefault("work_notes", []).append(value)
                else:
                    record[name] = value
            snapshot = dict(record)
        fields = [f for f in (query.get("sysparm_fields") or [""])[0].split(",") if f]
        result = {k: v for k, v in snapshot.items() if not fields or k in fields}
        return 200, {"result": result}

    def _authorized(self, header: str) -> bool:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer":
            with self._lock:
                return value in self._tokens
        if scheme.lower() == "basic":
            try:
                user, _, password = base64.b64decode(value).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return False
            return (user, password) == (self.username, self.password)
        return False

    def _token(self, request: BaseHTTPRequestHandler, raw: bytes) -> None:
        form = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
        good = (
            self.client_id is not None
            and form.get("grant_type") == "password"
            and (form.get("client_id"), form.get("client_secret")) == (self.client_id, self.client_secret)
            and (form.get("username"), form.get("password")) == (self.username, self.password)
        )
        if not good:
            self._answer(request, 401, {"error_description": "access_denied", "error": "server_error"})
            return
        token = uuid.uuid4().hex
        with self._lock:
            self._tokens.add(token)
        self._answer(
            request,
            200,
            {"access_token": token, "token_type": "Bearer", "expires_in": 1799, "scope": "useraccount"},
        )

    def _note(
        self,
        request: BaseHTTPRequestHandler,
        path: str,
        table: str,
        sys_id: str,
        body: dict[str, Any] | None,
        status: int,
    ) -> None:
        with self._changed:
            self.received.append(Received(request.command, path, table, sys_id, body, status))
            self._changed.notify_all()

    @staticmethod
    def _answer(
        request: BaseHTTPRequestHandler,
        status: int,
        body: dict[str, Any],
        headers: dict[str, str] | None = None,
    ) -> None:
        payload = json.dumps(body).encode()
        request.send_response(status)
        for name, value in (headers or {}).items():
            request.send_header(name, value)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(payload)))
        request.end_headers()
        request.wfile.write(payload)


def _error(message: str, detail: str) -> dict[str, Any]:
    return {"error": {"message": message, "detail": detail}, "status": "failure"}
