"""The wait strategy: how long a job waits before it looks at telephony again, or retries a call.

Short checks at first, then checks spaced in proportion to the time already waited, so a 15 s change
costs a few cheap reads and a 6 h change does not cost thousands. When everything is healthy but
changed recently, the settle window says exactly when it will be ready: wait until then.
"""

from __future__ import annotations

import random

from wfm_publish.readiness import Readiness

MIN_INTERVAL = 2.0  # seconds between the first checks
WAITED_RATIO = 0.1  # later checks every 10% of the time waited so far...
MAX_INTERVAL = 120.0  # ...but never more than 2 minutes apart
SETTLE_MARGIN = 0.5  # arrive just after the settle window closes, not just before
BACKOFF_BASE = 1.0
BACKOFF_CAP = 900.0


def next_check_delay(readiness: Readiness, *, waited: float, now: float, deadline_at: float) -> float:
    """Seconds until the next readiness check; never past the deadline."""
    if readiness.settles_at is not None:
        delay = readiness.settles_at - now + SETTLE_MARGIN
    else:
        delay = min(MAX_INTERVAL, max(MIN_INTERVAL, WAITED_RATIO * max(0.0, waited)))
    return max(0.0, min(delay, deadline_at - now))


def backoff(
    failures: int, rng: random.Random, *, base: float = BACKOFF_BASE, cap: float = BACKOFF_CAP
) -> float:
    """Exponential backoff with full jitter, for 5xx and timeouts."""
    return rng.uniform(0.0, min(cap, base * 2 ** max(0, failures)))
