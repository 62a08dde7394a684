"""Asynchronous Genesys answers kept in the jobs table (moto server) and fed by the org's notifications.

The simulator runs over HTTP; its EventBridge events are read from `/__sim/notifications` and handed
to `genesys_events.handle`, as the genesys_events function does with the partner bus.
"""

from __future__ import annotations

from typing import Any

import pytest
import requests

from tests.support.genesys import Org, contract_org, serving
from wfm_publish import genesys as g
from wfm_publish import genesys_events
from wfm_publish.errors import GenesysPending
from wfm_publish.genesys_wire import OperationOutcome
from wfm_publish.store import DynamoJobStore

pytestmark = pytest.mark.integration

SCHED = ("bu-demo", "2023-10-23", "sched-demo")
NOW = 1_700_000_000.0


def deliver(org: Org, store: DynamoJobStore, after: int = 0) -> int:
    """Hand the org's new notifications to genesys_events, as EventBridge would; the new cursor."""
    answer = requests.get(org.server.url + "/__sim/notifications", params={"after": after}, timeout=5).json()
    for event in answer["events"]:
        genesys_events.handle(event, store, org.clock.now())
    return int(answer["total"])


def test_a_query_one_container_started_is_collected_by_another_from_the_table(store: DynamoJobStore) -> None:
    with serving(contract_org(events=[], asyncAgentQueryOver=3, asyncQuerySeconds=2)) as org:
        first = org.new_client(queries=store)
        second = org.new_client(queries=store)
        with pytest.raises(GenesysPending) as asked:
            first.agent_schedules(*SCHED, "mu-demo")
        with pytest.raises(GenesysPending) as again:  # another container, the same query
            second.agent_schedules(*SCHED, "mu-demo")
        assert again.value.operation_id == asked.value.operation_id
        org.clock.advance(3)
        deliver(org, store)
        assert len(second.agent_schedules(*SCHED, "mu-demo")) == 6
        calls = org.calls()
        assert calls[f"POST {g.AGENT_SCHEDULES_QUERY}"] == 1
        # Collected: the key is free again, and the next call is a new query.
        assert store.pending_query("bu-demo|2023-10-23|sched-demo|mu-demo") is None


def test_a_query_result_delivered_twice_is_recorded_once(store: DynamoJobStore) -> None:
    event = {
        "detail-type": "v2.workforcemanagement.users.u-1.schedules.query",
        "detail": {
            "topicName": "v2.workforcemanagement.users.u-1.schedules.query",
            "eventBody": {"operationId": "op-1", "businessUnitId": "bu", "downloadUrl": "https://x/1"},
            "metadata": {"CorrelationId": "c"},
        },
    }
    assert genesys_events.handle(event, store, NOW).recorded
    assert not genesys_events.handle(event, store, NOW + 1).recorded
    # The result came before the query's own write (unordered delivery): the query still sees it.
    pending = store.begin_query("k", "op-1", NOW)
    assert (pending.status, pending.download_url) == ("Complete", "https://x/1")


def outcome(status: str, at: float = NOW, op: str = "op-7") -> OperationOutcome:
    result: dict[str, Any] | None = {"published": True} if status == "Complete" else None
    return OperationOutcome(op, status, "Update", "bu-demo", result, at)


def test_an_update_outcome_is_final_whatever_order_or_repeats_it_arrives_in(store: DynamoJobStore) -> None:
    assert store.record_operation(outcome("Processing"))
    assert not store.record_operation(outcome("Processing", NOW + 1))  # a duplicate
    assert store.record_operation(outcome("Complete", NOW + 2))
    assert not store.record_operation(outcome("Complete", NOW + 3))  # a duplicate end
    assert not store.record_operation(outcome("Processing", NOW + 4))  # a late Processing
    assert not store.record_operation(outcome("Error", NOW + 5))  # an end is final
    held = store.operation_outcome("op-7")
    assert held is not None and (held.status, held.result) == ("Complete", {"published": True})
    # The end first, then the Processing sent before it: still the end.
    assert store.record_operation(outcome("Error", op="op-8"))
    assert not store.record_operation(outcome("Processing", op="op-8"))
    assert store.operation_outcome("op-8").status == "Error"  # type: ignore[union-attr]
    assert store.operation_outcome("op-unknown") is None


def test_the_simulators_update_outcomes_reach_the_table_by_operation_id(store: DynamoJobStore) -> None:
    events = [{"type": "publishOperation", "scheduleId": "sched-demo", "durationSeconds": 1, "failFirst": 1}]
    with serving(contract_org(events=events)) as org:
        failed = org.client.publish(*SCHED[:2], org.client.schedule(*SCHED))
        org.clock.advance(2)
        applied = org.client.publish(*SCHED[:2], org.client.schedule(*SCHED))
        org.clock.advance(2)
        cursor = deliver(org, store)
        assert deliver(org, store, 0) == cursor  # delivered twice: nothing changes
    assert failed.operation_id and applied.operation_id
    error = store.operation_outcome(failed.operation_id)
    done = store.operation_outcome(applied.operation_id)
    assert error is not None and (error.status, error.result, error.business_unit_id) == (
        "Error",
        None,
        "bu-demo",
    )
    assert done is not None and done.status == "Complete" and done.result is not None
    assert done.result["metadata"]["version"] == 4
