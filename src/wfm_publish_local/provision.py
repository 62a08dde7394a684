"""Provisioning: the template's queues, tables and secrets made in an AWS-compatible endpoint (moto),
under CloudFormation-style names (`<stack>-<LogicalId>-<RANDOM>`), and every other resource named so
that what refers to it (`Ref`, `Fn::GetAtt`, `Fn::Sub`) resolves."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from wfm_publish_local.intrinsics import Resolver
from wfm_publish_local.runner.function import ACCOUNT_ID
from wfm_publish_local.template import Template, TemplateError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_sqs import SQSClient

log = logging.getLogger(__name__)

# What the local stack puts in the template's secrets unless told otherwise: the Genesys Cloud
# simulator accepts these client credentials.
DEFAULT_SECRET_VALUES: Mapping[str, str] = {
    "GenesysCredentials": json.dumps({"clientId": "local-client", "clientSecret": "local-secret"}),
}

_QUEUE_ATTRIBUTES = (
    "VisibilityTimeout",
    "MessageRetentionPeriod",
    "DelaySeconds",
    "MaximumMessageSize",
    "ReceiveMessageWaitTimeSeconds",
    "FifoQueue",
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "FifoThroughputLimit",
    "SqsManagedSseEnabled",
)


def _attribute_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class Resources:
    """The resources of one stack in one endpoint: `refs` (logical id -> what Ref answers) and
    `attributes` ((logical id, name) -> what Fn::GetAtt answers), filled by `create`.

    client: makes a boto3 client for the endpoint (`client("sqs")`).
    secret_values: logical id -> SecretString, before the template's own SecretString.
    visibility_timeout: replaces every queue's VisibilityTimeout (seconds); None keeps the template's.
    """

    def __init__(
        self,
        template: Template,
        parameters: Mapping[str, str],
        client: Callable[[str], Any],
        *,
        stack_name: str,
        region: str,
        secret_values: Mapping[str, str],
        visibility_timeout: int | None = None,
        endpoint: str = "",
    ) -> None:
        self.template = template
        self.parameters = dict(parameters)
        self._client = client
        self.stack_name = stack_name
        self.region = region
        self.secret_values = dict(secret_values)
        self.visibility_timeout = visibility_timeout
        self.endpoint = endpoint
        self.suffix = uuid.uuid4().hex[:12].upper()
        self.refs: dict[str, str] = {}
        self.attributes: dict[tuple[str, str], str] = {}

    def name(self, logical_id: str, limit: int = 80) -> str:
        """A CloudFormation-style physical name: <stack>-<LogicalId>-<RANDOM>."""
        name = f"{self.stack_name}-{logical_id}"
        return f"{name[: limit - 13]}-{self.suffix}"

    def resolver(self) -> Resolver:
        return Resolver(
            self.template,
            refs=self.refs,
            attributes=self.attributes,
            parameters=self.parameters,
            pseudo={
                "AWS::Region": self.region,
                "AWS::StackName": self.stack_name,
                "AWS::AccountId": ACCOUNT_ID,
            },
        )

    def create(self) -> None:
        self._create_secrets()
        self._create_queues()
        self._create_tables()
        self._name_other_resources()

    def delete(self) -> None:
        """Best effort: the queues, tables and secrets this stack made in a shared endpoint."""
        made = [
            (lid, self.template.resource_type(lid)) for lid in self.refs if lid in self.template.resources
        ]
        for lid, kind in made:
            try:
                if kind == "AWS::SQS::Queue":
                    self._client("sqs").delete_queue(QueueUrl=self.refs[lid])
                elif kind == "AWS::DynamoDB::Table":
                    self._client("dynamodb").delete_table(TableName=self.refs[lid])
                elif kind == "AWS::SecretsManager::Secret":
                    self._client("secretsmanager").delete_secret(
                        SecretId=self.refs[lid], ForceDeleteWithoutRecovery=True
                    )
            except Exception as exc:  # leaving one behind must not fail the stop
                log.warning("could not delete %s in %s: %s", lid, self.endpoint, exc)

    def function_environment(self) -> dict[str, str]:
        """The union of the functions' environments, resolved: one process hosts them all, so two
        functions giving one variable different values is an error."""
        resolver = self.resolver()
        merged: dict[str, str] = {}
        owners: dict[str, str] = {}
        conflicts: list[str] = []
        for lid, spec in self.template.functions.items():
            for name, raw in spec.environment.items():
                value = resolver.resolve_str(raw)
                if name in merged and merged[name] != value:
                    conflicts.append(f"{name}: {owners[name]}={merged[name]!r} vs {lid}={value!r}")
                merged.setdefault(name, value)
                owners.setdefault(name, lid)
        if conflicts:
            raise TemplateError(
                "functions set the same environment variable to different values; one local process "
                "cannot host both: " + "; ".join(conflicts)
            )
        return merged

    def _create_secrets(self) -> None:
        secrets: SecretsManagerClient = self._client("secretsmanager")
        for lid, spec in self.template.secrets.items():
            value = self.secret_values.get(lid) or spec.secret_string
            if value is None:
                generated = json.loads(spec.generate_template or "{}")
                if spec.generate_key:
                    generated[spec.generate_key] = uuid.uuid4().hex
                value = json.dumps(generated)
            arn = secrets.create_secret(Name=self.name(lid, 512), SecretString=value)["ARN"]
            self.refs[lid] = arn
            self.attributes[(lid, "Id")] = arn

    def _create_queues(self) -> None:
        sqs: SQSClient = self._client("sqs")
        pending = dict(self.template.queues)
        while pending:
            ready = [q for q in pending.values() if q.redrive is None or q.redrive.target in self.refs]
            if not ready:
                raise TemplateError(
                    f"queues redrive to queues the template does not define: {sorted(pending)}"
                )
            for spec in ready:
                del pending[spec.logical_id]
                props = self.resolver().resolve(dict(spec.properties))
                attributes = {k: _attribute_text(props[k]) for k in _QUEUE_ATTRIBUTES if k in props}
                if self.visibility_timeout is not None:
                    attributes["VisibilityTimeout"] = str(self.visibility_timeout)
                if spec.redrive is not None:
                    attributes["RedrivePolicy"] = json.dumps(
                        {
                            "deadLetterTargetArn": self.attributes[(spec.redrive.target, "Arn")],
                            "maxReceiveCount": spec.redrive.max_receive_count,
                        }
                    )
                name = str(props.get("QueueName") or self.name(spec.logical_id, 75 if spec.fifo else 80))
                if spec.fifo and not name.endswith(".fifo"):
                    name += ".fifo"
                url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]  # type: ignore[arg-type]
                attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
                arn = attrs["QueueArn"]
                self.refs[spec.logical_id] = url
                self.attributes[(spec.logical_id, "Arn")] = arn
                self.attributes[(spec.logical_id, "QueueName")] = name
                self.attributes[(spec.logical_id, "QueueUrl")] = url

    def _create_tables(self) -> None:
        dynamodb: DynamoDBClient = self._client("dynamodb")
        for lid, spec in self.template.tables.items():
            props = self.resolver().resolve(dict(spec.properties))
            name = str(props.get("TableName") or self.name(lid, 255))
            request: dict[str, Any] = {
                "TableName": name,
                "KeySchema": props["KeySchema"],
                "AttributeDefinitions": props["AttributeDefinitions"],
                "BillingMode": spec.billing_mode,
            }
            if spec.billing_mode == "PROVISIONED":
                request["ProvisionedThroughput"] = props.get(
                    "ProvisionedThroughput", {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}
                )
            for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
                if key in props:
                    request[key] = props[key]
            if "StreamSpecification" in props:  # CloudFormation's has no StreamEnabled: its presence is it
                request["StreamSpecification"] = {"StreamEnabled": True, **props["StreamSpecification"]}
            description = dynamodb.create_table(**request)["TableDescription"]
            if spec.ttl_attribute:
                dynamodb.update_time_to_live(
                    TableName=name,
                    TimeToLiveSpecification={"AttributeName": spec.ttl_attribute, "Enabled": True},
                )
            self.refs[lid] = name
            self.attributes[(lid, "Arn")] = description.get("TableArn", "")
            if "LatestStreamArn" in description:
                self.attributes[(lid, "StreamArn")] = description["LatestStreamArn"]

    def _name_other_resources(self) -> None:
        """Refs/attributes for resources the local stack does not create, so an environment that
        names them still resolves (a function's name, a topic's ARN, …)."""
        region, account = self.region, ACCOUNT_ID
        for lid in self.template.resources:
            if lid in self.refs:
                continue
            kind = self.template.resource_type(lid)
            name = self.name(lid, 64)
            if kind in {"AWS::Serverless::Function", "AWS::Lambda::Function"}:
                self.refs[lid] = name
                self.attributes[(lid, "Arn")] = f"arn:aws:lambda:{region}:{account}:function:{name}"
            elif kind in {"AWS::Serverless::LayerVersion", "AWS::Lambda::LayerVersion"}:
                self.refs[lid] = f"arn:aws:lambda:{region}:{account}:layer:{name}:1"
            elif kind == "AWS::SNS::Topic":
                self.refs[lid] = f"arn:aws:sns:{region}:{account}:{name}"
                self.attributes[(lid, "TopicArn")] = self.refs[lid]
                self.attributes[(lid, "TopicName")] = name
            elif kind in {"AWS::Serverless::Api", "AWS::ApiGateway::RestApi"}:
                self.refs[lid] = self.suffix.lower()[:10]
                self.attributes[(lid, "RootResourceId")] = "root"
            else:
                self.refs[lid] = name
                self.attributes[(lid, "Arn")] = f"arn:aws:local:{region}:{account}:{lid}/{name}"
