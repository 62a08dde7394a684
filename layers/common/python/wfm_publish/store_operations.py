"""The store's items for Genesys asynchronous operations (genesys_events, genesys_queries), mixed into
store.DynamoJobStore:

`querykey#<bu|week|schedule|mu>` -> the operation id of the agent-schedule query Genesys answered
`Processing` for it, or `unanswered` once such a query's result never came (asked in parts from then
on); `query#<operationId>` -> where its result is (`downloadUrl`, from the query
result notification); `operation#<operationId>` -> how a schedule update ended (the schedules
topic). Conditional puts: two containers asking at once share one query, and a duplicate or late
notification changes nothing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from typing import TYPE_CHECKING, Any

from wfm_publish.store_table import ConditionFailed, Table

if TYPE_CHECKING:
    from wfm_publish.genesys_wire import OperationOutcome, PendingQuery


class GenesysOperations(Table):
    def pending_query(self, key: str) -> PendingQuery | None:
        from wfm_publish.genesys_wire import UNANSWERED, PendingQuery

        held = self._get(f"querykey#{key}")
        if not held:
            return None
        if "unanswered" in held:
            return PendingQuery("", float(held["startedAt"]["N"]), UNANSWERED)
        operation_id = held["operationId"]["S"]
        started_at = float(held["startedAt"]["N"])
        result = self._get(f"query#{operation_id}") or {}
        if "completedAt" not in result:
            return PendingQuery(operation_id, started_at)
        url = result.get("downloadUrl", {}).get("S")
        return PendingQuery(operation_id, started_at, "Complete", url)

    def begin_query(self, key: str, operation_id: str, started_at: float) -> PendingQuery:
        """Remember the query for `key` unless another container already did (then theirs holds)."""
        from wfm_publish.genesys_wire import PendingQuery

        item = {
            "pk": {"S": f"querykey#{key}"},
            "operationId": {"S": operation_id},
            "startedAt": {"N": f"{started_at:.3f}"},
            **self._expiry(started_at),
        }
        with contextlib.suppress(ConditionFailed):
            self._put(item, "attribute_not_exists(pk)", {}, {})
        return self.pending_query(key) or PendingQuery(operation_id, started_at)

    def end_query(self, key: str) -> None:
        """Forget the query for `key` (collected, failed or lost); its result item expires by TTL."""
        self._call(self._db.delete_item, TableName=self._table, Key={"pk": {"S": f"querykey#{key}"}})

    def mark_unanswered(self, key: str, at: float) -> None:
        """A query for `key` answered Processing and its result never came (genesys_queries)."""
        self._call(
            self._db.put_item,
            TableName=self._table,
            Item={
                "pk": {"S": f"querykey#{key}"},
                "unanswered": {"BOOL": True},
                "startedAt": {"N": f"{at:.3f}"},
                **self._expiry(at),
            },
        )

    def record_query_result(self, operation_id: str, download_url: str | None, at: float) -> bool:
        """The query result notification: once per operation (False: a duplicate)."""
        values: dict[str, Any] = {":at": {"N": f"{at:.3f}"}, ":exp": self._expiry(at)["expiresAt"]}
        update = "SET completedAt = :at, expiresAt = :exp"
        if download_url:
            update += ", downloadUrl = :url"
            values[":url"] = {"S": download_url}
        try:
            self._call(
                self._db.update_item,
                TableName=self._table,
                Key={"pk": {"S": f"query#{operation_id}"}},
                UpdateExpression=update,
                ConditionExpression="attribute_not_exists(completedAt)",
                ExpressionAttributeValues=values,
            )
        except ConditionFailed:
            return False
        return True

    def record_operation(self, outcome: OperationOutcome) -> bool:
        """A schedules-topic notification: kept unless an end is already recorded (False: not kept)."""
        item: dict[str, Any] = {
            "pk": {"S": f"operation#{outcome.operation_id}"},
            "status": {"S": outcome.status},
            "at": {"N": f"{outcome.at:.3f}"},
            "doc": {"S": json.dumps(dataclasses.asdict(outcome), separators=(",", ":"))},
            **self._expiry(outcome.at),
        }
        # Only an end replaces a Processing; nothing replaces an end (OperationOutcome.supersedes).
        condition = "attribute_not_exists(pk)" + (" OR #s = :processing" if outcome.ended else "")
        names, values = (
            ({"#s": "status"}, {":processing": {"S": "Processing"}}) if outcome.ended else ({}, {})
        )
        try:
            self._put(item, condition, names, values)
        except ConditionFailed:
            return False
        return True

    def operation_outcome(self, operation_id: str) -> OperationOutcome | None:
        from wfm_publish.genesys_wire import OperationOutcome

        item = self._get(f"operation#{operation_id}")
        return OperationOutcome(**json.loads(item["doc"]["S"])) if item else None
