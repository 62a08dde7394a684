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
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import requests

from wfm_publish.models import JobStatus
from wfm_publish_local.client import SignedAuth, local_hmac_secret
from wfm_publish_local.runner import CrashPlan
from wfm_publish_local.servicenow import ServiceNowStandIn
from wfm_publish_local.simulator.model import GenesysSimulator
from wfm_publish_local.simulator.scenario import Scenario, load_scenario
from wfm_publish_local.simulator.server import SimulatorServer
from wfm_publish_local.stack import LocalStack

ROOT = Path(__file__).resolve().parents[2]


def ended(publish: dict[str, Any]) -> bool:
    """A publish as GET answers it has reached PUBLISHED, FAILED or CANCELLED."""
    return JobStatus(publish["status"]).terminal


DEFAULT_SCENARIO = ROOT / "scenarios" / "demo.yaml"


class EmbeddedStack:
    def __init__(
        self,
        scenario: Path | str | Scenario = DEFAULT_SCENARIO,
        *,
        api_port: int = 0,
        simulator_port: int = 0,
        visibility_timeout: int | None = None,
        environment: dict[str, str] | None = None,
        hmac_secret: str | None = None,
        stream_retry_delay: float = 0.1,
        aws_endpoint: str | None = None,
        crash: CrashPlan | None = None,
        sqs_concurrency: int = 1,
    ) -> None:
        self.scenario: Scenario = scenario if isinstance(scenario, Scenario) else load_scenario(str(scenario))
        self.simulator = GenesysSimulator(self.scenario)
        self.simulator_server = SimulatorServer(self.simulator, port=simulator_port)
        self._api_port = api_port
        self._visibility_timeout = visibility_timeout
        self._environment = environment or {}
        self._stream_retry_delay = stream_retry_delay
        self._aws_endpoint = aws_endpoint
        self._crash = crash
        self._sqs_concurrency = sqs_concurrency
        self.hmac_secret = local_hmac_secret(hmac_secret)
        self.auth = SignedAuth(self.hmac_secret)
        self.servicenow = ServiceNowStandIn()
        self.stack: LocalStack | None = None

    def start(self) -> EmbeddedStack:
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
            visibility_timeout=self._visibility_timeout,
            api_port=self._api_port,
            stream_retry_delay=self._stream_retry_delay,
            aws_endpoint=self._aws_endpoint,
            crash=self._crash,
            sqs_concurrency=self._sqs_concurrency,
        )
        services.reset()  # the functions' clients must see this stack's environment
        self.stack.start()
        return self

    def stop(self) -> None:
        if self.stack is not None:
            self.stack.stop()
        self.servicenow.stop()
        self.simulator_server.stop()

    @property
    def api_url(self) -> str:
        assert self.stack is not None, "start() the stack first"
        return self.stack.api_url

    def publish_status(self, publish_id: str) -> dict[str, Any]:
        """GET /publishes/{publishId}, signed as ServiceNow signs it."""
        answer = requests.get(f"{self.api_url}/publishes/{publish_id}", auth=self.auth, timeout=15)
        return dict(answer.json())

    def wait_for_publish(
        self,
        publish_id: str,
        until: Callable[[dict[str, Any]], object] = ended,
        *,
        timeout: float = 60.0,
        on_poll: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Poll the publish until `until` holds (by default: the job ended); TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            current = self.publish_status(publish_id)
            if on_poll is not None:
                on_poll(current)
            if until(current):
                return current
            if time.monotonic() >= deadline:
                raise TimeoutError(f"publish {publish_id}: not done within {timeout:g} s: {current}")
            time.sleep(0.2)

    def genesys_stats(self) -> dict[str, Any]:
        return self.simulator.stats()

    def __enter__(self) -> EmbeddedStack:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()
