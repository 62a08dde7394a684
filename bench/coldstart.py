"""Cold start: what importing each function's handler costs, in a fresh interpreter as Lambda does.

Lambda pays the module import once per container (the init phase). Each function is imported in its
own subprocess, with the layer's code on sys.path and the function's environment set, and the figure
is the best of several runs (the machine's noise only ever adds time).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FUNCTIONS = ["publish_trigger", "trunk_validation", "conflict_retry", "notifier", "dead_letters", "announcer"]
RUNS = 5

PROBE = """
import json, sys, time
started = time.perf_counter()
import app
elapsed = time.perf_counter() - started
# VmHWM is this process's own peak: ru_maxrss would carry the parent's peak across fork and exec.
status = open("/proc/self/status").read().splitlines()
rss_kib = int(next(line.split()[1] for line in status if line.startswith("VmHWM:")))
print(json.dumps({"import_ms": elapsed * 1000, "max_rss_mib": rss_kib / 1024,
                  "modules": len(sys.modules)}))
"""

ENVIRONMENT = {
    "JOBS_TABLE": "jobs",
    "VALIDATION_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/validation",
    "CONFLICT_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/conflict",
    "GENESYS_REGION": "eu-west-1",
    "GENESYS_CREDENTIALS_SECRET": "genesys",
    "POWERTOOLS_SERVICE_NAME": "wfm-publish",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def measure(function: str) -> dict[str, Any]:
    env = {
        **os.environ,
        **ENVIRONMENT,
        "PYTHONPATH": os.pathsep.join(
            [str(ROOT / "functions" / function), str(ROOT / "layers/common/python")]
        ),
        "PYTHONDONTWRITEBYTECODE": "0",
    }
    runs = []
    for _ in range(RUNS):
        out = subprocess.run(
            [sys.executable, "-c", PROBE],
            env=env,
            cwd=ROOT / "functions" / function,
            capture_output=True,
            text=True,
            check=True,
        )
        runs.append(json.loads(out.stdout))
    best = min(runs, key=lambda r: r["import_ms"])
    return {
        "function": function,
        "import_ms": round(best["import_ms"], 1),
        "max_rss_mib": round(best["max_rss_mib"], 1),
        "modules": best["modules"],
    }


def run() -> dict[str, Any]:
    results = [measure(f) for f in FUNCTIONS]
    print(f"\nCold start: handler import in a fresh interpreter (best of {RUNS})")
    print(f"{'function':<18} {'import ms':>10} {'max RSS MiB':>12} {'modules':>8}")
    for r in results:
        print(f"{r['function']:<18} {r['import_ms']:>10.1f} {r['max_rss_mib']:>12.1f} {r['modules']:>8}")
    return {"coldstart": results}


if __name__ == "__main__":
    run()
