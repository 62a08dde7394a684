"""Request signatures: ServiceNow signs every request to the publish API with a shared secret.

    X-Signature-Timestamp: 1698415200                      (unix seconds, when the request was signed)
    X-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>

A GET signs the empty body ("1698415200."). The timestamp must be within five minutes of the server's
clock, so a captured request cannot be replayed later. Comparisons are constant-time. During a secret
rotation the server accepts the current and the previous secret, and a client may send several
`v1=` values separated by commas.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping, Sequence

from wfm_publish.errors import ConfigurationError, WfmPublishError

SIGNATURE_HEADER = "X-Signature"
TIMESTAMP_HEADER = "X-Signature-Timestamp"
SCHEME = "v1"
TOLERANCE_SECONDS = 300
_TIMESTAMP = re.compile(r"^[0-9]{1,12}$")
_SIGNATURE = re.compile(r"^v1=([0-9a-fA-F]{64})$")


class SignatureRejected(WfmPublishError):
    """401: the request is not signed, signed with another secret, or signed too long ago."""


def sign(secret: str, timestamp: int | str, body: bytes | str) -> str:
    """The X-Signature value for `body` sent at `timestamp`."""
    raw = body.encode() if isinstance(body, str) else body
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + raw, hashlib.sha256).hexdigest()
    return f"{SCHEME}={digest}"


def signed_headers(secret: str, body: bytes | str, now: float) -> dict[str, str]:
    """The two headers a client adds to a request (the demo, the tests and the docs' example use it)."""
    timestamp = str(int(now))
    return {TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: sign(secret, timestamp, body)}


def verify(
    secrets: Sequence[str],
    headers: Mapping[str, str],
    body: bytes,
    now: float,
    tolerance: float = TOLERANCE_SECONDS,
) -> None:
    """Raise SignatureRejected unless one of `secrets` signed `body` within `tolerance` of `now`.

    `headers` must be case-insensitive or lower-cased."""
    if not secrets:
        raise ConfigurationError("no request-signing secret is configured")
    timestamp = _header(headers, TIMESTAMP_HEADER)
    signature = _header(headers, SIGNATURE_HEADER)
    if timestamp is None or signature is None:
        raise SignatureRejected(f"sign the request: send {TIMESTAMP_HEADER} and {SIGNATURE_HEADER}")
    if not _TIMESTAMP.match(timestamp):
        raise SignatureRejected(f"{TIMESTAMP_HEADER} must be unix seconds")
    if abs(now - int(timestamp)) > tolerance:
        raise SignatureRejected(
            f"{TIMESTAMP_HEADER} is more than {tolerance / 60:g} minutes from the server's clock;"
            " check the caller's clock and sign each request when it is sent"
        )
    offered = [m.group(1).lower() for part in signature.split(",") if (m := _SIGNATURE.match(part.strip()))]
    if not offered:
        raise SignatureRejected(f"{SIGNATURE_HEADER} must be v1=<64 hex digits>")
    matched = False
    for secret in secrets:
        expected = sign(secret, timestamp, body).split("=", 1)[1]
        for candidate in offered:
            # No early exit: the time taken does not depend on which secret or value matched.
            matched |= hmac.compare_digest(expected.encode(), candidate.encode())
    if not matched:
        raise SignatureRejected("the signature does not match the body and timestamp")


def secrets_from(raw: str) -> list[str]:
    """The secrets in the Secrets Manager value: {"hmacSecret": …, "previousHmacSecret": …} or plain text."""
    text = raw.strip()
    if not text.startswith("{"):
        return [text] if text else []
    try:
        value = json.loads(text)
        found = [value.get("hmacSecret"), value.get("previousHmacSecret")]
    except (ValueError, AttributeError) as exc:
        raise ConfigurationError(
            'the signing secret must be JSON {"hmacSecret": "...", "previousHmacSecret": "..."}'
        ) from exc
    secrets = [s for s in found if isinstance(s, str) and s]
    if not secrets:
        raise ConfigurationError('the signing secret has no "hmacSecret"')
    return secrets


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        value = headers.get(name.lower())
    return value.strip() if isinstance(value, str) else None
