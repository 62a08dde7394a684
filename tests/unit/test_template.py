"""template.yaml: parses, keeps the project's invariants, and passes cfn-lint and `sam validate --lint`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from wfm_publish_local.intrinsics import ResolutionError, Resolver
from wfm_publish_local.layer import layer_build
from wfm_publish_local.runner.scheduler import schedule_input
from wfm_publish_local.template import Template, TemplateError, load_yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
SAM = ROOT / ".venv-sam" / "bin" / "sam"
CFN_LINT = ROOT / ".venv" / "bin" / "cfn-lint"

SQS_FUNCTIONS = {
    "TrunkValidationFunction": "ValidationQueue",
    "ConflictRetryFunction": "ConflictQueue",
    "WeeklyUnitFunction": "WeeklyQueue",
}


@pytest.fixture(scope="module")
def template() -> Template:
    return Template.load(TEMPLATE)


# ---------------------------------------------------------------- parsing


def test_short_form_tags_load_as_long_form(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(
        """
Resources:
  X:
    Type: AWS::SQS::Queue
    Properties:
      A: !Ref P
      B: !GetAtt Q.Arn
      C: !Sub "${P}-x"
      D: !If [Cond, !Ref P, !Ref "AWS::NoValue"]
      E: !Join [",", [a, b]]
      F: !Select [1, !Split [",", "a,b"]]
      G: !GetAtt [Q, QueueName]
      H: !Not [!Equals [!Ref P, ""]]
      I: !Condition Cond
"""
    )
    props = load_yaml(path)["Resources"]["X"]["Properties"]
    assert props["A"] == {"Ref": "P"}
    assert props["B"] == {"Fn::GetAtt": ["Q", "Arn"]}
    assert props["C"] == {"Fn::Sub": "${P}-x"}
    assert props["D"] == {"Fn::If": ["Cond", {"Ref": "P"}, {"Ref": "AWS::NoValue"}]}
    assert props["E"] == {"Fn::Join": [",", ["a", "b"]]}
    assert props["F"] == {"Fn::Select": [1, {"Fn::Split": [",", "a,b"]}]}
    assert props["G"] == {"Fn::GetAtt": ["Q", "QueueName"]}
    assert props["H"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "P"}, ""]}]}
    assert props["I"] == {"Condition": "Cond"}


def test_contract_resources_exist(template: Template) -> None:
    """The logical ids docs/architecture.md names."""
    expected = {
        "JobsTable": "AWS::DynamoDB::Table",
        "ValidationQueue": "AWS::SQS::Queue",
        "ValidationDLQ": "AWS::SQS::Queue",
        "ConflictQueue": "AWS::SQS::Queue",
        "ConflictDLQ": "AWS::SQS::Queue",
        "GenesysCredentials": "AWS::SecretsManager::Secret",
        "CommonLayer": "AWS::Serverless::LayerVersion",
        "PublishApi": "AWS::Serverless::Api",
        "PublishTriggerFunction": "AWS::Serverless::Function",
        "TrunkValidationFunction": "AWS::Serverless::Function",
        "ConflictRetryFunction": "AWS::Serverless::Function",
    }
    assert {lid: template.resource_type(lid) for lid in expected} == expected


def test_parameters_and_defaults(template: Template) -> None:
    values = template.parameter_values()
    assert values["Stage"] == "dev"
    assert template.parameters["Stage"].allowed_values == ("dev", "prod")
    assert values["GenesysRegion"] == "us-east-1"
    assert values["GenesysBaseUrl"] == ""
    assert values["SettleWindowSeconds"] == "30"
    assert values["JobDeadlineSeconds"] == "28800"
    assert values["WeeklyScheduleExpression"].startswith("cron(")
    assert values["WeeklyScheduleTimezone"] == "Europe/London"
    assert "LogLevel" in values
    with pytest.raises(TemplateError, match="unknown parameter"):
        template.parameter_values({"Nope": "x"})
    with pytest.raises(TemplateError, match="not one of"):
        template.parameter_values({"Stage": "qa"})


def test_global_environment_is_the_contract(template: Template) -> None:
    contract = {
        "POWERTOOLS_SERVICE_NAME",
        "POWERTOOLS_LOG_LEVEL",
        "POWERTOOLS_METRICS_NAMESPACE",
        "JOBS_TABLE",
        "VALIDATION_QUEUE_URL",
        "CONFLICT_QUEUE_URL",
        "GENESYS_REGION",
        "GENESYS_BASE_URL",
        "GENESYS_CREDENTIALS_SECRET",
        "SETTLE_WINDOW_SECONDS",
        "JOB_DEADLINE_SECONDS",
        "JOB_TTL_DAYS",
    }
    for function in template.functions.values():
        assert contract <= set(function.environment), function.logical_id
        assert function.environment["JOBS_TABLE"] == {"Ref": "JobsTable"}
        assert function.environment["VALIDATION_QUEUE_URL"] == {"Ref": "ValidationQueue"}
        assert function.environment["CONFLICT_QUEUE_URL"] == {"Ref": "ConflictQueue"}
        assert function.environment["GENESYS_CREDENTIALS_SECRET"] == {"Ref": "GenesysCredentials"}
        assert function.environment["POWERTOOLS_SERVICE_NAME"] == "wfm-publish"
        # No pydantic plugin scan at the first validator of a cold start (the functions use none).
        assert function.environment["PYDANTIC_DISABLE_PLUGINS"] == "__all__"


def test_functions_runtime_and_handlers(template: Template) -> None:
    functions = template.functions
    assert set(functions) == {
        "PublishTriggerFunction",
        "TrunkValidationFunction",
        "ConflictRetryFunction",
        "NotifierFunction",
        "DeadLettersFunction",
        "WeeklyUnitFunction",
        "WatchdogFunction",
        "GenesysEventsFunction",
        "AnnouncerFunction",
    }
    for name, function in functions.items():
        assert function.runtime in {"python3.12", "python3.13"}
        assert function.properties["Architectures"] == ["arm64"]
        assert function.properties["Tracing"] == "Active"
        assert function.timeout == 30
        # ServiceNow waits on the API's answer; the rest wait on I/O (template.yaml).
        assert function.memory_size == (512 if name == "PublishTriggerFunction" else 256)
        assert function.handler == "app.handler"
        assert function.code_uri.startswith("functions/")
        assert {"Ref": "CommonLayer"} in function.layers


def test_publish_trigger_events(template: Template) -> None:
    trigger = template.functions["PublishTriggerFunction"]
    assert {(e.method, e.path, e.rest_api_id) for e in trigger.api_events} == {
        ("POST", "/publishes", "PublishApi"),
        ("GET", "/publishes/{publishId}", "PublishApi"),
        ("POST", "/publishes/{publishId}/cancel", "PublishApi"),
        ("GET", "/publishes/{publishId}/capacity", "PublishApi"),
        ("GET", "/schedules/{scheduleId}/publish", "PublishApi"),
    }
    (weekly,) = trigger.schedule_events
    assert weekly.type == "ScheduleV2"
    assert weekly.schedule_expression == {"Ref": "WeeklyScheduleExpression"}
    assert weekly.timezone == {"Ref": "WeeklyScheduleTimezone"}
    # The run's due time travels with it, so a retried delivery works out the same weeks.
    assert json.loads(weekly.input or "") == {
        "source": "weekly",
        "businessUnitIds": "all",
        "weeksAhead": 1,
        "scheduledTime": "<aws.scheduler.scheduled-time>",
    }
    assert trigger.environment["API_SIGNING_SECRET"] == {"Ref": "ApiSigningSecret"}


def test_api_needs_a_key_with_a_usage_plan(template: Template) -> None:
    auth = template.properties("PublishApi")["Auth"]
    assert auth["ApiKeyRequired"] is True
    plan = auth["UsagePlan"]
    assert plan["CreateUsagePlan"] == "PER_API"
    assert set(plan["Throttle"]) == {"RateLimit", "BurstLimit"}
    assert template.outputs["ApiKeyId"]["Value"] == {"Ref": "PublishApiApiKey"}  # SAM's generated key


def test_notifier_reads_the_table_stream_with_retries_bisect_and_a_dlq(template: Template) -> None:
    assert template.table.properties["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}
    notifier = template.functions["NotifierFunction"]
    (source,) = notifier.stream_events
    assert source.table == "JobsTable"
    assert source.starting_position == "TRIM_HORIZON"
    assert source.bisect_on_error
    assert 0 < source.maximum_retry_attempts <= 10
    assert 0 < source.maximum_record_age <= 24 * 3600  # within the stream's retention
    assert source.report_batch_item_failures
    assert source.on_failure == "NotifierDLQ"
    ended, removed, progress = source.filters
    from wfm_publish.models import JobStatus

    # Every terminal status, in the order the model lists them (a new one must reach the callback).
    terminal = [s.value for s in JobStatus if s.terminal]
    assert ended["eventName"] == ["MODIFY"]
    assert ended["dynamodb"]["NewImage"]["status"]["S"] == terminal
    assert ended["dynamodb"]["OldImage"]["status"]["S"] == [{"anything-but": terminal}]
    # A job removed before it ended (TTL, a person) never passes unseen (issue 9, case 4).
    assert removed["eventName"] == ["REMOVE"]
    assert removed["dynamodb"]["OldImage"]["status"]["S"] == [{"anything-but": terminal}]
    # progress callbacks: every write while PUBLISHING (a move into it, and a join while it lasts)
    assert progress["dynamodb"]["NewImage"]["status"]["S"] == ["PUBLISHING"]
    assert "OldImage" not in progress["dynamodb"]
    assert notifier.environment["SERVICENOW_CREDENTIALS_SECRET"] == {"Ref": "ServiceNowCredentials"}
    assert notifier.environment["SERVICENOW_INSTANCE_URL"] == {"Ref": "ServiceNowInstanceUrl"}


def test_servicenow_secrets_are_generated_placeholders(template: Template) -> None:
    signing = template.secrets["ApiSigningSecret"]
    assert (signing.generate_template, signing.generate_key) == ("{}", "hmacSecret")
    credentials = template.secrets["ServiceNowCredentials"]
    assert json.loads(credentials.generate_template or "") == {"username": "set-me"}
    assert credentials.generate_key == "password"
    assert template.properties("PublishApi")["StageName"] == {"Ref": "Stage"}


# ---------------------------------------------------------------- queues


def test_sqs_event_sources(template: Template) -> None:
    for lid, queue in SQS_FUNCTIONS.items():
        (source,) = template.functions[lid].sqs_events
        assert source.queue == queue
        assert source.batch_size == 10
        assert source.report_batch_item_failures
        assert 0 < source.maximum_batching_window <= 5


def test_every_consumed_queue_has_a_dlq(template: Template) -> None:
    queues = template.queues
    consumed = {e.queue for f in template.functions.values() for e in f.sqs_events}
    assert consumed == {"ValidationQueue", "ConflictQueue", "WeeklyQueue"}
    for lid in consumed:
        redrive = queues[lid].redrive
        assert redrive is not None, f"{lid} has no RedrivePolicy"
        assert redrive.target in queues
        assert redrive.max_receive_count == 5
    assert queues["ValidationQueue"].redrive.target == "ValidationDLQ"  # type: ignore[union-attr]
    assert queues["ConflictQueue"].redrive.target == "ConflictDLQ"  # type: ignore[union-attr]
    assert queues["WeeklyQueue"].redrive.target == "WeeklyDLQ"  # type: ignore[union-attr]


def test_dlqs_keep_messages_14_days(template: Template) -> None:
    for lid in template.dead_letter_queues | {"ScheduleDLQ", "NotifierDLQ", "AnnouncerDLQ"}:
        assert template.queues[lid].message_retention_period == 14 * 24 * 3600, lid


def test_visibility_timeout_covers_six_function_timeouts(template: Template) -> None:
    """AWS's rule for SQS event sources: >= 6 x the function timeout (+ the batching window)."""
    for function in template.functions.values():
        for source in function.sqs_events:
            queue = template.queues[source.queue]
            need = 6 * function.timeout + source.maximum_batching_window
            assert queue.visibility_timeout >= need, f"{source.queue}: {queue.visibility_timeout} < {need}"


def test_queues_are_encrypted(template: Template) -> None:
    for lid, queue in template.queues.items():
        assert queue.properties.get("SqsManagedSseEnabled") is True, lid


def test_dlq_alarms(template: Template) -> None:
    alarmed = set()
    for props in template.of_type("AWS::CloudWatch::Alarm").values():
        if props.get("MetricName") == "ApproximateNumberOfMessagesVisible":
            assert props["ComparisonOperator"] == "GreaterThanThreshold"
            assert props["Threshold"] == 0
            assert props["AlarmActions"]
            dimension = props["Dimensions"][0]["Value"]
            alarmed.add(dimension["Fn::GetAtt"][0])
    assert template.dead_letter_queues <= alarmed
    assert {"ScheduleDLQ", "NotifierDLQ", "AnnouncerDLQ"} <= alarmed


# ---------------------------------------------------------------- table and secret


def test_jobs_table(template: Template) -> None:
    table = template.table
    assert table.logical_id == "JobsTable"
    assert [(k.attribute_name, k.key_type) for k in table.key_schema] == [("pk", "HASH")]
    assert table.attribute_definitions == {
        "pk": "S",
        "dueShard": "S",
        "dueAt": "N",
        "status": "S",
        "createdAt": "N",
    }
    # The watchdog's index (overdue jobs, no scan) and the operator's (jobs by status), keys only.
    indexes = {i["IndexName"]: i for i in table.global_indexes}
    assert [k["AttributeName"] for k in indexes["due"]["KeySchema"]] == ["dueShard", "dueAt"]
    assert [k["AttributeName"] for k in indexes["byStatus"]["KeySchema"]] == ["status", "createdAt"]
    assert all(i["Projection"]["ProjectionType"] == "KEYS_ONLY" for i in indexes.values())
    assert table.hash_key == "pk"
    assert table.ttl_attribute == "expiresAt"
    assert table.billing_mode == "PAY_PER_REQUEST"
    assert table.point_in_time_recovery
    assert table.sse_enabled


def test_genesys_secret_is_generated_placeholder(template: Template) -> None:
    secret = template.secrets["GenesysCredentials"]
    assert secret.secret_string is None
    assert json.loads(secret.generate_template or "") == {"clientId": "set-me"}
    assert secret.generate_key == "clientSecret"


# ---------------------------------------------------------------- least privilege


def _iam_actions(value: Any) -> list[str]:
    """Every Action / NotAction string under value (inline IAM policies, statements)."""
    found: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if key in {"Action", "NotAction"}:
                found += [item] if isinstance(item, str) else [a for a in item if isinstance(a, str)]
            else:
                found += _iam_actions(item)
    elif isinstance(value, list):
        for item in value:
            found += _iam_actions(item)
    return found


def test_no_wildcard_iam_actions(template: Template) -> None:
    actions: list[str] = []
    for function in template.functions.values():
        actions += _iam_actions(list(function.policies))
    for props in template.of_type("AWS::IAM::Role", "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy").values():
        actions += _iam_actions(props)
    assert not [a for a in actions if "*" in a]
    for function in template.functions.values():
        for policy in function.policies:
            assert isinstance(policy, dict), f"{function.logical_id}: managed policy by name {policy!r}"


def _policy_targets(template: Template, lid: str) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for policy in template.functions[lid].policies:
        ((name, args),) = policy.items()
        ref = next(iter(args.values()))
        # a plain name (EventBridgePutEventsPolicy's EventBusName), a Ref or a GetAtt
        target = ref if isinstance(ref, str) else ref.get("Ref") or ref["Fn::GetAtt"][0]
        out.setdefault(name, set()).add(target)
    return out


def test_policies_match_what_each_function_does(template: Template) -> None:
    assert _policy_targets(template, "PublishTriggerFunction") == {
        "DynamoDBCrudPolicy": {"JobsTable"},
        "SQSSendMessagePolicy": {"ValidationQueue", "WeeklyQueue"},  # intake, the weekly fan-out
        # the signing secret (API), the Genesys client (the weekly run lists business units)
        "AWSSecretsManagerGetSecretValuePolicy": {"ApiSigningSecret", "GenesysCredentials"},
    }
    assert _policy_targets(template, "NotifierFunction") == {
        "DynamoDBCrudPolicy": {"JobsTable"},  # records the delivery on the job
        "AWSSecretsManagerGetSecretValuePolicy": {"ServiceNowCredentials"},
        "SQSSendMessagePolicy": {"NotifierDLQ"},  # the OnFailure destination
    }
    assert _policy_targets(template, "AnnouncerFunction") == {
        "EventBridgePutEventsPolicy": {"default"},  # events:PutEvents on the default bus, nothing else
        "SQSSendMessagePolicy": {"AnnouncerDLQ"},  # the OnFailure destination
    }
    assert _policy_targets(template, "DeadLettersFunction") == {
        "DynamoDBCrudPolicy": {"JobsTable"},  # ends the stranded jobs
        "SQSPollerPolicy": {"ValidationDLQ", "ConflictDLQ"},  # reads and deletes the letters it settles
        # a job whose update may have landed: its schedule read (Genesys), or moved on to confirm
        "SQSSendMessagePolicy": {"ValidationQueue"},
        "AWSSecretsManagerGetSecretValuePolicy": {"GenesysCredentials"},
    }
    assert _policy_targets(template, "WeeklyUnitFunction") == {
        "DynamoDBCrudPolicy": {"JobsTable"},
        # intake, and its own queue (a 429's wait, a hop past SQS's 15-minute delay)
        "SQSSendMessagePolicy": {"ValidationQueue", "WeeklyQueue"},
        "AWSSecretsManagerGetSecretValuePolicy": {"GenesysCredentials"},
    }
    for lid in ("TrunkValidationFunction", "ConflictRetryFunction"):
        assert _policy_targets(template, lid) == {
            "DynamoDBCrudPolicy": {"JobsTable"},
            "SQSSendMessagePolicy": {"ValidationQueue", "ConflictQueue"},
            "AWSSecretsManagerGetSecretValuePolicy": {"GenesysCredentials"},
        }


def test_self_sending_functions_allow_recursive_loops(template: Template) -> None:
    """Lambda stops SQS->Lambda->SQS chains after ~16 hops unless RecursiveLoop is Allow."""
    for lid in SQS_FUNCTIONS:
        assert template.functions[lid].properties.get("RecursiveLoop") == "Allow"


def test_outputs(template: Template) -> None:
    assert {"ApiUrl", "ValidationQueueUrl", "ConflictQueueUrl", "JobsTableName"} <= set(template.outputs)


# ---------------------------------------------------------------- layer


def test_layer_layout(template: Template) -> None:
    """sam build runs the layer's Makefile (BuildMethod: makefile) in ContentUri: it builds python/ with
    wfm_publish, the requirements, and their bytecode (layers/common/build.py); the local runner imports
    from ContentUri's python/."""
    layer = template.layers["CommonLayer"]
    assert layer.build_method == "makefile"
    content = ROOT / layer.content_uri
    assert "build-CommonLayer:" in (content / "Makefile").read_text()
    assert (content / "python" / "wfm_publish" / "__init__.py").is_file()
    assert (content / "requirements.txt").is_file()
    metadata = template.resources["CommonLayer"]["Metadata"]
    assert metadata["BuildArchitecture"] == "arm64"
    runtimes = {f.runtime for f in template.functions.values()}
    assert runtimes == {"python3.12"} == {f"python{'.'.join(map(str, layer_build.RUNTIME))}"}
    assert template.resources["CommonLayer"]["Properties"]["CompatibleRuntimes"] == ["python3.12"]


def test_the_built_layer_carries_bytecode_for_every_module(tmp_path: Path) -> None:
    """Lambda's /opt is read-only: a module without bytecode is compiled again at every cold start."""
    python = layer_build.build(tmp_path, from_environment=True)
    sources = [p for p in python.rglob("*.py") if "__pycache__" not in p.parts]
    assert {"wfm_publish", "pydantic", "aws_lambda_powertools", "requests"} <= {
        p.relative_to(python).parts[0] for p in sources
    }
    tag = sys.implementation.cache_tag
    missing = [p for p in sources if not (p.parent / "__pycache__" / f"{p.stem}.{tag}.pyc").is_file()]
    assert not missing, f"no bytecode for {missing[:5]}"
    header = (python / "wfm_publish" / "__pycache__" / f"models.{tag}.pyc").read_bytes()[:8]
    assert int.from_bytes(header[4:8], "little") == 0b01  # hash-based, unchecked (PEP 552)


def _names(requirements: list[str]) -> dict[str, str]:
    out = {}
    for raw in requirements:
        line = raw.split("#", 1)[0].strip()
        if line:
            name = re.split(r"[<>=!~\[; ]", line, maxsplit=1)[0].lower()
            out[name] = line[len(name) :].strip()
    return out


def test_layer_requirements_mirror_pyproject(template: Template) -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    runtime = _names(pyproject["project"]["dependencies"])
    runtime.pop("boto3")  # the Lambda runtime provides it
    layer = ROOT / template.layers["CommonLayer"].content_uri / "requirements.txt"
    assert _names(layer.read_text().splitlines()) == runtime


# ---------------------------------------------------------------- resolver


def test_resolver_turns_intrinsics_into_local_values(template: Template) -> None:
    resolver = Resolver(
        template,
        refs={"JobsTable": "jobs-local", "PublishApi": "abc123"},
        attributes={("ValidationQueue", "QueueName"): "vq-local"},
        parameters=template.parameter_values({"Stage": "prod"}),
    )
    assert resolver.resolve({"Ref": "JobsTable"}) == "jobs-local"
    assert resolver.resolve({"Ref": "Stage"}) == "prod"
    assert resolver.resolve({"Fn::GetAtt": ["ValidationQueue", "QueueName"]}) == "vq-local"
    assert resolver.resolve(template.outputs["ApiUrl"]["Value"]) == (
        "https://abc123.execute-api.us-east-1.amazonaws.com/prod"
    )
    assert resolver.resolve({"Fn::Sub": "${ValidationQueue.QueueName}/${!Literal}"}) == "vq-local/${Literal}"
    assert resolver.resolve({"Fn::Sub": ["${A}-${Stage}", {"A": {"Ref": "JobsTable"}}]}) == "jobs-local-prod"
    assert resolver.resolve({"Fn::If": ["IsProd", 365, 30]}) == 365
    assert resolver.condition("HasAlarmEmail") is False
    assert resolver.resolve({"Fn::Join": ["-", ["a", {"Ref": "Stage"}]]}) == "a-prod"
    assert resolver.resolve({"Fn::Select": [1, {"Fn::Split": [",", "x,y,z"]}]}) == "y"
    assert resolver.resolve([1, {"Ref": "AWS::NoValue"}, 2]) == [1, 2]
    assert resolver.resolve({"A": {"Ref": "AWS::NoValue"}, "B": 1}) == {"B": 1}
    assert resolver.resolve_str(True) == "true"
    assert resolver.resolve_str({"Ref": "SettleWindowSeconds"}) == "30"
    with pytest.raises(ResolutionError, match="ConflictQueue"):
        resolver.resolve({"Ref": "ConflictQueue"})
    with pytest.raises(ResolutionError):
        resolver.resolve({"Fn::GetAtt": ["ConflictQueue", "Arn"]})


def test_globals_merge_like_sam(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(
        """
Globals:
  Function:
    Timeout: 30
    Layers: [!Ref L]
    Environment:
      Variables: {A: "1", B: "2"}
Resources:
  F:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: f/
      Handler: pkg.mod.handler
      Timeout: 5
      Layers: [!Ref M]
      Environment:
        Variables: {B: "3", C: !Ref L}
"""
    )
    function = Template.load(path).functions["F"]
    assert function.timeout == 5
    assert function.memory_size == 128  # SAM's default
    assert function.layers == ({"Ref": "L"}, {"Ref": "M"})
    assert function.environment == {"A": "1", "B": "3", "C": {"Ref": "L"}}
    assert (function.handler_module, function.handler_function) == ("pkg.mod", "handler")


# ---------------------------------------------------------------- samconfig and events


def test_samconfig_environments() -> None:
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    for env, stage in (("default", "dev"), ("prod", "prod")):
        deploy = config[env]["deploy"]["parameters"]
        assert config[env]["global"]["parameters"]["stack_name"] == f"wfm-publish-{stage}"
        assert config[env]["global"]["parameters"]["region"]
        assert deploy["capabilities"] == "CAPABILITY_IAM"
        assert deploy["resolve_s3"] is True
        assert f'Stage="{stage}"' in deploy["parameter_overrides"]


def test_sample_events_are_real_format() -> None:
    events = ROOT / "events"
    post = json.loads((events / "api_post_publish.json").read_text())
    assert (post["httpMethod"], post["resource"], post["path"]) == ("POST", "/publishes", "/publishes")
    assert post["headers"]["Idempotency-Key"]
    assert post["multiValueHeaders"]["Idempotency-Key"] == [post["headers"]["Idempotency-Key"]]
    assert post["isBase64Encoded"] is False
    body = json.loads(post["body"])
    assert body["scheduleId"] == "sched-demo"
    assert body["telephonySync"] == {"enabled": True, "retryCount": 3, "delayMs": 5000}
    assert post["requestContext"]["resourcePath"] == "/publishes"

    get = json.loads((events / "api_get_publish.json").read_text())
    assert get["resource"] == "/publishes/{publishId}"
    assert get["pathParameters"] == {"publishId": get["path"].rsplit("/", 1)[1]}
    assert get["body"] is None

    sqs = json.loads((events / "sqs_validation.json").read_text())
    (record,) = sqs["Records"]
    assert record["eventSource"] == "aws:sqs"
    assert {
        "ApproximateReceiveCount",
        "SentTimestamp",
        "SenderId",
        "ApproximateFirstReceiveTimestamp",
    } <= set(record["attributes"])
    assert set(json.loads(record["body"])) >= {"jobId", "ticket", "step"}

    weekly = json.loads((events / "weekly_schedule.json").read_text())
    trigger = Template.load(TEMPLATE).functions["PublishTriggerFunction"]
    delivered = schedule_input(
        trigger.schedule_events[0].input,
        schedule_arn="arn:aws:scheduler:us-east-1:123456789012:schedule/default/weekly",
        scheduled_time=datetime.fromisoformat(weekly["scheduledTime"]),
    )
    assert weekly == delivered  # the template's Input as EventBridge Scheduler delivers it


# ---------------------------------------------------------------- linters


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "SAM_CLI_TELEMETRY": "0",
        "__SAM_CLI_APP_DIR": str(ROOT / ".sam-cli"),
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    return subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def test_cfn_lint_passes() -> None:
    assert CFN_LINT.exists(), f"{CFN_LINT} is missing: run `make dev`"
    result = _run([str(CFN_LINT), "template.yaml"])
    assert result.returncode == 0, result.stdout + result.stderr


def test_sam_validate_lint_passes() -> None:
    if not SAM.exists():
        pytest.fail(f"{SAM} is missing: run `make .venv-sam/bin/sam` (make test does it before pytest)")
    result = _run([str(SAM), "validate", "--lint", "--template-file", "template.yaml"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is a valid SAM Template" in result.stdout + result.stderr


def test_genesys_events_exist_only_with_a_partner_event_bus(template: Template) -> None:
    function = template.functions["GenesysEventsFunction"]
    assert function.condition == "HasGenesysEventBus"
    assert template.resources["GenesysEventsLogGroup"]["Condition"] == "HasGenesysEventBus"
    (rule,) = function.rule_events
    assert rule.event_bus == {"Ref": "GenesysEventBusName"}
    assert rule.pattern == {
        "detail-type": [
            {"prefix": "v2.workforcemanagement.businessunits."},
            {"prefix": "v2.workforcemanagement.users."},
            {"prefix": "v2.telephony.providers.edges."},  # Edges, their software updates, trunks
        ]
    }
    # Telephony events wake jobs: a message on the validation queue, nothing else.
    assert _policy_targets(template, "GenesysEventsFunction") == {
        "DynamoDBCrudPolicy": {"JobsTable"},
        "SQSSendMessagePolicy": {"ValidationQueue"},
    }
    # The pipeline lengthens its polling only where events arrive.
    telephony = template.data["Globals"]["Function"]["Environment"]["Variables"]["TELEPHONY_EVENTS"]
    assert telephony == {"Fn::If": ["HasGenesysEventBus", "true", "false"]}
    assert template.parameter_values()["GenesysEventBusName"] == ""
    resolve = Resolver(template, parameters=template.parameter_values())
    assert resolve.condition("HasGenesysEventBus") is False
    bus = "aws.partner/genesys.com/cloud/org-1/wfm"
    resolve = Resolver(template, parameters=template.parameter_values({"GenesysEventBusName": bus}))
    assert resolve.condition("HasGenesysEventBus") is True


# ---------------------------------------------------------------- production settings (issue 11)


def test_every_function_has_bounded_concurrency(template: Template) -> None:
    params = template.parameters
    for function in template.functions.values():
        reserved = function.properties.get("ReservedConcurrentExecutions")
        assert reserved is not None, f"{function.logical_id} can take the whole account's concurrency"
        if isinstance(reserved, dict):
            assert reserved["Ref"] in params, function.logical_id
    # A throttled SQS batch goes back to its queue and counts towards maxReceiveCount (the DLQ): the
    # queue functions' reservation must cover their event sources' MaximumConcurrency.
    pipeline_min = int(template.data["Parameters"]["PipelineConcurrency"]["MinValue"])
    for lid in SQS_FUNCTIONS:
        reserved = template.functions[lid].properties["ReservedConcurrentExecutions"]
        if lid == "WeeklyUnitFunction":
            floor = int(reserved)  # its own: two, as its MaximumConcurrency (the pace is the fan-out's)
        else:
            assert reserved == {"Ref": "PipelineConcurrency"}
            floor = pipeline_min
        (source,) = template.functions[lid].sqs_events
        maximum = template.functions[lid].properties["Events"][source.name]["Properties"]["ScalingConfig"]
        assert floor >= maximum["MaximumConcurrency"], lid


def test_api_access_log_names_the_request_and_the_caller(template: Template) -> None:
    setting = template.properties("PublishApi")["AccessLogSetting"]
    assert setting["DestinationArn"] == {"Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]}
    line = json.loads(setting["Format"].replace("\n", ""))  # one JSON object per request
    assert line["requestId"] == "$context.requestId"
    assert line["apiKeyId"] == "$context.identity.apiKeyId"
    assert line["sourceIp"] == "$context.identity.sourceIp"
    assert line["status"] == "$context.status"
    assert template.properties("ApiAccessLogGroup")["RetentionInDays"]
    assert template.resources["ApiGatewayAccount"]["Condition"] == "CreateApiGatewayLoggingRole"
    # The stage (after the RestApi SAM generates from PublishApi) waits for the account's log role
    # when this stack sets it; the handle exists in both cases, so the DependsOn always resolves.
    assert template.resources["PublishApi"]["DependsOn"] == "ApiGatewayAccountReady"
    ready = template.resources["ApiGatewayAccountReady"]
    assert "Condition" not in ready
    assert ready["Metadata"]["Account"] == {
        "Fn::If": ["CreateApiGatewayLoggingRole", {"Ref": "ApiGatewayAccount"}, ""]
    }


def test_alarm_topic_is_encrypted_with_a_key_cloudwatch_may_use(template: Template) -> None:
    """alias/aws/sns would drop every alarm notification: its policy cannot grant CloudWatch."""
    assert template.properties("AlarmTopic")["KmsMasterKeyId"] == {"Ref": "AlarmTopicKey"}
    key = template.properties("AlarmTopicKey")
    assert key["EnableKeyRotation"] is True
    (cloudwatch,) = [
        s
        for s in key["KeyPolicy"]["Statement"]
        if s["Principal"].get("Service") == "cloudwatch.amazonaws.com"
    ]
    assert set(cloudwatch["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}
    assert "aws:SourceAccount" in cloudwatch["Condition"]["StringEquals"]


def test_announcer_hears_every_status_change_and_nothing_else(template: Template) -> None:
    """The announcer's filters, against every (old, new) status pair: a change passes, a write that keeps
    the status does not. QUEUED is only ever the first status (the job's INSERT)."""
    from wfm_publish.models import JobStatus
    from wfm_publish_local.runner.patterns import filter_matches

    (source,) = template.functions["AnnouncerFunction"].stream_events
    assert source.on_failure == "AnnouncerDLQ" and source.report_batch_item_failures
    assert len(source.filters) <= 5  # Lambda's default quota of filters per event source mapping

    def passes(record: dict[str, Any]) -> bool:
        return any(filter_matches(p, record) for p in source.filters)

    def modify(old: str, new: str, pk: str = "job#1") -> dict[str, Any]:
        image = {"Keys": {"pk": {"S": pk}}}
        image["NewImage"] = {"pk": {"S": pk}, "status": {"S": new}}
        image["OldImage"] = {"pk": {"S": pk}, "status": {"S": old}}
        return {"eventName": "MODIFY", "dynamodb": image}

    for old in JobStatus:
        for new in JobStatus:
            if new is JobStatus.QUEUED or (old.terminal and new.terminal):
                continue  # a job is created QUEUED and never returns to it; an ended job never moves
            assert passes(modify(old.value, new.value)) is (old is not new), (old, new)
    insert = {"eventName": "INSERT", "dynamodb": {"Keys": {"pk": {"S": "job#1"}}, "NewImage": {}}}
    assert passes(insert)
    assert not passes(modify("QUEUED", "WAITING", pk="schedule#s"))
    assert not passes({"eventName": "REMOVE", "dynamodb": {"Keys": {"pk": {"S": "job#1"}}}})
