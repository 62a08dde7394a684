"""Calling the publish API as ServiceNow does: every request signed (docs/servicenow.md).

    requests.post(f"{api}/publishes", json=body, headers={"Idempotency-Key": key}, auth=SignedAuth(secret))

The signature covers the method, the path, the query, the Idempotency-Key (or X-Request-Id) and the exact
bytes sent, so it is computed on the prepared request, after requests has serialised the body and set
the headers: add the key to the request's headers, not afterwards. The path signed is the API's resource path:
the URL's path less `base_path` (the stage, `/prod`, when calling API Gateway's stage URL; nothing for
the local front, which serves without a stage).
"""

from __future__ import annotations

import os
import time
from urllib.parse import urlsplit

import requests

from wfm_publish.signature import request_key, signed_headers

DEFAULT_HMAC_SECRET = "wfm-publish-local-hmac-secret"  # noqa: S105 - the local stack's fixed default
HMAC_SECRET_VARIABLE = "WFM_PUBLISH_HMAC_SECRET"  # noqa: S105 - a variable name


def local_hmac_secret(explicit: str | None = None) -> str:
    """--hmac-secret, else $WFM_PUBLISH_HMAC_SECRET, else the fixed local default."""
    return explicit or os.environ.get(HMAC_SECRET_VARIABLE) or DEFAULT_HMAC_SECRET


class SignedAuth(requests.auth.AuthBase):
    """Adds X-Signature-Timestamp and X-Signature to each request; `skew` shifts the timestamp,
    `base_path` is the part of the URL's path before the API's resource path (the stage)."""

    def __init__(self, secret: str, skew: float = 0.0, base_path: str = "") -> None:
        self.secret = secret
        self.skew = skew
        self.base_path = base_path.rstrip("/")

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers.update(sign_prepared(request, self.secret, time.time() + self.skew, self.base_path))
        return request


def sign_prepared(
    request: requests.PreparedRequest, secret: str, now: float, base_path: str = ""
) -> dict[str, str]:
    """The signature headers for a prepared request (SignedAuth, schemathesis' hook)."""
    body = request.body or b""
    raw = body.encode() if isinstance(body, str) else body
    url = urlsplit(request.url or "")
    path = url.path or "/"
    if base_path and path.startswith(base_path + "/"):
        path = path[len(base_path) :]
    key = request_key(request.headers)  # Idempotency-Key (or X-Request-Id): signed too
    return signed_headers(secret, request.method or "GET", path, raw, now, query=url.query, key=key)
