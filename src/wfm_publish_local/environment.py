"""The process environment a local stack runs in: boto3 pointed at its endpoint with fake credentials,
the functions' variables set, and every change undone when the stack stops."""

from __future__ import annotations

import os
from collections.abc import Mapping

FAKE_CREDENTIALS: Mapping[str, str] = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
# Variables that would send boto3 elsewhere than the moto server, or to a real account.
_SCRUBBED = (
    "AWS_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
)


class ProcessEnvironment:
    """os.environ as a stack changes it; `restore` puts back what was there before the first change."""

    def __init__(self) -> None:
        self._saved: dict[str, str | None] = {}

    def point_at(self, endpoint: str, region: str) -> None:
        """boto3 reaches `endpoint` through AWS_ENDPOINT_URL: the core needs no endpoint switch."""
        self.set(
            {
                "AWS_ENDPOINT_URL": endpoint,
                **FAKE_CREDENTIALS,
                "AWS_DEFAULT_REGION": region,
                "AWS_REGION": region,
            }
        )
        for name in [*_SCRUBBED, *(k for k in os.environ if k.startswith("AWS_ENDPOINT_URL_"))]:
            self.unset(name)

    def set(self, values: Mapping[str, str]) -> None:
        for name, value in values.items():
            self._saved.setdefault(name, os.environ.get(name))
            os.environ[name] = value

    def unset(self, name: str) -> None:
        if name in os.environ:
            self._saved.setdefault(name, os.environ[name])
            del os.environ[name]

    def restore(self) -> None:
        for name, value in self._saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved = {}
