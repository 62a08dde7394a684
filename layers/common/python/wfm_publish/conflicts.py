"""What a 409 means, read from the Genesys error body and a fresh read of the schedule."""

from __future__ import annotations

from enum import StrEnum

from wfm_publish.genesys import Schedule
from wfm_publish.models import GenesysErrorBody

_TELEPHONY_HINTS = ("telephony", "trunk", "edge", "provision")
_IN_PROGRESS_HINTS = ("update.in.progress", "operation.in.progress", "in progress")


class ConflictKind(StrEnum):
    ALREADY_PUBLISHED = "already-published"  # our update landed after all: done
    STALE_VERSION = "stale-version"  # another writer moved the schedule: re-read and retry now
    TELEPHONY_SETTLING = "telephony-settling"  # back to delayed validation
    PUBLISH_IN_PROGRESS = "publish-in-progress"  # another update is running: wait a little
    UNKNOWN = "unknown"  # nothing we know how to cure: fail with the Genesys error


def classify(body: GenesysErrorBody | None, schedule: Schedule, base_version: int | None) -> ConflictKind:
    version = schedule.metadata.version
    if base_version is not None and schedule.published and version > base_version:
        return ConflictKind.ALREADY_PUBLISHED
    text = " ".join(
        [
            *(body.error_codes if body else []),
            (body.code or "") if body else "",
            (body.message or "") if body else "",
        ]
    ).lower()
    if base_version is not None and version != base_version:
        return ConflictKind.STALE_VERSION
    if any(hint in text for hint in _IN_PROGRESS_HINTS) and not any(h in text for h in _TELEPHONY_HINTS):
        return ConflictKind.PUBLISH_IN_PROGRESS
    if any(hint in text for hint in _TELEPHONY_HINTS):
        return ConflictKind.TELEPHONY_SETTLING
    if "version" in text:
        return ConflictKind.STALE_VERSION
    return ConflictKind.UNKNOWN
