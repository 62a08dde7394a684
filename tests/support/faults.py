"""Faults at the DynamoDB boundary, at a chosen call: what a test needs to break one promise on purpose.

`FaultyDynamoDB` wraps a low-level DynamoDB client (moto's over HTTP, or the in-memory one) and lets
each call through, except those a `Fault` matches:

- `error`: DynamoDB (or botocore, after its retries) answers with an error; nothing is written.
- `die_before` / `die_after`: the worker is killed just before the call, or just after it committed
  (`WorkerDied`, a BaseException: no `except Exception` in the core catches it, as none catches a
  killed Lambda).
- `lost_answer`: the call commits, its answer is lost, other writers land (`meanwhile`), and botocore
  sends the same request again: the caller gets what that second attempt answers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from botocore.exceptions import ClientError

Kind = Literal["error", "die_before", "die_after", "lost_answer"]
WRITES = ("put_item", "update_item", "delete_item")


class WorkerDied(BaseException):
    """The invocation was killed here."""


@dataclass
class Fault:
    operation: str
    when: Callable[[dict[str, Any]], bool]
    kind: Kind
    meanwhile: Callable[[], None] | None = None
    times: int = 1
    seen: int = field(default=0, init=False)


def on_item(prefix: str, **attributes: str) -> Callable[[dict[str, Any]], bool]:
    """A call on an item whose key starts with `prefix` (and, for a put, whose attributes hold these
    string values)."""

    def matches(call: dict[str, Any]) -> bool:
        key = call.get("Key") or call.get("Item") or {}
        if not str(key.get("pk", {}).get("S", "")).startswith(prefix):
            return False
        item = call.get("Item") or {}
        return all(item.get(name, {}).get("S") == value for name, value in attributes.items())

    return matches


class FaultyDynamoDB:
    def __init__(self, client: Any) -> None:
        self._client = client
        self.faults: list[Fault] = []

    def arm(
        self,
        operation: str,
        when: Callable[[dict[str, Any]], bool],
        kind: Kind,
        *,
        meanwhile: Callable[[], None] | None = None,
        times: int = 1,
    ) -> Fault:
        fault = Fault(operation, when, kind, meanwhile, times)
        self.faults.append(fault)
        return fault

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._client, name)
        if name not in (*WRITES, "get_item", "query"):
            return target

        def call(**kwargs: Any) -> Any:
            fault = self._take(name, kwargs)
            if fault is None:
                return target(**kwargs)
            if fault.kind == "error":
                raise ClientError(
                    {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "throttled"}},
                    name,
                )
            if fault.kind == "die_before":
                raise WorkerDied(f"killed before {name}")
            target(**kwargs)  # committed; its answer is dropped
            if fault.kind == "die_after":
                raise WorkerDied(f"killed after {name}")
            if fault.meanwhile is not None:
                fault.meanwhile()
            return target(**kwargs)  # lost_answer: botocore sends it again

        return call

    def _take(self, name: str, kwargs: dict[str, Any]) -> Fault | None:
        for fault in self.faults:
            if fault.operation == name and fault.seen < fault.times and fault.when(kwargs):
                fault.seen += 1
                return fault
        return None
