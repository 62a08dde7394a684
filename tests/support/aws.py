"""boto3 clients for a local endpoint (moto server, or the fault proxy in front of one)."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config


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
