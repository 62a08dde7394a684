"""The local stack's stand-in for CloudWatch Logs: EMF lines the functions print are kept (and summed as
CloudWatch would), every other line still reaches the console; and `make demo` installs only the runtime
and the local stack."""

from __future__ import annotations

import io
import json
import sys
import threading
import tomllib
from pathlib import Path

from wfm_publish_local.runner.metrics import EmfCapture, metric_totals

ROOT = Path(__file__).resolve().parents[2]


def emf(name: str, value: float, **dimensions: str) -> str:
    return json.dumps(
        {
            "_aws": {
                "Timestamp": 0,
                "CloudWatchMetrics": [
                    {
                        "Namespace": "WfmPublish",
                        "Dimensions": [sorted(dimensions)],
                        "Metrics": [{"Name": name}],
                    }
                ],
            },
            name: [value],
            **dimensions,
        }
    )


def test_emf_lines_are_kept_and_the_rest_passes_through() -> None:
    console = io.StringIO()
    saved = sys.stdout
    sys.stdout = console
    capture = EmfCapture()
    try:
        capture.install()
        print("hello")
        print(emf("JobsEnded", 1, Status="FAILED"))

        def worker() -> None:
            print(emf("JobsEnded", 1, Status="FAILED"))

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        capture.install()  # again: a no-op while it is in place
    finally:
        capture.uninstall()
        sys.stdout = saved
    assert console.getvalue() == "hello\n"
    assert capture.totals("WfmPublish") == {("JobsEnded", (("Status", "FAILED"),)): [1.0] * 9}
    assert capture.totals("Other") == {}


def test_install_follows_a_stdout_replaced_in_between() -> None:
    """pytest swaps sys.stdout for each test: the capture wraps whatever is there at the next invoke."""
    first, second = io.StringIO(), io.StringIO()
    saved = sys.stdout
    capture = EmfCapture()
    try:
        sys.stdout = first
        capture.install()
        sys.stdout = second  # someone else's
        capture.install()
        print("to the second")
    finally:
        capture.uninstall()
        sys.stdout = saved
    assert (first.getvalue(), second.getvalue()) == ("", "to the second\n")


def test_totals_sum_values_per_metric_and_dimensions() -> None:
    documents = [json.loads(emf("TimeToPublish", 3.5)), json.loads(emf("TimeToPublish", 1.5))]
    assert metric_totals(documents) == {("TimeToPublish", ()): [3.5, 1.5]}


def test_make_demo_installs_no_test_or_lint_tools() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    local = " ".join(extras["local"]).lower()
    for tool in ("mypy", "schemathesis", "cfn-lint", "pytest", "ruff", "moto[server"):
        assert tool not in local, f"`make demo` would install {tool}"
    assert "wfm-publish[local]" in extras["dev"]
    makefile = (ROOT / "Makefile").read_text()
    assert "demo: demo-deps" in makefile and "-e '.[local]'" in makefile
