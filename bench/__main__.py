"""`python -m bench`: every benchmark in one run; each run's figures go to bench/runs/<name>.json.

python -m bench                 # everything
python -m bench strategies      # only the named benchmarks
BENCH_TRIALS=40 python -m bench strategies   # fewer trials per cell (quicker, noisier)

bench/runs/ is not tracked: a run never rewrites the committed figures, bench/results/<name>.json,
which the README and docs/benchmark.md quote. To refresh those, copy a run's file over its committed
one (cp bench/runs/weekly.json bench/results/) and update the figures quoted from it, in one commit.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"  # committed: the figures the docs quote
RUNS = Path(__file__).resolve().parent / "runs"  # untracked: where each run writes
# Each module has `run() -> dict`, prints its own table and returns its figures. Optional ones run
# when they exist.
# weekly before cost: the bill reuses the weekly run rather than simulating it again.
BENCHMARKS = ["strategies", "capacity", "coldstart", "weekly", "cost"]
REQUIRED = {"strategies"}


def main(argv: list[str]) -> int:
    wanted = argv or BENCHMARKS
    unknown = [name for name in wanted if name not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
        return 2
    for name in wanted:
        if name not in REQUIRED and importlib.util.find_spec(f"bench.{name}") is None:
            continue
        module = importlib.import_module(f"bench.{name}")
        print(f"\n=== {name} ===\n")
        figures: dict[str, Any] = module.run()
        if name in {"strategies", "weekly", "cost", "coldstart"}:
            target = write_figures(name, figures)
            shown = target.relative_to(Path.cwd()) if target.is_relative_to(Path.cwd()) else target
            print(
                f"figures written to {shown} (the committed ones, bench/results/{name}.json, are unchanged)"
            )
    return 0


def write_figures(name: str, figures: dict[str, Any], folder: Path = RUNS) -> Path:
    """A run's figures, as JSON, in `folder` (bench/runs/, untracked); the written file."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{name}.json"
    target.write_text(json.dumps(figures, indent=2) + "\n")
    return target


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
