"""`wfm-publish`: the local stack from the command line."""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from wfm_publish_local.client import HMAC_SECRET_VARIABLE
from wfm_publish_local.embedded import DEFAULT_SCENARIO, ROOT

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
        "openapi": lambda a: _openapi(a.output, a.check),
        "fault-proxy": _fault_proxy,
        "sign": lambda a: _sign(
            a.method,
            a.path,
            a.query,
            a.body.read_bytes() if a.body else a.data.encode(),
            a.timestamp,
            a.hmac_secret,
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
    openapi = commands.add_parser(
        "openapi", help="write (or check) the OpenAPI document generated from the code"
    )
    openapi.add_argument("--output", type=Path, help="write it here (default: print it)")
    openapi.add_argument("--check", type=Path, help="fail when this file is not what the code generates")
    return parser


def _sign(
    method: str, path: str, query: str, body: bytes, timestamp: int | None, hmac_secret: str | None
) -> int:
    import time

    from wfm_publish.signature import signed_headers
    from wfm_publish_local.client import local_hmac_secret

    moment = time.time() if timestamp is None else timestamp
    secret = local_hmac_secret(hmac_secret)
    for name, value in signed_headers(secret, method, path, body, moment, query=query).items():
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
        print(
            json.dumps(
                {
                    "api": stack.api_url,
                    "genesys": stack.simulator_server.url,
                    "servicenow": stack.servicenow.url,
                    "aws": stack.stack.endpoint_url if stack.stack else None,
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
