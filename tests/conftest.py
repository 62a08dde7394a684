"""Shared fixtures: a moto server over HTTP, with resources shaped by template.yaml."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from wfm_publish.store import DynamoJobStore
from wfm_publish_local.template import Template

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    """One moto server for the session; boto3 reaches it through AWS_ENDPOINT_URL, like the functions."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    saved = {
        k: os.environ.get(k)
        for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")
    }
    os.environ.update(
        {
            "AWS_ENDPOINT_URL": url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
    )
    yield url
    server.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture
def store(moto_url: str) -> DynamoJobStore:
    """A fresh jobs table, shaped by the JobsTable declared in template.yaml."""
    spec = Template.load(ROOT / "template.yaml").table
    client = boto3.client("dynamodb", endpoint_url=moto_url)
    name = f"jobs-{uuid.uuid4().hex[:8]}"
    client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": k.attribute_name, "KeyType": k.key_type} for k in spec.key_schema],
        AttributeDefinitions=[
            {"AttributeName": n, "AttributeType": t} for n, t in spec.attribute_definitions.items()
        ],
        BillingMode="PAY_PER_REQUEST",
        GlobalSecondaryIndexes=spec.global_indexes,
    )
    return DynamoJobStore(client, name)
