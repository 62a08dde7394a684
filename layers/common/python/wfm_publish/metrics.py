"""Business metrics: CloudWatch embedded metric format (EMF) lines, one namespace, flushed per invocation.

    from wfm_publish import metrics

    @metrics.log_metrics            # under the Logger's decorator: flushes when the invocation ends
    def handler(event, context): ...

    metrics.count("PublishRequests", Outcome="accepted")
    metrics.seconds("TimeToPublish", 12.5)

Lambda sends what a function prints to CloudWatch Logs, and CloudWatch turns each EMF line into metric
points: no PutMetricData call, no extra permission, nothing to wait for. Powertools' EMF provider builds
and validates the lines. Why not one Powertools `Metrics` object with its own `log_metrics`: an EMF line
has one dimension set for all its metrics (jobs ended by Status and Reason, callbacks with none), and
`Metrics` keeps its state at class level, shared by every instance of the process; the local stack runs
every function in one process, in threads. So each invocation here collects its points in a recorder of
its own thread, one Powertools provider per dimension set, and flushes them all when it ends.

Dimensions are low-cardinality by contract: enum values only (status, reason code, conflict kind, an
outcome), never a job, schedule or business unit id (each id would be a metric of its own, and a cost).
`dashboard and alarms`: template.yaml; what each metric means: docs/architecture.md.
"""

from __future__ import annotations

import functools
import threading
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import (
        AmazonCloudWatchEMFProvider,
    )

    from wfm_publish.models import Job

NAMESPACE = "WfmPublish"
MAX_DIMENSIONS = 3  # every dimension multiplies the metrics CloudWatch keeps (and bills)

# Names used by more than one module (the dashboard and alarms in template.yaml use them too).
PUBLISH_REQUESTS = "PublishRequests"  # Outcome: accepted | joined | replayed
JOBS_ENDED = "JobsEnded"  # Status (+ Reason)
TIME_TO_PUBLISH = "TimeToPublish"  # seconds from the request to PUBLISHED
TELEPHONY_WAIT = "TelephonyWait"  # seconds from the first telephony check to it being settled
PUBLISH_ATTEMPTS = "PublishAttempts"  # per ended job
READINESS_CHECKS = "ReadinessChecks"  # per ended job
CONFLICTS = "Conflicts"  # Kind: how each 409 was classified
CALLBACKS_DELIVERED = "CallbacksDelivered"  # Kind: end | progress
CALLBACKS_FAILED = "CallbacksFailed"
DEAD_LETTERS_SETTLED = "DeadLettersSettled"
DEAD_LETTERS_KEPT = "DeadLettersKept"
EVENTS_PUT = "EventsPut"  # EventBridge events the announcer put
EVENTS_FAILED = "EventsFailed"
STUCK_JOBS = "StuckJobs"  # jobs the watchdog found overdue and moved on
# Emitted by the Genesys client (genesys_call); the dashboard and the alarms read them.
GENESYS_CALLS = "GenesysCalls"
GENESYS_THROTTLED = "GenesysThrottled"  # 429
GENESYS_SERVER_ERRORS = "GenesysServerErrors"  # 5xx, or no answer at all

F = TypeVar("F", bound=Callable[..., Any])


class Recorder:
    """The points of one invocation, one Powertools EMF provider per dimension set."""

    def __init__(self, namespace: str = NAMESPACE) -> None:
        self.namespace = namespace
        self._providers: dict[tuple[tuple[str, str], ...], AmazonCloudWatchEMFProvider] = {}

    def add(self, name: str, unit: str, value: float, dimensions: dict[str, str]) -> None:
        from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import (
            AmazonCloudWatchEMFProvider,
        )

        if len(dimensions) > MAX_DIMENSIONS:
            raise ValueError(f"{name}: at most {MAX_DIMENSIONS} dimensions, got {sorted(dimensions)}")
        key = tuple(sorted(dimensions.items()))
        provider = self._providers.get(key)
        if provider is None:
            # Own dicts (the defaults are shared); service="": no implicit `service` dimension, so a
            # metric's dimensions are exactly the ones named here (the dashboard's queries rely on it).
            provider = AmazonCloudWatchEMFProvider(
                namespace=self.namespace, service="", metric_set={}, dimension_set={}, metadata_set={}
            )
            for dimension, text in key:
                provider.add_dimension(name=dimension, value=text)
            self._providers[key] = provider
        provider.add_metric(name=name, unit=unit, value=value)

    def flush(self) -> None:
        """Print one EMF line per dimension set (Powertools caps a line at 100 metrics and splits)."""
        providers, self._providers = self._providers, {}
        for provider in providers.values():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "no metrics to publish": nothing to say then
                provider.flush_metrics()


_current = threading.local()


def _recorder() -> Recorder | None:
    return getattr(_current, "recorder", None)


def log_metrics(handler: F) -> F:
    """Collect the invocation's points and print them when it ends, whether it returns or raises."""

    @functools.wraps(handler)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        outer = _recorder()
        recorder = Recorder()
        _current.recorder = recorder
        try:
            return handler(*args, **kwargs)
        finally:
            _current.recorder = outer
            try:
                recorder.flush()
            except Exception:  # a metric must never fail the work it describes
                from aws_lambda_powertools import Logger

                Logger(child=True).exception("metrics could not be written")

    return wrapper  # type: ignore[return-value]


def put(name: str, unit: str, value: float, **dimensions: str) -> None:
    """One point. Outside a `log_metrics` invocation (a test, a script) it goes nowhere."""
    recorder = _recorder()
    if recorder is not None:
        recorder.add(name, unit, value, dimensions)


def count(name: str, value: float = 1, **dimensions: str) -> None:
    put(name, "Count", value, **dimensions)


def seconds(name: str, value: float, **dimensions: str) -> None:
    put(name, "Seconds", max(0.0, value), **dimensions)


# --- what a job's end says, from its terminal image (the notifier's stream record) -----------------


def job_ended(job: Job) -> None:
    """The outcome metrics of one ended job. Called once per job, from the stream record of its move to
    a terminal status, so every path that ends a job is counted the same way."""
    status = job.status.value
    count(JOBS_ENDED, Status=status, Reason=job.reason_code.value if job.reason_code else status)
    count(JOBS_ENDED, Status=status)  # the failure-rate alarm's terms: one series per status
    if job.status.value == "PUBLISHED":
        # From when the job was allowed to start: a publishTime ahead is waiting by request, not delay.
        allowed = max(job.created_at, job.request.publish_time.timestamp() if job.request.publish_time else 0)
        seconds(TIME_TO_PUBLISH, job.updated_at - allowed)
    waited = telephony_wait(job)
    if waited is not None:
        seconds(TELEPHONY_WAIT, waited)
    count(
        PUBLISH_ATTEMPTS, job.publish_attempts
    )  # one value per job: Average, p95 and Maximum mean something
    count(READINESS_CHECKS, job.readiness_checks)
    for kind, n in sorted(conflict_kinds(job).items()):
        count(CONFLICTS, n, Kind=kind)


def telephony_wait(job: Job) -> float | None:
    """Seconds from the first telephony check to the last time it was found settled (or to the job's end
    if it never was); None when the job never looked at telephony (validationMode off, sync disabled)."""
    if job.first_check_at is None:
        return None
    settled = [e.at for e in job.timeline if e.event == "telephony settled"]
    return max(0.0, (settled[-1] if settled else job.updated_at) - job.first_check_at)


def conflict_kinds(job: Job) -> dict[str, int]:
    """The 409s of the job by how they were classified (its timeline's "conflict classified" entries)."""
    kinds: dict[str, int] = {}
    for entry in job.timeline:
        if entry.event == "conflict classified":
            kind = str(entry.detail.get("kind") or "unknown")
            kinds[kind] = kinds.get(kind, 0) + 1
    return kinds


def genesys_call(route_class: str, status: int | None) -> None:
    """One call to Genesys Cloud and how it was answered (`status` None: no answer, a dropped connection
    or a timeout). Each point is written twice: by `RouteClass` (a handful of values: the dashboard's
    per-route view) and without dimensions, the roll-up the alarms divide (an alarm cannot SEARCH)."""
    for dimensions in ({"RouteClass": route_class}, {}):
        count(GENESYS_CALLS, 1, **dimensions)
        if status == 429:
            count(GENESYS_THROTTLED, 1, **dimensions)
        elif status is None or status >= 500:
            count(GENESYS_SERVER_ERRORS, 1, **dimensions)
