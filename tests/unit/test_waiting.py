"""The wait strategy's bounds: short checks first, proportional later, never past the deadline."""

import random

from wfm_publish import waiting
from wfm_publish.readiness import Observation, judge

NOW = 1_000_000.0


def not_ready() -> object:
    return judge([Observation("edge", "e1", "Edge 1", ("softwareStatus IN_PROGRESS",), None)], NOW, 30)


def test_first_checks_are_short() -> None:
    assert (
        waiting.next_check_delay(not_ready(), waited=0, now=NOW, deadline_at=NOW + 3600)
        == waiting.MIN_INTERVAL
    )  # type: ignore[arg-type]


def test_later_checks_are_spaced_in_proportion_to_the_wait() -> None:
    delay = waiting.next_check_delay(not_ready(), waited=600, now=NOW, deadline_at=NOW + 3600)  # type: ignore[arg-type]
    assert delay == 60


def test_checks_are_never_more_than_the_cap_apart() -> None:
    delay = waiting.next_check_delay(not_ready(), waited=6 * 3600, now=NOW, deadline_at=NOW + 8 * 3600)  # type: ignore[arg-type]
    assert delay == waiting.MAX_INTERVAL


def test_a_wait_never_passes_the_deadline() -> None:
    assert waiting.next_check_delay(not_ready(), waited=6000, now=NOW, deadline_at=NOW + 7) == 7  # type: ignore[arg-type]


def test_a_recent_change_is_waited_out_exactly() -> None:
    healthy_but_recent = judge([Observation("trunk", "t1", None, (), NOW - 10)], NOW, 30)
    assert not healthy_but_recent.ready
    delay = waiting.next_check_delay(healthy_but_recent, waited=10, now=NOW, deadline_at=NOW + 3600)
    assert delay == 20 + waiting.SETTLE_MARGIN


def test_backoff_has_full_jitter_under_an_exponential_cap() -> None:
    rng = random.Random(7)
    draws = [waiting.backoff(3, rng) for _ in range(500)]
    assert min(draws) >= 0 and max(draws) <= 8
    assert max(draws) > 6 and min(draws) < 2  # spread over the whole range, not clustered
    assert all(waiting.backoff(40, rng) <= waiting.BACKOFF_CAP for _ in range(50))
