"""template.yaml on the local stack: the moto resources and the functions' environment are the
template's, resolved (the contract in docs/architecture.md)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import requests

from wfm_publish_local.stack import REPO_ROOT, LocalStack
from wfm_publish_local.template import Template

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack(
        parameter_overrides={"GenesysBaseUrl": "http://127.0.0.1:9", "SettleWindowSeconds": "2"},
        visibility_timeout=3,
        poll=[],
    ) as running:
        yield running


def test_queues_have_their_dlq_and_redrive_policy(stack: LocalStack) -> None:
    sqs = stack.client("sqs")
    template = Template.load(REPO_ROOT / "template.yaml")
    for lid, spec in template.queues.items():
        attrs = sqs.get_queue_attributes(QueueUrl=stack.queue_url(lid), AttributeNames=["All"])["Attributes"]
        assert attrs["VisibilityTimeout"] == "3"  # the time scale override
        assert attrs["MessageRetentionPeriod"] == str(spec.message_retention_period)
        if spec.redrive is not None:
            policy = json.loads(attrs["RedrivePolicy"])
            assert policy["deadLetterTargetArn"] == stack.queue_arn(spec.redrive.target)
            assert int(policy["maxReceiveCount"]) == spec.redrive.max_receive_count == 5
    assert (
        "RedrivePolicy"
        not in sqs.get_queue_attributes(QueueUrl=stack.queue_url("ValidationDLQ"), AttributeNames=["All"])[
            "Attributes"
        ]
    )


def test_table_key_schema_and_ttl(stack: LocalStack) -> None:
    dynamodb = stack.client("dynamodb")
    table = dynamodb.describe_table(TableName=stack.table_name)["Table"]
    assert table["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    assert {a["AttributeName"]: a["AttributeType"] for a in table["AttributeDefinitions"]} == {
        "pk": "S",
        "dueShard": "S",
        "dueAt": "N",
        "status": "S",
        "createdAt": "N",
    }
    assert {i["IndexName"] for i in table["GlobalSecondaryIndexes"]} == {"due", "byStatus"}
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    ttl = dynamodb.describe_time_to_live(TableName=stack.table_name)["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expiresAt"}


def test_genesys_secret_holds_the_simulator_credentials(stack: LocalStack) -> None:
    secret = stack.client("secretsmanager").get_secret_value(SecretId=stack.secret_arn("GenesysCredentials"))
    assert json.loads(secret["SecretString"]) == {"clientId": "local-client", "clientSecret": "local-secret"}


def test_environment_contract(stack: LocalStack) -> None:
    env = stack.environment
    assert env["JOBS_TABLE"] == stack.table_name
    assert env["VALIDATION_QUEUE_URL"] == stack.queue_url("ValidationQueue")
    assert env["CONFLICT_QUEUE_URL"] == stack.queue_url("ConflictQueue")
    assert env["WEEKLY_QUEUE_URL"] == stack.queue_url("WeeklyQueue")  # created from the template
    assert env["WEEKLY_STARTS_PER_MINUTE"] == "34"
    assert env["GENESYS_CREDENTIALS_SECRET"] == stack.secret_arn("GenesysCredentials")
    assert env["GENESYS_REGION"] == "us-east-1"
    assert env["GENESYS_BASE_URL"] == "http://127.0.0.1:9"
    assert env["SETTLE_WINDOW_SECONDS"] == "2"
    assert env["JOB_DEADLINE_SECONDS"] == "28800"
    assert env["JOB_TTL_DAYS"] == "30"
    assert env["POWERTOOLS_SERVICE_NAME"] == "wfm-publish"
    assert env["POWERTOOLS_LOG_LEVEL"] == "INFO"


def test_functions_and_routes(stack: LocalStack) -> None:
    # Every function of the template but the events function, which needs a Genesys event bus.
    assert set(stack.functions) == set(stack.template.functions) - {"GenesysEventsFunction"}
    assert stack.sources.sqs == [] and stack.sources.streams == []  # poll=[]
    assert stack.events() == []  # the default bus is captured; nothing has been put yet
    response = requests.get(f"{stack.api_url}/publish", timeout=10)
    assert response.status_code == 403
    assert response.json() == {"message": "Missing Authentication Token"}
    for function in stack.functions.values():
        assert function.code_dir == REPO_ROOT / function.spec.code_uri.rstrip("/")
        assert function.spec.timeout == 30
