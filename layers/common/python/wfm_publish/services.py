"""Wires the adapters together, once per Lambda container, after the environment is set.

Clients are created lazily and reused across invocations: botocore reads AWS_ENDPOINT_URL, so the
same code reaches AWS or the local moto server with no switch here.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

from wfm_publish.clock import Clock, SystemClock
from wfm_publish.config import Settings
from wfm_publish.errors import ConfigurationError

if TYPE_CHECKING:
    from wfm_publish.announcer import Announcer
    from wfm_publish.genesys import Credentials, GenesysClient
    from wfm_publish.genesys_wire import PendingQuery
    from wfm_publish.intake import Intake
    from wfm_publish.notifier import Notifier
    from wfm_publish.pipeline import Pipeline
    from wfm_publish.queues import DeadLetters, QueueSender
    from wfm_publish.scope import TelephonyOptions
    from wfm_publish.secret_reader import SecretReader
    from wfm_publish.servicenow import ServiceNowClient, ServiceNowCredentials
    from wfm_publish.store import DynamoJobStore
    from wfm_publish.transitions import Transitions
    from wfm_publish.weekly import DynamoRunLog, SqsWeeklyQueue

AwsService = Literal["sqs", "dynamodb", "secretsmanager", "events"]


class Services:
    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self._clients: dict[str, Any] = {}
        self._aws: Any = None

    def _client(self, service: AwsService) -> Any:
        """One client per service for the container: each costs ~10-40 ms and a few MiB to build.

        botocore's own session, not boto3's: the functions use low-level clients only, and
        `import boto3` brings s3transfer and multiprocessing (~35 ms of a cold start) for nothing
        they call. Region, credentials and AWS_ENDPOINT_URL come from the environment alike."""
        if service not in self._clients:
            if self._aws is None:
                import botocore.session

                self._aws = botocore.session.get_session()
            self._clients[service] = self._aws.create_client(service)
        return self._clients[service]

    @cached_property
    def secrets(self) -> SecretReader:
        from wfm_publish.secret_reader import SecretReader

        return SecretReader(lambda: self._client("secretsmanager"))

    @cached_property
    def store(self) -> DynamoJobStore:
        from wfm_publish.store import DynamoJobStore

        return DynamoJobStore(self._client("dynamodb"), self.settings.jobs_table, self.settings.job_ttl_days)

    @cached_property
    def queues(self) -> QueueSender:
        from wfm_publish.queues import Queue, QueueSender, SqsTransport

        urls = {
            Queue.VALIDATION: self.settings.validation_queue_url,
            Queue.CONFLICT: self.settings.conflict_queue_url,
        }
        return QueueSender(SqsTransport(self._client("sqs"), urls), self.clock)

    @cached_property
    def dead_letters(self) -> DeadLetters:
        from wfm_publish.queues import DeadLetters, Queue

        urls = {
            Queue.VALIDATION: self.settings.validation_dlq_url,
            Queue.CONFLICT: self.settings.conflict_dlq_url,
        }
        missing = [q.value for q, url in urls.items() if not url]
        if missing:
            raise ConfigurationError(
                f"set VALIDATION_DLQ_URL and CONFLICT_DLQ_URL (missing: {', '.join(missing)})"
            )
        return DeadLetters(self._client("sqs"), {q: str(url) for q, url in urls.items()})

    @cached_property
    def genesys(self) -> GenesysClient:
        from wfm_publish.genesys import GenesysClient

        # Pending agent-schedule queries live in the table: whichever container asks next collects
        # the result the genesys_events function recorded. The table client is made on first use.
        return GenesysClient(self.settings.genesys_url, self._credentials, queries=_TableQueries(self))

    @cached_property
    def intake(self) -> Intake:
        from wfm_publish.intake import Intake

        return Intake(
            self.store, self.queues, self.clock, deadline_seconds=self.settings.job_deadline_seconds
        )

    @cached_property
    def transitions(self) -> Transitions:
        from wfm_publish.transitions import Transitions

        return Transitions(self.store, self.queues, self.clock)

    @cached_property
    def pipeline(self) -> Pipeline:
        from wfm_publish.pipeline import Pipeline
        from wfm_publish.waiting import Timing

        timing = Timing(
            settle_window=self.settings.settle_window_seconds,
            events=self.settings.telephony_events,
            safety_poll=self.settings.safety_poll_seconds,
        )
        # The client and the options as factories: a step that reads no Genesys (a stale or early
        # message, a recorded outcome, the dead-letter sweep) never imports requests or the telephony code.
        return Pipeline(
            self.store,
            self.queues,
            lambda: self.genesys,
            self.clock,
            timing,
            options=self._telephony_options,
        )

    def _telephony_options(self) -> TelephonyOptions:
        from wfm_publish.scope import TelephonyOptions

        codes = frozenset(c.strip() for c in self.settings.on_queue_activity_codes.split(",") if c.strip())
        return TelephonyOptions(
            max_calls_key=self.settings.trunk_max_calls_property,
            edge_call_capacity=self.settings.edge_call_capacity,
            on_queue_codes=codes or frozenset({"0"}),
            observation_max_age=self.settings.observation_max_age_seconds,
        )

    # --- the weekly run (fan-out and per business unit) ----------------------------------------------

    @cached_property
    def weekly_queue(self) -> SqsWeeklyQueue:
        from wfm_publish.weekly import SqsWeeklyQueue

        if not self.settings.weekly_queue_url:
            raise ConfigurationError("WEEKLY_QUEUE_URL is not set (!Ref WeeklyQueue)")
        return SqsWeeklyQueue(self._client("sqs"), self.settings.weekly_queue_url)

    @cached_property
    def weekly_runs(self) -> DynamoRunLog:
        from wfm_publish.weekly import DynamoRunLog

        return DynamoRunLog(self._client("dynamodb"), self.settings.jobs_table, self.settings.job_ttl_days)

    @property
    def weekly_starts_per_minute(self) -> float:
        return self.settings.weekly_starts_per_minute

    @property
    def weekly_business_units(self) -> tuple[str, ...]:
        """WEEKLY_BUSINESS_UNITS as a list: the business units (ids or names) the weekly run is limited to."""
        return tuple(n.strip() for n in self.settings.weekly_business_units.split(",") if n.strip())

    def _credentials(self) -> Credentials:
        """The OAuth client from Secrets Manager. The client asks for it only when it fetches a token
        (about once a day per container), so a rotated secret is picked up at the next renewal."""
        from wfm_publish.genesys_auth import credentials_from

        name = self.settings.genesys_credentials_secret
        return credentials_from(self.secrets.text(name, "Genesys credentials"))

    # --- the ServiceNow side: request signatures (API) and callbacks (notifier) --------------------------

    def signing_secrets(self) -> list[str]:
        """The API's HMAC secrets (current, and previous during a rotation), cached like the others."""
        from wfm_publish.signature import secrets_from

        name = self.settings.api_signing_secret
        if not name:
            raise ConfigurationError("API_SIGNING_SECRET is not set: the API refuses every request")
        return secrets_from(self.secrets.text(name, "request-signing"))

    @cached_property
    def servicenow(self) -> ServiceNowClient:
        from wfm_publish.servicenow import ServiceNowClient

        if not self.settings.servicenow_instance_url:
            raise ConfigurationError("SERVICENOW_INSTANCE_URL is not set (ServiceNowInstanceUrl parameter)")
        return ServiceNowClient(self.settings.servicenow_instance_url, self._servicenow_credentials)

    @cached_property
    def announcer(self) -> Announcer:
        from wfm_publish.announcer import Announcer

        return Announcer(self._client("events"), self.settings.event_bus_name)

    @cached_property
    def notifier(self) -> Notifier:
        from wfm_publish.notifier import Notifier

        return Notifier(self.store, lambda: self.servicenow, self.clock)

    def _servicenow_credentials(self) -> ServiceNowCredentials:
        from wfm_publish.servicenow import credentials_from

        name = self.settings.servicenow_credentials_secret
        if not name:
            raise ConfigurationError("SERVICENOW_CREDENTIALS_SECRET is not set")
        return credentials_from(self.secrets.text(name, "ServiceNow credentials"))


_services: Services | None = None


def services() -> Services:
    """The container's services, built on first use."""
    global _services  # noqa: PLW0603 - one per Lambda container, by design
    if _services is None:
        _services = Services(Settings.from_environment())
    return _services


def reset() -> None:
    """Forget the container's services (the local stack does this when it restarts)."""
    global _services  # noqa: PLW0603
    _services = None


class _TableQueries:
    """The jobs table as the Genesys client's QueryBook, reached only when a query is pending."""

    def __init__(self, services: Services) -> None:
        self._services = services

    def pending_query(self, key: str) -> PendingQuery | None:
        return self._services.store.pending_query(key)

    def begin_query(self, key: str, operation_id: str, started_at: float) -> PendingQuery:
        return self._services.store.begin_query(key, operation_id, started_at)

    def end_query(self, key: str) -> None:
        self._services.store.end_query(key)

    def mark_unanswered(self, key: str, at: float) -> None:
        self._services.store.mark_unanswered(key, at)
