"""The wait strategy: how long a job waits before it looks at telephony again, or retries a call.

Genesys accepts a publish once the telephony in the schedule's scope has been unchanged for the
settle window, and readiness says exactly when that will be (`settles_at`) as soon as a look lands
inside the window. So a look anywhere in the window costs no overshoot, and looking more often than
once per window buys nothing: the shortest useful interval is the window itself (minus a second,
because SQS delays are whole seconds, rounded up). On top of that, a tenth of the time already
waited: a look can then overshoot the settle point by at most a tenth of the wait, so of the change,
while the number of looks grows with the logarithm of the wait rather than with the wait. Past
`MAX_OVERSHOOT / WAITED_RATIO` of waiting the interval stops growing, so no look ever lands more than
`MAX_OVERSHOOT` after the settle point, and a wait never passes the job's deadline.

Every wait here is a queue delay: nothing sleeps in a Lambda, and a wait over 900 s hops
(queues.QueueSender).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # readiness pulls the Genesys wire models: every transition imports this module
    from wfm_publish.readiness import Readiness


@dataclass(frozen=True)
class Timing:
    settle_window: float = 30.0  # telephony unchanged this long before Genesys accepts a publish
    confirm_first: float = 2.0  # first look at the schedule after posting the update
    confirm_timeout: float = 180.0  # an update not applied by then is treated as lost
    in_progress_wait: float = 5.0  # another update is running: first look at the schedule after this
    in_progress_limit: float = 180.0  # ... and publish anyway once it has run this long (it may be lost)
    # Telephony events wake waiting jobs (the genesys_events function, `watch#` items): a check then
    # follows each change at once, so polling is only a safety net for a lost event.
    events: bool = False
    safety_poll: float = 2400.0  # with events: the wait between checks while telephony still changes


# Polling, a job waiting on a change writes at most once per QUIET_WINDOW: looks in between that find
# nothing new write nothing (`_settled`). A look is quiet only if the next one comes QUIET_MARGIN
# before the job's due time, so the write lands before the watchdog would see the job overdue.
QUIET_WINDOW = 1800.0
QUIET_MARGIN = 60.0


MIN_INTERVAL = 2.0  # the shortest interval between looks, whatever the settle window
SQS_ROUNDING = 1.0  # SQS delays are whole seconds, rounded up: a delay can land this much later
WAITED_RATIO = 0.1  # each interval adds a tenth of the time waited so far ...
MAX_OVERSHOOT = 115.0  # ... but at most this: no look lands more than ~2 minutes after settling
SETTLE_MARGIN = 0.5  # arrive just after the settle window closes, not just before
BACKOFF_BASE = 1.0
BACKOFF_CAP = 900.0
IN_PROGRESS_RATIO = 0.25  # another writer's update: look at the schedule every quarter of the wait
IN_PROGRESS_CAP = 30.0


def check_interval(waited: float, settle_window: float) -> float:
    """Seconds between two looks at telephony that is still changing, after `waited` seconds."""
    floor = max(MIN_INTERVAL, settle_window - SQS_ROUNDING)
    return floor + min(MAX_OVERSHOOT, WAITED_RATIO * max(0.0, waited))


def next_check_delay(
    readiness: Readiness, *, waited: float, now: float, deadline_at: float, poll: float | None = None
) -> float:
    """Seconds until the next readiness check; never past the deadline. `poll`: telephony events wake
    the job when something changes, so while telephony is still changing wait this long instead (a
    safety net for a lost event, not the schedule that finds the settle point)."""
    if readiness.settles_at is not None:
        # Everything is healthy but changed recently: readiness knows the moment. Wait exactly that.
        delay = max(SETTLE_MARGIN, readiness.settles_at - now + SETTLE_MARGIN)
    elif poll is not None:
        delay = max(poll, check_interval(waited, readiness.settle_window))
    else:
        delay = check_interval(waited, readiness.settle_window)
    return within_deadline(delay, now, deadline_at)


def within_deadline(delay: float, now: float, deadline_at: float) -> float:
    """`delay`, unless it would reach the deadline: then one last look just before it (a look that
    arrived after the deadline would give up unseen), or, that close already, the deadline itself."""
    remaining = deadline_at - now
    if remaining <= 0:
        return 0.0
    delay = max(0.0, delay)
    if delay <= remaining - SQS_ROUNDING:
        return delay
    return remaining - SQS_ROUNDING if remaining > 2 * SQS_ROUNDING else remaining


def after_telephony_conflict(
    conflicts: int, settle_window: float, *, now: float, deadline_at: float
) -> float:
    """Genesys refused a publish for telephony our readiness check saw as settled: it either changed
    within the last settle window, or is outside what readiness can see. One window (and the margin)
    covers the first; each further such conflict waits twice as long, up to the longest check interval."""
    window = max(MIN_INTERVAL, settle_window) + SETTLE_MARGIN
    longest = max(window, check_interval(float("inf"), settle_window))
    delay = window * 2 ** min(max(0, conflicts - 1), 16)
    return within_deadline(min(delay, longest), now, deadline_at)


UNEXPLAINED_FLOOR = 30.0  # a 409 nothing readable explains: the first wait before publishing again


def after_unexplained_conflict(
    conflicts: int, settle_window: float, *, now: float, deadline_at: float
) -> float:
    """A 409 that neither the schedule, an update of ours nor the scope's telephony explains (telephony
    readiness cannot see, another writer's update still running): wait as after a telephony conflict,
    but at least UNEXPLAINED_FLOOR the first time, so a short settle window does not spend the attempt
    budget in seconds. Doubles with each such conflict."""
    return after_telephony_conflict(
        conflicts, max(settle_window, UNEXPLAINED_FLOOR), now=now, deadline_at=deadline_at
    )


def in_progress_delay(waited: float, floor: float, *, now: float, deadline_at: float) -> float:
    """Another update of the schedule is running: look at the schedule again (a cheap read) after a
    quarter of the time it has been running so far, at least `floor`, at most IN_PROGRESS_CAP."""
    delay = min(IN_PROGRESS_CAP, max(floor, IN_PROGRESS_RATIO * max(0.0, waited)))
    return within_deadline(delay, now, deadline_at)


def backoff(
    failures: int, rng: random.Random, *, base: float = BACKOFF_BASE, cap: float = BACKOFF_CAP
) -> float:
    """Exponential backoff with full jitter, for 5xx and timeouts: uniform in [0, min(cap, base * 2^n)]."""
    exponent = min(max(0, failures), 62)  # 2**62 s is past any cap; larger would overflow a float
    ceiling = min(cap, base * math.ldexp(1.0, exponent))
    return rng.uniform(0.0, max(0.0, ceiling))
