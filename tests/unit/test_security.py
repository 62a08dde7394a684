"""template.yaml's security findings: checkov passes, and every check it skips says why, in the template."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from wfm_publish_local.template import load_yaml

ROOT = Path(__file__).resolve().parents[2]
CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"

# The checks this project lives with, each for the reason written beside the skip in template.yaml.
# Skipping anything else is a decision to make in review, not in passing: add it here with the skip.
ACCEPTED = {
    "CKV_AWS_27": "SQS: SSE-SQS rather than KMS",
    "CKV_AWS_116": "Lambda DLQ: the event sources' own DLQs",
    "CKV_AWS_117": "Lambda VPC: nothing private to reach",
    "CKV_AWS_119": "DynamoDB CMK",
    "CKV_AWS_120": "API caching",
    "CKV_AWS_149": "Secrets Manager CMK",
    "CKV_AWS_158": "log group CMK",
    "CKV_AWS_173": "Lambda environment CMK",
}


def _skips() -> list[tuple[str, dict[str, Any]]]:
    resources = load_yaml(ROOT / "template.yaml")["Resources"]
    found = []
    for lid, resource in resources.items():
        for skip in (resource.get("Metadata") or {}).get("checkov", {}).get("skip", []):
            found.append((lid, skip))
    return found


def test_every_skip_names_a_check_and_says_why() -> None:
    skips = _skips()
    assert skips, "template.yaml has no checkov skips: was the Metadata moved?"
    for lid, skip in skips:
        assert isinstance(skip, dict), f"{lid}: write skips as {{id, comment}}, not {skip!r}"
        assert re.fullmatch(r"CKV2?_AWS_\d+", str(skip.get("id", ""))), f"{lid}: {skip}"
        comment = " ".join(str(skip.get("comment", "")).split())
        # A reason, not a shrug: long enough to say what protects the resource instead.
        assert len(comment) >= 60, f"{lid} {skip.get('id')}: the comment must say why ({comment!r})"


def test_only_the_accepted_checks_are_skipped() -> None:
    skipped = {str(skip["id"]) for _, skip in _skips()}
    assert skipped <= set(ACCEPTED), f"skipped without review: {sorted(skipped - set(ACCEPTED))}"


def test_a_resource_skips_a_check_once() -> None:
    seen = [(lid, str(skip["id"])) for lid, skip in _skips()]
    assert len(seen) == len(set(seen))


def test_checkov_finds_nothing_unexplained() -> None:
    if not CHECKOV.exists():
        pytest.fail(f"{CHECKOV} is missing: run `make security` (make test does it before pytest)")
    result = subprocess.run(
        [
            str(CHECKOV),
            "-f",
            "template.yaml",
            "--framework",
            "cloudformation",
            "--skip-download",
            "--output",
            "json",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    report = json.loads(result.stdout)
    failed = [(c["check_id"], c["resource"]) for c in report["results"]["failed_checks"]]
    assert failed == [], failed
    assert result.returncode == 0, result.stderr[-2000:]
    assert report["summary"]["parsing_errors"] == 0
    skipped = {(c["check_id"], c["resource"].split(".")[-1]) for c in report["results"]["skipped_checks"]}
    assert skipped == {(str(s["id"]), lid) for lid, s in _skips()}  # each skip is one checkov honours
