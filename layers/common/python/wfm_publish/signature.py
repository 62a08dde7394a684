"""Request signatures: ServiceNow signs every request to the publish API with a shared secret.

    X-Signature-Timestamp: 1698415200                      (unix seconds, when the request was signed)
    X-Signature: v3=<hex HMAC-SHA256(secret,
                     "<timestamp>\\n<METHOD>\\n<path>\\n<query>\\n<idempotency key>\\n<raw body>")>

The signed string names the request, not only its body: the method (upper case), the path as the API
routes it (the resource path without the stage: `/publishes/abc/cancel`, API Gateway's `event["path"]`
on the execute-api URL, and the local front's), the canonical query string (each `key=value`
percent-encoded, then sorted, joined with `&`; empty without a query) and the idempotency key the
request carries (its `Idempotency-Key` header, else its `X-Request-Id`, which stands in for it; empty
when it sends neither, as a GET or a cancel). So a captured signed GET cannot be replayed on
`POST /publishes/{id}/cancel` within the window, and a captured `POST /publishes` cannot be sent again
under another key to start a second job: replayed as it was, it replays the first answer. Newlines
separate the parts: none of them can contain one once canonical (`.` could, and `/a.b` + `k=v` would
then read as `/a` + `b.k=v`; an HTTP header cannot hold a newline).

Only `v3` is accepted. `v1` (timestamp and body) and `v2` (without the key) are refused by name: each
is replayable. A client moving from v2 sends both (`v3=…, v2=…`): a server before v3 reads the v2
value, this one the v3 value.

The timestamp must be within five minutes of the server's clock, so a captured request cannot be
replayed later. Comparisons are constant-time. During a secret rotation the server accepts the current
and the previous secret, and a client may send several `v3=` values separated by commas.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from urllib.parse import parse_qsl, quote, unquote

from wfm_publish.errors import ConfigurationError, SignatureRejected

SIGNATURE_HEADER = "X-Signature"
TIMESTAMP_HEADER = "X-Signature-Timestamp"
KEY_HEADER = "Idempotency-Key"
REQUEST_ID_HEADER = "X-Request-Id"  # stands in for a missing Idempotency-Key
SCHEME = "v3"
TOLERANCE_SECONDS = 300
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_SIGNATURE = re.compile(r"v3=([0-9a-fA-F]{64})")
_RETIRED = re.compile(r"(v1|v2)=[0-9a-fA-F]*")
_METHOD = re.compile(r"[A-Za-z]{1,16}")

Query = str | Mapping[str, str | Sequence[str]] | Iterable[tuple[str, str]] | None


def _encode(text: str) -> str:
    # RFC 3986 unreserved characters stay; everything else is %XX (upper case), as JavaScript's
    # encodeURIComponent plus the escape of !'()* the ServiceNow script adds.
    return quote(text, safe="-_.~")


def canonical_path(path: str) -> str:
    """Each segment decoded then percent-encoded: `/publishes/a%20b` and `/publishes/a b` sign alike,
    whether the caller or API Gateway decoded it."""
    return "/".join(_encode(unquote(segment)) for segment in (path or "/").split("/"))


def canonical_query(query: Query) -> str:
    """`key=value` pairs, each part percent-encoded, sorted, joined with `&`. `query` is the raw query
    string (`b=2&a=1`), a mapping (API Gateway's multiValueQueryStringParameters or
    queryStringParameters) or pairs."""
    if not query:
        return ""
    pairs: list[tuple[str, str]] = []
    if isinstance(query, str):
        pairs = parse_qsl(query.lstrip("?"), keep_blank_values=True)
    elif isinstance(query, Mapping):
        for key, values in query.items():
            for value in [values] if isinstance(values, str) else values:
                pairs.append((str(key), str(value)))
    else:
        pairs = [(str(k), str(v)) for k, v in query]
    # Sorted once encoded: plain ASCII, so any client's string sort agrees (UTF-16 vs code points do not).
    return "&".join(f"{k}={v}" for k, v in sorted((_encode(k), _encode(v)) for k, v in pairs))


def string_to_sign(
    timestamp: int | str, method: str, path: str, query: Query, body: bytes | str, key: str | None = None
) -> bytes:
    raw = body.encode() if isinstance(body, str) else body
    head = f"{timestamp}\n{method.upper()}\n{canonical_path(path)}\n{canonical_query(query)}\n{key or ''}\n"
    return head.encode() + raw


def sign(
    secret: str,
    timestamp: int | str,
    method: str,
    path: str,
    query: Query,
    body: bytes | str,
    key: str | None = None,
) -> str:
    """The X-Signature value for the request `method path?query` with `body` and the idempotency key
    `key` (None or empty: it sends none), sent at `timestamp`."""
    signed = string_to_sign(timestamp, method, path, query, body, key)
    return f"{SCHEME}={hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()}"


def signed_headers(
    secret: str,
    method: str,
    path: str,
    body: bytes | str,
    now: float,
    query: Query = None,
    key: str | None = None,
) -> dict[str, str]:
    """The two headers a client adds to a request (the demo, the tests and the docs' example use it);
    `key` is the Idempotency-Key (or X-Request-Id) the request sends."""
    timestamp = str(int(now))
    return {
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: sign(secret, timestamp, method, path, query, body, key),
    }


def request_key(headers: Mapping[str, str]) -> str:
    """The idempotency key a request carries, exactly as the API takes it (not stripped: the key intake
    stores is the key signed): Idempotency-Key when present, else X-Request-Id, else empty."""
    lower = {str(name).lower(): value for name, value in headers.items()}
    if KEY_HEADER.lower() in lower:
        return str(lower[KEY_HEADER.lower()])
    return str(lower.get(REQUEST_ID_HEADER.lower()) or "")


def verify(
    secrets: Sequence[str],
    headers: Mapping[str, str],
    method: str,
    path: str,
    query: Query,
    body: bytes,
    now: float,
    tolerance: float = TOLERANCE_SECONDS,
) -> None:
    """Raise SignatureRejected unless one of `secrets` signed this request within `tolerance` of `now`.

    `headers` must be case-insensitive or lower-cased."""
    if not secrets:
        raise ConfigurationError("no request-signing secret is configured")
    timestamp = _header(headers, TIMESTAMP_HEADER)
    signature = _header(headers, SIGNATURE_HEADER)
    if timestamp is None or signature is None:
        raise SignatureRejected(f"sign the request: send {TIMESTAMP_HEADER} and {SIGNATURE_HEADER}")
    if not _TIMESTAMP.fullmatch(timestamp):
        raise SignatureRejected(f"{TIMESTAMP_HEADER} must be unix seconds")
    if abs(now - int(timestamp)) > tolerance:
        raise SignatureRejected(
            f"{TIMESTAMP_HEADER} is more than {tolerance / 60:g} minutes from the server's clock;"
            " check the caller's clock and sign each request when it is sent"
        )
    parts = [part.strip() for part in signature.split(",")]
    offered = [m.group(1).lower() for part in parts if (m := _SIGNATURE.fullmatch(part))]
    if not offered:
        retired = next((m.group(1) for part in parts if (m := _RETIRED.fullmatch(part))), None)
        if retired is not None:
            raise SignatureRejected(
                f"{retired} signatures are no longer accepted: sign with v3 (method, path, query,"
                f" Idempotency-Key and body; docs/servicenow.md) in {SIGNATURE_HEADER}"
            )
        raise SignatureRejected(f"{SIGNATURE_HEADER} must be v3=<64 hex digits>")
    if not _METHOD.fullmatch(method or ""):
        raise SignatureRejected("the request has no method to check the signature against")
    key = request_key(headers)
    matched = False
    for secret in secrets:
        expected = sign(secret, timestamp, method, path, query, body, key).split("=", 1)[1]
        for candidate in offered:
            # No early exit: the time taken does not depend on which secret or value matched.
            matched |= hmac.compare_digest(expected.encode(), candidate.encode())
    if not matched:
        raise SignatureRejected(
            "the signature does not match this request (method, path, query, Idempotency-Key, body)"
            " and timestamp"
        )


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
