"""schemathesis fuzzes the committed OpenAPI document (docs/openapi.json) against the local stack.

How requests get signed: the document declares X-Signature and X-Signature-Timestamp as security
schemes, so schemathesis puts (empty) placeholders for them on each request, and leaves one out when a
check wants to see a request without it. A `requests` auth hook (FillSignature) fills in the
placeholders that are there, on the prepared request, so the signature covers the exact bytes sent,
and adds none that schemathesis left out: its missing-header and ignored-auth checks see the 401. The
handler has no test-only switch: the local stack checks signatures exactly as AWS does. Only the API
key is not checked locally (API Gateway does that on AWS).

The checks are schemathesis' defaults: no 5xx, status codes, content types, headers and bodies as
documented, invalid data refused and valid data accepted.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

from wfm_publish.models import _ID, PUBLISH_TIME_HORIZON_DAYS
from wfm_publish.signature import SIGNATURE_HEADER, TIMESTAMP_HEADER
from wfm_publish_local.client import sign_prepared
from wfm_publish_local.embedded import EmbeddedStack

pytestmark = pytest.mark.e2e
DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


class FillSignature(requests.auth.AuthBase):
    """Sign the request schemathesis sends, filling only the signature headers it put on it."""

    def __init__(self, secret: str) -> None:
        self.secret = secret

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        # Signed as the client signs (method, path, query, body); only the placeholders present are filled.
        signed = sign_prepared(request, self.secret, time.time())
        for name in (TIMESTAMP_HEADER, SIGNATURE_HEADER):
            if name in request.headers:
                request.headers[name] = signed[name]
        return request


@pytest.fixture(scope="module")
def stack() -> Iterator[EmbeddedStack]:
    with EmbeddedStack(visibility_timeout=2) as running:
        yield running


def _without_api_key(document: dict[str, Any]) -> dict[str, Any]:
    """The committed document, less its x-api-key requirement: API Gateway checks the key on AWS and
    the local front does not, so schemathesis must not expect a 401 without one here."""
    for requirement in document.get("security", []):
        requirement.pop("apiKey", None)
    return document


# Loaded at import (the fixture-based lazy loader does not run under pytest 9); the base URL is the
# running stack's, given with each call.
# A schema-valid POST may meet an earlier one with the same Idempotency-Key and another body: 422 is then
# the right answer (documented), not a refusal of valid data.
CONFIG = SchemathesisConfig.from_dict(
    {"checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", "401", "404", "409", "422"]}}}
)
schema = schemathesis.openapi.from_dict(_without_api_key(json.loads(DOCUMENT.read_text())), config=CONFIG)


@schema.hook("map_body")
def _publish_time_within_the_horizon(context: Any, body: Any) -> Any:
    """publishTime may be at most 366 days ahead (PUBLISH_TIME_HORIZON_DAYS), a rule JSON Schema cannot
    state (the document's description says it): a generated time past it becomes one that is not. A
    request past it is refused with 400, which tests/e2e/test_api.py checks."""
    if not isinstance(body, dict) or not isinstance(body.get("publishTime"), str):
        return body
    try:
        when = datetime.fromisoformat(body["publishTime"].replace("Z", "+00:00"))
    except ValueError:
        return body  # not a date-time: a negative case, left as generated
    horizon = time.time() + (PUBLISH_TIME_HORIZON_DAYS - 1) * 86_400
    if when.tzinfo is not None and when.timestamp() > horizon:
        return {**body, "publishTime": datetime.fromtimestamp(horizon, UTC).isoformat()}
    return body


@schema.parametrize()
@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_api_matches_its_document_and_never_fails(case: schemathesis.Case, stack: EmbeddedStack) -> None:
    case.call_and_validate(base_url=stack.api_url, auth=FillSignature(stack.hmac_secret), timeout=15)


def test_linked_calls_create_read_and_cancel_publishes(stack: EmbeddedStack) -> None:
    """Stateful: the 202's links feed its publishId to GET and cancel, so real jobs are read (200) and
    cancelled (200, or 409 once they ended), in sequences hypothesis chooses."""

    class Workflow(schema.as_state_machine()):  # type: ignore[misc]
        def before_call(self, case: schemathesis.Case) -> None:
            # Hypothesis replays choices expecting the same answers: a key an earlier example used
            # would answer 422 instead of 202 and change what the links can draw. A valid key is made
            # unique (an invalid one is left to be refused).
            for name, value in list((case.headers or {}).items()):
                if name.lower() == "idempotency-key" and isinstance(value, str) and 0 < len(value) <= 200:
                    case.headers[name] = f"{value}-{uuid.uuid4().hex}"  # type: ignore[index]
            # Likewise a schedule an earlier example left in flight with other options would answer
            # 409 (JOIN_CONFLICT): a valid schedule id is made unique too.
            body = case.body
            if isinstance(body, dict) and isinstance(body.get("scheduleId"), str):
                schedule = body["scheduleId"]
                if 0 < len(schedule) <= 100 and _ID.fullmatch(schedule):
                    case.body = {**body, "scheduleId": f"{schedule}-{uuid.uuid4().hex[:12]}"}

        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
            return {"base_url": stack.api_url, "auth": FillSignature(stack.hmac_secret), "timeout": 15}

    Workflow.run(
        settings=settings(
            max_examples=40, stateful_step_count=6, deadline=None, suppress_health_check=list(HealthCheck)
        )
    )
