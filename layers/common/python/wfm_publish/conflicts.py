"""What a 409 means, read from the Genesys error body and a fresh read of the schedule.

The body says why this update was refused (`details[].errorCode`; Genesys does not publish its WFM
codes, so the ones below are the simulator's, scenarios/README.md, and a body without a known code
is read from its message). The fresh read says what the schedule looks like now: whether an update
of ours landed after all, and whether its version moved since we read it.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import TYPE_CHECKING

from wfm_publish.models import GenesysErrorBody, TelephonyScope

if TYPE_CHECKING:
    from wfm_publish.genesys_wire import Schedule

STALE_CODE = "wfm.schedule.version.mismatch"
TELEPHONY_CODE = "wfm.schedule.telephony.provisioning.in.progress"
IN_PROGRESS_CODE = "wfm.schedule.update.in.progress"

# Whole words only: "edge" must not match "knowledge", nor "sip" "gossip".
_TELEPHONY_WORDS = re.compile(r"\b(telephony|trunks?|edges?|provisioning|sip)\b")
_IN_PROGRESS_WORDS = re.compile(r"\b(in[ ._-]progress|still processing|already running)\b")
_VERSION_WORDS = re.compile(r"\b(version|modified by someone else|concurrent(ly)? modified)\b")


class ConflictKind(StrEnum):
    ALREADY_PUBLISHED = "already-published"  # an update of ours landed after all: done
    STALE_VERSION = "stale-version"  # the schedule moved since we read it: re-read and retry now
    TELEPHONY_SETTLING = "telephony-settling"  # back to delayed validation
    PUBLISH_IN_PROGRESS = "publish-in-progress"  # another update is running: watch the schedule
    UNKNOWN = "unknown"  # nothing we know how to cure: fail with the Genesys error


def landed(schedule: Schedule, pending_base: int | None) -> bool:
    """Our update has been applied: an update of ours that Genesys accepted (or whose answer was lost)
    was based on `pending_base`, and the schedule is now published past that version.

    Without such an update there is nothing of ours to have landed: a schedule that was already
    published and then edited by someone else is published past our base too, and is not ours.
    """
    return pending_base is not None and schedule.published and schedule.metadata.version > pending_base


def classify(
    body: GenesysErrorBody | None,
    schedule: Schedule,
    base_version: int | None,
    *,
    pending_base: int | None = None,
) -> ConflictKind:
    """The kind of a 409 answered to an update based on `base_version`, given `schedule` read after it.

    `pending_base` is the base version of an earlier update of ours that may still land (None when
    every update of ours so far was refused outright).
    """
    if landed(schedule, pending_base):
        return ConflictKind.ALREADY_PUBLISHED
    moved = base_version is not None and schedule.metadata.version != base_version
    said = _stated(body)
    if said is ConflictKind.PUBLISH_IN_PROGRESS and moved:
        # Once the other update is applied the version moves: then it is simply a stale read.
        return ConflictKind.STALE_VERSION
    if said is not None:
        return said
    return ConflictKind.STALE_VERSION if moved else ConflictKind.UNKNOWN


# The body's own code first (in this order: Genesys checks the version first), then its words.
_BY_CODE = (
    (STALE_CODE, ConflictKind.STALE_VERSION),
    (TELEPHONY_CODE, ConflictKind.TELEPHONY_SETTLING),
    (IN_PROGRESS_CODE, ConflictKind.PUBLISH_IN_PROGRESS),
)
_BY_WORDS = (
    (_TELEPHONY_WORDS, ConflictKind.TELEPHONY_SETTLING),
    (_IN_PROGRESS_WORDS, ConflictKind.PUBLISH_IN_PROGRESS),
    (_VERSION_WORDS, ConflictKind.STALE_VERSION),
)


def _stated(body: GenesysErrorBody | None) -> ConflictKind | None:
    """What the error body says the conflict is, if it says."""
    if body is None:
        return None
    codes = set(body.error_codes)
    for code, kind in _BY_CODE:
        if code in codes:
            return kind
    text = " ".join([*codes, body.code or "", body.message or "", body.message_with_params or ""]).lower()
    for words, kind in _BY_WORDS:
        if words.search(text):
            return kind
    return None


def named_entities(body: GenesysErrorBody | None, scope: TelephonyScope | None) -> list[str]:
    """The Edges, trunks or trunk bases a telephony 409 names that are in the job's scope, as
    readiness refs ("edge:<id>"), so the next check re-reads them first."""
    if body is None or scope is None:
        return []
    kinds: dict[str, str] = {}
    for pool in scope.pools:
        kinds |= {e: "edge" for e in pool.edges} | {t: "trunk" for t in pool.trunks}
        kinds |= {b: "trunkBase" for b in pool.trunk_bases}
    named = [body.entity_id, *(str(d.get("entityId")) for d in body.details if d.get("entityId"))]
    return list(dict.fromkeys(f"{kinds[e]}:{e}" for e in named if e in kinds))
