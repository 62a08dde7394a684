"""The job store: the jobs table's reads and writes (`DynamoJobStore`, with its parts in
store_operations, store_items and store_table); the weekly run's checkpoints (weekly.DynamoRunLog)
are the one other writer of the table.

One table, hash key `pk`: `job#<id>` (the job), `schedule#<id>` (its active job), `idem#<key>`
(an idempotency record), `observation#<key>` (a shared telephony observation, seconds old),
`querykey#` / `query#` / `operation#` (Genesys asynchronous operations: store_operations). Every
write of a job, a claim, a key or a lock is conditional, so two workers can never both move a job,
and a failed condition comes back with the item as it is (ReturnValuesOnConditionCheckFailure), so
the caller learns who won without a second read.

A write can land while its answer is lost (a read timeout, a reset connection, a 5xx after the
commit): botocore then sends it again, and the retry fails its condition on our own write. So every
conditional write carries a mark of its own (a write id, the job id that claims, the lock's token)
and a failed condition that shows our mark is our earlier success, not somebody else's win.

Every item lives until the last moment it is needed (a job's deadline, or now) plus the retention
(`JOB_TTL_DAYS`): TTL never removes a job that can still run.
"""

from __future__ import annotations

import contextlib
import itertools
import json
from collections.abc import Iterator
from typing import Any, Protocol

from wfm_publish.errors import (
    IdempotencyTaken,
    JobAlreadyExists,
    JobEnded,
    StaleJob,
    StoreError,
)
from wfm_publish.models import IdempotencyStatus, Job, JobStatus, Joiner
from wfm_publish.store_items import (
    DUE_SHARD,
    JoinNote,
    idempotency_from,
    job_from_item,
    job_item,
)
from wfm_publish.store_operations import GenesysOperations
from wfm_publish.store_table import DAY, ConditionFailed, Table, ours, write_id

CLAIM_GRACE_SECONDS = 60.0  # longer than any intake takes between claiming and writing its job
CLAIM_ROUNDS = 5  # a claim that keeps changing hands under us this often is contended: give up
OBSERVATION_MAX_BYTES = 300_000  # DynamoDB items stop at 400 KB
DUE_INDEX = "due"  # sparse: only jobs that are not terminal carry `dueShard` and `dueAt`
STATUS_INDEX = "byStatus"  # status, createdAt: the operator's listing
_TERMINAL = [s.value for s in JobStatus if s.terminal]
_NOT_ENDED = f"NOT (#s IN ({', '.join(f':t{i}' for i in range(len(_TERMINAL)))}))"


class JobStore(Protocol):
    def create_job(self, job: Job) -> None: ...
    def get_job(self, job_id: str) -> Job | None: ...
    def save_job(self, job: Job) -> Job: ...
    def add_joiner(self, job_id: str, joiner: Joiner) -> None: ...
    def note_join(self, key: str, job_id: str, until: float, body_hash: str) -> None: ...
    def joined(self, key: str) -> JoinNote | None: ...
    def overdue_jobs(self, before: float, most: int) -> list[str]: ...
    def watch(self, job_id: str, entity_ids: list[str], until: float) -> None: ...
    def heard(self, entity_ids: list[str]) -> dict[str, float]: ...
    def claim_schedule(
        self, schedule_id: str, job_id: str, now: float, needed_until: float
    ) -> str | None: ...
    def release_schedule(self, schedule_id: str, job_id: str) -> None: ...
    def claim_telling(
        self, job_id: str, teller: str, now: float, lease: float, needed_until: float
    ) -> str | None: ...
    def release_telling(self, job_id: str, teller: str) -> None: ...
    def lock_idempotency(
        self, key: str, body_hash: str, token: str, now: float, lock_seconds: float, needed_until: float
    ) -> None: ...
    def complete_idempotency(
        self, key: str, body_hash: str, token: str, response: dict[str, Any], needed_until: float
    ) -> None: ...
    def release_idempotency(self, key: str, token: str) -> None: ...
    def get_observation(self, key: str) -> tuple[float, Any] | None: ...
    def put_observation(self, key: str, observed_at: float, data: Any, ttl_seconds: float) -> bool: ...


HEARD_KEPT = 7 * DAY  # a heard# item outlives any job that could read it (deadlines are hours)


class DynamoJobStore(GenesysOperations, Table):
    """The one store. Its items for Genesys' asynchronous operations are in store_operations, how a
    job and an idempotency record lie in store_items, the table's calls in store_table."""

    # --- jobs ------------------------------------------------------------------------------------

    def create_job(self, job: Job) -> None:
        item = job_item(job, write_id(), self._retention)
        try:
            self._put(item, "attribute_not_exists(pk)", {}, {})
        except ConditionFailed as failed:
            if not ours(failed.item, "writeId", item["writeId"]["S"]):
                raise JobAlreadyExists(job.job_id) from failed

    def get_job(self, job_id: str) -> Job | None:
        item = self._get(f"job#{job_id}")
        return job_from_item(item) if item else None

    def save_job(self, job: Job) -> Job:
        """Write `job` as the next version, only if nobody wrote since `job.version` was read."""
        expected = job.version
        moved = job.model_copy(update={"version": expected + 1})
        item = job_item(moved, write_id(), self._retention)
        sets = {k: v for k, v in item.items() if k != "pk"}
        removes = [] if "dueAt" in item else ["dueAt", "dueShard"]
        names = {f"#a{i}": name for i, name in enumerate(sets)}
        values = {f":a{i}": value for i, value in enumerate(sets.values())}
        update = "SET " + ", ".join(f"#a{i} = :a{i}" for i in range(len(sets)))
        if removes:
            names |= {f"#r{i}": name for i, name in enumerate(removes)}
            update += " REMOVE " + ", ".join(f"#r{i}" for i in range(len(removes)))
        names["#v"] = "version"
        values[":expected"] = {"N": str(expected)}
        try:
            self._update(item["pk"], update, "#v = :expected", names, values)
        except ConditionFailed as failed:
            if ours(failed.item, "writeId", item["writeId"]["S"]):
                return moved  # our write landed; only its answer was lost
            current = job_from_item(failed.item) if failed.item else None
            raise StaleJob(job.job_id, current) from failed
        return moved

    def add_joiner(self, job_id: str, joiner: Joiner) -> None:
        """Note a request that joined the job, unless the job has ended (JobEnded: start afresh)."""
        try:
            self._update(
                {"S": f"job#{job_id}"},
                "SET #j.#k = :joiner",
                f"attribute_exists(pk) AND attribute_exists(#j) AND {_NOT_ENDED}",
                {"#j": "joiners", "#k": joiner.key, "#s": "status"},
                {":joiner": {"S": joiner.model_dump_json(by_alias=True, exclude_none=True)}}
                | {f":t{i}": {"S": s} for i, s in enumerate(_TERMINAL)},
            )
        except ConditionFailed as failed:
            held = (failed.item or {}).get("joiners", {}).get("M", {})
            if joiner.key in held:
                return  # our own earlier write
            raise JobEnded(job_id) from failed

    # `joined#<key>` -> the job a request joined, written before it adds itself as a joiner: a retry of
    # that request (its answer, or its key's record, lost) meets the join it already made instead of
    # starting a job of its own once the joined one ended, which would tell its callback twice.

    def note_join(self, key: str, job_id: str, until: float, body_hash: str) -> None:
        self._call(
            self._db.put_item,
            TableName=self._table,
            Item={
                "pk": {"S": f"joined#{key}"},
                "job": {"S": job_id},
                "bodyHash": {"S": body_hash},  # the key with another body is refused, on every path
                **self._expiry(until),
            },
        )

    def joined(self, key: str) -> JoinNote | None:
        item = self._get(f"joined#{key}")
        if not item:
            return None
        return JoinNote(str(item["job"]["S"]), str(item.get("bodyHash", {}).get("S", "")))

    def overdue_jobs(self, before: float, most: int = 100) -> list[str]:
        """Jobs not ended whose next step was due before `before`, oldest first (the due index)."""
        names = {"#h": "dueShard", "#d": "dueAt"}
        values = {":shard": {"S": DUE_SHARD}, ":before": {"N": f"{before:.3f}"}}
        overdue, _ = self._job_ids(DUE_INDEX, "#h = :shard AND #d < :before", names, values, most)
        return overdue

    def jobs_by_status(self, status: JobStatus, since: float = 0.0, most: int = 100) -> list[str]:
        """Jobs in `status` created at or after `since`, newest first (the status index)."""
        return list(itertools.islice(self.iter_jobs_by_status(status, since, page=most), most))

    def iter_jobs_by_status(self, status: JobStatus, since: float = 0.0, page: int = 100) -> Iterator[str]:
        """The same, page after page for as long as the caller reads (the operator's filtered listing)."""
        condition = "#s = :status AND #c >= :since"
        names = {"#s": "status", "#c": "createdAt"}
        values = {":status": {"S": status.value}, ":since": {"N": f"{since:.3f}"}}
        start: dict[str, Any] | None = None
        while True:
            after = {"ExclusiveStartKey": start} if start else {}
            listed, start = self._job_ids(
                STATUS_INDEX, condition, names, values, page, ScanIndexForward=False, **after
            )
            yield from listed
            if not start:
                return

    def _job_ids(
        self,
        index: str,
        condition: str,
        names: dict[str, str],
        values: dict[str, Any],
        most: int,
        **more: Any,
    ) -> tuple[list[str], dict[str, Any] | None]:
        """One page of an index's jobs, and where the next page starts (None: that was the last)."""
        answer = self._call(
            self._db.query,
            TableName=self._table,
            IndexName=index,
            KeyConditionExpression=condition,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            Limit=most,
            **more,
        )
        start: dict[str, Any] | None = answer.get("LastEvaluatedKey")
        return [str(item["pk"]["S"]).removeprefix("job#") for item in answer.get("Items", [])], start

    # --- one active job per schedule ---------------------------------------------------------------

    def claim_schedule(self, schedule_id: str, job_id: str, now: float, needed_until: float) -> str | None:
        """Make `job_id` the schedule's active job. Returns the job already active, if there is one.

        The holder returned may not be written yet (its intake claimed a moment ago): the caller must
        not answer its id as a job until it exists."""
        item = {
            "pk": {"S": f"schedule#{schedule_id}"},
            "jobId": {"S": job_id},
            "claimedAt": {"N": f"{now:.3f}"},
            **self._expiry(needed_until),
        }
        for _ in range(CLAIM_ROUNDS):
            try:
                self._put(item, "attribute_not_exists(pk)", {}, {})
                return None
            except ConditionFailed as failed:
                held = failed.item
            if held is None:
                continue  # released between our put and its answer: look again
            holder = str(held["jobId"]["S"])
            if holder == job_id:
                return None  # our own claim, whose answer was lost
            if self._still_active(schedule_id, holder, float(held.get("claimedAt", {}).get("N", "0")), now):
                return holder
            # The holder ended (its release was lost), never got written, or is another schedule's job:
            # take over from exactly it.
            try:
                self._put(item, "#j = :holder", {"#j": "jobId"}, {":holder": {"S": holder}})
                return None
            except ConditionFailed as failed:
                if ours(failed.item, "jobId", job_id):
                    return None
                # Released or taken by another request since: look again.
        raise StoreError(f"the claim on schedule {schedule_id} kept changing hands; try again")

    def _still_active(self, schedule_id: str, holder: str, claimed_at: float, now: float) -> bool:
        active = self.get_job(holder)
        if active is None:
            # Intake claims the schedule a moment before it writes the job: a fresh claim is in flight.
            return now - claimed_at < CLAIM_GRACE_SECONDS
        # A claim naming a job of another schedule was left by a start whose write never landed (its
        # key then started that job for another schedule): it holds nothing here.
        return active.schedule_id == schedule_id and not active.status.terminal

    def active_job(self, schedule_id: str) -> tuple[str, float] | None:
        """Read only: the job the `schedule#<id>` item names and when it claimed the schedule, if any.
        The item can outlive its job by a lost release: callers check the job's own status."""
        item = self._get(f"schedule#{schedule_id}")
        if not item or "jobId" not in item:
            return None
        return str(item["jobId"]["S"]), float(item.get("claimedAt", {}).get("N", "0"))

    def release_schedule(self, schedule_id: str, job_id: str) -> None:
        with contextlib.suppress(ConditionFailed):  # someone else holds it now: nothing of ours
            self._call(
                self._db.delete_item,
                TableName=self._table,
                Key={"pk": {"S": f"schedule#{schedule_id}"}},
                ConditionExpression="#j = :job",
                ExpressionAttributeNames={"#j": "jobId"},
                ExpressionAttributeValues={":job": {"S": job_id}},
            )

    # --- who tells a job's callback records -------------------------------------------------------------
    # `notify#<jobId>` -> `teller`, `until`: the one notifier telling the job's callback records right now
    # (the stream's, or an operator's `ops notify`), so two never both read "not told" and both PATCH.
    # A lease: a teller that died holding it is replaced once `until` has passed; a teller renews it
    # before each record, lets go of it when its attempt fails, and its own retry (the same teller)
    # goes on at once.

    def claim_telling(
        self, job_id: str, teller: str, now: float, lease: float, needed_until: float
    ) -> str | None:
        """Hold the telling of `job_id`'s records until `now + lease`. Returns the other teller holding
        it (None: it is ours)."""
        item = {
            "pk": {"S": f"notify#{job_id}"},
            "teller": {"S": teller},
            "until": {"N": f"{now + lease:.3f}"},
            **self._expiry(max(needed_until, now)),
        }
        try:
            self._put(
                item,
                "attribute_not_exists(pk) OR #t = :me OR #u < :now",
                {"#t": "teller", "#u": "until"},
                {":me": {"S": teller}, ":now": {"N": f"{now:.3f}"}},
            )
        except ConditionFailed as failed:
            return str((failed.item or {}).get("teller", {}).get("S", "another notifier"))
        return None

    def release_telling(self, job_id: str, teller: str) -> None:
        """Let go of the telling (a teller whose attempt failed: the next may go on at once); only our
        own hold, never another teller's."""
        with contextlib.suppress(ConditionFailed):
            self._call(
                self._db.delete_item,
                TableName=self._table,
                Key={"pk": {"S": f"notify#{job_id}"}},
                ConditionExpression="#t = :me",
                ExpressionAttributeNames={"#t": "teller"},
                ExpressionAttributeValues={":me": {"S": teller}},
            )

    # --- idempotency ---------------------------------------------------------------------------------

    def lock_idempotency(
        self, key: str, body_hash: str, token: str, now: float, lock_seconds: float, needed_until: float
    ) -> None:
        """Hold `key` while the first request is answered. A lock left by a crash expires, and only a
        request with the same body may take it over: another body is refused, always."""
        item = {
            "pk": {"S": f"idem#{key}"},
            "status": {"S": IdempotencyStatus.IN_PROGRESS.value},
            "bodyHash": {"S": body_hash},
            "token": {"S": token},
            "lockedUntil": {"N": f"{now + lock_seconds:.3f}"},
            **self._expiry(needed_until),
        }
        try:
            self._put(
                item,
                "attribute_not_exists(pk) OR (#s = :progress AND #l < :now AND #h = :hash)",
                {"#s": "status", "#l": "lockedUntil", "#h": "bodyHash"},
                {
                    ":progress": {"S": IdempotencyStatus.IN_PROGRESS.value},
                    ":now": {"N": f"{now:.3f}"},
                    ":hash": {"S": body_hash},
                },
            )
        except ConditionFailed as failed:
            if ours(failed.item, "token", token):
                return
            raise IdempotencyTaken(idempotency_from(key, failed.item)) from failed

    def complete_idempotency(
        self, key: str, body_hash: str, token: str, response: dict[str, Any], needed_until: float
    ) -> None:
        item = {
            "pk": {"S": f"idem#{key}"},
            "status": {"S": IdempotencyStatus.COMPLETED.value},
            "bodyHash": {"S": body_hash},
            "token": {"S": token},
            "lockedUntil": {"N": "0"},
            "response": {"S": json.dumps(response)},
            **self._expiry(needed_until),
        }
        # Only the lock we hold: a retry that took over an expired lock answers for the key instead
        # (IdempotencyTaken: the caller replays its answer or gives its own, which names the same
        # job). A lost answer retried meets our own completed record: the same condition holds again.
        try:
            self._put(
                item,
                "#h = :hash AND #t = :token",
                {"#h": "bodyHash", "#t": "token"},
                {":hash": {"S": body_hash}, ":token": {"S": token}},
            )
        except ConditionFailed as failed:
            raise IdempotencyTaken(idempotency_from(key, failed.item)) from failed

    def release_idempotency(self, key: str, token: str) -> None:
        """Let the caller's retry start afresh: only our own lock, never another request's."""
        with contextlib.suppress(ConditionFailed):
            self._call(
                self._db.delete_item,
                TableName=self._table,
                Key={"pk": {"S": f"idem#{key}"}},
                ConditionExpression="#t = :token AND #s = :progress",
                ExpressionAttributeNames={"#t": "token", "#s": "status"},
                ExpressionAttributeValues={
                    ":token": {"S": token},
                    ":progress": {"S": IdempotencyStatus.IN_PROGRESS.value},
                },
            )

    # --- shared observations -------------------------------------------------------------------------
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
        except ConditionFailed:
            return False
        return True

    # --- telephony watches ------------------------------------------------------------------------------
    # `watch#<entityId>` -> `jobs`, a string set: the jobs whose telephony scope holds that Edge or trunk.
    # Written once per job when its scope is computed (ADD: a retry or a lost answer adds nothing
    # twice), read by the genesys_events function when that entity changes: one GetItem per event,
    # however many jobs or entities there are. Ended jobs are pruned by the reader (DELETE) and the
    # item expires a day after the latest deadline of the jobs added to it (never sooner).

    def watch(self, job_id: str, entity_ids: list[str], until: float) -> None:
        """Add `job_id` to each entity's watch. Its expiry only ever grows: a job due to end sooner never
        shortens the watch of one due later (the add and the longer expiry in one write; when the watch
        already lives longer, the add alone)."""
        job = {":job": {"SS": [job_id]}}
        for entity_id in dict.fromkeys(entity_ids):
            key = {"S": f"watch#{entity_id}"}
            try:
                self._update(
                    key,
                    "ADD jobs :job SET #e = :exp",
                    "attribute_not_exists(#e) OR #e < :exp",
                    {"#e": "expiresAt"},
                    job | {":exp": {"N": str(int(until + DAY))}},
                )
            except ConditionFailed:
                self._call(
                    self._db.update_item,
                    TableName=self._table,
                    Key={"pk": key},
                    UpdateExpression="ADD jobs :job",
                    ExpressionAttributeValues=job,
                )

    def watchers(self, entity_id: str) -> list[str]:
        item = self._get(f"watch#{entity_id}") or {}
        return sorted(item.get("jobs", {}).get("SS", []))

    # --- telephony events heard ------------------------------------------------------------------------
    # `heard#<entityId>` -> `heardAt`: when the latest telephony event for that Edge or trunk was sent
    # (by Genesys' clock). Written by the genesys_events function for every telephony event, watched or
    # not (a change can start before any job watches it); read by a job waiting on that entity, to
    # trust events to wake it only for changes an event announced (validation.py). Only ever moves
    # forward; expires HEARD_KEPT after the event.

    def hear(self, entity_id: str, at: float) -> None:
        stamp = {"N": repr(float(at))}
        with contextlib.suppress(ConditionFailed):  # a later event is recorded already
            self._update(
                {"S": f"heard#{entity_id}"},
                "SET #h = :at, expiresAt = :exp",
                "attribute_not_exists(#h) OR #h < :at",
                {"#h": "heardAt"},
                {":at": stamp, ":exp": {"N": str(int(at + HEARD_KEPT))}},
            )

    def heard(self, entity_ids: list[str]) -> dict[str, float]:
        """entity id -> when its latest telephony event was sent, for those with one."""
        out: dict[str, float] = {}
        for entity_id in dict.fromkeys(entity_ids):
            item = self._get(f"heard#{entity_id}")
            if item and "heardAt" in item:
                out[entity_id] = float(item["heardAt"]["N"])
        return out

    def unwatch(self, entity_id: str, job_ids: list[str]) -> None:
        if job_ids:
            self._call(
                self._db.update_item,
                TableName=self._table,
                Key={"pk": {"S": f"watch#{entity_id}"}},
                UpdateExpression="DELETE jobs :jobs",
                ExpressionAttributeValues={":jobs": {"SS": sorted(set(job_ids))}},
            )
