"""The chaos world's faults at each boundary: DynamoDB seen through the client's calls, the SQS
transport, Genesys behind the real client, the ServiceNow records, EventBridge, the workers' clocks
and crashes. Each draws from the world's seeded generator (chaos.virtual.World).

Every call at a boundary is also a point where another actor of a group may run first
(`World.switch`: actors.Interleaver), and where an outage (DynamoDB or SQS unavailable for minutes)
may begin.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import requests
from botocore.exceptions import ClientError
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

from wfm_publish.errors import CallbackRejected, QueueError, ServiceNowError
from wfm_publish.notifier import ID_FIELD, STATUS_FIELD
from wfm_publish.queues import Queue
from wfm_publish_local.memorydb import MemoryDynamoDB
from wfm_publish_local.simulator import GenesysSimulator
from wfm_publish_local.simulator.transport import InProcessAdapter, response_for

if TYPE_CHECKING:
    from wfm_publish_local.chaos.virtual import World

RETRY_AFTERS = ["1", "7", "30", "86400", "inf", "-5", "nan", "Wed, 21 Oct 2015 07:28:00 GMT", ""]
GONE = "f" * 32  # a callback record that does not exist: ServiceNow answers 404, for good
HOP_FAULTS = 0.05  # faults on a long wait's hops, against the rates elsewhere


class Crash(BaseException):  # not an error the core may catch: the worker is gone
    """The worker died here. BaseException, so no `except Exception` in the core can swallow it."""


@dataclass(frozen=True)
class Rates:
    crash: float = 0.01
    db_lost: float = 0.03
    db_lost_later: float = 0.5  # of lost answers: botocore's retry comes after others have written
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
    servicenow_error: float = 0.04  # 5xx / 429 before the record changes
    servicenow_lost: float = 0.02  # the PATCH applied, its answer lost
    servicenow_slow: float = 0.1
    servicenow_timeout: float = 0.03  # the PATCH applied, its answer so slow the function times out
    stream_lag: float = 0.25  # the stream's reader is seconds behind
    events_refused: float = 0.05  # EventBridge refuses an entry, or the whole PutEvents
    outage: float = 0.001  # per boundary call: DynamoDB or SQS unavailable from here for minutes
    concurrent: float = 0.15  # a delivery, request or batch picked up at once with the next ones due
    skew: float = 2.0


class SkewedClock:
    """The running actor's clock: the world's, off by that actor's skew (actors.Actor.offset)."""

    def __init__(self, world: World) -> None:
        self.world = world

    def now(self) -> float:
        actor = self.world.actors.current
        return self.world.clock.now() + (actor.offset if actor is not None else 0.0)


class FakeServiceNow:
    """The callback records as ServiceNowClient sees them: every PATCH they took, in order, with when.
    Faults: a crash before a GET, before or after a PATCH; 5xx and 429 before a change; a PATCH applied
    whose answer is lost; slow answers (the world goes on meanwhile); records that no longer exist."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.records: dict[tuple[str, str], list[tuple[str, str, float]]] = defaultdict(list)

    def _enter(self, what: str, table: str, sys_id: str) -> None:
        w = self.world
        w.boundary("servicenow")
        w.maybe_crash(f"before {what}")
        if w.roll(w.rates.servicenow_slow):
            w.count("servicenow answer slow")
            w.run_meanwhile(w.latency.uniform(0.5, 5.0))
        if sys_id == GONE:
            raise CallbackRejected(f"ServiceNow answered 404 to {what} {table}/{sys_id}", status=404)
        if w.roll(w.rates.servicenow_error):
            status = w.rng.choice([500, 503, 429])
            w.count(f"servicenow {status}")
            raise ServiceNowError(f"ServiceNow answered {status} to {what} {table}/{sys_id}", status=status)

    def read_record(self, table: str, sys_id: str, fields: list[str]) -> dict[str, str]:
        self._enter("GET", table, sys_id)
        told = self.records.get((table, sys_id))
        return {ID_FIELD: told[-1][0], STATUS_FIELD: told[-1][1]} if told else {}

    def update_record(self, table: str, sys_id: str, fields: Mapping[str, str]) -> dict[str, str]:
        w = self.world
        self._enter("PATCH", table, sys_id)
        self.records[(table, sys_id)].append((fields[ID_FIELD], fields[STATUS_FIELD], w.clock.now()))
        if w.roll(w.rates.servicenow_lost):
            w.count("servicenow answer lost after PATCH")
            raise ServiceNowError(f"ServiceNow did not answer PATCH {table}/{sys_id} in time")
        if w.roll(w.rates.servicenow_timeout):
            w.count("function timed out on a PATCH that applied")
            raise Crash("timed out waiting for ServiceNow")
        w.maybe_crash("after PATCH")
        return {"sys_id": sys_id}


class FakeEventBridge:
    """PutEvents as the announcer sees it; every entry accepted is kept, in order."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.put: list[dict[str, Any]] = []

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:  # botocore's name
        w = self.world
        w.boundary("eventbridge")
        w.maybe_crash("before PutEvents")
        if w.roll(w.rates.events_refused):
            w.count("eventbridge PutEvents failed")
            raise ClientError({"Error": {"Code": "InternalException", "Message": "injected"}}, "PutEvents")
        results: list[dict[str, Any]] = []
        refused = w.rng.randrange(len(Entries)) if w.roll(w.rates.events_refused) else None
        for i, entry in enumerate(Entries):
            if refused is not None and i >= refused and (i == refused or w.rng.random() < 0.5):
                results.append({"ErrorCode": "InternalFailure", "ErrorMessage": "injected"})
                continue
            self.put.append(json.loads(entry["Detail"]))
            results.append({"EventId": f"event-{len(self.put)}"})
        if refused is not None:
            w.count("eventbridge entries refused")
        w.maybe_crash("after PutEvents")
        return {"FailedEntryCount": sum("ErrorCode" in r for r in results), "Entries": results}


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
        w.boundary("dynamodb")
        if w.down("dynamodb"):
            raise _server_error(name, "ServiceUnavailable")
        if w.roll(w.rates.db_error_before):
            w.count("dynamodb 5xx before")
            raise _server_error(name)
        result: dict[str, Any] = getattr(self.db, name)(**kwargs)
        return result

    def _write(self, name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
        w = self.world
        w.boundary("dynamodb")
        w.maybe_crash(f"before {name}")
        if w.down("dynamodb"):
            raise _server_error(name, "ServiceUnavailable")
        if w.roll(w.rates.db_error_before):
            w.count("dynamodb 5xx before commit")
            raise _server_error(name)
        if w.roll(w.rates.db_slow):
            w.count("dynamodb throttled (commits late)")
            w.run_meanwhile(w.rng.uniform(1.0, 20.0))  # botocore backs off; other workers go on
        result: dict[str, Any] = getattr(self.db, name)(**kwargs)
        if w.roll(w.rates.db_lost):
            w.count("dynamodb answer lost after commit")
            if w.roll(w.rates.db_lost_later):
                # botocore's retry waits its backoff: other actors may write the same item meanwhile.
                w.count("dynamodb lost answer retried after others wrote")
                w.boundary("dynamodb")
                w.run_meanwhile(w.rng.uniform(0.05, 2.0))
            result = getattr(self.db, name)(**kwargs)  # botocore's retry of the very same request
        elif w.roll(w.rates.db_error_after):
            w.count("dynamodb error after commit")
            raise _server_error(name)
        w.maybe_crash(f"after {name}")
        return result


def _server_error(operation: str, code: str = "InternalServerError") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "injected"}}, operation)


class FaultyTransport:
    """SQS as the queue sender sees it; deliveries go on the world's agenda."""

    def __init__(self, world: World) -> None:
        self.world = world

    def send(self, queue: Queue, body: str, delay_seconds: int) -> None:
        w = self.world
        w.boundary("sqs")
        # A hop of a long wait (notBefore) whose send fails or is duplicated forks the wait: hop after
        # hop, over a day, the copies would multiply. Faults there are rarer, as real ones are.
        scale = HOP_FAULTS if '"notBefore"' in body else 1.0
        w.maybe_crash("before send", scale)
        if w.down("sqs"):
            raise QueueError("injected: SQS unavailable")
        if w.roll(w.rates.sqs_error_before * scale):
            w.count("sqs 5xx before send")
            raise QueueError("injected: SendMessage failed")
        jitter = w.rng.uniform(0.0, 0.5)
        w.enqueue(queue, body, delay_seconds, jitter)
        if w.roll(w.rates.sqs_duplicate * scale):
            w.count("sqs duplicate")
            # Two pollers may take the two copies at the same moment: the same jitter.
            w.enqueue(queue, body, delay_seconds, jitter if w.rng.random() < 0.5 else w.rng.uniform(0.0, 0.5))
        elif w.roll(w.rates.sqs_error_after * scale):
            w.count("sqs error after send")
            raise QueueError("injected: SendMessage answer lost")
        w.maybe_crash("after send", scale)


class FaultyGenesys(InProcessAdapter):
    def __init__(self, simulator: GenesysSimulator, world: World) -> None:
        super().__init__(simulator)
        self.world = world

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        w = self.world
        url = request.url or ""
        token = url.endswith("/oauth/token")
        if not token:  # the client fetches its token under a lock: no other actor runs meanwhile
            w.boundary("genesys")
        w.maybe_crash("before genesys")
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
        if request.method == "POST" and url.split("?")[0].endswith("/update") and response.status_code == 200:
            w.update_posted(response.json().get("operationId"))
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


class DirectSession(requests.Session):
    """The Genesys client's session in a chaos world: each request goes straight to one adapter (the
    simulator behind the faults), prepared the short way: no cookies, environment, hooks or redirects,
    which cost a fifth of a world's time and which an in-process transport does not have. The client
    itself (its calls, answers, errors and token) runs as it does over HTTP (the local stack's tests)."""

    def __init__(self, adapter: BaseAdapter) -> None:
        super().__init__()
        self.trust_env = False
        self.direct = adapter

    def request(  # type: ignore[override]
        self,
        method: str,
        url: str,
        params: Mapping[str, Any] | None = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        timeout: Any = None,
        **_: Any,
    ) -> requests.Response:
        prepared = requests.PreparedRequest()
        prepared.method = method.upper()
        query = urlencode({k: v for k, v in (params or {}).items() if v is not None}, doseq=True)
        prepared.url = f"{url}{'&' if '?' in url else '?'}{query}" if query else url
        prepared.headers = CaseInsensitiveDict(headers or {})
        body: bytes | None = None
        if json is not None:
            body = _json_bytes(json)
            prepared.headers.setdefault("Content-Type", "application/json")
        elif isinstance(data, Mapping):
            body = urlencode(data).encode()
            prepared.headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        elif data is not None:
            body = data if isinstance(data, bytes) else str(data).encode()
        prepared.body = body
        return self.direct.send(prepared, timeout=timeout)


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value).encode()


class FaultyWeeklyQueue:
    """WeeklyQueue as the weekly run sees it (SendMessageBatch); its messages go on the world's agenda
    for the weekly unit function."""

    def __init__(self, world: World) -> None:
        self.world = world

    def send_batch(self, entries: Any) -> None:
        w = self.world
        w.boundary("sqs")
        # A deferral a day long hops (notBefore): faults there are rarer, as for the job queues' hops.
        scale = HOP_FAULTS if any('"notBefore"' in body for body, _ in entries) else 1.0
        w.maybe_crash("before SendMessageBatch", scale)
        if w.down("sqs"):
            raise QueueError("could not send to the weekly queue: injected outage")
        if w.roll(w.rates.sqs_error_before * scale):
            w.count("sqs 5xx before send")
            raise QueueError("could not send to the weekly queue: injected")
        for body, delay in entries:
            w.weekly_message(body, float(delay))
            if w.roll(w.rates.sqs_duplicate * scale):
                w.count("sqs duplicate")
                w.weekly_message(body, float(delay))
        if w.roll(w.rates.sqs_error_after * scale):
            w.count("sqs error after send")
            raise QueueError("could not send to the weekly queue: answer lost")
        w.maybe_crash("after SendMessageBatch", scale)
