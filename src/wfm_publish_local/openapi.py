"""The publish API's OpenAPI document, generated from the handler's routes and models.

wfm-publish openapi --output docs/openapi.json     (make openapi)
wfm-publish openapi --check docs/openapi.json      (fails when the committed document drifted)
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wfm_publish.api import PROBLEM_DESCRIPTIONS

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler import APIGatewayRestResolver

ROOT = Path(__file__).resolve().parents[2]
HANDLER = ROOT / "functions" / "publish_trigger" / "app.py"
COMMITTED = ROOT / "docs" / "openapi.json"


def generate() -> str:
    """The document as committed: the handler's routes on Powertools' validating resolver
    (`Router.resolver()`), described by `openapi_document`."""

    name = "_wfm_publish_openapi_publish_trigger"
    spec = importlib.util.spec_from_file_location(name, HANDLER)
    if spec is None or spec.loader is None:  # pragma: no cover - a .py file always has a loader
        raise ImportError(f"cannot load {HANDLER}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
        document = json.loads(openapi_document(module.app.resolver()))
    finally:
        sys.modules.pop(name, None)
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def check(path: Path = COMMITTED) -> str | None:
    """None when `path` holds the generated document; otherwise what to do about it."""
    current = path.read_text(encoding="utf-8") if path.is_file() else ""
    if current == generate():
        return None
    return f"{path} is not what the code generates: run `make openapi` and commit the result"


# --- what the routes do not say --------------------------------------------------------------------------


SECURITY_SCHEMES: dict[str, dict[str, str]] = {
    "apiKey": {
        "type": "apiKey",
        "in": "header",
        "name": "x-api-key",
        "description": "API Gateway API key (usage plan: rate and burst limits). "
        "The local stack does not check it.",
    },
    "signature": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Signature",
        "description": "v3=<hex HMAC-SHA256(secret, "
        '"<X-Signature-Timestamp>\\n<METHOD>\\n<path>\\n<canonical query>\\n<Idempotency-Key>\\n'
        "<raw body>\")>: the path without the stage, e.g. /publishes/{publishId}/cancel; the query's pairs "
        "sorted, percent-encoded, joined with &; the Idempotency-Key sent (else X-Request-Id, else empty); "
        "GET signs the empty key and body. v1 and v2 are refused. See docs/servicenow.md.",
    },
    "signatureTimestamp": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Signature-Timestamp",
        "description": "Unix seconds when the request was signed; at most 5 minutes off.",
    },
}


def openapi_document(app: APIGatewayRestResolver) -> str:
    """The OpenAPI document of `app`, as committed in docs/openapi.json (`make openapi`)."""
    from aws_lambda_powertools.event_handler.openapi.models import Server

    document = app.get_openapi_schema(
        title="wfm-publish",
        version="1.0.0",
        description=(
            "Publish Genesys Cloud WFM schedules without 409 Conflicts. Every request is signed "
            "(X-Signature-Timestamp, X-Signature) and, on AWS, carries an API key (x-api-key). "
            "Set-up for ServiceNow and what to do about each answer: docs/servicenow.md."
        ),
        servers=[Server(url="/", description="the API Gateway stage URL (ApiUrl output)")],
        security_schemes=SECURITY_SCHEMES,  # type: ignore[arg-type]
        security=[{"apiKey": [], "signature": [], "signatureTimestamp": []}],
    )
    return _own_problems(json.loads(document.model_dump_json(by_alias=True, exclude_none=True)))


def _own_problems(document: dict[str, Any]) -> str:
    """Powertools adds its own 422 (validation) and 500 (response validation) answers to every route;
    this API answers those cases with 400 and 500 ProblemBody instead (see `install`)."""
    problem = {"$ref": "#/components/schemas/ProblemBody"}
    for path in document.get("paths", {}).values():
        for operation in path.values():
            answers = operation.get("responses", {})
            if _schema_ref(answers.get("422")) == "HTTPValidationError":
                del answers["422"]
            if _schema_ref(answers.get("500")) == "ResponseValidationError":
                answers["500"] = {
                    "description": PROBLEM_DESCRIPTIONS[500],
                    "content": {"application/json": {"schema": problem}},
                }
    schemas = document.get("components", {}).get("schemas", {})
    for _ in range(3):  # HTTPValidationError holds the only reference to ValidationError
        for name in ("HTTPValidationError", "ValidationError", "ResponseValidationError"):
            others = (
                {k: v for k, v in document.items() if k != "components"},
                {k: v for k, v in schemas.items() if k != name},
            )
            if name in schemas and f'"#/components/schemas/{name}"' not in json.dumps(others):
                del schemas[name]
    return json.dumps(document)


def _schema_ref(answer: dict[str, Any] | None) -> str | None:
    ref = str(
        ((answer or {}).get("content", {}).get("application/json", {}).get("schema", {})).get("$ref", "")
    )
    return ref.rsplit("/", 1)[-1] or None
