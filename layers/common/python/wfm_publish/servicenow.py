"""ServiceNow Table API client: the one place that talks to the caller's instance.

    PATCH {instance}/api/now/table/{table}/{sys_id}   {"u_wfm_publish_status": "PUBLISHED", ...}

Credentials come from Secrets Manager as {"username", "password"} (basic auth) or, with an OAuth
application registry entry, {"clientId", "clientSecret", "username", "password"} (password grant on
/oauth_token.do; the token is kept until shortly before it expires and renewed once on a 401).
Failures come in two kinds:

- `ServiceNowError` (transient): another try may succeed. A 5xx, a 429 (its `Retry-After` is kept in
  `retry_after`), a 408 or 409 (the record was busy), a timeout, a connection error.
- `CallbackRejected` (permanent, a subclass): ServiceNow refused the callback and will refuse it again
  until a person changes something. A 401 with basic auth, or again after one token renewal; a token
  endpoint that refuses the OAuth client; 403 (ACL); 404 (no such record); any other 4xx (400: a
  field the table refuses). Retrying these only delays the dead letter; the notifier logs and drops
  them.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests

from wfm_publish.errors import CallbackRejected, ConfigurationError, ServiceNowError

DEFAULT_TIMEOUT = (3.05, 10.0)
TOKEN_MARGIN_SECONDS = 60.0


# Worth another try: ServiceNow busy (429, 5xx), the request timed out (408), the record was locked by
# another transaction (409). Every other refusal is a person's to fix.
_TRANSIENT_4XX = frozenset({408, 409, 429})


@dataclass(frozen=True)
class ServiceNowCredentials:
    username: str
    password: str
    client_id: str | None = None
    client_secret: str | None = None

    def __repr__(self) -> str:  # never print a secret, even by accident
        return f"ServiceNowCredentials(username={self.username!r}, oauth={self.client_id is not None})"

    @property
    def oauth(self) -> bool:
        return bool(self.client_id and self.client_secret)


def credentials_from(text: str) -> ServiceNowCredentials:
    """The ServiceNow credentials secret's value (the notifier's, and `wfm-publish ops notify`'s)."""
    problem = (
        'the ServiceNow credentials secret must be JSON {"username": "...", "password": "..."}'
        ' (with "clientId" and "clientSecret" for OAuth)'
    )
    try:
        secret = json.loads(text)
        values = [secret.get(k) for k in ("username", "password", "clientId", "clientSecret")]
    except (ValueError, AttributeError):
        raise ConfigurationError(problem) from None  # never chain: the document is the secret
    username, password, client_id, client_secret = values
    if not (isinstance(username, str) and username and isinstance(password, str) and password):
        raise ConfigurationError(problem)
    return ServiceNowCredentials(
        username,
        password,
        client_id if isinstance(client_id, str) and client_id else None,
        client_secret if isinstance(client_secret, str) and client_secret else None,
    )


class ServiceNowClient:
    def __init__(
        self,
        instance_url: str,
        credentials: Callable[[], ServiceNowCredentials],
        *,
        session: requests.Session | None = None,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.instance_url = instance_url.rstrip("/")
        self._credentials = credentials
        self._session = session or requests.Session()
        self._timeout = timeout
        self._monotonic = monotonic
        self._token: tuple[str, float] | None = None
        self._lock = threading.Lock()

    def update_record(self, table: str, sys_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        """PATCH one record; returns its fields as ServiceNow answers them."""
        path = f"/api/now/table/{quote(table, safe='')}/{quote(sys_id, safe='')}"
        params = {"sysparm_fields": "sys_id", "sysparm_exclude_reference_link": "true"}
        response = self._send("PATCH", path, params, fields)
        if response.status_code == 401 and self._credentials().oauth:
            response = self._send("PATCH", path, params, fields, renew=True)
        return _answer(response, f"PATCH {table}/{sys_id}")

    def read_record(self, table: str, sys_id: str, fields: list[str]) -> dict[str, Any]:
        """GET `fields` of one record (the notifier asks what a record was already told)."""
        path = f"/api/now/table/{quote(table, safe='')}/{quote(sys_id, safe='')}"
        params = {"sysparm_fields": ",".join(fields), "sysparm_exclude_reference_link": "true"}
        response = self._send("GET", path, params, None)
        if response.status_code == 401 and self._credentials().oauth:
            response = self._send("GET", path, params, None, renew=True)
        return _answer(response, f"GET {table}/{sys_id}")

    def _send(
        self,
        method: str,
        path: str,
        params: dict[str, str],
        body: dict[str, Any] | None,
        renew: bool = False,
    ) -> requests.Response:
        credentials = self._credentials()
        headers = {"Accept": "application/json", "Content-Type": "application/json"}
        auth: tuple[str, str] | None = None
        if credentials.oauth:
            headers["Authorization"] = f"Bearer {self._bearer(credentials, renew)}"
        else:
            auth = (credentials.username, credentials.password)
        try:
            return self._session.request(
                method,
                self.instance_url + path,
                params=params,
                json=body,
                headers=headers,
                auth=auth,
                timeout=self._timeout,
            )
        except requests.Timeout as exc:
            raise ServiceNowError(f"ServiceNow did not answer {method} {path} in time") from exc
        except requests.RequestException as exc:
            raise ServiceNowError(
                f"ServiceNow unreachable for {method} {path}: {type(exc).__name__}"
            ) from exc

    def _bearer(self, credentials: ServiceNowCredentials, renew: bool) -> str:
        with self._lock:
            now = self._monotonic()
            if self._token is None or renew or now >= self._token[1]:
                self._token = self._fetch_token(credentials, now)
            return self._token[0]

    def _fetch_token(self, credentials: ServiceNowCredentials, now: float) -> tuple[str, float]:
        form = {
            "grant_type": "password",
            "client_id": credentials.client_id or "",
            "client_secret": credentials.client_secret or "",
            "username": credentials.username,
            "password": credentials.password,
        }
        try:
            response = self._session.post(
                f"{self.instance_url}/oauth_token.do", data=form, timeout=self._timeout
            )
        except requests.Timeout as exc:
            raise ServiceNowError("ServiceNow's token endpoint did not answer in time") from exc
        except requests.RequestException as exc:
            raise ServiceNowError(f"ServiceNow token endpoint unreachable: {type(exc).__name__}") from exc
        body = _answer(response, "POST /oauth_token.do")
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise ServiceNowError(
                "ServiceNow's token answer has no access_token", status=response.status_code
            )
        lifetime = float(body.get("expires_in") or 1800)
        return token, now + max(0.0, lifetime - TOKEN_MARGIN_SECONDS)


def _answer(response: requests.Response, what: str) -> dict[str, Any]:
    status = response.status_code
    if 200 <= status < 300:
        try:
            body = response.json() if response.content else {}
        except ValueError:
            body = {}
        result = body.get("result", body) if isinstance(body, dict) else {}
        return result if isinstance(result, dict) else {}
    detail = ""
    try:
        error = response.json().get("error") or {}
        if isinstance(error, dict):  # Table API: {"error": {"message", "detail"}}
            detail = f": {error.get('message', '')} {error.get('detail', '') or ''}".rstrip()
        else:  # the token endpoint: {"error": "server_error", "error_description": "access_denied"}
            detail = f": {error} {response.json().get('error_description', '') or ''}".rstrip()
    except (ValueError, AttributeError):
        detail = ""
    message = f"ServiceNow answered {status} to {what}{detail}"
    if status >= 500 or status in _TRANSIENT_4XX:
        raise ServiceNowError(message, status=status, retry_after=_retry_after(response))
    raise CallbackRejected(message, status=status)


def _retry_after(response: requests.Response) -> float | None:
    """Retry-After in seconds (ServiceNow's rate-limit rules send it); an HTTP date is not parsed."""
    value = response.headers.get("Retry-After", "").strip()
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None
