"""`python -m bench`: every benchmark in one run; their figures go to bench/results/<name>.json.

python -m bench                 # everything
python -m bench strategies      # only the named benchmarks
BENCH_TRIALS=40 python -m bench strategies   # fewer trials per cell (quicker, noisier)
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
# Each module has `run() -> dict`, prints its own table and returns its figures. Optional ones run
# when they exist (other issues add them).
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
            RESULTS.mkdir(exist_ok=True)
            target = RESULTS / f"{name}.json"
            target.write_text(json.dumps(figures, indent=2) + "\n")
            shown = target.relative_to(Path.cwd()) if target.is_relative_to(Path.cwd()) else target
            print(f"figures written to {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
