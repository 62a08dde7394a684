"""Worker deaths: a seeded CrashPlan kills invocations before or after one of their AWS calls."""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any


class WorkerCrash(BaseException):
    """Raised inside a handler by a CrashPlan. A BaseException, so no `except Exception` in the code
    under test can catch it and carry on: the invocation ends there, like a Lambda that was killed."""


class FunctionCrashed(RuntimeError):
    """What the runner reports for an invocation that a CrashPlan killed (the event source then does
    what Lambda does after a failed invocation)."""


class CrashPlan:
    """Seeded worker deaths. Each invocation of a function with a rate draws once: with that
    probability it dies at point k (uniform in 1..`most_points`), where the points are the moments
    before and after each AWS call it makes (botocore's before-call and after-call events). Dying
    after a call is dying after its commit, with the answer in hand and nothing done with it. An
    invocation that makes fewer calls than k does not die (only real deaths are counted).

    The hook is thread-local: concurrent invocations (API threads, pollers) each count their own
    calls, and AWS calls made outside an invocation (the test's own clients) never die.

        plan = CrashPlan({"TrunkValidationFunction": 0.1}, seed=3)
        LocalStack(..., crash=plan)          # hooks every botocore session (the functions' own too)
        plan.crashes                         # Counter: function -> deaths
    """

    def __init__(
        self,
        rates: Mapping[str, float],
        seed: int = 0,
        most_points: int = 16,
        script: Mapping[str, Sequence[int]] | None = None,
    ) -> None:
        """script: function -> the points at which its first invocations die, in order (0: lives), before
        any draw: a reproduction of one death at one place."""
        for name, rate in rates.items():
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name}: a crash rate is within 0..1, got {rate}")
        if most_points < 1:
            raise ValueError("most_points must be at least 1")
        self.rates = dict(rates)
        self.most_points = most_points
        self.crashes: Counter[str] = Counter()  # function -> invocations that died
        self.points: Counter[str] = Counter()  # "before"/"after" -> where they died
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._local = threading.local()
        self._installed: list[Any] = []
        self._builtins: list[tuple[str, Any]] = []
        self._script = {name: list(points) for name, points in (script or {}).items()}

    def install(self, *emitters: Any) -> None:
        """Hook every botocore session created from now on (botocore registers its BUILTIN_HANDLERS in
        each: the functions build their own session, after the stack's reset), and the event emitters
        of sessions that exist already (`boto3.DEFAULT_SESSION.events`). Clients created afterwards
        carry the hook: botocore copies the session's handlers into each client."""
        from botocore import handlers

        tag = f"crash-plan-{id(self)}"
        self._builtins = [("before-call", self._before), ("after-call", self._after)]
        handlers.BUILTIN_HANDLERS.extend(self._builtins)
        for events in emitters:
            events.register("before-call", self._before, unique_id=f"{tag}-before")
            events.register("after-call", self._after, unique_id=f"{tag}-after")
            self._installed.append(events)

    def uninstall(self) -> None:
        from botocore import handlers

        tag = f"crash-plan-{id(self)}"
        for builtin in self._builtins:
            if builtin in handlers.BUILTIN_HANDLERS:
                handlers.BUILTIN_HANDLERS.remove(builtin)
        self._builtins = []
        for events in self._installed:
            events.unregister("before-call", unique_id=f"{tag}-before")
            events.unregister("after-call", unique_id=f"{tag}-after")
        self._installed = []

    def total(self) -> int:
        with self._lock:
            return sum(self.crashes.values())

    @contextmanager
    def invocation(self, logical_id: str) -> Iterator[None]:
        """Arm the plan for one invocation on this thread (drawn under the lock: one draw per call)."""
        rate = self.rates.get(logical_id, 0.0)
        with self._lock:
            scripted = self._script.get(logical_id)
            if scripted:
                point = scripted.pop(0)
            else:
                point = self._rng.randint(1, self.most_points) if rate and self._rng.random() < rate else 0
        self._local.function, self._local.left = logical_id, point
        try:
            yield
        finally:
            self._local.left = 0

    def _before(self, **_: Any) -> None:
        self._tick("before")

    def _after(self, **_: Any) -> None:
        self._tick("after")

    def _tick(self, where: str) -> None:
        left = getattr(self._local, "left", 0)
        if not left:
            return
        self._local.left = left - 1
        if left == 1:
            with self._lock:
                self.crashes[self._local.function] += 1
                self.points[where] += 1
            raise WorkerCrash(f"{self._local.function} died {where} an AWS call (crash plan)")
