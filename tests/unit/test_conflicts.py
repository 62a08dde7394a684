"""Each kind of 409 is told apart by the Genesys error body and a fresh read of the schedule."""

from wfm_publish.conflicts import ConflictKind, classify
from wfm_publish.genesys import Schedule
from wfm_publish.models import GenesysErrorBody


def schedule(version: int, published: bool = False) -> Schedule:
    return Schedule.model_validate({"id": "s", "published": published, "metadata": {"version": version}})


def body(error_code: str, message: str = "") -> GenesysErrorBody:
    return GenesysErrorBody.model_validate(
        {"status": 409, "code": "conflict", "message": message, "details": [{"errorCode": error_code}]}
    )


def test_our_update_already_applied_is_done_not_an_error() -> None:
    assert (
        classify(body("wfm.schedule.update.in.progress"), schedule(5, published=True), 4)
        is ConflictKind.ALREADY_PUBLISHED
    )


def test_a_moved_version_is_stale() -> None:
    assert classify(body("wfm.schedule.version.mismatch"), schedule(5), 4) is ConflictKind.STALE_VERSION


def test_telephony_provisioning_goes_back_to_delayed_validation() -> None:
    kind = classify(body("wfm.schedule.telephony.provisioning.in.progress"), schedule(4), 4)
    assert kind is ConflictKind.TELEPHONY_SETTLING


def test_another_update_running_is_waited_for() -> None:
    assert (
        classify(body("wfm.schedule.update.in.progress"), schedule(4), 4) is ConflictKind.PUBLISH_IN_PROGRESS
    )


def test_anything_else_is_unknown() -> None:
    assert classify(body("something.else", "nope"), schedule(4), 4) is ConflictKind.UNKNOWN
    assert classify(None, schedule(4), 4) is ConflictKind.UNKNOWN
