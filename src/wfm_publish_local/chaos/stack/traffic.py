"""The run's requests: planned (first requests, duplicates, joiners, reused keys, cancels), sent
over HTTP as ServiceNow sends them, every answer kept."""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import requests

from wfm_publish_local.chaos.stack.options import CALLBACK_TABLE, RETRY_ON, WEEK, ChaosOptions
from wfm_publish_local.chaos.stack.org import schedule_id

log = logging.getLogger(__name__)


@dataclass
class Action:
    """One thing the run sends. `after`: the key whose first 202 this waits for (cancels, reused keys)."""

    at: float
    kind: str  # first | duplicate | joiner | other-body | cancel
    key: str
    schedule_id: str
    body: dict[str, Any] | None = None
    after: str | None = None
    copies: int = 1  # sent this many times at once, from as many threads


def callback() -> dict[str, str]:
    return {"table": CALLBACK_TABLE, "sysId": uuid.uuid4().hex}


def plan_requests(options: ChaosOptions) -> list[Action]:
    rng = random.Random(options.seed * 7919 + 1)
    actions: list[Action] = []
    for i in range(options.jobs + options.stuck_jobs):
        stuck = i >= options.jobs
        sid = f"chaos-sched-stuck-{i - options.jobs}" if stuck else schedule_id(i)
        bu = "chaos-bu-stuck" if stuck else f"chaos-bu-{i % options.business_units}"
        mode = "strict" if stuck else rng.choice(["strict", "strict", "deferred", "off", "off"])
        body: dict[str, Any] = {
            "scheduleId": sid,
            "validationMode": mode,
            "telephonySync": {"enabled": True, "retryCount": 3, "delayMs": rng.choice([0, 200, 1000])},
            "callback": callback(),
        }
        if stuck:
            body["deadlineSeconds"] = 60
        if stuck or rng.random() < 0.7:  # else Genesys resolves the business unit and week
            body |= {"businessUnitId": bu, "weekId": WEEK}
        at = rng.uniform(0, options.jobs / options.send_rate)
        key = f"chaos-{options.seed}-{i}"
        concurrent = rng.random() < options.duplicates * options.concurrent
        actions.append(Action(at, "first", key, sid, body, copies=3 if concurrent else 1))
        if rng.random() < options.duplicates * (1 - options.concurrent):
            actions.append(Action(at + rng.uniform(0.05, 6), "duplicate", key, sid, body))
        if rng.random() < options.joiners:
            joiner = {**body, "callback": callback()}
            actions.append(Action(at + rng.uniform(0, 4), "joiner", f"{key}-joiner", sid, joiner))
        if rng.random() < options.other_bodies:
            other = {**body, "validationMode": "off" if mode != "off" else "strict"}
            actions.append(Action(at + rng.uniform(0, 3), "other-body", key, sid, other, after=key))
        if not stuck and rng.random() < options.cancels:
            actions.append(Action(at + rng.uniform(0, 8), "cancel", key, sid, after=key))
    return sorted(actions, key=lambda a: a.at)


@dataclass
class Answer:
    """One request as the caller saw it: every attempt (status, problem code), and the final one."""

    kind: str
    key: str
    schedule_id: str
    callback: tuple[str, str] | None
    attempts: list[tuple[int, str]] = field(default_factory=list)
    status: int = 0
    publish_id: str | None = None
    joined: bool | None = None
    job_status: str | None = None
    sent_at: float = 0.0

    def brief(self) -> str:
        tries = ",".join(f"{s}{'/' + c if c else ''}" for s, c in self.attempts)
        said = f"{self.status} {self.publish_id or ''} joined={self.joined}"
        return f"{self.kind} key={self.key} -> {said} [{tries}]"


class Client:
    """ServiceNow's side: signed requests, retried with the same key while the answer says to."""

    def __init__(self, api_url: str, auth: requests.auth.AuthBase, patience: float = 120.0) -> None:
        self.api_url = api_url
        self.auth = auth
        self.patience = patience

    def publish(self, kind: str, key: str, body: dict[str, Any]) -> Answer:
        cb = body.get("callback")
        answer = Answer(kind, key, str(body["scheduleId"]), (cb["table"], cb["sysId"]) if cb else None)
        answer.sent_at = time.time()
        self._exchange(answer, "POST", "/publishes", body, {"Idempotency-Key": key})
        return answer

    def cancel(self, key: str, schedule_id: str, publish_id: str) -> Answer:
        answer = Answer("cancel", key, schedule_id, None, publish_id=publish_id)
        answer.sent_at = time.time()
        self._exchange(answer, "POST", f"/publishes/{publish_id}/cancel", None, {})
        return answer

    def get(self, publish_id: str) -> tuple[int, dict[str, Any]]:
        for _ in range(10):
            try:
                got = requests.get(f"{self.api_url}/publishes/{publish_id}", auth=self.auth, timeout=30)
            except requests.RequestException:
                time.sleep(0.5)
                continue
            if got.status_code not in (502, 503):
                return got.status_code, _json(got)
            time.sleep(0.5)
        return 0, {}

    def _exchange(
        self, answer: Answer, method: str, path: str, body: dict[str, Any] | None, headers: dict[str, str]
    ) -> None:
        give_up = time.monotonic() + self.patience
        while True:
            try:
                got = requests.request(
                    method, f"{self.api_url}{path}", json=body, headers=headers, auth=self.auth, timeout=30
                )
                status, payload = got.status_code, _json(got)
            except requests.RequestException as exc:
                status, payload = 0, {"code": type(exc).__name__}
            code = str(payload.get("code") or "")
            answer.attempts.append((status, code))
            if self._final(status, code) or time.monotonic() > give_up:
                answer.status = status
                answer.publish_id = payload.get("publishId", answer.publish_id)
                answer.joined = payload.get("joined")
                answer.job_status = payload.get("status")
                return
            retry_after = got.headers.get("Retry-After") if status else None
            time.sleep(min(2.0, float(retry_after)) if retry_after else random.uniform(0.2, 0.8))

    @staticmethod
    def _final(status: int, code: str) -> bool:
        if status == 0:
            return False  # no answer: the caller sends the same request again
        if status == 409:
            return code not in ("REQUEST_IN_PROGRESS",)
        return status not in RETRY_ON


def _json(response: requests.Response) -> dict[str, Any]:
    try:
        parsed = response.json()
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


class Sender:
    """Sends the planned actions at their moments from a pool of threads, keeping every answer."""

    def __init__(self, client: Client, threads: int) -> None:
        self.client = client
        self.answers: list[Answer] = []
        self.last_answer_at = 0.0
        self._first: dict[str, threading.Event] = defaultdict(threading.Event)
        self._first_id: dict[str, str] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="chaos-sender")

    def run(self, actions: list[Action], stop: threading.Event) -> None:
        for action in actions:  # made here, not on first use from two threads at once
            self._first[action.after or action.key]
        started = time.monotonic()
        futures = []
        for action in actions:
            wait = action.at - (time.monotonic() - started)
            if wait > 0 and stop.wait(wait):
                break
            futures += [self._pool.submit(self._send, action) for _ in range(action.copies)]
        for future in futures:
            future.result()
        self._pool.shutdown()

    def _send(self, action: Action) -> None:
        try:
            answer = self._do(action)
        except Exception as exc:  # a bug in the harness must not pass silently as a missing answer
            log.exception("sending %s failed", action)
            answer = Answer(action.kind, action.key, action.schedule_id, None, attempts=[(-1, repr(exc))])
        if answer is None:
            return
        with self._lock:
            self.answers.append(answer)
            self.last_answer_at = time.monotonic()
        if action.kind in ("first", "duplicate") and answer.status == 202 and answer.publish_id:
            self._first_id.setdefault(action.key, answer.publish_id)
            self._first[action.key].set()

    def _do(self, action: Action) -> Answer | None:
        if action.after is not None and not self._first[action.after].wait(120):
            return None  # the first request never got a 202: a violation of its own, found elsewhere
        if action.kind == "cancel":
            return self.client.cancel(action.key, action.schedule_id, self._first_id[action.key])
        assert action.body is not None
        return self.client.publish(action.kind, action.key, action.body)
