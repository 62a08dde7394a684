"""boto3 clients for a local endpoint (moto server, or the fault proxy in front of one)."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

from wfm_publish_local.embedded import EmbeddedStack


def aws_client(service: str, url: str, config: Config | None = None) -> Any:
    """A client of its own session, with moto's test credentials: nothing read from the environment."""
    return boto3.session.Session().client(
        service,  # type: ignore[call-overload]
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=config,
    )


def written(stack: EmbeddedStack) -> set[str]:
    """The keys of the local stack's table, less what the Genesys events function records of the
    org's own telephony events (`heard#`): the simulated org sends them whatever the API is asked."""
    assert stack.stack is not None
    pages = stack.stack.client("dynamodb").get_paginator("scan").paginate(TableName=stack.stack.table_name)
    keys = {item["pk"]["S"] for page in pages for item in page["Items"]}
    return {k for k in keys if not k.startswith("heard#")}
