"""template.yaml as data: the CloudFormation short-form tags, typed views of the resources, a resolver.

The template is the single source of truth for resource shapes. The local stack builds its moto
queues, table and secrets from these views, resolves each function's environment with `Resolver`,
and the tests check the template's invariants through the same views.

    template = Template.load("template.yaml")
    template.queues["ValidationQueue"].redrive   # Redrive(target="ValidationDLQ", max_receive_count=5)
    template.functions["TrunkValidationFunction"].sqs_events[0].batch_size
    Resolver(template, refs={...}, attributes={...}).resolve({"Ref": "JobsTable"})
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import yaml

__all__ = [
    "PSEUDO_PARAMETER_DEFAULTS",
    "ApiEvent",
    "FunctionSpec",
    "KeyElement",
    "LayerSpec",
    "ParameterSpec",
    "QueueSpec",
    "Redrive",
    "ResolutionError",
    "Resolver",
    "ScheduleEvent",
    "SecretSpec",
    "SqsEvent",
    "StreamEvent",
    "TableSpec",
    "Template",
    "TemplateError",
    "load_yaml",
]


class TemplateError(ValueError):
    """The template is not what the local stack can read (a missing property, a bad reference)."""


class ResolutionError(TemplateError):
    """An intrinsic function refers to something the resolver was not given."""


# ---------------------------------------------------------------- YAML with CloudFormation tags


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that reads !Ref, !GetAtt, !Sub, … as their long-form JSON equivalents."""


def _construct_node(loader: _CfnLoader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    raise TemplateError(f"unsupported YAML node {node!r}")  # pragma: no cover


def _construct_tag(loader: _CfnLoader, tag_suffix: str, node: yaml.Node) -> Any:
    value = _construct_node(loader, node)
    if tag_suffix == "Ref":
        return {"Ref": value}
    if tag_suffix == "Condition":
        return {"Condition": value}
    if tag_suffix == "GetAtt":
        if isinstance(value, str):
            logical_id, _, attribute = value.partition(".")
            return {"Fn::GetAtt": [logical_id, attribute]}
        return {"Fn::GetAtt": value}
    return {f"Fn::{tag_suffix}": value}


_CfnLoader.add_multi_constructor("!", _construct_tag)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a CloudFormation/SAM YAML file into plain dicts and lists, tags in long form."""
    with Path(path).open(encoding="utf-8") as handle:
        data = yaml.load(handle, Loader=_CfnLoader)  # noqa: S506 - a SafeLoader subclass
    if not isinstance(data, dict):
        raise TemplateError(f"{path}: not a CloudFormation template")
    return cast(dict[str, Any], data)


# ---------------------------------------------------------------- typed views


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
class SqsEvent:
    name: str
    queue: str
    """Logical id of the queue (from !GetAtt Queue.Arn)."""
    batch_size: int
    function_response_types: tuple[str, ...]
    maximum_batching_window: int

    @property
    def report_batch_item_failures(self) -> bool:
        return "ReportBatchItemFailures" in self.function_response_types


@dataclass(frozen=True)
class StreamEvent:
    """A DynamoDB event source: the table's stream -> the function, with Lambda's error handling."""

    name: str
    table: str
    """Logical id of the table (from !GetAtt Table.StreamArn)."""
    starting_position: str
    batch_size: int
    maximum_batching_window: int
    maximum_retry_attempts: int
    """-1: retry until the record expires."""
    maximum_record_age: int
    """Seconds; -1: no limit."""
    bisect_on_error: bool
    function_response_types: tuple[str, ...]
    on_failure: str | None
    """Logical id of the OnFailure SQS queue."""
    filters: tuple[Mapping[str, Any], ...]
    """FilterCriteria patterns, parsed."""

    @property
    def report_batch_item_failures(self) -> bool:
        return "ReportBatchItemFailures" in self.function_response_types


@dataclass(frozen=True)
class ScheduleEvent:
    name: str
    type: str
    """ScheduleV2 (EventBridge Scheduler) or Schedule (EventBridge rule)."""
    schedule_expression: Any
    timezone: Any
    input: Any
    """The Input JSON text, exactly as the template has it (a string, or an intrinsic such as !Sub)."""


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


# SAM's defaults when neither Globals nor the function say.
_SAM_DEFAULT_TIMEOUT = 3
_SAM_DEFAULT_MEMORY = 128
# SQS defaults when the template leaves a queue property out.
_SQS_DEFAULT_VISIBILITY = 30
_SQS_DEFAULT_RETENTION = 345600


def _merge_globals(globals_: Mapping[str, Any], own: Mapping[str, Any]) -> dict[str, Any]:
    """SAM's Globals rules: maps merge (the function wins), lists add up, scalars are overridden."""
    merged: dict[str, Any] = dict(globals_)
    for key, value in own.items():
        current = merged.get(key)
        if isinstance(current, dict) and isinstance(value, dict) and not _is_intrinsic(value):
            merged[key] = _merge_globals(current, value)
        elif isinstance(current, list) and isinstance(value, list):
            merged[key] = [*current, *value]
        else:
            merged[key] = value
    return merged


def _is_intrinsic(value: Any) -> bool:
    if not isinstance(value, dict) or len(value) != 1:
        return False
    key = str(next(iter(value)))
    return key in {"Ref", "Condition"} or key.startswith("Fn::")


def _logical_id_of(value: Any, what: str) -> str:
    """The logical id an attribute reference points at: !GetAtt X.Arn, !Ref X."""
    if isinstance(value, dict):
        if "Fn::GetAtt" in value:
            return str(value["Fn::GetAtt"][0])
        if "Ref" in value:
            return str(value["Ref"])
    raise TemplateError(f"{what}: expected !GetAtt <LogicalId>.Arn or !Ref <LogicalId>, got {value!r}")


def _int(value: Any, what: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise TemplateError(f"{what}: expected a number, got {value!r}") from exc


class Template:
    """A parsed template and typed views of the resources the local stack cares about."""

    def __init__(self, data: Mapping[str, Any], path: Path | None = None) -> None:
        self.data: Mapping[str, Any] = data
        self.path = path
        resources = data.get("Resources")
        if not isinstance(resources, dict) or not resources:
            raise TemplateError("the template has no Resources")
        self.resources: Mapping[str, Mapping[str, Any]] = resources

    @classmethod
    def load(cls, path: str | Path) -> Template:
        path = Path(path)
        return cls(load_yaml(path), path.resolve())

    @property
    def directory(self) -> Path:
        """Where relative CodeUri/ContentUri are read from (the template's folder, as in SAM)."""
        return self.path.parent if self.path is not None else Path.cwd()

    # ------------------------------------------------------------ generic access

    def resource_type(self, logical_id: str) -> str:
        return str(self.resources[logical_id].get("Type", ""))

    def properties(self, logical_id: str) -> Mapping[str, Any]:
        props = self.resources[logical_id].get("Properties") or {}
        return cast(Mapping[str, Any], props)

    def of_type(self, *types: str) -> dict[str, Mapping[str, Any]]:
        """Logical id -> Properties of every resource of the given types, in template order."""
        return {lid: self.properties(lid) for lid, res in self.resources.items() if res.get("Type") in types}

    @property
    def globals_function(self) -> Mapping[str, Any]:
        globals_ = self.data.get("Globals") or {}
        return cast(Mapping[str, Any], globals_.get("Function") or {})

    @property
    def conditions(self) -> Mapping[str, Any]:
        return cast(Mapping[str, Any], self.data.get("Conditions") or {})

    @property
    def mappings(self) -> Mapping[str, Any]:
        return cast(Mapping[str, Any], self.data.get("Mappings") or {})

    @property
    def outputs(self) -> Mapping[str, Any]:
        return cast(Mapping[str, Any], self.data.get("Outputs") or {})

    # ------------------------------------------------------------ views

    @property
    def parameters(self) -> dict[str, ParameterSpec]:
        out: dict[str, ParameterSpec] = {}
        for name, spec in (self.data.get("Parameters") or {}).items():
            default = spec.get("Default")
            out[name] = ParameterSpec(
                name=name,
                type=str(spec.get("Type", "String")),
                default=None if default is None else _scalar_text(default),
                allowed_values=tuple(_scalar_text(v) for v in spec.get("AllowedValues") or ()),
            )
        return out

    @property
    def queues(self) -> dict[str, QueueSpec]:
        out: dict[str, QueueSpec] = {}
        for lid, props in self.of_type("AWS::SQS::Queue").items():
            redrive: Redrive | None = None
            policy = props.get("RedrivePolicy")
            if policy is not None:
                if not isinstance(policy, dict):
                    raise TemplateError(f"{lid}: RedrivePolicy must be a mapping")
                redrive = Redrive(
                    target=_logical_id_of(policy.get("deadLetterTargetArn"), f"{lid}.RedrivePolicy"),
                    max_receive_count=_int(policy.get("maxReceiveCount"), f"{lid}.maxReceiveCount"),
                )
            out[lid] = QueueSpec(
                logical_id=lid,
                visibility_timeout=_int(props.get("VisibilityTimeout", _SQS_DEFAULT_VISIBILITY), lid),
                message_retention_period=_int(
                    props.get("MessageRetentionPeriod", _SQS_DEFAULT_RETENTION), lid
                ),
                delay_seconds=_int(props.get("DelaySeconds", 0), lid),
                fifo=bool(props.get("FifoQueue", False)),
                redrive=redrive,
                properties=props,
            )
        return out

    @property
    def dead_letter_queues(self) -> set[str]:
        """Logical ids of the queues some other queue redrives to."""
        return {q.redrive.target for q in self.queues.values() if q.redrive is not None}

    @property
    def tables(self) -> dict[str, TableSpec]:
        out: dict[str, TableSpec] = {}
        for lid, props in self.of_type("AWS::DynamoDB::Table").items():
            ttl = props.get("TimeToLiveSpecification") or {}
            pitr = props.get("PointInTimeRecoverySpecification") or {}
            sse = props.get("SSESpecification") or {}
            out[lid] = TableSpec(
                logical_id=lid,
                key_schema=tuple(
                    KeyElement(str(k["AttributeName"]), str(k["KeyType"])) for k in props.get("KeySchema", [])
                ),
                attribute_definitions={
                    str(a["AttributeName"]): str(a["AttributeType"])
                    for a in props.get("AttributeDefinitions", [])
                },
                ttl_attribute=str(ttl["AttributeName"]) if ttl.get("Enabled") is True else None,
                billing_mode=str(props.get("BillingMode", "PROVISIONED")),
                point_in_time_recovery=pitr.get("PointInTimeRecoveryEnabled") is True,
                sse_enabled=sse.get("SSEEnabled") is True,
                properties=props,
            )
        return out

    @property
    def table(self) -> TableSpec:
        """The one DynamoDB table (the project keeps all its state in one)."""
        tables = self.tables
        if len(tables) != 1:
            raise TemplateError(f"expected exactly one AWS::DynamoDB::Table, found {sorted(tables)}")
        return next(iter(tables.values()))

    @property
    def secrets(self) -> dict[str, SecretSpec]:
        out: dict[str, SecretSpec] = {}
        for lid, props in self.of_type("AWS::SecretsManager::Secret").items():
            generate = props.get("GenerateSecretString") or {}
            secret_string = props.get("SecretString")
            out[lid] = SecretSpec(
                logical_id=lid,
                description=props.get("Description"),
                secret_string=secret_string if isinstance(secret_string, str) else None,
                generate_template=generate.get("SecretStringTemplate"),
                generate_key=generate.get("GenerateStringKey"),
            )
        return out

    @property
    def layers(self) -> dict[str, LayerSpec]:
        out: dict[str, LayerSpec] = {}
        for lid, props in self.of_type("AWS::Serverless::LayerVersion").items():
            metadata = self.resources[lid].get("Metadata") or {}
            content = props.get("ContentUri")
            if not isinstance(content, str):
                raise TemplateError(f"{lid}: the local stack needs a local ContentUri folder")
            out[lid] = LayerSpec(lid, content, metadata.get("BuildMethod"))
        return out

    @property
    def functions(self) -> dict[str, FunctionSpec]:
        out: dict[str, FunctionSpec] = {}
        for lid, own in self.of_type("AWS::Serverless::Function").items():
            props = _merge_globals(self.globals_function, own)
            code_uri = props.get("CodeUri")
            handler = props.get("Handler")
            if not isinstance(code_uri, str) or not isinstance(handler, str) or "." not in handler:
                raise TemplateError(f"{lid}: needs a local CodeUri folder and a Handler module.function")
            api: list[ApiEvent] = []
            sqs: list[SqsEvent] = []
            streams: list[StreamEvent] = []
            schedules: list[ScheduleEvent] = []
            rules: list[RuleEvent] = []
            for name, event in (props.get("Events") or {}).items():
                kind = event.get("Type")
                ev = event.get("Properties") or {}
                if kind == "Api":
                    rest_api = ev.get("RestApiId")
                    api.append(
                        ApiEvent(
                            name=name,
                            method=str(ev["Method"]).upper(),
                            path=str(ev["Path"]),
                            rest_api_id=None if rest_api is None else _logical_id_of(rest_api, name),
                        )
                    )
                elif kind == "SQS":
                    sqs.append(
                        SqsEvent(
                            name=name,
                            queue=_logical_id_of(ev.get("Queue"), f"{lid}.{name}.Queue"),
                            batch_size=_int(ev.get("BatchSize", 10), f"{lid}.{name}.BatchSize"),
                            function_response_types=tuple(ev.get("FunctionResponseTypes") or ()),
                            maximum_batching_window=_int(ev.get("MaximumBatchingWindowInSeconds", 0), name),
                        )
                    )
                elif kind == "DynamoDB":
                    streams.append(_stream_event(lid, name, ev))
                elif kind == "EventBridgeRule":
                    rules.append(RuleEvent(name, ev.get("EventBusName"), dict(ev.get("Pattern") or {})))
                elif kind in {"ScheduleV2", "Schedule"}:
                    schedules.append(
                        ScheduleEvent(
                            name=name,
                            type=str(kind),
                            schedule_expression=ev.get("ScheduleExpression") or ev.get("Schedule"),
                            timezone=ev.get("ScheduleExpressionTimezone"),
                            input=ev.get("Input"),
                        )
                    )
            env = (props.get("Environment") or {}).get("Variables") or {}
            out[lid] = FunctionSpec(
                logical_id=lid,
                code_uri=code_uri,
                handler=handler,
                runtime=str(props.get("Runtime", "")),
                timeout=_int(props.get("Timeout", _SAM_DEFAULT_TIMEOUT), f"{lid}.Timeout"),
                memory_size=_int(props.get("MemorySize", _SAM_DEFAULT_MEMORY), f"{lid}.MemorySize"),
                environment=env,
                layers=tuple(props.get("Layers") or ()),
                policies=tuple(props.get("Policies") or ()),
                api_events=tuple(api),
                sqs_events=tuple(sqs),
                stream_events=tuple(streams),
                schedule_events=tuple(schedules),
                rule_events=tuple(rules),
                properties=props,
                condition=self.resources[lid].get("Condition"),
            )
        return out

    def parameter_values(self, overrides: Mapping[str, str] | None = None) -> dict[str, str]:
        """Every parameter's value: the default, or the override. Unknown overrides or a missing
        value (no default, no override) are errors, as in `sam deploy`."""
        params = self.parameters
        overrides = dict(overrides or {})
        unknown = sorted(set(overrides) - set(params))
        if unknown:
            raise TemplateError(f"unknown parameter(s) {unknown}; the template has {sorted(params)}")
        values: dict[str, str] = {}
        for name, spec in params.items():
            value = overrides.get(name, spec.default)
            if value is None:
                raise TemplateError(f"parameter {name} has no default and no override")
            if spec.allowed_values and value not in spec.allowed_values:
                raise TemplateError(f"parameter {name}={value!r} is not one of {list(spec.allowed_values)}")
            values[name] = value
        return values


def _stream_event(lid: str, name: str, ev: Mapping[str, Any]) -> StreamEvent:
    where = f"{lid}.{name}"
    destination = ((ev.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")
    filters: list[Mapping[str, Any]] = []
    for entry in (ev.get("FilterCriteria") or {}).get("Filters") or []:
        try:
            pattern = json.loads(str(entry["Pattern"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise TemplateError(f"{where}.FilterCriteria: each filter needs a JSON Pattern") from exc
        if not isinstance(pattern, dict):
            raise TemplateError(f"{where}.FilterCriteria: a Pattern must be a JSON object")
        filters.append(pattern)
    return StreamEvent(
        name=name,
        table=_logical_id_of(ev.get("Stream"), f"{where}.Stream"),
        starting_position=str(ev.get("StartingPosition", "LATEST")),
        batch_size=_int(ev.get("BatchSize", 100), f"{where}.BatchSize"),
        maximum_batching_window=_int(ev.get("MaximumBatchingWindowInSeconds", 0), where),
        maximum_retry_attempts=_int(ev.get("MaximumRetryAttempts", -1), f"{where}.MaximumRetryAttempts"),
        maximum_record_age=_int(
            ev.get("MaximumRecordAgeInSeconds", -1), f"{where}.MaximumRecordAgeInSeconds"
        ),
        bisect_on_error=ev.get("BisectBatchOnFunctionError") is True,
        function_response_types=tuple(ev.get("FunctionResponseTypes") or ()),
        on_failure=None if destination is None else _logical_id_of(destination, f"{where}.OnFailure"),
        filters=tuple(filters),
    )


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# ---------------------------------------------------------------- resolver

PSEUDO_PARAMETER_DEFAULTS: Mapping[str, str] = {
    "AWS::Region": "us-east-1",
    "AWS::AccountId": "123456789012",
    "AWS::Partition": "aws",
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::StackName": "wfm-publish-local",
    "AWS::StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/wfm-publish-local/local",
    "AWS::NotificationARNs": "",
}

_NO_VALUE = object()
_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")


class Resolver:
    """Turns intrinsic functions into local values.

    refs: logical id -> what !Ref returns (queue URL, table name, secret ARN, …).
    attributes: (logical id, attribute) -> what !GetAtt returns (("ValidationQueue", "Arn") -> arn).
    parameters: parameter name -> value (see Template.parameter_values).
    pseudo: AWS::Region and friends (defaults in PSEUDO_PARAMETER_DEFAULTS).
    """

    def __init__(
        self,
        template: Template,
        refs: Mapping[str, str] | None = None,
        attributes: Mapping[tuple[str, str], str] | None = None,
        parameters: Mapping[str, str] | None = None,
        pseudo: Mapping[str, str] | None = None,
    ) -> None:
        self.template = template
        self.refs: dict[str, str] = dict(refs or {})
        self.attributes: dict[tuple[str, str], str] = dict(attributes or {})
        self.parameters: dict[str, str] = (
            dict(parameters) if parameters is not None else template.parameter_values()
        )
        self.pseudo: dict[str, str] = {**PSEUDO_PARAMETER_DEFAULTS, **(pseudo or {})}
        self._conditions: dict[str, bool] = {}

    def resolve(self, value: Any) -> Any:
        """Resolve every intrinsic in value (recursively); AWS::NoValue entries are dropped."""
        result = self._resolve(value)
        return None if result is _NO_VALUE else result

    def resolve_str(self, value: Any) -> str:
        """Resolve to the text an environment variable would hold."""
        result = self.resolve(value)
        if isinstance(result, (dict, list)):
            return json.dumps(result)
        return "" if result is None else _scalar_text(result)

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            if name not in self.template.conditions:
                raise ResolutionError(f"unknown condition {name}")
            self._conditions[name] = bool(self._resolve(self.template.conditions[name]))
        return self._conditions[name]

    # ------------------------------------------------------------ internals

    def _resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [r for r in (self._resolve(v) for v in value) if r is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            key, arg = next(iter(value.items()))
            if key == "Ref":
                return self._ref(str(arg))
            if key == "Condition":
                return self.condition(str(arg))
            if isinstance(key, str) and key.startswith("Fn::"):
                return self._function(key, arg)
        out: dict[str, Any] = {}
        for key, item in value.items():
            resolved = self._resolve(item)
            if resolved is not _NO_VALUE:
                out[key] = resolved
        return out

    def _ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return _NO_VALUE
        if name in self.parameters:
            return self.parameters[name]
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.refs:
            return self.refs[name]
        raise ResolutionError(
            f"!Ref {name}: no value for it (not a parameter, pseudo parameter or known resource)"
        )

    def _getatt(self, arg: Any) -> str:
        if isinstance(arg, str):
            arg = arg.split(".", 1)
        logical_id, attribute = str(arg[0]), str(self._resolve(arg[1]))
        try:
            return self.attributes[(logical_id, attribute)]
        except KeyError:
            raise ResolutionError(f"!GetAtt {logical_id}.{attribute}: no value for it") from None

    def _sub(self, arg: Any) -> str:
        if isinstance(arg, list):
            text, variables = str(arg[0]), {k: self._resolve(v) for k, v in (arg[1] or {}).items()}
        else:
            text, variables = str(arg), {}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):  # ${!Literal} -> ${Literal}
                return "${" + name[1:] + "}"
            if name in variables:
                return _scalar_text(variables[name])
            if "." in name and name.split(".", 1)[0] in self.template.resources:
                return self._getatt(name)
            return _scalar_text(self._ref(name))

        return _SUB_VARIABLE.sub(replace, text)

    def _function(self, key: str, arg: Any) -> Any:  # noqa: C901, PLR0911, PLR0912 - one branch per intrinsic
        if key == "Fn::GetAtt":
            return self._getatt(arg)
        if key == "Fn::Sub":
            return self._sub(arg)
        if key == "Fn::If":
            name, if_true, if_false = arg
            return self._resolve(if_true if self.condition(str(name)) else if_false)
        if key == "Fn::Equals":
            left, right = (self._resolve(a) for a in arg)
            return _scalar_text(left) == _scalar_text(right)
        if key == "Fn::Not":
            return not self._resolve(arg[0])
        if key == "Fn::And":
            return all(self._resolve(a) for a in arg)
        if key == "Fn::Or":
            return any(self._resolve(a) for a in arg)
        if key == "Fn::Join":
            delimiter, items = arg
            return str(delimiter).join(_scalar_text(i) for i in self._resolve(items))
        if key == "Fn::Select":
            index, items = arg
            return self._resolve(items)[int(self._resolve(index))]
        if key == "Fn::Split":
            delimiter, text = arg
            return str(self._resolve(text)).split(str(delimiter))
        if key == "Fn::FindInMap":
            name, top, second = (self._resolve(a) for a in arg[:3])
            try:
                return self.template.mappings[name][top][second]
            except KeyError:
                raise ResolutionError(f"!FindInMap {name}/{top}/{second}: not in Mappings") from None
        if key == "Fn::Base64":
            return base64.b64encode(str(self._resolve(arg)).encode()).decode()
        if key == "Fn::ToJsonString":
            return json.dumps(self._resolve(arg), separators=(",", ":"))
        if key == "Fn::Length":
            return len(self._resolve(arg))
        if key == "Fn::GetAZs":
            region = self._resolve(arg) or self.pseudo["AWS::Region"]
            return [f"{region}a", f"{region}b", f"{region}c"]
        raise ResolutionError(f"{key} is not supported by the local resolver")
