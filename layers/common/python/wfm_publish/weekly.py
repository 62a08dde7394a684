"""The weekly publish: for each business unit, publish the schedule of the week `weeksAhead` ahead.

The EventBridge Scheduler event (template.yaml, `Weekly`) names the business units (a list, or "all")
and how many weeks ahead; it carries the time the run was due (`scheduledTime`), so a retried
delivery hours later works out the same weeks. Per business unit:

* the week is counted in the business unit's own time zone from its own first day of the week;
* the schedule is the most recently modified unpublished one of that week (none: logged, skipped);
* the job is started through intake with the key `weekly:<buId>:<weekId>`, so a re-delivered event
  starts nothing twice: the second delivery replays (or joins) the first one's job.

One business unit failing does not stop the others. When any failed for a reason that may pass (Genesys
or storage unavailable), the run raises after trying them all, so EventBridge Scheduler retries it
(RetryPolicy in template.yaml); the business units already started replay on the retry.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aws_lambda_powertools import Logger
from pydantic import AwareDatetime, Field, StringConstraints, ValidationError

from wfm_publish.errors import ConfigurationError, GenesysNotFound, WfmPublishError
from wfm_publish.intake import IdempotencyKeyReused, RequestInProgress
from wfm_publish.models import PublishRequest, Wire, field_errors

if TYPE_CHECKING:
    from wfm_publish.services import Services

logger = Logger(child=True)
DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
KEY_PREFIX = "weekly:"
PARALLEL = 8  # business units looked at at once: 100 fit well inside the function's 30 s

BusinessUnitId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")]


class WeeklyEvent(Wire):
    source: str = "weekly"
    business_unit_ids: (
        Literal["all"] | Annotated[list[BusinessUnitId], Field(min_length=1, max_length=1000)]
    ) = "all"
    weeks_ahead: int = Field(default=1, ge=0, le=8)
    scheduled_time: AwareDatetime | None = Field(default=None, description="when the run was due")


class WeeklyIncomplete(WfmPublishError):
    """Some business units could not be looked at for a reason that may pass: retry the whole run."""

    def __init__(self, result: dict[str, Any]) -> None:
        failed = ", ".join(f["businessUnitId"] for f in result["failed"])
        super().__init__(f"the weekly publish did not reach every business unit ({failed}); retry it")
        self.result = result


@dataclass(frozen=True)
class _Outcome:
    kind: Literal["started", "already", "skipped", "failed"]
    entry: dict[str, Any]
    retryable: bool = False


def weekly_key(bu_id: str, week: date) -> str:
    return f"{KEY_PREFIX}{bu_id}:{week.isoformat()}"


def target_week(now: float, time_zone: str, start_day: str, weeks_ahead: int) -> date:
    """The first day of the week `weeks_ahead` after the current one, in the business unit's zone."""
    try:
        zone = ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigurationError(f"time zone {time_zone!r} is not an IANA zone") from exc
    if start_day.lower() not in DAYS:
        raise ConfigurationError(f"startDayOfWeek {start_day!r} is not a day of the week")
    today = datetime.fromtimestamp(now, zone).date()
    this_week = today - timedelta(days=(today.weekday() - DAYS.index(start_day.lower())) % 7)
    return this_week + timedelta(weeks=weeks_ahead)


def pick_schedule(entries: list[dict[str, Any]], week: date | None = None) -> dict[str, Any] | None:
    """The most recently modified unpublished schedule of the week, if there is one."""
    candidates = [
        e
        for e in entries
        if not e.get("published")
        and e.get("id")
        and (week is None or not e.get("weekDate") or str(e["weekDate"])[:10] == week.isoformat())
    ]
    if not candidates:
        return None
    return max(candidates, key=lambda e: (_modified(e), str(e["id"])))


def _modified(entry: dict[str, Any]) -> float:
    raw = str((entry.get("metadata") or {}).get("dateModified") or "")
    try:
        return datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return float("-inf")


def start_weekly(services: Services, event: dict[str, Any]) -> dict[str, Any]:
    try:
        weekly = WeeklyEvent.model_validate(event)
    except ValidationError as exc:
        # A malformed event is a deployment mistake: retrying it cannot help, so do not raise.
        logger.error("weekly event rejected", extra={"errors": field_errors(exc)})
        return {"started": [], "already": [], "skipped": [], "failed": [], "rejected": field_errors(exc)}
    now = weekly.scheduled_time.timestamp() if weekly.scheduled_time else services.clock.now()
    if weekly.business_unit_ids == "all":
        bu_ids = [bu.id for bu in services.genesys.business_units()]  # raises: the scheduler retries
    else:
        bu_ids = list(dict.fromkeys(weekly.business_unit_ids))
    with ThreadPoolExecutor(max_workers=PARALLEL, thread_name_prefix="weekly") as pool:
        outcomes = list(pool.map(lambda bu: _one(services, bu, now, weekly.weeks_ahead), bu_ids))
    result: dict[str, Any] = {"started": [], "already": [], "skipped": [], "failed": []}
    for outcome in outcomes:
        result[outcome.kind].append(outcome.entry)
    logger.info(
        "weekly publish",
        extra={k: len(v) for k, v in result.items()} | {"weeksAhead": weekly.weeks_ahead},
    )
    if any(o.retryable for o in outcomes):
        raise WeeklyIncomplete(result)
    return result


def _one(services: Services, bu_id: str, now: float, weeks_ahead: int) -> _Outcome:
    where: dict[str, Any] = {"businessUnitId": bu_id}
    try:
        settings = services.genesys.business_unit(bu_id).get("settings") or {}
        week = target_week(
            now, settings.get("timeZone") or "UTC", settings.get("startDayOfWeek") or "Monday", weeks_ahead
        )
        where["weekId"] = week.isoformat()
        chosen = pick_schedule(services.genesys.schedules(bu_id, week.isoformat()), week)
        if chosen is None:
            logger.info("no unpublished schedule to publish", extra=where)
            return _Outcome("skipped", where | {"why": "no unpublished schedule this week"})
        request = PublishRequest(schedule_id=str(chosen["id"]), business_unit_id=bu_id, week_id=week)
        accepted = services.intake.accept(request, weekly_key(bu_id, week))
    except (IdempotencyKeyReused, RequestInProgress) as exc:
        # This week's run already started this business unit (maybe with a schedule edited since).
        logger.info("business unit already started this week", extra=where | {"why": str(exc)})
        return _Outcome("already", where | {"why": str(exc)})
    except (GenesysNotFound, ConfigurationError) as exc:
        logger.error("business unit skipped", extra=where | {"why": str(exc)})
        return _Outcome("failed", where | {"why": str(exc)})
    except Exception as exc:  # Genesys or storage unavailable: worth the scheduler's retry
        logger.exception("business unit not reached", extra=where)
        return _Outcome("failed", where | {"why": f"{type(exc).__name__}: {exc}"}, retryable=True)
    answer = accepted.body | {"businessUnitId": bu_id, "weekId": week.isoformat()}
    if accepted.replayed or accepted.body.get("joined"):
        return _Outcome("already", answer | {"replayed": accepted.replayed})
    return _Outcome("started", answer)
