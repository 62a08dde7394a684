"""Genesys Cloud OAuth (client credentials): the credentials, the token, when to renew it.

Client-credential tokens are not refreshed for you: the lifetime is tracked from when the token
was asked for, renewed early, and renewed once on a 401 (the client decides that). Neither the
secret nor a token is ever logged or printed.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from wfm_publish.errors import ConfigurationError, GenesysServerError, GenesysUnauthorized
from wfm_publish.models import GenesysErrorBody

OAUTH = "/oauth/token"
TOKEN_EARLY_RENEWAL = 300.0  # renew at most this long before expiry ...
TOKEN_EARLY_FRACTION = 0.1  # ... or a tenth of the lifetime, whichever is shorter (5 min tokens)


@dataclass(frozen=True)
class Credentials:
    client_id: str
    client_secret: str = field(repr=False)

    def __repr__(self) -> str:  # never print the secret, even by accident
        return f"Credentials(client_id={self.client_id!r}, client_secret='***')"

    __str__ = __repr__


def credentials_from(text: str) -> Credentials:
    """The Genesys credentials secret's value, `{"clientId": ..., "clientSecret": ...}`.

    Errors name the expected shape, never the content, and never chain: a JSONDecodeError keeps the
    whole document, which is the secret."""
    problem = 'the Genesys credentials secret must be JSON {"clientId": "...", "clientSecret": "..."}'
    try:
        secret = json.loads(text)
        client_id, client_secret = secret["clientId"], secret["clientSecret"]
    except (ValueError, KeyError, TypeError):
        raise ConfigurationError(problem) from None
    if not (isinstance(client_id, str) and client_id and isinstance(client_secret, str) and client_secret):
        raise ConfigurationError(problem)
    return Credentials(client_id, client_secret)


@dataclass
class Token:
    value: str = field(repr=False)
    renew_at: float  # monotonic: renew from here on, before Genesys would refuse it

    def __repr__(self) -> str:
        return f"Token(value='***', renew_at={self.renew_at})"


class _Response(Protocol):
    """The part of a `requests.Response` the token fetch reads."""

    status_code: int
    reason: str | None
    headers: Any

    def json(self) -> Any: ...


def renew_margin(lifetime: float) -> float:
    """How long before expiry a token is renewed: 5 minutes, or a tenth of a short lifetime."""
    return min(TOKEN_EARLY_RENEWAL, TOKEN_EARLY_FRACTION * max(0.0, lifetime))


def login_url(base_url: str) -> str:
    """The OAuth host of an API base URL: `api.` becomes `login.`; any other host is its own login host."""
    parts = urlsplit(base_url.rstrip("/"))
    host = parts.hostname or ""
    if host.startswith("api."):
        netloc = parts.netloc.replace(host, "login." + host[len("api.") :], 1)
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    return base_url.rstrip("/")


class TokenSource:
    """One token per container, shared by every call; `exchange` sends the token request (the
    client's transport, so it is logged and typed like any call) and `answer` reads a good answer."""

    def __init__(
        self,
        login: str,
        credentials: Callable[[], Credentials],
        exchange: Callable[..., Any],
        answer: Callable[[Any, str], dict[str, Any]],
        monotonic: Callable[[], float],
        timeout: tuple[float, float],
    ) -> None:
        self.login_url = login
        self._credentials = credentials
        self._exchange = exchange
        self._answer = answer
        self._monotonic = monotonic
        self._timeout = timeout
        self._token: Token | None = None
        self._lock = threading.Lock()
        self.fetched = 0

    def bearer(self, stale: str | None = None) -> str:
        """The current token; a new one when it is due for renewal or when `stale` (just refused) is
        still the current one (so two callers refused at once renew only once)."""
        with self._lock:
            now = self._monotonic()
            token = self._token
            if token is None or now >= token.renew_at or (stale is not None and token.value == stale):
                token = self._token = self._fetch()
            return token.value

    def _fetch(self) -> Token:
        creds = self._credentials()
        basic = base64.b64encode(f"{creds.client_id}:{creds.client_secret}".encode()).decode()
        requested = self._monotonic()
        response = self._exchange(
            "POST",
            OAUTH,
            self.login_url + OAUTH,
            data={"grant_type": "client_credentials"},
            headers={"Authorization": f"Basic {basic}", "Accept": "application/json"},
            timeout=self._timeout,
        )
        if response.status_code in (400, 401, 403):
            error = oauth_error(response)
            raise GenesysUnauthorized(
                f"the token endpoint refused the OAuth client {creds.client_id!r}: "
                f"{error.code or response.status_code}",
                status=response.status_code,
                body=error,
                path=OAUTH,
            )
        body = self._answer(response, OAUTH)
        value = body.get("access_token")
        if not isinstance(value, str) or not value:
            raise GenesysServerError("the token endpoint answered without an access_token", path=OAUTH)
        try:
            lifetime = float(body.get("expires_in") or 0)
        except (TypeError, ValueError):
            lifetime = 0.0
        lifetime = lifetime if lifetime > 0 else TOKEN_EARLY_RENEWAL  # unknown: assume the shortest
        self.fetched += 1
        # Count the lifetime from when we asked, not when the answer arrived.
        return Token(value, requested + lifetime - renew_margin(lifetime))


def oauth_error(response: _Response) -> GenesysErrorBody:
    """The OAuth endpoint's own `{error, description, error_description}`, as a Genesys error body."""
    try:
        body = response.json()
    except ValueError:
        body = None
    body = body if isinstance(body, dict) else {}
    return GenesysErrorBody(
        message=str(body.get("error_description") or body.get("description") or response.reason or ""),
        code=str(body.get("error") or "") or None,
        status=response.status_code,
        context_id=response.headers.get("ININ-Correlation-Id"),
    )
