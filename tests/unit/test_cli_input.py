"""The command line on bad input: one line saying what is wrong and how to put it right, exit 2, never a
traceback. Nothing here needs a running stack: each mistake is caught before anything starts."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from wfm_publish_local.cli import main, since_time

ROOT = Path(__file__).resolve().parents[2]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """main(argv) as the console script runs it: its exit code and everything it printed."""
    capsys.readouterr()
    try:
        code = main(list(argv))
    except SystemExit as exit_:  # argparse's own exit (--help, a usage error)
        code = int(exit_.code or 0)
    out = capsys.readouterr()
    return code, out.out + out.err


def one_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    assert "Traceback" not in text and "Error:" not in lines[0].split(":", 1)[0], text
    return lines[0]


@pytest.fixture
def nowhere(tmp_path: Path) -> Path:
    """A `--local` file as `wfm-publish serve` writes it, for a stack that is not running."""
    path = tmp_path / "stack.json"
    line = {"aws": "http://127.0.0.1:9", "region": "us-east-1", "outputs": {"JobsTableName": "jobs"}}
    path.write_text(json.dumps(line) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind(("127.0.0.1", 0))
        held.listen(1)
        yield int(held.getsockname()[1])


def test_jobs_since_yesterday_is_a_one_line_error_naming_what_it_takes(
    capsys: pytest.CaptureFixture[str], nowhere: Path
) -> None:
    code, said = run(capsys, "ops", "--local", str(nowhere), "jobs", "--since", "yesterday")
    assert code == 2
    line = one_line(said)
    assert line.startswith("wfm-publish ops jobs: argument --since: 'yesterday' is not a time")
    assert "ISO-8601" in line and "24h" in line


def test_since_takes_an_iso_date_or_time_or_an_age() -> None:
    now = datetime(2026, 3, 10, 12, 0, tzinfo=UTC).timestamp()
    assert since_time("24h", now) == now - 86400
    assert since_time("90m", now) == now - 5400
    assert since_time("7d", now) == now - 7 * 86400
    assert since_time("2026-03-09") == datetime(2026, 3, 9, tzinfo=UTC).timestamp()  # UTC, as shown
    assert since_time("2026-03-09T08:00:00Z") == datetime(2026, 3, 9, 8, tzinfo=UTC).timestamp()
    assert since_time("2026-03-09T09:00:00+01:00") == datetime(2026, 3, 9, 8, tzinfo=UTC).timestamp()


@pytest.mark.parametrize("command", ["serve", "simulate", "fault-proxy"])
def test_a_port_in_use_is_a_one_line_error(
    capsys: pytest.CaptureFixture[str], taken_port: int, command: str
) -> None:
    extra = ["--target", "http://127.0.0.1:5000"] if command == "fault-proxy" else []
    code, said = run(capsys, command, "--port", str(taken_port), *extra)
    assert code == 2
    assert one_line(said) == (
        f"wfm-publish {command}: port {taken_port} on 127.0.0.1 is in use (another `wfm-publish serve`?):"
        " choose another with --port"
    )


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["serve", "--port", "http"], "argument --port: 'http' is not a port"),
        (["serve", "--port", "70000"], "argument --port: '70000' is not a port"),
        (["serve", "--scenario", "no/such.yaml"], "argument --scenario: no such file: no/such.yaml"),
        (["demo", "--scenario", "no/such.yaml"], "argument --scenario: no such file"),
        (["weekly", "--at", "tomorrow"], "argument --at: 'tomorrow' is not an ISO-8601 time with a zone"),
        (["weekly", "--at", "2023-10-26T06:00:00"], "is not an ISO-8601 time with a zone"),
        (["weekly", "--now", "--times", "0"], "argument --times: '0' is not a whole number of at least 1"),
        (["weekly", "--now", "--weeks-ahead", "12"], "argument --weeks-ahead: invalid choice"),
        (["sign", "--method", "POST", "--path", "/p", "--body", "no/such.json"], "no such file"),
        (["sign", "--method", "POST"], "name the request's --path"),
        (["sign", "--event", "no/such.json"], "argument --event: no such file"),
        (["sign", "--event", str(ROOT / "README.md")], "README.md is not JSON"),
        (
            ["sign", "--event", str(ROOT / "events" / "weekly_schedule.json")],
            "not an API Gateway proxy event",
        ),
        (["fault-proxy", "--target", "http://127.0.0.1:5000", "--throttle", "5"], "is not a probability"),
        (["serve", "--port", "0", "--aws-endpoint", "moto"], "'moto' is not an endpoint URL"),
        (["fault-proxy", "--target", "https://sqs.amazonaws.com"], "is not http://127.0.0.1:<port>"),
        (["ops", "--local", "no/such.json", "jobs"], "argument --local: no such file"),
        (["ops", "jobs"], "name the stack: --stack NAME"),
        (["openapi", "--output", "no/such/folder/openapi.json"], "No such file or directory"),
        ([], "the following arguments are required: command"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, argv: list[str], says: str
) -> None:
    monkeypatch.delenv("WFM_PUBLISH_STACK", raising=False)
    code, said = run(capsys, *argv)
    assert code == 2
    assert says in one_line(said)


def test_a_local_file_that_is_not_the_serve_line_is_a_one_line_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    wrong = tmp_path / "stack.json"
    wrong.write_text("Genesys Cloud simulator at http://127.0.0.1:8400\n", encoding="utf-8")
    code, said = run(capsys, "ops", "--local", str(wrong), "show", "p1")
    assert code == 2
    assert "its first line is not what `wfm-publish serve` prints" in one_line(said)


def test_a_scenario_that_does_not_load_is_a_one_line_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("agents: [unclosed\n", encoding="utf-8")
    code, said = run(capsys, "serve", "--port", "0", "--scenario", str(broken))
    assert code == 2
    line = one_line(said)
    assert line.startswith(f"wfm-publish serve: {broken}: cannot read scenario: while parsing")
    assert line.endswith("(line 2, column 1: expected ',' or ']', but got '<stream end>')")


def test_an_unreachable_stack_is_one_line_and_exit_1(
    capsys: pytest.CaptureFixture[str], nowhere: Path
) -> None:
    code, said = run(capsys, "ops", "--local", str(nowhere), "jobs", "--since", "24h")
    assert code == 1
    assert one_line(said).startswith("wfm-publish ops: ")


def test_sign_curl_prints_one_whole_command_whose_parts_survive_the_shell(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import shlex

    from wfm_publish.signature import verify

    body = '{"scheduleId": "it\'s $HOME `x`"}'
    argv = ["sign", "--method", "POST", "--path", "/publishes", "--data", body, "--timestamp", "1698415200"]
    extra = ["--hmac-secret", "s3cret", "-H", "Idempotency-Key: k 1", "--api-key", "key-1"]
    code, printed = run(
        capsys, *argv, *extra, "--curl", "https://x.execute-api.eu-west-1.amazonaws.com/prod/"
    )
    assert code == 0
    words = shlex.split(one_line(printed))
    assert words[:5] == [
        "curl",
        "-sS",
        "-X",
        "POST",
        "https://x.execute-api.eu-west-1.amazonaws.com/prod/publishes",
    ]
    assert words[words.index("--data-binary") + 1] == body
    headers = dict(words[i + 1].split(": ", 1) for i, w in enumerate(words) if w == "-H")
    assert headers["Idempotency-Key"] == "k 1" and headers["x-api-key"] == "key-1"
    assert headers["Content-Type"] == "application/json"
    lowered = {k.lower(): v for k, v in headers.items()}
    verify(["s3cret"], lowered, "POST", "/publishes", None, body.encode(), 1698415200)


def test_an_aws_endpoint_where_nothing_answers_is_a_one_line_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        closed = int(probe.getsockname()[1])  # free again once closed: nothing listens there
    code, said = run(capsys, "serve", "--port", "0", "--aws-endpoint", f"http://127.0.0.1:{closed}")
    assert code == 2
    assert "is the moto server or fault proxy running?" in one_line(said)
