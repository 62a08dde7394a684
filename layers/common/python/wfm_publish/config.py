"""Settings: the environment parsed once, so a missing variable fails at start with its name."""

from __future__ import annotations

import os

from pydantic import BaseModel, Field, ValidationError, model_validator

from wfm_publish.errors import ConfigurationError

# Genesys Cloud API hosts by AWS-style region (docs/genesys-api.md, "Auth and hosts").
GENESYS_API_HOSTS: dict[str, str] = {
    "us-east-1": "api.mypurecloud.com",
    "us-east-2": "api.use2.us-gov-pure.cloud",
    "us-west-2": "api.usw2.pure.cloud",
    "ca-central-1": "api.cac1.pure.cloud",
    "sa-east-1": "api.sae1.pure.cloud",
    "eu-west-1": "api.mypurecloud.ie",
    "eu-west-2": "api.euw2.pure.cloud",
    "eu-central-1": "api.mypurecloud.de",
    "eu-central-2": "api.euc2.pure.cloud",
    "me-central-1": "api.mec1.pure.cloud",
    "ap-south-1": "api.aps1.pure.cloud",
    "ap-southeast-1": "api.apse1.pure.cloud",
    "ap-southeast-2": "api.mypurecloud.com.au",
    "ap-northeast-1": "api.mypurecloud.jp",
    "ap-northeast-2": "api.apne2.pure.cloud",
    "ap-northeast-3": "api.apne3.pure.cloud",
    "mx-central-1": "api.mxc1.pure.cloud",
}


def genesys_base_url(region: str | None, base_url: str | None) -> str:
    """An explicit base URL wins; otherwise the region names the host."""
    if base_url:
        return base_url.rstrip("/")
    if not region:
        raise ConfigurationError("set GENESYS_BASE_URL or GENESYS_REGION")
    host = GENESYS_API_HOSTS.get(region)
    if host is None:
        known = ", ".join(sorted(GENESYS_API_HOSTS))
        raise ConfigurationError(
            f"GENESYS_REGION {region!r} is not a Genesys Cloud region; use one of {known}"
        )
    return f"https://{host}"


class Settings(BaseModel):
    jobs_table: str = Field(min_length=1)
    validation_queue_url: str = Field(min_length=1)
    conflict_queue_url: str = Field(min_length=1)
    genesys_region: str | None = None
    genesys_base_url: str | None = None
    genesys_credentials_secret: str = Field(min_length=1)
    settle_window_seconds: float = Field(default=30.0, ge=0)
    job_deadline_seconds: float = Field(default=8 * 3600.0, gt=0)
    job_ttl_days: int = Field(default=30, ge=1)
    # Telephony readiness and capacity. The Max Calls property key is undocumented: configuration.
    trunk_max_calls_property: str = Field(default="trunk_max_concurrent_calls", min_length=1)
    edge_call_capacity: int = Field(default=0, ge=0)  # calls per premises Edge; 0: no Edge bound
    on_queue_activity_codes: str = Field(default="0", min_length=1)  # comma-separated activity code ids
    observation_max_age_seconds: float = Field(default=5.0, ge=0)  # 0: jobs never share telephony reads
    # Telephony events wake waiting jobs (set by the stack when GenesysEventBusName is given).
    telephony_events: bool = False
    safety_poll_seconds: float = Field(default=2400.0, gt=0)  # with events: the poll kept for a lost one
    # The publish API (PublishTriggerFunction) and the notifier (NotifierFunction) only.
    api_signing_secret: str | None = None  # Secrets Manager id of {"hmacSecret": ...}
    servicenow_instance_url: str | None = None  # https://<instance>.service-now.com
    validation_dlq_url: str | None = None  # the dead-letter sweep reads these two
    conflict_dlq_url: str | None = None
    servicenow_credentials_secret: str | None = None  # {"username", "password"[, "clientId", "clientSecret"]}
    # The weekly run (PublishTriggerFunction fans out, WeeklyUnitFunction takes each business unit).
    weekly_queue_url: str | None = None
    # Business units started per minute: Genesys' 300 requests/min per token over the calls one
    # business unit costs (its two reads and its job's pipeline); docs/benchmark.md measures it.
    weekly_starts_per_minute: float = Field(default=34.0, gt=0)
    # The business units the weekly run publishes (comma-separated ids or names); empty: every one listed.
    weekly_business_units: str = ""
    event_bus_name: str = Field(default="default", min_length=1)  # AnnouncerFunction: where job changes go

    @model_validator(mode="after")
    def _genesys_reachable(self) -> Settings:
        genesys_base_url(self.genesys_region, self.genesys_base_url)
        return self

    @property
    def genesys_url(self) -> str:
        return genesys_base_url(self.genesys_region, self.genesys_base_url)

    @classmethod
    def from_environment(cls, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        raw = {name: env[name.upper()] for name in cls.model_fields if env.get(name.upper())}
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']).upper() or 'settings'}: {err['msg']}"
                for err in exc.errors()
            )
            raise ConfigurationError(f"bad environment: {problems}") from exc
