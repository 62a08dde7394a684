"""The job store: every DynamoDB read and conditional write, and nowhere else.

One table, hash key `pk`: `job#<id>` (the job), `schedule#<id>` (its active job), `idem#<key>`
(an idempotency record), `observation#<key>` (a shared telephony observation, seconds old). Every
write is conditional, so two workers can never both move a job, and a failed condition comes back
with the item as it is (ReturnValuesOnConditionCheckFailure), so the caller learns who won without a
second read.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from wfm_publish.errors import JobAlreadyExists, StaleJob, StoreError
from wfm_publish.models import Job

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

DAY = 86_400
CLAIM_GRACE_SECONDS = 60.0  # longer than any intake takes between claiming and writing its job
OBSERVATION_MAX_BYTES = 300_000  # DynamoDB items stop at 400 KB


class IdempotencyStatus(StrEnum):
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"


@dataclass(frozen=True)
class IdempotencyRecord:
    key: str
    status: IdempotencyStatus
    body_hash: str
    locked_until: float
    response: dict[str, Any] | None = None


class IdempotencyTaken(Exception):
    """The key is already held; `record` is what holds it."""

    def __init__(self, record: IdempotencyRecord) -> None:
        super().__init__(f"idempotency key {record.key} is taken")
        self.record = record


class JobStore(Protocol):
    def create_job(self, job: Job) -> None: ...
    def get_job(self, job_id: str) -> Job | None: ...
    def save_job(self, job: Job) -> Job: ...
    def claim_schedule(self, schedule_id: str, job_id: str, now: float) -> str | None: ...
    def release_schedule(self, schedule_id: str, job_id: str) -> None: ...
    def lock_idempotency(self, key: str, body_hash: str, now: float, lock_seconds: float) -> None: ...
    def complete_idempotency(
        self, key: str, body_hash: str, response: dict[str, Any], now: float
    ) -> None: ...
    def release_idempotency(self, key: str) -> None: ...
    def get_observation(self, key: str) -> tuple[float, Any] | None: ...
    def put_observation(self, key: str, observed_at: float, data: Any, ttl_seconds: float) -> bool: ...


class DynamoJobStore:
    def __init__(self, client: DynamoDBClient, table: str, ttl_days: int = 30) -> None:
        self._db = client
        self._table = table
        self._ttl = ttl_days * DAY

    # --- jobs ------------------------------------------------------------------------------------

    def create_job(self, job: Job) -> None:
        try:
            self._put(self._job_item(job), "attribute_not_exists(pk)", {}, {})
        except _ConditionFailed as failed:
            raise JobAlreadyExists(job.job_id) from failed

    def get_job(self, job_id: str) -> Job | None:
        item = self._get(f"job#{job_id}")
        return _job_from(item) if item else None

    def save_job(self, job: Job) -> Job:
        """Write `job` as the next version, only if nobody wrote since `job.version` was read."""
        expected = job.version
        moved = job.model_copy(update={"version": expected + 1})
        try:
            self._put(
                self._job_item(moved),
                "#v = :expected",
                {"#v": "version"},
                {":expected": {"N": str(expected)}},
            )
        except _ConditionFailed as failed:
            raise StaleJob(job.job_id, _job_from(failed.item) if failed.item else None) from failed
        return moved

    # --- one active job per schedule ---------------------------------------------------------------

    def claim_schedule(self, schedule_id: str, job_id: str, now: float) -> str | None:
        """Make `job_id` the schedule's active job. Returns the job already active, if there is one."""
        item = {
            "pk": {"S": f"schedule#{schedule_id}"},
            "jobId": {"S": job_id},
            "claimedAt": {"N": f"{now:.3f}"},
            **self._expiry(now),
        }
        try:
            self._put(item, "attribute_not_exists(pk)", {}, {})
            return None
        except _ConditionFailed as failed:
            held = failed.item or {}
        holder = str(held["jobId"]["S"]) if "jobId" in held else None
        if holder is not None and self._still_active(
            holder, float(held.get("claimedAt", {}).get("N", "0")), now
        ):
            return holder
        # The holder ended (its release was lost) or never got written: take over, conditioned on who held it.
        condition, names, values = "attribute_not_exists(pk)", {}, {}
        if holder is not None:
            condition, names, values = "#j = :holder", {"#j": "jobId"}, {":holder": {"S": holder}}
        try:
            self._put(item, condition, names, values)
            return None
        except _ConditionFailed as failed:
            return str(failed.item["jobId"]["S"]) if failed.item else job_id

    def _still_active(self, holder: str, claimed_at: float, now: float) -> bool:
        active = self.get_job(holder)
        if active is None:
            # Intake claims the schedule a moment before it writes the job: a fresh claim is in flight.
            return now - claimed_at < CLAIM_GRACE_SECONDS
        return not active.status.terminal

    def active_job(self, schedule_id: str) -> tuple[str, float] | None:
        """Read only: the job the `schedule#<id>` item names and when it claimed the schedule, if any.
        The item can outlive its job by a lost release: callers check the job's own status."""
        item = self._get(f"schedule#{schedule_id}")
        if not item or "jobId" not in item:
            return None
        return str(item["jobId"]["S"]), float(item.get("claimedAt", {}).get("N", "0"))

    def release_schedule(self, schedule_id: str, job_id: str) -> None:
        with contextlib.suppress(_ConditionFailed):  # someone else holds it now: nothing of ours
            self._call(
                self._db.delete_item,
                TableName=self._table,
                Key={"pk": {"S": f"schedule#{schedule_id}"}},
                ConditionExpression="#j = :job",
                ExpressionAttributeNames={"#j": "jobId"},
                ExpressionAttributeValues={":job": {"S": job_id}},
            )

    # --- idempotency ---------------------------------------------------------------------------------

    def lock_idempotency(self, key: str, body_hash: str, now: float, lock_seconds: float) -> None:
        """Hold `key` while the first request is answered; a lock left by a crash expires."""
        item = {
            "pk": {"S": f"idem#{key}"},
            "status": {"S": IdempotencyStatus.IN_PROGRESS.value},
            "bodyHash": {"S": body_hash},
            "lockedUntil": {"N": f"{now + lock_seconds:.3f}"},
            **self._expiry(now),
        }
        try:
            self._put(
                item,
                "attribute_not_exists(pk) OR (#s = :progress AND #l < :now)",
                {"#s": "status", "#l": "lockedUntil"},
                {":progress": {"S": IdempotencyStatus.IN_PROGRESS.value}, ":now": {"N": f"{now:.3f}"}},
            )
        except _ConditionFailed as failed:
            raise IdempotencyTaken(_idempotency_from(key, failed.item)) from failed

    def complete_idempotency(self, key: str, body_hash: str, response: dict[str, Any], now: float) -> None:
        item = {
            "pk": {"S": f"idem#{key}"},
            "status": {"S": IdempotencyStatus.COMPLETED.value},
            "bodyHash": {"S": body_hash},
            "lockedUntil": {"N": "0"},
            "response": {"S": json.dumps(response)},
            **self._expiry(now),
        }
        self._put(item, "#h = :hash", {"#h": "bodyHash"}, {":hash": {"S": body_hash}})

    def release_idempotency(self, key: str) -> None:
        self._call(self._db.delete_item, TableName=self._table, Key={"pk": {"S": f"idem#{key}"}})

    # --- shared observations (issue 4) ---------------------------------------------------------------
    # `observation#<key>`: what one job read of telephony (a site, an Edge) or of slow-moving reference
    # data (campaigns, queue members), reused by jobs that look a few seconds later. Freshness is judged
    # by the reader on `observedAt`; `expiresAt` only lets DynamoDB clean the item up.

    def get_observation(self, key: str) -> tuple[float, Any] | None:
        item = self._get(f"observation#{key}")
        if not item or "observedAt" not in item or "doc" not in item:
            return None
        return float(item["observedAt"]["N"]), json.loads(item["doc"]["S"])

    def put_observation(self, key: str, observed_at: float, data: Any, ttl_seconds: float) -> bool:
        """Store an observation unless a newer one is already there. False: not stored."""
        doc = json.dumps(data, separators=(",", ":"))
        if len(doc) > OBSERVATION_MAX_BYTES:
            return False  # a huge queue's members: read it directly rather than overflow the item
        stamp = f"{observed_at:.3f}"
        item = {
            "pk": {"S": f"observation#{key}"},
            "observedAt": {"N": stamp},
            "doc": {"S": doc},
            "expiresAt": {"N": str(int(observed_at + ttl_seconds))},
        }
        try:
            self._put(
                item, "attribute_not_exists(pk) OR #o < :at", {"#o": "observedAt"}, {":at": {"N": stamp}}
            )
        except _ConditionFailed:
            return False
        return True

    # --- plumbing --------------------------------------------------------------------------------------

    def _job_item(self, job: Job) -> dict[str, Any]:
        return {
            "pk": {"S": f"job#{job.job_id}"},
            "version": {"N": str(job.version)},
            "ticket": {"S": job.ticket},
            "status": {"S": job.status.value},
            "doc": {"S": job.model_dump_json(by_alias=True, exclude_none=True)},
            **self._expiry(job.created_at),
        }

    def _expiry(self, now: float) -> dict[str, Any]:
        return {"expiresAt": {"N": str(int(now + self._ttl))}}

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
                raise _ConditionFailed(old) from exc
            raise StoreError(f"DynamoDB {error.get('Code', 'error')}: {error.get('Message', exc)}") from exc
        except BotoCoreError as exc:
            raise StoreError(f"DynamoDB unreachable: {exc}") from exc


class _ConditionFailed(Exception):
    def __init__(self, item: dict[str, Any] | None) -> None:
        super().__init__("condition failed")
        self.item = item


def _job_from(item: dict[str, Any]) -> Job:
    return Job.model_validate_json(item["doc"]["S"])


def _idempotency_from(key: str, item: dict[str, Any] | None) -> IdempotencyRecord:
    if not item:  # the condition failed on an item that vanished since: treat as still in progress
        return IdempotencyRecord(key, IdempotencyStatus.IN_PROGRESS, "", 0.0)
    response = item.get("response", {}).get("S")
    return IdempotencyRecord(
        key=key,
        status=IdempotencyStatus(item["status"]["S"]),
        body_hash=item["bodyHash"]["S"],
        locked_until=float(item.get("lockedUntil", {}).get("N", "0")),
        response=json.loads(response) if response else None,
    )
