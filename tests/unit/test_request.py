"""The ServiceNow contract: the seed payload is accepted verbatim; bad input names each field."""

import json

import pytest
from pydantic import ValidationError

from wfm_publish.models import PublishRequest, ValidationMode, field_errors

SEED = (
    '{"scheduleId": "…", "publishTime": "2023-10-27T14:00:00Z", "validationMode": "strict",'
    ' "telephonySync": {"enabled": true, "retryCount": 3, "delayMs": 5000}}'
)


def test_the_seed_payload_from_servicenow_is_accepted_verbatim() -> None:
    body = json.loads(SEED)
    body["scheduleId"] = "sched-1"
    request = PublishRequest.model_validate(body)
    assert request.schedule_id == "sched-1"
    assert request.validation_mode is ValidationMode.STRICT
    assert request.telephony_sync.retry_count == 3
    assert request.telephony_sync.delay_ms == 5000
    assert request.publish_time is not None and request.publish_time.utcoffset() is not None
    assert request.business_unit_id is None and request.week_id is None


def test_business_unit_and_week_may_be_added() -> None:
    request = PublishRequest.model_validate(
        {"scheduleId": "s", "businessUnitId": "bu-1", "weekId": "2023-10-23"}
    )
    assert request.business_unit_id == "bu-1"
    assert request.week_id is not None and request.week_id.isoformat() == "2023-10-23"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "scheduleId"),
        ({"scheduleId": "s", "publishTime": "2023-10-27T14:00:00"}, "publishTime"),
        ({"scheduleId": "s", "validationMode": "lenient"}, "validationMode"),
        ({"scheduleId": "s", "telephonySync": {"retryCount": -1}}, "telephonySync.retryCount"),
        ({"scheduleId": "s", "surprise": 1}, "surprise"),
        ({"scheduleId": "s/../x"}, "scheduleId"),
        ({"scheduleId": "s", "weekId": "next week"}, "weekId"),
        ({"scheduleId": "s", "deadlineSeconds": "3600"}, "deadlineSeconds"),
        ({"scheduleId": "s", "deadlineSeconds": 30}, "deadlineSeconds"),
    ],
)
def test_bad_input_names_the_field(body: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        PublishRequest.model_validate(body)
    assert field in [e["field"] for e in field_errors(caught.value)]


@pytest.mark.parametrize(
    "body",
    [
        {"scheduleId": "sched-1\n"},
        {"scheduleId": "sched-1", "businessUnitId": "bu-1\n"},
        {"scheduleId": "sched-1", "callback": {"table": "change_request\n", "sysId": "0" * 32}},
        {"scheduleId": "sched-1", "callback": {"table": "change_request", "sysId": "0" * 32 + "\n"}},
    ],
)
def test_an_id_with_a_trailing_newline_is_refused(body: dict[str, object]) -> None:
    """Python's `$` matches before a final newline: every whole-input pattern must refuse it."""
    with pytest.raises(ValidationError):
        PublishRequest.model_validate(body)
