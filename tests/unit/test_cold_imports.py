"""What each function's cold start imports (docs/benchmark.md, "Cold start to first answer"): each handler
module is imported in a fresh interpreter with the layer on sys.path, as Lambda does, and the packages
trimmed from the cold start stay out until a path needs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS = sorted(p.name for p in (ROOT / "functions").iterdir() if (p / "app.py").is_file())

# Never at import, in any function: Powertools' event handler (AppSync, asyncio, the OpenAPI machinery),
# its batch utility and its event data classes.
NEVER = ["aws_lambda_powertools.event_handler", "aws_lambda_powertools.utilities.batch", "asyncio"]
# Not at import where the first answer may not need them (a stale message, a sweep that finds nothing).
LATER = {
    "publish_trigger": ["requests", "wfm_publish.genesys_wire", "wfm_publish.pipeline"],
    "trunk_validation": ["requests", "wfm_publish.genesys_wire", "wfm_publish.pipeline"],
    "conflict_retry": ["requests", "wfm_publish.genesys_wire", "wfm_publish.pipeline"],
    "dead_letters": ["requests", "wfm_publish.genesys_wire", "wfm_publish.pipeline"],
    "watchdog": ["requests", "wfm_publish.genesys_wire", "wfm_publish.readiness"],
    "announcer": ["requests", "wfm_publish.genesys_wire"],
    "weekly_unit": ["requests"],
}
ENVIRONMENT = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "JOBS_TABLE": "jobs",
    "VALIDATION_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/validation",
    "CONFLICT_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/conflict",
    "GENESYS_CREDENTIALS_SECRET": "genesys",
    "GENESYS_REGION": "eu-west-1",
}


def loaded(function: str, then: str = "") -> set[str]:
    """The modules loaded by importing the function's handler (and running `then` after it)."""
    code = f"import json, sys\nimport app\n{then}\nprint(json.dumps(sorted(sys.modules)))"
    environment = {
        **os.environ,
        **ENVIRONMENT,
        "PYTHONPATH": os.pathsep.join(
            [str(ROOT / "functions" / function), str(ROOT / "layers/common/python")]
        ),
    }
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT / "functions" / function,
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    )
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("function", FUNCTIONS)
def test_a_handler_imports_only_what_its_cold_start_needs(function: str) -> None:
    modules = loaded(function)
    assert "app" in modules
    present = [name for name in [*NEVER, *LATER.get(function, [])] if name in modules]
    assert not present, f"{function} imports {present} at import"


def test_the_pipeline_of_a_dead_letter_sweep_imports_no_genesys_client() -> None:
    """services().pipeline takes the Genesys client and the telephony options as factories."""
    modules = loaded("dead_letters", "from wfm_publish.services import services\nservices().pipeline")
    assert "wfm_publish.pipeline" in modules
    assert not {"requests", "wfm_publish.genesys", "wfm_publish.scope", "wfm_publish.readiness"} & modules


def test_the_functions_aws_clients_and_secrets_come_without_boto3() -> None:
    """botocore's session builds the clients, and the secret reader is the project's own: `import boto3`
    (s3transfer, multiprocessing) and Powertools' parameters utility cost ~60 ms of a cold start."""
    build = (
        "from wfm_publish.services import services\n"
        "s = services()\ns.store, s.queues, s.announcer, s.secrets._client()"
    )
    modules = loaded("trunk_validation", build)
    assert {"botocore.client", "wfm_publish.store", "wfm_publish.secret_reader"} <= modules
    assert not {"boto3", "s3transfer", "aws_lambda_powertools.utilities.parameters"} & modules


@pytest.mark.parametrize("function", FUNCTIONS)
def test_every_handler_gives_its_first_answer_without_the_collector(function: str) -> None:
    """wfm_publish.coldstart: the handler Lambda calls is first_answer_uncollected's wrapper."""
    check = (
        "import gc\nassert not gc.isenabled(), 'the import did not hold the collector'\n"
        "assert app.handler.__code__.co_filename.endswith('coldstart.py'), app.handler.__code__"
    )
    assert "wfm_publish.coldstart" in loaded(function, check)
