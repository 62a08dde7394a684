"""The local stack on an AWS endpoint it did not start (`--aws-endpoint`): two stacks share one moto
server, and a stack behind the fault proxy (answers lost after commit, 5xx, throttling, latency at
the AWS boundary) still carries the demo request to exactly one publish."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from moto.server import ThreadedMotoServer

from tests.support.aws import aws_client
from wfm_publish_local.client import SignedAuth
from wfm_publish_local.demo import DEMO_CALLBACK, SERVICENOW_BODY
from wfm_publish_local.embedded import ROOT, EmbeddedStack
from wfm_publish_local.faultproxy import FaultProxy, data_plane_plan

pytestmark = pytest.mark.e2e

# One publish at once (after the scenario's stale-version 409), no telephony wait: a short flow.
QUICK = {**SERVICENOW_BODY, "validationMode": "off"}


@pytest.fixture
def moto() -> Iterator[str]:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def publish(api_url: str, auth: SignedAuth, body: dict[str, Any]) -> str:
    answer = requests.post(
        f"{api_url}/publishes",
        json=body,
        headers={"Idempotency-Key": str(uuid.uuid4())},
        auth=auth,
        timeout=30,
    )
    assert answer.status_code == 202, answer.text
    return str(answer.json()["publishId"])


def wait_published(api_url: str, auth: SignedAuth, publish_id: str, timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job = requests.get(f"{api_url}/publishes/{publish_id}", auth=auth, timeout=30).json()
        if job.get("status") in ("PUBLISHED", "FAILED", "CANCELLED") or time.monotonic() > deadline:
            return dict(job)
        time.sleep(0.3)


def test_two_stacks_share_one_moto_server(moto: str, tmp_path: Path) -> None:
    """One stack in this process, one `wfm-publish serve --aws-endpoint` in another, one moto server."""
    # moto keeps its state per process, so other tests' in-process servers show here too: count what
    # these two stacks add and leave, not what the endpoint holds.
    before = set(aws_client("dynamodb", moto).list_tables()["TableNames"])
    queues_before = len(aws_client("sqs", moto).list_queues().get("QueueUrls", []))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    other = subprocess.Popen(
        [sys.executable, "-m", "wfm_publish_local.cli", "serve", "--port", "0", "--aws-endpoint", moto],
        cwd=ROOT,
        env={**env, "POWERTOOLS_LOG_LEVEL": "ERROR"},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert other.stdout is not None
        started = json.loads(other.stdout.readline())
        assert started["aws"] == moto
        with EmbeddedStack(aws_endpoint=moto) as here:
            tables = set(aws_client("dynamodb", moto).list_tables()["TableNames"]) - before
            assert len(tables) == 2 and here.stack is not None and here.stack.table_name in tables
            listed = set(aws_client("sqs", moto).list_queues()["QueueUrls"])
            ours = {here.stack.queue_url(lid) for lid in here.stack.template.queues}
            assert len(ours) == len(here.stack.template.queues) and ours <= listed
            assert len(listed) - queues_before >= 2 * len(ours)  # and the other stack's beside them
            theirs = SignedAuth(here.hmac_secret)  # both use the local default secret
            mine, yours = publish(here.api_url, here.auth, QUICK), publish(started["api"], theirs, QUICK)
            assert wait_published(here.api_url, here.auth, mine)["status"] == "PUBLISHED"
            assert wait_published(started["api"], theirs, yours)["status"] == "PUBLISHED"
            # The operator's command line, a third process, finds the serving stack by its first line.
            line = tmp_path / "serve.json"
            line.write_text(json.dumps(started) + "\n", encoding="utf-8")
            listed_jobs = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "wfm_publish_local.cli",
                    "ops",
                    "--local",
                    str(line),
                    "--json",
                    "jobs",
                ],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            )
            assert [j["publishId"] for j in json.loads(listed_jobs.stdout)] == [yours]
            # each stack's job is in its own table only
            assert (
                requests.get(f"{here.api_url}/publishes/{yours}", auth=here.auth, timeout=30).status_code
                == 404
            )
        # a stack leaves nothing behind in an endpoint it did not start
        assert len(set(aws_client("dynamodb", moto).list_tables()["TableNames"]) - before) == 1
    finally:
        other.terminate()
        other.wait(timeout=30)
    assert set(aws_client("dynamodb", moto).list_tables()["TableNames"]) - before == set()


def demo_behind(proxy: FaultProxy, timeout: float = 100) -> tuple[dict[str, Any], dict[str, Any]]:
    with EmbeddedStack(aws_endpoint=proxy.url, visibility_timeout=3) as stack:
        stack.simulator.reset()
        publish_id = publish(stack.api_url, stack.auth, {**SERVICENOW_BODY, "callback": DEMO_CALLBACK})
        job = stack.wait_for_publish(publish_id, timeout=timeout)
        # the simulator's inspection endpoint, over HTTP: what Genesys actually applied
        stats = requests.get(f"{stack.simulator_server.url}/__sim/stats", timeout=10).json()
        print(proxy.report())
        return job, stats


def test_the_demo_flow_behind_the_fault_proxy_publishes_exactly_once(moto: str) -> None:
    """Faults on the data plane only (the stack's own provisioning is left alone)."""
    with FaultProxy(moto, data_plane_plan(11), lifetime=600) as proxy:
        job, stats = demo_behind(proxy)
        assert job["status"] == "PUBLISHED", job
        assert stats["publishesApplied"] == {"sched-demo": 1}
        counts = proxy.counts()
        assert {"throttle", "error_before", "latency"} <= set(counts), proxy.report()
        assert proxy.total() >= 5


def test_the_demo_flow_survives_dynamodb_writes_whose_answers_are_lost(moto: str) -> None:
    """Issue 9: a conditional write committed whose answer was lost fails its condition on botocore's
    retry; the job must still end PUBLISHED with exactly one update applied."""
    with FaultProxy(moto, data_plane_plan(12, lost_writes=0.15), lifetime=600) as proxy:
        job, stats = demo_behind(proxy, timeout=45)
        assert proxy.counts().get("lost_after_commit", {}), proxy.report()
        assert job["status"] == "PUBLISHED", job
        assert stats["publishesApplied"] == {"sched-demo": 1}
