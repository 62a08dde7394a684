"""The secrets the functions read, from Secrets Manager (moto server over HTTP): once per max age."""

from __future__ import annotations

import json
import socket
import time
import uuid
from typing import Any

import boto3
import botocore.config
import pytest

from tests.support.handlers import loaded_handler
from wfm_publish import errors
from wfm_publish.config import Settings
from wfm_publish.errors import ConfigurationError
from wfm_publish.secret_reader import SECRET_MAX_AGE, SecretReader
from wfm_publish.services import Services
from wfm_publish.signature import signed_headers
from wfm_publish_local.faultproxy import FaultKind, FaultPlan, FaultProxy, FaultRule
from wfm_publish_local.runner.apigateway import api_gateway_event
from wfm_publish_local.runner.function import LambdaContext

PASSWORD = "s3cr3t-value-never-shown"


@pytest.fixture
def secrets(moto_url: str) -> Any:
    return boto3.client("secretsmanager", endpoint_url=moto_url)


def _reader(secrets: Any, now: list[float]) -> SecretReader:
    return SecretReader(lambda: secrets, monotonic=lambda: now[0])


def test_a_secret_is_read_once_per_max_age_so_a_rotation_is_picked_up(secrets: Any) -> None:
    name = f"servicenow-{uuid.uuid4().hex[:8]}"
    secrets.create_secret(Name=name, SecretString=json.dumps({"v": 1}))
    now = [1000.0]
    reader = _reader(secrets, now)
    assert json.loads(reader.text(name, "ServiceNow credentials")) == {"v": 1}
    secrets.put_secret_value(SecretId=name, SecretString=json.dumps({"v": 2}))
    now[0] += SECRET_MAX_AGE - 1
    assert json.loads(reader.text(name, "ServiceNow credentials")) == {"v": 1}  # kept
    assert reader.reads == 1
    now[0] += 1
    assert json.loads(reader.text(name, "ServiceNow credentials")) == {"v": 2}  # rotated
    assert reader.reads == 2


def test_a_binary_secret_is_read_as_text(secrets: Any) -> None:
    name = f"signing-{uuid.uuid4().hex[:8]}"
    secrets.create_secret(Name=name, SecretBinary=json.dumps({"hmacSecret": PASSWORD}).encode())
    assert json.loads(_reader(secrets, [0.0]).text(name, "request-signing")) == {"hmacSecret": PASSWORD}


def test_a_missing_secret_is_a_configuration_error_naming_it_and_aws_reason(secrets: Any) -> None:
    reader = _reader(secrets, [0.0])
    refused = r"Genesys credentials secret 'genesys/absent'.*ResourceNotFound"
    with pytest.raises(ConfigurationError, match=refused):
        reader.text("genesys/absent", "Genesys credentials")
    with pytest.raises(ConfigurationError):  # a failure is not kept: the next read asks again
        reader.text("genesys/absent", "Genesys credentials")
    assert reader.reads == 2


def test_no_error_carries_the_value_of_a_secret_it_could_not_use(secrets: Any) -> None:
    from wfm_publish.genesys_auth import credentials_from

    name = f"genesys-{uuid.uuid4().hex[:8]}"
    secrets.create_secret(Name=name, SecretString=f"clientId={PASSWORD}")  # not JSON
    with pytest.raises(ConfigurationError) as caught:
        credentials_from(_reader(secrets, [0.0]).text(name, "Genesys credentials"))
    assert PASSWORD not in repr(caught.value) and caught.value.__cause__ is None
    assert caught.value.__suppress_context__


# --- a Secrets Manager that fails for a moment is not a misconfigured deployment -------------------------


def _through(proxy: FaultProxy) -> SecretReader:
    """A reader whose client reaches moto server through the fault proxy, retrying as botocore does."""
    client = boto3.client("secretsmanager", endpoint_url=proxy.url)
    return SecretReader(lambda: client)


@pytest.mark.parametrize(
    ("rule", "reason"),
    [
        (FaultRule(FaultKind.THROTTLE, 1.0, "secretsmanager", {"GetSecretValue"}), "ThrottlingException"),
        (FaultRule(FaultKind.ERROR_BEFORE, 1.0, "secretsmanager", {"GetSecretValue"}, status=503), "503"),
    ],
    ids=["throttled", "5xx"],
)
def test_a_throttled_or_failing_read_is_unavailable_not_misconfigured(
    secrets: Any, moto_url: str, rule: FaultRule, reason: str
) -> None:
    name = f"signing-{uuid.uuid4().hex[:8]}"
    secrets.create_secret(Name=name, SecretString=json.dumps({"hmacSecret": PASSWORD}))
    # Every attempt faulted: botocore's retries end in the service's own error.
    with FaultProxy(moto_url, FaultPlan([rule], max_in_a_row=1000)) as proxy:
        with pytest.raises(
            errors.SecretUnavailable, match=rf"request-signing secret '{name}'.*{reason}"
        ) as caught:
            _through(proxy).text(name, "request-signing")
        assert proxy.total() >= 2, "botocore did not retry"
    assert not isinstance(caught.value, ConfigurationError)
    assert PASSWORD not in str(caught.value)


def test_an_unreachable_endpoint_is_unavailable(secrets: Any) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    client = boto3.client(
        "secretsmanager",
        endpoint_url=f"http://127.0.0.1:{port}",
        config=botocore.config.Config(retries={"max_attempts": 1}, connect_timeout=1),
    )
    with pytest.raises(errors.SecretUnavailable, match="request-signing secret 'x'"):
        SecretReader(lambda: client).text("x", "request-signing")


def test_a_throttled_signing_secret_answers_503_with_retry_after(
    secrets: Any, moto_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the publish API's handler and its real services: Secrets Manager throttles the read of the
    signing secret past botocore's retries. The truth is "retry shortly", not "misconfigured"."""
    name = f"signing-{uuid.uuid4().hex[:8]}"
    secrets.create_secret(Name=name, SecretString=json.dumps({"hmacSecret": PASSWORD}))
    rule = FaultRule(FaultKind.THROTTLE, 1.0, "secretsmanager", {"GetSecretValue"})
    with (
        FaultProxy(moto_url, FaultPlan([rule], max_in_a_row=1000)) as proxy,
        loaded_handler("publish_trigger") as app,
    ):
        monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", proxy.url)
        settings = Settings(
            jobs_table="unused",
            validation_queue_url="unused",
            conflict_queue_url="unused",
            genesys_base_url="http://127.0.0.1:1",
            genesys_credentials_secret="unused",
            api_signing_secret=name,
        )
        real = Services(settings)
        app.services = lambda: real  # type: ignore[attr-defined]
        answer = app.handler(_signed_get(PASSWORD), _CONTEXT)
    assert answer["statusCode"] == 503, answer["body"]
    body = json.loads(answer["body"])
    assert body["code"] == "UNAVAILABLE" and "retry" in body["message"].lower()
    assert answer["headers"]["Retry-After"]
    assert PASSWORD not in answer["body"] and name not in answer["body"]


def test_a_missing_signing_secret_still_answers_500_misconfigured(
    moto_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with loaded_handler("publish_trigger") as app:
        settings = Settings(
            jobs_table="unused",
            validation_queue_url="unused",
            conflict_queue_url="unused",
            genesys_base_url="http://127.0.0.1:1",
            genesys_credentials_secret="unused",
            api_signing_secret="signing/absent",
        )
        real = Services(settings)
        app.services = lambda: real  # type: ignore[attr-defined]
        answer = app.handler(_signed_get(PASSWORD), _CONTEXT)
    assert answer["statusCode"] == 500, answer["body"]
    assert json.loads(answer["body"])["code"] == "MISCONFIGURED"


_CONTEXT = LambdaContext(
    "publish-trigger", 512, "arn:aws:lambda:us-east-1:123456789012:function:x", "r-1", 30
)


def _signed_get(secret: str) -> dict[str, Any]:
    path = "/publishes/p-1"
    return api_gateway_event(
        method="GET",
        path=path,
        resource="/publishes/{publishId}",
        path_parameters={"publishId": "p-1"},
        headers=list(signed_headers(secret, "GET", path, b"", time.time()).items()),
        query=[],
        body=b"",
        stage="dev",
    )
