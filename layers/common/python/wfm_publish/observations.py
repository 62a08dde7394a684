"""Reading through the observations other jobs made a moment ago: the job table's
`observation#<key>` items (a conditional write, so an older look never replaces a newer one, and a
short TTL). A job looking within `max_age` seconds of another's read reuses it instead of calling
Genesys; after its first look it reuses no telephony state read before the move that sent its step
(`newer_than`: wake.py counts on it). A failing table never fails a check: it only costs the read.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from aws_lambda_powertools import Logger

from wfm_publish.errors import StoreError

logger = Logger(child=True)

OBSERVATION_MAX_AGE = 5.0  # telephony state another job read this recently is reused
REFERENCE_MAX_AGE = 300.0  # campaigns, queue members, org settings: they change far more slowly
OBSERVATION_TTL = 3600.0  # DynamoDB TTL cleans the items up; freshness is judged on observedAt


class ObservationStore(Protocol):
    def get_observation(self, key: str) -> tuple[float, Any] | None: ...
    def put_observation(self, key: str, observed_at: float, data: Any, ttl_seconds: float) -> bool: ...


class Observer:
    """Reads through the observations other jobs stored a moment ago, and keeps what one invocation read.

    A failing table never fails a check: it only costs the Genesys read the table would have saved.
    """

    def __init__(self, store: ObservationStore | None, now: float, newer_than: float | None = None) -> None:
        """`newer_than`: reuse no telephony state (`get(state=True)`) read at or before it. A job's
        step passes the time of the move that sent it, so the step sees any change that came before it
        (wake.py counts on that), and a job never takes its own old look for news. Reference data
        (campaigns, queue members) is shared whatever its age within `max_age`."""
        self._store = store
        self.now = now
        self.newer_than = newer_than
        self._local: dict[str, Any] = {}
        self.shared = 0  # observations reused from another job (or an earlier invocation)
        self.stored = 0  # observations this invocation wrote for others
        self._read_at: dict[str, float] = {}  # key -> when what `get` answered was read

    def read_at(self, key: str) -> float:
        """When the answer `get(key)` gave was read: an observation reused from another job is as old
        as that job's read, not as this invocation."""
        return self._read_at.get(key, self.now)

    def get(
        self,
        key: str,
        max_age: float,
        read: Callable[[], Any],
        *,
        newer_than: float | None = None,
        state: bool = False,
    ) -> Any:
        """`read()`, or what another job stored under `key` within `max_age` seconds (and after
        `newer_than`, and the observer's)."""
        if key in self._local:
            return self._local[key]
        if self._store is not None and max_age > 0:
            hit = None
            try:
                hit = self._store.get_observation(key)
            except StoreError as exc:
                logger.warning("shared observation unreadable", extra={"key": key, "error": str(exc)})
            bounds = [b for b in (newer_than, self.newer_than if state else None) if b is not None]
            oldest = max([self.now - max_age, *bounds])
            if hit is not None and oldest <= hit[0] <= self.now + max_age and hit[0] not in bounds:
                self.shared += 1
                self._local[key] = hit[1]
                self._read_at[key] = min(hit[0], self.now)
                return hit[1]
        data = read()
        if self._store is not None and max_age > 0:
            try:
                if self._store.put_observation(key, self.now, data, max(OBSERVATION_TTL, max_age)):
                    self.stored += 1
            except StoreError as exc:
                logger.warning("shared observation not stored", extra={"key": key, "error": str(exc)})
        self._local[key] = data
        return data
