"""Time as the core sees it: a wall clock in Lambda, a virtual one in the benchmark."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch."""
        ...


class SystemClock:
    def now(self) -> float:
        return time.time()


class VirtualClock:
    """A clock that only moves when told to: hours of waiting take no time in the benchmark."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

    def advance_to(self, moment: float) -> None:
        self._now = max(self._now, moment)

    def advance(self, seconds: float) -> None:
        self._now += seconds


def iso(moment: float) -> str:
    """ISO-8601 UTC with milliseconds, the way Genesys and ServiceNow write times."""
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
