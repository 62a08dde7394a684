"""Who is running in a chaos world, and how several run at once.

Every piece of work in a world (a message delivered to a worker, a ServiceNow request, a stream batch,
a watchdog sweep, an operator's command) runs as an `Actor`: it has its own clock skew, the job it
works for (so an update it posts is that job's) and, for a request, which request it is (so the
items it writes are that request's).

Most of the time actors run one after another (and, at a slow call, others run to completion
meanwhile: `World.run_meanwhile`). Sometimes several start at once (`Interleaver.run`): each in a
thread of its own, but only one holds the baton at any moment, and at every call to DynamoDB, SQS,
Genesys, ServiceNow or EventBridge (`Interleaver.switch`) the baton may pass to another, drawn from
the world's seeded generator. So two workers can read the same version of a job, and their calls
interleave in any order, deterministically: the same seed replays the same interleaving.

The threads are kept for the process (`_Runner.idle`): a world starts a few hundred groups.
"""

from __future__ import annotations

import itertools
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

_ids = itertools.count(1)


@dataclass
class Actor:
    """One piece of work: a worker's delivery, a request, a batch, a sweep."""

    name: str
    offset: float = 0.0  # its clock's skew, seconds
    job_id: str | None = None  # the job it works for: an update it posts is this job's
    request: int | None = None  # a request attempt's number (World.attempts): what it writes is its own
    id: int = field(default_factory=lambda: next(_ids))


class _Runner:
    """A thread that may hold the baton: the world's own thread, or one kept for groups. The baton is
    a lock per runner, held while it waits: releasing it lets that runner go."""

    idle: ClassVar[list[_Runner]] = []
    _guard: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, main: bool = False) -> None:
        self.stack: list[Actor] = []
        self.baton = threading.Lock()
        self.baton.acquire()
        self.done = False
        self.action: Callable[[], None] | None = None
        self.owner: Interleaver | None = None
        if not main:
            threading.Thread(target=self._serve, name="chaos-actor", daemon=True).start()

    @classmethod
    def take(cls) -> _Runner:
        with cls._guard:
            return cls.idle.pop() if cls.idle else cls()

    def _serve(self) -> None:
        while True:
            self.baton.acquire()  # given work, then the baton
            owner, action = self.owner, self.action
            assert owner is not None and action is not None
            owner.running = self
            try:
                action()
            except BaseException as failure:  # reported by the world as a harness failure
                owner.failures.append(failure)
            self.done = True
            self.stack.clear()
            self.action, self.owner = None, None
            with _Runner._guard:
                _Runner.idle.append(self)
            owner._finished(self)


class Interleaver:
    """Runs groups of actors at once, one step at a time, switching at every outside call."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.main = _Runner(main=True)
        self.running = self.main
        self._group: list[_Runner] = []
        self._level = 0  # the nesting depth (World.depth) at which the group runs
        self.switches = 0
        self.failures: list[BaseException] = []
        self.script: list[int] | None = None  # the choices of `switch`, scripted (else drawn)

    @property
    def current(self) -> Actor | None:
        stack = self.running.stack
        return stack[-1] if stack else None

    def push(self, actor: Actor) -> None:
        self.running.stack.append(actor)

    def pop(self) -> None:
        self.running.stack.pop()

    @property
    def grouped(self) -> bool:
        return bool(self._group)

    def run(self, work: list[Callable[[], None]], level: int) -> None:
        """Run every piece of `work` at once, interleaved, and return when all are done. Not nested:
        a group's members run their slow calls' meanwhile one after another (`switch` at `level` only).
        Each piece pushes its own actor (World.acting)."""
        assert not self._group, "groups do not nest"
        self._level = level
        members = [_Runner.take() for _ in work]
        for runner, action in zip(members, work, strict=True):
            runner.done, runner.action, runner.owner = False, action, self
        self._group = members
        try:
            self._hand(self.rng.choice(members), self.main)
        finally:
            self._group = []
            self.running = self.main

    def switch(self, level: int) -> None:
        """At an outside call: maybe let another member of the group run first."""
        if not self._group or level != self._level or self.running is self.main:
            return
        alive = [r for r in self._group if not r.done]
        chosen = alive[self.script.pop(0) % len(alive)] if self.script else self.rng.choice(alive)
        if chosen is not self.running:
            self.switches += 1
            self._hand(chosen, self.running)

    def _hand(self, chosen: _Runner, me: _Runner) -> None:
        self.running = chosen
        chosen.baton.release()
        me.baton.acquire()
        self.running = me

    def _finished(self, runner: _Runner) -> None:
        """A member is done: the baton goes to another, or back to the world once all are."""
        alive = [r for r in self._group if not r.done]
        chosen = self.rng.choice(alive) if alive else self.main
        self.running = chosen
        chosen.baton.release()
