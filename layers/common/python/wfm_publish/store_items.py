"""How a job and an idempotency record lie in the table, both ways: what the store writes, and what it
(or the notifier, from a stream image) reads back. No calls here: the conditions are the store's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from wfm_publish.models import IdempotencyRecord, IdempotencyStatus, Job, Joiner
from wfm_publish.store_table import expiry

DUE_SHARD = "due"  # the due index's one hash key: only jobs that are not terminal carry it


@dataclass(frozen=True)
class JoinNote:
    """`joined#<key>`: the job a request joined, and the hash of the body it joined with ("" in notes
    written before the hash was kept)."""

    job_id: str
    body_hash: str = ""


def job_item(job: Job, write_id: str, retention: float) -> dict[str, Any]:
    """`job#<id>`: the job as a document, plus the attributes conditions and indexes read."""
    item: dict[str, Any] = {
        "pk": {"S": f"job#{job.job_id}"},
        "version": {"N": str(job.version)},
        "ticket": {"S": job.ticket},
        "status": {"S": job.status.value},
        "createdAt": {"N": f"{job.created_at:.3f}"},
        "writeId": {"S": write_id},
        "doc": {"S": job.model_dump_json(by_alias=True, exclude_none=True)},
        # A job is needed until its deadline (a publishTime weeks ahead included), then retained.
        **expiry(max(job.deadline_at, job.updated_at), retention),
    }
    if not job.status.terminal:
        item["dueShard"] = {"S": DUE_SHARD}
        item["dueAt"] = {"N": f"{job.due_at if job.due_at is not None else job.updated_at:.3f}"}
    if not job.version:
        item["joiners"] = {"M": {}}  # joiners are added one by one (store.add_joiner), never rewritten
    return item


def job_from_item(item: dict[str, Any]) -> Job:
    """The job an item holds: in the client's attribute-value shape ({"S": …}), or as a stream
    image that Powertools has already turned into plain values."""
    doc = item["doc"]
    job = Job.model_validate_json(doc["S"] if isinstance(doc, dict) else doc)
    joiners = item.get("joiners") or {}
    if isinstance(joiners, dict) and "M" in joiners:
        joiners = {k: v["S"] for k, v in joiners["M"].items()}
    if joiners:
        job.joiners = sorted((Joiner.model_validate_json(v) for v in joiners.values()), key=lambda j: j.at)
    return job


def idempotency_from(key: str, item: dict[str, Any] | None) -> IdempotencyRecord:
    """The `idem#<key>` record as a failed condition found it."""
    if not item:  # the condition failed on an item that vanished since: treat as still in progress
        return IdempotencyRecord(key, IdempotencyStatus.IN_PROGRESS, "", 0.0)
    response = item.get("response", {}).get("S")
    return IdempotencyRecord(
        key=key,
        status=IdempotencyStatus(item["status"]["S"]),
        body_hash=item["bodyHash"]["S"],
        locked_until=float(item.get("lockedUntil", {}).get("N", "0")),
        response=json.loads(response) if response else None,
        token=item.get("token", {}).get("S", ""),
    )
