"""Calling the publish API as ServiceNow does: every request signed (docs/servicenow.md).

    requests.post(f"{api}/publishes", json=body, headers={"Idempotency-Key": key}, auth=SignedAuth(secret))

The signature covers the exact bytes sent, so it is computed on the prepared request, after requests
has serialised the body.
"""

from __future__ import annotations

import os
import time

import requests

from wfm_publish.signature import signed_headers

DEFAULT_HMAC_SECRET = "wfm-publish-local-hmac-secret"  # noqa: S105 - the local stack's fixed default
HMAC_SECRET_VARIABLE = "WFM_PUBLISH_HMAC_SECRET"  # noqa: S105 - a variable name


def local_hmac_secret(explicit: str | None = None) -> str:
    """--hmac-secret, else $WFM_PUBLISH_HMAC_SECRET, else the fixed local default."""
    return explicit or os.environ.get(HMAC_SECRET_VARIABLE) or DEFAULT_HMAC_SECRET


class SignedAuth(requests.auth.AuthBase):
    """Adds X-Signature-Timestamp and X-Signature to each request; `skew` shifts the timestamp."""

    def __init__(self, secret: str, skew: float = 0.0) -> None:
        self.secret = secret
        self.skew = skew

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        body = request.body or b""
        raw = body.encode() if isinstance(body, str) else body
        request.headers.update(signed_headers(self.secret, raw, time.time() + self.skew))
        return request
