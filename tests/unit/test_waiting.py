"""The wait strategy, example by example: settle-window-sized looks first, proportional later,
exact when readiness knows the moment, never past the deadline. Properties: test_strategy_bounds.py."""

import random

from wfm_publish import waiting
from wfm_publish.readiness import Observation, Readiness, judge

NOW = 1_000_000.0
SETTLE = 30.0


def not_ready(settle_window: float = SETTLE) -> Readiness:
    edge = Observation("edge", "e1", "Edge 1", ("softwareStatus IN_PROGRESS",), None)
    return judge([edge], NOW, settle_window)


def test_first_looks_come_once_per_settle_window() -> None:
    # A look anywhere inside the settle window after the change ends costs no overshoot, so looking
    # more often buys nothing; SQS rounds delays up, hence a second less.
    delay = waiting.next_check_delay(not_ready(), waited=0, now=NOW, deadline_at=NOW + 3600)
    assert delay == SETTLE - waiting.SQS_ROUNDING


def test_without_a_settle_window_first_looks_are_short() -> None:
    delay = waiting.next_check_delay(not_ready(0.0), waited=0, now=NOW, deadline_at=NOW + 3600)
    assert delay == waiting.MIN_INTERVAL


def test_later_looks_add_a_tenth_of_the_time_waited() -> None:
    delay = waiting.next_check_delay(not_ready(), waited=600, now=NOW, deadline_at=NOW + 3600)
    assert delay == SETTLE - waiting.SQS_ROUNDING + 60


def test_looks_are_never_further_apart_than_the_window_plus_the_overshoot_cap() -> None:
    delay = waiting.next_check_delay(not_ready(), waited=6 * 3600, now=NOW, deadline_at=NOW + 8 * 3600)
    assert delay == SETTLE - waiting.SQS_ROUNDING + waiting.MAX_OVERSHOOT
    assert delay - SETTLE + waiting.SQS_ROUNDING <= 120  # never more than 2 minutes late


def test_a_wait_that_would_reach_the_deadline_takes_one_last_look_just_before_it() -> None:
    delay = waiting.next_check_delay(not_ready(), waited=6000, now=NOW, deadline_at=NOW + 7)
    assert delay == 7 - waiting.SQS_ROUNDING


def test_at_the_deadline_the_wait_ends_there() -> None:
    assert waiting.next_check_delay(not_ready(), waited=6000, now=NOW, deadline_at=NOW + 1.5) == 1.5
    assert waiting.next_check_delay(not_ready(), waited=6000, now=NOW, deadline_at=NOW - 5) == 0


def test_a_recent_change_is_waited_out_exactly() -> None:
    healthy_but_recent = judge([Observation("trunk", "t1", None, (), NOW - 10)], NOW, SETTLE)
    assert not healthy_but_recent.ready
    delay = waiting.next_check_delay(healthy_but_recent, waited=10, now=NOW, deadline_at=NOW + 3600)
    assert delay == 20 + waiting.SETTLE_MARGIN


def test_a_telephony_conflict_waits_a_window_then_doubles_up_to_the_longest_interval() -> None:
    waits = [
        waiting.after_telephony_conflict(n, SETTLE, now=NOW, deadline_at=NOW + 3600) for n in range(1, 6)
    ]
    assert waits[0] == SETTLE + waiting.SETTLE_MARGIN
    assert waits[1] == 2 * waits[0]
    assert waits[2] == 4 * waits[0]
    assert waits[3] == waits[4] == SETTLE - waiting.SQS_ROUNDING + waiting.MAX_OVERSHOOT


def test_another_update_running_is_looked_at_again_soon_then_in_proportion() -> None:
    assert waiting.in_progress_delay(0, 5, now=NOW, deadline_at=NOW + 3600) == 5
    assert waiting.in_progress_delay(60, 5, now=NOW, deadline_at=NOW + 3600) == 15
    assert waiting.in_progress_delay(600, 5, now=NOW, deadline_at=NOW + 3600) == waiting.IN_PROGRESS_CAP


def test_backoff_has_full_jitter_under_an_exponential_cap() -> None:
    rng = random.Random(7)
    draws = [waiting.backoff(3, rng) for _ in range(500)]
    assert min(draws) >= 0 and max(draws) <= 8
    assert max(draws) > 6 and min(draws) < 2  # spread over the whole range, not clustered
    assert all(waiting.backoff(40, rng) <= waiting.BACKOFF_CAP for _ in range(50))
    assert waiting.backoff(10_000, rng) <= waiting.BACKOFF_CAP  # no float overflow, however many
