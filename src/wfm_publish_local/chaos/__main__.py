"""`python -m wfm_publish_local.chaos --seeds 10000 --workers 2`: seeded fault schedules in virtual time
through the real core; prints the figures, the violations by kind with the first seeds that show each,
and for the first seeds their violations and a short trace (`World(seed).run()` replays one)."""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import re
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

TRACE_LINES = 40


@dataclass
class SeedResult:
    seed: int
    violations: list[str]
    trace: list[str]
    counts: Counter[str] = field(default_factory=Counter)
    jobs: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    requests: int = 0
    virtual_seconds: float = 0.0


def run_seed(seed: int) -> SeedResult:
    from wfm_publish_local.chaos.invariants import check
    from wfm_publish_local.chaos.virtual import World

    world = World(seed)
    start = world.clock.now()
    try:
        world.run()
        violations = check(world)
    except Exception as broken:  # the harness itself, or the core outside any step: a finding too
        violations = [f"[!] the run raised {type(broken).__name__}: {broken}"]
    jobs = world.jobs()
    return SeedResult(
        seed=seed,
        violations=violations,
        trace=world.trace[-TRACE_LINES:] if violations else [],
        counts=world.counts,
        jobs=len(jobs),
        statuses=Counter(j.status.value for j in jobs.values()),
        requests=len(world.answers),
        virtual_seconds=world.clock.now() - start,
    )


def _quiet() -> None:
    logging.disable(logging.CRITICAL)  # the core's logs are per step: millions of lines here


def run(seeds: range, workers: int) -> list[SeedResult]:
    _quiet()
    if workers <= 1:
        return [run_seed(s) for s in seeds]
    with multiprocessing.get_context("fork").Pool(workers, initializer=_quiet) as pool:
        return pool.map(run_seed, seeds, chunksize=25)


def report(results: list[SeedResult], seconds: float) -> int:
    counts: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    for r in results:
        counts.update(r.counts)
        statuses.update(r.statuses)
    bad = [r for r in results if r.violations]
    print(f"chaos (virtual time): {len(results)} seeded fault schedules in {seconds:.1f} s wall")
    ended = ", ".join(f"{k} {v}" for k, v in sorted(statuses.items()))
    print(
        f"  jobs {sum(r.jobs for r in results)} ({ended}),"
        f" requests {sum(r.requests for r in results)},"
        f" virtual time {sum(r.virtual_seconds for r in results) / 3600:.0f} h"
    )
    print(f"  faults injected and paths driven: {sum(counts.values())}")
    for what, n in sorted(counts.items(), key=lambda kv: -kv[1]):
        print(f"    {n:8d}  {what}")
    print(f"  violations: {sum(len(r.violations) for r in bad)} in {len(bad)} seed(s)")
    kinds: defaultdict[str, list[int]] = defaultdict(list)
    for r in bad:
        for kind in dict.fromkeys(kind_of(v) for v in r.violations):
            kinds[kind].append(r.seed)
    for kind, seeds in sorted(kinds.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        first = ", ".join(map(str, seeds[:8]))
        print(f"    {len(seeds):6d} seed(s)  {kind}\n              first seeds: {first}")
    for r in bad[:10]:
        print(f"\n  seed {r.seed}:")
        for v in r.violations:
            print(f"    {v}")
        print("    trace (last lines):")
        for line in r.trace:
            print(f"      {line}")
    return 1 if bad else 0


def kind_of(violation: str) -> str:
    """A violation without its ids, records, keys and numbers: what kind of promise broke."""
    kind = re.sub(r"[0-9a-f]{32}", "<job>", violation)
    kind = re.sub(r"\b[a-z_]+/[0-9a-f]{6}\b", "<record>", kind)
    kind = re.sub(r"\bk-\d+(/[ab])?", "<key>", kind)
    kind = re.sub(r"\bsched-[a-c]\b", "<schedule>", kind)
    kind = re.sub(r"\b(edge|trunk)-\d\b", "<entity>", kind)
    rule, _, rest = kind.partition("] ")
    rest = re.sub(r"-?\d+(\.\d+)?", "N", rest)
    return f"{rule}] {rest}"[:140]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m wfm_publish_local.chaos", description=__doc__)
    parser.add_argument("--seeds", type=int, default=10_000)
    parser.add_argument("--first", type=int, default=0, help="the first seed")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    began = time.perf_counter()
    results = run(range(args.first, args.first + args.seeds), args.workers)
    return report(results, time.perf_counter() - began)


if __name__ == "__main__":
    sys.exit(main())
