"""A thin `requests` client for the Genesys Cloud paths this product uses (shared/GENESYS_API.md).

The official SDK costs seconds and ~200 MB at import, and sleeps through 429s inside the call; here
a 429 becomes a typed error the pipeline turns into a queue delay.
"""

from __future__ import annotations

import base64
import gzip
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import requests
from aws_lambda_powertools import Logger
from pydantic import Field

from wfm_publish.errors import (
    GenesysAuthError,
    GenesysConflict,
    GenesysError,
    GenesysNotFound,
    GenesysRateLimited,
    GenesysRejected,
    GenesysTransient,
)
from wfm_publish.models import GenesysErrorBody, Lenient

logger = Logger(child=True)

WFM = "/api/v2/workforcemanagement/businessunits"
EDGES = "/api/v2/telephony/providers/edges"
TOKEN_EARLY_RENEWAL = 300.0  # renew this long before expiry so a call never carries a dying token
DEFAULT_TIMEOUT = (3.05, 10.0)  # connect, read


# --- what Genesys answers (lenient: new fields must not break us) ------------------------------------


class Ref(Lenient):
    id: str
    name: str | None = None


class ScheduleMetadata(Lenient):
    version: int
    date_modified: str | None = None
    modified_by: Ref | None = None


class Schedule(Lenient):
    id: str
    week_date: str | None = None
    description: str | None = None
    published: bool = False
    metadata: ScheduleMetadata
    raw_metadata: dict[str, Any] = Field(default_factory=dict, exclude=True)


class UpdateOperation(Lenient):
    status: str
    operation_id: str | None = None


class SoftwareStatus(Lenient):
    status: str | None = None


class Edge(Lenient):
    id: str
    name: str | None = None
    status_code: str | None = None
    online_status: str | None = None
    software_status: SoftwareStatus | None = None
    call_draining_state: str | None = None
    date_modified: str | None = None
    site: Ref | None = None
    edge_group: Ref | None = None


class ConnectedStatus(Lenient):
    connected: bool | None = None
    connected_state_time: str | None = None


class Trunk(Lenient):
    id: str
    name: str | None = None
    state: str | None = None
    trunk_type: str | None = None
    in_service: bool | None = None
    enabled: bool | None = None
    connected_status: ConnectedStatus | None = None
    date_modified: str | None = None
    edge: Ref | None = None
    edge_group: Ref | None = None
    trunk_base: Ref | None = None


@dataclass(frozen=True)
class Credentials:
    client_id: str
    client_secret: str

    def __repr__(self) -> str:  # never print the secret, even by accident
        return f"Credentials(client_id={self.client_id!r}, client_secret='***')"


@dataclass
class _Token:
    value: str
    expires_at: float


class GenesysClient:
    def __init__(
        self,
        base_url: str,
        credentials: Callable[[], Credentials],
        *,
        session: requests.Session | None = None,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.login_url = self.base_url.replace("://api.", "://login.", 1)
        self._credentials = credentials
        self._session = session or requests.Session()
        self._timeout = timeout
        self._monotonic = monotonic
        self._token: _Token | None = None
        self._token_lock = threading.Lock()

    # --- WFM ---------------------------------------------------------------------------------------

    def business_units(self) -> list[Ref]:
        return [Ref.model_validate(e) for e in self._get(WFM).get("entities", [])]

    def business_unit(self, bu_id: str) -> dict[str, Any]:
        return self._get(f"{WFM}/{bu_id}", params={"expand": "settings"})

    def schedules(self, bu_id: str, week_id: str) -> list[dict[str, Any]]:
        entities: list[dict[str, Any]] = self._get(f"{WFM}/{bu_id}/weeks/{week_id}/schedules").get(
            "entities", []
        )
        return entities

    def schedule(self, bu_id: str, week_id: str, schedule_id: str) -> Schedule:
        body = self._get(f"{WFM}/{bu_id}/weeks/{week_id}/schedules/{schedule_id}")
        schedule = Schedule.model_validate(body)
        schedule.raw_metadata = dict(body.get("metadata") or {})
        return schedule

    def resolve_schedule(self, schedule_id: str) -> tuple[str, str]:
        """Find the business unit and week of a bare schedule id (weeks/recent spans ±26 weeks)."""
        for bu in self.business_units():
            for entry in self.schedules(bu.id, "recent"):
                if entry.get("id") == schedule_id and entry.get("weekDate"):
                    return bu.id, str(entry["weekDate"])[:10]
        raise GenesysNotFound(f"schedule {schedule_id} is in no business unit's recent weeks", status=404)

    def publish(self, bu_id: str, week_id: str, schedule: Schedule) -> UpdateOperation:
        """The three-step update with `published: true` and the schedule's current metadata."""
        base = f"{WFM}/{bu_id}/weeks/{week_id}/schedules/{schedule.id}/update"
        payload = gzip.compress(json.dumps({"metadata": schedule.raw_metadata, "published": True}).encode())
        upload = self._call("POST", f"{base}/uploadurl", json_body={"contentLengthBytes": len(payload)})
        self._upload(str(upload["url"]), payload, dict(upload.get("headers") or {}))
        answer = self._call("POST", base, json_body={"uploadKey": upload["uploadKey"]})
        return UpdateOperation.model_validate(answer)

    # --- telephony -----------------------------------------------------------------------------------

    def edge(self, edge_id: str) -> Edge:
        return Edge.model_validate(self._get(f"{EDGES}/{edge_id}"))

    def trunks(self, *, edge_id: str | None = None, trunk_type: str = "EXTERNAL") -> list[Trunk]:
        params = {"trunkType": trunk_type} | ({"edge.id": edge_id} if edge_id else {})
        return [Trunk.model_validate(e) for e in self._pages(f"{EDGES}/trunks", params)]

    def trunk(self, trunk_id: str) -> Trunk:
        return Trunk.model_validate(self._get(f"{EDGES}/trunks/{trunk_id}"))

    def site(self, site_id: str) -> dict[str, Any]:
        return self._get(f"{EDGES}/sites/{site_id}")

    # --- transport -----------------------------------------------------------------------------------

    def _get(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return self._call("GET", path, params=params)

    def _pages(self, path: str, params: dict[str, Any], page_size: int = 100) -> Iterator[dict[str, Any]]:
        page = 1
        while True:
            body = self._get(path, params | {"pageSize": page_size, "pageNumber": page})
            yield from body.get("entities", [])
            if page >= int(body.get("pageCount") or 1):
                return
            page += 1

    def _call(
        self, method: str, path: str, *, params: dict[str, Any] | None = None, json_body: Any = None
    ) -> dict[str, Any]:
        response = self._send(method, path, params, json_body, self._bearer())
        if response.status_code == 401:
            # A token can be revoked before it expires: renew once, then give up.
            response = self._send(method, path, params, json_body, self._bearer(renew=True))
        return _answer(response, path)

    def _send(
        self, method: str, path: str, params: dict[str, Any] | None, json_body: Any, bearer: str
    ) -> requests.Response:
        started = self._monotonic()
        try:
            response = self._session.request(
                method,
                self.base_url + path,
                params=params,
                json=json_body,
                headers={"Authorization": f"Bearer {bearer}", "Accept": "application/json"},
                timeout=self._timeout,
            )
        except requests.RequestException as exc:
            raise GenesysTransient(f"{method} {path}: {type(exc).__name__}", path=path) from exc
        logger.debug(
            "genesys call",
            extra={
                "method": method,
                "path": path,
                "status": response.status_code,
                "ms": round((self._monotonic() - started) * 1000, 1),
                "correlation_id": response.headers.get("ININ-Correlation-Id"),
            },
        )
        return response

    def _upload(self, url: str, payload: bytes, headers: dict[str, str]) -> None:
        try:
            response = self._session.put(url, data=payload, headers=headers, timeout=self._timeout)
        except requests.RequestException as exc:
            raise GenesysTransient(f"schedule upload: {type(exc).__name__}", path="upload") from exc
        if response.status_code >= 300:
            _answer(response, "upload")

    def _bearer(self, renew: bool = False) -> str:
        with self._token_lock:
            now = self._monotonic()
            if renew or self._token is None or now >= self._token.expires_at - TOKEN_EARLY_RENEWAL:
                self._token = self._fetch_token(now)
            return self._token.value

    def _fetch_token(self, now: float) -> _Token:
        creds = self._credentials()
        basic = base64.b64encode(f"{creds.client_id}:{creds.client_secret}".encode()).decode()
        try:
            response = self._session.post(
                f"{self.login_url}/oauth/token",
                data={"grant_type": "client_credentials"},
                headers={"Authorization": f"Basic {basic}"},
                timeout=self._timeout,
            )
        except requests.RequestException as exc:
            raise GenesysTransient(f"token: {type(exc).__name__}", path="/oauth/token") from exc
        body = _answer(response, "/oauth/token")
        lifetime = float(body.get("expires_in") or 0)
        return _Token(str(body["access_token"]), now + lifetime)


def _answer(response: requests.Response, path: str) -> dict[str, Any]:
    """The body of a good answer, or the typed error for a bad one."""
    status = response.status_code
    if status < 300:
        if not response.content:
            return {}
        body = response.json()
        return body if isinstance(body, dict) else {"entities": body}
    error = _error_body(response)
    summary = f"{status} on {path}: {(error.message if error else None) or response.reason}"
    kwargs: dict[str, Any] = {"status": status, "body": error, "path": path}
    if status == 409:
        raise GenesysConflict(summary, **kwargs)
    if status == 429:
        retry_after = _retry_after(response.headers.get("Retry-After"))
        raise GenesysRateLimited(summary, retry_after=retry_after, **kwargs)
    if status in (401, 403):
        raise GenesysAuthError(summary, **kwargs)
    if status == 404:
        raise GenesysNotFound(summary, **kwargs)
    if status >= 500 or status == 408:
        raise GenesysTransient(summary, **kwargs)
    if status >= 400:
        raise GenesysRejected(summary, **kwargs)
    raise GenesysError(summary, **kwargs)


def _error_body(response: requests.Response) -> GenesysErrorBody | None:
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    error = GenesysErrorBody.model_validate(body)
    if error.context_id is None:
        error.context_id = response.headers.get("ININ-Correlation-Id")
    return error


def _retry_after(value: str | None) -> float:
    try:
        return max(1.0, float(value)) if value else 60.0
    except ValueError:
        return 60.0  # an HTTP-date: be conservative rather than parse it
