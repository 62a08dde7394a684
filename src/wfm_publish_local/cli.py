"""`wfm-publish`: the local stack from the command line."""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
from pathlib import Path

from wfm_publish_local.embedded import DEFAULT_SCENARIO


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="wfm-publish", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo", help="publish a schedule through the whole pipeline, on the local stack"
    )
    demo.add_argument("--scenario", type=Path, default=DEFAULT_SCENARIO)
    serve = commands.add_parser("serve", help="run the local stack until interrupted")
    serve.add_argument("--port", type=int, default=3000, help="the publish API's port")
    serve.add_argument("--scenario", type=Path, default=DEFAULT_SCENARIO)
    simulate = commands.add_parser("simulate", help="run only the Genesys Cloud simulator")
    simulate.add_argument("--scenario", type=Path, default=DEFAULT_SCENARIO)
    simulate.add_argument("--port", type=int, default=8400)
    args = parser.parse_args(argv)

    if args.command == "demo":
        from wfm_publish_local import demo as demo_module

        return demo_module.run(args.scenario)
    if args.command == "simulate":
        from wfm_publish_local.simulator.server import serve_forever

        serve_forever(str(args.scenario), args.port)
        return 0
    return _serve(args.scenario, args.port)


def _serve(scenario: Path, port: int) -> int:
    from wfm_publish_local.embedded import EmbeddedStack

    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    with EmbeddedStack(scenario, api_port=port) as stack:
        print(json.dumps({"api": stack.api_url, "genesys": stack.simulator_server.url}), flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            stopped.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
