"""The weekly publish: for each business unit, publish next week's schedule, once per week.

The idempotency key `weekly:<buId>:<weekId>` makes a re-delivered EventBridge event start nothing twice.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from aws_lambda_powertools import Logger
from pydantic import Field, ValidationError

from wfm_publish.models import PublishRequest, Wire, field_errors

if TYPE_CHECKING:
    from wfm_publish.services import Services

logger = Logger(child=True)
DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]


class WeeklyEvent(Wire):
    source: str = "weekly"
    business_unit_ids: list[str] | str = "all"
    weeks_ahead: int = Field(default=1, ge=0, le=8)


def target_week(now: float, time_zone: str, start_day: str, weeks_ahead: int) -> date:
    """The start date of the week `weeks_ahead` after the current one, in the business unit's zone."""
    today = datetime.fromtimestamp(now, ZoneInfo(time_zone)).date()
    start = DAYS.index(start_day.lower())
    this_week = today - timedelta(days=(today.weekday() - start) % 7)
    return this_week + timedelta(weeks=weeks_ahead)


def pick_schedule(entries: list[dict[str, Any]]) -> str | None:
    """The most recently modified unpublished schedule of the week, if there is one."""
    candidates = [e for e in entries if not e.get("published")]
    if not candidates:
        return None
    latest = max(candidates, key=lambda e: str((e.get("metadata") or {}).get("dateModified") or ""))
    return str(latest["id"])


def start_weekly(services: Services, event: dict[str, Any]) -> dict[str, Any]:
    try:
        weekly = WeeklyEvent.model_validate(event)
    except ValidationError as exc:
        logger.error("weekly event rejected", extra={"errors": field_errors(exc)})
        return {"started": [], "rejected": field_errors(exc)}
    genesys, now = services.genesys, services.clock.now()
    if weekly.business_unit_ids == "all":
        bu_ids = [bu.id for bu in genesys.business_units()]
    else:
        bu_ids = list(weekly.business_unit_ids)
    started, skipped = [], []
    for bu_id in bu_ids:
        settings = genesys.business_unit(bu_id).get("settings") or {}
        week = target_week(
            now, settings.get("timeZone", "UTC"), settings.get("startDayOfWeek", "Monday"), weekly.weeks_ahead
        )
        schedule_id = pick_schedule(genesys.schedules(bu_id, week.isoformat()))
        if schedule_id is None:
            logger.info(
                "no unpublished schedule to publish", extra={"business_unit_id": bu_id, "week": str(week)}
            )
            skipped.append({"businessUnitId": bu_id, "weekId": week.isoformat()})
            continue
        request = PublishRequest(schedule_id=schedule_id, business_unit_id=bu_id, week_id=week)
        accepted = services.intake.accept(request, f"weekly:{bu_id}:{week.isoformat()}")
        started.append(accepted.body | {"replayed": accepted.replayed})
    return {"started": started, "skipped": skipped}
