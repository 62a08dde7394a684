"""`wfm-publish`: the local stack from the command line, and `ops`, the operator's tool for a deployed one."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import socket
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

from wfm_publish.models import JobStatus
from wfm_publish.watchdog import OVERDUE_AFTER
from wfm_publish_local.client import HMAC_SECRET_VARIABLE
from wfm_publish_local.embedded import DEFAULT_SCENARIO, ROOT
from wfm_publish_local.ops import DLQ_OUTPUTS

STACK_VARIABLE = "WFM_PUBLISH_STACK"  # the deployed stack `ops` works on, unless --stack/--local say
WEEKLY_SCENARIO = ROOT / "scenarios" / "weekly.yaml"
AWS_ENDPOINT_HELP = (
    "use this AWS-compatible endpoint (e.g. a moto server, or a fault proxy in front of one, on"
    " 127.0.0.1) instead of starting a moto server; the stack's resources get names of their own there"
)
HMAC_HELP = (
    f"the secret requests are signed with (default: ${HMAC_SECRET_VARIABLE}, else a fixed local value)"
)


class UsageError(Exception):
    """Bad input the parser cannot catch (a port in use, a file not writable): one line, exit 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors on one line (`wfm-publish ops jobs: --since: ...`), exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    command = f"wfm-publish {args.command}"
    try:
        return _main(args)
    except UsageError as problem:
        print(f"{command}: {problem}", file=sys.stderr)
    except OSError as problem:  # a file that cannot be read or written, a port taken after the check
        where = f": {problem.filename}" if getattr(problem, "filename", None) else ""
        print(f"{command}: {problem.strerror or problem}{where}", file=sys.stderr)
    except _scenario_error() as problem:
        print(f"{command}: {_first_line(problem)}", file=sys.stderr)
    except _unreachable() as problem:  # --aws-endpoint names nothing that answers
        print(
            f"{command}: {problem} (--aws-endpoint: is the moto server or fault proxy running?)",
            file=sys.stderr,
        )
    return 2


def _unreachable() -> type[Exception]:
    from botocore.exceptions import EndpointConnectionError

    return EndpointConnectionError


def _first_line(problem: Exception) -> str:
    """A problem on one line: a YAML error's first line, with where it is."""
    text = str(problem).splitlines()[0] if str(problem) else type(problem).__name__
    mark = getattr(problem.__cause__, "problem_mark", None)
    if mark is not None:
        text += f" (line {mark.line + 1}, column {mark.column + 1}: {problem.__cause__.problem})"  # type: ignore[union-attr]
    return text


def _scenario_error() -> type[Exception]:
    from wfm_publish_local.simulator.loading import ScenarioError

    return ScenarioError


def _main(args: argparse.Namespace) -> int:
    if args.command == "demo":
        from wfm_publish_local import demo as demo_module

        return demo_module.run(args.scenario, hmac_secret=args.hmac_secret, aws_endpoint=args.aws_endpoint)
    if args.command == "simulate":
        from wfm_publish_local.simulator.server import serve_forever

        _port_free(args.port, "--port")
        serve_forever(str(args.scenario), args.port)
        return 0
    if args.command == "weekly":
        from wfm_publish_local import weekly as weekly_module

        return weekly_module.run(
            args.scenario,
            at=args.at,
            business_units=args.business_units.split(",") if args.business_units else None,
            weeks_ahead=args.weeks_ahead,
            times=args.times,
            hmac_secret=args.hmac_secret,
        )
    others: dict[str, Callable[[argparse.Namespace], int]] = {
        "ops": _ops,
        "openapi": lambda a: _openapi(a.output, a.check),
        "fault-proxy": _fault_proxy,
        "sign": _sign_command,
    }
    if args.command in others:
        return others[args.command](args)
    return _serve(args.scenario, args.port, args.hmac_secret, args.aws_endpoint)


# --- what the options accept: a bad value is a one-line usage error (exit 2), never a traceback -------

_AGE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([mhd])\s*$")
_AGE_SECONDS = {"m": 60, "h": 3600, "d": 86400}


def since_time(text: str, now: float | None = None) -> float:
    """`--since`: an ISO-8601 date or time (UTC unless it names a zone), or an age: 90m, 24h, 7d."""
    import time

    age = _AGE.match(text)
    if age:
        return (time.time() if now is None else now) - float(age.group(1)) * _AGE_SECONDS[age.group(2)]
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a time: give an ISO-8601 date or time (2026-01-31, 2026-01-31T08:00:00Z)"
            " or an age (90m, 24h, 7d)"
        ) from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def zoned_time(text: str) -> datetime:
    """`weekly --at`: an ISO-8601 time with its zone."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO-8601 time with a zone, e.g. 2023-10-26T06:00:00+01:00"
        )
    return moment


def port_number(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (0-65535; 0: any free one)")
    return port


def positive(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return number


def existing_file(text: str) -> Path:
    path = Path(text)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"no such file: {text}")
    return path


def serve_line_file(text: str) -> Path:
    """`ops --local`: a file whose first line is the JSON `wfm-publish serve` printed."""
    path = existing_file(text)
    try:
        with path.open(encoding="utf-8") as handle:
            first = json.loads(handle.readline())
        if not isinstance(first, dict) or not isinstance(first.get("outputs"), dict) or "aws" not in first:
            raise ValueError("no outputs")
    except (OSError, UnicodeDecodeError, ValueError):
        raise argparse.ArgumentTypeError(
            f"{text}: its first line is not what `wfm-publish serve` prints"
            " (save it: wfm-publish serve > FILE &)"
        ) from None
    return path


def probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a probability (0 to 1)")
    return value


def endpoint_url(text: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(f"{text!r} is not an endpoint URL, e.g. http://127.0.0.1:5000")
    return text


def loopback_url(text: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(text)
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme != "http" or parts.hostname not in ("127.0.0.1", "localhost") or port is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not http://127.0.0.1:<port>")
    return text


def _port_free(port: int, option: str) -> None:
    """Fail before starting anything when the port is taken (the servers listen on 127.0.0.1)."""
    if port == 0:
        return
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            raise UsageError(
                f"port {port} on 127.0.0.1 is in use (another `wfm-publish serve`?):"
                f" choose another with {option}"
            ) from None


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="wfm-publish", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo", help="publish a schedule through the whole pipeline, on the local stack"
    )
    demo.add_argument("--scenario", type=existing_file, default=DEFAULT_SCENARIO)
    demo.add_argument("--hmac-secret", help=HMAC_HELP)
    demo.add_argument("--aws-endpoint", metavar="URL", type=endpoint_url, help=AWS_ENDPOINT_HELP)
    serve = commands.add_parser("serve", help="run the local stack until interrupted")
    serve.add_argument("--port", type=port_number, default=3000, help="the publish API's port")
    serve.add_argument("--scenario", type=existing_file, default=DEFAULT_SCENARIO)
    serve.add_argument("--hmac-secret", help=HMAC_HELP)
    serve.add_argument("--aws-endpoint", metavar="URL", type=endpoint_url, help=AWS_ENDPOINT_HELP)
    simulate = commands.add_parser("simulate", help="run only the Genesys Cloud simulator")
    simulate.add_argument("--scenario", type=existing_file, default=DEFAULT_SCENARIO)
    simulate.add_argument("--port", type=port_number, default=8400)
    weekly = commands.add_parser(
        "weekly", help="fire the weekly publish (the ScheduleV2 event) on the local stack and follow its jobs"
    )
    when = weekly.add_mutually_exclusive_group(required=True)
    when.add_argument(
        "--now", action="store_true", help="as if due now (on the scenario's `today`, when it sets one)"
    )
    when.add_argument(
        "--at",
        type=zoned_time,
        help="as if due at this ISO-8601 time with a zone, e.g. 2023-10-26T06:00:00+01:00",
    )
    weekly.add_argument("--scenario", type=existing_file, default=WEEKLY_SCENARIO)
    weekly.add_argument("--business-units", help="comma-separated ids (default: the template's Input, all)")
    weekly.add_argument(
        "--weeks-ahead", type=int, choices=range(9), metavar="0-8", help="default: the template's Input"
    )
    weekly.add_argument(
        "--times", type=positive, default=1, help="deliver the event this many times (idempotency)"
    )
    weekly.add_argument("--hmac-secret", help=HMAC_HELP)
    _sign_parser(commands)
    proxy = commands.add_parser(
        "fault-proxy",
        help="run the fault-injecting proxy in front of an AWS endpoint (then: serve/demo --aws-endpoint)",
    )
    proxy.add_argument(
        "--target",
        required=True,
        type=loopback_url,
        help="the endpoint to forward to, http://127.0.0.1:<port>",
    )
    proxy.add_argument(
        "--port", type=port_number, default=0, help="the proxy's port on 127.0.0.1 (default: any)"
    )
    proxy.add_argument("--seed", type=int, default=0)
    proxy.add_argument("--throttle", type=probability, default=0.08, help="probability of a throttling error")
    proxy.add_argument(
        "--error-before", type=probability, default=0.08, help="probability of a 5xx, not forwarded"
    )
    proxy.add_argument(
        "--lost-sends",
        type=probability,
        default=0.1,
        help="probability an SQS send's answer is lost after commit",
    )
    proxy.add_argument(
        "--lost-writes", type=probability, default=0.0, help="probability a DynamoDB write's answer is lost"
    )
    proxy.add_argument(
        "--lifetime", type=float, default=3600.0, help="stop by itself after this many seconds"
    )
    _ops_parser(commands)
    openapi = commands.add_parser(
        "openapi", help="write (or check) the OpenAPI document generated from the code"
    )
    openapi.add_argument("--output", type=Path, help="write it here (default: print it)")
    openapi.add_argument("--check", type=Path, help="fail when this file is not what the code generates")
    return parser


def _ops_parser(commands: Any) -> None:
    ops = commands.add_parser(
        "ops",
        help="the operator's command line: jobs, dead letters, cancel, notify, dry runs (docs/runbook.md)",
    )
    where = ops.add_mutually_exclusive_group()
    where.add_argument(
        "--stack",
        metavar="NAME",
        default=os.environ.get(STACK_VARIABLE),
        help=f"a deployed stack, found by its CloudFormation outputs (default: ${STACK_VARIABLE})",
    )
    where.add_argument(
        "--local",
        metavar="FILE",
        type=serve_line_file,
        help="the local stack: a file holding the first line `wfm-publish serve` printed",
    )
    ops.add_argument("--region", help="the deployed stack's region (default: the AWS CLI's)")
    ops.add_argument("--json", action="store_true", help="JSON for scripts instead of tables")
    sub = ops.add_subparsers(dest="ops_command", required=True)
    jobs = sub.add_parser("jobs", help="jobs, newest first (the status index; never a scan)")
    jobs.add_argument("--status", type=str.upper, choices=[s.value for s in JobStatus])
    jobs.add_argument("--schedule", metavar="ID", help="only this schedule's jobs")
    jobs.add_argument(
        "--since",
        metavar="TIME",
        type=since_time,
        help="created at or after this time: ISO-8601 (UTC unless it names a zone) or an age (90m, 24h, 7d)",
    )
    jobs.add_argument("--most", type=positive, default=50, help="at most this many (default: %(default)s)")
    for name, text in (
        ("show", "one job: state, reason, scope, capacity, callback, timeline"),
        ("cancel", "cancel a job that has not started publishing (as POST /publishes/{id}/cancel)"),
        ("notify", "tell the job's callback records its end again (those not told yet)"),
    ):
        sub.add_parser(name, help=text).add_argument("publish_id", metavar="PUBLISH_ID")
    sub.choices["show"].add_argument(
        "--chart", type=Path, metavar="FILE", help="also write its capacity chart (SVG) to FILE"
    )
    stuck = sub.add_parser("stuck", help="jobs whose next step is overdue (the watchdog's due index)")
    stuck.add_argument(
        "--over", type=float, default=OVERDUE_AFTER, help="seconds overdue (default: %(default)s)"
    )
    dlq = sub.add_parser("dlq", help="the dead-letter queues")
    dlq.add_argument("action", choices=["list", "redrive", "purge"])
    dlq.add_argument("queue", nargs="?", choices=list(DLQ_OUTPUTS))
    dlq.add_argument("--queue", dest="queue_option", choices=list(DLQ_OUTPUTS), help="the same, as an option")
    dlq.add_argument("--yes", action="store_true", help="purge: really delete every letter")
    check = sub.add_parser(
        "check",
        help="a dry run: scope, readiness and capacity, never a publish; exit 0 when every check passed",
    )
    check.add_argument("schedule_id", metavar="SCHEDULE_ID")
    check.add_argument("--validation-mode", choices=["strict", "deferred", "off"])
    check.add_argument("--no-telephony-sync", action="store_true", help="skip the telephony wait")
    check.add_argument(
        "--wait", type=float, default=300.0, help="seconds to follow it (default: %(default)s)"
    )
    check.add_argument("--hmac-secret", help=HMAC_HELP + "; on AWS: the ApiSigningSecret")
    check.add_argument("--api-key", help="on AWS: the x-api-key (default: read by its ApiKeyId)")


def _ops(args: argparse.Namespace) -> int:
    from wfm_publish_local import ops

    _core_logs_to_stderr_errors_only()
    if not (args.local or args.stack):
        print(
            f"wfm-publish ops: name the stack: --stack NAME (or ${STACK_VARIABLE}), or --local FILE",
            file=sys.stderr,
        )
        return 2
    try:
        target = (
            ops.Target.from_serve_line(args.local)
            if args.local
            else ops.Target.from_stack(args.stack, args.region)
        )
        return _run_ops(ops.Ops(target), args)
    except ops.failures() as refused:
        print(f"wfm-publish ops: {refused}", file=sys.stderr)
        return 1


def _core_logs_to_stderr_errors_only() -> None:
    """The core logs for CloudWatch (a redrive, a job moved on): here each outcome is in the command's
    own output, so only errors are shown, on stderr, on one line each."""
    import logging

    class ErrorsOnStderr(logging.StreamHandler):  # type: ignore[type-arg]
        @property
        def stream(self) -> Any:  # sys.stderr as it is when a line is written
            return sys.stderr

        @stream.setter
        def stream(self, _: Any) -> None:
            pass

    root = logging.getLogger()
    if not any(type(h).__name__ == ErrorsOnStderr.__name__ for h in root.handlers):
        handler = ErrorsOnStderr()
        handler.setLevel(logging.ERROR)
        handler.setFormatter(logging.Formatter("wfm-publish ops: %(message)s"))
        root.addHandler(handler)


def _run_ops(tool: Any, args: argparse.Namespace) -> int:
    from wfm_publish_local import ops

    def out(data: Any, text: str) -> None:
        print(json.dumps(data, indent=2, default=str) if args.json else text)

    command = args.ops_command
    if command == "jobs":
        since = args.since or 0.0
        status = JobStatus(args.status) if args.status else None
        rows = [ops.job_row(j) for j in tool.jobs(status, args.schedule, since, args.most)]
        out(
            rows,
            ops.table(
                rows, ["publishId", "status", "reason", "scheduleId", "createdAt", "updatedAt", "notified"]
            ),
        )
    elif command == "show":
        view = ops.job_detail(tool.job(args.publish_id))
        if args.chart:
            args.chart.write_text(tool.chart(args.publish_id), encoding="utf-8")
            print(f"wrote the capacity chart to {args.chart}", file=sys.stderr)
        out(view, ops.render_detail(view))
    elif command == "cancel":
        cancelled = tool.cancel(args.publish_id)
        job = cancelled.job
        said = f"already {job.status.value}, nothing changed" if cancelled.already else job.status.value
        out(
            ops.job_row(job) | {"alreadyCancelled": cancelled.already},
            f"{job.job_id} {said}: {job.detail}",
        )
    elif command == "notify":
        outcome = tool.notify(args.publish_id)
        out({"publishId": args.publish_id, "outcome": outcome}, f"{args.publish_id}: {outcome}")
    elif command == "stuck":
        rows = [ops.job_row(j) | {"overdueSeconds": round(late, 1)} for j, late in tool.stuck(args.over)]
        out(rows, ops.table(rows, ["publishId", "status", "scheduleId", "overdueSeconds", "updatedAt"]))
    elif command == "dlq":
        return _dlq(tool, args, out)
    else:
        extra: dict[str, Any] = {}
        if args.validation_mode:
            extra["validationMode"] = args.validation_mode
        if args.no_telephony_sync:
            extra["telephonySync"] = {"enabled": False}
        view = tool.check(
            args.schedule_id, hmac_secret=args.hmac_secret, api_key=args.api_key, extra=extra, wait=args.wait
        )
        out(view, ops.render_detail(view))
        return 0 if view["status"] == JobStatus.CHECKED.value and view.get("reasonCode") == "DRY_RUN" else 1
    return 0


def _dlq(tool: Any, args: argparse.Namespace, out: Callable[[Any, str], None]) -> int:
    from wfm_publish_local import ops

    args.queue = args.queue or args.queue_option
    if not args.queue:
        print(f"wfm-publish ops dlq: name the queue: one of {', '.join(ops.DLQ_OUTPUTS)}", file=sys.stderr)
        return 2

    columns = ["messageId", "publishId", "step", "receives", "looks", "sentAt"]
    if args.action == "list":
        rows = tool.dlq_list(args.queue)
        out(rows, ops.table(rows, [*columns, "stream"] if args.queue not in ops.REDRIVABLE else columns))
    elif args.action == "redrive":
        rows = tool.dlq_redrive(args.queue)
        out(rows, ops.table(rows, [*columns, "outcome"]))
    elif not args.yes:
        letters = tool.dlq_count(args.queue)
        print(f"{letters} letter(s) in the {args.queue} DLQ; add --yes to delete them all", file=sys.stderr)
        return 2
    else:
        deleted = tool.dlq_purge(args.queue)
        out(
            {"queue": args.queue, "deleted": deleted},
            f"deleted {deleted} letter(s) from the {args.queue} DLQ",
        )
    return 0


def _sign_parser(commands: Any) -> None:
    sign = commands.add_parser(
        "sign",
        help="sign a request: its headers, a whole curl command (--curl), or an API event (--event)",
        description=(
            "Sign a request as ServiceNow does (X-Signature-Timestamp, X-Signature). Name the request with"
            " --method/--path/--query/--data, or give an API Gateway event (--event FILE, e.g."
            " events/api_post_publish.json) to re-sign it for `sam local invoke -e`: the five-minute window"
            " counts from --timestamp, so an event signed earlier must be signed again."
        ),
    )
    what = sign.add_mutually_exclusive_group(required=True)
    what.add_argument("--method", help="the HTTP method, e.g. POST")
    what.add_argument(
        "--event",
        type=existing_file,
        metavar="FILE",
        help="an API Gateway proxy event: print it with fresh signature headers for what it asks",
    )
    sign.add_argument("--path", help="the resource path without the stage, e.g. /publishes/abc/cancel")
    sign.add_argument("--query", default="", help="the query string, if any, e.g. a=1&b=2")
    body = sign.add_mutually_exclusive_group()
    body.add_argument("--data", default="", help="the exact body to send (default: empty, as for GET)")
    body.add_argument("--body", type=existing_file, help="read the exact body from this file instead")
    sign.add_argument(
        "--key",
        help="the Idempotency-Key the request sends: signed too (POST /publishes needs one); --curl sends it",
    )
    sign.add_argument("--timestamp", type=int, help="unix seconds (default: now)")
    sign.add_argument("--hmac-secret", help=HMAC_HELP)
    sign.add_argument(
        "--curl",
        metavar="BASE_URL",
        help="print a whole curl command for the request to this API base URL (with the stage on AWS)",
    )
    sign.add_argument(
        "--header",
        "-H",
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="--curl: another header to send, e.g. 'Idempotency-Key: k1' (repeatable)",
    )
    sign.add_argument("--api-key", help="--curl: the x-api-key to send (AWS)")
    sign.add_argument("--write", action="store_true", help="--event: write the signed event back to FILE")


def _sign_command(args: argparse.Namespace) -> int:
    import time

    from wfm_publish_local.client import local_hmac_secret

    moment = int(time.time()) if args.timestamp is None else args.timestamp
    secret = local_hmac_secret(args.hmac_secret)
    if args.event is not None:
        taken = (args.curl, args.header, args.api_key, args.path, args.query, args.data, args.body, args.key)
        if any(taken):
            raise UsageError("--event takes the request from the event: no --path, --data, --key, --curl")
        try:
            event = json.loads(args.event.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise UsageError(f"{args.event} is not JSON: {exc}") from None
        signed = sign_event(event, secret, moment)
        text = json.dumps(signed, indent=2) + "\n"
        if args.write:
            args.event.write_text(text, encoding="utf-8")
            print(f"signed {args.event} at {moment} ({datetime.fromtimestamp(moment, UTC).isoformat()})")
        else:
            print(text, end="")
        return 0
    if not args.path:
        raise UsageError("name the request's --path (or sign an --event)")
    if args.write:
        raise UsageError("--write writes an --event back; here there is no event")
    body = args.body.read_bytes() if args.body else args.data.encode()
    from wfm_publish.signature import KEY_HEADER, request_key, signed_headers

    extra = list(args.header)
    given = dict(h.split(":", 1) for h in extra if ":" in h)
    key = args.key if args.key is not None else request_key({k: v.strip() for k, v in given.items()})
    if args.key is not None and not any(k.strip().lower() == KEY_HEADER.lower() for k in given):
        extra.append(f"{KEY_HEADER}: {args.key}")  # the key signed is the key sent
    headers = signed_headers(secret, args.method, args.path, body, moment, query=args.query, key=key)
    if args.curl is None:
        if args.key is not None:
            print(f"{KEY_HEADER}: {args.key}")
        for name, value in headers.items():
            print(f"{name}: {value}")
        return 0
    print(curl_command(args.curl, args.method, args.path, args.query, body, headers, extra, args.api_key))
    return 0


def curl_command(
    base_url: str,
    method: str,
    path: str,
    query: str,
    body: bytes,
    signature: dict[str, str],
    extra: list[str],
    api_key: str | None = None,
) -> str:
    """One shell command line, every part quoted: `eval "$(wfm-publish sign ... --curl URL)"` runs it."""
    import shlex

    url = base_url.rstrip("/") + path + (f"?{query.lstrip('?')}" if query else "")
    words = ["curl", "-sS", "-X", method.upper(), url]
    headers = [f"{k}: {v}" for k, v in signature.items()]
    if body and not any(h.lower().startswith("content-type:") for h in extra):
        headers.append("Content-Type: application/json")
    headers += extra
    if api_key:
        headers.append(f"x-api-key: {api_key}")
    for header in headers:
        words += ["-H", header]
    if body:
        words += ["--data-binary", body.decode("utf-8", errors="replace")]
    return " ".join(shlex.quote(w) for w in words)


def sign_event(event: dict[str, Any], secret: str, moment: int) -> dict[str, Any]:
    """An API Gateway proxy event with fresh signature headers for what it asks (method, path as the
    function routes it, query, exact body), and API Gateway's request time set to the signing time."""
    import base64

    from wfm_publish.signature import request_key, signed_headers

    if not isinstance(event, dict) or "httpMethod" not in event or "path" not in event:
        raise UsageError("not an API Gateway proxy event (no httpMethod and path)")
    raw = event.get("body") or ""
    body = base64.b64decode(raw) if event.get("isBase64Encoded") else str(raw).encode()
    query = event.get("multiValueQueryStringParameters") or event.get("queryStringParameters") or None
    key = request_key(event.get("headers") or {})  # the Idempotency-Key (or X-Request-Id) it carries
    fresh = signed_headers(
        secret, str(event["httpMethod"]), str(event["path"]), body, moment, query=query, key=key
    )
    out = dict(event)
    names = {name.lower() for name in fresh}
    for field, wrap in (("headers", str), ("multiValueHeaders", lambda v: [v])):
        held = {k: v for k, v in (event.get(field) or {}).items() if k.lower() not in names}
        out[field] = held | {name: wrap(value) for name, value in fresh.items()}
    context = dict(event.get("requestContext") or {})
    if context:
        context["requestTimeEpoch"] = moment * 1000
        context["requestTime"] = datetime.fromtimestamp(moment, UTC).strftime("%d/%b/%Y:%H:%M:%S +0000")
        out["requestContext"] = context
    return out


def _fault_proxy(args: argparse.Namespace) -> int:
    from wfm_publish_local.faultproxy import FaultProxy, data_plane_plan

    _port_free(args.port, "--port")
    plan = data_plane_plan(
        args.seed,
        throttle=args.throttle,
        error_before=args.error_before,
        lost_sends=args.lost_sends,
        lost_writes=args.lost_writes,
    )
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    with FaultProxy(args.target, plan, port=args.port, lifetime=args.lifetime) as proxy:
        print(json.dumps({"proxy": proxy.url, "target": args.target, "seed": args.seed}), flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            stopped.wait(args.lifetime)
        print(proxy.report(), flush=True)
    return 0


def _openapi(output: Path | None, check: Path | None) -> int:
    from wfm_publish_local import openapi

    if check is not None:
        problem = openapi.check(check)
        print(problem or f"{check} matches the code")
        return 1 if problem else 0
    document = openapi.generate()
    if output is None:
        print(document, end="")
    else:
        output.write_text(document, encoding="utf-8")
        print(f"wrote {output}")
    return 0


def _serve(scenario: Path, port: int, hmac_secret: str | None, aws_endpoint: str | None = None) -> int:
    from wfm_publish_local.embedded import EmbeddedStack

    _port_free(port, "--port")
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    with EmbeddedStack(scenario, api_port=port, hmac_secret=hmac_secret, aws_endpoint=aws_endpoint) as stack:
        from wfm_publish_local.ops import describe_local

        assert stack.stack is not None
        print(
            json.dumps(
                {
                    # `wfm-publish ops --local <this line in a file>` reads these three.
                    **describe_local(stack.stack, stack.servicenow.url),
                    "api": stack.api_url,
                    "genesys": stack.simulator_server.url,
                    "servicenow": stack.servicenow.url,
                    "signing": "X-Signature-Timestamp + X-Signature (docs/servicenow.md); no API key locally",
                }
            ),
            flush=True,
        )
        with contextlib.suppress(KeyboardInterrupt):
            stopped.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
