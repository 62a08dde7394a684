"""The chaos world's faults at each boundary: DynamoDB seen through the client's calls, the SQS
transport, Genesys behind the real client, the ServiceNow records, the workers' clocks and crashes.
Each draws from the world's seeded generator (chaos.virtual.World)."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import requests
from botocore.exceptions import ClientError

from wfm_publish.clock import VirtualClock
from wfm_publish.errors import QueueError
from wfm_publish.notifier import ID_FIELD, STATUS_FIELD
from wfm_publish.queues import Queue
from wfm_publish_local.memorydb import MemoryDynamoDB
from wfm_publish_local.simulator import GenesysSimulator
from wfm_publish_local.simulator.transport import InProcessAdapter, response_for

if TYPE_CHECKING:
    from wfm_publish_local.chaos.virtual import World

RETRY_AFTERS = ["1", "7", "30", "86400", "inf", "-5", "nan", "Wed, 21 Oct 2015 07:28:00 GMT", ""]


class Crash(BaseException):  # not an error the core may catch: the worker is gone
    """The worker died here. BaseException, so no `except Exception` in the core can swallow it."""


@dataclass(frozen=True)
class Rates:
    crash: float = 0.01
    db_lost: float = 0.03
    db_error_after: float = 0.01
    db_error_before: float = 0.02
    db_slow: float = 0.02
    sqs_error_before: float = 0.01
    sqs_error_after: float = 0.01
    sqs_duplicate: float = 0.03
    sqs_redeliver: float = 0.02
    genesys_before: float = 0.03
    genesys_after: float = 0.02
    genesys_429: float = 0.03
    genesys_slow: float = 0.1  # events worlds only
    skew: float = 2.0


class SkewedClock:
    """One worker's clock: the world's, off by `offset` seconds (set per delivery)."""

    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock
        self.offset = 0.0

    def now(self) -> float:
        return self.clock.now() + self.offset


class FakeServiceNow:
    """The callback records: every PATCH they received, in order."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.records: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)

    def read_record(self, table: str, sys_id: str, fields: list[str]) -> dict[str, str]:
        self.world.maybe_crash("before GET")
        told = self.records.get((table, sys_id))
        return {ID_FIELD: told[-1][0], STATUS_FIELD: told[-1][1]} if told else {}

    def update_record(self, table: str, sys_id: str, fields: Mapping[str, str]) -> dict[str, str]:
        self.world.maybe_crash("before PATCH")
        self.records[(table, sys_id)].append((fields[ID_FIELD], fields[STATUS_FIELD]))
        self.world.last_patch = (table, sys_id)
        self.world.maybe_crash("after PATCH")
        self.world.last_patch = None
        return {"sys_id": sys_id}


class FaultyDynamoDB:
    """DynamoDB in memory with botocore's behaviour under faults, seen through the client's calls."""

    def __init__(self, db: MemoryDynamoDB, world: World) -> None:
        self.db = db
        self.world = world

    def get_item(self, **kwargs: Any) -> dict[str, Any]:
        return self._read("get_item", kwargs)

    def query(self, **kwargs: Any) -> dict[str, Any]:
        return self._read("query", kwargs)

    def put_item(self, **kwargs: Any) -> dict[str, Any]:
        return self._write("put_item", kwargs)

    def update_item(self, **kwargs: Any) -> dict[str, Any]:
        return self._write("update_item", kwargs)

    def delete_item(self, **kwargs: Any) -> dict[str, Any]:
        return self._write("delete_item", kwargs)

    def _read(self, name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
        w = self.world
        if w.roll(w.rates.db_error_before):
            w.count("dynamodb 5xx before")
            raise _server_error(name)
        result: dict[str, Any] = getattr(self.db, name)(**kwargs)
        return result

    def _write(self, name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
        w = self.world
        w.maybe_crash(f"before {name}")
        if w.roll(w.rates.db_error_before):
            w.count("dynamodb 5xx before commit")
            raise _server_error(name)
        if w.roll(w.rates.db_slow):
            w.count("dynamodb throttled (commits late)")
            w.run_meanwhile(w.rng.uniform(1.0, 20.0))  # botocore backs off; other workers go on
        result: dict[str, Any] = getattr(self.db, name)(**kwargs)
        if w.roll(w.rates.db_lost):
            w.count("dynamodb answer lost after commit")
            result = getattr(self.db, name)(**kwargs)  # botocore's retry of the very same request
        elif w.roll(w.rates.db_error_after):
            w.count("dynamodb error after commit")
            raise _server_error(name)
        w.maybe_crash(f"after {name}")
        return result


def _server_error(operation: str) -> ClientError:
    return ClientError(
        {"Error": {"Code": "InternalServerError", "Message": "injected"}},
        operation,
    )


class FaultyTransport:
    """SQS as the queue sender sees it; deliveries go on the world's agenda."""

    def __init__(self, world: World) -> None:
        self.world = world

    def send(self, queue: Queue, body: str, delay_seconds: int) -> None:
        w = self.world
        w.maybe_crash("before send")
        if w.roll(w.rates.sqs_error_before):
            w.count("sqs 5xx before send")
            raise QueueError("injected: SendMessage failed")
        w.enqueue(queue, body, delay_seconds, receives=0)
        if w.roll(w.rates.sqs_duplicate):
            w.count("sqs duplicate")
            w.enqueue(queue, body, delay_seconds, receives=0)
        elif w.roll(w.rates.sqs_error_after):
            w.count("sqs error after send")
            raise QueueError("injected: SendMessage answer lost")
        w.maybe_crash("after send")


class FaultyGenesys(InProcessAdapter):
    def __init__(self, simulator: GenesysSimulator, world: World) -> None:
        super().__init__(simulator)
        self.world = world

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        w = self.world
        w.maybe_crash("before genesys")
        token = (request.url or "").endswith("/oauth/token")
        if not token and w.roll(w.rates.genesys_before):
            w.count("genesys dropped before")
            raise requests.exceptions.ConnectionError("injected: connection reset", request=request)
        if not token and w.roll(w.rates.genesys_429):
            retry_after = w.rng.choice(RETRY_AFTERS)
            w.count(f"genesys 429 Retry-After {retry_after or 'none'}")
            headers = {"Content-Type": "application/json"} | (
                {"Retry-After": retry_after} if retry_after else {}
            )
            body = json.dumps({"status": 429, "code": "too.many.requests", "message": "Rate limit exceeded"})
            return response_for(request, 429, headers, body.encode())
        response = super().send(request, *args, **kwargs)
        if not token and w.events and w.latency.random() < w.rates.genesys_slow:
            # The answer takes a while: meanwhile telephony changes and its events are handled (the
            # race between a check's read and its write, invariant 8).
            w.count("genesys answer slow")
            w.run_meanwhile(w.latency.uniform(0.5, 5.0))
        if not token and w.roll(w.rates.genesys_after):
            w.count("genesys answer lost after")
            raise requests.exceptions.ReadTimeout("injected: answer lost", request=request)
        w.maybe_crash("after genesys")
        return response
