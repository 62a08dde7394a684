"""template.yaml as data: the CloudFormation short-form tags and typed views of the resources (specs.py).

The template is the single source of truth for resource shapes. The local stack builds its moto
queues, table and secrets from these views, resolves each function's environment with
`intrinsics.Resolver`, and the tests check the template's invariants through the same views.

    template = Template.load("template.yaml")
    template.queues["ValidationQueue"].redrive   # Redrive(target="ValidationDLQ", max_receive_count=5)
    template.functions["TrunkValidationFunction"].sqs_events[0].batch_size
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import yaml

from wfm_publish_local.specs import (
    ApiEvent,
    FunctionSpec,
    KeyElement,
    LayerSpec,
    ParameterSpec,
    QueueSpec,
    Redrive,
    RuleEvent,
    ScheduleEvent,
    SecretSpec,
    SqsEvent,
    StreamEvent,
    TableSpec,
)

__all__ = ["Template", "TemplateError", "load_yaml"]


class TemplateError(ValueError):
    """The template is not what the local stack can read (a missing property, a bad reference)."""


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
                default=None if default is None else scalar_text(default),
                allowed_values=tuple(scalar_text(v) for v in spec.get("AllowedValues") or ()),
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
                            state=ev.get("State"),
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


def scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
