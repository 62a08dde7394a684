"""genesys_events.handle: what each EventBridge event from the Genesys partner bus records."""

from __future__ import annotations

import copy
from typing import Any

from wfm_publish import genesys_events
from wfm_publish.genesys import MemoryQueryBook

SCHEDULES = "v2.workforcemanagement.businessunits.bu-1.schedules"
QUERY = "v2.workforcemanagement.users.client-1.schedules.query"


def event(topic: str, body: Any) -> dict[str, Any]:
    detail = {"topicName": topic, "eventBody": body, "metadata": {"CorrelationId": "c-1"}}
    return {"version": "0", "id": "e-1", "detail-type": topic, "source": "aws.partner/x", "detail": detail}


def test_a_schedule_outcome_is_recorded_once_and_an_end_is_final() -> None:
    book = MemoryQueryBook()
    processing = event(SCHEDULES, {"status": "Processing", "operationId": "op-1", "eventType": "Update"})
    error = event(SCHEDULES, {"status": "Error", "operationId": "op-1"})  # nothing but the id, as reported
    assert genesys_events.handle(processing, book, 1.0).recorded
    handled = genesys_events.handle(error, book, 2.0)
    assert (handled.topic, handled.operation_id, handled.recorded) == (SCHEDULES, "op-1", True)
    assert not genesys_events.handle(copy.deepcopy(error), book, 3.0).recorded  # a duplicate
    assert not genesys_events.handle(processing, book, 4.0).recorded  # late
    complete = event(SCHEDULES, {"status": "Complete", "operationId": "op-1", "result": {"published": True}})
    assert not genesys_events.handle(complete, book, 5.0).recorded  # an end never moves
    outcome = book.operation_outcome("op-1")
    assert outcome is not None
    assert (outcome.status, outcome.business_unit_id, outcome.at, outcome.ended) == (
        "Error",
        "bu-1",
        2.0,
        True,
    )


def test_a_query_result_completes_the_pending_query_once() -> None:
    book = MemoryQueryBook()
    book.begin_query("k", "op-2", 0.0)
    body = {"operationId": "op-2", "businessUnitId": "bu-1", "downloadUrl": "https://signed/2"}
    assert genesys_events.handle(event(QUERY, body), book, 1.0).recorded
    assert not genesys_events.handle(event(QUERY, body), book, 2.0).recorded
    pending = book.pending_query("k")
    assert pending is not None and (pending.status, pending.download_url) == ("Complete", "https://signed/2")


def test_other_topics_and_malformed_bodies_are_ignored() -> None:
    book = MemoryQueryBook()
    edge = event("v2.telephony.providers.edges.e-1", {"id": "e-1", "onlineStatus": "OFFLINE"})
    assert genesys_events.handle(edge, book, 1.0) == genesys_events.Handled(edge["detail-type"])
    assert not genesys_events.handle(event(SCHEDULES, {"status": "Complete"}), book, 1.0).recorded  # no id
    assert not genesys_events.handle(event(SCHEDULES, "not an object"), book, 1.0).recorded
    assert not genesys_events.handle({"detail": None}, book, 1.0).recorded
    assert book.outcomes == {}
