"""docs/openapi.json is what the code generates, and says what the template and the handler do."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from wfm_publish_local.openapi import COMMITTED, check, generate
from wfm_publish_local.template import Template

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    generated: dict[str, Any] = json.loads(generate())
    return generated


def test_the_committed_document_is_what_the_code_generates() -> None:
    assert check(COMMITTED) is None, (
        "docs/openapi.json drifted from the code: run `make openapi` and commit it"
    )


def test_a_drifted_document_is_caught(tmp_path: Path) -> None:
    stale = tmp_path / "openapi.json"
    stale.write_text(COMMITTED.read_text().replace("createPublish", "postPublish"))
    assert "make openapi" in (check(stale) or "")


def test_every_api_route_of_the_template_is_documented_and_nothing_else(document: dict[str, Any]) -> None:
    template = Template.load(ROOT / "template.yaml")
    routes = {(e.method.lower(), e.path) for f in template.functions.values() for e in f.api_events}
    documented = {(m, path) for path, ops in document["paths"].items() for m in ops}
    assert documented == routes


def test_every_refusal_is_a_problem_body_and_every_operation_is_signed(document: dict[str, Any]) -> None:
    assert document["security"] == [{"apiKey": [], "signature": [], "signatureTimestamp": []}]
    schemes = document["components"]["securitySchemes"]
    assert (schemes["signature"]["name"], schemes["signatureTimestamp"]["name"]) == (
        "X-Signature",
        "X-Signature-Timestamp",
    )
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            answers = operation["responses"]
            assert {"401", "500", "503"} <= set(answers), (method, path)
            for status, answer in answers.items():
                ref = answer["content"]["application/json"]["schema"]["$ref"]
                if int(status) >= 400:
                    assert ref.endswith("/ProblemBody"), (method, path, status)
    # Powertools' own validation answers are replaced by the API's (400 and 500 ProblemBody).
    assert not {"HTTPValidationError", "ValidationError", "ResponseValidationError"} & set(
        document["components"]["schemas"]
    )


def test_post_publishes_answers(document: dict[str, Any]) -> None:
    operation = document["paths"]["/publishes"]["post"]
    assert set(operation["responses"]) == {"202", "400", "401", "409", "413", "415", "422", "500", "503"}
    accepted = operation["responses"]["202"]
    assert set(accepted["headers"]) == {"Location", "Idempotent-Replayed"}
    assert set(accepted["links"]) == {"GetPublish", "CancelPublish"}
    (key,) = [p for p in operation["parameters"] if p["in"] == "header"]
    assert key["name"].lower() == "idempotency-key" and key["required"] is True
    body = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert body.endswith("/PublishRequest")


def test_the_request_schema_is_the_servicenow_contract(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    request = schemas["PublishRequest"]
    assert request["additionalProperties"] is False  # unknown fields are refused
    assert request["required"] == ["scheduleId"]
    assert {
        "scheduleId",
        "publishTime",
        "validationMode",
        "telephonySync",
        "businessUnitId",
        "weekId",
    } <= set(request["properties"])
    assert "callback" in request["properties"]
    callback = schemas["Callback"]
    assert set(callback["required"]) == {"table", "sysId"}
    assert re.fullmatch(callback["properties"]["sysId"]["pattern"], "46d44a5edb1232007aa4f5261f9619a8")


def test_get_and_cancel_answers(document: dict[str, Any]) -> None:
    get = document["paths"]["/publishes/{publishId}"]["get"]
    assert set(get["responses"]) == {"200", "400", "401", "404", "500", "503"}
    view = document["components"]["schemas"]["PublishView"]
    assert {"status", "reasonCode", "detail", "attempts", "timeline", "capacity", "callback"} <= set(
        view["properties"]
    )
    # Dry runs (issue 11): the request's flag, the view's, and their own end.
    assert {"type": "boolean"} in document["components"]["schemas"]["PublishRequest"]["properties"]["dryRun"][
        "anyOf"
    ]
    assert "dryRun" in view["properties"]
    assert "CHECKED" in document["components"]["schemas"]["JobStatus"]["enum"]
    assert "DRY_RUN" in document["components"]["schemas"]["ReasonCode"]["enum"]
    cancel = document["paths"]["/publishes/{publishId}/cancel"]["post"]
    assert set(cancel["responses"]) == {"200", "400", "401", "404", "409", "500", "503"}


def test_schedule_publish_window_answers(document: dict[str, Any]) -> None:
    get = document["paths"]["/schedules/{scheduleId}/publish"]["get"]
    assert set(get["responses"]) == {"200", "400", "401", "404", "500", "503"}
    (param,) = get["parameters"]
    assert (param["in"], param["name"]) == ("path", "scheduleId")
    assert param["schema"]["pattern"]
    window = document["components"]["schemas"]["SchedulePublish"]
    assert {"scheduleId", "inFlight", "publishId", "status", "since"} <= set(window["properties"])
    assert set(window["required"]) == {"scheduleId", "inFlight"}
    callback = document["components"]["schemas"]["Callback"]
    assert "progress" in callback["properties"] and "progress" not in callback["required"]
