"""The embedded default: the Genesys Cloud simulator, a ServiceNow stand-in and the local stack.

No Docker, no AWS account: moto server (its own, or an existing endpoint given as `aws_endpoint`)
stands in for SQS, DynamoDB (with its stream) and Secrets Manager, the simulator for Genesys Cloud,
the stand-in for ServiceNow's Table API, and the local runner for Lambda, API Gateway, EventBridge
and the event source mappings.

The API checks request signatures as on AWS: the signing secret is `hmac_secret` (the CLI's
--hmac-secret, else $WFM_PUBLISH_HMAC_SECRET, else a fixed local value); `SignedAuth` signs.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self, TypedDict, Unpack

import requests

from wfm_publish.models import Job, JobStatus
from wfm_publish_local.client import SignedAuth, local_hmac_secret
from wfm_publish_local.lifecycle import Running
from wfm_publish_local.runner.crash import CrashPlan
from wfm_publish_local.servicenow import ServiceNowStandIn
from wfm_publish_local.simulator.loading import load_scenario
from wfm_publish_local.simulator.model import GenesysSimulator
from wfm_publish_local.simulator.scenario import Scenario
from wfm_publish_local.simulator.server import SimulatorServer
from wfm_publish_local.stack import LocalStack

if TYPE_CHECKING:
    from wfm_publish.services import Services

ROOT = Path(__file__).resolve().parents[2]


def ended(publish: dict[str, Any]) -> bool:
    """A publish as GET answers it has ended (a terminal status: PUBLISHED, FAILED, CANCELLED, CHECKED)."""
    return JobStatus(publish["status"]).terminal


DEFAULT_SCENARIO = ROOT / "scenarios" / "demo.yaml"


class StackOptions(TypedDict, total=False):
    """What the embedded stack hands its LocalStack as given (LocalStack documents each)."""

    api_port: int
    visibility_timeout: int | None
    stream_retry_delay: float
    poll: Collection[str] | None  # None: every event source runs
    aws_endpoint: str | None
    crash: CrashPlan | None
    sqs_concurrency: int


class EmbeddedStack(Running):
    def __init__(
        self,
        scenario: Path | str | Scenario = DEFAULT_SCENARIO,
        *,
        simulator_port: int = 0,
        environment: dict[str, str] | None = None,
        hmac_secret: str | None = None,
        parameters: dict[str, str] | None = None,
        **stack_options: Unpack[StackOptions],
    ) -> None:
        self.scenario: Scenario = scenario if isinstance(scenario, Scenario) else load_scenario(str(scenario))
        self.simulator = GenesysSimulator(self.scenario)
        self.simulator_server = SimulatorServer(self.simulator, port=simulator_port)
        self._environment = environment or {}
        self._parameters = parameters or {}  # template parameters over the embedded stack's own
        self._stack_options = stack_options
        self.hmac_secret = local_hmac_secret(hmac_secret)
        self.auth = SignedAuth(self.hmac_secret)
        self.servicenow = ServiceNowStandIn()
        self.stack: LocalStack | None = None

    def start(self) -> Self:
        from wfm_publish import services

        self.simulator_server.start()
        self.servicenow.start()
        credentials = self.scenario.credentials
        self.stack = LocalStack(
            template_path=str(ROOT / "template.yaml"),
            root=str(ROOT),
            parameter_overrides={
                "GenesysBaseUrl": self.simulator_server.url,
                "SettleWindowSeconds": f"{self.scenario.settle_window_seconds:g}",
                "ServiceNowInstanceUrl": self.servicenow.url,
                # The org's partner event bus: GenesysEventsFunction exists and hears the simulator.
                "GenesysEventBusName": self.event_bus,
                **self._parameters,
            },
            environment_overrides={"POWERTOOLS_LOG_LEVEL": "WARNING", **self._environment},
            secret_values={
                "GenesysCredentials": json.dumps(
                    {"clientId": credentials.client_id, "clientSecret": credentials.client_secret}
                ),
                "ApiSigningSecret": json.dumps({"hmacSecret": self.hmac_secret}),
                "ServiceNowCredentials": json.dumps(
                    {"username": self.servicenow.username, "password": self.servicenow.password}
                ),
            },
            **self._stack_options,
        )
        services.reset()  # the functions' clients must see this stack's environment
        self.stack.start()
        self.stack.relay_events(self.event_bus, self._notifications)
        return self

    @property
    def container(self) -> Services:
        """The functions' container. One process hosts every function, so their handlers share the
        core's Services (built on first use, forgotten at start): what a harness tunes for the
        functions (the chaos run's time scale) it tunes here."""
        from wfm_publish.services import services

        return services()

    @property
    def event_bus(self) -> str:
        """The partner event bus (and event source) name of the simulated org."""
        return self.simulator.notifier.source

    def _notifications(self, after: int) -> tuple[list[dict[str, Any]], int]:
        """The simulator's notifications after the first `after`, read over HTTP as a separate
        process would (the read also lets the simulator catch up on time)."""
        url = f"{self.simulator_server.url}/__sim/notifications"
        answer = requests.get(url, params={"after": after}, timeout=5).json()
        return list(answer["events"]), int(answer["total"])

    def stop(self) -> None:
        if self.stack is not None:
            self.stack.stop()
        self.servicenow.stop()
        self.simulator_server.stop()

    @property
    def api_url(self) -> str:
        assert self.stack is not None, "start() the stack first"
        return self.stack.api_url

    def accept(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST /publishes with a fresh Idempotency-Key, signed as ServiceNow signs it: the 202's body.
        Anything but a 202 is an error here (tests that want refusals send their own requests)."""
        answer = requests.post(
            f"{self.api_url}/publishes",
            json=body,
            headers={"Idempotency-Key": str(uuid.uuid4())},
            auth=self.auth,
            timeout=15,
        )
        if answer.status_code != 202:
            raise AssertionError(f"POST /publishes answered {answer.status_code}: {answer.text}")
        return dict(answer.json())

    def publish_status(self, publish_id: str) -> dict[str, Any]:
        """GET /publishes/{publishId}, signed as ServiceNow signs it."""
        return dict(self._get_publish(publish_id).json())

    def _get_publish(self, publish_id: str) -> requests.Response:
        return requests.get(f"{self.api_url}/publishes/{publish_id}", auth=self.auth, timeout=15)

    def wait_for_publish(
        self,
        publish_id: str,
        until: Callable[[dict[str, Any]], object] = ended,
        *,
        timeout: float = 60.0,
        on_poll: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Poll the publish until `until` holds (by default: the job ended); TimeoutError otherwise.

        A 5xx is asked again, as ServiceNow would: the API answers 503 while DynamoDB fails past
        botocore's retries (behind a fault proxy), and that says nothing about the job."""
        deadline = time.monotonic() + timeout
        while True:
            answer = self._get_publish(publish_id)
            current = dict(answer.json())
            if answer.status_code < 500:
                if on_poll is not None:
                    on_poll(current)
                if until(current):
                    return current
            if time.monotonic() >= deadline:
                raise TimeoutError(f"publish {publish_id}: not done within {timeout:g} s: {current}")
            time.sleep(0.2)

    def wait_for_queue_empty(self, logical_id: str, *, timeout: float = 60.0) -> None:
        """Until the queue holds nothing visible, in flight or delayed (twice in a row: a consumer may
        be between deleting one message and sending the next)."""
        assert self.stack is not None, "start() the stack first"
        deadline = time.monotonic() + timeout
        quiet = 0
        while quiet < 2:
            depth = self.stack.queue_depth(logical_id)
            quiet = quiet + 1 if not any(depth.values()) else 0
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{logical_id} still holds messages after {timeout:g} s: {depth}")
            time.sleep(0.2)

    def weekly_jobs(self) -> list[Job]:
        """Every job a weekly run started (its key `weekly:<bu>:<week>`), read through the store."""
        from wfm_publish.store import DynamoJobStore

        assert self.stack is not None, "start() the stack first"
        client = self.stack.client("dynamodb")
        store = DynamoJobStore(client, self.stack.table_name)
        pages = client.get_paginator("scan").paginate(
            TableName=self.stack.table_name, ProjectionExpression="pk"
        )
        ids = [i["pk"]["S"][4:] for page in pages for i in page["Items"] if i["pk"]["S"].startswith("job#")]
        jobs = [job for job in map(store.get_job, ids) if job is not None]
        return [job for job in jobs if (job.idempotency_key or "").startswith("weekly:")]

    def events(self, source: str | None = "wfm-publish") -> list[dict[str, Any]]:
        """The events the functions put on the default EventBridge bus, oldest first."""
        assert self.stack is not None, "start() the stack first"
        return self.stack.events(source)

    def metric_totals(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], list[float]]:
        """Every value of every metric the functions printed (EMF, namespace WfmPublish), by dimensions."""
        assert self.stack is not None and self.stack.metrics is not None, "start() the stack first"
        return self.stack.metrics.totals("WfmPublish")

    def genesys_stats(self) -> dict[str, Any]:
        return self.simulator.stats()
