"""Actor interleavings as Hypothesis' stateful testing chooses them, through the same chaos worlds.

A seeded world (`make chaos`) draws its interleavings and faults from its seed; when one breaks a
promise, the seed replays it exactly, but nothing makes it shorter. Here the faults drawn at random are
off, and Hypothesis picks the steps instead: which actor runs next (out of time order: the others are
late), which run at once and how their calls interleave, where a worker dies. After the steps the world
runs on to its end without faults and every invariant of chaos/invariants.py is checked. A failure is
shrunk to the shortest sequence of steps that still breaks a promise, and printed as such.

Bounded (a few dozen short sequences) and derandomized: `make test` runs the same examples each time.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule

from wfm_publish_local.chaos.faults import Rates
from wfm_publish_local.chaos.invariants import check
from wfm_publish_local.chaos.virtual import World

# No fault is drawn: every one comes from a rule below.
SCRIPTED = Rates(
    crash=0.0,
    db_lost=0.0,
    db_error_after=0.0,
    db_error_before=0.0,
    db_slow=0.0,
    sqs_error_before=0.0,
    sqs_error_after=0.0,
    sqs_duplicate=0.0,
    sqs_redeliver=0.0,
    genesys_before=0.0,
    genesys_after=0.0,
    genesys_429=0.0,
    genesys_slow=0.0,
    servicenow_error=0.0,
    servicenow_lost=0.0,
    servicenow_slow=0.0,
    servicenow_timeout=0.0,
    stream_lag=0.0,
    events_refused=0.0,
    outage=0.0,
    concurrent=0.0,
)


@pytest.fixture(autouse=True)
def _quiet() -> Iterator[None]:
    logging.disable(logging.CRITICAL)
    yield
    logging.disable(logging.NOTSET)


class Interleavings(RuleBasedStateMachine):
    """A world's actors run in an order, together and with crashes of Hypothesis' choosing."""

    @initialize(seed=st.integers(min_value=0, max_value=40))
    def world(self, seed: int) -> None:
        self.world = World(seed, SCRIPTED)
        self.world.begin()

    @rule(pick=st.integers(min_value=0, max_value=3))
    def one_actor(self, pick: int) -> None:
        """One of the next four actors due runs now (those due before it wait)."""
        self.world.step_scripted(pick)

    @rule(
        pick=st.integers(min_value=0, max_value=3),
        among=st.integers(min_value=2, max_value=3),
        switches=st.lists(st.integers(min_value=0, max_value=2), max_size=16),
    )
    def actors_at_once(self, pick: int, among: int, switches: list[int]) -> None:
        """Two or three actors run at once; at each outside call, `switches` says which goes on."""
        self.world.actors.script = list(switches)
        self.world.step_scripted(pick, among)
        self.world.actors.script = None

    @rule(calls=st.integers(min_value=0, max_value=8))
    def crash(self, calls: int) -> None:
        """The worker making the `calls`-th outside call from now dies just before it."""
        self.world.crash_in = calls

    def teardown(self) -> None:
        if not hasattr(self, "world"):
            return
        self.world.crash_in = None
        self.world.go()
        broken = check(self.world)
        trace = "\n".join(self.world.trace[-30:])
        assert not broken, "\n".join([*broken, "trace (last lines):", trace])


def test_interleavings_chosen_by_hypothesis_keep_every_promise() -> None:
    case = Interleavings.TestCase
    case.settings = settings(
        max_examples=25,
        stateful_step_count=12,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    case().runTest()
