"""Typed views of template.yaml's resources and function events, as `Template` reads them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ParameterSpec:
    name: str
    type: str
    default: str | None
    allowed_values: tuple[str, ...] = ()


@dataclass(frozen=True)
class Redrive:
    target: str
    """Logical id of the dead-letter queue."""
    max_receive_count: int


@dataclass(frozen=True)
class QueueSpec:
    logical_id: str
    visibility_timeout: int
    message_retention_period: int
    delay_seconds: int
    fifo: bool
    redrive: Redrive | None
    properties: Mapping[str, Any]
    """The raw (unresolved) Properties, for anything the fields above do not carry."""


@dataclass(frozen=True)
class KeyElement:
    attribute_name: str
    key_type: str


@dataclass(frozen=True)
class TableSpec:
    logical_id: str
    key_schema: tuple[KeyElement, ...]
    attribute_definitions: Mapping[str, str]
    """Attribute name -> type (S, N, B)."""
    ttl_attribute: str | None
    billing_mode: str
    point_in_time_recovery: bool
    sse_enabled: bool
    properties: Mapping[str, Any]

    @property
    def hash_key(self) -> str:
        return next(k.attribute_name for k in self.key_schema if k.key_type == "HASH")

    @property
    def global_indexes(self) -> list[dict[str, Any]]:
        """The GlobalSecondaryIndexes as declared (create_table takes them as they are)."""
        return [dict(index) for index in self.properties.get("GlobalSecondaryIndexes", [])]


@dataclass(frozen=True)
class SecretSpec:
    logical_id: str
    description: Any
    secret_string: str | None
    """SecretString when the template sets one."""
    generate_template: str | None
    """GenerateSecretString.SecretStringTemplate."""
    generate_key: str | None
    """GenerateSecretString.GenerateStringKey."""


@dataclass(frozen=True)
class LayerSpec:
    logical_id: str
    content_uri: str
    build_method: str | None


@dataclass(frozen=True)
class ApiEvent:
    name: str
    method: str
    """Upper case; ANY matches every method."""
    path: str
    rest_api_id: str | None
    """Logical id of the AWS::Serverless::Api, None for SAM's implicit API."""


@dataclass(frozen=True)
class MappingEvent:
    """What every event source mapping (SQS, a DynamoDB stream) has: batches, and how the function
    reports a batch's failures."""

    name: str
    batch_size: int
    maximum_batching_window: int
    function_response_types: tuple[str, ...]

    @property
    def report_batch_item_failures(self) -> bool:
        return "ReportBatchItemFailures" in self.function_response_types


@dataclass(frozen=True)
class SqsEvent(MappingEvent):
    queue: str
    """Logical id of the queue (from !GetAtt Queue.Arn)."""


@dataclass(frozen=True)
class StreamEvent(MappingEvent):
    """A DynamoDB event source: the table's stream -> the function, with Lambda's error handling."""

    table: str
    """Logical id of the table (from !GetAtt Table.StreamArn)."""
    starting_position: str
    maximum_retry_attempts: int
    """-1: retry until the record expires."""
    maximum_record_age: int
    """Seconds; -1: no limit."""
    bisect_on_error: bool
    on_failure: str | None
    """Logical id of the OnFailure SQS queue."""
    filters: tuple[Mapping[str, Any], ...]
    """FilterCriteria patterns, parsed."""


@dataclass(frozen=True)
class ScheduleEvent:
    name: str
    type: str
    """ScheduleV2 (EventBridge Scheduler) or Schedule (EventBridge rule)."""
    schedule_expression: Any
    timezone: Any
    input: Any
    """The Input JSON text, exactly as the template has it (a string, or an intrinsic such as !Sub)."""
    state: Any = None
    """ScheduleV2's State (ENABLED or DISABLED, or an intrinsic such as !If), unresolved; None: ENABLED."""


@dataclass(frozen=True)
class RuleEvent:
    """EventBridgeRule: events on a bus that match a pattern invoke the function."""

    name: str
    event_bus: Any
    """EventBusName, unresolved (None: the default bus)."""
    pattern: Mapping[str, Any]
    """The event pattern (the same matching as a stream's FilterCriteria)."""


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    code_uri: str
    handler: str
    runtime: str
    timeout: int
    memory_size: int
    environment: Mapping[str, Any]
    """Globals merged with the function's own variables, unresolved."""
    layers: tuple[Any, ...]
    policies: tuple[Any, ...]
    api_events: tuple[ApiEvent, ...] = ()
    sqs_events: tuple[SqsEvent, ...] = ()
    stream_events: tuple[StreamEvent, ...] = ()
    schedule_events: tuple[ScheduleEvent, ...] = ()
    rule_events: tuple[RuleEvent, ...] = ()
    properties: Mapping[str, Any] = field(default_factory=dict)
    """Globals merged with the function's Properties, unresolved."""
    condition: str | None = None
    """The resource's Condition: the function exists only where it holds."""

    @property
    def handler_module(self) -> str:
        return self.handler.rsplit(".", 1)[0]

    @property
    def handler_function(self) -> str:
        return self.handler.rsplit(".", 1)[1]
