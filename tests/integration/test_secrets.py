"""The secrets the functions read, from Secrets Manager (moto server over HTTP): once per max age."""

from __future__ import annotations

import json
import uuid
from typing import Any

import boto3
import pytest

from wfm_publish.errors import ConfigurationError
from wfm_publish.secret_reader import SECRET_MAX_AGE, SecretReader

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
