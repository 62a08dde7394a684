"""Genesys' agent-schedule query, which may answer `Processing` and deliver its result later.

`BuAsyncAgentSchedulesQueryResponse`: `Complete` with `result`, `Complete` with a `downloadUrl` ("The
URL from which to download the result if it is too large to pass directly"), or `Processing` with an
operationId, whose result's `downloadUrl` comes by notification (recorded in a `QueryBook` by the
genesys_events function). Until then a call raises `GenesysPending` (a transient error: the caller
backs off on the queue), and the query stays in the book, so the next call, in any container,
collects it instead of starting another.

Whether that notification reaches a client-credentials integration is not documented. A query whose
result has not come in PENDING_QUERY_MAX_AGE is taken as unanswered (`mark_unanswered`): from then on
that management unit's agents are asked in parts (`userIds`, QUERY_PART at a time, halved while a part
still answers Processing), each part small enough to answer at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from wfm_publish.errors import GenesysPending, GenesysServerError
from wfm_publish.genesys_wire import (
    AGENT_SCHEDULES_QUERY,
    UNANSWERED,
    AgentSchedule,
    OperationOutcome,
    PendingQuery,
    QueryBook,
    agent_schedules_of,
)

__all__ = ["PENDING_QUERY_MAX_AGE", "MemoryQueryBook", "query_agent_schedules", "query_key"]

PENDING_QUERY_MAX_AGE = 600.0  # an async query not seen finished by then: its result never comes
QUERY_PART = 64  # agents per query once a whole management unit's query went unanswered


def query_key(bu_id: str, week_id: str, schedule_id: str, management_unit_id: str) -> str:
    """One query per management unit of a schedule's week (the table's `querykey#`)."""
    return "|".join((bu_id, week_id, schedule_id, management_unit_id))


def query_agent_schedules(
    book: QueryBook,
    key: str,
    *,
    ask: Callable[[list[str] | None], dict[str, Any]],
    agents: Callable[[], list[str]],
    download: Callable[[str], dict[str, Any]],
    wall_clock: Callable[[], float],
    schedule_id: str,
) -> list[AgentSchedule]:
    """The agent schedules of the query `key`: collected from the book when it holds that query, else
    asked (`ask(userIds)` posts the query, None for the whole management unit; `agents` lists the
    management unit's agents; `download` GETs a result's download URL; `wall_clock` dates it)."""
    pending = book.pending_query(key)
    if pending is not None and pending.status == UNANSWERED:
        return _in_parts(ask, agents(), download, schedule_id)
    if pending is not None:
        if wall_clock() - pending.started_at < PENDING_QUERY_MAX_AGE or pending.download_url:
            return _collect(book, key, pending, download)
        book.mark_unanswered(key, wall_clock())  # its result never came: ask in parts, now and from now on
        return _in_parts(ask, agents(), download, schedule_id)
    answer = ask(None)
    found = _answered(answer, download, schedule_id)
    if found is not None:
        return found
    pending = book.begin_query(key, str(answer["operationId"]), wall_clock())
    return _collect(book, key, pending, download)


def _answered(
    answer: dict[str, Any], download: Callable[[str], dict[str, Any]], schedule_id: str
) -> list[AgentSchedule] | None:
    """A query's answer: the schedules when Complete (its result, or downloaded from its downloadUrl),
    None when Processing (the result comes later), an error when it ended otherwise."""
    status = str(answer.get("status") or "Complete")
    if status == "Complete":
        if answer.get("result") is not None:
            return agent_schedules_of(answer["result"])
        if answer.get("downloadUrl"):
            return agent_schedules_of(download(str(answer["downloadUrl"])))
        return []
    if status == "Processing" and answer.get("operationId"):
        return None
    raise GenesysServerError(
        f"agent schedule query for {schedule_id} ended {status}", path=AGENT_SCHEDULES_QUERY
    )


def _in_parts(
    ask: Callable[[list[str] | None], dict[str, Any]],
    agents: list[str],
    download: Callable[[str], dict[str, Any]],
    schedule_id: str,
) -> list[AgentSchedule]:
    """The agents asked QUERY_PART at a time; a part that still answers Processing is asked again in
    halves. One agent whose query answers Processing leaves nothing to split: the error says so."""
    found: list[AgentSchedule] = []
    parts = [agents[i : i + QUERY_PART] for i in range(0, len(agents), QUERY_PART)]
    while parts:
        part = parts.pop(0)
        schedules = _answered(ask(part), download, schedule_id)
        if schedules is not None:
            found += schedules
        elif len(part) > 1:
            parts[:0] = [part[: len(part) // 2], part[len(part) // 2 :]]
        else:
            raise GenesysServerError(
                f"agent schedule query for {schedule_id}: a one-agent query answers Processing and no "
                "result notification arrives (the EventBridge integration's query result topic)",
                path=AGENT_SCHEDULES_QUERY,
            )
    return found


def _collect(
    book: QueryBook, key: str, pending: PendingQuery, download: Callable[[str], dict[str, Any]]
) -> list[AgentSchedule]:
    if pending.status == "Processing":
        raise GenesysPending(
            f"agent schedule query {pending.operation_id} is still processing",
            operation_id=pending.operation_id,
            path=AGENT_SCHEDULES_QUERY,
        )
    if pending.status == "Complete" and pending.download_url:
        schedules = agent_schedules_of(download(pending.download_url))
        book.end_query(key)  # collected: the next call is a new query
        return schedules
    book.end_query(key)
    raise GenesysServerError(
        f"agent schedule query {pending.operation_id} ended {pending.status}", path=AGENT_SCHEDULES_QUERY
    )


class MemoryQueryBook:
    """A QueryBook (and genesys_events.EventSink) in one process: notifications are handed to it
    directly (a single process, the tests)."""

    def __init__(self) -> None:
        self._keys: dict[str, tuple[str, float]] = {}
        self._results: dict[str, str | None] = {}  # operation id -> downloadUrl
        self.outcomes: dict[str, OperationOutcome] = {}
        self._unanswered: dict[str, float] = {}
        self._lock = threading.Lock()

    def pending_query(self, key: str) -> PendingQuery | None:
        with self._lock:
            if key in self._unanswered:
                return PendingQuery("", self._unanswered[key], UNANSWERED)
            held = self._keys.get(key)
            if held is None:
                return None
            if held[0] in self._results:
                return PendingQuery(held[0], held[1], "Complete", self._results[held[0]])
            return PendingQuery(held[0], held[1])

    def begin_query(self, key: str, operation_id: str, started_at: float) -> PendingQuery:
        with self._lock:
            self._keys.setdefault(key, (operation_id, started_at))
        return self.pending_query(key) or PendingQuery(operation_id, started_at)

    def end_query(self, key: str) -> None:
        with self._lock:
            held = self._keys.pop(key, None)
            if held is not None:
                self._results.pop(held[0], None)

    def mark_unanswered(self, key: str, at: float) -> None:
        with self._lock:
            self._unanswered[key] = at

    def record_query_result(self, operation_id: str, download_url: str | None, at: float) -> bool:
        with self._lock:
            if operation_id in self._results:
                return False  # a duplicate
            self._results[operation_id] = download_url
            return True

    def record_operation(self, outcome: OperationOutcome) -> bool:
        with self._lock:
            if not outcome.supersedes(self.outcomes.get(outcome.operation_id)):
                return False
            self.outcomes[outcome.operation_id] = outcome
            return True

    def operation_outcome(self, operation_id: str) -> OperationOutcome | None:
        """As `DynamoJobStore.operation_outcome`."""
        with self._lock:
            return self.outcomes.get(operation_id)
