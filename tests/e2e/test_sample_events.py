"""The API events in events/ (for `sam local invoke -e`), against PublishTriggerFunction on the local
stack's resources (moto server over HTTP, the stack's signing secret).

They are committed signed for the local stack's secret (`wfm-publish-local-hmac-secret`) at a fixed
moment, 2023-10-27T14:00:00Z: the signature holds for that moment, and five minutes later the function
refuses them as stale, as it must. `wfm-publish sign --event FILE` signs one again for now; so signed,
each is accepted as it is: the POST starts the job the GET, the publish window and the cancel name."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from wfm_publish.signature import verify
from wfm_publish_local.cli import main
from wfm_publish_local.client import DEFAULT_HMAC_SECRET
from wfm_publish_local.embedded import EmbeddedStack

pytestmark = pytest.mark.e2e
EVENTS = Path(__file__).resolve().parents[2] / "events"
SIGNED_AT = 1698415200  # 2023-10-27T14:00:00Z
# In the order a ServiceNow record would send them.
API_EVENTS = ["api_post_publish", "api_get_publish", "api_get_schedule_publish", "api_cancel_publish"]


def load(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text(encoding="utf-8"))
    return event


@pytest.fixture(scope="module")
def stack() -> Iterator[EmbeddedStack]:
    # No event source runs: the job the POST starts stays queued, so the cancel finds it cancellable.
    with EmbeddedStack(hmac_secret=DEFAULT_HMAC_SECRET, poll=[]) as running:
        yield running


def test_every_api_event_is_here() -> None:
    found = {p.stem for p in EVENTS.glob("*.json") if "httpMethod" in load(p.stem)}
    assert found == set(API_EVENTS)


@pytest.mark.parametrize("name", API_EVENTS)
def test_each_api_event_is_signed_for_the_local_secret_at_its_stated_moment(name: str) -> None:
    event = load(name)
    headers = {k.lower(): v for k, v in event["headers"].items()}
    assert headers["x-signature-timestamp"] == str(SIGNED_AT)
    assert event["requestContext"]["requestTimeEpoch"] == SIGNED_AT * 1000
    assert event["multiValueHeaders"]["X-Signature"] == [event["headers"]["X-Signature"]]
    body = (event.get("body") or "").encode()
    query = event.get("multiValueQueryStringParameters")
    verify([DEFAULT_HMAC_SECRET], headers, event["httpMethod"], event["path"], query, body, SIGNED_AT + 299)


def test_as_committed_the_function_refuses_them_as_stale(stack: EmbeddedStack) -> None:
    assert stack.stack is not None
    answer = stack.stack.invoke("PublishTriggerFunction", load("api_post_publish"))
    assert answer["statusCode"] == 401
    assert "more than 5 minutes from the server's clock" in json.loads(answer["body"])["message"]


def test_signed_again_each_api_event_is_accepted_as_it_is(
    stack: EmbeddedStack, capsys: pytest.CaptureFixture[str]
) -> None:
    assert stack.stack is not None
    answers: dict[str, tuple[int, dict[str, Any]]] = {}
    for name in API_EVENTS:
        capsys.readouterr()
        assert (
            main(["sign", "--event", str(EVENTS / f"{name}.json"), "--hmac-secret", DEFAULT_HMAC_SECRET]) == 0
        )
        signed = json.loads(capsys.readouterr().out)
        answer = stack.stack.invoke("PublishTriggerFunction", signed)
        answers[name] = (answer["statusCode"], json.loads(answer["body"]))

    status, created = answers["api_post_publish"]
    assert status == 202, created
    publish_id = created["publishId"]
    assert load("api_get_publish")["pathParameters"]["publishId"] == publish_id  # the key's job
    status, view = answers["api_get_publish"]
    assert (status, view["publishId"], view["scheduleId"]) == (200, publish_id, "sched-demo")
    status, window = answers["api_get_schedule_publish"]
    assert (status, window["inFlight"], window["publishId"]) == (200, True, publish_id)
    status, cancelled = answers["api_cancel_publish"]
    assert (status, cancelled["status"]) == (200, "CANCELLED"), cancelled


def test_sign_writes_the_event_back_with_write(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    copy = tmp_path / "post.json"
    copy.write_text((EVENTS / "api_post_publish.json").read_text(encoding="utf-8"), encoding="utf-8")
    assert (
        main(
            [
                "sign",
                "--event",
                str(copy),
                "--timestamp",
                str(SIGNED_AT),
                "--hmac-secret",
                DEFAULT_HMAC_SECRET,
                "--write",
            ]
        )
        == 0
    )
    assert copy.read_text(encoding="utf-8") == (EVENTS / "api_post_publish.json").read_text(encoding="utf-8")
    assert "signed" in capsys.readouterr().out


def test_the_readme_curl_example_publishes_as_it_is(stack: EmbeddedStack) -> None:
    """The README's example, run by a shell as written, against the local stack's API."""
    lines = (EVENTS.parent / "README.md").read_text(encoding="utf-8").splitlines()
    end = next(i for i, line in enumerate(lines) if "--curl http://127.0.0.1:3000 | sh" in line)
    start = end
    while lines[start - 1].startswith("    "):
        start -= 1
    script = "\n".join(line[4:] for line in lines[start : end + 1])
    assert script.startswith("BODY=") and "wfm-publish sign" in script
    script = script.replace(".venv/bin/wfm-publish", f"{sys.executable} -m wfm_publish_local.cli")
    script = script.replace("http://127.0.0.1:3000", stack.api_url)
    env = {**os.environ, "WFM_PUBLISH_HMAC_SECRET": stack.hmac_secret}
    command = ["bash", "-e", "-c", script]
    ran = subprocess.run(command, check=False, capture_output=True, text=True, env=env, timeout=60)
    assert ran.returncode == 0, ran.stderr
    answer = json.loads(ran.stdout)
    assert (answer["status"], answer["scheduleId"], answer["joined"]) == ("QUEUED", "sched-demo", False)
