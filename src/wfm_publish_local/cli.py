"""`wfm-publish`: the local stack from the command line, and `ops`, the operator's tool for a deployed one."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

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


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "demo":
        from wfm_publish_local import demo as demo_module

        return demo_module.run(args.scenario, hmac_secret=args.hmac_secret, aws_endpoint=args.aws_endpoint)
    if args.command == "simulate":
        from wfm_publish_local.simulator.server import serve_forever

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
        "sign": lambda a: _sign(
            a.method,
            a.path,
            a.query,
            a.body.read_bytes() if a.body else a.data.encode(),
            a.timestamp,
            a.hmac_secret,
            a.key,
        ),
    }
    if args.command in others:
        return others[args.command](args)
    return _serve(args.scenario, args.port, args.hmac_secret, args.aws_endpoint)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wfm-publish", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo", help="publish a schedule through the whole pipeline, on the local stack"
    )
    demo.add_argument("--scenario", type=Path, default=DEFAULT_SCENARIO)
    demo.add_argument("--hmac-secret", help=HMAC_HELP)
    demo.add_argument("--aws-endpoint", metavar="URL", help=AWS_ENDPOINT_HELP)
    serve = commands.add_parser("serve", help="run the local stack until interrupted")
    serve.add_argument("--port", type=int, default=3000, help="the publish API's port")
    serve.add_argument("--scenario", type=Path, default=DEFAULT_SCENARIO)
    serve.add_argument("--hmac-secret", help=HMAC_HELP)
    serve.add_argument("--aws-endpoint", metavar="URL", help=AWS_ENDPOINT_HELP)
    simulate = commands.add_parser("simulate", help="run only the Genesys Cloud simulator")
    simulate.add_argument("--scenario", type=Path, default=DEFAULT_SCENARIO)
    simulate.add_argument("--port", type=int, default=8400)
    weekly = commands.add_parser(
        "weekly", help="fire the weekly publish (the ScheduleV2 event) on the local stack and follow its jobs"
    )
    when = weekly.add_mutually_exclusive_group(required=True)
    when.add_argument(
        "--now", action="store_true", help="as if due now (on the scenario's `today`, when it sets one)"
    )
    when.add_argument(
        "--at", help="as if due at this ISO-8601 time with a zone, e.g. 2023-10-26T06:00:00+01:00"
    )
    weekly.add_argument("--scenario", type=Path, default=WEEKLY_SCENARIO)
    weekly.add_argument("--business-units", help="comma-separated ids (default: the template's Input, all)")
    weekly.add_argument("--weeks-ahead", type=int, help="default: the template's Input")
    weekly.add_argument(
        "--times", type=int, default=1, help="deliver the event this many times (idempotency)"
    )
    weekly.add_argument("--hmac-secret", help=HMAC_HELP)
    sign = commands.add_parser(
        "sign", help="print the signature headers for a request (for curl, Postman, sam local invoke)"
    )
    sign.add_argument("--method", required=True, help="the HTTP method, e.g. POST")
    sign.add_argument(
        "--path", required=True, help="the resource path without the stage, e.g. /publishes/abc/cancel"
    )
    sign.add_argument("--query", default="", help="the query string, if any, e.g. a=1&b=2")
    sign.add_argument("--data", default="", help="the exact body to send (default: empty, as for GET)")
    sign.add_argument("--body", type=Path, help="read the exact body from this file instead")
    sign.add_argument(
        "--key", help="the Idempotency-Key the request sends (signed too; POST /publishes needs one)"
    )
    sign.add_argument("--timestamp", type=int, help="unix seconds (default: now)")
    sign.add_argument("--hmac-secret", help=HMAC_HELP)
    proxy = commands.add_parser(
        "fault-proxy",
        help="run the fault-injecting proxy in front of an AWS endpoint (then: serve/demo --aws-endpoint)",
    )
    proxy.add_argument("--target", required=True, help="the endpoint to forward to, http://127.0.0.1:<port>")
    proxy.add_argument("--port", type=int, default=0, help="the proxy's port on 127.0.0.1 (default: any)")
    proxy.add_argument("--seed", type=int, default=0)
    proxy.add_argument("--throttle", type=float, default=0.08, help="probability of a throttling error")
    proxy.add_argument("--error-before", type=float, default=0.08, help="probability of a 5xx, not forwarded")
    proxy.add_argument(
        "--lost-sends", type=float, default=0.1, help="probability an SQS send's answer is lost after commit"
    )
    proxy.add_argument(
        "--lost-writes", type=float, default=0.0, help="probability a DynamoDB write's answer is lost"
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
        type=Path,
        help="the local stack: a file holding the first line `wfm-publish serve` printed",
    )
    ops.add_argument("--region", help="the deployed stack's region (default: the AWS CLI's)")
    ops.add_argument("--json", action="store_true", help="JSON for scripts instead of tables")
    sub = ops.add_subparsers(dest="ops_command", required=True)
    jobs = sub.add_parser("jobs", help="jobs, newest first (the status index; never a scan)")
    jobs.add_argument("--status", type=str.upper, choices=[s.value for s in JobStatus])
    jobs.add_argument("--schedule", metavar="ID", help="only this schedule's jobs")
    jobs.add_argument("--since", metavar="TIME", help="created at or after this ISO-8601 time")
    jobs.add_argument("--most", type=int, default=50)
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


def _run_ops(tool: Any, args: argparse.Namespace) -> int:
    from wfm_publish_local import ops

    def out(data: Any, text: str) -> None:
        print(json.dumps(data, indent=2, default=str) if args.json else text)

    command = args.ops_command
    if command == "jobs":
        since = datetime.fromisoformat(args.since).timestamp() if args.since else 0.0
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
        job = tool.cancel(args.publish_id)
        out(ops.job_row(job), f"{job.job_id} {job.status.value}: {job.detail}")
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

    columns = ["messageId", "publishId", "step", "receives", "sentAt"]
    if args.action == "list":
        rows = tool.dlq_list(args.queue)
        out(rows, ops.table(rows, [*columns, "stream"] if args.queue not in ops.REDRIVABLE else columns))
    elif args.action == "redrive":
        rows = tool.dlq_redrive(args.queue)
        out(rows, ops.table(rows, [*columns, "outcome"]))
    elif not args.yes:
        letters = len(tool.dlq_list(args.queue))
        print(f"{letters} letter(s) in the {args.queue} DLQ; add --yes to delete them all", file=sys.stderr)
        return 2
    else:
        deleted = tool.dlq_purge(args.queue)
        out(
            {"queue": args.queue, "deleted": deleted},
            f"deleted {deleted} letter(s) from the {args.queue} DLQ",
        )
    return 0


def _sign(
    method: str,
    path: str,
    query: str,
    body: bytes,
    timestamp: int | None,
    hmac_secret: str | None,
    key: str | None = None,
) -> int:
    import time

    from wfm_publish.signature import KEY_HEADER, signed_headers
    from wfm_publish_local.client import local_hmac_secret

    moment = time.time() if timestamp is None else timestamp
    secret = local_hmac_secret(hmac_secret)
    if key is not None:
        print(f"{KEY_HEADER}: {key}")
    for name, value in signed_headers(secret, method, path, body, moment, query=query, key=key).items():
        print(f"{name}: {value}")
    return 0


def _fault_proxy(args: argparse.Namespace) -> int:
    from wfm_publish_local.faultproxy import FaultProxy, data_plane_plan

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
