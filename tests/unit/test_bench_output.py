"""`make bench` writes each run's figures to bench/runs/ (untracked), never over the committed figures
in bench/results/ that the README and docs/benchmark.md quote."""

from __future__ import annotations

import subprocess
from pathlib import Path

from bench.__main__ import RESULTS, RUNS, write_figures

ROOT = Path(__file__).resolve().parents[2]


def tracked(path: Path) -> bool:
    answer = subprocess.run(
        ["git", "ls-files", "--error-unmatch", str(path.relative_to(ROOT))],
        cwd=ROOT,
        capture_output=True,
        check=False,
    )
    return answer.returncode == 0


def ignored(path: Path) -> bool:
    answer = subprocess.run(
        ["git", "check-ignore", "-q", str(path.relative_to(ROOT))], cwd=ROOT, capture_output=True, check=False
    )
    return answer.returncode == 0


def test_a_run_writes_to_an_untracked_folder_and_leaves_the_committed_figures_alone() -> None:
    committed = {p.name: p.read_bytes() for p in RESULTS.glob("*.json")}
    assert {"strategies.json", "weekly.json", "cost.json", "coldstart.json"} <= set(committed)
    assert all(tracked(RESULTS / name) for name in committed)
    name = "test-run-figures"
    written = write_figures(name, {"figure": 1})
    try:
        assert written == RUNS / f"{name}.json" and written.read_text() == '{\n  "figure": 1\n}\n'
        assert ignored(written) and not tracked(written)
        assert {p.name: p.read_bytes() for p in RESULTS.glob("*.json")} == committed
    finally:
        written.unlink()
