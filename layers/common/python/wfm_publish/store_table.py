"""The jobs table's calls, under every store write: a conditional put or update that answers, when
its condition fails, with the item as it is (ReturnValuesOnConditionCheckFailure), and DynamoDB's
errors as StoreError. `ours` reads our own mark in that item: an earlier write of ours whose answer
was lost (store.py says why every write carries one).
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from wfm_publish.errors import StoreError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

DAY = 86_400


class Table:
    """One table, hash key `pk`; its items live until the last moment they are needed plus the
    retention (`JOB_TTL_DAYS`)."""

    def __init__(self, client: DynamoDBClient, table: str, ttl_days: int = 30) -> None:
        self._db = client
        self._table = table
        self._retention = ttl_days * DAY

    def _expiry(self, needed_until: float) -> dict[str, Any]:
        return expiry(needed_until, self._retention)

    def _get(self, pk: str) -> dict[str, Any] | None:
        answer = self._call(
            self._db.get_item, TableName=self._table, Key={"pk": {"S": pk}}, ConsistentRead=True
        )
        item: dict[str, Any] | None = answer.get("Item")
        return item

    def _put(
        self, item: dict[str, Any], condition: str, names: dict[str, str], values: dict[str, Any]
    ) -> None:
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "Item": item,
            "ConditionExpression": condition,
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        if names:
            kwargs["ExpressionAttributeNames"] = names
        if values:
            kwargs["ExpressionAttributeValues"] = values
        self._call(self._db.put_item, **kwargs)

    def _update(
        self,
        key: dict[str, Any],
        update: str,
        condition: str,
        names: dict[str, str],
        values: dict[str, Any],
    ) -> None:
        self._call(
            self._db.update_item,
            TableName=self._table,
            Key={"pk": key},
            UpdateExpression=update,
            ConditionExpression=condition,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )

    @staticmethod
    def _call(operation: Any, **kwargs: Any) -> dict[str, Any]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            answer: dict[str, Any] = operation(**kwargs)
            return answer
        except ClientError as exc:
            error = exc.response.get("Error", {})
            if error.get("Code") == "ConditionalCheckFailedException":
                old: dict[str, Any] | None = exc.response.get("Item")  # type: ignore[assignment]
                raise ConditionFailed(old) from exc
            raise StoreError(f"DynamoDB {error.get('Code', 'error')}: {error.get('Message', exc)}") from exc
        except BotoCoreError as exc:
            raise StoreError(f"DynamoDB unreachable: {exc}") from exc


class ConditionFailed(Exception):
    """A write's condition failed; `item` is the item as it found it (None: there was none)."""

    def __init__(self, item: dict[str, Any] | None) -> None:
        super().__init__("condition failed")
        self.item = item


def expiry(needed_until: float, retention: float) -> dict[str, Any]:
    """The TTL attribute: never before the item is last needed (a job's deadline, or now)."""
    return {"expiresAt": {"N": str(int(needed_until + retention))}}


def write_id() -> str:
    return uuid.uuid4().hex


def ours(item: dict[str, Any] | None, attribute: str, mark: str) -> bool:
    """The item as the failed condition found it carries our own mark: our earlier write landed."""
    return bool(item) and item.get(attribute, {}).get("S") == mark  # type: ignore[union-attr]
