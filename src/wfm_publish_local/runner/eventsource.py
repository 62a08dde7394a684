"""What every event source mapping shares: its polling thread, and the partial batch response."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import Any

log = logging.getLogger(__name__)


def batch_item_failures(result: Any, message_ids: Iterable[str]) -> set[str] | None:
    """The message ids a ReportBatchItemFailures response asks to keep, or None when Lambda would
    treat the whole batch as failed (an invalid response, an unknown or empty itemIdentifier)."""
    ids = set(message_ids)
    if result is None:
        return set()
    if not isinstance(result, dict):
        return None
    failures = result.get("batchItemFailures")
    if failures is None:
        return set()
    if not isinstance(failures, list):
        return None
    failed: set[str] = set()
    for item in failures:
        identifier = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not isinstance(identifier, str) or identifier not in ids:
            return None
        failed.add(identifier)
    return failed


class PollingThread:
    """An event source mapping's thread: polls until stopped; `stop` waits for the batch in hand."""

    def __init__(self, name: str) -> None:
        self._stop = threading.Event()
        self._busy = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def request_stop(self) -> None:
        """Ask the thread to stop; it finishes the batch in hand, if any (see stop)."""
        self._stop.set()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop polling and wait for the batch in hand to be finished. A long poll in progress is not
        waited for: whatever it brings back is left where it was."""
        self._stop.set()
        if self._busy.acquire(timeout=timeout):
            self._busy.release()

    @property
    def running(self) -> bool:
        """The thread is alive (after stop, until the poll in progress returns)."""
        return self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._poll()
            except Exception:
                if self._stop.is_set():
                    break
                log.exception("poller %s failed", self._thread.name)
                self._stop.wait(0.5)

    def _poll(self) -> None:
        """One round: fetch, and deliver under `self._busy`."""
        raise NotImplementedError
