"""Wires the adapters together, once per Lambda container, after the environment is set.

Clients are created lazily and reused across invocations: boto3 reads AWS_ENDPOINT_URL, so the
same code reaches AWS or the local moto server with no switch here.
"""

from __future__ import annotations

import json
from functools import cached_property
from typing import TYPE_CHECKING

from wfm_publish.clock import Clock, SystemClock
from wfm_publish.config import Settings
from wfm_publish.errors import ConfigurationError

if TYPE_CHECKING:
    from wfm_publish.genesys import Credentials, GenesysClient
    from wfm_publish.intake import Intake
    from wfm_publish.pipeline import Pipeline
    from wfm_publish.queues import QueueSender
    from wfm_publish.store import DynamoJobStore

SECRET_MAX_AGE = 300  # seconds Powertools keeps the credentials before reading the secret again


class Services:
    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()

    @cached_property
    def store(self) -> DynamoJobStore:
        import boto3

        from wfm_publish.store import DynamoJobStore

        return DynamoJobStore(boto3.client("dynamodb"), self.settings.jobs_table, self.settings.job_ttl_days)

    @cached_property
    def queues(self) -> QueueSender:
        import boto3

        from wfm_publish.queues import Queue, QueueSender, SqsTransport

        urls = {
            Queue.VALIDATION: self.settings.validation_queue_url,
            Queue.CONFLICT: self.settings.conflict_queue_url,
        }
        return QueueSender(SqsTransport(boto3.client("sqs"), urls), self.clock)

    @cached_property
    def genesys(self) -> GenesysClient:
        from wfm_publish.genesys import GenesysClient

        return GenesysClient(self.settings.genesys_url, self._credentials)

    @cached_property
    def intake(self) -> Intake:
        from wfm_publish.intake import Intake

        return Intake(
            self.store, self.queues, self.clock, deadline_seconds=self.settings.job_deadline_seconds
        )

    @cached_property
    def pipeline(self) -> Pipeline:
        from wfm_publish.pipeline import Pipeline, Timing

        timing = Timing(settle_window=self.settings.settle_window_seconds)
        return Pipeline(self.store, self.queues, self.genesys, self.clock, timing)

    def _credentials(self) -> Credentials:
        from aws_lambda_powertools.utilities import parameters

        from wfm_publish.genesys import Credentials

        raw = parameters.get_secret(self.settings.genesys_credentials_secret, max_age=SECRET_MAX_AGE)
        try:
            secret = json.loads(raw if isinstance(raw, str) else bytes(raw).decode())
            return Credentials(str(secret["clientId"]), str(secret["clientSecret"]))
        except (ValueError, KeyError, TypeError) as exc:
            # Name the shape, never the content.
            raise ConfigurationError(
                'the Genesys credentials secret must be JSON {"clientId": "...", "clientSecret": "..."}'
            ) from exc


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
