"""The weekly publish, fanned out: one queue message per business unit, each taken on its own.

The EventBridge Scheduler event (template.yaml, `Weekly`) names the business units (a list, or "all")
and how many weeks ahead; it carries the time the run was due (`scheduledTime`), so a retried
delivery hours later works out the same weeks.

**Fan-out** (`fan_out`, PublishTriggerFunction): lists the business units (one paged listing), keeps
those the stack is limited to (WEEKLY_BUSINESS_UNITS, ids or names; a name not found is logged and
skipped), and sends one `WeeklyUnit` message per business unit to WeeklyQueue, ten per SendMessageBatch.
Nothing else is read: no business unit, no schedule. The messages are paced with SQS delays, business
unit i due at `startedAt + i / startsPerMinute`, so the Genesys calls of the whole run (the unit's two
reads and its job's pipeline) stay under the rate limit instead of bursting into 429s. A start further
off than SQS's 15-minute delay carries `notBefore` and hops. Progress is checkpointed on a
`weeklyrun#<run>` item (the last business unit sent, in sorted order, every 100 and at the end): a
re-delivered event re-sends only the business units after the checkpoint, and a complete run's re-delivery
sends nothing and reads nothing from Genesys. A concurrent duplicate delivery may send some messages
twice; that is harmless, because of the key below.

**Per business unit** (`take_units`, WeeklyUnitFunction, fed by WeeklyQueue):

* the week is counted in the business unit's own time zone from its own first day of the week;
* the schedule is the most recently modified unpublished one of that week (none: logged, skipped);
* the job is started through intake with the key `weekly:<buId>:<weekId>`, so a message delivered
  twice starts nothing twice: the second replays (or joins) the first one's job.

A 429 puts that message and the rest of its batch back on the queue, delayed by Retry-After (a wait is
a queue delay, never a sleep). A reason that may pass (Genesys or storage unavailable) fails the
record: SQS redelivers it, and after maxReceiveCount it lands in WeeklyDLQ (with an alarm). A business
unit that does not exist or is misconfigured is logged and dropped: retrying cannot help it.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, Literal, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aws_lambda_powertools import Logger
from pydantic import AwareDatetime, Field, StringConstraints, ValidationError

from wfm_publish.errors import (
    ConfigurationError,
    GenesysNotFound,
    GenesysRateLimited,
    StoreError,
    WfmPublishError,
)
from wfm_publish.models import PublishRequest, Wire, field_errors

if TYPE_CHECKING:
    from collections.abc import Sequence

    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sqs import SQSClient

    from wfm_publish.clock import Clock
    from wfm_publish.intake import Intake

logger = Logger(child=True)
DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
KEY_PREFIX = "weekly:"
SQS_BATCH = 10  # SendMessageBatch's limit
CHECKPOINT_EVERY = 100  # business units sent between two progress writes
MAX_DELAY = 900  # SQS's longest DelaySeconds; a later start hops
RATE_LIMIT_WAIT_CAP = 3600.0  # a 429's Retry-After is waited at most this long (the unit hops past 900 s)
DAY = 86400

BusinessUnitId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")]


class WeeklyEvent(Wire):
    source: str = "weekly"
    business_unit_ids: (
        Literal["all"] | Annotated[list[BusinessUnitId], Field(min_length=1, max_length=1000)]
    ) = "all"
    weeks_ahead: int = Field(default=1, ge=0, le=8)
    scheduled_time: AwareDatetime | None = Field(default=None, description="when the run was due")


class WeeklyUnit(Wire):
    """One business unit's share of a weekly run: the body of a WeeklyQueue message."""

    run: str
    business_unit_id: BusinessUnitId
    weeks_ahead: int = Field(ge=0, le=8)
    scheduled_time: AwareDatetime
    not_before: float | None = None  # epoch seconds: a start beyond SQS's 15-minute delay hops


# --- the parts the weekly run uses (Services in Lambda; memory ones in tests and the benchmark) ------


class HasId(Protocol):
    @property
    def id(self) -> str: ...


class WeeklyGenesys(Protocol):
    def business_units(self) -> Sequence[HasId]: ...
    def business_unit(self, bu_id: str) -> dict[str, Any]: ...
    def schedules(self, bu_id: str, week_id: str) -> list[dict[str, Any]]: ...


class WeeklyQueue(Protocol):
    def send_batch(self, entries: Sequence[tuple[str, int]]) -> None:
        """Send up to 10 (body, delay seconds) messages; raise if any was not taken."""


@dataclass
class RunProgress:
    started_at: float  # when business unit 0 was due: the pacing of a resumed run keeps its slots
    sent_through: str | None = None  # the last business unit sent, in sorted order
    complete: bool = False
    total: int = 0


class RunLog(Protocol):
    def progress(self, run: str) -> RunProgress | None: ...
    def record(self, run: str, progress: RunProgress, now: float) -> None: ...


class WeeklyParts(Protocol):
    @property
    def clock(self) -> Clock: ...
    @property
    def genesys(self) -> WeeklyGenesys: ...
    @property
    def intake(self) -> Intake: ...
    @property
    def weekly_queue(self) -> WeeklyQueue: ...
    @property
    def weekly_runs(self) -> RunLog: ...
    @property
    def weekly_starts_per_minute(self) -> float: ...


@dataclass(frozen=True)
class Weekly:
    """What the weekly run uses, named by the handler that wires it (WeeklyParts' fields)."""

    clock: Clock
    genesys: WeeklyGenesys
    intake: Intake
    weekly_queue: WeeklyQueue
    weekly_runs: RunLog
    weekly_starts_per_minute: float


# --- weeks and schedules -----------------------------------------------------------------------------


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


# --- the fan-out -------------------------------------------------------------------------------------


def run_id(event: WeeklyEvent, due: datetime, only: Sequence[str] = ()) -> str:
    """One run per due time, weeks ahead and set of business units (and the stack's limit to some,
    WEEKLY_BUSINESS_UNITS): its deliveries share progress."""
    units = event.business_unit_ids
    named = "all" if units == "all" else ",".join(sorted(set(units)))
    if only:
        named += "|only:" + ",".join(sorted(set(only)))
    who = "all" if named == "all" else hashlib.sha256(named.encode()).hexdigest()[:16]
    return f"{due.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}/{event.weeks_ahead}/{who}"


def limit_to(listed: Sequence[HasId], only: Sequence[str]) -> tuple[set[str], list[str]]:
    """The ids of the business units `only` names (by id, or by name regardless of case), and the names
    in `only` that match none of `listed`."""
    by_name: dict[str, set[str]] = {}
    for bu in listed:
        name = getattr(bu, "name", None)
        if name:
            by_name.setdefault(str(name).casefold(), set()).add(bu.id)
    ids = {bu.id for bu in listed}
    allowed: set[str] = set()
    unknown: list[str] = []
    for wanted in only:
        found = {wanted} if wanted in ids else by_name.get(wanted.casefold(), set())
        if found:
            allowed |= found
        else:
            unknown.append(wanted)
    return allowed, unknown


def fan_out(parts: WeeklyParts, event: dict[str, Any], *, only: Sequence[str] = ()) -> dict[str, Any]:
    """The scheduled event -> one paced WeeklyQueue message per business unit not yet sent.

    `only` (the stack's WEEKLY_BUSINESS_UNITS: ids or names) limits the run to those business units;
    a name Genesys does not list is logged and skipped, never fatal: the others are published."""
    try:
        weekly = WeeklyEvent.model_validate(event)
    except ValidationError as exc:
        # A malformed event is a deployment mistake: retrying it cannot help, so do not raise.
        logger.error("weekly event rejected", extra={"errors": field_errors(exc)})
        return {"sent": 0, "rejected": field_errors(exc)}
    now = parts.clock.now()
    due = weekly.scheduled_time or datetime.fromtimestamp(now, UTC)
    run = run_id(weekly, due, only)
    progress = parts.weekly_runs.progress(run)
    if progress is not None and progress.complete:
        logger.info("weekly run already fanned out", extra={"run": run, "businessUnits": progress.total})
        return {"run": run, "businessUnits": progress.total, "sent": 0, "alreadySent": progress.total}
    bu_ids, unknown = _units_of_run(parts, weekly, only, run)
    progress = progress or RunProgress(started_at=now)
    progress.total = len(bu_ids)
    through = progress.sent_through
    pending = [(i, bu) for i, bu in enumerate(bu_ids) if through is None or bu > through]
    gap = 60.0 / parts.weekly_starts_per_minute
    since_checkpoint = 0
    for start in range(0, len(pending), SQS_BATCH):
        chunk = pending[start : start + SQS_BATCH]
        entries = []
        for index, bu in chunk:
            slot = progress.started_at + index * gap
            unit = WeeklyUnit(
                run=run,
                business_unit_id=bu,
                weeks_ahead=weekly.weeks_ahead,
                scheduled_time=due,
                not_before=slot if slot - now > MAX_DELAY else None,
            )
            # Rounded, not up: the pacing is a rate, and SQS counts whole seconds.
            delay = max(0, min(MAX_DELAY, round(slot - now)))
            entries.append((unit.model_dump_json(by_alias=True, exclude_none=True), delay))
        parts.weekly_queue.send_batch(entries)
        progress.sent_through = chunk[-1][1]
        since_checkpoint += len(chunk)
        last = start + SQS_BATCH >= len(pending)
        if last or since_checkpoint >= CHECKPOINT_EVERY:
            progress.complete = last
            parts.weekly_runs.record(run, progress, now)
            since_checkpoint = 0
    if not pending:  # everything was sent before the last checkpoint: only the end was not noted
        progress.complete = True
        parts.weekly_runs.record(run, progress, now)
    result: dict[str, Any] = {"run": run, "businessUnits": len(bu_ids), "sent": len(pending)}
    result["alreadySent"] = len(bu_ids) - len(pending)
    if unknown:
        result["notFound"] = unknown
    logger.info("weekly run fanned out", extra=result | {"weeksAhead": weekly.weeks_ahead})
    return result


def _units_of_run(
    parts: WeeklyParts, weekly: WeeklyEvent, only: Sequence[str], run: str
) -> tuple[list[str], list[str]]:
    """The run's business unit ids, sorted (a stable order, so a checkpoint names a place in it), and
    the names in `only` that Genesys does not list."""
    # One listing, for "all" or to read the names `only` may give (it raises: the scheduler retries).
    units = parts.genesys.business_units() if weekly.business_unit_ids == "all" or only else []
    listed = [bu.id for bu in units] if weekly.business_unit_ids == "all" else list(weekly.business_unit_ids)
    unknown: list[str] = []
    if only:
        allowed, unknown = limit_to(units, only)
        if unknown:
            logger.warning(
                "weekly business units not found: skipped",
                extra={"run": run, "unknown": unknown, "known": len(units)},
            )
        left_out = sorted(set(listed) - allowed)
        if left_out and weekly.business_unit_ids != "all":
            logger.warning("weekly business units outside WEEKLY_BUSINESS_UNITS", extra={"skipped": left_out})
        listed = [bu for bu in listed if bu in allowed]
    return sorted(set(listed)), unknown


def sqs_delay(seconds: float) -> int:
    # Round up: a wait Genesys asked for (Retry-After) is never cut short.
    return max(0, min(MAX_DELAY, math.ceil(seconds)))


# --- one business unit -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    kind: Literal["started", "already", "skipped", "dropped", "deferred", "retry"]
    entry: dict[str, Any] = field(default_factory=dict)


def take_units(parts: WeeklyParts, records: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """A WeeklyQueue batch of (message id, body) -> SQS's partial batch answer.

    A 429 puts the record and every later one back on the queue, delayed by Retry-After: the rest of
    the batch would meet the same limit."""
    failures: list[dict[str, str]] = []
    counts: dict[str, int] = {}
    resume_at: float | None = None
    for message_id, body in records:
        outcome = _take(parts, body, resume_at)
        if outcome.kind == "deferred" and "resumeAt" in outcome.entry:
            resume_at = max(resume_at or 0.0, outcome.entry["resumeAt"])
        counts[outcome.kind] = counts.get(outcome.kind, 0) + 1
        if outcome.kind == "retry":
            failures.append({"itemIdentifier": message_id})
    logger.info("weekly business units taken", extra=counts)
    return {"batchItemFailures": failures}


def _take(parts: WeeklyParts, body: str, resume_at: float | None) -> Outcome:
    try:
        unit = WeeklyUnit.model_validate_json(body)
    except ValidationError as exc:
        logger.error("unreadable weekly message", extra={"errors": field_errors(exc), "body": body[:200]})
        return Outcome("retry")  # to the DLQ after maxReceiveCount, for a person
    now = parts.clock.now()
    wait = max(resume_at or 0.0, unit.not_before or 0.0) - now
    if wait > 0:  # not yet: back on the queue, the wait a queue delay
        return _defer(parts, unit, wait, now)
    try:
        return one_unit(parts, unit)
    except GenesysRateLimited as limited:
        logger.info("weekly unit rate limited", extra={"businessUnitId": unit.business_unit_id})
        # Retry-After may say anything (infinity, a year, a date long past): wait what it says, at most
        # the cap; a 429 after that defers the unit again.
        wait = min(limited.retry_after, RATE_LIMIT_WAIT_CAP)
        deferred = _defer(parts, unit, wait, now)
        return Outcome(deferred.kind, deferred.entry | {"resumeAt": now + wait})


def _defer(parts: WeeklyParts, unit: WeeklyUnit, wait: float, now: float) -> Outcome:
    later = unit.model_copy(update={"not_before": now + wait if wait > MAX_DELAY else None})
    body = later.model_dump_json(by_alias=True, exclude_none=True)
    try:
        parts.weekly_queue.send_batch([(body, sqs_delay(wait))])
    except WfmPublishError:
        logger.exception("weekly message not deferred", extra={"businessUnitId": unit.business_unit_id})
        return Outcome("retry")
    return Outcome("deferred", {"businessUnitId": unit.business_unit_id})


def one_unit(parts: WeeklyParts, unit: WeeklyUnit) -> Outcome:  # noqa: PLR0911 - one return per outcome
    """Start this business unit's job for its week (GenesysRateLimited propagates: the caller defers)."""
    from wfm_publish.errors import IdempotencyKeyReused, RequestInProgress

    bu_id = unit.business_unit_id
    where: dict[str, Any] = {"businessUnitId": bu_id}
    try:
        settings = parts.genesys.business_unit(bu_id).get("settings") or {}
        week = target_week(
            unit.scheduled_time.timestamp(),
            settings.get("timeZone") or "UTC",
            settings.get("startDayOfWeek") or "Monday",
            unit.weeks_ahead,
        )
        where["weekId"] = week.isoformat()
        chosen = pick_schedule(parts.genesys.schedules(bu_id, week.isoformat()), week)
        if chosen is None:
            logger.info("no unpublished schedule to publish", extra=where)
            return Outcome("skipped", where | {"why": "no unpublished schedule this week"})
        request = PublishRequest(schedule_id=str(chosen["id"]), business_unit_id=bu_id, week_id=week)
        accepted = parts.intake.accept(request, weekly_key(bu_id, week))
    except IdempotencyKeyReused as exc:
        # This week's run already started this business unit (maybe with a schedule edited since).
        logger.info("business unit already started this week", extra=where | {"why": str(exc)})
        return Outcome("already", where | {"why": str(exc)})
    except RequestInProgress:
        # A duplicate of this message is starting the job right now: look again once it has (if it
        # fails and releases the key, this one starts the job).
        logger.info("business unit being started by a duplicate", extra=where)
        return Outcome("retry", where)
    except (GenesysNotFound, ConfigurationError) as exc:
        logger.error("business unit dropped", extra=where | {"why": str(exc)})
        return Outcome("dropped", where | {"why": str(exc)})
    except GenesysRateLimited:
        raise
    except Exception:  # Genesys or storage unavailable: worth SQS's redelivery
        logger.exception("business unit not reached", extra=where)
        return Outcome("retry", where)
    answer = accepted.body | {"businessUnitId": bu_id, "weekId": week.isoformat()}
    if accepted.replayed or accepted.body.get("joined"):
        return Outcome("already", answer | {"replayed": accepted.replayed})
    logger.info("weekly job started", extra=answer)
    return Outcome("started", answer)


# --- AWS adapters ------------------------------------------------------------------------------------


class SqsWeeklyQueue:
    def __init__(self, client: SQSClient, url: str) -> None:
        self._sqs = client
        self._url = url

    def send_batch(self, entries: Sequence[tuple[str, int]]) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        from wfm_publish.errors import QueueError

        try:
            answer = self._sqs.send_message_batch(
                QueueUrl=self._url,
                Entries=[
                    {"Id": str(i), "MessageBody": body, "DelaySeconds": delay}
                    for i, (body, delay) in enumerate(entries)
                ],
            )
        except (ClientError, BotoCoreError) as exc:
            raise QueueError(f"could not send to the weekly queue: {exc}") from exc
        if answer.get("Failed"):
            # The caller fails: the scheduler (fan-out) or SQS (deferral) retries, and a re-sent
            # business unit costs nothing twice (its key).
            raise QueueError(f"the weekly queue refused {len(answer['Failed'])} of {len(entries)} messages")


class DynamoRunLog:
    """`weeklyrun#<run>` items in the jobs table: how far a run's fan-out got."""

    def __init__(self, client: DynamoDBClient, table: str, ttl_days: int = 30) -> None:
        self._db = client
        self._table = table
        self._ttl = ttl_days * DAY

    def progress(self, run: str) -> RunProgress | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            item = self._db.get_item(
                TableName=self._table, Key={"pk": {"S": f"weeklyrun#{run}"}}, ConsistentRead=True
            ).get("Item")
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"DynamoDB: cannot read the weekly run {run}: {exc}") from exc
        if not item:
            return None
        return RunProgress(
            started_at=float(item["startedAt"]["N"]),
            sent_through=item.get("sentThrough", {}).get("S"),
            complete=bool(item.get("complete", {}).get("BOOL")),
            total=int(item.get("total", {}).get("N", "0")),
        )

    def record(self, run: str, progress: RunProgress, now: float) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        values: dict[str, Any] = {
            ":s": {"N": f"{progress.started_at:.3f}"},
            ":t": {"S": progress.sent_through or ""},
            ":c": {"BOOL": progress.complete},
            ":n": {"N": str(progress.total)},
            ":e": {"N": str(int(now + self._ttl))},
        }
        try:
            self._db.update_item(
                TableName=self._table,
                Key={"pk": {"S": f"weeklyrun#{run}"}},
                # The first delivery's start stays; a duplicate delivery behind us never moves us back.
                UpdateExpression=(
                    "SET startedAt = if_not_exists(startedAt, :s), sentThrough = :t, "
                    "#c = :c, #n = :n, expiresAt = :e"
                ),
                ConditionExpression="attribute_not_exists(sentThrough) OR sentThrough <= :t",
                ExpressionAttributeNames={"#c": "complete", "#n": "total"},
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return  # a concurrent delivery got further: its checkpoint stands
            raise StoreError(f"DynamoDB: cannot note the weekly run {run}: {exc}") from exc
        except BotoCoreError as exc:
            raise StoreError(f"DynamoDB: cannot note the weekly run {run}: {exc}") from exc


class MemoryRunLog:
    """RunLog in memory (tests, the virtual benchmark), with the conditions of DynamoRunLog."""

    def __init__(self) -> None:
        self.runs: dict[str, RunProgress] = {}
        self.reads = 0
        self.writes = 0

    def progress(self, run: str) -> RunProgress | None:
        self.reads += 1
        held = self.runs.get(run)
        return None if held is None else RunProgress(**vars(held))

    def record(self, run: str, progress: RunProgress, now: float) -> None:
        self.writes += 1
        held = self.runs.get(run)
        if held is not None and (held.sent_through or "") > (progress.sent_through or ""):
            return
        started = held.started_at if held is not None else progress.started_at
        self.runs[run] = RunProgress(started, progress.sent_through, progress.complete, progress.total)
