"""Secrets Manager values: one reader per container, each value kept SECRET_MAX_AGE seconds.

What each secret must hold is checked where it is used (the Genesys OAuth client in genesys_auth,
the request-signing keys in signature, the ServiceNow credentials in servicenow); this module only
reads. A read that fails for a moment (throttling, a 5xx, a timeout) is `SecretUnavailable`, one the
deployment must fix (no such secret, access denied) is `ConfigurationError`. Not Powertools'
parameters utility: it imports boto3 (and with it s3transfer and multiprocessing) for this one call,
~60 ms of a cold start. No message, log line or exception chain carries a value: an error names the
secret and AWS's own error, and a failed read never holds one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from wfm_publish.errors import ConfigurationError, SecretUnavailable

SECRET_MAX_AGE = 300.0  # seconds a value is kept: a rotated secret is picked up within five minutes
# What Secrets Manager (and AWS's front door) answers when it is busy or failing, not when we are wrong.
TRANSIENT_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "InternalServiceError",
        "InternalFailure",
        "ServiceUnavailable",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)


class SecretReader:
    """`client` builds the Secrets Manager client at the first read: a path that reads none never pays it."""

    def __init__(
        self,
        client: Callable[[], Any],
        *,
        max_age: float = SECRET_MAX_AGE,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._max_age = max_age
        self._monotonic = monotonic
        self._values: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()
        self.reads = 0  # calls to Secrets Manager (each is billed)

    def text(self, name: str, what: str) -> str:
        """The secret's string; `what` names it in an error ("Genesys credentials")."""
        now = self._monotonic()
        with self._lock:
            kept = self._values.get(name)
            if kept is not None and now - kept[0] < self._max_age:
                return kept[1]
        value = self._read(name, what)
        with self._lock:
            self._values[name] = (now, value)
        return value

    def _read(self, name: str, what: str) -> str:
        from botocore.exceptions import BotoCoreError, ClientError

        self.reads += 1
        try:
            answer = self._client().get_secret_value(SecretId=name)
        except (ClientError, BotoCoreError) as exc:
            # AWS's message says what went wrong (throttled, no such secret, access denied, no endpoint).
            if transient(exc):
                raise SecretUnavailable(f"cannot read the {what} secret {name!r} now: {exc}") from None
            raise ConfigurationError(f"cannot read the {what} secret {name!r}: {exc}") from None
        text = answer.get("SecretString")
        if isinstance(text, str):
            return text
        binary = answer.get("SecretBinary")
        if isinstance(binary, bytes | bytearray):
            try:
                return bytes(binary).decode()
            except UnicodeDecodeError:
                raise ConfigurationError(f"the {what} secret {name!r} is binary, not text") from None
        raise ConfigurationError(f"the {what} secret {name!r} holds no value")


def transient(exc: Exception) -> bool:
    """A failure another try may not meet: throttling, a 5xx, a timeout, a dropped or refused connection.
    Not found, access denied, a key that cannot decrypt, no credentials or region: the deployment's."""
    from botocore.exceptions import ClientError, HTTPClientError
    from botocore.exceptions import ConnectionError as BotoConnectionError

    if isinstance(exc, BotoConnectionError | HTTPClientError):
        return True  # no connection, connect/read timeouts, a connection closed mid-answer
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        return exc.response.get("Error", {}).get("Code") in TRANSIENT_CODES or status >= 500 or status == 429
    return False
