"""GET /publishes/{publishId}/capacity on the local stack, over HTTP, signed: the report as JSON, the
chart as SVG (by Accept or ?format=svg) marking exactly the report's intervals over the limit, a 404
saying why when there is none; and `wfm-publish ops show --chart FILE` writing the same chart."""

from __future__ import annotations

import json
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.charts import marked, reported_overs
from wfm_publish.models import CapacityReport
from wfm_publish_local.cli import main
from wfm_publish_local.embedded import ROOT, EmbeddedStack
from wfm_publish_local.ops import describe_local

pytestmark = pytest.mark.e2e
SVG = "image/svg+xml"


@pytest.fixture(scope="module")
def stack() -> Iterator[EmbeddedStack]:
    with EmbeddedStack(ROOT / "scenarios" / "capacity-exceeded.yaml", visibility_timeout=2) as running:
        yield running


def publish(stack: EmbeddedStack, **options: Any) -> dict[str, Any]:
    """A publish of the week's schedule, followed to its end (telephony calm: checked at once)."""
    body = {
        "scheduleId": "sched-cap",
        "businessUnitId": "bu-cap",
        "weekId": "2023-10-23",
        "telephonySync": {"enabled": False},
        **options,
    }
    accepted = requests.post(
        f"{stack.api_url}/publishes",
        json=body,
        headers={"Idempotency-Key": str(uuid.uuid4())},
        auth=stack.auth,
        timeout=30,
    )
    assert accepted.status_code == 202, accepted.text
    return stack.wait_for_publish(accepted.json()["publishId"])


def capacity(stack: EmbeddedStack, publish_id: str, query: str = "", **headers: str) -> requests.Response:
    url = f"{stack.api_url}/publishes/{publish_id}/capacity{query}"
    return requests.get(url, headers=headers, auth=stack.auth, timeout=30)


def test_the_report_as_json_and_as_a_chart_marking_its_overs(stack: EmbeddedStack) -> None:
    ended = publish(stack, validationMode="strict")
    assert (ended["status"], ended["reasonCode"]) == ("FAILED", "CAPACITY_EXCEEDED")
    publish_id = ended["publishId"]

    as_json = capacity(stack, publish_id)
    assert as_json.status_code == 200 and as_json.headers["Content-Type"] == "application/json"
    assert as_json.json() == ended["capacity"]
    report = CapacityReport.model_validate(as_json.json())
    assert report.intervals_over == 90 and report.pools[0].needed_runs

    drawn = capacity(stack, publish_id, Accept=SVG)
    assert drawn.status_code == 200, drawn.text
    assert drawn.headers["Content-Type"] == SVG
    ET.fromstring(drawn.text)  # well-formed XML
    assert marked(drawn.text) == reported_overs(report)
    assert {p: len(i) for p, i in marked(drawn.text).items()} == {"site:site-cap": 90}
    assert capacity(stack, publish_id, "?format=svg").text == drawn.text  # the same bytes
    assert capacity(stack, publish_id, "?format=json", Accept=SVG).json() == as_json.json()

    unsigned = requests.get(f"{stack.api_url}/publishes/{publish_id}/capacity?format=svg", timeout=30)
    assert (unsigned.status_code, unsigned.json()["code"]) == (401, "SIGNATURE_REJECTED")
    bad = capacity(stack, publish_id, "?format=png")
    assert (bad.status_code, bad.json()["errors"][0]["field"]) == (400, "query:format")


def test_no_report_is_a_404_that_says_why(stack: EmbeddedStack) -> None:
    off = publish(stack, validationMode="off")
    answer = capacity(stack, off["publishId"], Accept=SVG)
    assert answer.status_code == 404
    assert answer.json()["code"] == "NO_CAPACITY_REPORT"
    assert "validationMode off" in answer.json()["message"]
    unknown = capacity(stack, uuid.uuid4().hex)
    assert (unknown.status_code, unknown.json()["code"]) == (404, "NOT_FOUND")


def test_ops_show_writes_the_chart(
    stack: EmbeddedStack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert stack.stack is not None
    serve_line = tmp_path / "stack.json"
    serve_line.write_text(json.dumps(describe_local(stack.stack, stack.servicenow.url)) + "\n")
    ended = publish(stack, dryRun=True)
    chart = tmp_path / "capacity.svg"
    assert main(["ops", "--local", str(serve_line), "show", ended["publishId"], "--chart", str(chart)]) == 0
    printed = capsys.readouterr()
    assert f"wrote the capacity chart to {chart}" in printed.err
    assert "capacity  90 of 676" in printed.out
    assert chart.read_text() == capacity(stack, ended["publishId"], Accept=SVG).text
    off = publish(stack, validationMode="off")
    assert main(["ops", "--local", str(serve_line), "show", off["publishId"], "--chart", str(chart)]) == 1
    assert "validationMode off" in capsys.readouterr().err
