"""`python -m wfm_publish_local.chaos.stack`: the command."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import fields

from wfm_publish_local.chaos import stack
from wfm_publish_local.chaos.stack.options import ChaosOptions
from wfm_publish_local.chaos.stack.run import report, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m wfm_publish_local.chaos.stack",
        description=(stack.__doc__ or "").split("\n")[0],
    )
    parser.add_argument("--jobs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--send-rate",
        type=float,
        default=1.5,
        help="first requests per second (1.5: what a 2-core machine carries without a backlog, in which"
        " queued jobs look stuck to the run's short watchdog bound)",
    )
    parser.add_argument("--crash-rate", type=float, default=ChaosOptions.crash_rate)
    parser.add_argument("--api-crash-rate", type=float, default=ChaosOptions.api_crash_rate)
    parser.add_argument("--visibility-timeout", type=int, default=ChaosOptions.visibility_timeout)
    parser.add_argument(
        "--overdue-after", type=float, default=ChaosOptions.overdue_after, help="the watchdog's bound (s)"
    )
    parser.add_argument(
        "--deadline-jobs", type=int, default=None, help="jobs that must end at their deadline (60 s)"
    )
    parser.add_argument(
        "--timeout", type=float, default=ChaosOptions.timeout, help="wall seconds for every job to end"
    )
    parser.add_argument("--no-faults", action="store_true", help="no AWS or Genesys faults (crashes still)")
    parser.add_argument("--verbose", action="store_true", help="the runner's and the functions' logs too")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not args.verbose:
        # Every crash and injected fault is logged by the runner as the failure it is: too many to read.
        for name in ("wfm_publish_local.runner", "wfm_publish_local.faultproxy", "botocore", "urllib3"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "CRITICAL")
    # Each option the command takes is named as the ChaosOptions field it sets.
    given = {f.name: getattr(args, f.name) for f in fields(ChaosOptions) if f.name in vars(args)}
    options = ChaosOptions(**given, faults=not args.no_faults)
    outcome = run(options, echo=lambda line: print(line, flush=True))
    report(outcome, echo=lambda line: print(line, flush=True))
    return 0 if outcome.ok else 1


if __name__ == "__main__":
    sys.exit(main())
